/* SPDX-License-Identifier: MIT */
/*
 * Integration tests: mount the daemon (VMMFS_BIN) on a simulated GPU for
 * real and drive it with shell commands and C system calls.
 *
 * Needs root and /dev/fuse (CI has both). Without them the test FAILS with
 * a clear message, unless VMMFS_ALLOW_SKIP_FS=1 (then it is skipped, exit
 * status 77). Every mount is unmounted on the way out, failure or not
 * (fusermount3 -u, then umount -l).
 */
#include "helper.h"
#include "fs_helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VMMFS_BIN
#error "VMMFS_BIN must name the daemon binary"
#endif
#ifndef TESTS_SRCDIR
#define TESTS_SRCDIR "tests"
#endif

#define VRAM_SIZE (1ull << 30)
#define VRAM_PAGES (VRAM_SIZE >> 12)

static struct mnt main_mnt;
static const char *M; /* main_mnt.path */

/* ---- small helpers (the shared ones are in fs_helper.h) --------------- */

/* Path inside the main mount. */
#define P(...) pathf((char[512]){ 0 }, 512, "%s/" __VA_ARGS__)

/* Runs a shell command in dir; returns its exit status (-1 if it did not exit). */
__attribute__((format(printf, 3, 4)))
static int run_in(const char *shell, const char *dir, const char *fmt, ...)
{
	char cmd[4096], full[4500];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && %s -c '%s'", dir, shell, cmd);
	st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#define sh(...) run_in("/bin/sh", M, __VA_ARGS__)

static bool log_has(const char *needle)
{
	char *t = slurp(P("log", M), NULL);
	bool found = t && strstr(t, needle);

	if (!found)
		fprintf(stderr, "  log lacks '%s'\n", needle);
	free(t);
	return found;
}

/* ---- mounting (fs_helper.c) ------------------------------------------ */

/* Runs the daemon to completion (options that make it exit); returns its
 * exit status and its output in *out. */
static int run_daemon(const char *args, char **out)
{
	const size_t cap = 8192;

	*out = calloc(1, cap);
	if (!*out)
		return -1;
	return fsh_run_daemon(args, *out, cap);
}

/* ---- checks used by many tests --------------------------------------- */

struct xlate {
	char state[32];
	uint64_t pa, page_size;
	char access[8];
	char hw[16];
	uint64_t hw_pa;
	char hw_access[8];
};

static uint64_t page_size_of(const char *s)
{
	uint64_t v = strtoull(s, NULL, 10);

	return strchr(s, 'G') ? v << 30 : strchr(s, 'M') ? v << 20 : strchr(s, 'K') ? v << 10 : v;
}

static bool translate(const char *as, uint64_t va, struct xlate *x)
{
	char path[512], *t, ps[16] = "";

	memset(x, 0, sizeof(*x));
	t = slurp(pathf(path, sizeof(path), "%s/vas/%s/translate/0x%llx", M, as,
			(unsigned long long)va), NULL);
	if (!t)
		return false;
	kv_str(t, "state", x->state, sizeof(x->state));
	kv_u64(t, "pa", &x->pa);
	if (kv_str(t, "page_size", ps, sizeof(ps)))
		x->page_size = page_size_of(ps);
	kv_str(t, "access", x->access, sizeof(x->access));
	kv_str(t, "hw", x->hw, sizeof(x->hw));
	kv_u64(t, "hw_pa", &x->hw_pa);
	kv_str(t, "hw_access", x->hw_access, sizeof(x->hw_access));
	free(t);
	return true;
}

/* va is mapped to pa with access acc, by vmmfs's walker and by the GPU. */
static void check_mapped(const char *as, uint64_t va, uint64_t pa, const char *acc)
{
	struct xlate x;

	CU_ASSERT_TRUE_FATAL(translate(as, va, &x));
	if (strcmp(x.state, "mapped") || x.pa != pa || strcmp(x.hw, "mapped") || x.hw_pa != pa ||
	    strcmp(x.access, acc) || strcmp(x.hw_access, acc))
		fprintf(stderr, "  va 0x%llx: walker %s pa 0x%llx %s, gpu %s pa 0x%llx %s; "
			"expected pa 0x%llx %s\n", (unsigned long long)va, x.state,
			(unsigned long long)x.pa, x.access, x.hw, (unsigned long long)x.hw_pa,
			x.hw_access, (unsigned long long)pa, acc);
	CU_ASSERT_STRING_EQUAL(x.state, "mapped");
	VT_EQ_U64(x.pa, pa);
	CU_ASSERT_STRING_EQUAL(x.access, acc);
	CU_ASSERT_STRING_EQUAL(x.hw, "mapped");
	VT_EQ_U64(x.hw_pa, pa);
	CU_ASSERT_STRING_EQUAL(x.hw_access, acc);
}

static void check_unmapped(const char *as, uint64_t va)
{
	struct xlate x;

	CU_ASSERT_TRUE_FATAL(translate(as, va, &x));
	if (!strcmp(x.state, "mapped") || strcmp(x.hw, "fault"))
		fprintf(stderr, "  va 0x%llx: walker %s, gpu %s; expected unmapped, fault\n",
			(unsigned long long)va, x.state, x.hw);
	CU_ASSERT_STRING_NOT_EQUAL(x.state, "mapped");
	CU_ASSERT_STRING_EQUAL(x.hw, "fault");
}

struct mapdesc {
	uint64_t va, size, pages;
	char access[8];
	char pfns[4096];
};

static bool describe(const char *path, struct mapdesc *d)
{
	char *t = slurp(path, NULL);
	bool ok;

	memset(d, 0, sizeof(*d));
	if (!t)
		return false;
	ok = kv_u64(t, "va", &d->va) && kv_u64(t, "size", &d->size) &&
	     kv_u64(t, "pages", &d->pages) && kv_str(t, "access", d->access, sizeof(d->access)) &&
	     kv_str(t, "pfns", d->pfns, sizeof(d->pfns));
	free(t);
	return ok;
}

/* Expands a pfns line ("0x100-0x1ff 0x300") into out; returns the count. */
static size_t pfns_expand(const char *s, uint64_t *out, size_t max)
{
	size_t n = 0;
	char *end;

	while (*s) {
		uint64_t a, b;
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		a = b = strtoull(s, &end, 0);
		s = end;
		if (*s == '-') {
			b = strtoull(s + 1, &end, 0);
			s = end;
		}
		for (; a <= b && n < max; a++)
			out[n++] = a;
	}
	return n;
}

/* Each page of the mapping file at path, as translated by the walker and
 * the GPU: checked one by one (every page up to limit, then a sample). */
static void check_mapping_file(const char *as, const char *path, size_t limit)
{
	static uint64_t pfns[1 << 18];
	struct mapdesc d;
	size_t n, i, step;

	CU_ASSERT_TRUE_FATAL(describe(path, &d));
	n = pfns_expand(d.pfns, pfns, sizeof(pfns) / sizeof(pfns[0]));
	VT_EQ_U64(n, d.pages);
	VT_EQ_U64(d.size, d.pages * 4096);
	step = n > limit ? n / limit : 1;
	for (i = 0; i < n; i += step)
		check_mapped(as, d.va + i * 4096, pfns[i] << 12, d.access);
}

/* ---- tests: nodes ---------------------------------------------------- */

static void check_mode(const char *rel, mode_t want)
{
	struct stat st;
	char path[512];

	pathf(path, sizeof(path), "%s/%s", M, rel);
	if (stat(path, &st)) {
		fprintf(stderr, "  stat %s: %s\n", rel, strerror(errno));
		CU_FAIL("stat");
		return;
	}
	if (st.st_mode != want)
		fprintf(stderr, "  %s: mode 0%o, expected 0%o\n", rel, st.st_mode, want);
	CU_ASSERT_EQUAL(st.st_mode, want);
}

static void test_nodes(void)
{
	static const char *const text_files[] = {
		"README", "gpu/chipset", "gpu/arch", "gpu/mmu_version", "gpu/va_bits",
		"gpu/vram_size", "gpu/backend", "vram/usage", "vas/0/pdb", "vas/0/pagetable",
		"vas/0/stats", "stats", "log", NULL,
	};
	static const char *const stats_keys[] = { "mmio_reads", "mmio_writes", "mmio_read_bytes",
		"mmio_write_bytes", "window_moves", "tlb_flushes", NULL };
	static const char *const vas_keys[] = { "maps", "unmaps", "tlb_flushes", "pt_pages",
		"mapped_pages", "va_free", NULL };
	static const char *const usage_keys[] = { "total_pages", "free_pages", "pt_pages",
		"mapped_pages", NULL };
	const char *const *f;
	char *t, path[512];
	struct stat st;
	uint64_t v;
	size_t len;

	check_mode("README", S_IFREG | 0444);
	check_mode("gpu", S_IFDIR | 0555);
	check_mode("gpu/chipset", S_IFREG | 0444);
	check_mode("vram/raw", S_IFREG | 0600);
	check_mode("vram/usage", S_IFREG | 0444);
	check_mode("vas", S_IFDIR | 0755);
	check_mode("vas/0/maps", S_IFDIR | 0755);
	check_mode("vas/0/mem", S_IFREG | 0600);
	check_mode("vas/0/translate", S_IFDIR | 0555);
	check_mode("stats", S_IFREG | 0444);
	check_mode("log", S_IFREG | 0444);

	/* every generated file: stat's size is what a read gives */
	for (f = text_files; *f; f++) {
		pathf(path, sizeof(path), "%s/%s", M, *f);
		t = slurp(path, &len);
		CU_ASSERT_PTR_NOT_NULL(t);
		CU_ASSERT(stat(path, &st) == 0);
		if (!strcmp(*f, "log")) {
			free(t);
			continue; /* grows with every request, the stat's included */
		}
		if (strcmp(*f, "vas/0/pagetable")) /* empty without mappings */
			CU_ASSERT(len > 0);
		if ((size_t)st.st_size != len)
			fprintf(stderr, "  %s: st_size %lld, read %zu bytes\n", *f,
				(long long)st.st_size, len);
		CU_ASSERT_EQUAL((size_t)st.st_size, len);
		free(t);
	}

	t = slurp(P("README", M), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "echo 0x100-0x1ff > vas/0/maps/buf"));
	free(t);
	t = slurp(P("gpu/chipset", M), NULL);
	CU_ASSERT_STRING_EQUAL(t ? t : "", "GA102\n");
	free(t);
	t = slurp(P("gpu/arch", M), NULL);
	CU_ASSERT_STRING_EQUAL(t ? t : "", "ampere\n");
	free(t);
	t = slurp(P("gpu/backend", M), NULL);
	CU_ASSERT_STRING_EQUAL(t ? t : "", "sim\n");
	free(t);
	VT_EQ_U64(file_u64(P("gpu/mmu_version", M), NULL), 2);
	VT_EQ_U64(file_u64(P("gpu/va_bits", M), NULL), 49);
	VT_EQ_U64(file_u64(P("gpu/vram_size", M), NULL), VRAM_SIZE);
	CU_ASSERT(stat(P("vram/raw", M), &st) == 0);
	VT_EQ_U64(st.st_size, VRAM_SIZE);
	CU_ASSERT(stat(P("vas/0/mem", M), &st) == 0);
	VT_EQ_U64(st.st_size, 1ull << 49);
	v = file_u64(P("vas/0/pdb", M), NULL);
	CU_ASSERT(v != UINT64_MAX && v % 4096 == 0 && v < VRAM_SIZE);

	t = slurp(P("stats", M), NULL);
	for (f = stats_keys; *f; f++)
		CU_ASSERT_TRUE(kv_u64(t, *f, &v));
	free(t);
	t = slurp(P("vas/0/stats", M), NULL);
	for (f = vas_keys; *f; f++)
		CU_ASSERT_TRUE(kv_u64(t, *f, &v));
	free(t);
	t = slurp(P("vram/usage", M), NULL);
	for (f = usage_keys; *f; f++)
		CU_ASSERT_TRUE(kv_u64(t, *f, &v));
	kv_u64(t, "total_pages", &v);
	CU_ASSERT(v > 0 && v <= VRAM_PAGES);
	free(t);

	/* the usual tools */
	VT_EQ_INT(sh("cat README gpu/* vram/usage stats log vas/0/pdb vas/0/stats >/dev/null"), 0);
	VT_EQ_INT(sh("grep -q GA102 gpu/chipset"), 0);
	VT_EQ_INT(sh("test \"$(wc -c < README)\" = \"$(cat README | wc -c)\""), 0);
	VT_EQ_INT(sh("test \"$(wc -c README | cut -d\" \" -f1)\" = \"$(cat README | wc -c)\""), 0);
	VT_EQ_INT(sh("cp README %s/readme.copy && cmp -s README %s/readme.copy", main_mnt.dir,
		     main_mnt.dir), 0);
	VT_EQ_INT(sh("less README < /dev/null | cmp -s - README"), 0);
	VT_EQ_INT(sh("python3 -c \"import sys; sys.exit(open(\\\"README\\\").read() != "
		     "open(\\\"%s/readme.copy\\\").read())\" 2>/dev/null || "
		     "! command -v python3 >/dev/null", main_mnt.dir), 0);
	VT_EQ_INT(sh("ls vas/0/translate | wc -l | grep -qx 0"), 0);
	VT_EQ_INT(sh("ls | tr \"\\n\" \" \" | grep -qx \"README gpu log stats vas vram \""), 0);
}

/* ---- tests: mapping -------------------------------------------------- */

static void test_map_echo(void)
{
	uint64_t flushes0, flushes1, gflush0, gflush1, maps0;
	struct mapdesc d;
	char *t;

	flushes0 = file_u64(P("vas/0/stats", M), "tlb_flushes");
	gflush0 = file_u64(P("stats", M), "tlb_flushes");
	maps0 = file_u64(P("vas/0/stats", M), "maps");

	VT_EQ_INT(sh("echo 0x100-0x1ff > vas/0/maps/buf"), 0);
	flushes1 = file_u64(P("vas/0/stats", M), "tlb_flushes");
	gflush1 = file_u64(P("stats", M), "tlb_flushes");
	VT_EQ_U64(flushes1, flushes0 + 1);      /* one TLB flush for the map */
	VT_EQ_U64(gflush1, gflush0 + 1);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "maps"), maps0 + 1);

	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/buf", M), &d));
	VT_EQ_U64(d.size, 0x100000);
	VT_EQ_U64(d.pages, 256);
	CU_ASSERT_STRING_EQUAL(d.access, "rw");
	CU_ASSERT_STRING_EQUAL(d.pfns, "0x100-0x1ff");
	CU_ASSERT(d.va % 4096 == 0);
	t = slurp(P("vas/0/maps/buf", M), NULL);
	CU_ASSERT_PTR_NOT_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(t ? strstr(t, "va     0x") : NULL); /* DESIGN.md's layout */
	free(t);
	check_mapping_file("0", P("vas/0/maps/buf", M), 256);
	check_mapped("0", d.va + 0x1234, 0x100000 + 0x1234, "rw"); /* inside a page */
	CU_ASSERT_TRUE(log_has("vas/0/maps/buf: mapped 256 pages"));
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 256);

	VT_EQ_INT(sh("rm vas/0/maps/buf"), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "tlb_flushes"), flushes1 + 1); /* one for unmap */
	VT_EQ_U64(file_u64(P("stats", M), "tlb_flushes"), gflush1 + 1);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/buf", M)));
	check_unmapped("0", d.va);
	check_unmapped("0", d.va + 255 * 4096);
	CU_ASSERT_TRUE(log_has("vas/0/maps/buf: unmapped"));
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
}

static void test_map_options(void)
{
	struct mapdesc d;
	char buf[64];
	int fd;

	/* exact VA, read-only, two pages that are not neighbours */
	VT_EQ_INT(sh("echo va=0x7f0000000 ro 0x400 0x402 > vas/0/maps/ro2"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/ro2", M), &d));
	VT_EQ_U64(d.va, 0x7f0000000ull);
	CU_ASSERT_STRING_EQUAL(d.access, "ro");
	CU_ASSERT_STRING_EQUAL(d.pfns, "0x400 0x402");
	check_mapped("0", 0x7f0000000ull, 0x400000, "ro");
	check_mapped("0", 0x7f0001000ull, 0x402000, "ro");

	/* a VA range, comments, commas, decimal */
	VT_EQ_INT(sh("printf \"# two pages\\nva=0x40000000-0x4fffffff\\n1024,1025 # done\\n\" "
		     "> vas/0/maps/ranged"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/ranged", M), &d));
	CU_ASSERT(d.va >= 0x40000000 && d.va + d.size <= 0x50000000);
	CU_ASSERT_STRING_EQUAL(d.pfns, "0x400-0x401");
	check_mapping_file("0", P("vas/0/maps/ranged", M), 8);

	/* alloc=: fresh zeroed VRAM */
	VT_EQ_INT(sh("echo alloc=2M > vas/0/maps/scratch"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/scratch", M), &d));
	VT_EQ_U64(d.size, 2 << 20);
	VT_EQ_U64(d.pages, 512);
	check_mapping_file("0", P("vas/0/maps/scratch", M), 16);
	fd = open(P("vas/0/mem", M), O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	memset(buf, 0x55, sizeof(buf));
	VT_EQ_INT(pread(fd, buf, sizeof(buf), (off_t)(d.va + 0x1ff000)), sizeof(buf));
	CU_ASSERT_EQUAL(buf[0] | buf[31] | buf[63], 0);
	close(fd);

	VT_EQ_INT(sh("rm vas/0/maps/ro2 vas/0/maps/ranged vas/0/maps/scratch"), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), 0);
}

/* What each kind of bad input does: the write or the close fails with
 * errno, no file is left, and the log names the file and the cause. */
static void test_map_errors(void)
{
	struct {
		const char *name, *text;
		const char *stage;
		int err;
		const char *log;
	} cases[] = {
		{ "e_malformed", "0x1g\n", "write", EINVAL, "vas/0/maps/e_malformed: write refused: malformed PFN '0x1g'" },
		{ "e_word", "0x100 frob\n", "write", EINVAL, "vas/0/maps/e_word: write refused: unknown word 'frob'" },
		{ "e_backwards", "0x1ff-0x100\n", "write", EINVAL, "runs backwards (byte 0) (EINVAL)" },
		{ "e_unaligned", "va=0x1001 5\n", "write", EINVAL, "vas/0/maps/e_unaligned: write refused: va=0x1001 is not 4 KiB-aligned" },
		{ "e_beyond", "0x40000\n", "write", ERANGE, "vas/0/maps/e_beyond: write refused: PFN 0x40000 is beyond VRAM" },
		{ "e_huge", "0x10000000000000000\n", "write", ERANGE, "does not fit in 64 bits (byte 0) (ERANGE)" },
		{ "e_vabig", "va=0x4000000000000 1\n", "write", ERANGE, "beyond the address space" },
		{ "e_empty", "# only a comment\n", "close", EINVAL, "vas/0/maps/e_empty: not mapped: nothing to map" },
		{ "e_nospc", "va=0x40000000-0x40000fff 0x10 0x11\n", "close", ENOSPC, "vas/0/maps/e_nospc: not mapped: no free virtual address range of that size where asked (ENOSPC)" },
		{ "e_nomem", "alloc=1G\n", "close", ENOMEM, "vas/0/maps/e_nomem: not mapped: no VRAM (or memory) left for page tables or alloc= (ENOMEM)" },
		{ "e_pt", NULL, "close", EACCES, "vas/0/maps/e_pt: not mapped: a PFN is a page-table page, which can never be mapped (EACCES)" },
	};
	uint64_t pt0, mapped0, free0, va_free0;
	char pt_text[64], path[512];
	size_t i;

	snprintf(pt_text, sizeof(pt_text), "0x%llx\n",
		 (unsigned long long)(file_u64(P("vas/0/pdb", M), NULL) >> 12));
	cases[10].text = pt_text;
	pt0 = file_u64(P("vas/0/stats", M), "pt_pages");
	mapped0 = file_u64(P("vas/0/stats", M), "mapped_pages");
	va_free0 = file_u64(P("vas/0/stats", M), "va_free");
	free0 = file_u64(P("vram/usage", M), "free_pages");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *pieces[] = { cases[i].text, NULL }, *stage = "";
		int e = map_write(pathf(path, sizeof(path), "%s/vas/0/maps/%s", M, cases[i].name),
				  pieces, &stage);
		if (e != cases[i].err || strcmp(stage, cases[i].stage))
			fprintf(stderr, "  %s: %s failed with %s, expected %s to fail with %s\n",
				cases[i].name, stage, strerror(e), cases[i].stage,
				strerror(cases[i].err));
		VT_EQ_INT(e, cases[i].err);
		CU_ASSERT_STRING_EQUAL(stage, cases[i].stage);
		CU_ASSERT_FALSE(exists(path));
		CU_ASSERT_TRUE(log_has(cases[i].log));
	}
	/* no trace: page tables, mapped pages, VA and VRAM as before */
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "pt_pages"), pt0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), mapped0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "va_free"), va_free0);
	VT_EQ_U64(file_u64(P("vram/usage", M), "free_pages"), free0);
	VT_EQ_INT(sh("ls vas/0/maps | wc -l | grep -qx 0"), 0);

	/* EEXIST: va= over a live mapping fails close, the first stays */
	VT_EQ_INT(map_text(P("vas/0/maps/first", M), "va=0x80000000 0x500\n"), 0);
	VT_EQ_INT(map_text(P("vas/0/maps/second", M), "va=0x80000000 0x600\n"), EEXIST);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/second", M)));
	CU_ASSERT_TRUE(log_has("vas/0/maps/second: not mapped: va= overlaps an existing mapping (EEXIST)"));
	check_mapped("0", 0x80000000ull, 0x500000, "rw");
	VT_EQ_INT(unlink(P("vas/0/maps/first", M)), 0);

	/* a file cap: more than 64 MiB of text fails the write that crosses it */
	{
		const size_t chunk = 1 << 20;
		char *spaces = malloc(chunk);
		int fd = open(P("vas/0/maps/e_big", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
		size_t k;
		ssize_t w = 0;

		CU_ASSERT_FATAL(fd >= 0 && spaces);
		memset(spaces, ' ', chunk);
		memcpy(spaces, "0x10 ", 5);
		for (k = 0; k < 64 && w >= 0; k++)
			w = write(fd, spaces, chunk);
		VT_EQ_INT(w, (ssize_t)chunk);
		errno = 0;
		VT_EQ_INT(write(fd, "1", 1), -1);
		VT_EQ_INT(errno, EFBIG);
		VT_EQ_INT(close(fd), -1);
		VT_EQ_INT(errno, EFBIG);
		free(spaces);
		CU_ASSERT_FALSE(exists(P("vas/0/maps/e_big", M)));
		CU_ASSERT_TRUE(log_has("vas/0/maps/e_big: write refused: mapping file larger than 67108864 bytes"));
	}
}

/* The shell's builtin echo reports a refused write (sh and bash). */
static bool file_has(const char *path, const char *needle)
{
	char *t = slurp(path, NULL);
	bool r = t && strstr(t, needle);

	if (!r)
		fprintf(stderr, "  %s lacks '%s': %s\n", path, needle, t ? t : "(unreadable)");
	free(t);
	return r;
}

static void test_builtin_echo(void)
{
	char err[400];

	pathf(err, sizeof(err), "%s/echo.err", main_mnt.dir);
	/* dash's builtin says "echo: I/O error"; the status is what matters */
	VT_EQ_INT(sh("echo 0x1g > vas/0/maps/sh_bad 2> %s", err), 1);
	CU_ASSERT_TRUE(file_has(err, "echo"));
	VT_EQ_INT(sh("echo 0x40000 > vas/0/maps/sh_big 2> %s", err), 1);
	CU_ASSERT_TRUE(file_has(err, "echo"));
	if (access("/bin/bash", X_OK) == 0) {
		VT_EQ_INT(run_in("/bin/bash", M, "echo 0x1g > vas/0/maps/bash_bad 2> %s", err), 1);
		CU_ASSERT_TRUE(file_has(err, "echo: write error: Invalid argument"));
		VT_EQ_INT(run_in("/bin/bash", M, "echo 0x40000 > vas/0/maps/bash_big 2> %s", err), 1);
		CU_ASSERT_TRUE(file_has(err, "echo: write error: Numerical result out of range"));
		VT_EQ_INT(run_in("/bin/bash", M, "echo 0x300 0x301 > vas/0/maps/bash_ok"), 0);
		check_mapping_file("0", P("vas/0/maps/bash_ok", M), 2);
		VT_EQ_INT(unlink(P("vas/0/maps/bash_ok", M)), 0);
	}
	/* /bin/echo checks close: a map that cannot be made fails it */
	VT_EQ_INT(sh("/bin/echo alloc=1G > vas/0/maps/sh_nomem 2> %s", err), 1);
	CU_ASSERT_TRUE(file_has(err, "Cannot allocate memory"));
	CU_ASSERT_FALSE(exists(P("vas/0/maps/sh_bad", M)));
	CU_ASSERT_FALSE(exists(P("vas/0/maps/sh_big", M)));
	CU_ASSERT_FALSE(exists(P("vas/0/maps/bash_bad", M)));
	CU_ASSERT_FALSE(exists(P("vas/0/maps/sh_nomem", M)));
	CU_ASSERT_TRUE(log_has("vas/0/maps/sh_bad: write refused: malformed PFN '0x1g'"));
	CU_ASSERT_TRUE(log_has("vas/0/maps/sh_nomem: not mapped: no VRAM"));
}

/* A PFN list cut into two writes at every byte gives the same mapping. */
static void test_split_writes(void)
{
	static const char text[] = "0x100-0x10f 0x300\n0x2a0,0x2a1 # c\n";
	const size_t len = strlen(text);
	char path[512], a[64], b[64];
	struct mapdesc d;
	size_t i;

	for (i = 0; i <= len; i++) {
		const char *pieces[] = { a, b, NULL }, *stage;
		snprintf(a, sizeof(a), "%.*s", (int)i, text);
		snprintf(b, sizeof(b), "%s", text + i);
		pathf(path, sizeof(path), "%s/vas/0/maps/split%zu", M, i);
		VT_EQ_INT(map_write(path, pieces, &stage), 0);
		CU_ASSERT_TRUE(describe(path, &d));
		if (strcmp(d.pfns, "0x100-0x10f 0x300 0x2a0-0x2a1"))
			fprintf(stderr, "  cut at %zu: pfns '%s'\n", i, d.pfns);
		CU_ASSERT_STRING_EQUAL(d.pfns, "0x100-0x10f 0x300 0x2a0-0x2a1");
		VT_EQ_U64(d.pages, 19);
		VT_EQ_INT(unlink(path), 0);
	}
	/* one byte per write */
	{
		int fd = open(P("vas/0/maps/bytewise", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
		CU_ASSERT_FATAL(fd >= 0);
		for (i = 0; i < len; i++)
			VT_EQ_INT(write(fd, text + i, 1), 1);
		VT_EQ_INT(close(fd), 0);
		CU_ASSERT_TRUE(describe(P("vas/0/maps/bytewise", M), &d));
		CU_ASSERT_STRING_EQUAL(d.pfns, "0x100-0x10f 0x300 0x2a0-0x2a1");
		check_mapping_file("0", P("vas/0/maps/bytewise", M), 19);
		VT_EQ_INT(unlink(P("vas/0/maps/bytewise", M)), 0);
	}
	/* writes must follow each other */
	{
		int fd = open(P("vas/0/maps/holes", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
		CU_ASSERT_FATAL(fd >= 0);
		VT_EQ_INT(pwrite(fd, "0x5 ", 4, 100), -1);
		VT_EQ_INT(errno, EINVAL);
		VT_EQ_INT(pwrite(fd, "0x5 ", 4, 0), 4);
		VT_EQ_INT(close(fd), 0);
		CU_ASSERT_TRUE(log_has("vas/0/maps/holes: write at offset 100 refused"));
		VT_EQ_INT(unlink(P("vas/0/maps/holes", M)), 0);
	}
}

static void test_ebusy(void)
{
	struct mapdesc before, after;
	int fd, fd2;

	VT_EQ_INT(map_text(P("vas/0/maps/once", M), "0x700-0x70f\n"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/once", M), &before));
	errno = 0;
	VT_EQ_INT(open(P("vas/0/maps/once", M), O_WRONLY), -1);
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(open(P("vas/0/maps/once", M), O_RDWR), -1);
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(open(P("vas/0/maps/once", M), O_WRONLY | O_TRUNC), -1);
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(open(P("vas/0/maps/once", M), O_WRONLY | O_CREAT | O_EXCL, 0644), -1);
	VT_EQ_INT(errno, EEXIST);
	CU_ASSERT(sh("{ echo 0x800 > vas/0/maps/once; } 2>/dev/null") != 0);
	CU_ASSERT(sh("{ echo 0x800 >> vas/0/maps/once; } 2>/dev/null") != 0);
	CU_ASSERT_TRUE(log_has("vas/0/maps/once: not opened for writing: a mapping file is written once"));
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/once", M), &after));
	CU_ASSERT_EQUAL(memcmp(&before, &after, sizeof(before)), 0);
	check_mapping_file("0", P("vas/0/maps/once", M), 16);

	/* a file being written: no second writer, no reader, no rm */
	fd = open(P("vas/0/maps/pending", M), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	VT_EQ_INT(write(fd, "0x900", 5), 5);
	VT_EQ_INT(open(P("vas/0/maps/pending", M), O_WRONLY), -1);
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(open(P("vas/0/maps/pending", M), O_RDONLY), -1);
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(unlink(P("vas/0/maps/pending", M)), -1);
	VT_EQ_INT(errno, EBUSY);
	CU_ASSERT_TRUE(log_has("vas/0/maps/pending: not removed: still being written (EBUSY)"));
	/* a copy of the descriptor closed first: still one mapping, made at the
	 * first close that finds data */
	fd2 = dup(fd);
	VT_EQ_INT(close(fd2), 0);
	VT_EQ_INT(write(fd, " 0x901\n", 7), -1);   /* already committed by that close */
	VT_EQ_INT(errno, EBUSY);
	VT_EQ_INT(close(fd), 0);
	CU_ASSERT_TRUE(describe(P("vas/0/maps/pending", M), &after));
	CU_ASSERT_STRING_EQUAL(after.pfns, "0x900");
	VT_EQ_INT(unlink(P("vas/0/maps/pending", M)), 0);
	VT_EQ_INT(unlink(P("vas/0/maps/once", M)), 0);
}

static void test_touch_leaves_nothing(void)
{
	double end;

	VT_EQ_INT(sh("touch vas/0/maps/touched"), 0);
	/* release comes just after close returns */
	end = now() + 5;
	while (exists(P("vas/0/maps/touched", M)) && now() < end)
		sleep_ms(10);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/touched", M)));
	/* `: > f` and an echo that writes nothing are the same */
	VT_EQ_INT(sh(": > vas/0/maps/colon"), 0);
	end = now() + 5;
	while (exists(P("vas/0/maps/colon", M)) && now() < end)
		sleep_ms(10);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/colon", M)));
}

static void test_rename(void)
{
	struct mapdesc d;

	VT_EQ_INT(map_text(P("vas/0/maps/old", M), "0x320-0x323\n"), 0);
	VT_EQ_INT(map_text(P("vas/0/maps/other", M), "0x330\n"), 0);
	VT_EQ_INT(sh("mv vas/0/maps/old vas/0/maps/new"), 0);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/old", M)));
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/new", M), &d));
	CU_ASSERT_STRING_EQUAL(d.pfns, "0x320-0x323");
	check_mapping_file("0", P("vas/0/maps/new", M), 4);
	CU_ASSERT_TRUE(log_has("vas/0/maps/old: renamed to vas/0/maps/new"));

	/* never over another mapping */
	VT_EQ_INT(rename(P("vas/0/maps/new", M), P("vas/0/maps/other", M)), -1);
	VT_EQ_INT(errno, EEXIST);
	CU_ASSERT_TRUE(describe(P("vas/0/maps/other", M), &d));
	CU_ASSERT_STRING_EQUAL(d.pfns, "0x330");
	/* not out of maps/ */
	VT_EQ_INT(mkdir(P("vas/r", M), 0755), 0);
	VT_EQ_INT(rename(P("vas/0/maps/new", M), P("vas/r/maps/new", M)), -1);
	VT_EQ_INT(errno, EXDEV);
	VT_EQ_INT(rename(P("vas/0/maps/new", M), P("vas/0/new", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(rename(P("vas/0/pdb", M), P("vas/0/pdb2", M)), -1);
	VT_EQ_INT(errno, EPERM);
	CU_ASSERT_TRUE(exists(P("vas/0/maps/new", M)));
	/* address spaces can be renamed too */
	VT_EQ_INT(rename(P("vas/r", M), P("vas/r2", M)), 0);
	CU_ASSERT_TRUE(exists(P("vas/r2/pdb", M)));
	VT_EQ_INT(rmdir(P("vas/r2", M)), 0);

	VT_EQ_INT(sh("rm vas/0/maps/new vas/0/maps/other"), 0);
	check_unmapped("0", d.va);
}

static void test_forbidden(void)
{
	struct mapdesc before, after;
	struct stat st;

	VT_EQ_INT(map_text(P("vas/0/maps/keep", M), "0x340-0x341\n"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/keep", M), &before));

	VT_EQ_INT(link(P("vas/0/maps/keep", M), P("vas/0/maps/hard", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(symlink("keep", P("vas/0/maps/soft", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(chmod(P("vas/0/maps/keep", M), 0755), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(chmod(P("vas/0/maps/keep", M), 0600), 0); /* read/write bits may change */
	CU_ASSERT(stat(P("vas/0/maps/keep", M), &st) == 0 && st.st_mode == (S_IFREG | 0600));
	VT_EQ_INT(chmod(P("vas/0/maps/keep", M), 0644), 0);
	VT_EQ_INT(truncate(P("vas/0/maps/keep", M), 0), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(sh("truncate -s 0 vas/0/maps/keep 2>/dev/null"), 1);
	VT_EQ_INT(mkdir(P("vas/0/maps/dir", M), 0755), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(mknod(P("vas/0/maps/node", M), S_IFREG | 0644, 0), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(open(P("vas/0/newfile", M), O_WRONLY | O_CREAT, 0644), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(open(P("newfile", M), O_WRONLY | O_CREAT, 0644), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(mkdir(P("gpu/x", M), 0755), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(unlink(P("gpu/chipset", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(unlink(P("vas/0/pdb", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(rmdir(P("vas/0/maps", M)), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(open(P("gpu/chipset", M), O_WRONLY), -1); /* root passes the mode bits */
	VT_EQ_INT(errno, EACCES);
	VT_EQ_INT(chmod(P("gpu/chipset", M), 0666), -1);
	VT_EQ_INT(errno, EPERM);
	VT_EQ_INT(chown(P("vas/0/maps/keep", M), 1, 1), -1);
	VT_EQ_INT(errno, EPERM);

	CU_ASSERT_TRUE(describe(P("vas/0/maps/keep", M), &after));
	CU_ASSERT_EQUAL(memcmp(&before, &after, sizeof(before)), 0);
	VT_EQ_INT(sh("ls vas/0/maps | tr -d \"\\n\" | grep -qx keep"), 0);
	check_mapping_file("0", P("vas/0/maps/keep", M), 2);
	VT_EQ_INT(unlink(P("vas/0/maps/keep", M)), 0);
}

static void test_vas_dirs(void)
{
	char name[200];
	uint64_t pdb0, pdb1;
	struct mapdesc d;

	VT_EQ_INT(sh("mkdir vas/gfx"), 0);
	check_mode("vas/gfx", S_IFDIR | 0555);
	check_mode("vas/gfx/maps", S_IFDIR | 0755);
	check_mode("vas/gfx/mem", S_IFREG | 0600);
	pdb0 = file_u64(P("vas/0/pdb", M), NULL);
	pdb1 = file_u64(P("vas/gfx/pdb", M), NULL);
	CU_ASSERT(pdb1 != pdb0 && pdb1 % 4096 == 0);
	CU_ASSERT_TRUE(log_has("vas/gfx: address space created"));
	VT_EQ_INT(mkdir(P("vas/gfx", M), 0755), -1);
	VT_EQ_INT(errno, EEXIST);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	VT_EQ_INT(mkdir(P("vas/%s", M, name), 0755), -1);
	VT_EQ_INT(errno, ENAMETOOLONG);

	/* its own tables: the same VA maps elsewhere in each */
	VT_EQ_INT(map_text(P("vas/gfx/maps/a", M), "va=0x100000000 0x350\n"), 0);
	VT_EQ_INT(map_text(P("vas/0/maps/a", M), "va=0x100000000 0x360\n"), 0);
	check_mapped("gfx", 0x100000000ull, 0x350000, "rw");
	check_mapped("0", 0x100000000ull, 0x360000, "rw");

	VT_EQ_INT(rmdir(P("vas/gfx", M)), -1);
	VT_EQ_INT(errno, ENOTEMPTY);
	CU_ASSERT_TRUE(log_has("vas/gfx: not removed: 1 mappings left in maps/ (rm them first) (ENOTEMPTY)"));
	CU_ASSERT_TRUE(describe(P("vas/gfx/maps/a", M), &d));
	VT_EQ_INT(unlink(P("vas/gfx/maps/a", M)), 0);
	VT_EQ_INT(sh("rmdir vas/gfx"), 0);
	CU_ASSERT_FALSE(exists(P("vas/gfx", M)));
	CU_ASSERT_TRUE(log_has("vas/gfx: address space removed"));
	check_mapped("0", 0x100000000ull, 0x360000, "rw");
	VT_EQ_INT(unlink(P("vas/0/maps/a", M)), 0);
	VT_EQ_INT(sh("ls vas | tr -d \"\\n\" | grep -qx 0"), 0);

	/* at most 256 address spaces */
	{
		int i, made = 0;
		for (i = 0; i < 300; i++) {
			if (mkdir(P("vas/cap%d", M, i), 0755) == 0) {
				made++;
				continue;
			}
			VT_EQ_INT(errno, ENOSPC);
			break;
		}
		VT_EQ_INT(made, 255); /* and vas/0 */
		CU_ASSERT_TRUE(log_has("already 256 address spaces (the limit)"));
		for (i = 0; i < made; i++)
			VT_EQ_INT(rmdir(P("vas/cap%d", M, i)), 0);
		VT_EQ_INT(mkdir(P("vas/again", M), 0755), 0);
		VT_EQ_INT(rmdir(P("vas/again", M)), 0);
	}
}

/* ---- tests: inspection ----------------------------------------------- */

static void test_mem(void)
{
	char buf[8192], pattern[6000];
	struct mapdesc d, r;
	int fd, raw;
	size_t i;

	VT_EQ_INT(map_text(P("vas/0/maps/m", M), "va=0x6000000000 0x1000-0x1001 0x1005\n"), 0);
	VT_EQ_INT(map_text(P("vas/0/maps/r", M), "va=0x6100000000 ro 0x1010\n"), 0);
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/m", M), &d));
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/r", M), &r));
	fd = open(P("vas/0/mem", M), O_RDWR);
	raw = open(P("vram/raw", M), O_RDWR);
	CU_ASSERT_FATAL(fd >= 0 && raw >= 0);

	/* across the page boundary between PFN 0x1001 and 0x1005 */
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)(i * 7 + 3);
	VT_EQ_INT(pwrite(fd, pattern, sizeof(pattern), (off_t)(d.va + 0x1800)), sizeof(pattern));
	memset(buf, 0, sizeof(buf));
	VT_EQ_INT(pread(fd, buf, sizeof(pattern), (off_t)(d.va + 0x1800)), sizeof(pattern));
	CU_ASSERT_EQUAL(memcmp(buf, pattern, sizeof(pattern)), 0);
	/* the same bytes in VRAM at the physical addresses */
	VT_EQ_INT(pread(raw, buf, 0x800, 0x1001800), 0x800);
	CU_ASSERT_EQUAL(memcmp(buf, pattern, 0x800), 0);
	VT_EQ_INT(pread(raw, buf, sizeof(pattern) - 0x800, 0x1005000), sizeof(pattern) - 0x800);
	CU_ASSERT_EQUAL(memcmp(buf, pattern + 0x800, sizeof(pattern) - 0x800), 0);
	/* and through vram/raw back into mem */
	VT_EQ_INT(pwrite(raw, "vram", 4, 0x1000010), 4);
	VT_EQ_INT(pread(fd, buf, 4, (off_t)(d.va + 0x10)), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "vram", 4), 0);

	/* unmapped: EIO; read-only: EACCES; both logged */
	errno = 0;
	VT_EQ_INT(pread(fd, buf, 16, (off_t)(d.va + 3 * 4096)), -1); /* nothing at va=0x6000003000 */
	VT_EQ_INT(errno, EIO);
	VT_EQ_INT(pwrite(fd, "x", 1, (off_t)r.va), -1);
	VT_EQ_INT(errno, EACCES);
	VT_EQ_INT(pread(fd, buf, 16, (off_t)r.va), 16); /* reading it is fine */
	CU_ASSERT_TRUE(log_has("vas/0/mem: read at"));
	CU_ASSERT_TRUE(log_has("not mapped (EIO)"));
	CU_ASSERT_TRUE(log_has("read-only mapping (EACCES)"));
	/* a read that runs into an unmapped page stops there */
	VT_EQ_INT(pread(fd, buf, 8192, (off_t)(d.va + 2 * 4096)), 4096);
	/* absurd offsets: end of file */
	VT_EQ_INT(pread(fd, buf, 16, (off_t)(1ull << 49)), 0);
	VT_EQ_INT(pread(fd, buf, 16, (off_t)INT64_MAX - 16), 0);
	VT_EQ_INT(pread(raw, buf, 16, (off_t)VRAM_SIZE), 0);
	VT_EQ_INT(pwrite(raw, buf, 16, (off_t)VRAM_SIZE), -1);
	VT_EQ_INT(errno, EFBIG);
	close(raw);
	close(fd);

	/* dd, xxd -s, python seek+read */
	VT_EQ_INT(sh("printf hello-vmmfs | dd of=vas/0/mem bs=1 seek=%llu conv=notrunc status=none",
		     (unsigned long long)(d.va + 0x2000)), 0);
	VT_EQ_INT(sh("dd if=vas/0/mem bs=1 skip=%llu count=11 status=none | grep -qx hello-vmmfs",
		     (unsigned long long)(d.va + 0x2000)), 0);
	VT_EQ_INT(sh("dd if=vas/0/mem bs=4096 skip=%llu count=1 status=none | wc -c | grep -qx 4096",
		     (unsigned long long)(d.va / 4096 + 2)), 0);
	if (system("command -v xxd >/dev/null 2>&1") == 0)
		VT_EQ_INT(sh("xxd -s %llu -l 11 -p vas/0/mem | grep -qx 68656c6c6f2d766d6d6673",
			     (unsigned long long)(d.va + 0x2000)), 0);
	if (system("command -v python3 >/dev/null 2>&1") == 0)
		VT_EQ_INT(sh("python3 -c \"import sys; f=open(\\\"vas/0/mem\\\",\\\"rb\\\"); "
			     "f.seek(%llu); sys.exit(f.read(11)!=b\\\"hello-vmmfs\\\")\"",
			     (unsigned long long)(d.va + 0x2000)), 0);
	VT_EQ_INT(sh("rm vas/0/maps/m vas/0/maps/r"), 0);
}

static void test_translate_names(void)
{
	char name[400];
	struct xlate x;
	int fd;

	CU_ASSERT_TRUE(translate("0", 0, &x));
	CU_ASSERT_STRING_NOT_EQUAL(x.state, "mapped");
	CU_ASSERT_TRUE(translate("0", (1ull << 49) - 1, &x));
	VT_EQ_INT(open(P("vas/0/translate/0x2000000000000", M), O_RDONLY), -1);
	VT_EQ_INT(errno, ERANGE);
	VT_EQ_INT(open(P("vas/0/translate/0xffffffffffffffffff", M), O_RDONLY), -1);
	VT_EQ_INT(errno, ERANGE);
	VT_EQ_INT(open(P("vas/0/translate/hello", M), O_RDONLY), -1);
	VT_EQ_INT(errno, ENOENT);
	VT_EQ_INT(open(P("vas/0/translate/0x", M), O_RDONLY), -1);
	VT_EQ_INT(errno, ENOENT);
	memset(name, '1', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	VT_EQ_INT(open(P("vas/0/translate/%s", M, name), O_RDONLY), -1);
	VT_EQ_INT(errno, ENAMETOOLONG);
	name[200] = '\0';
	VT_EQ_INT(open(P("vas/0/translate/%s", M, name), O_RDONLY), -1);
	VT_EQ_INT(errno, ENAMETOOLONG);
	fd = open(P("vas/0/translate/0x1000", M), O_WRONLY);
	VT_EQ_INT(fd, -1);
	VT_EQ_INT(errno, EACCES);
	/* many distinct names: the daemon keeps up and forgets them */
	VT_EQ_INT(sh("i=0; while [ $i -lt 300 ]; do cat vas/0/translate/$((i * 4096)) >/dev/null "
		     "|| exit 1; i=$((i+1)); done"), 0);
}

struct leaf {
	uint64_t va_first, va_last, pa_first;
};
static size_t pagetable_leaves(const char *as, struct leaf **out);

/* A large contiguous, 2 MiB-aligned mapping is a handful of lines. */
static void test_pagetable_runs(void)
{
	size_t len, lines = 0;
	struct mapdesc d;
	char *t, *p;

	VT_EQ_INT(map_text(P("vas/0/maps/big", M), "0x10000-0x2ffff\n"), 0); /* 512 MiB */
	CU_ASSERT_TRUE_FATAL(describe(P("vas/0/maps/big", M), &d));
	t = slurp(P("vas/0/pagetable", M), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (p = t; *p; p++)
		lines += *p == '\n';
	if (lines > 24)
		fprintf(stderr, "  pagetable of one 512 MiB mapping has %zu lines:\n%s\n", lines, t);
	CU_ASSERT(lines <= 24);
	free(t);
	{
		struct leaf *l = NULL;
		size_t n = pagetable_leaves("0", &l), i;
		uint64_t bytes = 0;
		for (i = 0; i < n; i++)
			bytes += l[i].va_last - l[i].va_first + 1;
		VT_EQ_U64(bytes, 512ull << 20);
		free(l);
	}
	check_mapping_file("0", P("vas/0/maps/big", M), 64);
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	t = slurp(P("vas/0/pagetable", M), &len);
	CU_ASSERT_PTR_NOT_NULL(t);
	CU_ASSERT(t && !strstr(t, " pa "));
	free(t);
}

/* A reader keeps what it opened while the mapping goes away under it. */
static void test_rm_while_reading(void)
{
	char buf[4096];
	int fd;
	ssize_t n;

	VT_EQ_INT(map_text(P("vas/0/maps/readme", M), "0x3a0-0x3af\n"), 0);
	fd = open(P("vas/0/maps/readme", M), O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	VT_EQ_INT(read(fd, buf, 10), 10);
	VT_EQ_INT(unlink(P("vas/0/maps/readme", M)), 0);
	n = read(fd, buf + 10, sizeof(buf) - 11);
	CU_ASSERT(n > 0);
	buf[n > 0 ? 10 + n : 10] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "pfns   0x3a0-0x3af"));
	VT_EQ_INT(close(fd), 0);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/readme", M)));
}

/* ---- concurrency ----------------------------------------------------- */

static int leaf_cmp(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;

	return x->va_first < y->va_first ? -1 : x->va_first > y->va_first;
}

/* Parses the leaf lines of pagetable ("... va A-B pa C-D ..."). */
static size_t pagetable_leaves(const char *as, struct leaf **out)
{
	char path[512], *t = slurp(pathf(path, sizeof(path), "%s/vas/%s/pagetable", M, as), NULL);
	size_t n = 0, cap = 1024;
	struct leaf *l = malloc(cap * sizeof(*l));
	char *line = t;

	while (t && l && line && *line) {
		char *nl = strchr(line, '\n'), *va, *pa;
		if (nl)
			*nl = '\0';
		va = strstr(line, " va ");
		pa = strstr(line, " pa ");
		if (va && pa) {
			if (n == cap) {
				struct leaf *b = realloc(l, cap * 2 * sizeof(*l));
				if (!b)
					break;
				l = b;
				cap *= 2;
			}
			l[n].va_first = strtoull(va + 4, &va, 16);
			l[n].va_last = strtoull(va + 1, NULL, 16);
			l[n].pa_first = strtoull(pa + 4, NULL, 16);
			n++;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(t);
	qsort(l, n, sizeof(*l), leaf_cmp);
	*out = l;
	return n;
}

static const struct leaf *leaf_find(const struct leaf *l, size_t n, uint64_t va)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l[mid].va_last < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && l[lo].va_first <= va && va <= l[lo].va_last ? &l[lo] : NULL;
}

/* pagetable, translate/ (walker and GPU) and the mapping files agree,
 * page by page; nothing is mapped that no file describes. */
static void check_consistency(const char *as)
{
	static uint64_t pfns[1 << 16];
	char dirpath[512], path[800];
	uint64_t total = 0, leaf_bytes = 0;
	struct leaf *leaves = NULL;
	size_t nleaves, i, checked = 0;
	struct dirent *de;
	DIR *dir;

	nleaves = pagetable_leaves(as, &leaves);
	for (i = 0; i < nleaves; i++)
		leaf_bytes += leaves[i].va_last - leaves[i].va_first + 1;
	dir = opendir(pathf(dirpath, sizeof(dirpath), "%s/vas/%s/maps", M, as));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	while ((de = readdir(dir))) {
		struct mapdesc d;
		size_t n, k;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		if (!describe(path, &d))
			continue; /* removed meanwhile */
		n = pfns_expand(d.pfns, pfns, sizeof(pfns) / sizeof(pfns[0]));
		VT_EQ_U64(n, d.pages);
		total += d.pages;
		for (k = 0; k < n; k++) {
			uint64_t va = d.va + k * 4096;
			const struct leaf *l = leaf_find(leaves, nleaves, va);
			if (!l || l->pa_first + (va - l->va_first) != pfns[k] << 12) {
				fprintf(stderr, "  %s page %zu (va 0x%llx): pagetable %s, expected pa 0x%llx\n",
					de->d_name, k, (unsigned long long)va, l ? "differs" : "lacks it",
					(unsigned long long)(pfns[k] << 12));
				CU_FAIL("pagetable disagrees with a mapping file");
				break;
			}
			check_mapped(as, va, pfns[k] << 12, d.access);
			checked++;
		}
	}
	closedir(dir);
	printf("\n  %zu pages checked against pagetable, translate/ and the GPU's MMU\n", checked);
	VT_EQ_U64(leaf_bytes, total * 4096);
	VT_EQ_U64(file_u64(pathf(path, sizeof(path), "%s/vas/%s/stats", M, as), "mapped_pages"),
		  total);
	free(leaves);
}

#define WRITERS 4
#define FILES_PER_WRITER 24
#define REMOVERS 2

/* A writer: random PFN lists (ranges and single pages) in the upper half of
 * VRAM, through write(2), or the shell for writer 0. Exits with the number
 * of unexpected failures. */
static int writer_main(int w, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + (uint64_t)w + 1;
	int bad = 0, j;

	for (j = 0; j < FILES_PER_WRITER; j++) {
		char text[512], path[512];
		size_t len = 0;
		int k, parts, e;

		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		parts = 1 + (int)(x % 6);
		for (k = 0; k < parts; k++) {
			uint64_t pfn, count;
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			pfn = VRAM_PAGES / 2 + x % (VRAM_PAGES / 2 - 64);
			count = 1 + (x >> 40) % 24;
			len += (size_t)snprintf(text + len, sizeof(text) - len,
						count > 1 ? "0x%llx-0x%llx\n" : "0x%llx\n",
						(unsigned long long)pfn,
						(unsigned long long)(pfn + count - 1));
		}
		if (j % 5 == 0)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "ro\n");
		if (w == 0) {
			for (k = 0; text[k]; k++) /* one line for echo */
				if (text[k] == '\n')
					text[k] = ' ';
			e = sh("echo %s > vas/0/maps/w%d_%d", text, w, j) ? EIO : 0;
		} else {
			e = map_text(pathf(path, sizeof(path), "%s/vas/0/maps/w%d_%d", M, w, j), text);
		}
		if (e) {
			fprintf(stderr, "  writer %d file %d: %s\n", w, j, strerror(e));
			bad++;
		}
	}
	return bad;
}

/* A remover: removes the odd-numbered files as they appear. EBUSY (still
 * being written) and ENOENT (not there yet) are expected. */
static int remover_main(int r)
{
	double end = now() + 60;
	int removed = 0, bad = 0;
	const int want = WRITERS * (FILES_PER_WRITER / 2) / REMOVERS;

	while (removed < want && now() < end) {
		int w, j;
		for (w = 0; w < WRITERS; w++)
			for (j = 1 + 2 * r; j < FILES_PER_WRITER; j += 2 * REMOVERS) {
				char path[512];
				if (unlink(pathf(path, sizeof(path), "%s/vas/0/maps/w%d_%d", M, w, j)) == 0)
					removed++;
				else if (errno != ENOENT && errno != EBUSY)
					bad++;
			}
		sleep_ms(5);
	}
	if (removed < want)
		fprintf(stderr, "  remover %d removed %d of %d\n", r, removed, want);
	return bad + (removed < want);
}

static void *reader_main(void *arg)
{
	volatile bool *stop = arg;
	long bad = 0;

	while (!*stop) {
		char *t = slurp(P("vas/0/pagetable", M), NULL);
		if (!t) {
			fprintf(stderr, "  reader: vas/0/pagetable: %s\n", strerror(errno));
			bad++;
		}
		free(t);
		DIR *d = opendir(P("vas/0/maps", M));
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[700];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/vas/0/maps/%s", M, de->d_name);
			t = slurp(path, NULL);
			if (!t && errno != ENOENT && errno != EBUSY) {
				fprintf(stderr, "  reader: vas/0/maps/%s: %s\n", de->d_name,
					strerror(errno));
				bad++;
			}
			free(t);
		}
		if (d)
			closedir(d);
	}
	return (void *)bad;
}

static void test_concurrency(void)
{
	pid_t pids[WRITERS + REMOVERS];
	volatile bool stop = false;
	pthread_t readers[2];
	uint64_t seed = vt_seed("fs concurrency");
	int i, st, failures = 0;
	void *rv;

	for (i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&readers[i], NULL, reader_main, (void *)&stop) == 0);
	for (i = 0; i < WRITERS + REMOVERS; i++) {
		pids[i] = fork();
		CU_ASSERT_FATAL(pids[i] >= 0);
		if (pids[i] == 0)
			_exit(i < WRITERS ? writer_main(i, seed) : remover_main(i - WRITERS));
	}
	for (i = 0; i < WRITERS + REMOVERS; i++) {
		CU_ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "  %s %d: status 0x%x\n", i < WRITERS ? "writer" : "remover",
				i, st);
			failures++;
		}
	}
	stop = true;
	for (i = 0; i < 2; i++) {
		pthread_join(readers[i], &rv);
		VT_EQ_INT((long)rv, 0);
	}
	VT_EQ_INT(failures, 0);

	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), WRITERS * FILES_PER_WRITER / 2);
	check_consistency("0");

	/* remove the rest, many at once */
	VT_EQ_INT(sh("rm vas/0/maps/* 2>/dev/null & rm -f vas/0/maps/* 2>/dev/null & wait; "
		     "rm -f vas/0/maps/*"), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
	check_consistency("0");
}

/* ---- streamed files: pagetable and big descriptions ------------------ */

#define BIG_PAGES 60000             /* scattered: one pagetable line each */
#define BIG_PFN0 0x20000ull         /* every other page from here */

/* Maps BIG_PAGES scattered pages at path, written in 1 MiB pieces. */
static int map_big(const char *path)
{
	size_t cap = BIG_PAGES * 12 + 1, len = 0, off = 0, i;
	char *text = malloc(cap);
	int fd, e = 0;

	if (!text)
		return ENOMEM;
	for (i = 0; i < BIG_PAGES; i++)
		len += (size_t)snprintf(text + len, cap - len, "0x%llx\n",
					(unsigned long long)(BIG_PFN0 + 2 * i));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		free(text);
		return errno;
	}
	while (off < len && !e) {
		size_t n = len - off < (1u << 20) ? len - off : (1u << 20);
		ssize_t w = write(fd, text + off, n);
		if (w <= 0)
			e = w ? errno : EIO;
		else
			off += (size_t)w;
	}
	if (close(fd) && !e)
		e = errno;
	free(text);
	return e;
}

/* What maps/FILE of map_big says, given its va. */
static char *big_description(uint64_t va, size_t *len)
{
	size_t cap = 200 + BIG_PAGES * 12, n = 0, i;
	char *t = malloc(cap);

	if (!t)
		return NULL;
	n += (size_t)snprintf(t + n, cap - n, "va     0x%016llx\nsize   0x%llx\npages  %d\n"
			      "access rw\npfns  ", (unsigned long long)va,
			      (unsigned long long)BIG_PAGES * 4096, BIG_PAGES);
	for (i = 0; i < BIG_PAGES; i++)
		n += (size_t)snprintf(t + n, cap - n, " 0x%llx",
				      (unsigned long long)(BIG_PFN0 + 2 * i));
	n += (size_t)snprintf(t + n, cap - n, "\nptes   4K:%d\nalloc  no\n", BIG_PAGES);
	*len = n;
	return t;
}

/* pread of exactly len bytes at off (fewer at the end); -1 on error. */
static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, off + (off_t)done);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* The file read in pieces of random sizes, and at random offsets, gives the
 * bytes of want; also after pauses longer than the producer waits. */
static void check_pieces(const char *path, const char *want, size_t len, unsigned int nrandom)
{
	char *buf = malloc(len + 4096), *piece = malloc(300000);
	size_t off = 0, expect;
	unsigned int i;
	int fd = open(path, O_RDONLY);
	ssize_t r;

	CU_ASSERT_FATAL(fd >= 0 && buf && piece);
	/* sequential, random sizes */
	for (;;) {
		size_t n = 1 + vt_rand_below(200000);
		r = read(fd, buf + off, n < len + 4096 - off ? n : len + 4096 - off);
		CU_ASSERT(r >= 0);
		if (r <= 0)
			break;
		off += (size_t)r;
		if (off == len + 4096)
			break;
	}
	VT_EQ_U64(off, len);
	if (off == len && memcmp(buf, want, len))
		CU_FAIL("sequential reads in random pieces differ from one read");
	/* random offsets, before and after what was read */
	for (i = 0; i < nrandom; i++) {
		size_t at = vt_rand_below(len + 1000), n = 1 + vt_rand_below(300000);
		r = pread_full(fd, piece, n, (off_t)at);
		expect = at >= len ? 0 : n < len - at ? n : len - at;
		if (r != (ssize_t)expect || (expect && memcmp(piece, want + at, expect))) {
			fprintf(stderr, "  %s: pread(%zu, %zu) gave %zd bytes%s\n", path, n, at, r,
				r == (ssize_t)expect ? " that differ" : "");
			CU_FAIL("pread at a random offset");
			break;
		}
	}
	/* far beyond the end */
	VT_EQ_INT(pread(fd, piece, 4096, (off_t)1 << 62), 0);
	/* a slow reader: the producer pauses and resumes */
	off = len / 3;
	for (i = 0; i < 3 && off < len; i++) {
		size_t n = 64 << 10;
		r = pread_full(fd, piece, n, (off_t)off);
		expect = n < len - off ? n : len - off;
		CU_ASSERT(r == (ssize_t)expect && !memcmp(piece, want + off, expect));
		off += expect;
		sleep_ms(250);
	}
	close(fd);
	free(piece);
	free(buf);
}

/* pagetable is made as it is read: any piece at any offset is the piece of
 * one whole read; st_size is 0 and every tool reads it all. */
static void test_pagetable_pieces(void)
{
	char copy[600], *t;
	struct stat st;
	size_t len, lines = 0, i;

	vt_seed("fs pagetable pieces");
	VT_EQ_INT(map_big(P("vas/0/maps/big", M)), 0);
	t = slurp(P("vas/0/pagetable", M), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (i = 0; i < len; i++)
		lines += t[i] == '\n';
	printf("\n  pagetable: %zu bytes, %zu lines\n", len, lines);
	CU_ASSERT(lines >= BIG_PAGES);
	CU_ASSERT(len > 4u << 20); /* more than a stream keeps */
	CU_ASSERT(stat(P("vas/0/pagetable", M), &st) == 0);
	VT_EQ_U64(st.st_size, 0);
	check_pieces(P("vas/0/pagetable", M), t, len, 24);

	/* the usual tools, on a file of size 0 */
	pathf(copy, sizeof(copy), "%s/pagetable.copy", main_mnt.dir);
	VT_EQ_INT(sh("test \"$(wc -c < vas/0/pagetable)\" = %zu", len), 0);
	VT_EQ_INT(sh("test \"$(cat vas/0/pagetable | wc -l)\" = %zu", lines), 0);
	VT_EQ_INT(sh("test \"$(grep -c \" pa \" vas/0/pagetable)\" -ge %d", BIG_PAGES), 0);
	VT_EQ_INT(sh("cp vas/0/pagetable %s && test \"$(wc -c < %s)\" = %zu", copy, copy, len), 0);
	VT_EQ_INT(sh("less vas/0/pagetable < /dev/null | cmp -s - %s", copy), 0);
	VT_EQ_INT(sh("python3 -c \"import sys; sys.exit(len(open(\\\"vas/0/pagetable\\\").read()) "
		     "!= %zu)\" 2>/dev/null || ! command -v python3 >/dev/null", len), 0);
	unlink(copy);
	free(t);
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
}

/* A big description: exact st_size right after close, the same bytes in any
 * pieces, and still whole for a reader that opened it before rm. */
static void test_big_description(void)
{
	char *want, *t, buf[256];
	struct stat st;
	size_t len, got, off;
	uint64_t va = 0;
	int fd;
	ssize_t r;

	vt_seed("fs big description");
	VT_EQ_INT(map_big(P("vas/0/maps/big", M)), 0);
	CU_ASSERT(stat(P("vas/0/maps/big", M), &st) == 0);
	t = slurp(P("vas/0/maps/big", M), &got);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_TRUE(kv_u64(t, "va", &va));
	want = big_description(va, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	VT_EQ_U64(got, len);
	VT_EQ_U64(st.st_size, len);
	CU_ASSERT(got == len && !memcmp(t, want, len));
	free(t);
	check_pieces(P("vas/0/maps/big", M), want, len, 24);
	VT_EQ_INT(sh("test \"$(wc -c < vas/0/maps/big)\" = %zu", len), 0);

	/* opened before rm: the rest still comes, the name is gone */
	fd = open(P("vas/0/maps/big", M), O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	t = malloc(len + 1);
	CU_ASSERT_FATAL(t != NULL);
	r = read(fd, t, 100000);
	CU_ASSERT(r == 100000);
	off = r > 0 ? (size_t)r : 0;
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/big", M)));
	while ((r = read(fd, t + off, len + 1 - off)) > 0)
		off += (size_t)r;
	VT_EQ_U64(off, len);
	CU_ASSERT(off == len && !memcmp(t, want, len));
	CU_ASSERT(fstat(fd, &st) == 0 && (size_t)st.st_size == len);
	VT_EQ_INT(close(fd), 0);
	free(t);
	free(want);

	/* the same name again at once: a new file, its own description */
	VT_EQ_INT(map_text(P("vas/0/maps/big", M), "0x700\n"), 0);
	t = slurp(P("vas/0/maps/big", M), &got);
	CU_ASSERT(t && strstr(t, "pfns   0x700\n"));
	CU_ASSERT(stat(P("vas/0/maps/big", M), &st) == 0 && (size_t)st.st_size == got);
	free(t);
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	snprintf(buf, sizeof(buf), "%s", P("vas/0/maps/big", M));
	CU_ASSERT_FALSE(exists(buf));
}

/* Every open shows the current state, whatever the kernel caches, and a
 * reader that stopped half way does not hold up maps and rm. */
static void test_current_content(void)
{
	char buf[65536], *t;
	struct stat st;
	size_t len;
	double t0;
	int fd, i;

	/* stat right after close: the description's size, not what was written */
	VT_EQ_INT(map_text(P("vas/0/maps/cur", M), "0x710-0x71f 0x730 # comment to make it long\n"), 0);
	CU_ASSERT(stat(P("vas/0/maps/cur", M), &st) == 0);
	t = slurp(P("vas/0/maps/cur", M), &len);
	CU_ASSERT(t && (size_t)st.st_size == len && strstr(t, "pfns   0x710-0x71f 0x730\n"));
	free(t);
	t = slurp(P("vas/0/stats", M), NULL);
	CU_ASSERT(t && strstr(t, "mappings"));
	free(t);
	/* rm: gone at once; the same name maps again at once */
	VT_EQ_INT(unlink(P("vas/0/maps/cur", M)), 0);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/cur", M)));
	t = slurp(P("vas/0/pagetable", M), NULL);
	CU_ASSERT(t && !strstr(t, " pa 0x0000000000710000"));
	free(t);
	VT_EQ_INT(map_text(P("vas/0/maps/cur", M), "0x740\n"), 0);
	CU_ASSERT_TRUE(exists(P("vas/0/maps/cur", M)));
	t = slurp(P("vas/0/pagetable", M), NULL);
	CU_ASSERT(t && strstr(t, " pa 0x0000000000740000-0x0000000000740fff"));
	free(t);
	/* a failed map leaves no name behind, even for a moment */
	VT_EQ_INT(map_text(P("vas/0/maps/cur2", M), "va=0x40000000-0x40000fff 0x10 0x11\n"), ENOSPC);
	CU_ASSERT_FALSE(exists(P("vas/0/maps/cur2", M)));
	VT_EQ_INT(map_text(P("vas/0/maps/cur2", M), "0x750\n"), 0);
	VT_EQ_INT(unlink(P("vas/0/maps/cur2", M)), 0);
	VT_EQ_INT(unlink(P("vas/0/maps/cur", M)), 0);

	/* a reader stopped in the middle of a big pagetable */
	VT_EQ_INT(map_big(P("vas/0/maps/big", M)), 0);
	fd = open(P("vas/0/pagetable", M), O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	t0 = now();
	for (i = 0; i < 20; i++) {
		char path[512];
		pathf(path, sizeof(path), "%s/vas/0/maps/w%d", M, i);
		VT_EQ_INT(map_text(path, "0x760-0x761\n"), 0);
		VT_EQ_INT(unlink(path), 0);
	}
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	printf("\n  20 maps and rms with a reader stopped in pagetable: %.3f s\n", now() - t0);
	CU_ASSERT(now() - t0 < 10);
	/* it reads on: whole lines from wherever the tables are now */
	{
		ssize_t r;
		size_t total = 0;
		char last = '\n';
		while ((r = read(fd, buf, sizeof(buf))) > 0) {
			total += (size_t)r;
			last = buf[r - 1];
		}
		CU_ASSERT(r == 0);
		CU_ASSERT(last == '\n');
		(void)total;
	}
	VT_EQ_INT(close(fd), 0);
}

struct slow_reader {
	volatile bool *stop;
	long bad, reads;
};

/* Reads pagetable slowly, again and again; every read ends in whole lines. */
static void *slow_reader_main(void *arg)
{
	struct slow_reader *sr = arg;
	static __thread char buf[1 << 16];

	while (!*sr->stop) {
		int fd = open(P("vas/0/pagetable", M), O_RDONLY);
		ssize_t r;
		char last = '\n';

		if (fd < 0) {
			sr->bad++;
			break;
		}
		while ((r = read(fd, buf, sizeof(buf))) > 0) {
			last = buf[r - 1];
			sleep_ms(20);
			if (*sr->stop)
				break;
		}
		if (r < 0 || (r == 0 && last != '\n'))
			sr->bad++;
		close(fd);
		sr->reads++;
	}
	return NULL;
}

/* Slow readers of a big pagetable and of a big description while another
 * process maps and removes: nobody waits for the readers. */
static void test_slow_readers(void)
{
	volatile bool stop = false;
	struct slow_reader sr[2] = { { &stop, 0, 0 }, { &stop, 0, 0 } };
	pthread_t th[2];
	double t0;
	int i;

	VT_EQ_INT(map_big(P("vas/0/maps/big", M)), 0);
	for (i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, slow_reader_main, &sr[i]) == 0);
	sleep_ms(100);
	t0 = now();
	for (i = 0; i < 30; i++) {
		char path[512];
		pathf(path, sizeof(path), "%s/vas/0/maps/s%d", M, i);
		VT_EQ_INT(map_text(path, "0x780-0x783\n"), 0);
		VT_EQ_INT(unlink(path), 0);
	}
	printf("\n  30 maps and rms beside 2 slow readers: %.3f s\n", now() - t0);
	CU_ASSERT(now() - t0 < 10);
	stop = true;
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		VT_EQ_INT(sr[i].bad, 0);
	}
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mappings"), 0);
}

/* ---- mounts of their own --------------------------------------------- */

static void test_unmount_with_mappings(void)
{
	static const char *const args[] = { "--sim=gh100", "--vram-size=256M", NULL };
	static struct mnt m; /* stays valid for mnt_cleanup_all after a fatal assertion */
	char path[600];
	const char *saved = M;

	CU_ASSERT_FATAL(mnt_start(&m, args) == 0);
	M = m.path;
	/* MMU v3 on this chip */
	VT_EQ_U64(file_u64(P("gpu/mmu_version", M), NULL), 3);
	VT_EQ_U64(file_u64(P("gpu/va_bits", M), NULL), 57);
	VT_EQ_INT(map_text(pathf(path, sizeof(path), "%s/vas/0/maps/a", M), "0x100-0x1ff\n"), 0);
	VT_EQ_INT(map_text(pathf(path, sizeof(path), "%s/vas/0/maps/b", M), "alloc=4M\n"), 0);
	VT_EQ_INT(mkdir(pathf(path, sizeof(path), "%s/vas/x", M), 0755), 0);
	VT_EQ_INT(map_text(pathf(path, sizeof(path), "%s/vas/x/maps/c", M), "va=0x1000000000000 0x300\n"), 0);
	check_mapping_file("0", pathf(path, sizeof(path), "%s/vas/0/maps/a", M), 32);
	check_mapped("x", 0x1000000000000ull, 0x300000, "rw");
	/* a writer that never closes */
	{
		int fd = open(pathf(path, sizeof(path), "%s/vas/0/maps/open", M),
			      O_WRONLY | O_CREAT | O_EXCL, 0644);
		CU_ASSERT(fd >= 0);
		VT_EQ_INT(write(fd, "0x5", 3), 3);
		close(fd); /* closing maps it; unmount must unmap it too */
	}
	M = saved;
	VT_EQ_INT(mnt_stop(&m), 0);
	CU_ASSERT_FALSE(is_mounted(m.path));
	CU_ASSERT_TRUE(mnt_stderr_clean(&m));
	mnt_cleanup(&m);
}

static void test_sigterm(void)
{
	static char opts[400];
	static const char *args[] = { "-o", opts, NULL };
	static struct mnt m;
	char path[600], vram[300];
	const char *saved = M;
	struct stat st;
	char *t;

	/* the VRAM in a file, every option given with -o */
	snprintf(vram, sizeof(vram), "%s/vram.bin", main_mnt.dir);
	snprintf(opts, sizeof(opts), "sim=tu102,vram_size=128M,vram_file=%s", vram);
	CU_ASSERT_FATAL(mnt_start(&m, args) == 0);
	CU_ASSERT(stat(vram, &st) == 0 && st.st_size >= 128 << 20);
	M = m.path;
	t = slurp(P("gpu/chipset", M), NULL);
	CU_ASSERT_STRING_EQUAL(t ? t : "", "TU102\n");
	free(t);
	VT_EQ_U64(file_u64(P("gpu/vram_size", M), NULL), 128 << 20);
	VT_EQ_INT(map_text(pathf(path, sizeof(path), "%s/vas/0/maps/a", M), "0x100-0x1ff\n"), 0);
	check_mapping_file("0", pathf(path, sizeof(path), "%s/vas/0/maps/a", M), 16);
	M = saved;
	CU_ASSERT(kill(m.pid, SIGTERM) == 0);
	VT_EQ_INT(mnt_wait(&m, 30), 0);
	CU_ASSERT_FALSE(is_mounted(m.path));
	CU_ASSERT_TRUE(mnt_stderr_clean(&m));
	m.mounted = false;
	mnt_cleanup(&m);
}

/* One thread for everything (-s) and small writes (-o max_write, one of
 * libfuse's connection options): big mappings, streamed files and rm
 * still work, and the daemon stops cleanly. */
static void test_single_thread(void)
{
	static const char *args[] = { "-s", "-o", "max_write=65536", "--vram-size=1G", NULL };
	static struct mnt m;
	const char *saved = M;
	char *t, *want;
	size_t len, wlen;
	uint64_t va = 0;

	CU_ASSERT_FATAL(mnt_start(&m, args) == 0);
	M = m.path;
	VT_EQ_INT(map_big(P("vas/0/maps/big", M)), 0);
	t = slurp(P("vas/0/maps/big", M), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_TRUE(kv_u64(t, "va", &va));
	want = big_description(va, &wlen);
	CU_ASSERT(want && wlen == len && !memcmp(t, want, len));
	free(want);
	free(t);
	t = slurp(P("vas/0/pagetable", M), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	check_pieces(P("vas/0/pagetable", M), t, len, 4);
	free(t);
	VT_EQ_INT(unlink(P("vas/0/maps/big", M)), 0);
	VT_EQ_U64(file_u64(P("vas/0/stats", M), "mapped_pages"), 0);
	M = saved;
	CU_ASSERT(kill(m.pid, SIGTERM) == 0);
	VT_EQ_INT(mnt_wait(&m, 30), 0);
	CU_ASSERT_FALSE(is_mounted(m.path));
	CU_ASSERT_TRUE(mnt_stderr_clean(&m));
	m.mounted = false;
	mnt_cleanup(&m);
}

/* mount(8) through mount.fuse3, as fstab does it. mount(8) resets PATH, so
 * `-t fuse.vmmfs` finds only an installed vmmfs; the equivalent
 * `-t fuse PROGRAM#SOURCE` form reaches the built one. Both hand
 * SOURCE MOUNTPOINT -o OPTIONS to the daemon. */
static void test_mount_helper(void)
{
	char cmd[1200], p[600];
	static struct mnt m;
	char *t;
	int r;

	if (access("/sbin/mount.fuse3", X_OK) && access("/usr/sbin/mount.fuse3", X_OK)) {
		CU_FAIL("mount.fuse3 is missing (apt-get install fuse3)");
		return;
	}
	memset(&m, 0, sizeof(m));
	snprintf(m.dir, sizeof(m.dir), "/tmp/vmmfs_fs_test.XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(m.dir) != NULL);
	snprintf(m.path, sizeof(m.path), "%s/mnt", m.dir);
	CU_ASSERT_FATAL(mkdir(m.path, 0755) == 0);
	mnt_track(&m);
	snprintf(cmd, sizeof(cmd), "mount -t fuse '%s#sim:ad102' '%s' -o vram_size=64M,allow_other "
		 "2>&1", VMMFS_BIN, m.path);
	r = system(cmd);
	VT_EQ_INT(WIFEXITED(r) ? WEXITSTATUS(r) : -1, 0);
	CU_ASSERT_TRUE(is_mounted(m.path));
	t = slurp(pathf(p, sizeof(p), "%s/gpu/chipset", m.path), NULL);
	CU_ASSERT_STRING_EQUAL(t ? t : "", "AD102\n");
	free(t);
	VT_EQ_U64(file_u64(pathf(p, sizeof(p), "%s/gpu/vram_size", m.path), NULL), 64 << 20);
	t = slurp("/proc/self/mounts", NULL);
	{
		/* this mount's line: allow_other, and no default_permissions (the
		 * daemon checks permissions itself, and logs each refusal) */
		char *line = t ? strstr(t, m.path) : NULL, *eol;

		CU_ASSERT_PTR_NOT_NULL_FATAL(line);
		eol = strchr(line, '\n');
		if (eol)
			*eol = '\0';
		CU_ASSERT_PTR_NULL(strstr(line, "default_permissions"));
		CU_ASSERT_PTR_NOT_NULL(strstr(line, "allow_other"));
	}
	free(t);
	/* the daemon's own checks answer access(2), root included: read and
	 * write anything, execute only what has an x bit (nothing here) */
	VT_EQ_INT(access(pathf(p, sizeof(p), "%s/gpu/chipset", m.path), R_OK | W_OK), 0);
	VT_EQ_INT(access(pathf(p, sizeof(p), "%s/gpu/chipset", m.path), X_OK), -1);
	VT_EQ_INT(errno, EACCES);
	VT_EQ_INT(access(pathf(p, sizeof(p), "%s/vas/0/maps", m.path), W_OK | X_OK), 0);
	/* what another user may do with allow_other: tests/perm_test.c */
	mnt_unmount(&m);
	CU_ASSERT_FALSE(is_mounted(m.path));
	mnt_untrack(&m);
	mnt_cleanup(&m);
}

static void test_command_line(void)
{
	char *out = NULL;

	VT_EQ_INT(run_daemon("--help", &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--sim[=CHIP]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--vram-range=START-END"));
	free(out);
	VT_EQ_INT(run_daemon("--version", &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vmmfs " VMMFS_VERSION_STRING));
	free(out);
	VT_EQ_INT(run_daemon("--state=/tmp/x /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs the simulated GPU with --vram-file"));
	free(out);
	VT_EQ_INT(run_daemon("--device=0000:65:00.0 /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs --vram-range=START-END"));
	free(out);
	VT_EQ_INT(run_daemon("-o device=0000:65:00.0 /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs --vram-range=START-END"));
	free(out);
	VT_EQ_INT(run_daemon("-o device=0000:65:00.0,vram_range=1G-2G,pci_access=dump:/nonexistent "
			     "/tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot open the GPU"));
	free(out);
	VT_EQ_INT(run_daemon("--device=0000:65:00.0 --vram-range=2G-1G /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--vram-range=2G-1G"));
	free(out);
	VT_EQ_INT(run_daemon("--sim=tu102 --device=0000:65:00.0 --vram-range=1G-2G /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "do not apply"));
	free(out);
	VT_EQ_INT(run_daemon("-o state=/tmp/x /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs the simulated GPU with --vram-file"));
	free(out);
	VT_EQ_INT(run_daemon("--vram-size=lots /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--vram-size=lots"));
	free(out);
	VT_EQ_INT(run_daemon("-o vram_size=lots /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--vram-size=lots"));
	free(out);
	VT_EQ_INT(run_daemon("--sim=nosuchchip /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot open the GPU"));
	free(out);
	VT_EQ_INT(run_daemon("bogus:source /tmp", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown source"));
	free(out);
	VT_EQ_INT(run_daemon("", &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage"));
	free(out);
	/* --list over a saved lspci listing (a libpci-less build says so) */
	if (run_daemon("--list --pci-access=dump:" TESTS_SRCDIR "/data/nvidia-gpus.lspci", &out) == 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "0000:02:00.0"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "GA102"));
		free(out);
		VT_EQ_INT(run_daemon("-o pci_access=dump:" TESTS_SRCDIR "/data/malformed.lspci --list",
				     &out), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "--list failed"));
	} else {
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "built without"));
	}
	free(out);
}

static size_t count_lines(const char *t)
{
	size_t n = 0;

	for (; t && *t; t++)
		n += *t == '\n';
	return n;
}

/* The log keeps the newest lines, newest last, and stays bounded. */
static void test_log_bounded(void)
{
	size_t len0, len1, lines0, lines1;
	char *t, path[512];
	int i;

	for (i = 0; i < 1100; i++)
		map_text(pathf(path, sizeof(path), "%s/vas/0/maps/l%04d", M, i), "0x1g\n");
	t = slurp(P("log", M), &len0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	lines0 = count_lines(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(t + (len0 > 400 ? len0 - 400 : 0),
				      "vas/0/maps/l1099: write refused"));
	free(t);
	for (i = 0; i < 300; i++)
		map_text(pathf(path, sizeof(path), "%s/vas/0/maps/m%04d", M, i), "0x1g\n");
	t = slurp(P("log", M), &len1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	lines1 = count_lines(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(t + (len1 > 400 ? len1 - 400 : 0),
				      "vas/0/maps/m0299: write refused"));
	CU_ASSERT_PTR_NULL(strstr(t, "vas/0/maps/l0000:"));  /* the oldest went */
	free(t);
	VT_EQ_U64(lines1, lines0);
	CU_ASSERT(lines1 >= 1000);
	CU_ASSERT(len1 < len0 + len0 / 10);
}

/* ---- main ------------------------------------------------------------ */

static const struct vt_test node_tests[] = {
	{ "nodes", test_nodes },
	{ "translate_names", test_translate_names },
	{ NULL, NULL },
};

static const struct vt_test map_tests[] = {
	{ "map_echo", test_map_echo },
	{ "map_options", test_map_options },
	{ "map_errors", test_map_errors },
	{ "builtin_echo", test_builtin_echo },
	{ "split_writes", test_split_writes },
	{ "ebusy", test_ebusy },
	{ "touch_leaves_nothing", test_touch_leaves_nothing },
	{ "rename", test_rename },
	{ "forbidden", test_forbidden },
	{ "vas_dirs", test_vas_dirs },
	{ NULL, NULL },
};

static const struct vt_test inspect_tests[] = {
	{ "mem", test_mem },
	{ "pagetable_runs", test_pagetable_runs },
	{ "rm_while_reading", test_rm_while_reading },
	{ "pagetable_pieces", test_pagetable_pieces },
	{ "big_description", test_big_description },
	{ "current_content", test_current_content },
	{ "slow_readers", test_slow_readers },
	{ "concurrency", test_concurrency },
	{ "log_bounded", test_log_bounded },
	{ NULL, NULL },
};

static const struct vt_test mount_tests[] = {
	{ "command_line", test_command_line },
	{ "unmount_with_mappings", test_unmount_with_mappings },
	{ "sigterm", test_sigterm },
	{ "single_thread", test_single_thread },
	{ "mount_helper", test_mount_helper },
	{ NULL, NULL },
};

static void register_tests(void)
{
	vt_add_suite("fs_nodes", node_tests);
	vt_add_suite("fs_mapping", map_tests);
	vt_add_suite("fs_inspect", inspect_tests);
	vt_add_suite("fs_mounts", mount_tests);
}

int main(int argc, char **argv)
{
	static const char *const args[] = { "--vram-size=1G", NULL };

	return fsh_main("fs_test", &main_mnt, args, &M, argc, argv, register_tests);
}
