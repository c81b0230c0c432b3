/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets under `make check` (tests/fuzz/fuzz.h):
 *
 *  replay    every seed-corpus and regression file of each target, run
 *            through the target's body built with the normal compiler, one
 *            child process and one assertion per file (a crash, an
 *            invariant broken or a leak fails that file only);
 *  libfuzzer the libFuzzer builds of both targets (tests/libfuzzer/, made
 *            by `make fuzz-bin` with clang), run at the same time for
 *            VMMFS_FUZZ_SECONDS (default 60) seconds each from the seed
 *            corpora; each must exit 0, and the executions it ran are
 *            printed. Without those builds the test fails and names the
 *            packages that provide clang and libFuzzer.
 *
 * `./test_fuzz replay` or `./test_fuzz libfuzzer` runs one suite.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, strsignal */
#endif
#include "helper.h"
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TESTS_SRCDIR
#define TESTS_SRCDIR "tests"
#endif
#ifndef FUZZ_BIN_DIR
#define FUZZ_BIN_DIR "tests/libfuzzer"
#endif

#define REPLAY_TIMEOUT_S 120   /* one file, under ASan */
#define FUZZ_PACKAGES "clang libclang-rt-14-dev"

struct target {
	const char *name;         /* fuzz_mapfile */
	const char *corpus;       /* tests/fuzz/corpus_mapfile */
	const char *regressions;  /* tests/fuzz/regressions/mapfile */
	int (*one)(const uint8_t *data, size_t size);
};

static const struct target targets[] = {
	{ "fuzz_mapfile", TESTS_SRCDIR "/fuzz/corpus_mapfile", TESTS_SRCDIR "/fuzz/regressions/mapfile",
	  vmmfs_fuzz_mapfile_one },
	{ "fuzz_vmm", TESTS_SRCDIR "/fuzz/corpus_vmm", TESTS_SRCDIR "/fuzz/regressions/vmm",
	  vmmfs_fuzz_vmm_one },
};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

/* ---- replay ---------------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return -errno;
	do {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap ? 2 * cap : 4096);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap ? 2 * cap : 4096;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n);
	fclose(f);
	*data = buf;
	*size = len;
	return 0;
}

static int skip_name(const struct dirent *d)
{
	return d->d_name[0] != '.' && strncmp(d->d_name, "README", 6) != 0;
}

/* Runs one file through t in a child; true when the child exited 0. */
static bool replay_one(const struct target *t, const char *path, char *why, size_t whylen)
{
	uint8_t *data = NULL;
	size_t size = 0;
	pid_t pid;
	int r, status;

	r = read_file(path, &data, &size);
	if (r) {
		snprintf(why, whylen, "cannot read it: %s", strerror(-r));
		return false;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		free(data);
		return false;
	}
	if (pid == 0) {
		alarm(REPLAY_TIMEOUT_S);
		t->one(data, size);
		free(data);
		exit(0); /* runs LeakSanitizer in a sanitizer build */
	}
	free(data);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, whylen, "waitpid: %s", strerror(errno));
			return false;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		snprintf(why, whylen, "killed by signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)),
			 WTERMSIG(status) == SIGALRM ? ": took too long" : "");
	else
		snprintf(why, whylen, "exit status %d", WEXITSTATUS(status));
	return false;
}

/* Replays every file of dir; returns the number of files. */
static int replay_dir(const struct target *t, const char *dir, bool must_exist)
{
	struct dirent **names;
	int n, i;

	n = scandir(dir, &names, skip_name, alphasort);
	if (n < 0) {
		if (must_exist) {
			fprintf(stderr, "\n  %s: cannot list %s: %s\n", t->name, dir, strerror(errno));
			CU_FAIL("seed corpus directory missing");
		}
		return 0;
	}
	for (i = 0; i < n; i++) {
		char path[4096], why[160] = "", msg[4400];
		bool ok;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		ok = replay_one(t, path, why, sizeof(why));
		if (!ok)
			fprintf(stderr, "\n  %s: %s: %s\n", t->name, path, why);
		snprintf(msg, sizeof(msg), "%s replays %s", t->name, path);
		CU_assertImplementation(ok, __LINE__, msg, __FILE__, "", CU_FALSE);
		free(names[i]);
	}
	free(names);
	return n;
}

static void replay_target(const struct target *t)
{
	int seeds = replay_dir(t, t->corpus, true);
	int regs = replay_dir(t, t->regressions, false);

	printf("\n  %s: replayed %d seed and %d regression inputs ", t->name, seeds, regs);
	fflush(stdout);
	CU_ASSERT(seeds > 0);
}

static void test_replay_mapfile(void)
{
	replay_target(&targets[0]);
}

static void test_replay_vmm(void)
{
	replay_target(&targets[1]);
}

/* ---- short libFuzzer runs ------------------------------------------------------------------ */

struct run {
	const struct target *t;
	char bin[4096], log[4096], scratch[4096], artifacts[4096];
	pid_t pid;
	int status;
	double secs;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static bool start_run(struct run *r, unsigned int seconds)
{
	char maxt[32], art[4200];
	int fd;

	snprintf(r->bin, sizeof(r->bin), "%s/%s", FUZZ_BIN_DIR, r->t->name);
	snprintf(r->log, sizeof(r->log), "%s/check-%s.log", FUZZ_BIN_DIR, r->t->name);
	snprintf(r->scratch, sizeof(r->scratch), "%s/check-%s-XXXXXX", FUZZ_BIN_DIR, r->t->name);
	snprintf(r->artifacts, sizeof(r->artifacts), "%s/artifacts", FUZZ_BIN_DIR);
	if (access(r->bin, X_OK)) {
		fprintf(stderr, "\n  %s: no libFuzzer build at %s.\n"
			"  It is made by `make fuzz-bin` (and by `make check`) with clang; "
			"configure --enable-fuzzing CC=clang makes it part of `make`.\n"
			"  It needs clang with libFuzzer: on Debian, apt-get install " FUZZ_PACKAGES
			" (scripts/deps.sh)\n", r->t->name, r->bin);
		return false;
	}
	if (!mkdtemp(r->scratch) || (mkdir(r->artifacts, 0755) && errno != EEXIST)) {
		fprintf(stderr, "\n  %s: cannot make %s or %s: %s\n", r->t->name, r->scratch,
			r->artifacts, strerror(errno));
		return false;
	}
	snprintf(maxt, sizeof(maxt), "-max_total_time=%u", seconds);
	snprintf(art, sizeof(art), "-artifact_prefix=%s/%s-", r->artifacts, r->t->name);
	fflush(stdout);
	fflush(stderr);
	r->pid = fork();
	if (r->pid < 0)
		return false;
	if (r->pid == 0) {
		fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		/* new units go to the scratch directory; the seeds and the
		 * regression inputs are read only */
		char *argv[] = { r->bin, maxt, "-print_final_stats=1", "-timeout=60",
				 "-rss_limit_mb=2560", art, r->scratch, (char *)r->t->corpus,
				 (char *)r->t->regressions, NULL };
		if (access(r->t->regressions, R_OK))
			argv[8] = NULL;
		execv(r->bin, argv);
		_exit(127);
	}
	return true;
}

static uint64_t log_stat(const char *log, const char *key)
{
	char line[1024];
	uint64_t v = 0;
	size_t klen = strlen(key);
	FILE *f = fopen(log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen))
			v = strtoull(line + klen, NULL, 10);
	fclose(f);
	return v;
}

static void print_tail(const char *log, int lines)
{
	char buf[1024];
	long pos;
	int nl = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	for (pos = ftell(f) - 1; pos > 0; pos--) {
		fseek(f, pos, SEEK_SET);
		if (fgetc(f) == '\n' && ++nl > lines)
			break;
	}
	fseek(f, pos > 0 ? pos + 1 : 0, SEEK_SET);
	while (fgets(buf, sizeof(buf), f))
		fprintf(stderr, "    | %s", buf);
	fclose(f);
}

static void test_libfuzzer_runs(void)
{
	struct run runs[NTARGETS];
	const char *env = getenv("VMMFS_FUZZ_SECONDS");
	unsigned int seconds = env && *env ? (unsigned int)strtoul(env, NULL, 10) : 60;
	struct timespec t0, t1;
	size_t i;

	if (!seconds)
		seconds = 1;
	memset(runs, 0, sizeof(runs));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* both at once: one core each */
	for (i = 0; i < NTARGETS; i++) {
		runs[i].t = &targets[i];
		runs[i].pid = -1;
		if (!start_run(&runs[i], seconds))
			runs[i].pid = -1;
	}
	for (i = 0; i < NTARGETS; i++) {
		struct run *r = &runs[i];
		uint64_t execs, rate;
		char msg[256];
		bool ok;

		if (r->pid <= 0) {
			snprintf(msg, sizeof(msg), "%s: libFuzzer build present and runnable "
				 "(needs " FUZZ_PACKAGES ")", r->t->name);
			CU_assertImplementation(false, __LINE__, msg, __FILE__, "", CU_FALSE);
			continue;
		}
		while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
			;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		r->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		execs = log_stat(r->log, "stat::number_of_executed_units:");
		rate = log_stat(r->log, "stat::average_exec_per_sec:");
		ok = WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
		printf("\n  %s: %llu executions in %u s (%llu/s), %s ", r->t->name,
		       (unsigned long long)execs, seconds, (unsigned long long)rate,
		       ok ? "no crash" : "FAILED");
		fflush(stdout);
		if (!ok) {
			fprintf(stderr, "\n  %s exited with %s %d; crash inputs are kept in %s; "
				"last lines of %s:\n", r->t->name,
				WIFSIGNALED(r->status) ? "signal" : "status",
				WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status),
				r->artifacts, r->log);
			print_tail(r->log, 40);
		}
		nftw(r->scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		snprintf(msg, sizeof(msg), "%s runs %u s under libFuzzer and exits 0", r->t->name,
			 seconds);
		CU_assertImplementation(ok, __LINE__, msg, __FILE__, "", CU_FALSE);
		snprintf(msg, sizeof(msg), "%s reports its executions", r->t->name);
		CU_assertImplementation(execs > 0, __LINE__, msg, __FILE__, "", CU_FALSE);
	}
}

static void register_tests(void)
{
	static const struct vt_test replay[] = {
		{ "corpus and regressions: mapping-file parser", test_replay_mapfile },
		{ "corpus and regressions: VMM API", test_replay_vmm },
		{ NULL, NULL },
	};
	static const struct vt_test libfuzzer[] = {
		{ "short runs of both targets", test_libfuzzer_runs },
		{ NULL, NULL },
	};

	vt_add_suite("replay", replay);
	vt_add_suite("libfuzzer", libfuzzer);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
