/* SPDX-License-Identifier: MIT */
/*
 * Mapping-file parser: grammar, every error with its errno, words split
 * across pieces at every byte, comments, options, large inputs.
 */
#include "helper.h"
#include "mapfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define VRAM_PAGES (1ull << 20)  /* 4 GiB of VRAM */
#define VA_SIZE (1ull << 49)

/* Feeds text cut at the given offsets (ascending) and finishes. Returns the
 * first error, 0 on success. */
static int parse_cut(struct vmmfs_mapfile *mf, const char *text, size_t len,
		     const size_t *cuts, size_t ncuts)
{
	size_t prev = 0, i;
	int r;

	vmmfs_mapfile_init(mf, VRAM_PAGES, VA_SIZE);
	for (i = 0; i <= ncuts; i++) {
		size_t next = i < ncuts ? cuts[i] : len;
		r = vmmfs_mapfile_feed(mf, text + prev, next - prev);
		if (r)
			return r;
		prev = next;
	}
	return vmmfs_mapfile_finish(mf);
}

static int parse(struct vmmfs_mapfile *mf, const char *text)
{
	return parse_cut(mf, text, strlen(text), NULL, 0);
}

/* Same outcome: error, options and PFN runs. */
static bool same(const struct vmmfs_mapfile *a, const struct vmmfs_mapfile *b)
{
	if (a->error != b->error || a->va_kind != b->va_kind || a->va_start != b->va_start ||
	    a->va_end != b->va_end || a->read_only != b->read_only ||
	    a->alloc_bytes != b->alloc_bytes || a->npages != b->npages || a->nruns != b->nruns)
		return false;
	return !a->nruns || !memcmp(a->runs, b->runs, a->nruns * sizeof(*a->runs));
}

static void test_numbers(void)
{
	static const struct { const char *s; int err; uint64_t v; } cases[] = {
		{ "0", 0, 0 }, { "42", 0, 42 }, { "0x0", 0, 0 }, { "0X1F", 0, 0x1f },
		{ "0xffffffffffffffff", 0, UINT64_MAX },
		{ "0x0000000000000000000001", 0, 1 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "0x10000000000000000", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "9999999999999999999999a", -EINVAL, 0 },
		{ "0x1000000000000000000g", -EINVAL, 0 },
		{ "", -EINVAL, 0 }, { "0x", -EINVAL, 0 }, { "x1", -EINVAL, 0 },
		{ "12a", -EINVAL, 0 }, { "0xg", -EINVAL, 0 }, { " 1", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 }, { "1.5", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < N_ELEMS(cases); i++) {
		uint64_t v = 0xdead;
		int r = vmmfs_parse_u64(cases[i].s, strlen(cases[i].s), &v);
		if (r != cases[i].err)
			fprintf(stderr, "  parse_u64('%s') = %d, expected %d\n", cases[i].s, r, cases[i].err);
		CU_ASSERT_EQUAL(r, cases[i].err);
		if (!r)
			VT_EQ_U64(v, cases[i].v);
		else
			VT_EQ_U64(v, 0xdead); /* untouched on error */
	}
}

static void test_sizes(void)
{
	static const struct { const char *s; int err; uint64_t v; } cases[] = {
		{ "4096", 0, 4096 }, { "4k", 0, 4096 }, { "4K", 0, 4096 }, { "2M", 0, 2 << 20 },
		{ "2m", 0, 2 << 20 }, { "1G", 0, 1ull << 30 }, { "3T", 0, 3ull << 40 },
		{ "0x10K", 0, 0x4000 }, { "0x2b", 0, 0x2b },
		{ "16777215T", 0, 16777215ull << 40 }, { "16777216T", -ERANGE, 0 },
		{ "M", -EINVAL, 0 }, { "2MB", -EINVAL, 0 }, { "2E", -EINVAL, 0 }, { "", -EINVAL, 0 },
		{ "1.5M", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < N_ELEMS(cases); i++) {
		uint64_t v = 0;
		int r = vmmfs_parse_size(cases[i].s, strlen(cases[i].s), &v);
		if (r != cases[i].err)
			fprintf(stderr, "  parse_size('%s') = %d, expected %d\n", cases[i].s, r, cases[i].err);
		CU_ASSERT_EQUAL(r, cases[i].err);
		if (!r)
			VT_EQ_U64(v, cases[i].v);
	}
}

static void test_grammar(void)
{
	struct vmmfs_mapfile mf;

	VT_EQ_INT(parse(&mf, "0x100-0x1ff\n"), 0);
	VT_EQ_U64(mf.npages, 256);
	VT_EQ_U64(mf.nruns, 1);
	VT_EQ_U64(mf.runs[0].first, 0x100);
	VT_EQ_U64(mf.runs[0].count, 256);
	VT_EQ_INT(mf.va_kind, VMMFS_MAPFILE_VA_ANY);
	CU_ASSERT_FALSE(mf.read_only);
	VT_EQ_U64(mf.alloc_bytes, 0);
	vmmfs_mapfile_fini(&mf);

	/* singles that follow each other collapse into one run; decimal works */
	VT_EQ_INT(parse(&mf, "1,2 3\t4\r\n5 7 8 0x9"), 0);
	VT_EQ_U64(mf.npages, 8);
	VT_EQ_U64(mf.nruns, 2);
	VT_EQ_U64(mf.runs[0].first, 1);
	VT_EQ_U64(mf.runs[0].count, 5);
	VT_EQ_U64(mf.runs[1].first, 7);
	VT_EQ_U64(mf.runs[1].count, 3);
	vmmfs_mapfile_fini(&mf);

	/* the same page twice is allowed: two runs */
	VT_EQ_INT(parse(&mf, "0x10 0x10 0x10-0x10"), 0);
	VT_EQ_U64(mf.npages, 3);
	VT_EQ_U64(mf.nruns, 3);
	vmmfs_mapfile_fini(&mf);

	/* last page of VRAM */
	VT_EQ_INT(parse(&mf, "0xfffff"), 0);
	VT_EQ_U64(mf.npages, 1);
	vmmfs_mapfile_fini(&mf);

	VT_EQ_INT(parse(&mf, "va=0x7f0000000 ro 0x400 0x402"), 0);
	VT_EQ_INT(mf.va_kind, VMMFS_MAPFILE_VA_EXACT);
	VT_EQ_U64(mf.va_start, 0x7f0000000ull);
	CU_ASSERT_TRUE(mf.read_only);
	VT_EQ_U64(mf.npages, 2);
	vmmfs_mapfile_fini(&mf);

	VT_EQ_INT(parse(&mf, "rw va=0x100000-0x200000 5"), 0);
	VT_EQ_INT(mf.va_kind, VMMFS_MAPFILE_VA_RANGE);
	VT_EQ_U64(mf.va_start, 0x100000);
	VT_EQ_U64(mf.va_end, 0x200000);
	CU_ASSERT_FALSE(mf.read_only);
	vmmfs_mapfile_fini(&mf);

	/* inclusive end */
	VT_EQ_INT(parse(&mf, "va=0x100000-0x1fffff 5"), 0);
	VT_EQ_U64(mf.va_end, 0x200000);
	vmmfs_mapfile_fini(&mf);

	/* the whole address space */
	VT_EQ_INT(parse(&mf, "va=0-0x1ffffffffffff 5"), 0);
	VT_EQ_U64(mf.va_end, VA_SIZE);
	vmmfs_mapfile_fini(&mf);

	VT_EQ_INT(parse(&mf, "alloc=2M"), 0);
	VT_EQ_U64(mf.alloc_bytes, 2 << 20);
	VT_EQ_U64(mf.npages, 0);
	vmmfs_mapfile_fini(&mf);

	VT_EQ_INT(parse(&mf, "alloc=4G\n"), 0); /* all of VRAM */
	VT_EQ_U64(mf.alloc_bytes, 4ull << 30);
	vmmfs_mapfile_fini(&mf);

	/* repeating the same access word is harmless */
	VT_EQ_INT(parse(&mf, "ro ro 1"), 0);
	CU_ASSERT_TRUE(mf.read_only);
	vmmfs_mapfile_fini(&mf);
}

static void test_comments(void)
{
	struct vmmfs_mapfile mf;

	VT_EQ_INT(parse(&mf, "# a comment 0x5\n0x10 # 0x11 0x12\n0x11#x\n#\n# end"), 0);
	VT_EQ_U64(mf.npages, 2);
	VT_EQ_U64(mf.nruns, 1);
	VT_EQ_U64(mf.runs[0].first, 0x10);
	vmmfs_mapfile_fini(&mf);

	/* # ends a word; a comment with no newline ends the text */
	VT_EQ_INT(parse(&mf, "0x20#0x21"), 0);
	VT_EQ_U64(mf.npages, 1);
	vmmfs_mapfile_fini(&mf);

	/* only comments: nothing to map */
	VT_EQ_INT(parse(&mf, "# nothing\n# at all\n"), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "nothing to map"));
	vmmfs_mapfile_fini(&mf);
}

/* One row per error: text, errno, a piece of the message. */
static const struct err_case {
	const char *text;
	int err;
	const char *msg;
} err_cases[] = {
	{ "0x100 zz", -EINVAL, "unknown word 'zz' (byte 6)" },
	{ "0x1g", -EINVAL, "malformed PFN '0x1g'" },
	{ "0x", -EINVAL, "malformed PFN" },
	{ "12a", -EINVAL, "malformed PFN" },
	{ "0x10-", -EINVAL, "malformed PFN range" },
	{ "0x10-x", -EINVAL, "malformed PFN range" },
	{ "1-2-3", -EINVAL, "malformed PFN range" },
	{ "0x1ff-0x100", -EINVAL, "runs backwards" },
	{ "-5", -EINVAL, "unknown word '-5'" },
	{ "RO 1", -EINVAL, "unknown word 'RO'" },
	{ "va=1", -EINVAL, "not 4 KiB-aligned" },
	{ "va= 1", -EINVAL, "malformed va=" },
	{ "va=0x1000 va=0x2000 1", -EINVAL, "va= given twice" },
	{ "va=0x2000-0x1000 1", -EINVAL, "empty or backwards" },
	{ "va=0x1000-0x1000 1", -EINVAL, "empty or backwards" },
	{ "va=0x1000-0x1800 1", -EINVAL, "neither 4 KiB-aligned" },
	{ "va=0x1000-q 1", -EINVAL, "malformed va=" },
	{ "ro rw 1", -EINVAL, "both ro and rw" },
	{ "alloc=", -EINVAL, "malformed alloc=" },
	{ "alloc=2Q", -EINVAL, "malformed alloc=2Q" },
	{ "alloc=0", -EINVAL, "alloc=0 maps nothing" },
	{ "alloc=1M alloc=1M", -EINVAL, "alloc= given twice" },
	{ "alloc=1M 0x5", -EINVAL, "cannot be mixed" },
	{ "0x5 alloc=1M", -EINVAL, "cannot be mixed" },
	{ "ro", -EINVAL, "nothing to map" },
	{ "  \n , \t", -EINVAL, "nothing to map" },
	{ "va=0x1000", -EINVAL, "nothing to map" },
	{ "0000000000000000000000000000000000000000000000000000000000000000001", -EINVAL,
	  "longer than 64 bytes" },
	{ "0x100000", -ERANGE, "PFN 0x100000 is beyond VRAM (byte 0): the last page is 0xfffff" },
	{ "1 0xfff00-0x100000", -ERANGE, "PFN 0x100000 is beyond VRAM (byte 2)" },
	{ "0x10000000000000000", -ERANGE, "does not fit in 64 bits" },
	{ "0-0x10000000000000000", -ERANGE, "does not fit in 64 bits" },
	{ "va=0x2000000000000 1", -ERANGE, "beyond the address space" },
	{ "va=0x1000-0x2000000001000 1", -ERANGE, "beyond the address space" },
	/* an inclusive end of 2^64 - 1 ends past any address space (it must
	 * not wrap to 0 and look like an empty range) */
	{ "va=0-0xffffffffffffffff 1", -ERANGE, "va= range end 0xffffffffffffffff is beyond the address space" },
	{ "va=0x10000000000000000 1", -ERANGE, "does not fit in 64 bits" },
	{ "alloc=5G", -ERANGE, "larger than VRAM" },
	{ "alloc=0x100001000", -ERANGE, "larger than VRAM" },
	{ "alloc=99999999999999999999", -ERANGE, "does not fit in 64 bits" },
	{ "alloc=16777216T", -ERANGE, "does not fit in 64 bits" },
};

static void test_errors(void)
{
	size_t i;

	for (i = 0; i < N_ELEMS(err_cases); i++) {
		const struct err_case *c = &err_cases[i];
		struct vmmfs_mapfile mf;
		int r = parse(&mf, c->text);

		if (r != c->err || !strstr(vmmfs_mapfile_error(&mf), c->msg))
			fprintf(stderr, "  '%s': %d '%s', expected %d '%s'\n", c->text, r,
				vmmfs_mapfile_error(&mf), c->err, c->msg);
		CU_ASSERT_EQUAL(r, c->err);
		CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), c->msg));
		/* sticky: the error stays, later pieces are refused */
		VT_EQ_INT(vmmfs_mapfile_feed(&mf, "1 ", 2), c->err);
		VT_EQ_INT(vmmfs_mapfile_finish(&mf), c->err);
		vmmfs_mapfile_fini(&mf);
	}
}

static void test_nul_and_binary(void)
{
	static const char text[] = "0x10\0 0x11";
	struct vmmfs_mapfile mf;

	VT_EQ_INT(parse_cut(&mf, text, sizeof(text) - 1, NULL, 0), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "malformed PFN '0x10?'"));
	vmmfs_mapfile_fini(&mf);
}

static void test_empty(void)
{
	struct vmmfs_mapfile mf;

	vmmfs_mapfile_init(&mf, VRAM_PAGES, VA_SIZE);
	VT_EQ_INT(vmmfs_mapfile_finish(&mf), -ENODATA);
	VT_EQ_INT(mf.error, 0);
	/* a zero-length write is no data either */
	VT_EQ_INT(vmmfs_mapfile_feed(&mf, "", 0), 0);
	VT_EQ_INT(vmmfs_mapfile_finish(&mf), -ENODATA);
	vmmfs_mapfile_fini(&mf);
}

static const char split_text[] =
	"# mapping with everything\n"
	"va=0x200000-0x3fffff ro\n"
	"0x100-0x1ff,0x200 512 # decimal 512 is 0x200\n"
	"0x300\t0x301-0x305 18446744073709551615x\n";

/* Every cut into two and three pieces gives the same outcome as one piece. */
static void test_split_everywhere(void)
{
	/* the last word is malformed on purpose in a copy; first the valid text */
	const size_t len = strlen(split_text) - strlen(" 18446744073709551615x\n");
	struct vmmfs_mapfile whole, mf;
	size_t i, j, cuts[2];

	VT_EQ_INT(parse_cut(&whole, split_text, len, NULL, 0), 0);
	VT_EQ_U64(whole.npages, 256 + 2 + 1 + 5);
	VT_EQ_INT(whole.va_kind, VMMFS_MAPFILE_VA_RANGE);
	CU_ASSERT_TRUE(whole.read_only);
	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		parse_cut(&mf, split_text, len, cuts, 1);
		if (!same(&mf, &whole))
			fprintf(stderr, "  cut at %zu differs: %s\n", i, vmmfs_mapfile_error(&mf));
		CU_ASSERT_TRUE(same(&mf, &whole));
		vmmfs_mapfile_fini(&mf);
		for (j = i; j <= len; j++) {
			cuts[1] = j;
			parse_cut(&mf, split_text, len, cuts, 2);
			if (!same(&mf, &whole))
				fprintf(stderr, "  cuts at %zu,%zu differ\n", i, j);
			CU_ASSERT_TRUE(same(&mf, &whole));
			vmmfs_mapfile_fini(&mf);
		}
	}
	vmmfs_mapfile_fini(&whole);

	/* byte by byte, with the malformed last word: the error and its offset */
	{
		const size_t full = strlen(split_text);
		size_t every[sizeof(split_text)];
		for (i = 0; i + 1 < full; i++)
			every[i] = i + 1;
		VT_EQ_INT(parse_cut(&mf, split_text, full, every, full - 1), -EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "malformed PFN '18446744073709551615x'"));
		vmmfs_mapfile_fini(&mf);
		VT_EQ_INT(parse_cut(&whole, split_text, full, NULL, 0), -EINVAL);
		CU_ASSERT_STRING_EQUAL(vmmfs_mapfile_error(&whole), vmmfs_mapfile_error(&mf));
		vmmfs_mapfile_fini(&whole);
	}
}

/* A word longer than the limit is refused even when it arrives in pieces. */
static void test_long_word_split(void)
{
	char text[VMMFS_MAPFILE_MAX_WORD + 2];
	struct vmmfs_mapfile mf;
	size_t i, cuts[1];

	memset(text, '0', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	for (i = 0; i <= strlen(text); i++) {
		cuts[0] = i;
		VT_EQ_INT(parse_cut(&mf, text, strlen(text), cuts, 1), -EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "longer than"));
		vmmfs_mapfile_fini(&mf);
	}
	/* exactly the limit is fine */
	text[VMMFS_MAPFILE_MAX_WORD] = '\0';
	text[VMMFS_MAPFILE_MAX_WORD - 1] = '7';
	for (i = 0; i <= VMMFS_MAPFILE_MAX_WORD; i++) {
		cuts[0] = i;
		VT_EQ_INT(parse_cut(&mf, text, VMMFS_MAPFILE_MAX_WORD, cuts, 1), 0);
		VT_EQ_U64(mf.npages, 1);
		VT_EQ_U64(mf.runs[0].first, 7);
		vmmfs_mapfile_fini(&mf);
	}
}

static void test_expand(void)
{
	struct vmmfs_mapfile mf;
	uint64_t *pfns = NULL;

	VT_EQ_INT(parse(&mf, "0x10-0x12 0x20 0x5 0x6"), 0);
	VT_EQ_INT(vmmfs_mapfile_expand(&mf, &pfns), 0);
	if (pfns) {
		static const uint64_t want[] = { 0x10, 0x11, 0x12, 0x20, 0x5, 0x6 };
		VT_EQ_U64(mf.npages, 6);
		CU_ASSERT_EQUAL(memcmp(pfns, want, sizeof(want)), 0);
	}
	free(pfns);
	vmmfs_mapfile_fini(&mf);
}

/* 64 MiB is the limit: the write that crosses it fails with EFBIG. */
static void test_efbig_bytes(void)
{
	const size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	struct vmmfs_mapfile mf;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, ' ', chunk);
	memcpy(buf, "0x1 ", 4);
	vmmfs_mapfile_init(&mf, VRAM_PAGES, VA_SIZE);
	for (i = 0; i < VMMFS_MAPFILE_MAX_BYTES / chunk; i++)
		VT_EQ_INT(vmmfs_mapfile_feed(&mf, buf, chunk), 0);
	VT_EQ_U64(mf.bytes, VMMFS_MAPFILE_MAX_BYTES);
	VT_EQ_INT(vmmfs_mapfile_feed(&mf, "1", 1), -EFBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "larger than 67108864 bytes"));
	VT_EQ_INT(vmmfs_mapfile_finish(&mf), -EFBIG);
	vmmfs_mapfile_fini(&mf);
	free(buf);
}

static void test_efbig_pages(void)
{
	struct vmmfs_mapfile mf;

	vmmfs_mapfile_init(&mf, 1ull << 30, VA_SIZE);
	VT_EQ_INT(vmmfs_mapfile_feed(&mf, "0-0xffffff ", 11), 0);
	VT_EQ_U64(mf.npages, VMMFS_MAPFILE_MAX_PAGES);
	VT_EQ_INT(vmmfs_mapfile_feed(&mf, "0x1000000 ", 10), -EFBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(&mf), "more than 16777216 pages"));
	vmmfs_mapfile_fini(&mf);

	vmmfs_mapfile_init(&mf, 1ull << 30, VA_SIZE);
	VT_EQ_INT(vmmfs_mapfile_feed(&mf, "0-0x1000000 ", 12), -EFBIG);
	vmmfs_mapfile_fini(&mf);

	/* the cap holds for single PFNs too, across many runs (the array grows) */
	{
		static char text[200 * 10 + 32];
		size_t len = 0;
		int i;

		vmmfs_mapfile_init(&mf, 1ull << 30, VA_SIZE);
		VT_EQ_INT(vmmfs_mapfile_feed(&mf, "0x1000-0x1000f9b ", 17), 0); /* MAX - 100 */
		VT_EQ_U64(mf.npages, VMMFS_MAPFILE_MAX_PAGES - 100);
		for (i = 0; i < 200; i++)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "0x%x ", 0x2000000 + 2 * i);
		VT_EQ_INT(vmmfs_mapfile_feed(&mf, text, len), -EFBIG);
		VT_EQ_U64(mf.npages, VMMFS_MAPFILE_MAX_PAGES);
		vmmfs_mapfile_fini(&mf);
	}
}

/* Appends "0x%llx\n" without printf. */
static size_t put_hex_line(char *p, uint64_t v)
{
	char tmp[16];
	size_t n = 0, i;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	p[0] = '0';
	p[1] = 'x';
	for (i = 0; i < n; i++)
		p[2 + i] = tmp[n - 1 - i];
	p[2 + n] = '\n';
	return n + 3;
}

/* 1M scattered PFNs, one per line, fed in random pieces: every PFN arrives
 * in order, and the whole run is timed (printed, not asserted: the
 * benchmark owns the figure). */
static void test_big_scattered(void)
{
	const size_t n = 1 << 20;
	uint64_t *want = malloc(n * sizeof(*want)), *got = NULL;
	char *text = malloc(n * 20);
	struct vmmfs_mapfile mf;
	struct timespec t0, t1;
	size_t len = 0, off = 0, i;
	double secs;
	int r = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	vt_seed("mapfile big scattered");
	for (i = 0; i < n; i++) {
		want[i] = vt_rand_below(VRAM_PAGES);
		len += put_hex_line(text + len, want[i]);
	}
	vmmfs_mapfile_init(&mf, VRAM_PAGES, VA_SIZE);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (off < len && !r) {
		size_t piece = 1 + vt_rand_below(256 << 10);
		if (piece > len - off)
			piece = len - off;
		r = vmmfs_mapfile_feed(&mf, text + off, piece);
		off += piece;
	}
	if (!r)
		r = vmmfs_mapfile_finish(&mf);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	VT_EQ_INT(r, 0);
	VT_EQ_U64(mf.npages, n);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("\n  parsed %zu bytes (%zu PFNs) in %.3f s: %.0f MB/s\n", len, n, secs,
	       (double)len / secs / 1e6);
	VT_EQ_INT(vmmfs_mapfile_expand(&mf, &got), 0);
	if (got)
		CU_ASSERT_EQUAL(memcmp(got, want, n * sizeof(*want)), 0);
	free(got);
	vmmfs_mapfile_fini(&mf);
	free(text);
	free(want);
}

/* A 4 GiB range costs one run however it is written. */
static void test_big_ranges(void)
{
	struct vmmfs_mapfile mf;

	VT_EQ_INT(parse(&mf, "0-0x7ffff 0x80000-0xfffff"), 0);
	VT_EQ_U64(mf.npages, VRAM_PAGES);
	VT_EQ_U64(mf.nruns, 1);
	vmmfs_mapfile_fini(&mf);
}

/* Hex PFNs of every length, in mixed case, followed by every kind of byte:
 * the word-at-a-time fast path agrees with the definition. */
static void test_hex_every_length(void)
{
	static const char follow[] = { '\n', ' ', ',', '#', 'g', 'G', '-', 'x', '/', ':', '@',
				       '`', '\x80', '\xff', '0' };
	size_t len, f, k;

	vt_seed("mapfile hex lengths");
	for (len = 1; len <= 17; len++) {
		for (f = 0; f < sizeof(follow); f++) {
			for (k = 0; k < 8; k++) {
				char text[64];
				struct vmmfs_mapfile mf;
				uint64_t v = 0;
				bool big = false;
				size_t i, n = 0;
				int r, want;

				text[n++] = '0';
				text[n++] = 'x';
				for (i = 0; i < len; i++) {
					unsigned int d = (unsigned int)vt_rand_below(16);
					char c = "0123456789abcdef"[d];
					if (c >= 'a' && vt_rand_below(2))
						c = (char)(c - 'a' + 'A');
					text[n++] = c;
					big |= (v >> 60) != 0;
					v = v << 4 | d;
				}
				text[n++] = follow[f];
				memcpy(text + n, " 0x1 0x2 0x3 0x4 0x5", 21); /* room for 8-byte loads */
				n += 20;
				vmmfs_mapfile_init(&mf, UINT64_MAX, VA_SIZE);
				r = vmmfs_mapfile_feed(&mf, text, n);
				if (!r)
					r = vmmfs_mapfile_finish(&mf);
				if (follow[f] != '\n' && follow[f] != ' ' && follow[f] != ',' &&
				    follow[f] != '#' && follow[f] != '0')
					want = -EINVAL; /* malformed beats too large */
				else if (big || (follow[f] == '0' && (v >> 60)))
					want = -ERANGE;
				else
					want = 0;
				if (r != want)
					fprintf(stderr, "  '%.*s': %d, expected %d (%s)\n", (int)(len + 3),
						text, r, want, vmmfs_mapfile_error(&mf));
				CU_ASSERT_EQUAL(r, want);
				if (!r && mf.nruns) {
					uint64_t first = follow[f] == '0' ? v << 4 : v;
					VT_EQ_U64(mf.runs[0].first, first);
				}
				vmmfs_mapfile_fini(&mf);
			}
		}
	}
}

/* ---- the 64-byte block path against what the text says --------------- */

/* A text of random words whose meaning the generator knows: the PFNs in
 * order, merged into runs, and (if any) the first malformed word. */
struct gen {
	char *text;
	size_t len, cap;
	struct vmmfs_vmm_run *runs;
	size_t nruns, cap_runs;
	uint64_t npages;
	size_t bad_at;      /* offset of the malformed word, or SIZE_MAX */
	int bad_err;
};

static void gen_put(struct gen *g, const char *s, size_t n)
{
	if (g->len + n > g->cap) {
		g->cap = (g->len + n) * 2;
		g->text = realloc(g->text, g->cap);
		CU_ASSERT_PTR_NOT_NULL_FATAL(g->text);
	}
	memcpy(g->text + g->len, s, n);
	g->len += n;
}

static void gen_pfns(struct gen *g, uint64_t first, uint64_t count)
{
	if (g->bad_at != SIZE_MAX)
		return; /* nothing after the error counts */
	g->npages += count;
	if (g->nruns && g->runs[g->nruns - 1].first + g->runs[g->nruns - 1].count == first) {
		g->runs[g->nruns - 1].count += count;
		return;
	}
	if (g->nruns == g->cap_runs) {
		g->cap_runs = g->cap_runs ? 2 * g->cap_runs : 256;
		g->runs = realloc(g->runs, g->cap_runs * sizeof(*g->runs));
		CU_ASSERT_PTR_NOT_NULL_FATAL(g->runs);
	}
	g->runs[g->nruns].first = first;
	g->runs[g->nruns++].count = count;
}

/* v in hex with at least min digits (leading zeros), random case */
static void gen_hex(struct gen *g, uint64_t v, unsigned int min)
{
	char tmp[24];
	unsigned int n = 0, i;

	do {
		char c = "0123456789abcdef"[v & 15];
		if (c >= 'a' && vt_rand_below(2))
			c = (char)(c - 'a' + 'A');
		tmp[n++] = c;
		v >>= 4;
	} while (v || n < min);
	gen_put(g, vt_rand_below(4) ? "0x" : "0X", 2);
	for (i = 0; i < n; i++)
		gen_put(g, &tmp[n - 1 - i], 1);
}

static void gen_dec(struct gen *g, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

	gen_put(g, tmp, (size_t)n);
}

static void gen_sep(struct gen *g)
{
	static const char seps[] = " \t\n\r\v\f,";
	size_t n = vt_rand_below(8) ? 1 : 1 + vt_rand_below(70); /* sometimes a whole block */

	while (n--)
		gen_put(g, &seps[vt_rand_below(sizeof(seps) - 1)], 1);
	if (!vt_rand_below(200)) {
		const char *c = vt_rand_below(2) ? "# a comment 0x1 0x2, 0x3\n" : "#\n";
		gen_put(g, c, strlen(c));
	}
}

/* nwords words, mostly lone hex PFNs as a list would have them, with the
 * rest of the grammar mixed in; one malformed word at a random place when
 * bad. */
static void gen_text(struct gen *g, size_t nwords, bool bad)
{
	static const char *const malformed[] = {
		"0x12g4", "0x", "12a", "0x1-", "0x1--2", "\x80", "0xz", "5x5", "0x10-0x1", "zz",
	};
	size_t i, bad_word = bad ? vt_rand_below(nwords) : SIZE_MAX;
	uint64_t pfn = vt_rand_below(VRAM_PAGES);

	memset(g, 0, sizeof(*g));
	g->bad_at = SIZE_MAX;
	if (vt_rand_below(2))
		gen_put(g, "ro ", 3);
	for (i = 0; i < nwords; i++) {
		unsigned int kind = (unsigned int)vt_rand_below(100);

		if (i == bad_word) {
			size_t k = vt_rand_below(N_ELEMS(malformed) + 1);
			g->bad_at = g->len;
			if (k == N_ELEMS(malformed)) {
				gen_hex(g, VRAM_PAGES + vt_rand_below(1000), 0); /* beyond VRAM */
				g->bad_err = -ERANGE;
			} else {
				gen_put(g, malformed[k], strlen(malformed[k]));
				g->bad_err = -EINVAL;
			}
			gen_sep(g);
			continue;
		}
		/* the next PFN: mostly consecutive or strided, sometimes anywhere */
		if (kind < 40)
			pfn++;
		else if (kind < 80)
			pfn += 2;
		else
			pfn = vt_rand_below(VRAM_PAGES);
		if (pfn >= VRAM_PAGES - 64)
			pfn = vt_rand_below(VRAM_PAGES / 2);
		kind = (unsigned int)vt_rand_below(100);
		if (kind < 80) {
			gen_hex(g, pfn, kind < 5 ? 8 + (unsigned int)vt_rand_below(12) : 0);
			gen_pfns(g, pfn, 1);
		} else if (kind < 92) {
			gen_dec(g, pfn);
			gen_pfns(g, pfn, 1);
		} else {
			uint64_t count = 1 + vt_rand_below(40);
			gen_hex(g, pfn, 0);
			gen_put(g, "-", 1);
			if (vt_rand_below(2))
				gen_hex(g, pfn + count - 1, 0);
			else
				gen_dec(g, pfn + count - 1);
			gen_pfns(g, pfn, count);
			pfn += count - 1;
		}
		gen_sep(g);
	}
}

/* The outcome the generator expects: the runs, or the error at its word. */
static void check_gen(const struct gen *g, struct vmmfs_mapfile *mf, int r, const char *how)
{
	char at[48];

	if (g->bad_at != SIZE_MAX) {
		if (r != g->bad_err)
			fprintf(stderr, "  %s: %d (%s), expected %d at byte %zu\n", how, r,
				vmmfs_mapfile_error(mf), g->bad_err, g->bad_at);
		CU_ASSERT_EQUAL(r, g->bad_err);
		snprintf(at, sizeof(at), "(byte %zu)", g->bad_at);
		if (!strstr(vmmfs_mapfile_error(mf), at))
			fprintf(stderr, "  %s: '%s' does not say %s\n", how, vmmfs_mapfile_error(mf), at);
		CU_ASSERT_PTR_NOT_NULL(strstr(vmmfs_mapfile_error(mf), at));
		return;
	}
	if (r)
		fprintf(stderr, "  %s: %d (%s)\n", how, r, vmmfs_mapfile_error(mf));
	VT_EQ_INT(r, 0);
	VT_EQ_U64(mf->npages, g->npages);
	VT_EQ_U64(mf->nruns, g->nruns);
	if (mf->nruns == g->nruns && g->nruns &&
	    memcmp(mf->runs, g->runs, g->nruns * sizeof(*g->runs))) {
		size_t i;
		for (i = 0; i < g->nruns; i++)
			if (mf->runs[i].first != g->runs[i].first || mf->runs[i].count != g->runs[i].count)
				break;
		fprintf(stderr, "  %s: run %zu is 0x%llx+%llu, expected 0x%llx+%llu\n", how, i,
			(unsigned long long)mf->runs[i].first, (unsigned long long)mf->runs[i].count,
			(unsigned long long)g->runs[i].first, (unsigned long long)g->runs[i].count);
		CU_FAIL("runs differ");
	}
}

/* Long texts go through the 64-byte block path; the same text in random
 * pieces, and byte by byte, mostly through the byte loop: every way gives
 * what the text says, errors included, with the byte of the bad word. */
static void test_block_path(void)
{
	unsigned int round;

	vt_seed("mapfile block path");
	for (round = 0; round < 60; round++) {
		struct vmmfs_mapfile mf;
		struct gen g;
		size_t off = 0, piece_max = round % 3 == 0 ? 7 : round % 3 == 1 ? 200 : 1 << 16;
		int r = 0;

		gen_text(&g, round < 4 ? 1 + round * 3 : 2000 + vt_rand_below(4000), round % 4 == 3);
		vmmfs_mapfile_init(&mf, VRAM_PAGES, VA_SIZE);
		r = vmmfs_mapfile_feed(&mf, g.text, g.len);
		if (!r)
			r = vmmfs_mapfile_finish(&mf);
		check_gen(&g, &mf, r, "whole");
		vmmfs_mapfile_fini(&mf);

		vmmfs_mapfile_init(&mf, VRAM_PAGES, VA_SIZE);
		r = 0;
		while (off < g.len && !r) {
			size_t piece = 1 + vt_rand_below(piece_max);
			if (piece > g.len - off)
				piece = g.len - off;
			r = vmmfs_mapfile_feed(&mf, g.text + off, piece);
			off += piece;
		}
		if (!r)
			r = vmmfs_mapfile_finish(&mf);
		check_gen(&g, &mf, r, "in pieces");
		vmmfs_mapfile_fini(&mf);
		free(g.text);
		free(g.runs);
	}
}

/* One word at each of the 64 places of a block, in a list long enough for
 * the block path: every hex length, followed by every kind of byte. */
static void test_block_every_place(void)
{
	static const char follow[] = { '\n', ',', '#', 'g', '-', 'x', '\x80', '0' };
	char text[512];
	size_t place, len, f;

	vt_seed("mapfile block places");
	for (place = 0; place < 64; place++) {
		for (len = 1; len <= 17; len++) {
			for (f = 0; f < sizeof(follow); f++) {
				struct vmmfs_mapfile mf;
				uint64_t v = 0;
				size_t n = 0, i;
				bool big = false;
				int r, want;

				memset(text, ' ', place);
				n = place;
				text[n++] = '0';
				text[n++] = 'x';
				for (i = 0; i < len; i++) {
					unsigned int d = (unsigned int)vt_rand_below(16);
					big |= (v >> 60) != 0;
					v = v << 4 | d;
					text[n++] = "0123456789abcdef"[d];
				}
				text[n++] = follow[f];
				while (n < 300) /* more words, so the block path runs */
					n += (size_t)snprintf(text + n, sizeof(text) - n, " 0x%zx", n);
				vmmfs_mapfile_init(&mf, UINT64_MAX, VA_SIZE);
				r = vmmfs_mapfile_feed(&mf, text, n);
				if (!r)
					r = vmmfs_mapfile_finish(&mf);
				if (follow[f] != '\n' && follow[f] != ',' && follow[f] != '#' &&
				    follow[f] != '0')
					want = -EINVAL;
				else if (big || (follow[f] == '0' && (v >> 60)))
					want = -ERANGE;
				else
					want = 0;
				if (r != want)
					fprintf(stderr, "  place %zu len %zu follow 0x%02x: %d, expected %d (%s)\n",
						place, len, (unsigned char)follow[f], r, want,
						vmmfs_mapfile_error(&mf));
				CU_ASSERT_EQUAL(r, want);
				if (!r && mf.nruns)
					VT_EQ_U64(mf.runs[0].first, follow[f] == '0' ? v << 4 : v);
				vmmfs_mapfile_fini(&mf);
			}
		}
	}
}

/* ---- the fast path's edges, under every instruction set ---------------- */

/* What a text of lone numbers means, worked out from the grammar here (no
 * ranges, options or comments): the runs, or the first bad word's errno
 * and byte. */
struct ref {
	struct vmmfs_vmm_run runs[512];
	size_t nruns;
	uint64_t npages;
	int err;
	size_t err_at;
};

static bool ref_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == ',';
}

static void ref_parse(struct ref *rf, const char *t, size_t len, uint64_t vram_pages)
{
	size_t i = 0;

	memset(rf, 0, sizeof(*rf));
	while (i < len) {
		size_t w = i, k;
		bool hex, bad = false, big = false;
		uint64_t v = 0;

		if (ref_sep(t[i])) {
			i++;
			continue;
		}
		while (i < len && !ref_sep(t[i]))
			i++;
		hex = i - w > 2 && t[w] == '0' && (t[w + 1] == 'x' || t[w + 1] == 'X');
		for (k = hex ? w + 2 : w; k < i; k++) {
			char c = t[k];
			unsigned int d = c >= '0' && c <= '9' ? (unsigned int)(c - '0') :
					 hex && c >= 'a' && c <= 'f' ? (unsigned int)(c - 'a' + 10) :
					 hex && c >= 'A' && c <= 'F' ? (unsigned int)(c - 'A' + 10) : 99;
			if (d == 99)
				bad = true;
			else if (hex ? (v >> 60) != 0 : v > (UINT64_MAX - d) / 10)
				big = true;
			else
				v = hex ? v << 4 | d : v * 10 + d;
		}
		if (bad || big || v >= vram_pages) {
			rf->err = bad ? -EINVAL : -ERANGE;
			rf->err_at = w;
			return;
		}
		rf->npages++;
		if (rf->nruns && rf->runs[rf->nruns - 1].first + rf->runs[rf->nruns - 1].count == v) {
			rf->runs[rf->nruns - 1].count++;
		} else {
			CU_ASSERT_FATAL(rf->nruns < N_ELEMS(rf->runs));
			rf->runs[rf->nruns].first = v;
			rf->runs[rf->nruns++].count = 1;
		}
	}
	if (!rf->npages) {
		rf->err = -EINVAL; /* nothing to map */
		rf->err_at = SIZE_MAX;
	}
}

/* The parser over t fed in pieces of the given length (0: whole) against
 * the reference: same errno, same byte, same runs. */
static bool check_ref(const char *t, size_t len, size_t piece, uint64_t vram_pages, const char *what)
{
	struct vmmfs_mapfile mf;
	struct ref rf;
	size_t off = 0;
	bool ok;
	int r = 0;

	ref_parse(&rf, t, len, vram_pages);
	vmmfs_mapfile_init(&mf, vram_pages, VA_SIZE);
	while (off < len && !r) {
		size_t n = piece && piece < len - off ? piece : len - off;
		r = vmmfs_mapfile_feed(&mf, t + off, n);
		off += n;
	}
	if (!r)
		r = vmmfs_mapfile_finish(&mf);
	ok = r == rf.err;
	if (ok && r && rf.err_at != SIZE_MAX) {
		char at[48];
		snprintf(at, sizeof(at), "(byte %zu)", rf.err_at);
		ok = strstr(vmmfs_mapfile_error(&mf), at) != NULL;
	}
	if (ok && !r)
		ok = mf.npages == rf.npages && mf.nruns == rf.nruns &&
		     !memcmp(mf.runs, rf.runs, rf.nruns * sizeof(*rf.runs));
	if (!ok)
		fprintf(stderr, "  %s (simd %d, pieces of %zu): %d '%s', expected %d at byte %zu; "
			"text '%.*s'\n", what, vmmfs_mapfile_simd(-2), piece, r,
			vmmfs_mapfile_error(&mf), rf.err, rf.err_at, (int)len, t);
	vmmfs_mapfile_fini(&mf);
	return ok;
}

/* A list of numbers of 1 to 20 digits (leading zeros beyond the value's),
 * hex in either case with 0x or 0X, or decimal (dec out of 8 of them), one
 * separator or a few after each; values below 2^36. Word bad_at (if below
 * nwords) is a malformed one made of hex digits. Returns the length. */
static size_t gen_list(char *t, size_t cap, size_t nwords, unsigned int dec, size_t bad_at)
{
	static const char seps[] = "\n\n\n\n  ,\t\r";
	size_t len = 0, i;

	for (i = 0; i < nwords && len + 40 < cap; i++) {
		uint64_t v = vt_rand_below(4) ? vt_rand_below(1ull << 20) : vt_rand_below(1ull << 36);
		unsigned int digits = 1 + (unsigned int)vt_rand_below(vt_rand_below(4) ? 8 : 20);
		char tmp[24];
		unsigned int n = 0;

		if (i == bad_at) {
			static const char *const bad[] = { "12a", "7f", "0a", "9e9", "0000f", "ab" };
			const char *b = bad[vt_rand_below(N_ELEMS(bad))];
			memcpy(t + len, b, strlen(b));
			len += strlen(b);
		} else if (vt_rand_below(8) < dec) {
			/* at least that many digits: leading zeros up to 21 digits */
			int width = (int)vt_rand_below(vt_rand_below(4) ? 2 : 22);
			len += (size_t)snprintf(t + len, cap - len, "%0*llu", width,
						(unsigned long long)v);
		} else {
			do {
				char c = "0123456789abcdef"[v & 15];
				if (c >= 'a' && vt_rand_below(2))
					c = (char)(c - 'a' + 'A');
				tmp[n++] = c;
				v >>= 4;
			} while (v || n < digits);
			t[len++] = '0';
			t[len++] = vt_rand_below(4) ? 'x' : 'X';
			while (n)
				t[len++] = tmp[--n];
		}
		do
			t[len++] = seps[vt_rand_below(sizeof(seps) - 1)];
		while (vt_rand_below(6) == 0);
	}
	return len;
}

/* Numbers of every length at every place of the 64-byte blocks and of the
 * 8- and 16-byte words inside them, cut into pieces of every length from 1
 * to 80 and at every offset: the same runs as the reference. */
static void test_fast_path_pieces(void)
{
	char t[1200];
	unsigned int round;
	size_t piece, lead;

	vt_seed("mapfile fast path pieces");
	for (round = 0; round < 8; round++) {
		size_t len = gen_list(t, sizeof(t), 200, round < 4 ? 1 : round < 6 ? 7 : 8,
				      round % 2 ? 20 + vt_rand_below(170) : SIZE_MAX);

		CU_ASSERT(check_ref(t, len, 0, 1ull << 40, "whole"));
		for (piece = 1; piece <= 80; piece++)
			CU_ASSERT(check_ref(t, len, piece, 1ull << 40, "pieces"));
		/* the same list moved by 0 to 63 bytes (leading separators) */
		for (lead = 1; lead < 64; lead++) {
			char u[sizeof(t) + 64];
			memset(u, lead % 2 ? ' ' : '\n', lead);
			memcpy(u + lead, t, len);
			CU_ASSERT(check_ref(u, len + lead, 0, 1ull << 40, "moved"));
			CU_ASSERT(check_ref(u, len + lead, 64 + lead, 1ull << 40, "moved, pieces"));
		}
	}
}

/* A newline put at every offset inside every word of a list: the words
 * split in two ("0x12\n34", "0\nx12", ...), and the parser says what the
 * reference says, error and byte included, fed whole and in pieces. */
static void test_newline_every_offset(void)
{
	char t[700], u[701];
	size_t len, w, i;

	vt_seed("mapfile newline every offset");
	len = gen_list(t, sizeof(t), 60, 2, SIZE_MAX);
	for (w = 0; w < len; w++) {
		if (ref_sep(t[w]) || (w && !ref_sep(t[w - 1])))
			continue; /* not the start of a word */
		for (i = w + 1; i < len && !ref_sep(t[i]); i++) {
			memcpy(u, t, i);
			u[i] = '\n';
			memcpy(u + i + 1, t + i, len - i);
			CU_ASSERT(check_ref(u, len + 1, 0, 1ull << 40, "newline inside"));
			CU_ASSERT(check_ref(u, len + 1, i + 1, 1ull << 40, "newline, cut after it"));
			CU_ASSERT(check_ref(u, len + 1, 1 + vt_rand_below(100), 1ull << 40,
					    "newline, pieces"));
			/* and a byte that no number has there: a bad word */
			u[i] = "gx/Z:"[vt_rand_below(5)];
			CU_ASSERT(check_ref(u, len + 1, 0, 1ull << 40, "bad byte inside"));
			CU_ASSERT(check_ref(u, len + 1, i, 1ull << 40, "bad byte, cut before it"));
		}
	}
}

/* Every PFN at the VRAM limit: the last page is taken, the next refused
 * with its byte, wherever it lies in a block. */
static void test_fast_path_vram_limit(void)
{
	char t[400];
	size_t place, len;

	for (place = 0; place < 64; place++) {
		len = 0;
		memset(t, ' ', place);
		len = place;
		while (len < 300)
			len += (size_t)snprintf(t + len, sizeof(t) - len, "0x%zX\n", len + 0xff00);
		len += (size_t)snprintf(t + len, sizeof(t) - len, "0xfffff\n0x100000\n0x1 ");
		CU_ASSERT(check_ref(t, len, 0, 0x100000, "VRAM limit"));
		CU_ASSERT(check_ref(t, len, 0, 0x100001, "VRAM limit + 1"));
	}
}

/* Every byte value inside a word, alone between words and after "0x", in
 * a list long enough for the block path: every instruction set classifies
 * it as the 64-bit words do (same outcome, same message). */
static void test_every_byte(void)
{
	int best = vmmfs_mapfile_simd(-1), level, c, form;

	for (c = 0; c < 256; c++) {
		for (form = 0; form < 4; form++) {
			char t[200];
			size_t len = 0;
			struct vmmfs_mapfile ref, mf;
			int rr, r;

			while (len < 70 + (size_t)form * 7) /* the byte somewhere in the middle */
				len += (size_t)snprintf(t + len, sizeof(t) - len, "0x%zx\n", len);
			if (form == 0) { /* inside a hex word */
				memcpy(t + len, "0x1", 3), len += 3, t[len++] = (char)c, t[len++] = '2';
			} else if (form == 1) { /* alone */
				t[len++] = (char)c;
			} else if (form == 2) { /* after 0x */
				memcpy(t + len, "0x", 2), len += 2, t[len++] = (char)c;
			} else { /* inside a decimal word */
				memcpy(t + len, "12", 2), len += 2, t[len++] = (char)c, t[len++] = '3';
			}
			while (len < 190)
				len += (size_t)snprintf(t + len, sizeof(t) - len, "\n%zu", len);
			t[len++] = '\n';
			for (level = 0; level <= best; level++) {
				struct vmmfs_mapfile *m = level ? &mf : &ref;

				vmmfs_mapfile_simd(level);
				vmmfs_mapfile_init(m, VRAM_PAGES, VA_SIZE);
				r = vmmfs_mapfile_feed(m, t, len);
				if (!r)
					r = vmmfs_mapfile_finish(m);
				if (!level) {
					rr = r;
					continue;
				}
				if (r != rr || !same(&ref, &mf) ||
				    strcmp(vmmfs_mapfile_error(&ref), vmmfs_mapfile_error(&mf))) {
					fprintf(stderr, "  byte 0x%02x form %d simd %d: %d '%s', 64-bit "
						"words: %d '%s'\n", c, form, level, r,
						vmmfs_mapfile_error(&mf), rr, vmmfs_mapfile_error(&ref));
					CU_FAIL("the instruction sets disagree");
				}
				vmmfs_mapfile_fini(&mf);
			}
			vmmfs_mapfile_fini(&ref);
		}
	}
	VT_EQ_INT(vmmfs_mapfile_simd(-1), best);
}

/* The tests of the block path once more with each instruction set below
 * the best (which the others use): 64-bit words, SSE2. */
static void test_every_simd(void)
{
	int best = vmmfs_mapfile_simd(-1), level;

	for (level = VMMFS_MAPFILE_SIMD_NONE; level < best; level++) {
		VT_EQ_INT(vmmfs_mapfile_simd(level), level);
		test_hex_every_length();
		test_block_path();
		test_block_every_place();
		test_fast_path_pieces();
		test_newline_every_offset();
		test_fast_path_vram_limit();
	}
	VT_EQ_INT(vmmfs_mapfile_simd(-1), best);
	VT_EQ_INT(vmmfs_mapfile_simd(-2), best);
}

static const struct vt_test grammar_tests[] = {
	{ "numbers", test_numbers },
	{ "sizes", test_sizes },
	{ "grammar", test_grammar },
	{ "comments", test_comments },
	{ "expand", test_expand },
	{ "hex_every_length", test_hex_every_length },
	{ "block_path", test_block_path },
	{ "block_every_place", test_block_every_place },
	{ "fast_path_pieces", test_fast_path_pieces },
	{ "newline_every_offset", test_newline_every_offset },
	{ "fast_path_vram_limit", test_fast_path_vram_limit },
	{ "every_byte", test_every_byte },
	{ "every_simd", test_every_simd },
	{ NULL, NULL },
};

static const struct vt_test error_tests[] = {
	{ "every_error", test_errors },
	{ "nul_and_binary", test_nul_and_binary },
	{ "empty", test_empty },
	{ "efbig_bytes", test_efbig_bytes },
	{ "efbig_pages", test_efbig_pages },
	{ NULL, NULL },
};

static const struct vt_test split_tests[] = {
	{ "split_everywhere", test_split_everywhere },
	{ "long_word_split", test_long_word_split },
	{ "big_scattered", test_big_scattered },
	{ "big_ranges", test_big_ranges },
	{ NULL, NULL },
};

static void register_tests(void)
{
	vt_add_suite("mapfile_grammar", grammar_tests);
	vt_add_suite("mapfile_errors", error_tests);
	vt_add_suite("mapfile_pieces", split_tests);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
