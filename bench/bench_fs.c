/* SPDX-License-Identifier: MIT */
/*
 * bench_fs: the vmmfs daemon through its files, side by side with tmpfs in
 * the same run (issue 6, targets 5, 6 and the daemon half of 7).
 *
 *   bench_fs [PAGES]
 *
 * PAGES is the size of the big mappings in 4 KiB pages (default 1M, K/M/G
 * suffixes, at least 1024); the small-operation count is 10,000 at the
 * default size and scales with PAGES (at least 100).
 *
 * It mounts the daemon (VMMFS_BIN, or $VMMFS_BIN) with `-f` on a directory
 * under /tmp, and compares with a tmpfs directory: /dev/shm when that is
 * tmpfs, else a tmpfs it mounts itself (root only). Everything it made is
 * unmounted and removed at exit, also after an error.
 *
 * The PFN-text parser is timed directly (fs/mapfile.c is linked in).
 *
 * Build without sanitizers for meaningful times: ./configure CFLAGS=-O2.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mapfile.h"

#ifndef VMMFS_BIN
#define VMMFS_BIN "./vmmfs"
#endif

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PAGE 4096ull
#define IO_CHUNK (1u << 20)     /* bytes per write()/read() call */
#define REPS 3                  /* timed repetitions, best kept */
#define TMPFS_MAGIC_NR 0x01021994

static uint64_t g_pages = 1ull << 20;
static uint64_t g_small = 10000;

/* ---- helpers ----------------------------------------------------------------- */

struct daemon {
	pid_t pid;
	char base[64];              /* temp dir holding mnt/ and daemon.log */
	char mnt[96];
	char log[96];
	char vram[32];              /* --vram-size */
};

static struct daemon *g_daemon;          /* the one mounted, for cleanup */
static char g_tmpfs[192];                /* reference directory */
static char g_tmpfs_mnt[128];            /* a tmpfs we mounted ourselves, or "" */

static void cleanup(void);

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench_fs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (g_daemon) {
		char line[512];
		FILE *f = fopen(g_daemon->log, "r");

		if (f) {
			fprintf(stderr, "bench_fs: the daemon said (%s):\n", g_daemon->log);
			while (fgets(line, sizeof(line), f))
				fprintf(stderr, "  %s", line);
			fclose(f);
		}
	}
	cleanup();
	exit(2);
}

/* Page-aligned, as the buffers of cat, dd and most readers and writers
 * are: FUSE moves at most 256 pages per request, so a 1 MiB read() or
 * write() from a buffer that starts inside a page costs two requests. */
static void *xmalloc(size_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, n ? n : 1))
		fail("out of memory (%zu bytes)", n);
	return p;
}

static const char *pages_str(char *buf, size_t len, uint64_t n)
{
	if (n >= MiB && n % MiB == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(n / MiB));
	else if (n >= KiB && n % KiB == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(n / KiB));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
	return buf;
}

/* Runs argv to completion; returns its exit status (-1 if it did not run). */
static int run(char *const argv[], bool quiet)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Resident memory of a process in bytes (smaps_rollup: exact). */
static uint64_t rss_of(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		fail("cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
			fclose(f);
			return (uint64_t)kb * KiB;
		}
	}
	fclose(f);
	fail("no Rss line in %s", path);
}

/* ---- the daemon ---------------------------------------------------------------- */

static const char *vmmfs_bin(void)
{
	const char *env = getenv("VMMFS_BIN");

	return env && *env ? env : VMMFS_BIN;
}

static bool is_mounted(const struct daemon *d)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/gpu/chipset", d->mnt);
	return stat(path, &st) == 0;
}

/* Mounts a simulated GPU with vram bytes of VRAM; page tables come from its
 * upper half (--vram-range), the PFNs the benchmark maps from the lower. */
static void daemon_start(struct daemon *d, uint64_t vram)
{
	char range[64];
	int i, status;

	memset(d, 0, sizeof(*d));
	snprintf(d->base, sizeof(d->base), "/tmp/vmmfs-bench.XXXXXX");
	if (!mkdtemp(d->base))
		fail("mkdtemp: %s", strerror(errno));
	snprintf(d->mnt, sizeof(d->mnt), "%s/mnt", d->base);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->base);
	snprintf(d->vram, sizeof(d->vram), "--vram-size=%lluG", (unsigned long long)(vram / GiB));
	snprintf(range, sizeof(range), "--vram-range=%lluG-%lluG",
		 (unsigned long long)(vram / 2 / GiB), (unsigned long long)(vram / GiB));
	if (mkdir(d->mnt, 0755))
		fail("mkdir %s: %s", d->mnt, strerror(errno));
	g_daemon = d;
	fflush(stdout);
	fflush(stderr);
	d->pid = fork();
	if (d->pid < 0)
		fail("fork: %s", strerror(errno));
	if (d->pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(vmmfs_bin(), "vmmfs", "-f", d->vram, range, d->mnt, (char *)NULL);
		fprintf(stderr, "cannot run %s: %s\n", vmmfs_bin(), strerror(errno));
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {        /* 10 s */
		if (is_mounted(d))
			return;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			fail("the daemon %s exited before mounting %s", vmmfs_bin(), d->mnt);
		}
		usleep(10000);
	}
	fail("the daemon did not mount %s within 10 s", d->mnt);
}

static void daemon_stop(struct daemon *d)
{
	char *um3[] = { "fusermount3", "-u", d->mnt, NULL };
	char *um[] = { "fusermount", "-u", d->mnt, NULL };
	int i, status;

	if (d->pid > 0) {
		if (run(um3, true) != 0 && run(um, true) != 0)
			umount2(d->mnt, MNT_DETACH);
		for (i = 0; i < 500; i++) {  /* 5 s, then a signal */
			if (waitpid(d->pid, &status, WNOHANG) == d->pid)
				break;
			if (i == 300)
				kill(d->pid, SIGTERM);
			usleep(10000);
		}
		if (i == 500) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
		}
		d->pid = 0;
	}
	rmdir(d->mnt);
	unlink(d->log);
	rmdir(d->base);
	if (g_daemon == d)
		g_daemon = NULL;
}

static void cleanup(void)
{
	if (g_daemon)
		daemon_stop(g_daemon);
	if (g_tmpfs[0]) {
		rmdir(g_tmpfs);
		g_tmpfs[0] = 0;
	}
	if (g_tmpfs_mnt[0]) {
		umount2(g_tmpfs_mnt, MNT_DETACH);
		rmdir(g_tmpfs_mnt);
		g_tmpfs_mnt[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The reference directory on tmpfs. */
static void tmpfs_setup(void)
{
	struct statfs sf;

	if (statfs("/dev/shm", &sf) == 0 && (unsigned long)sf.f_type == TMPFS_MAGIC_NR) {
		snprintf(g_tmpfs, sizeof(g_tmpfs), "/dev/shm/vmmfs-bench.XXXXXX");
		if (mkdtemp(g_tmpfs))
			return;
		g_tmpfs[0] = 0;
	}
	snprintf(g_tmpfs_mnt, sizeof(g_tmpfs_mnt), "/tmp/vmmfs-bench-tmpfs.XXXXXX");
	if (!mkdtemp(g_tmpfs_mnt)) {
		g_tmpfs_mnt[0] = 0;
		fail("mkdtemp: %s", strerror(errno));
	}
	if (mount("tmpfs", g_tmpfs_mnt, "tmpfs", 0, "size=50%")) {
		int e = errno;

		rmdir(g_tmpfs_mnt);
		g_tmpfs_mnt[0] = 0;
		fail("no tmpfs to compare with: /dev/shm is not tmpfs and mounting one failed "
		     "(%s; run as root or give the machine a tmpfs /dev/shm)", strerror(e));
	}
	snprintf(g_tmpfs, sizeof(g_tmpfs), "%s/ref", g_tmpfs_mnt);
	if (mkdir(g_tmpfs, 0755))
		fail("mkdir %s: %s", g_tmpfs, strerror(errno));
}

/* ---- file I/O, timed ------------------------------------------------------------- */

/* open, write len bytes in IO_CHUNK pieces, close: seconds taken (close
 * included: for a mapping file it makes the mapping); *close_s (may be
 * NULL) gets the seconds close alone took. */
static double write_file_split(const char *path, const char *buf, size_t len, double *close_s)
{
	double t0 = bench_now(), tc;
	size_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	while (done < len) {
		size_t want = len - done < IO_CHUNK ? len - done : IO_CHUNK;
		ssize_t w = write(fd, buf + done, want);

		if (w <= 0)
			fail("write %s at %zu: %s", path, done, w ? strerror(errno) : "wrote 0");
		done += (size_t)w;
	}
	tc = bench_now();
	if (close(fd))
		fail("close %s (the map): %s", path, strerror(errno));
	if (close_s)
		*close_s = bench_now() - tc;
	return bench_now() - t0;
}

static double write_file(const char *path, const char *buf, size_t len)
{
	return write_file_split(path, buf, len, NULL);
}

/* open, read to the end, close: seconds; *len gets the bytes. buf may be
 * NULL (read into a scratch buffer) or hold cap bytes. */
static double read_file(const char *path, char *buf, size_t cap, size_t *len)
{
	static char scratch[IO_CHUNK] __attribute__((aligned(4096)));
	double t0 = bench_now();
	size_t done = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	for (;;) {
		char *dst = buf ? buf + done : scratch;
		size_t want = buf ? (cap - done < IO_CHUNK ? cap - done : IO_CHUNK) : IO_CHUNK;
		ssize_t r;

		if (buf && !want)
			fail("%s is larger than %zu bytes", path, cap);
		r = read(fd, dst, want);
		if (r < 0)
			fail("read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		done += (size_t)r;
	}
	close(fd);
	*len = done;
	return bench_now() - t0;
}

static size_t file_size_by_reading(const char *path)
{
	size_t len;

	read_file(path, NULL, 0, &len);
	return len;
}

static void xunlink(const char *path)
{
	if (unlink(path))
		fail("unlink %s: %s", path, strerror(errno));
}

/* "key value" from a stats-like file of the mount */
static uint64_t kv_get(const char *path, const char *key)
{
	char line[256], k[64];
	unsigned long long v;
	FILE *f = fopen(path, "r");

	if (!f)
		fail("open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %llu", k, &v) == 2 && !strcmp(k, key)) {
			fclose(f);
			return v;
		}
	}
	fclose(f);
	fail("no '%s' in %s", key, path);
}

/* ---- PFN text ------------------------------------------------------------------------ */

struct text {
	char *buf;
	size_t len;
};

static char *put_hex(char *p, uint64_t v)
{
	char tmp[16];
	int n = 0;

	*p++ = '0';
	*p++ = 'x';
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* One hex PFN per line: first, first + stride, ... (n of them). */
static struct text pfn_list(uint64_t first, uint64_t stride, uint64_t n)
{
	struct text t;
	char *p;
	uint64_t i;

	t.buf = xmalloc((size_t)n * 20 + 1);
	p = t.buf;
	for (i = 0; i < n; i++) {
		p = put_hex(p, first + i * stride);
		*p++ = '\n';
	}
	t.len = (size_t)(p - t.buf);
	return t;
}

/* ---- target 5: throughput through the files ------------------------------------------- */

struct layout {
	uint64_t vram;          /* board */
	uint64_t pfn0;          /* first PFN mapped */
};

static struct layout layout_for(uint64_t n)
{
	struct layout l;

	l.pfn0 = 1ull << 20;                         /* 4 GiB into VRAM */
	l.vram = bench_pow2_at_least(2 * (l.pfn0 + 2 * n) * PAGE, 16 * GiB);
	return l;
}

static double mbps(size_t bytes, double s)
{
	return (double)bytes / s / 1e6;
}

/* Best-of-REPS write of t to a new mapping file and to a tmpfs file; the
 * mapping is removed after each repetition but the last when keep. */
static void write_row(const struct daemon *d, const char *what, const struct text *t,
		      const char *name, bool keep)
{
	char vpath[256], tpath[256];
	double bv = 1e30, bt = 1e30, bc = 0;
	int rep;

	snprintf(vpath, sizeof(vpath), "%s/vas/0/maps/%s", d->mnt, name);
	snprintf(tpath, sizeof(tpath), "%s/%s", g_tmpfs, name);
	for (rep = 0; rep < REPS; rep++) {
		double tc, tv = write_file_split(vpath, t->buf, t->len, &tc);
		double tt = write_file(tpath, t->buf, t->len);

		if (tv < bv) {
			bv = tv;
			bc = tc;
		}
		if (tt < bt)
			bt = tt;
		xunlink(tpath);
		if (!keep || rep < REPS - 1)
			xunlink(vpath);
	}
	bench_row(what, mbps(t->len, bv), mbps(t->len, bt), "MB/s", BENCH_RATIO_AT_LEAST(0.25));
	bench_note("%.1f MB of text; vmmfs %.1f ms (open + writes %.1f, close, which maps, "
		   "%.1f), tmpfs %.1f ms; goal: ratio >= 0.5", (double)t->len / 1e6, bv * 1e3,
		   (bv - bc) * 1e3, bc * 1e3, bt * 1e3);
}

/* Best-of-REPS read of a file of the mount and of a tmpfs copy of it. */
static void read_row(const char *what, const char *vpath)
{
	char tpath[256];
	size_t len = file_size_by_reading(vpath), got;
	char *copy = xmalloc(len + IO_CHUNK);
	double bv = 1e30, bt = 1e30;
	int rep;

	read_file(vpath, copy, len + IO_CHUNK, &got);
	snprintf(tpath, sizeof(tpath), "%s/copy", g_tmpfs);
	write_file(tpath, copy, got);
	for (rep = 0; rep < REPS; rep++) {
		size_t a, b;
		double tv = read_file(vpath, NULL, 0, &a);
		double tt = read_file(tpath, NULL, 0, &b);

		if (a != got || b != got)
			fail("%s: read %zu bytes, then %zu (tmpfs copy %zu)", vpath, got, a, b);
		if (tv < bv)
			bv = tv;
		if (tt < bt)
			bt = tt;
	}
	xunlink(tpath);
	free(copy);
	bench_row(what, mbps(got, bv), mbps(got, bt), "MB/s", BENCH_RATIO_AT_LEAST(0.25));
	bench_note("%.1f MB; vmmfs %.1f ms, tmpfs %.1f ms", (double)got / 1e6, bv * 1e3, bt * 1e3);
}

/* The daemon's parser over t, fed in IO_CHUNK pieces as writes arrive,
 * against a memchr pass counting the lines of the same bytes. */
static void parse_row(const char *what, const struct text *t, uint64_t vram, uint64_t npages)
{
	double bp = 1e30, bm = 1e30;
	size_t lines = 0;
	int rep;

	for (rep = 0; rep < REPS; rep++) {
		struct vmmfs_mapfile mf;
		const char *p, *end = t->buf + t->len;
		double t0 = bench_now(), t1;
		size_t off;
		int r = 0;

		vmmfs_mapfile_init(&mf, vram / PAGE, 1ull << 49);
		for (off = 0; off < t->len && !r; off += IO_CHUNK)
			r = vmmfs_mapfile_feed(&mf, t->buf + off,
					       t->len - off < IO_CHUNK ? t->len - off : IO_CHUNK);
		if (!r)
			r = vmmfs_mapfile_finish(&mf);
		t1 = bench_now() - t0;
		if (r || mf.npages != npages)
			fail("the parser said %d (%s), %llu pages of %llu", r,
			     vmmfs_mapfile_error(&mf), (unsigned long long)mf.npages,
			     (unsigned long long)npages);
		vmmfs_mapfile_fini(&mf);
		if (t1 < bp)
			bp = t1;

		t0 = bench_now();
		lines = 0;
		for (p = t->buf; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
			lines++;
		t1 = bench_now() - t0;
		if (t1 < bm)
			bm = t1;
	}
	if (lines != npages)
		fail("counted %zu lines, expected %llu", lines, (unsigned long long)npages);
	bench_row(what, (double)t->len / bp / 1e9, (double)t->len / bm / 1e9, "GB/s",
		  BENCH_AT_LEAST(1));
}

static void bench_throughput(void)
{
	uint64_t n = g_pages;
	struct layout l = layout_for(n);
	struct text contig = pfn_list(l.pfn0, 1, n), scat = pfn_list(l.pfn0, 2, n);
	struct daemon d;
	char title[400], sz[32], what[96], path[256];

	pages_str(sz, sizeof(sz), n);
	snprintf(title, sizeof(title), "5. through the files: %s PFNs, one hex number a line; "
		 "reference: the same bytes on tmpfs (%s), best of %d", sz, g_tmpfs, REPS);
	bench_table_begin(title);
	daemon_start(&d, l.vram);

	snprintf(what, sizeof(what), "write %s contiguous PFNs to maps/", sz);
	write_row(&d, what, &contig, "contig", false);
	snprintf(what, sizeof(what), "write %s scattered PFNs to maps/", sz);
	write_row(&d, what, &scat, "scat", true);

	snprintf(path, sizeof(path), "%s/vas/0/pagetable", d.mnt);
	snprintf(what, sizeof(what), "read pagetable, %s scattered mapped", sz);
	read_row(what, path);
	snprintf(path, sizeof(path), "%s/vas/0/maps/scat", d.mnt);
	snprintf(what, sizeof(what), "read maps/FILE of %s scattered", sz);
	read_row(what, path);
	xunlink(path);
	daemon_stop(&d);

	bench_table_begin("5. PFN text parser (fs/mapfile.c, in process), fed 1 MiB pieces; "
			  "reference: memchr over the same bytes");
	snprintf(what, sizeof(what), "parse %s scattered PFNs", sz);
	parse_row(what, &scat, l.vram, n);
	snprintf(what, sizeof(what), "parse %s contiguous PFNs", sz);
	parse_row(what, &contig, l.vram, n);

	free(scat.buf);
	free(contig.buf);
}

/* ---- target 6: small operations --------------------------------------------------------- */

struct small_times {
	double create, unlink;
};

/* create+write+close of count files holding one PFN each, then unlink
 * them all; seconds for each half. */
static struct small_times small_ops(const char *dir, uint64_t count, uint64_t pfn0)
{
	struct small_times t;
	char path[256], line[32];
	uint64_t i;
	double t0;

	t0 = bench_now();
	for (i = 0; i < count; i++) {
		size_t len = (size_t)(put_hex(line, pfn0 + i) - line);
		int fd;

		line[len++] = '\n';
		snprintf(path, sizeof(path), "%s/s%06llu", dir, (unsigned long long)i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			fail("open %s: %s", path, strerror(errno));
		if (write(fd, line, len) != (ssize_t)len)
			fail("write %s: %s", path, strerror(errno));
		if (close(fd))
			fail("close %s (the map): %s", path, strerror(errno));
	}
	t.create = bench_now() - t0;
	t0 = bench_now();
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/s%06llu", dir, (unsigned long long)i);
		if (unlink(path))
			fail("unlink %s: %s", path, strerror(errno));
	}
	t.unlink = bench_now() - t0;
	return t;
}

static void bench_small(void)
{
	struct layout l = layout_for(g_pages);
	struct small_times bv = { 1e30, 1e30 }, bt = { 1e30, 1e30 }, tv, tt;
	double best_v = 1e30, best_t = 1e30, us = 1e6 / (double)g_small;
	char dir[160], stats[160], title[200], what[96];
	struct daemon d;
	int rep;

	snprintf(title, sizeof(title), "6. small operations: %llu single-page maps and unmaps "
		 "from one process; reference: the same on tmpfs, best of %d",
		 (unsigned long long)g_small, REPS);
	bench_table_begin(title);
	daemon_start(&d, l.vram);
	snprintf(dir, sizeof(dir), "%s/vas/0/maps", d.mnt);
	snprintf(stats, sizeof(stats), "%s/vas/0/stats", d.mnt);
	for (rep = 0; rep < REPS; rep++) {
		uint64_t maps0 = kv_get(stats, "maps"), unmaps0 = kv_get(stats, "unmaps");

		tv = small_ops(dir, g_small, l.pfn0);
		if (kv_get(stats, "maps") - maps0 != g_small ||
		    kv_get(stats, "unmaps") - unmaps0 != g_small)
			fail("the daemon counted %llu maps and %llu unmaps, expected %llu each",
			     (unsigned long long)(kv_get(stats, "maps") - maps0),
			     (unsigned long long)(kv_get(stats, "unmaps") - unmaps0),
			     (unsigned long long)g_small);
		tt = small_ops(g_tmpfs, g_small, l.pfn0);
		if (tv.create < bv.create)
			bv.create = tv.create;
		if (tv.unlink < bv.unlink)
			bv.unlink = tv.unlink;
		if (tv.create + tv.unlink < best_v)
			best_v = tv.create + tv.unlink;
		if (tt.create < bt.create)
			bt.create = tt.create;
		if (tt.unlink < bt.unlink)
			bt.unlink = tt.unlink;
		if (tt.create + tt.unlink < best_t)
			best_t = tt.create + tt.unlink;
	}
	daemon_stop(&d);
	snprintf(what, sizeof(what), "map: create+write+close, per op");
	bench_row(what, bv.create * us, bt.create * us, "us", BENCH_RATIO_AT_MOST(5));
	snprintf(what, sizeof(what), "unmap: unlink, per op");
	bench_row(what, bv.unlink * us, bt.unlink * us, "us", BENCH_RATIO_AT_MOST(5));
	snprintf(what, sizeof(what), "map + unmap, per page");
	bench_row(what, best_v * us, best_t * us, "us", BENCH_RATIO_AT_MOST(5));
}

/* ---- target 7 (daemon): resident memory ------------------------------------------------- */

static uint64_t as_pt_pages(const struct daemon *d)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/vas/0/stats", d->mnt);
	return kv_get(path, "pt_pages");
}

/* A mapping file that costs the daemon its first-use memory without
 * mapping more than one page: 4 MiB of comments in 1 MiB writes (the
 * worker threads that big writes go to, with their 1 MiB receive buffers),
 * then one PFN. Mapping many pages instead would leave freed heap that the
 * measured mapping reuses, and hide part of its cost. */
static struct text warm_text(uint64_t pfn)
{
	static const char line[] = "# warm-up: big writes go to the daemon's worker threads\n";
	const size_t n = (4u << 20) / (sizeof(line) - 1);
	struct text t;
	char *p;
	size_t i;

	t.buf = xmalloc(n * (sizeof(line) - 1) + 32);
	p = t.buf;
	for (i = 0; i < n; i++) {
		memcpy(p, line, sizeof(line) - 1);
		p += sizeof(line) - 1;
	}
	p = put_hex(p, pfn);
	*p++ = '\n';
	t.len = (size_t)(p - t.buf);
	return t;
}

/* Growth of the daemon's resident memory when t is written to a new
 * mapping file of a freshly mounted daemon, per page; reference: the
 * page-table bytes per page the mapping needed. */
static void mem_row(const char *what, const struct text *t, uint64_t npages,
		    struct bench_target target)
{
	struct layout l = layout_for(g_pages);
	struct text warm = warm_text(l.pfn0 + 3 * g_pages);
	char path[256];
	uint64_t rss0, rss1, pt0, pt1;
	struct daemon d;

	daemon_start(&d, l.vram);
	/* first-use costs (threads and their receive buffers, log ring, lazily
	 * made structures) out of the way */
	snprintf(path, sizeof(path), "%s/vas/0/maps/warm", d.mnt);
	write_file(path, warm.buf, warm.len);
	xunlink(path);
	pt0 = as_pt_pages(&d);
	rss0 = rss_of(d.pid);
	snprintf(path, sizeof(path), "%s/vas/0/maps/m", d.mnt);
	write_file(path, t->buf, t->len);
	rss1 = rss_of(d.pid);
	pt1 = as_pt_pages(&d);
	daemon_stop(&d);
	bench_row(what, (double)(rss1 - rss0) / (double)npages,
		  (double)((pt1 - pt0) * PAGE) / (double)npages, "B/page", target);
	free(warm.buf);
}

static void bench_memory(void)
{
	uint64_t n = g_pages, gp = GiB / PAGE;
	struct layout l = layout_for(n);
	struct text range, contig = pfn_list(l.pfn0, 1, n), scat = pfn_list(l.pfn0, 2, n);
	struct text grange, gscat = pfn_list(l.pfn0 + 2 * gp, 2, gp);
	char title[400], sz[32], what[96], path[256], buf[96];
	uint64_t rss[3], pt[3];
	struct daemon d;

	pages_str(sz, sizeof(sz), n);
	snprintf(title, sizeof(title), "7. daemon resident memory growth per mapped page, %s pages "
		 "(reference: page-table bytes per page)", sz);
	bench_table_begin(title);
	snprintf(buf, sizeof(buf), "0x%llx-0x%llx\n", (unsigned long long)l.pfn0,
		 (unsigned long long)(l.pfn0 + n - 1));
	range.buf = buf;
	range.len = strlen(buf);
	snprintf(what, sizeof(what), "contiguous run (A-B), %s pages", sz);
	mem_row(what, &range, n, BENCH_AT_MOST(1));
	snprintf(what, sizeof(what), "contiguous, written as %s lines", sz);
	mem_row(what, &contig, n, BENCH_AT_MOST(1));
	snprintf(what, sizeof(what), "%s scattered PFNs", sz);
	mem_row(what, &scat, n, BENCH_AT_MOST(10));
	bench_note("the daemon keeps simulated VRAM that was written (page tables) in host "
		   "memory, so page tables count in its resident memory");

	bench_table_begin("7. daemon resident memory, 80 GiB board (reference: page-table bytes)");
	daemon_start(&d, 80 * GiB);
	rss[0] = rss_of(d.pid);
	pt[0] = as_pt_pages(&d);
	snprintf(buf, sizeof(buf), "0x%llx-0x%llx\n", (unsigned long long)l.pfn0,
		 (unsigned long long)(l.pfn0 + gp - 1));
	grange.buf = buf;
	grange.len = strlen(buf);
	snprintf(path, sizeof(path), "%s/vas/0/maps/gib_contig", d.mnt);
	write_file(path, grange.buf, grange.len);
	rss[1] = rss_of(d.pid);
	pt[1] = as_pt_pages(&d);
	snprintf(path, sizeof(path), "%s/vas/0/maps/gib_scat", d.mnt);
	write_file(path, gscat.buf, gscat.len);
	rss[2] = rss_of(d.pid);
	pt[2] = as_pt_pages(&d);
	daemon_stop(&d);
	bench_note("resident: %.2f MiB mounted, %.2f MiB with 1 GiB contiguous mapped, %.2f MiB "
		   "with 1 GiB scattered too; page-table pages %llu, %llu, %llu",
		   (double)rss[0] / (double)MiB, (double)rss[1] / (double)MiB,
		   (double)rss[2] / (double)MiB, (unsigned long long)pt[0],
		   (unsigned long long)pt[1], (unsigned long long)pt[2]);
	bench_row("80 GiB board, 1 GiB contiguous mapped", (double)rss[1] / (double)MiB,
		  (double)(pt[1] * PAGE) / (double)MiB, "MiB", BENCH_AT_MOST(64));
	bench_row("... and 1 GiB scattered too (2 GiB)", (double)rss[2] / (double)MiB,
		  (double)(pt[2] * PAGE) / (double)MiB, "MiB", BENCH_AT_MOST(64));
	bench_note("figures are the daemon's whole resident memory (libc, libfuse and threads "
		   "included)");

	free(gscat.buf);
	free(scat.buf);
	free(contig.buf);
}

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
		printf("usage: %s [PAGES]\n"
		       "  PAGES: pages in the big mappings (default 1M; K/M/G suffixes; at least "
		       "1024);\n  the small-operation count is 10000 * PAGES / 1M (at least 100)\n"
		       "  the daemon: %s (or $VMMFS_BIN)\n", argv[0], vmmfs_bin());
		return argc == 2 ? 0 : 2;
	}
	g_pages = bench_parse_size(argc == 2 ? argv[1] : NULL, 1ull << 20);
	if (g_pages < 1024 || g_pages > (1ull << 24)) {
		fprintf(stderr, "bench_fs: PAGES must be between 1024 and 16M, not '%s'\n", argv[1]);
		return 2;
	}
	g_small = 10000 * g_pages / (1ull << 20);
	if (g_small < 100)
		g_small = 100;
	if (access(vmmfs_bin(), X_OK)) {
		fprintf(stderr, "bench_fs: the daemon %s is not there (build it: make vmmfs)\n",
			vmmfs_bin());
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	bench_print_machine();
	tmpfs_setup();

	bench_throughput();
	bench_small();
	bench_memory();

	cleanup();
	return bench_finish("bench_fs");
}
