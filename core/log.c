/* SPDX-License-Identifier: MIT */
/*
 * The event log: a fixed ring of lines (no allocation after the first
 * line), newest last, plus an optional copy on stderr.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"

#define LOG_LINES 1024
#define LOG_LINE_MAX 480

struct log_line {
	struct timespec when;
	int level;
	char text[LOG_LINE_MAX];
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_line ring[LOG_LINES];
static unsigned long ring_next;   /* total lines ever written */
static _Atomic int ring_level = VMMFS_LOG_INFO;
static _Atomic int stderr_level = VMMFS_LOG_WARN;
int vmmfs_log_spam_enabled;

static const char *const level_names[] = { "error", "warn", "info", "debug", "spam" };

void vmmfs_log_set_stderr_level(int level)
{
	pthread_mutex_lock(&log_lock);
	stderr_level = level;
	pthread_mutex_unlock(&log_lock);
}

void vmmfs_log_set_ring_level(int level)
{
	pthread_mutex_lock(&log_lock);
	ring_level = level;
	vmmfs_log_spam_enabled = level >= VMMFS_LOG_SPAM;
	pthread_mutex_unlock(&log_lock);
}

void vmmfs_vlog(enum vmmfs_log_level level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	struct timespec now;
	size_t n;

	if ((int)level > ring_level && (int)level > stderr_level)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (text[i] == '\n')
			text[i] = ' ';
	clock_gettime(CLOCK_REALTIME, &now);

	pthread_mutex_lock(&log_lock);
	if ((int)level <= ring_level) {
		struct log_line *l = &ring[ring_next % LOG_LINES];
		l->when = now;
		l->level = level;
		memcpy(l->text, text, n + 1);
		ring_next++;
	}
	if ((int)level <= stderr_level)
		fprintf(stderr, "vmmfs: %s: %s\n", level_names[level], text);
	pthread_mutex_unlock(&log_lock);
}

void vmmfs_log(enum vmmfs_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmmfs_vlog(level, fmt, ap);
	va_end(ap);
}

long vmmfs_log_snapshot(char **out)
{
	unsigned long first, i;
	size_t cap, len = 0;
	char *buf;

	pthread_mutex_lock(&log_lock);
	first = ring_next > LOG_LINES ? ring_next - LOG_LINES : 0;
	cap = (ring_next - first) * (LOG_LINE_MAX + 48) + 1;
	buf = malloc(cap);
	if (!buf) {
		pthread_mutex_unlock(&log_lock);
		return -ENOMEM;
	}
	for (i = first; i < ring_next; i++) {
		const struct log_line *l = &ring[i % LOG_LINES];
		struct tm tm;
		char stamp[32];

		gmtime_r(&l->when.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		len += (size_t)snprintf(buf + len, cap - len, "%s.%03ldZ %-5s %s\n", stamp,
					l->when.tv_nsec / 1000000, level_names[l->level], l->text);
	}
	buf[len] = '\0';
	pthread_mutex_unlock(&log_lock);
	*out = buf;
	return (long)len;
}

void vmmfs_log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	ring_next = 0;
	pthread_mutex_unlock(&log_lock);
}
