/* SPDX-License-Identifier: MIT */
/*
 * Real mounts of the daemon for the integration tests (test_fs, test_crash,
 * test_perm, test_robust): start VMMFS_BIN, wait for the mount, unmount,
 * wait for the exit status, check its stderr for sanitizer reports; and the
 * small file helpers those tests share.
 *
 * fs_helper.c is compiled into each of these programs with that program's
 * -DVMMFS_BIN.
 */
#ifndef VMMFS_TEST_FS_HELPER_H
#define VMMFS_TEST_FS_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- small helpers --------------------------------------------------- */

double now(void);                       /* CLOCK_MONOTONIC, seconds */
void sleep_ms(unsigned int ms);
/* snprintf into buf; returns buf. */
char *pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole file read with read(2), NUL-terminated; NULL and errno on failure. */
char *slurp(const char *path, size_t *lenp);
/* The value after "key" at the start of a line, as a number (0x or decimal). */
bool kv_u64(const char *text, const char *key, uint64_t *v);
/* The value after "key" as a string (to the end of the line). */
bool kv_str(const char *text, const char *key, char *out, size_t outlen);
/* The file's "key" value (key NULL: the whole file as a number); UINT64_MAX
 * if it cannot be read. */
uint64_t file_u64(const char *path, const char *key);
bool exists(const char *path);
/* Creates path (O_EXCL), writes the pieces (NULL-terminated), closes.
 * Returns 0 or the errno of the first failing step; *stage says which
 * ("open", "write", "close"). */
int map_write(const char *path, const char *const *pieces, const char **stage);
int map_text(const char *path, const char *text);

/* ---- processes and mounts -------------------------------------------- */

bool is_mounted(const char *path);
/* fusermount3 -u, else umount -l; nothing if not mounted. */
void fsh_unmount(const char *path);
/* Shows the daemon's stderr (file errfile) if it holds a sanitizer report;
 * returns whether it was clean. */
bool fsh_stderr_clean(const char *errfile);
/* Forks and execs argv (argv[0] the program) with stdout and stderr into
 * errfile, after setting ("NAME=VALUE") or unsetting ("NAME") the
 * variables of env (NULL-terminated, may be NULL). The child gets SIGTERM
 * if the test dies. Returns the pid or -1. */
pid_t fsh_spawn(const char *const *argv, const char *errfile, const char *const *env);
/* Waits until mnt is mounted and its README exists. Returns 0, or -1 when
 * the daemon exited first (its stderr shown, *pid = 0) or timeout_s passed. */
int fsh_wait_mount(const char *mnt, pid_t *pid, const char *errfile, double timeout_s);
/* Waits for *pid to exit; returns its exit status, or -1 (a signal, or
 * killed with SIGKILL after timeout_s). *pid = 0 afterwards. */
int fsh_wait_exit(pid_t *pid, double timeout_s);
/* Runs "VMMFS_BIN args" to completion (options that make it exit): its
 * exit status and its output (stdout and stderr, NUL-terminated). */
int fsh_run_daemon(const char *args, char *out, size_t outlen);
/* Root, /dev/fuse, fusermount3 and the daemon, or a clear reason: returns 0
 * to run, 77 to skip (VMMFS_ALLOW_SKIP_FS=1), 1 to fail. */
int fsh_preflight(const char *prog);

/* One daemon of the test, started with VMMFS_BIN -f ARGS MOUNTPOINT in a
 * temporary folder of its own. */
struct mnt {
	char dir[256];      /* temp dir holding the mountpoint and the daemon's stderr */
	char path[300];     /* the mountpoint */
	char err[300];      /* daemon stderr */
	pid_t pid;
	bool mounted;
};

/* Starts the daemon (args NULL-terminated) and waits until it is mounted.
 * Returns 0, or -1 with the daemon's stderr shown. The mount is tracked
 * for mnt_cleanup_all until mnt_stop. */
int mnt_start(struct mnt *m, const char *const *args);
void mnt_unmount(struct mnt *m);
/* Waits for the daemon: its exit status, or -1 (killed after timeout_s, or
 * died by a signal). */
int mnt_wait(struct mnt *m, double timeout_s);
bool mnt_stderr_clean(struct mnt *m);
/* Unmounts and returns the daemon's exit status. */
int mnt_stop(struct mnt *m);
/* Stops it if needed and removes its folder. */
void mnt_cleanup(struct mnt *m);
/* Tracks a mount made some other way (mount(8)) for mnt_cleanup_all. */
void mnt_track(struct mnt *m);
void mnt_untrack(struct mnt *m);
/* Cleans up every tracked mount (atexit, signals). */
void mnt_cleanup_all(void);

/* The main of a test program whose tests share one mount m: preflight
 * (prog names the program in its messages), the daemon started with args,
 * *path set to the mountpoint, vt_main, unmount, and a check that the
 * daemon exited 0 with a clean stderr. Every mount is cleaned up at exit
 * and on SIGINT/SIGTERM. Returns main's exit status. */
int fsh_main(const char *prog, struct mnt *m, const char *const *args, const char **path,
	     int argc, char **argv, void (*register_tests)(void));

#endif
