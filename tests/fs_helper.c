/* SPDX-License-Identifier: MIT */
/* Real mounts of the daemon for the integration tests: see fs_helper.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fs_helper.h"
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VMMFS_BIN
#error "VMMFS_BIN must name the daemon binary"
#endif

/* ---- small helpers --------------------------------------------------- */

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

char *pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}

char *slurp(const char *path, size_t *lenp)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0 || !buf) {
		int e = errno;
		free(buf);
		if (fd >= 0)
			close(fd);
		errno = e;
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			char *b = realloc(buf, cap * 2 + 1);
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

bool kv_u64(const char *text, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, kl) && (p[kl] == ' ' || p[kl] == '\t')) {
			*v = strtoull(p + kl, NULL, 0);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

bool kv_str(const char *text, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			const char *v = p + kl, *e;
			while (*v == ' ')
				v++;
			e = strchr(v, '\n');
			snprintf(out, outlen, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

uint64_t file_u64(const char *path, const char *key)
{
	char *t = slurp(path, NULL);
	uint64_t v = UINT64_MAX;

	if (!t)
		return UINT64_MAX;
	if (key)
		kv_u64(t, key, &v);
	else
		v = strtoull(t, NULL, 0);
	free(t);
	return v;
}

bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int map_write(const char *path, const char *const *pieces, const char **stage)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644), e;

	*stage = "open";
	if (fd < 0)
		return errno;
	*stage = "write";
	for (; *pieces; pieces++) {
		size_t len = strlen(*pieces);
		if (write(fd, *pieces, len) != (ssize_t)len) {
			e = errno;
			close(fd);
			return e;
		}
	}
	*stage = "close";
	return close(fd) ? errno : 0;
}

int map_text(const char *path, const char *text)
{
	const char *pieces[] = { text, NULL }, *stage;

	return map_write(path, pieces, &stage);
}

/* ---- processes and mounts -------------------------------------------- */

bool is_mounted(const char *path)
{
	char *t = slurp("/proc/self/mounts", NULL), needle[400];
	bool r;

	snprintf(needle, sizeof(needle), " %s fuse", path);
	r = t && strstr(t, needle);
	free(t);
	return r;
}

void fsh_unmount(const char *path)
{
	char cmd[600];

	if (!path[0] || !is_mounted(path))
		return;
	snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s' 2>/dev/null", path);
	if (system(cmd) != 0 || is_mounted(path)) {
		snprintf(cmd, sizeof(cmd), "umount -l '%s' 2>/dev/null", path);
		if (system(cmd) != 0)
			fprintf(stderr, "  could not unmount %s\n", path);
	}
}

bool fsh_stderr_clean(const char *errfile)
{
	char *t = slurp(errfile, NULL);
	bool clean = !t || (!strstr(t, "Sanitizer") && !strstr(t, "runtime error"));

	if (!clean)
		fprintf(stderr, "  vmmfs stderr (%s):\n%s\n", errfile, t);
	free(t);
	return clean;
}

pid_t fsh_spawn(const char *const *argv, const char *errfile, const char *const *env)
{
	pid_t pid = fork();
	int fd;

	if (pid != 0)
		return pid;
	/* if the test dies, the daemon gets SIGTERM and unmounts */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	for (; env && *env; env++) {
		const char *eq = strchr(*env, '=');
		char name[128];

		if (!eq) {
			unsetenv(*env);
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *env), *env);
		setenv(name, eq + 1, 1);
	}
	execv(argv[0], (char *const *)argv);
	perror(argv[0]);
	_exit(127);
}

int fsh_wait_mount(const char *mnt, pid_t *pid, const char *errfile, double timeout_s)
{
	double end = now() + timeout_s;
	char readme[400];

	snprintf(readme, sizeof(readme), "%s/README", mnt);
	while (now() < end) {
		int st;

		if (is_mounted(mnt) && exists(readme))
			return 0;
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			char *t = slurp(errfile, NULL);
			fprintf(stderr, "  vmmfs exited (status %d) before mounting:\n%s\n",
				WIFEXITED(st) ? WEXITSTATUS(st) : -1, t ? t : "");
			free(t);
			*pid = 0;
			return -1;
		}
		sleep_ms(20);
	}
	fprintf(stderr, "  vmmfs did not mount %s within %.0f s\n", mnt, timeout_s);
	return -1;
}

int fsh_wait_exit(pid_t *pid, double timeout_s)
{
	double end = now() + timeout_s;
	int st;

	if (*pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(*pid, &st, WNOHANG);
		if (r == *pid)
			break;
		if (r < 0) {
			*pid = 0;
			return -1;
		}
		if (now() > end) {
			fprintf(stderr, "  vmmfs (pid %d) did not exit: killing it\n", (int)*pid);
			kill(*pid, SIGKILL);
			waitpid(*pid, &st, 0);
			*pid = 0;
			return -1;
		}
		sleep_ms(20);
	}
	*pid = 0;
	if (WIFSIGNALED(st))
		fprintf(stderr, "  vmmfs died of signal %d\n", WTERMSIG(st));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int fsh_run_daemon(const char *args, char *out, size_t outlen)
{
	char cmd[1024];
	FILE *f;
	size_t len = 0;
	int st;

	if (!outlen)
		return -1;
	out[0] = '\0';
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", VMMFS_BIN, args);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (len + 1 < outlen) {
		size_t n = fread(out + len, 1, outlen - 1 - len, f);
		if (!n)
			break;
		len += n;
	}
	out[len] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int fsh_preflight(const char *prog)
{
	const char *allow = getenv("VMMFS_ALLOW_SKIP_FS");
	char why[300] = "";

	if (geteuid() != 0)
		snprintf(why, sizeof(why), "%s mounts vmmfs for real and must run as root", prog);
	else if (access("/dev/fuse", R_OK | W_OK) != 0)
		snprintf(why, sizeof(why), "%s needs /dev/fuse (modprobe fuse; in a container: "
			 "--device /dev/fuse)", prog);
	else if (system("command -v fusermount3 >/dev/null 2>&1") != 0)
		snprintf(why, sizeof(why), "%s needs fusermount3 (apt-get install fuse3)", prog);
	else if (access(VMMFS_BIN, X_OK) != 0)
		snprintf(why, sizeof(why), "the daemon %s is not built", VMMFS_BIN);
	if (!why[0])
		return 0;
	if (allow && !strcmp(allow, "1")) {
		printf("SKIP: %s (VMMFS_ALLOW_SKIP_FS=1)\n", why);
		return 77;
	}
	fprintf(stderr, "FAIL: %s. Set VMMFS_ALLOW_SKIP_FS=1 to skip these tests on purpose.\n", why);
	return 1;
}

/* ---- struct mnt ------------------------------------------------------ */

static struct mnt *active[8];

void mnt_track(struct mnt *m)
{
	size_t i;

	for (i = 0; i < sizeof(active) / sizeof(active[0]); i++)
		if (active[i] == m)
			return;
	for (i = 0; i < sizeof(active) / sizeof(active[0]); i++)
		if (!active[i]) {
			active[i] = m;
			return;
		}
}

void mnt_untrack(struct mnt *m)
{
	size_t i;

	for (i = 0; i < sizeof(active) / sizeof(active[0]); i++)
		if (active[i] == m)
			active[i] = NULL;
}

void mnt_unmount(struct mnt *m)
{
	fsh_unmount(m->path);
}

int mnt_wait(struct mnt *m, double timeout_s)
{
	return fsh_wait_exit(&m->pid, timeout_s);
}

bool mnt_stderr_clean(struct mnt *m)
{
	return fsh_stderr_clean(m->err);
}

int mnt_stop(struct mnt *m)
{
	int st;

	mnt_unmount(m);
	st = mnt_wait(m, 30);
	m->mounted = false;
	mnt_untrack(m);
	return st;
}

void mnt_cleanup(struct mnt *m)
{
	char cmd[600];

	if (m->mounted || m->pid > 0)
		mnt_stop(m);
	mnt_untrack(m);
	if (m->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "  could not remove %s\n", m->dir);
		m->dir[0] = '\0';
	}
}

void mnt_cleanup_all(void)
{
	size_t i;

	for (i = 0; i < sizeof(active) / sizeof(active[0]); i++)
		if (active[i])
			mnt_cleanup(active[i]);
}

int mnt_start(struct mnt *m, const char *const *args)
{
	const char *argv[32];
	size_t i, n = 0;

	memset(m, 0, sizeof(*m));
	snprintf(m->dir, sizeof(m->dir), "/tmp/vmmfs_%s.XXXXXX", program_invocation_short_name);
	if (!mkdtemp(m->dir)) {
		perror("mkdtemp");
		m->dir[0] = '\0';
		return -1;
	}
	snprintf(m->path, sizeof(m->path), "%s/mnt", m->dir);
	snprintf(m->err, sizeof(m->err), "%s/vmmfs.stderr", m->dir);
	if (mkdir(m->path, 0755)) {
		perror("mkdir");
		return -1;
	}
	argv[n++] = VMMFS_BIN;
	argv[n++] = "-f";
	for (i = 0; args && args[i] && n < 29; i++)
		argv[n++] = args[i];
	argv[n++] = m->path;
	argv[n] = NULL;

	m->pid = fsh_spawn(argv, m->err, NULL);
	if (m->pid < 0)
		return -1;
	mnt_track(m);
	m->mounted = true;
	if (fsh_wait_mount(m->path, &m->pid, m->err, 30)) {
		m->mounted = m->pid > 0;
		return -1;
	}
	return 0;
}

/* ---- a test program's main ------------------------------------------- */

static struct mnt *main_mnt_of_run;

static void fsh_main_cleanup(void)
{
	mnt_cleanup_all();
	if (main_mnt_of_run)
		mnt_cleanup(main_mnt_of_run);
}

static void fsh_main_signal(int sig)
{
	fsh_main_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

int fsh_main(const char *prog, struct mnt *m, const char *const *args, const char **path,
	     int argc, char **argv, void (*register_tests)(void))
{
	int r = fsh_preflight(prog), st;

	if (r)
		return r;
	main_mnt_of_run = m;
	atexit(fsh_main_cleanup);
	signal(SIGINT, fsh_main_signal);
	signal(SIGTERM, fsh_main_signal);
	signal(SIGPIPE, SIG_IGN);
	if (mnt_start(m, args)) {
		fsh_main_cleanup();
		fprintf(stderr, "FAIL: cannot mount vmmfs\n");
		return 1;
	}
	*path = m->path;
	r = vt_main(argc, argv, register_tests);
	st = mnt_stop(m);
	if (st != 0) {
		char *t = slurp(m->err, NULL);

		fprintf(stderr, "FAIL: vmmfs exited with status %d after unmount; its stderr:\n%s\n",
			st, t ? t : "");
		free(t);
		r = 1;
	}
	if (!mnt_stderr_clean(m))
		r = 1;
	fsh_main_cleanup();
	return r;
}
