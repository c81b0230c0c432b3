/* SPDX-License-Identifier: MIT */
/*
 * Robustness of a real mount (issue 7, "Limits"): clients that die in the
 * middle of a write or a read, many parallel opens of one file, reads and
 * writes at absurd offsets, and the caps (mapping files per address space,
 * name lengths, translate/ names of any length).
 *
 * What a killed writer leaves: the kernel closes the files of a process
 * that dies, and that close is a close like any other (FUSE gets the same
 * FLUSH and RELEASE): the mapping file is committed with what was written
 * up to then, as DESIGN.md says ("the mapping is made when the writer
 * closes the file"). So the test checks that a killed writer leaves exactly
 * what a writer that wrote the same bytes and closed leaves (the same
 * mapping, or the same refusal, nothing and one log line), that the daemon
 * stays up, and that state and VRAM are consistent afterwards.
 *
 * Already covered by tests/fs_test.c and not repeated here: the 64 MiB text
 * cap (map_errors), the 256 address-space cap (vas_dirs), names of 200 and
 * 400 bytes in vas/ and translate/ (vas_dirs, translate_names), the log's
 * cap (log_bounded), offsets just past the end of mem and vram/raw (mem).
 *
 * The daemon runs under ASan in make check: every mount must exit 0 with a
 * clean stderr (no leak, no error) when it is unmounted.
 *
 * Needs root, /dev/fuse and fusermount3 (FAILS otherwise, unless
 * VMMFS_ALLOW_SKIP_FS=1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helper.h"
#include "fs_helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VMMFS_BIN
#error "VMMFS_BIN must name the daemon binary"
#endif

#define VRAM_SIZE (256ull << 20)
#define VA_SIZE (1ull << 49)      /* ga102 */
#define MAX_MAPS 65536            /* FS_MAX_MAPS, vmmfs(8) LIMITS */
#define MAX_NAME 128              /* FS_MAX_NAME */

static struct mnt main_mnt;
static const char *M;

#define P(...) pathf((char[512]){ 0 }, 512, "%s/" __VA_ARGS__)

/* ---- helpers --------------------------------------------------------- */

static size_t count_substr(const char *t, const char *needle)
{
	size_t n = 0;

	while (t && (t = strstr(t, needle))) {
		n++;
		t += strlen(needle);
	}
	return n;
}

/* Log lines that appeared since before. While the ring (1024 lines) is not
 * full, they follow before's lines; after that, they follow before's last
 * line (with its millisecond time stamp), found again. */
static char *log_since(const char *before)
{
	char *t = slurp(P("log", M), NULL), *out;
	const char *p = t, *tail;
	size_t bl = before ? strlen(before) : 0, nb = 0, i;

	if (!t || !bl)
		return t;
	for (i = 0; i < bl; i++)
		nb += before[i] == '\n';
	if (nb < 1000) {
		for (i = 0; p && i < nb; i++) {
			p = strchr(p, '\n');
			if (p)
				p++;
		}
	} else {
		tail = before + bl - 1;
		while (tail > before && tail[-1] != '\n')
			tail--;
		p = strstr(t, tail);
		if (p)
			p += strlen(tail);
	}
	out = strdup(p ? p : t);
	free(t);
	return out;
}

static bool daemon_alive(struct mnt *m)
{
	char p[512];

	return m->pid > 0 && kill(m->pid, 0) == 0 &&
	       file_u64(pathf(p, sizeof(p), "%s/gpu/vram_size", m->path), NULL) != UINT64_MAX;
}

/* What must be as it was when nothing was mapped or unmapped. */
struct snap {
	char *vstats, *usage, *pagetable, *maps_ls;
};

static char *listing(const char *path)
{
	char *out = calloc(1, 8192);
	struct dirent *de;
	size_t len = 0;
	DIR *d = opendir(path);

	if (!d || !out) {
		if (d)
			closedir(d);
		return out;
	}
	while ((de = readdir(d)))
		if (len < 8000)
			len += (size_t)snprintf(out + len, 8000 - len, "%s ", de->d_name);
	closedir(d);
	return out;
}

/* vas/NAME/stats without the counters that every op moves */
static char *vas_state(const char *as)
{
	static const char *const keys[] = { "pt_pages", "mapped_pages", "mappings", "pending",
		"va_free", "quarantined_pages", NULL };
	char p[512], *t = slurp(pathf(p, sizeof(p), "%s/vas/%s/stats", M, as), NULL);
	char *out = calloc(1, 512);
	size_t len = 0, i;
	uint64_t v;

	for (i = 0; t && out && keys[i]; i++)
		if (kv_u64(t, keys[i], &v))
			len += (size_t)snprintf(out + len, 512 - len, "%s %llu\n", keys[i],
						(unsigned long long)v);
	free(t);
	return out;
}

static void snap_take(const char *as, struct snap *s)
{
	char p[512];

	s->vstats = vas_state(as);
	s->usage = slurp(P("vram/usage", M), NULL);
	s->pagetable = slurp(pathf(p, sizeof(p), "%s/vas/%s/pagetable", M, as), NULL);
	s->maps_ls = listing(pathf(p, sizeof(p), "%s/vas/%s/maps", M, as));
}

static void snap_free(struct snap *s)
{
	free(s->vstats);
	free(s->usage);
	free(s->pagetable);
	free(s->maps_ls);
	memset(s, 0, sizeof(*s));
}

#define SNAP_EQ(field) do { \
	const char *__a = a->field ? a->field : "(unreadable)", *__b = b->field ? b->field : "(none)"; \
	if (strcmp(__a, __b)) \
		fprintf(stderr, "  %s changed:\n--- before\n%.2000s\n--- after\n%.2000s\n", \
			#field, __a, __b); \
	CU_ASSERT_STRING_EQUAL(__a, __b); } while (0)

static void snap_same(const struct snap *a, const struct snap *b)
{
	SNAP_EQ(vstats);
	SNAP_EQ(usage);
	SNAP_EQ(pagetable);
	SNAP_EQ(maps_ls);
}

/* The description without the lines that depend on where it is (va) and
 * on its neighbours (ptes). */
static char *desc_core(const char *path)
{
	char *t = slurp(path, NULL), *out, *line;
	size_t len = 0;

	if (!t)
		return NULL;
	out = calloc(1, strlen(t) + 1);
	for (line = strtok(t, "\n"); out && line; line = strtok(NULL, "\n"))
		if (strncmp(line, "va ", 3) && strncmp(line, "ptes ", 5))
			len += (size_t)sprintf(out + len, "%s\n", line);
	free(t);
	return out;
}

/* ---- a client that disappears ---------------------------------------- */

/* A child opens path for a new mapping, writes the pieces, tells the
 * parent, and sleeps until SIGKILL. Returns 0 or the child's failure. */
static int killed_writer(const char *path, const char *const *pieces)
{
	int pfd[2], st;
	char c = 0;
	pid_t pid;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

		close(pfd[0]);
		if (fd < 0)
			_exit(2);
		for (; *pieces; pieces++)
			if (write(fd, *pieces, strlen(*pieces)) != (ssize_t)strlen(*pieces))
				_exit(3);
		if (write(pfd[1], "w", 1) != 1)
			_exit(4);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		c = 0;
	close(pfd[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (c != 'w') {
		fprintf(stderr, "  the writer of %s failed before the kill (status 0x%x)\n", path, st);
		return -1;
	}
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? 0 : -1;
}

/* Waits (release comes after close) until path is gone. */
static bool gone_soon(const char *path)
{
	double end = now() + 5;

	while (exists(path) && now() < end)
		sleep_ms(10);
	return !exists(path);
}

/* Each variant: the killed writer of vas/0/maps/NAME against a writer of
 * the same bytes that closes, in vas/ref/maps/NAME. */
static void test_killed_writer(void)
{
	static const struct {
		const char *name;
		const char *const pieces[4];
		int err;            /* what the reference close gives */
	} cases[] = {
		/* half a list: the range's end is cut: backwards */
		{ "k_half_list", { "0x100-0x1", NULL }, EINVAL },
		/* half a word */
		{ "k_half_word", { "0x100 al", NULL }, EINVAL },
		/* half an option */
		{ "k_half_opt", { "va=", NULL }, EINVAL },
		/* nothing but options */
		{ "k_only_opts", { "ro\n", "va=0x40000000\n", NULL }, EINVAL },
		/* half a line: what is there is a mapping */
		{ "k_half_line", { "ro 0x200 0x20", NULL }, 0 },
		/* a line, then the writer sleeps until killed */
		{ "k_line", { "0x300-0x30f\n", NULL }, 0 },
		/* several writes, the last cut in a number */
		{ "k_pieces", { "0x400-0x40f\n", "0x420-0x42", "f 0x43", NULL }, 0 },
	};
	struct snap before, after;
	char path[512], ref[512], *log0, *news;
	size_t i;

	VT_EQ_INT(mkdir(P("vas/ref", M), 0755), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *stage;
		int e;

		pathf(path, sizeof(path), "%s/vas/0/maps/%s", M, cases[i].name);
		pathf(ref, sizeof(ref), "%s/vas/ref/maps/%s", M, cases[i].name);
		snap_take("0", &before);
		log0 = slurp(P("log", M), NULL);

		VT_EQ_INT(killed_writer(path, cases[i].pieces), 0);
		CU_ASSERT_TRUE_FATAL(daemon_alive(&main_mnt));
		e = map_write(ref, cases[i].pieces, &stage);
		if (e != cases[i].err)
			fprintf(stderr, "  %s: the reference writer got %s at %s\n", cases[i].name,
				strerror(e), stage);
		VT_EQ_INT(e, cases[i].err);

		news = log_since(log0);
		if (cases[i].err) {
			/* refused: nothing left, not a trace, one line each */
			CU_ASSERT_TRUE(gone_soon(path));
			CU_ASSERT_FALSE(exists(ref));
			snap_take("0", &after);
			snap_same(&before, &after);
			snap_free(&after);
			pathf(path, sizeof(path), "vas/0/maps/%s: not mapped: ", cases[i].name);
			pathf(ref, sizeof(ref), "vas/ref/maps/%s: not mapped: ", cases[i].name);
			VT_EQ_INT(count_substr(news, path), 1);
			VT_EQ_INT(count_substr(news, ref), 1);
			pathf(path, sizeof(path), "vas/0/maps/%s:", cases[i].name);
			VT_EQ_INT(count_substr(news, path), 1);
			/* and says the same as the reference's */
			pathf(ref, sizeof(ref), "vas/ref/maps/%s:", cases[i].name);
			{
				const char *a = news ? strstr(news, path) : NULL;
				const char *b = news ? strstr(news, ref) : NULL;
				size_t la = a ? strcspn(a + strlen(path), "\n") : 0;
				size_t lb = b ? strcspn(b + strlen(ref), "\n") : 0;

				CU_ASSERT_FATAL(a && b);
				if (la != lb || memcmp(a + strlen(path), b + strlen(ref), la))
					fprintf(stderr, "  killed: %.*s\n  closed: %.*s\n", (int)la,
						a + strlen(path), (int)lb, b + strlen(ref));
				CU_ASSERT(la == lb && !memcmp(a + strlen(path), b + strlen(ref), la));
			}
			/* the name is free again */
			pathf(path, sizeof(path), "%s/vas/0/maps/%s", M, cases[i].name);
			VT_EQ_INT(map_text(path, "0x500\n"), 0);
			VT_EQ_INT(unlink(path), 0);
		} else {
			/* made, as the reference: same pages, access, and the GPU agrees */
			char *a = desc_core(path), *b = desc_core(ref);
			uint64_t va = file_u64(path, "va"), pages = file_u64(path, "pages");
			char x[512], *t;

			CU_ASSERT_PTR_NOT_NULL(a);
			CU_ASSERT_STRING_EQUAL(a ? a : "(no mapping)", b ? b : "(no reference)");
			free(a);
			free(b);
			CU_ASSERT(pages > 0 && pages < 64);
			t = slurp(pathf(x, sizeof(x), "%s/vas/0/translate/0x%llx", M,
					(unsigned long long)(va + (pages - 1) * 4096)), NULL);
			{
				char hw[32] = "", st[32] = "";

				CU_ASSERT_TRUE(t && kv_str(t, "state", st, sizeof(st)) &&
					       kv_str(t, "hw", hw, sizeof(hw)));
				CU_ASSERT_STRING_EQUAL(st, "mapped");
				CU_ASSERT_STRING_EQUAL(hw, "mapped");
			}
			free(t);
			pathf(x, sizeof(x), "vas/0/maps/%s: mapped %llu pages", cases[i].name,
			      (unsigned long long)pages);
			VT_EQ_INT(count_substr(news, x), 1);
			pathf(x, sizeof(x), "vas/0/maps/%s:", cases[i].name);
			VT_EQ_INT(count_substr(news, x), 1);
			VT_EQ_INT(unlink(path), 0);
			VT_EQ_INT(unlink(ref), 0);
			snap_take("0", &after);
			snap_same(&before, &after);
			snap_free(&after);
		}
		free(news);
		free(log0);
		snap_free(&before);
	}

	/* a writer that made the file and died before writing: nothing */
	{
		const char *const none[] = { NULL };

		pathf(path, sizeof(path), "%s/vas/0/maps/k_nothing", M);
		snap_take("0", &before);
		VT_EQ_INT(killed_writer(path, none), 0);
		CU_ASSERT_TRUE(gone_soon(path));
		snap_take("0", &after);
		snap_same(&before, &after);
		snap_free(&before);
		snap_free(&after);
	}
	VT_EQ_INT(rmdir(P("vas/ref", M)), 0);
}

/* A writer killed at a random moment of a stream of writes: whatever was
 * written in whole writes before the kill is the mapping (every write is
 * whole lines here), the counters agree with it, and rm restores
 * everything. */
static void test_killed_streaming_writer(void)
{
	struct snap before, after;
	char path[512];
	int round, made = 0;
	uint64_t most = 0;

	vt_seed("killed streaming writer");
	pathf(path, sizeof(path), "%s/vas/0/maps/k_stream", M);
	snap_take("0", &before);
	for (round = 0; round < 6; round++) {
		unsigned int delay = (unsigned int)vt_rand_below(60);
		uint64_t pages, mapped;
		pid_t pid = fork();
		int st;

		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			static const char line[] = "0x1000-0x1fff\n"; /* 4096 pages a write */
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

			if (fd < 0)
				_exit(2);
			/* until killed; at the page cap (EFBIG) it waits for the kill */
			while (write(fd, line, sizeof(line) - 1) == sizeof(line) - 1)
				;
			for (;;)
				pause();
		}
		sleep_ms(delay);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		CU_ASSERT_TRUE_FATAL(daemon_alive(&main_mnt));
		if (!exists(path)) {
			/* killed before its first write: nothing */
			snap_take("0", &after);
			snap_same(&before, &after);
			snap_free(&after);
			continue;
		}
		pages = file_u64(path, "pages");
		mapped = file_u64(P("vas/0/stats", M), "mapped_pages");
		CU_ASSERT(pages != UINT64_MAX && pages % 4096 == 0 && pages > 0);
		VT_EQ_U64(mapped, pages);
		made++;
		if (pages > most)
			most = pages;
		{
			char *t = slurp(path, NULL);
			CU_ASSERT_PTR_NOT_NULL(t && strstr(t, "\npfns   0x1000-0x1fff") ? t : NULL);
			free(t);
		}
		VT_EQ_INT(unlink(path), 0);
		snap_take("0", &after);
		snap_same(&before, &after);
		snap_free(&after);
	}
	printf("\n  6 writers killed, %d left a mapping, the largest %llu pages\n", made,
	       (unsigned long long)most);
	snap_free(&before);
}

/* Readers of a big pagetable and of a big description killed mid-read: the
 * streams' producers stop, and maps, rm and reads go on. */
static void test_killed_reader(void)
{
	char path[512], *t;
	int k;

	/* a scattered mapping: a long pagetable and a long description */
	{
		size_t len = 0, cap = 1 << 20;
		char *text = malloc(cap);
		uint64_t i;

		CU_ASSERT_PTR_NOT_NULL_FATAL(text);
		for (i = 0; i < 20000; i++)
			len += (size_t)snprintf(text + len, cap - len, "0x%llx\n",
						(unsigned long long)(0x1000 + 2 * i));
		VT_EQ_INT(map_text(P("vas/0/maps/big", M), text), 0);
		free(text);
	}
	for (k = 0; k < 4; k++) {
		const char *what = k % 2 ? "vas/0/maps/big" : "vas/0/pagetable";
		int pfd[2], st;
		char c = 0;
		pid_t pid;

		pathf(path, sizeof(path), "%s/%s", M, what);
		CU_ASSERT_FATAL(pipe(pfd) == 0);
		pid = fork();
		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			char buf[4096];
			int fd = open(path, O_RDONLY);

			close(pfd[0]);
			if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
				_exit(2);
			if (write(pfd[1], "r", 1) != 1)
				_exit(3);
			for (;;)
				pause();
		}
		close(pfd[1]);
		CU_ASSERT(read(pfd[0], &c, 1) == 1 && c == 'r');
		close(pfd[0]);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		CU_ASSERT_TRUE_FATAL(daemon_alive(&main_mnt));
		/* nothing waits for the dead reader */
		VT_EQ_INT(map_text(P("vas/0/maps/after", M), "0x700\n"), 0);
		VT_EQ_INT(unlink(P("vas/0/maps/after", M)), 0);
	}
	t = slurp(P("vas/0/pagetable", M), NULL);
	CU_ASSERT_PTR_NOT_NULL(t);
	free(t);
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
}

/* ---- many parallel opens --------------------------------------------- */

#define NTHREADS 64

struct par {
	pthread_barrier_t *bar;
	const char *path;
	int mode;              /* which test */
	int err;               /* 0: opened (and for writers: mapped) */
	char *text;
	size_t len;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	int fd;

	pthread_barrier_wait(p->bar);
	switch (p->mode) {
	case 0: /* create exclusively and map */
	case 1: /* create (not exclusive) and map */
		fd = open(p->path, O_WRONLY | O_CREAT | (p->mode == 0 ? O_EXCL : 0), 0644);
		if (fd < 0) {
			p->err = errno;
			return NULL;
		}
		if (write(fd, "0x800-0x80f\n", 12) != 12)
			p->err = errno;
		if (close(fd) && !p->err)
			p->err = errno;
		return NULL;
	default: /* read it all */
		p->text = slurp(p->path, &p->len);
		if (!p->text)
			p->err = errno;
		return NULL;
	}
}

static void run_par(const char *path, int mode, struct par *ps)
{
	pthread_t th[NTHREADS];
	pthread_barrier_t bar;
	int i;

	pthread_barrier_init(&bar, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		ps[i] = (struct par){ .bar = &bar, .path = path, .mode = mode };
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, par_main, &ps[i]) == 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
}

/* Removes the line that starts with key (and its newline) from text. */
static void drop_line(char *text, const char *key)
{
	size_t klen = strlen(key);
	char *p = text;

	while (p && *p) {
		char *nl = strchr(p, '\n');

		if (!strncmp(p, key, klen)) {
			char *rest = nl ? nl + 1 : p + strlen(p);

			memmove(p, rest, strlen(rest) + 1);
			return;
		}
		p = nl ? nl + 1 : NULL;
	}
}

static void test_parallel_opens(void)
{
	static struct par ps[NTHREADS];
	static const char *const readers[] = { "vas/0/maps/par", "vas/0/pagetable", "vas/0/stats",
		"stats", "vram/usage", "vas/0/translate/0x0", "README", NULL };
	const char *const *f;
	int i, ok, eexist, ebusy, mode;
	char *log0, *news;

	for (mode = 0; mode < 2; mode++) {
		log0 = slurp(P("log", M), NULL);
		run_par(P("vas/0/maps/par", M), mode, ps);
		ok = eexist = ebusy = 0;
		for (i = 0; i < NTHREADS; i++) {
			ok += ps[i].err == 0;
			eexist += ps[i].err == EEXIST;
			ebusy += ps[i].err == EBUSY;
		}
		/* exactly one mapping; with O_EXCL the others find the name
		 * taken, without it they find a file that is written once */
		if (ok != 1 || (mode == 0 ? eexist : ebusy) != NTHREADS - 1)
			fprintf(stderr, "  mode %d: %d mapped, %d EEXIST, %d EBUSY\n", mode, ok,
				eexist, ebusy);
		VT_EQ_INT(ok, 1);
		VT_EQ_INT(mode == 0 ? eexist : ebusy, NTHREADS - 1);
		VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), 1);
		VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 16);
		news = log_since(log0);
		VT_EQ_INT(count_substr(news, "vas/0/maps/par: mapped 16 pages"), 1);
		if (mode == 1) /* each EBUSY: one line */
			VT_EQ_INT(count_substr(news, "vas/0/maps/par: not opened"), NTHREADS - 1);
		free(news);
		free(log0);
		if (mode == 0)
			VT_EQ_INT(unlink(P("vas/0/maps/par", M)), 0);
	}

	/* readers of every kind of file at once: all get the same text */
	for (f = readers; *f; f++) {
		char *want = slurp(P("%s", M, *f), NULL);

		CU_ASSERT_PTR_NOT_NULL_FATAL(want);
		if (strstr(*f, "translate/")) {
			CU_ASSERT_PTR_NOT_NULL(strstr(want, "hw_tlb"));
			drop_line(want, "hw_tlb");
		}
		run_par(P("%s", M, *f), 2, ps);
		for (i = 0; i < NTHREADS; i++) {
			CU_ASSERT(ps[i].err == 0 && ps[i].text);
			/* stats count the register accesses of the readers themselves,
			 * and translate's hw_tlb line says whether the GPU's TLB had the
			 * translation, which depends on what the other readers did */
			if (strcmp(*f, "stats") && ps[i].text && strstr(*f, "translate/"))
				drop_line(ps[i].text, "hw_tlb");
			if (strcmp(*f, "stats") && ps[i].text && strcmp(ps[i].text, want)) {
				fprintf(stderr, "  %s: reader %d got\n%.300s\nexpected\n%.300s\n", *f, i,
					ps[i].text, want);
				CU_FAIL("parallel reader");
			}
			free(ps[i].text);
		}
		free(want);
	}
	VT_EQ_INT(unlink(P("vas/0/maps/par", M)), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
}

/* ---- absurd offsets -------------------------------------------------- */

static void test_absurd_offsets(void)
{
	const size_t huge = 1ull << 30;
	char buf[64];
	int mem, raw, pt, mf, xl, w;
	char *big, *log0, *news;
	ssize_t n;

	/* the last page of the VA and of VRAM */
	VT_EQ_INT(map_text(P("vas/0/maps/last", M), "va=0x1fffffffff000 0xf000\n"), 0);
	VT_EQ_INT(map_text(P("vas/0/maps/four", M), "va=0x300000000 0x10-0x13\n"), 0);
	mem = open(P("vas/0/mem", M), O_RDWR);
	raw = open(P("vram/raw", M), O_RDWR);
	pt = open(P("vas/0/pagetable", M), O_RDONLY);
	mf = open(P("vas/0/maps/four", M), O_RDONLY);
	xl = open(P("vas/0/translate/0x300000000", M), O_RDONLY);
	CU_ASSERT_FATAL(mem >= 0 && raw >= 0 && pt >= 0 && mf >= 0 && xl >= 0);

	/* across the end: the part inside, then end of file / EFBIG */
	VT_EQ_INT(pwrite(mem, "0123456789abcdef", 16, (off_t)(VA_SIZE - 8)), 8);
	VT_EQ_INT(pread(mem, buf, 16, (off_t)(VA_SIZE - 8)), 8);
	CU_ASSERT_EQUAL(memcmp(buf, "01234567", 8), 0);
	VT_EQ_INT(pread(raw, buf, 16, (off_t)(0xf000ull * 4096 + 4088)), 16);
	CU_ASSERT_EQUAL(memcmp(buf, "01234567", 8), 0);   /* the same page, through VRAM */
	/* the top of VRAM holds page tables: write back what is there */
	VT_EQ_INT(pread(raw, buf, 16, (off_t)(VRAM_SIZE - 4)), 4);
	memcpy(buf + 4, "EFGHIJKLMNOP", 12);
	VT_EQ_INT(pwrite(raw, buf, 16, (off_t)(VRAM_SIZE - 4)), 4);

	/* near 2^63: end of file for reads, EFBIG for writes (one log line
	 * each: the four below) */
	log0 = slurp(P("log", M), NULL);
	VT_EQ_INT(pread(mem, buf, 16, (off_t)(INT64_MAX - 16)), 0);
	VT_EQ_INT(pread(raw, buf, 16, (off_t)(INT64_MAX - 16)), 0);
	VT_EQ_INT(pread(pt, buf, 16, (off_t)(INT64_MAX - 16)), 0);
	VT_EQ_INT(pread(mf, buf, 16, (off_t)(INT64_MAX - 16)), 0);
	VT_EQ_INT(pread(xl, buf, 16, (off_t)(INT64_MAX - 16)), 0);
	VT_EQ_INT(pread(pt, buf, 16, (off_t)1 << 62), 0);
	VT_EQ_INT(pread(mf, buf, 16, (off_t)1 << 40), 0);
	errno = 0;
	VT_EQ_INT(pwrite(mem, buf, 16, (off_t)(INT64_MAX - 16)), -1);
	VT_EQ_INT(errno, EFBIG);
	errno = 0;
	VT_EQ_INT(pwrite(raw, buf, 16, (off_t)(INT64_MAX - 16)), -1);
	VT_EQ_INT(errno, EFBIG);
	errno = 0;
	VT_EQ_INT(pwrite(mem, buf, 16, (off_t)VA_SIZE), -1);
	VT_EQ_INT(errno, EFBIG);
	errno = 0;
	VT_EQ_INT(pwrite(raw, buf, 16, (off_t)(VRAM_SIZE + (1ull << 40))), -1);
	VT_EQ_INT(errno, EFBIG);
	news = log_since(log0);
	VT_EQ_INT(count_substr(news, "\n"), 4);
	VT_EQ_INT(count_substr(news, "vas/0/mem: write at 0x7fffffffffffffef failed: File too "
			       "large (EFBIG)"), 1);
	VT_EQ_INT(count_substr(news, "vram/raw: write at 0x7fffffffffffffef failed"), 1);
	VT_EQ_INT(count_substr(news, "vas/0/mem: write at 0x2000000000000 failed"), 1);
	VT_EQ_INT(count_substr(news, "vram/raw: write at 0x10010000000 failed"), 1);
	free(news);
	free(log0);
	/* where off + len passes 2^63: the kernel refuses (EINVAL) */
	errno = 0;
	VT_EQ_INT(pread(mem, buf, 16, (off_t)INT64_MAX), -1);
	VT_EQ_INT(errno, EINVAL);
	errno = 0;
	VT_EQ_INT(pwrite(raw, buf, 16, (off_t)INT64_MAX), -1);
	VT_EQ_INT(errno, EINVAL);

	/* negative offsets: refused by the kernel */
	errno = 0;
	VT_EQ_INT(lseek(mem, -1, SEEK_SET), -1);
	VT_EQ_INT(errno, EINVAL);
	errno = 0;
	VT_EQ_INT(pread(mem, buf, 16, -4096), -1);
	VT_EQ_INT(errno, EINVAL);
	errno = 0;
	VT_EQ_INT(pwrite(raw, buf, 16, -1), -1);
	VT_EQ_INT(errno, EINVAL);
	errno = 0;
	VT_EQ_INT(pread(pt, buf, 16, -1), -1);
	VT_EQ_INT(errno, EINVAL);
	/* seek to the end and beyond: reads there are end of file */
	VT_EQ_INT(lseek(mem, 0, SEEK_END), (off_t)VA_SIZE);
	VT_EQ_INT(read(mem, buf, 16), 0);
	VT_EQ_INT(lseek(raw, (off_t)INT64_MAX - 1, SEEK_SET), (off_t)INT64_MAX - 1);
	VT_EQ_INT(read(raw, buf, 1), 0);

	/* huge lengths: as much as there is, then the end / the unmapped page */
	big = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	CU_ASSERT_FATAL(big != MAP_FAILED);
	n = pread(mem, big, huge, (off_t)0x300000000ull);
	VT_EQ_INT(n, 4 * 4096);                        /* the mapping, then unmapped */
	n = pread(mem, big, huge, (off_t)(VA_SIZE - 4096));
	VT_EQ_INT(n, 4096);                            /* the last page, then the end */
	n = pread(raw, big, huge, (off_t)(VRAM_SIZE - (3 << 20)));
	VT_EQ_INT(n, 3 << 20);
	/* big holds what the last 3 MiB hold (page tables): written back */
	n = pwrite(raw, big, huge, (off_t)(VRAM_SIZE - (3 << 20)));
	VT_EQ_INT(n, 3 << 20);
	n = pread(pt, big, huge, 0);
	CU_ASSERT(n > 0 && (size_t)n < huge);
	n = pread(mf, big, huge, 0);
	CU_ASSERT(n > 0 && n < 4096);
	munmap(big, huge);

	/* a mapping file being written: only at its end */
	w = open(P("vas/0/maps/w", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CU_ASSERT_FATAL(w >= 0);
	errno = 0;
	VT_EQ_INT(pwrite(w, "0x5\n", 4, (off_t)1 << 62), -1);
	VT_EQ_INT(errno, EINVAL);
	errno = 0;
	VT_EQ_INT(pwrite(w, "0x5\n", 4, (off_t)(INT64_MAX - 4)), -1);
	VT_EQ_INT(errno, EINVAL);
	VT_EQ_INT(pwrite(w, "0x5\n", 4, 0), 4);
	VT_EQ_INT(close(w), 0);
	CU_ASSERT_TRUE(exists(P("vas/0/maps/w", M)));
	{
		char *t = slurp(P("log", M), NULL);
		CU_ASSERT_PTR_NOT_NULL(t && strstr(t, "vas/0/maps/w: write at offset 4611686018427387904 "
						      "refused") ? t : NULL);
		free(t);
	}

	close(xl);
	close(mf);
	close(pt);
	close(raw);
	close(mem);
	CU_ASSERT_TRUE(daemon_alive(&main_mnt));
	VT_EQ_INT(unlink(P("vas/0/maps/w", M)), 0);
	VT_EQ_INT(unlink(P("vas/0/maps/four", M)), 0);
	VT_EQ_INT(unlink(P("vas/0/maps/last", M)), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
}

/* ---- names ----------------------------------------------------------- */

static void test_name_lengths(void)
{
	/* 128 bytes is the limit; up to 1024 the kernel hands the name to the
	 * daemon (which refuses it), beyond that FUSE refuses it itself, and
	 * beyond PATH_MAX (4096) the VFS does */
	static const size_t lens[] = { 129, 255, 1024, 1025, 4000, 5000, 1 << 20 };
	char *name = malloc((1 << 20) + 1), *path = malloc((1 << 20) + 600);
	size_t i;

	CU_ASSERT_FATAL(name && path);
	memset(name, 'n', MAX_NAME);
	name[MAX_NAME] = '\0';
	/* exactly 128: a mapping, an address space, a rename to it */
	snprintf(path, 600, "%s/vas/0/maps/%s", M, name);
	VT_EQ_INT(map_text(path, "0x900\n"), 0);
	VT_EQ_INT(unlink(path), 0);
	snprintf(path, 600, "%s/vas/%s", M, name);
	VT_EQ_INT(mkdir(path, 0755), 0);
	VT_EQ_INT(rmdir(path), 0);

	VT_EQ_INT(map_text(P("vas/0/maps/short", M), "0x901\n"), 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		const char *stage;
		const char *pieces[] = { "0x902\n", NULL };

		memset(name, 'n', len);
		name[len] = '\0';
		sprintf(path, "%s/vas/0/maps/%s", M, name);
		errno = 0;
		VT_EQ_INT(map_write(path, pieces, &stage), ENAMETOOLONG);
		sprintf(path, "%s/vas/%s", M, name);
		errno = 0;
		VT_EQ_INT(mkdir(path, 0755), -1);
		VT_EQ_INT(errno, ENAMETOOLONG);
		errno = 0;
		VT_EQ_INT(rename(P("vas/0/maps/short", M),
				 (sprintf(path, "%s/vas/0/maps/%s", M, name), path)), -1);
		VT_EQ_INT(errno, ENAMETOOLONG);
		/* translate/: a number of any length */
		memset(name, '0', len);
		sprintf(path, "%s/vas/0/translate/%s", M, name);
		errno = 0;
		VT_EQ_INT(open(path, O_RDONLY), -1);
		VT_EQ_INT(errno, ENAMETOOLONG);
	}
	/* 128 digits: a VA written long, translated like the short one */
	memset(name, '0', MAX_NAME);
	memcpy(name + MAX_NAME - 4, "4096", 4);
	name[MAX_NAME] = '\0';
	snprintf(path, 600, "%s/vas/0/translate/%s", M, name);
	{
		char *a = slurp(path, NULL), *b = slurp(P("vas/0/translate/4096", M), NULL);

		CU_ASSERT_PTR_NOT_NULL(a);
		CU_ASSERT_STRING_EQUAL(a ? a : "(unreadable)", b ? b : "(none)");
		free(a);
		free(b);
	}
	{
		char *ls = listing(P("vas/0/maps", M)), *vs = listing(P("vas", M));

		CU_ASSERT_PTR_NOT_NULL(ls && strstr(ls, "short ") && !strstr(ls, "nn") ? ls : NULL);
		CU_ASSERT_PTR_NOT_NULL(vs && !strstr(vs, "nn") ? vs : NULL);
		free(ls);
		free(vs);
	}
	CU_ASSERT_TRUE(exists(P("vas/0/maps/short", M)));
	VT_EQ_INT(unlink(P("vas/0/maps/short", M)), 0);
	CU_ASSERT_TRUE(daemon_alive(&main_mnt));
	free(name);
	free(path);
}

/* ---- the caps ------------------------------------------------------- */

/* The 256th address space is refused (the count and the log line are
 * fs_test's vas_dirs) and leaves VRAM, page tables and the tree as they
 * were; and the cap holds for renames and after rmdir. */
static void test_vas_cap_state(void)
{
	char *usage0, *usage1, *ls0, *ls1, *log0, *news;
	int i;

	for (i = 1; i < 256; i++)
		VT_EQ_INT(mkdir(P("vas/c%d", M, i), 0755), 0);
	usage0 = slurp(P("vram/usage", M), NULL);
	ls0 = listing(P("vas", M));
	log0 = slurp(P("log", M), NULL);
	errno = 0;
	VT_EQ_INT(mkdir(P("vas/c256", M), 0755), -1);
	VT_EQ_INT(errno, ENOSPC);
	/* a rename is not a new one */
	VT_EQ_INT(rename(P("vas/c1", M), P("vas/c1r", M)), 0);
	VT_EQ_INT(rename(P("vas/c1r", M), P("vas/c1", M)), 0);
	usage1 = slurp(P("vram/usage", M), NULL);
	ls1 = listing(P("vas", M));
	CU_ASSERT_STRING_EQUAL(usage1 ? usage1 : "", usage0 ? usage0 : "(unreadable)");
	CU_ASSERT_STRING_EQUAL(ls1 ? ls1 : "", ls0 ? ls0 : "(unreadable)");
	news = log_since(log0);
	VT_EQ_INT(count_substr(news, "vas/c256:"), 1);
	VT_EQ_INT(count_substr(news, "vas/c256: cannot create: already 256 address spaces "
			       "(the limit)"), 1);
	free(news);
	VT_EQ_INT(rmdir(P("vas/c255", M)), 0);
	VT_EQ_INT(mkdir(P("vas/c256", M), 0755), 0);
	for (i = 1; i < 255; i++)
		VT_EQ_INT(rmdir(P("vas/c%d", M, i)), 0);
	VT_EQ_INT(rmdir(P("vas/c256", M)), 0);
	free(usage0);
	free(usage1);
	free(ls0);
	free(ls1);
	free(log0);
	ls1 = listing(P("vas", M));
	CU_ASSERT_PTR_NOT_NULL(ls1 && !strstr(ls1, "c1") ? ls1 : NULL);
	free(ls1);
}


#define CAP_THREADS 8

struct capw {
	const char *mnt;
	int first, count;
	int bad;
};

static void *cap_main(void *arg)
{
	struct capw *c = arg;
	char path[512], text[32];
	int i;

	for (i = c->first; i < c->first + c->count; i++) {
		snprintf(path, sizeof(path), "%s/vas/0/maps/m%05d", c->mnt, i);
		snprintf(text, sizeof(text), "0x%x\n", i);
		if (map_text(path, text))
			c->bad++;
	}
	return NULL;
}

/* 65536 single-page mapping files in one address space (the real default
 * cap, on a mount of its own), then the next create fails with ENOSPC and
 * one log line, and nothing changes. */
static void test_map_cap(void)
{
	static const char *const args[] = { "--vram-size=512M", NULL };
	static struct mnt m;
	pthread_t th[CAP_THREADS];
	struct capw cw[CAP_THREADS];
	const char *saved = M;
	struct snap before, after;
	double t0, t1, t2;
	char *log0, *news;
	int i, fd, fd2;

	CU_ASSERT_FATAL(mnt_start(&m, args) == 0);
	M = m.path;
	t0 = now();
	for (i = 0; i < CAP_THREADS; i++) {
		cw[i] = (struct capw){ .mnt = m.path, .first = i * (MAX_MAPS / CAP_THREADS),
				       .count = MAX_MAPS / CAP_THREADS };
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, cap_main, &cw[i]) == 0);
	}
	for (i = 0; i < CAP_THREADS; i++) {
		pthread_join(th[i], NULL);
		VT_EQ_INT(cw[i].bad, 0);
	}
	t1 = now();
	printf("\n  %d single-page maps with %d threads: %.1f s\n", MAX_MAPS, CAP_THREADS, t1 - t0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), MAX_MAPS);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), MAX_MAPS);

	snap_take("0", &before);
	log0 = slurp(P("log", M), NULL);
	errno = 0;
	VT_EQ_INT(open(P("vas/0/maps/one_more", M), O_WRONLY | O_CREAT | O_EXCL, 0644), -1);
	VT_EQ_INT(errno, ENOSPC);
	VT_EQ_INT(map_text(P("vas/0/maps/two_more", M), "alloc=4K\n"), ENOSPC);
	news = log_since(log0);
	VT_EQ_INT(count_substr(news, "\n"), 2);
	VT_EQ_INT(count_substr(news, "vas/0/maps/one_more: not created: already 65536 mapping "
			       "files (the limit) (ENOSPC)"), 1);
	VT_EQ_INT(count_substr(news, "vas/0/maps/two_more: not created"), 1);
	free(news);
	free(log0);
	snap_take("0", &after);
	snap_same(&before, &after);
	snap_free(&after);
	/* another address space has its own count */
	VT_EQ_INT(mkdir(P("vas/other", M), 0755), 0);
	VT_EQ_INT(map_text(P("vas/other/maps/x", M), "0x10\n"), 0);
	VT_EQ_INT(unlink(P("vas/other/maps/x", M)), 0);
	VT_EQ_INT(rmdir(P("vas/other", M)), 0);

	/* one rm frees one slot; a file being written holds it */
	VT_EQ_INT(unlink(P("vas/0/maps/m00000", M)), 0);
	fd = open(P("vas/0/maps/w", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CU_ASSERT(fd >= 0);
	fd2 = open(P("vas/0/maps/w2", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
	VT_EQ_INT(fd2, -1);
	VT_EQ_INT(errno, ENOSPC);
	if (fd2 >= 0)
		close(fd2);
	VT_EQ_INT(close(fd), 0);       /* nothing written: nothing made, slot free */
	CU_ASSERT_TRUE(gone_soon(P("vas/0/maps/w", M)));
	VT_EQ_INT(map_text(P("vas/0/maps/w2", M), "0x0\n"), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), MAX_MAPS);
	snap_free(&before);

	M = saved;
	t1 = now();
	VT_EQ_INT(mnt_stop(&m), 0);    /* unmaps all 65536 */
	t2 = now();
	printf("  unmount with %d mappings: %.1f s\n", MAX_MAPS, t2 - t1);
	CU_ASSERT_TRUE(mnt_stderr_clean(&m));
	mnt_cleanup(&m);
}

/* ---- main ------------------------------------------------------------ */

static void register_tests(void)
{
	static const struct vt_test tests[] = {
		{ "killed_writer", test_killed_writer },
		{ "killed_streaming_writer", test_killed_streaming_writer },
		{ "killed_reader", test_killed_reader },
		{ "parallel_opens", test_parallel_opens },
		{ "absurd_offsets", test_absurd_offsets },
		{ "name_lengths", test_name_lengths },
		{ "vas_cap_state", test_vas_cap_state },
		{ "map_cap", test_map_cap },
		{ NULL, NULL },
	};

	vt_add_suite("robust", tests);
}

int main(int argc, char **argv)
{
	static const char *const args[] = { "--vram-size=256M", NULL };

	return fsh_main("robust_test", &main_mnt, args, &M, argc, argv, register_tests);
}
