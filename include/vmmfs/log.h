/* SPDX-License-Identifier: MIT */
/*
 * vmmfs event log: a bounded ring of recent events and errors, newest last.
 *
 * Locking: every function here is thread-safe (one internal mutex).
 */
#ifndef VMMFS_LOG_H
#define VMMFS_LOG_H

#include <stddef.h>
#include <stdarg.h>

enum vmmfs_log_level {
	VMMFS_LOG_ERROR = 0,
	VMMFS_LOG_WARN = 1,
	VMMFS_LOG_INFO = 2,  /* maps, unmaps, address spaces: what `log` shows */
	VMMFS_LOG_DEBUG = 3,
	VMMFS_LOG_SPAM = 4,  /* per-register and per-PTE tracing */
};

/* Records one line (no trailing newline needed). Lines at or below the
 * ring level (default INFO) go to the ring; lines at or below the stderr
 * level (default WARN, or set by vmmfs_log_set_stderr_level) also go to
 * stderr. */
void vmmfs_log(enum vmmfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vmmfs_vlog(enum vmmfs_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

void vmmfs_log_set_stderr_level(int level); /* -1: nothing on stderr */
void vmmfs_log_set_ring_level(int level);

/* Copies the ring as text ("TIMESTAMP LEVEL message\n" lines, oldest first)
 * into a newly malloc'ed buffer. Returns its length, or -ENOMEM. */
long vmmfs_log_snapshot(char **text);

/* Empties the ring (tests). */
void vmmfs_log_clear(void);

#endif
