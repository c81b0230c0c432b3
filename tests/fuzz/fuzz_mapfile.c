/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the mapping-file parser (fs/mapfile.h), fed in pieces the
 * way FUSE delivers write()s.
 *
 * Input layout:
 *   byte 0       low nibble: VRAM size (index in vram_pages_tab),
 *                high nibble: address-space size (index in va_size_tab)
 *   byte 1       low nibble: k, the number of piece lengths that follow;
 *                bit 4: also feed a text longer than 256 bytes byte by byte;
 *                bits 5-6: the parser's instruction set for the pieces
 *                (0 64-bit words, 1 SSE2, 2 AVX2, 3 the best the CPU has)
 *   k bytes      piece lengths, used in turn: 0 feeds an empty piece,
 *                255 feeds everything left
 *   the rest     the text written into the mapping file
 *
 * The text is parsed four ways: in one piece, in the pieces above, one
 * byte at a time (see byte 1) and by a small reference parser
 * written here from the grammar in mapfile.h (no code shared with
 * fs/mapfile.c). After every piece the parser's state is checked:
 *   - the feed result is the sticky error; once set it never changes and
 *     it comes with a one-line message; no message without an error;
 *   - npages is the sum of the runs; every run is non-empty, lies below
 *     VRAM and does not extend the previous one (those are merged);
 *   - npages <= VMMFS_MAPFILE_MAX_PAGES; PFNs and alloc= never both;
 *   - va=, alloc= and the access flag are within their limits;
 *   - a word kept between pieces is at most VMMFS_MAPFILE_MAX_WORD bytes
 *     and lies inside the text accepted so far, which is all that was fed.
 * At the end the four outcomes must agree: the same errno and message,
 * and on success the same options and runs; vmmfs_mapfile_expand() must
 * give exactly the PFNs of the runs.
 */
#include "fuzz.h"
#include "mapfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t vram_pages_tab[16] = {
	0, 1, 2, 0x10, 0x100, 0x1000, 0x4000, 0x10000, 0x100000, 0xffffff, 0x1000000,
	1ull << 28, 1ull << 36, 1ull << 52, UINT64_MAX - 1, UINT64_MAX,
};

static const uint64_t va_size_tab[16] = {
	1ull << 49, 1ull << 57, 1ull << 32, 1ull << 21, 4096, 0, 1ull << 63, UINT64_MAX & ~0xfffull,
	1ull << 49, 1ull << 57, 1ull << 47, 1ull << 40, 0x10000, 0x201000, 1ull << 56, 1ull << 12,
};

#define TEXT_PRINT_MAX 512

static const uint8_t *cur_text, *cur_lens;
static size_t cur_len, cur_nlens;
static uint64_t cur_vram_pages, cur_va_size;

__attribute__((format(printf, 1, 2), noreturn))
static void mf_fail(const char *fmt, ...)
{
	va_list ap;
	size_t i;

	fprintf(stderr, "fuzz_mapfile: invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  vram_pages 0x%llx, va_size 0x%llx, text (%zu bytes): \"",
		(unsigned long long)cur_vram_pages, (unsigned long long)cur_va_size, cur_len);
	for (i = 0; i < cur_len && i < TEXT_PRINT_MAX; i++) {
		uint8_t c = cur_text[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "%s\"\n  piece lengths:", cur_len > TEXT_PRINT_MAX ? "..." : "");
	for (i = 0; i < cur_nlens; i++)
		fprintf(stderr, " %u", cur_lens[i]);
	fprintf(stderr, "%s\n", cur_nlens ? "" : " (one piece)");
	abort();
}

/* ---- the reference parser ---------------------------------------------------- */

struct ref_run {
	uint64_t first, count;
};

struct ref_result {
	int err;
	enum vmmfs_mapfile_va va_kind;
	uint64_t va_start, va_end;
	bool read_only, access_given;
	uint64_t alloc_bytes;
	uint64_t npages;
	struct ref_run *runs;
	size_t nruns, cap;
};

static bool ref_is_sep(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == ',';
}

static int ref_digit(uint8_t c, unsigned int base)
{
	int d;

	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	else
		return -1;
	return d < (int)base ? d : -1;
}

/* 0x hex or decimal; -EINVAL for any stray byte (it wins over size), else
 * -ERANGE when the value needs more than 64 bits. */
static int ref_number(const uint8_t *s, size_t len, uint64_t *out)
{
	unsigned int base = 10;
	unsigned __int128 v = 0;
	bool big = false;
	size_t i = 0;

	if (len == 0)
		return -EINVAL;
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	for (; i < len; i++) {
		int d = ref_digit(s[i], base);
		if (d < 0)
			return -EINVAL;
		if (!big) {
			v = v * base + (unsigned int)d;
			big = v > UINT64_MAX;
		}
	}
	if (big)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

static int ref_add(struct ref_result *rr, uint64_t first, uint64_t count)
{
	if (count > VMMFS_MAPFILE_MAX_PAGES - rr->npages)
		return -EFBIG;
	rr->npages += count;
	if (rr->nruns && rr->runs[rr->nruns - 1].first + rr->runs[rr->nruns - 1].count == first) {
		rr->runs[rr->nruns - 1].count += count;
		return 0;
	}
	if (rr->nruns == rr->cap) {
		size_t cap = rr->cap ? 2 * rr->cap : 16;
		struct ref_run *n = realloc(rr->runs, cap * sizeof(*n));
		if (!n)
			mf_fail("reference parser: out of memory");
		rr->runs = n;
		rr->cap = cap;
	}
	rr->runs[rr->nruns].first = first;
	rr->runs[rr->nruns].count = count;
	rr->nruns++;
	return 0;
}

static const uint8_t *ref_dash(const uint8_t *s, size_t len)
{
	return memchr(s, '-', len);
}

static int ref_word(struct ref_result *rr, const uint8_t *w, size_t len, uint64_t vram_pages,
		    uint64_t va_size)
{
	uint64_t a, b;
	int ra, rb;

	if (len > VMMFS_MAPFILE_MAX_WORD)
		return -EINVAL;
	if (w[0] >= '0' && w[0] <= '9') {
		const uint8_t *d = ref_dash(w, len);
		if (rr->alloc_bytes)
			return -EINVAL;
		if (!d) {
			ra = ref_number(w, len, &a);
			if (ra)
				return ra;
			if (a >= vram_pages)
				return -ERANGE;
			return ref_add(rr, a, 1);
		}
		ra = ref_number(w, (size_t)(d - w), &a);
		rb = ref_number(d + 1, len - (size_t)(d - w) - 1, &b);
		if (ra == -EINVAL || rb == -EINVAL)
			return -EINVAL;
		if (ra || rb)
			return -ERANGE;
		if (b < a)
			return -EINVAL;
		if (b >= vram_pages)
			return -ERANGE;
		return ref_add(rr, a, b - a + 1);
	}
	if (len == 2 && w[0] == 'r' && (w[1] == 'o' || w[1] == 'w')) {
		bool ro = w[1] == 'o';
		if (rr->access_given && rr->read_only != ro)
			return -EINVAL;
		rr->access_given = true;
		rr->read_only = ro;
		return 0;
	}
	if (len >= 3 && !memcmp(w, "va=", 3)) {
		const uint8_t *v = w + 3, *d;
		size_t vlen = len - 3;
		unsigned __int128 end;

		if (rr->va_kind != VMMFS_MAPFILE_VA_ANY)
			return -EINVAL;
		d = ref_dash(v, vlen);
		ra = ref_number(v, d ? (size_t)(d - v) : vlen, &a);
		if (ra)
			return ra;
		if (a % VMMFS_MAPFILE_PAGE_SIZE)
			return -EINVAL;
		if (a >= va_size)
			return -ERANGE;
		if (!d) {
			rr->va_kind = VMMFS_MAPFILE_VA_EXACT;
			rr->va_start = a;
			return 0;
		}
		rb = ref_number(d + 1, vlen - (size_t)(d - v) - 1, &b);
		if (rb)
			return rb;
		/* END is exclusive when aligned, inclusive when END + 1 is;
		 * computed without wrapping */
		end = b;
		if (b % VMMFS_MAPFILE_PAGE_SIZE) {
			if ((end + 1) % VMMFS_MAPFILE_PAGE_SIZE)
				return -EINVAL;
			end++;
		}
		if (end <= a)
			return -EINVAL;
		if (end > va_size)
			return -ERANGE;
		rr->va_kind = VMMFS_MAPFILE_VA_RANGE;
		rr->va_start = a;
		rr->va_end = (uint64_t)end;
		return 0;
	}
	if (len >= 6 && !memcmp(w, "alloc=", 6)) {
		const uint8_t *v = w + 6;
		size_t vlen = len - 6;
		unsigned int shift = 0;

		if (rr->alloc_bytes || rr->npages)
			return -EINVAL;
		if (vlen > 1) {
			switch (v[vlen - 1] | 0x20) {
			case 'k': shift = 10; break;
			case 'm': shift = 20; break;
			case 'g': shift = 30; break;
			case 't': shift = 40; break;
			default: break;
			}
		}
		ra = ref_number(v, shift ? vlen - 1 : vlen, &a);
		if (ra)
			return ra;
		if (shift && (a << shift) >> shift != a)
			return -ERANGE;
		a <<= shift;
		if (a == 0)
			return -EINVAL;
		if ((a - 1) / VMMFS_MAPFILE_PAGE_SIZE >= vram_pages)
			return -ERANGE;
		rr->alloc_bytes = a;
		return 0;
	}
	return -EINVAL;
}

/* The whole text at once, then the end of text. */
static void ref_parse(struct ref_result *rr, const uint8_t *t, size_t len, uint64_t vram_pages,
		      uint64_t va_size)
{
	size_t i = 0;

	memset(rr, 0, sizeof(*rr));
	while (i < len) {
		size_t start;

		if (ref_is_sep(t[i])) {
			i++;
			continue;
		}
		if (t[i] == '#') {
			while (i < len && t[i] != '\n')
				i++;
			continue;
		}
		start = i;
		while (i < len && !ref_is_sep(t[i]) && t[i] != '#')
			i++;
		rr->err = ref_word(rr, t + start, i - start, vram_pages, va_size);
		if (rr->err)
			return;
	}
	if (len == 0)
		rr->err = -ENODATA;
	else if (!rr->npages && !rr->alloc_bytes)
		rr->err = -EINVAL;
}

/* ---- running the parser under checks ------------------------------------------- */

/* Runs already checked (all but the last, which may still grow) and the
 * pages they hold, so that feeding byte by byte stays linear; finish checks
 * every run again. */
struct checked {
	size_t runs;
	uint64_t pages;
};

FUZZ_NOCOV static void check_state(const struct vmmfs_mapfile *mf, int r, int prev_err, uint64_t fed,
			struct checked *ck, const char *how)
{
	uint64_t sum;
	size_t i;

	if (r != mf->error)
		mf_fail("%s: feed returned %d but the parser's error is %d", how, r, mf->error);
	if (prev_err && mf->error != prev_err)
		mf_fail("%s: error changed from %d to %d (errors are sticky)", how, prev_err,
			mf->error);
	if (mf->error && (!prev_err || !ck)) { /* a new error, or a final check */
		if (mf->error != -EINVAL && mf->error != -ERANGE && mf->error != -EFBIG &&
		    mf->error != -ENOMEM)
			mf_fail("%s: error %d is none of -EINVAL, -ERANGE, -EFBIG, -ENOMEM", how,
				mf->error);
		if (!mf->errmsg[0])
			mf_fail("%s: error %d has no message", how, mf->error);
		if (strchr(mf->errmsg, '\n'))
			mf_fail("%s: error message has a newline: %s", how, mf->errmsg);
		if (!memchr(mf->errmsg, '\0', sizeof(mf->errmsg)))
			mf_fail("%s: error message is not terminated", how);
		if (strcmp(vmmfs_mapfile_error(mf), mf->errmsg))
			mf_fail("%s: vmmfs_mapfile_error() is not the parser's message", how);
	} else if (!mf->error && mf->errmsg[0]) {
		mf_fail("%s: message '%s' without an error", how, mf->errmsg);
	}

	if (mf->nruns > mf->runs_cap)
		mf_fail("%s: %zu runs in an array of %zu", how, mf->nruns, mf->runs_cap);
	if (mf->nruns && !mf->runs)
		mf_fail("%s: %zu runs and no array", how, mf->nruns);
	if (!ck || ck->runs > mf->nruns) {
		i = 0;
		sum = 0;
	} else {
		i = ck->runs;
		sum = ck->pages;
	}
	for (; i < mf->nruns; i++) {
		const struct vmmfs_vmm_run *run = &mf->runs[i];
		if (ck && i + 1 < mf->nruns && i == ck->runs) {
			ck->runs = i + 1;
			ck->pages = sum + run->count;
		}
		if (run->count == 0)
			mf_fail("%s: run %zu (first 0x%llx) is empty", how, i,
				(unsigned long long)run->first);
		if (run->first >= mf->vram_pages || run->count > mf->vram_pages - run->first)
			mf_fail("%s: run %zu, 0x%llx + 0x%llx pages, is beyond VRAM (0x%llx pages)",
				how, i, (unsigned long long)run->first,
				(unsigned long long)run->count, (unsigned long long)mf->vram_pages);
		if (i && mf->runs[i - 1].first + mf->runs[i - 1].count == run->first)
			mf_fail("%s: run %zu (0x%llx) continues run %zu and was not merged", how, i,
				(unsigned long long)run->first, i - 1);
		sum += run->count;
	}
	if (sum != mf->npages)
		mf_fail("%s: npages is %llu, the runs hold %llu pages", how,
			(unsigned long long)mf->npages, (unsigned long long)sum);
	if (mf->npages > VMMFS_MAPFILE_MAX_PAGES)
		mf_fail("%s: %llu pages, more than the limit", how, (unsigned long long)mf->npages);
	if (mf->npages && mf->alloc_bytes)
		mf_fail("%s: both PFNs and alloc=", how);
	if (mf->alloc_bytes && (mf->alloc_bytes - 1) / VMMFS_MAPFILE_PAGE_SIZE >= mf->vram_pages)
		mf_fail("%s: alloc=0x%llx is larger than VRAM", how,
			(unsigned long long)mf->alloc_bytes);
	if (!mf->access_given && mf->read_only)
		mf_fail("%s: read-only without ro", how);
	switch (mf->va_kind) {
	case VMMFS_MAPFILE_VA_ANY:
		break;
	case VMMFS_MAPFILE_VA_EXACT:
		if (mf->va_start % VMMFS_MAPFILE_PAGE_SIZE || mf->va_start >= mf->va_size)
			mf_fail("%s: va=0x%llx is unaligned or beyond the address space", how,
				(unsigned long long)mf->va_start);
		break;
	case VMMFS_MAPFILE_VA_RANGE:
		if (mf->va_start % VMMFS_MAPFILE_PAGE_SIZE || mf->va_end % VMMFS_MAPFILE_PAGE_SIZE ||
		    mf->va_start >= mf->va_end || mf->va_end > mf->va_size)
			mf_fail("%s: va range 0x%llx-0x%llx is unaligned, empty or beyond the address "
				"space", how, (unsigned long long)mf->va_start,
				(unsigned long long)mf->va_end);
		break;
	default:
		mf_fail("%s: va kind %d", how, (int)mf->va_kind);
	}
	if (mf->wordlen > VMMFS_MAPFILE_MAX_WORD)
		mf_fail("%s: a kept word of %zu bytes", how, mf->wordlen);
	if (mf->wordlen && mf->in_comment)
		mf_fail("%s: a kept word inside a comment", how);
	if (mf->wordlen && mf->word_at + mf->wordlen > mf->bytes)
		mf_fail("%s: the kept word at %llu (+%zu) is beyond the %llu bytes accepted", how,
			(unsigned long long)mf->word_at, mf->wordlen, (unsigned long long)mf->bytes);
	if (mf->error != -EFBIG && mf->bytes != fed)
		mf_fail("%s: %llu bytes accepted, %llu fed", how, (unsigned long long)mf->bytes,
			(unsigned long long)fed);
}

/* Feeds one piece and checks the state. */
FUZZ_NOCOV static void feed(struct vmmfs_mapfile *mf, const uint8_t *p, size_t n, uint64_t *fed,
		 struct checked *ck, const char *how)
{
	int prev = mf->error;
	int r = vmmfs_mapfile_feed(mf, (const char *)p, n);

	if (!prev)
		*fed += n;
	check_state(mf, r, prev, *fed, ck, how);
}

FUZZ_NOCOV static int finish(struct vmmfs_mapfile *mf, uint64_t fed, const char *how)
{
	int prev = mf->error;
	int r = vmmfs_mapfile_finish(mf);

	if (r == -ENODATA) {
		if (fed || mf->error)
			mf_fail("%s: finish says -ENODATA after %llu bytes (error %d)", how,
				(unsigned long long)fed, mf->error);
		check_state(mf, 0, 0, fed, NULL, how);
		return r;
	}
	check_state(mf, r, prev, fed, NULL, how);
	if (!r) {
		if (mf->wordlen || mf->in_comment)
			mf_fail("%s: finished with a word or comment left open", how);
		if (!mf->npages && !mf->alloc_bytes)
			mf_fail("%s: finished with nothing to map", how);
	}
	return r;
}

FUZZ_NOCOV static void same_outcome(const struct vmmfs_mapfile *a, int ra, const struct vmmfs_mapfile *b,
			 int rb, const char *how)
{
	if (ra != rb)
		mf_fail("whole text gives %d (%s), %s gives %d (%s)", ra, a->errmsg, how, rb,
			b->errmsg);
	if (strcmp(a->errmsg, b->errmsg))
		mf_fail("whole text says '%s', %s says '%s'", a->errmsg, how, b->errmsg);
	if (ra)
		return;
	if (a->va_kind != b->va_kind || a->va_start != b->va_start || a->va_end != b->va_end ||
	    a->read_only != b->read_only || a->access_given != b->access_given ||
	    a->alloc_bytes != b->alloc_bytes || a->npages != b->npages || a->nruns != b->nruns ||
	    a->bytes != b->bytes)
		mf_fail("whole text and %s parse to different options or page counts "
			"(npages %llu/%llu, runs %zu/%zu, alloc 0x%llx/0x%llx, va %d/%d)", how,
			(unsigned long long)a->npages, (unsigned long long)b->npages, a->nruns,
			b->nruns, (unsigned long long)a->alloc_bytes,
			(unsigned long long)b->alloc_bytes, (int)a->va_kind, (int)b->va_kind);
	if (a->nruns && memcmp(a->runs, b->runs, a->nruns * sizeof(*a->runs)))
		mf_fail("whole text and %s give different runs", how);
}

FUZZ_NOCOV static void same_as_reference(const struct vmmfs_mapfile *mf, int r, const struct ref_result *rr)
{
	size_t i;

	if (r != rr->err)
		mf_fail("the parser gives %d (%s), the grammar says %d", r, mf->errmsg, rr->err);
	if (r)
		return;
	if (mf->va_kind != rr->va_kind || mf->va_start != rr->va_start ||
	    (rr->va_kind == VMMFS_MAPFILE_VA_RANGE && mf->va_end != rr->va_end))
		mf_fail("va: parser kind %d 0x%llx-0x%llx, grammar kind %d 0x%llx-0x%llx",
			(int)mf->va_kind, (unsigned long long)mf->va_start,
			(unsigned long long)mf->va_end, (int)rr->va_kind,
			(unsigned long long)rr->va_start, (unsigned long long)rr->va_end);
	if (mf->read_only != rr->read_only || mf->access_given != rr->access_given)
		mf_fail("access: parser %s (given %d), grammar %s (given %d)",
			mf->read_only ? "ro" : "rw", mf->access_given, rr->read_only ? "ro" : "rw",
			rr->access_given);
	if (mf->alloc_bytes != rr->alloc_bytes)
		mf_fail("alloc=: parser 0x%llx, grammar 0x%llx", (unsigned long long)mf->alloc_bytes,
			(unsigned long long)rr->alloc_bytes);
	if (mf->npages != rr->npages || mf->nruns != rr->nruns)
		mf_fail("PFNs: parser %llu pages in %zu runs, grammar %llu pages in %zu runs",
			(unsigned long long)mf->npages, mf->nruns, (unsigned long long)rr->npages,
			rr->nruns);
	for (i = 0; i < rr->nruns; i++)
		if (mf->runs[i].first != rr->runs[i].first || mf->runs[i].count != rr->runs[i].count)
			mf_fail("run %zu: parser 0x%llx+%llu, grammar 0x%llx+%llu", i,
				(unsigned long long)mf->runs[i].first,
				(unsigned long long)mf->runs[i].count,
				(unsigned long long)rr->runs[i].first,
				(unsigned long long)rr->runs[i].count);
}

FUZZ_NOCOV static void check_expand(const struct vmmfs_mapfile *mf)
{
	uint64_t *pfns = NULL, k = 0;
	size_t i;
	int r;

	if (mf->npages > (1u << 16))
		return;
	r = vmmfs_mapfile_expand(mf, &pfns);
	if (r)
		mf_fail("expand of %llu pages failed: %d", (unsigned long long)mf->npages, r);
	for (i = 0; i < mf->nruns; i++)
		for (uint64_t j = 0; j < mf->runs[i].count; j++, k++)
			if (pfns[k] != mf->runs[i].first + j)
				mf_fail("expand: PFN %llu is 0x%llx, run %zu says 0x%llx",
					(unsigned long long)k, (unsigned long long)pfns[k], i,
					(unsigned long long)(mf->runs[i].first + j));
	free(pfns);
}

int FUZZ_MAPFILE_ENTRY(const uint8_t *data, size_t size)
{
	struct vmmfs_mapfile whole, cut, bytewise;
	struct ref_result rr;
	struct checked ck;
	const uint8_t *lens, *text;
	uint64_t fed;
	size_t nlens, len, off, i;
	int r_whole, r_cut, r_byte, simd;

	if (size < 2)
		return 0;
	cur_vram_pages = vram_pages_tab[data[0] & 15];
	cur_va_size = va_size_tab[data[0] >> 4];
	nlens = data[1] & 15;
	if (size < 2 + nlens)
		return 0;
	lens = data + 2;
	text = data + 2 + nlens;
	len = size - 2 - nlens;
	cur_text = text;
	cur_len = len;
	cur_lens = lens;
	cur_nlens = nlens;

	/* one piece */
	vmmfs_mapfile_init(&whole, cur_vram_pages, cur_va_size);
	fed = 0;
	if (len)
		feed(&whole, text, len, &fed, NULL, "one piece");
	r_whole = finish(&whole, fed, "one piece");

	/* the pieces the input asks for, parsed with the instruction set it
	 * asks for (bits 5-6 of byte 1: 64-bit words, SSE2, AVX2, the best),
	 * so the lesser block paths are fuzzed too and must agree with the
	 * best one's whole-text result */
	simd = (data[1] >> 5) & 3;
	vmmfs_mapfile_simd(simd == 3 ? -1 : simd);
	vmmfs_mapfile_init(&cut, cur_vram_pages, cur_va_size);
	fed = 0;
	off = 0;
	memset(&ck, 0, sizeof(ck));
	for (i = 0; off < len; i++) {
		size_t n = nlens ? lens[i % nlens] : len;
		if (n == 255 || n > len - off || i >= 4 * len + 64)
			n = len - off;
		feed(&cut, text + off, n, &fed, &ck, "in pieces");
		off += n;
	}
	if (nlens && lens[i % nlens] == 0)
		feed(&cut, text + off, 0, &fed, &ck, "in pieces"); /* an empty write at the end */
	r_cut = finish(&cut, fed, "in pieces");
	vmmfs_mapfile_simd(-1);
	same_outcome(&whole, r_whole, &cut, r_cut, "the pieces");

	/* one byte at a time: short texts always, longer ones when asked */
	if (len <= 256 || (data[1] & 0x10 && len <= 8192)) {
		vmmfs_mapfile_init(&bytewise, cur_vram_pages, cur_va_size);
		fed = 0;
		memset(&ck, 0, sizeof(ck));
		for (off = 0; off < len; off++)
			feed(&bytewise, text + off, 1, &fed, &ck, "byte by byte");
		r_byte = finish(&bytewise, fed, "byte by byte");
		same_outcome(&whole, r_whole, &bytewise, r_byte, "bytes one at a time");
		vmmfs_mapfile_fini(&bytewise);
	}

	ref_parse(&rr, text, len, cur_vram_pages, cur_va_size);
	same_as_reference(&whole, r_whole, &rr);
	if (!r_whole)
		check_expand(&whole);

	free(rr.runs);
	vmmfs_mapfile_fini(&cut);
	vmmfs_mapfile_fini(&whole);
	if (whole.runs || whole.nruns || whole.runs_cap)
		mf_fail("fini left runs behind");
	return 0;
}
