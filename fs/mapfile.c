/* SPDX-License-Identifier: MIT */
/*
 * Mapping-file parser (see mapfile.h for the grammar and the errors).
 *
 * The scanner walks each piece once with a byte-class table. A word is
 * parsed where it lies in the caller's buffer; only a word cut by the end
 * of a piece is copied (at most VMMFS_MAPFILE_MAX_WORD bytes) and finished
 * when the next piece arrives. Numbers are converted by hand: no sscanf,
 * no strtoull, no allocation per number. Lists of lone PFNs take the block
 * path of scan_pfns() (64 bytes classified at once), about 1.5 GB/s on
 * the 2-core machine of bench_fs; the rest goes a word at a time.
 */
#include "mapfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

enum { C_WORD = 0, C_SEP, C_HASH };

/* Byte classes: separators, the comment mark, everything else is a word. */
static const unsigned char byte_class[256] = {
	[' '] = C_SEP, ['\t'] = C_SEP, ['\n'] = C_SEP, ['\r'] = C_SEP,
	['\v'] = C_SEP, ['\f'] = C_SEP, [','] = C_SEP, ['#'] = C_HASH,
};

/* Value of each byte as a hex digit; X (0xff) for anything else. */
#define X 0xff
static const unsigned char hex_digit[256] = {
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, X, X, X, X, X, X,
	X, 10, 11, 12, 13, 14, 15, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, 10, 11, 12, 13, 14, 15, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X

static inline unsigned int hex_value(unsigned char c)
{
	return hex_digit[c];
}

int vmmfs_parse_u64(const char *s, size_t len, uint64_t *out)
{
	bool hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return -EINVAL;
	if (hex) {
		for (i = 2; i < len; i++) {
			unsigned int d = hex_value((unsigned char)s[i]);
			if (d > 15)
				return -EINVAL;
			if (v >> 60)
				goto overflow;
			v = v << 4 | d;
		}
	} else {
		for (i = 0; i < len; i++) {
			unsigned int d = (unsigned char)s[i] - '0';
			if (d > 9)
				return -EINVAL;
			if (v > (UINT64_MAX - d) / 10)
				goto overflow;
			v = v * 10 + d;
		}
	}
	*out = v;
	return 0;

overflow:
	/* the rest must still be digits, or the word is malformed, not large */
	for (; i < len; i++)
		if (hex ? hex_value((unsigned char)s[i]) > 15 : (unsigned char)(s[i] - '0') > 9)
			return -EINVAL;
	return -ERANGE;
}

int vmmfs_parse_size(const char *s, size_t len, uint64_t *out)
{
	unsigned int shift = 0;
	uint64_t v;
	int r;

	if (len > 1) {
		switch (s[len - 1]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: break;
		}
	}
	r = vmmfs_parse_u64(s, shift ? len - 1 : len, &v);
	if (r)
		return r;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

void vmmfs_mapfile_init(struct vmmfs_mapfile *mf, uint64_t vram_pages, uint64_t va_size)
{
	memset(mf, 0, sizeof(*mf));
	mf->vram_pages = vram_pages;
	mf->va_size = va_size;
}

void vmmfs_mapfile_fini(struct vmmfs_mapfile *mf)
{
	free(mf->runs);
	mf->runs = NULL;
	mf->nruns = mf->runs_cap = 0;
}

const char *vmmfs_mapfile_error(const struct vmmfs_mapfile *mf)
{
	return mf->errmsg;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct vmmfs_mapfile *mf, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mf->errmsg, sizeof(mf->errmsg), fmt, ap);
	va_end(ap);
	mf->error = err;
	return err;
}

/* A word made printable and short enough for an error message. */
static const char *show(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t i, n = len < dstlen - 4 ? len : dstlen - 4;

	for (i = 0; i < n; i++)
		dst[i] = (s[i] >= 0x21 && s[i] <= 0x7e) ? s[i] : '?';
	if (n < len)
		dst[i++] = '.', dst[i++] = '.', dst[i++] = '.';
	dst[i] = '\0';
	return dst;
}

static int runs_grow(struct vmmfs_mapfile *mf);

static int add_run(struct vmmfs_mapfile *mf, uint64_t first, uint64_t count, uint64_t at)
{
	struct vmmfs_pfn_run *last;

	if (count > VMMFS_MAPFILE_MAX_PAGES - mf->npages)
		return fail(mf, -EFBIG, "more than %llu pages in one mapping file (byte %llu); "
			    "split the mapping into several files",
			    (unsigned long long)VMMFS_MAPFILE_MAX_PAGES, (unsigned long long)at);
	mf->npages += count;
	if (mf->nruns) {
		last = &mf->runs[mf->nruns - 1];
		if (last->first + last->count == first) {
			last->count += count;
			return 0;
		}
	}
	if (mf->nruns == mf->runs_cap) {
		int r = runs_grow(mf);
		if (r)
			return r;
	}
	mf->runs[mf->nruns].first = first;
	mf->runs[mf->nruns].count = count;
	mf->nruns++;
	return 0;
}

/* A number inside word w (for messages); r from vmmfs_parse_*. */
static int bad_number(struct vmmfs_mapfile *mf, int r, const char *what,
		      const char *s, size_t len, uint64_t at)
{
	char buf[48];

	if (r == -ERANGE)
		return fail(mf, -ERANGE, "%s '%s' does not fit in 64 bits (byte %llu)", what,
			    show(buf, sizeof(buf), s, len), (unsigned long long)at);
	return fail(mf, -EINVAL, "malformed %s '%s' (byte %llu): expected 0x hex or decimal",
		    what, show(buf, sizeof(buf), s, len), (unsigned long long)at);
}

static int check_pfn(struct vmmfs_mapfile *mf, uint64_t pfn, uint64_t at)
{
	if (pfn < mf->vram_pages)
		return 0;
	return fail(mf, -ERANGE, "PFN 0x%llx is beyond VRAM (byte %llu): the last page is 0x%llx",
		    (unsigned long long)pfn, (unsigned long long)at,
		    (unsigned long long)(mf->vram_pages - 1));
}

/* PFN or A-B; the word starts with a digit. */
static int word_pfns(struct vmmfs_mapfile *mf, const char *w, size_t len, uint64_t at)
{
	const char *dash = memchr(w, '-', len);
	uint64_t a, b;
	int r, rb;

	if (mf->alloc_bytes)
		return fail(mf, -EINVAL, "PFNs and alloc= cannot be mixed (byte %llu)",
			    (unsigned long long)at);
	if (!dash) {
		r = vmmfs_parse_u64(w, len, &a);
		if (r)
			return bad_number(mf, r, "PFN", w, len, at);
		r = check_pfn(mf, a, at);
		return r ? r : add_run(mf, a, 1, at);
	}
	r = vmmfs_parse_u64(w, (size_t)(dash - w), &a);
	rb = vmmfs_parse_u64(dash + 1, len - (size_t)(dash - w) - 1, &b);
	if (r == -EINVAL || rb == -EINVAL)
		return bad_number(mf, -EINVAL, "PFN range", w, len, at); /* malformed beats large */
	if (r || rb)
		return bad_number(mf, -ERANGE, "PFN range", w, len, at);
	if (b < a) {
		char buf[48];
		return fail(mf, -EINVAL, "PFN range '%s' runs backwards (byte %llu)",
			    show(buf, sizeof(buf), w, len), (unsigned long long)at);
	}
	r = check_pfn(mf, b, at);
	return r ? r : add_run(mf, a, b - a + 1, at);
}

static int word_va(struct vmmfs_mapfile *mf, const char *v, size_t len, uint64_t at)
{
	const char *dash = memchr(v, '-', len);
	uint64_t start, end;
	int r;

	if (mf->va_kind != VMMFS_MAPFILE_VA_ANY)
		return fail(mf, -EINVAL, "va= given twice (byte %llu)", (unsigned long long)at);
	r = vmmfs_parse_u64(v, dash ? (size_t)(dash - v) : len, &start);
	if (r)
		return bad_number(mf, r, "va=", v, len, at);
	if (start % VMMFS_MAPFILE_PAGE_SIZE)
		return fail(mf, -EINVAL, "va=0x%llx is not 4 KiB-aligned (byte %llu)",
			    (unsigned long long)start, (unsigned long long)at);
	if (start >= mf->va_size)
		return fail(mf, -ERANGE, "va=0x%llx is beyond the address space (byte %llu): "
			    "it ends at 0x%llx", (unsigned long long)start,
			    (unsigned long long)at, (unsigned long long)mf->va_size);
	if (!dash) {
		mf->va_kind = VMMFS_MAPFILE_VA_EXACT;
		mf->va_start = start;
		return 0;
	}
	r = vmmfs_parse_u64(dash + 1, len - (size_t)(dash - v) - 1, &end);
	if (r)
		return bad_number(mf, r, "va=", v, len, at);
	if (end % VMMFS_MAPFILE_PAGE_SIZE) {
		if ((end + 1) % VMMFS_MAPFILE_PAGE_SIZE)
			return fail(mf, -EINVAL, "va= range end 0x%llx is neither 4 KiB-aligned "
				    "(exclusive) nor one byte short of it (inclusive) (byte %llu)",
				    (unsigned long long)end, (unsigned long long)at);
		if (end == UINT64_MAX) /* inclusive up to 2^64: past any address space */
			return fail(mf, -ERANGE, "va= range end 0x%llx is beyond the address space "
				    "(byte %llu): it ends at 0x%llx", (unsigned long long)end,
				    (unsigned long long)at, (unsigned long long)mf->va_size);
		end++; /* inclusive end */
	}
	if (end <= start)
		return fail(mf, -EINVAL, "va= range 0x%llx-0x%llx is empty or backwards (byte %llu)",
			    (unsigned long long)start, (unsigned long long)end,
			    (unsigned long long)at);
	if (end > mf->va_size)
		return fail(mf, -ERANGE, "va= range end 0x%llx is beyond the address space "
			    "(byte %llu): it ends at 0x%llx", (unsigned long long)end,
			    (unsigned long long)at, (unsigned long long)mf->va_size);
	mf->va_kind = VMMFS_MAPFILE_VA_RANGE;
	mf->va_start = start;
	mf->va_end = end;
	return 0;
}

static int word_alloc(struct vmmfs_mapfile *mf, const char *v, size_t len, uint64_t at)
{
	uint64_t size;
	int r;

	if (mf->alloc_bytes)
		return fail(mf, -EINVAL, "alloc= given twice (byte %llu)", (unsigned long long)at);
	if (mf->npages)
		return fail(mf, -EINVAL, "PFNs and alloc= cannot be mixed (byte %llu)",
			    (unsigned long long)at);
	r = vmmfs_parse_size(v, len, &size);
	if (r) {
		char buf[48];
		if (r == -ERANGE)
			return fail(mf, -ERANGE, "alloc=%s does not fit in 64 bits (byte %llu)",
				    show(buf, sizeof(buf), v, len), (unsigned long long)at);
		return fail(mf, -EINVAL, "malformed alloc=%s (byte %llu): expected a size such "
			    "as 2M, 0x10000 or 64K", show(buf, sizeof(buf), v, len),
			    (unsigned long long)at);
	}
	if (size == 0)
		return fail(mf, -EINVAL, "alloc=0 maps nothing (byte %llu)", (unsigned long long)at);
	if ((size - 1) / VMMFS_MAPFILE_PAGE_SIZE >= mf->vram_pages)
		return fail(mf, -ERANGE, "alloc=0x%llx is larger than VRAM (0x%llx bytes) (byte %llu)",
			    (unsigned long long)size,
			    (unsigned long long)(mf->vram_pages * VMMFS_MAPFILE_PAGE_SIZE),
			    (unsigned long long)at);
	mf->alloc_bytes = size;
	return 0;
}

static int word_access(struct vmmfs_mapfile *mf, bool ro, uint64_t at)
{
	if (mf->access_given && mf->read_only != ro)
		return fail(mf, -EINVAL, "both ro and rw given (byte %llu)", (unsigned long long)at);
	mf->access_given = true;
	mf->read_only = ro;
	return 0;
}

static int parse_word(struct vmmfs_mapfile *mf, const char *w, size_t len, uint64_t at)
{
	char buf[48];

	if ((unsigned char)(w[0] - '0') <= 9)
		return word_pfns(mf, w, len, at);
	if (len == 2 && w[0] == 'r' && (w[1] == 'o' || w[1] == 'w'))
		return word_access(mf, w[1] == 'o', at);
	if (len >= 3 && !memcmp(w, "va=", 3))
		return word_va(mf, w + 3, len - 3, at);
	if (len >= 6 && !memcmp(w, "alloc=", 6))
		return word_alloc(mf, w + 6, len - 6, at);
	return fail(mf, -EINVAL, "unknown word '%s' (byte %llu): expected PFNs (0x100, 0x100-0x1ff), "
		    "va=, ro, rw or alloc=", show(buf, sizeof(buf), w, len), (unsigned long long)at);
}

static int word_too_long(struct vmmfs_mapfile *mf, const char *w, uint64_t at)
{
	char buf[48];

	return fail(mf, -EINVAL, "word '%s' is longer than %d bytes (byte %llu)",
		    show(buf, sizeof(buf), w, VMMFS_MAPFILE_MAX_WORD), VMMFS_MAPFILE_MAX_WORD,
		    (unsigned long long)at);
}

/* SWAR helpers over 8 text bytes, first byte in the low bits. */
static inline uint64_t load8(const unsigned char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* The 8 bytes as 8 hex nibbles, first byte most significant. Only bytes
 * that are hex digits give their value (a-f and A-F have 0x40, digits do
 * not); callers shift the others off. */
static inline uint64_t hex_pack8(uint64_t x)
{
	uint64_t n = (x & 0x0f * ONES) + ((x >> 6) & ONES) * 9;

	n = ((n << 4) | (n >> 8)) & 0x00ff00ff00ff00ffull;
	n = ((n << 8) | (n >> 16)) & 0x0000ffff0000ffffull;
	n = ((n << 16) | (n >> 32)) & 0x00000000ffffffffull;
	return n;
}

/* Classes of 64 bytes at once, one bit per byte (byte i is bit i). */
struct block_masks {
	uint64_t sep;  /* separators: space, tab, newline, CR, VT, FF, comma */
	uint64_t hex;  /* 0-9, a-f, A-F */
	uint64_t x;    /* x or X */
	uint64_t zero; /* 0 */
};

#if defined(__SSE2__) && !defined(VMMFS_MAPFILE_SWAR)
#include <emmintrin.h>

/* 0xff in each byte of v that lies in [lo, lo + span] (unsigned) */
static inline __m128i in_range16(__m128i v, char lo, char span)
{
	__m128i d = _mm_sub_epi8(v, _mm_set1_epi8(lo));

	return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span)), d);
}

static inline void block_classify(const unsigned char *p, struct block_masks *bm)
{
	uint64_t sep = 0, hex = 0, x = 0, zero = 0;
	unsigned int i;

	for (i = 0; i < 4; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		__m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
		__m128i s = _mm_or_si128(in_range16(v, '\t', '\r' - '\t'),
					 _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
						      _mm_cmpeq_epi8(v, _mm_set1_epi8(','))));
		__m128i h = _mm_or_si128(in_range16(v, '0', 9), in_range16(lower, 'a', 5));
		__m128i xx = _mm_cmpeq_epi8(lower, _mm_set1_epi8('x'));
		__m128i z = _mm_cmpeq_epi8(v, _mm_set1_epi8('0'));

		sep |= (uint64_t)(unsigned int)_mm_movemask_epi8(s) << (16 * i);
		hex |= (uint64_t)(unsigned int)_mm_movemask_epi8(h) << (16 * i);
		x |= (uint64_t)(unsigned int)_mm_movemask_epi8(xx) << (16 * i);
		zero |= (uint64_t)(unsigned int)_mm_movemask_epi8(z) << (16 * i);
	}
	bm->sep = sep;
	bm->hex = hex;
	bm->x = x;
	bm->zero = zero;
}
#else
/* The same with 8 bytes in a 64-bit word: a class as the high bit of each
 * byte, gathered into 8 bits by a multiplication. */

/* Hex digits among 8 bytes (0x80-0xff never are). */
static inline uint64_t hex_mask8(uint64_t x)
{
	uint64_t lo = x & ~HIGHS, y = lo | 0x20 * ONES;
	uint64_t digit = (lo + (0x80 - '0') * ONES) & ~(lo + (0x80 - '9' - 1) * ONES);
	uint64_t letter = (y + (0x80 - 'a') * ONES) & ~(y + (0x80 - 'f' - 1) * ONES);

	return (digit | letter) & ~x & HIGHS;
}

static inline uint64_t high_bits8(uint64_t m)
{
	return ((m >> 7) * 0x0102040810204080ull) >> 56;
}

static inline uint64_t eq_mask8(uint64_t lo, unsigned char c)
{
	uint64_t t = lo ^ c * ONES; /* bytes below 0x80: no carry out of a byte */

	return ~(t + 0x7f * ONES) & HIGHS;
}

static inline void block_classify(const unsigned char *p, struct block_masks *bm)
{
	uint64_t sep = 0, hex = 0, x = 0, zero = 0;
	unsigned int i;

	for (i = 0; i < 8; i++) {
		uint64_t v = load8(p + 8 * i), lo = v & ~HIGHS, lower = lo | 0x20 * ONES;
		uint64_t ctl = (lo + (0x80 - '\t') * ONES) & ~(lo + (0x80 - '\r' - 1) * ONES);
		uint64_t s = (ctl | eq_mask8(lo, ' ') | eq_mask8(lo, ',')) & ~v & HIGHS;

		sep |= high_bits8(s) << (8 * i);
		hex |= high_bits8(hex_mask8(v)) << (8 * i);
		x |= high_bits8(eq_mask8(lower, 'x') & ~v) << (8 * i);
		zero |= high_bits8(eq_mask8(lo, '0') & ~v) << (8 * i);
	}
	bm->sep = sep;
	bm->hex = hex;
	bm->x = x;
	bm->zero = zero;
}
#endif

/* Backs len bytes at p with memory in one call rather than a page fault
 * per page as they are first written (big arrays only; on failure, or on
 * systems without it, the faults happen as before). */
void vmmfs_mapfile_populate(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	const uintptr_t page = 4096;
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + len) & ~(page - 1);

	if (len >= (1u << 20) && e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
	(void)p;
	(void)len;
#endif
}

/* Makes room for one more run. */
static int runs_grow(struct vmmfs_mapfile *mf)
{
	size_t old = mf->runs_cap, cap = old ? old * 2 : 64;
	struct vmmfs_pfn_run *r = realloc(mf->runs, cap * sizeof(*r));

	if (!r)
		return fail(mf, -ENOMEM, "out of memory for the PFN list (%zu runs)", mf->nruns);
	vmmfs_mapfile_populate(r + old, (cap - old) * sizeof(*r));
	mf->runs = r;
	mf->runs_cap = cap;
	return 0;
}

/* The value of a whole word of len bytes that is a lone PFN: "0x" and 1 to
 * 16 hex digits, or 1 to 19 decimal digits. False for anything else (the
 * general path then says what is wrong with it). */
static inline bool word_value(const unsigned char *w, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	unsigned int d;
	size_t i;

	if (len > 2 && w[0] == '0' && (w[1] | 0x20) == 'x') {
		if (len > 18)
			return false;
		for (i = 2; i < len; i++) {
			d = hex_digit[w[i]];
			if (d > 15)
				return false;
			v = v << 4 | d;
		}
	} else {
		if (len - 1 >= 19)
			return false; /* none, or more than 19 digits */
		for (i = 0; i < len; i++) {
			d = (unsigned int)(w[i] - '0');
			if (d > 9)
				return false;
			v = v * 10 + d;
		}
	}
	*out = v;
	return true;
}

/* The parser's runs while scan_pfns works on them, kept in registers: the
 * open run is [first, next), its count written back when it closes. */
struct scan_state {
	struct vmmfs_pfn_run *runs;
	size_t nruns, cap;
	uint64_t pages, first, next;
};

/* Adds PFN v, which the caller checked (below VRAM, under the page limit).
 * Returns 0 or -ENOMEM. */
static inline __attribute__((always_inline))
int scan_add(struct vmmfs_mapfile *mf, struct scan_state *st, uint64_t v)
{
	st->pages++;
	if (v == st->next) {
		st->next++;
		return 0;
	}
	if (st->nruns)
		st->runs[st->nruns - 1].count = st->next - st->first;
	if (st->nruns == st->cap) {
		mf->nruns = st->nruns;
		if (runs_grow(mf)) {
			st->pages--;
			return -ENOMEM;
		}
		st->runs = mf->runs;
		st->cap = mf->runs_cap;
	}
	st->runs[st->nruns++].first = v;
	st->first = v;
	st->next = v + 1;
	return 0;
}

/* Bytes past the end of a block that the fast loop may load: a word that
 * ends in the block has its 8 bytes after "0x" read in one go. */
#define BLOCK_SLACK 16

/* The fast path for lists of single PFNs, the bulk of large mapping files.
 * From *pp it converts every lone PFN that a separator ends inside the
 * piece, where it lies, and skips the separators between them.
 *
 * Blocks of 64 bytes are classified at once (SSE2 where the compiler has
 * it, 64-bit words elsewhere): one bit per byte for separators, hex
 * digits, x and 0. The words that end in the block then come from two bit
 * masks, their starts and their ends, so finding the next word never waits
 * for the value of this one. When every such word is "0x" and hex digits
 * (checked for the block with a few mask operations), each costs its
 * length, one 8-byte load and a branch-free conversion: the 8 bytes after
 * "0x" packed into 8 nibbles, the bytes past the word shifted off. Other
 * blocks, and the end of the piece, take a loop per byte.
 *
 * It stops at anything else (a range, an option, a comment, a number that
 * may go on in the next piece, a PFN beyond VRAM, the page limit) and
 * leaves that word at *pp to the general path, which reports any error.
 * Returns 0 or -ENOMEM. */
static int scan_pfns(struct vmmfs_mapfile *mf, const char **pp, const char *end)
{
	const unsigned char *q = (const unsigned char *)*pp, *e = (const unsigned char *)end;
	const unsigned char *w = q;
	const uint64_t vram_pages = mf->vram_pages, max_pages = VMMFS_MAPFILE_MAX_PAGES;
	struct scan_state st = {
		.runs = mf->runs, .nruns = mf->nruns, .cap = mf->runs_cap,
		.pages = mf->npages, .next = UINT64_MAX, /* no PFN is UINT64_MAX */
	};
	uint64_t v;
	int r = 0;

	if (mf->alloc_bytes)
		return 0; /* PFNs and alloc= do not mix: the general path says so */
	if (st.nruns) {
		st.first = st.runs[st.nruns - 1].first;
		st.next = st.first + st.runs[st.nruns - 1].count;
	}

	while (e - q >= 64 + BLOCK_SLACK) {
		struct block_masks bm;
		uint64_t word, starts, ends;

		block_classify(q, &bm);
		word = ~bm.sep;
		starts = word & ~(word << 1);
		ends = bm.sep & (word << 1); /* the separator after each word */
		if (ends) {
			/* bits below the last end: the words that end here */
			uint64_t in = (1ull << (63 - __builtin_clzll(ends))) - 1, t = starts & in;

			if ((bm.x & in) == t << 1 && !(t & ~bm.zero) && !(t << 2 & bm.sep) &&
			    !(word & in & ~bm.x & ~t & ~bm.hex)) {
				/* all "0x" and at least one hex digit */
				while (ends) {
					unsigned int s = (unsigned int)__builtin_ctzll(starts);
					unsigned int nd = (unsigned int)__builtin_ctzll(ends) - s - 2;

					if (nd > 8)
						break; /* 9 to 16 digits: below */
					w = q + s;
					v = hex_pack8(load8(w + 2)) >> (32 - 4 * nd);
					if (v >= vram_pages || st.pages == max_pages)
						goto general;
					r = scan_add(mf, &st, v);
					if (r)
						goto general;
					starts &= starts - 1;
					ends &= ends - 1;
				}
			}
		}
		while (ends) {
			unsigned int s = (unsigned int)__builtin_ctzll(starts);

			w = q + s;
			if (!word_value(w, (unsigned int)__builtin_ctzll(ends) - s, &v) ||
			    v >= vram_pages || st.pages == max_pages)
				goto general;
			r = scan_add(mf, &st, v);
			if (r)
				goto general;
			starts &= starts - 1;
			ends &= ends - 1;
		}
		if (starts) {
			/* a word that goes on past the block */
			w = q + __builtin_ctzll(starts);
			if (w == q)
				goto general; /* longer than a block */
			q = w;
		} else {
			q += 64;
		}
	}

	/* the rest of the piece, a byte at a time */
	while (q < e) {
		if (byte_class[*q] == C_SEP) {
			q++;
			continue;
		}
		w = q;
		while (q < e && byte_class[*q] == C_WORD)
			q++;
		/* ended by a separator (not '#' or the end of the piece) */
		if (q == e || byte_class[*q] != C_SEP || !word_value(w, (size_t)(q - w), &v) ||
		    v >= vram_pages || st.pages == max_pages)
			goto general;
		r = scan_add(mf, &st, v);
		if (r)
			goto general;
	}
	goto out;

general:
	q = w;
out:
	if (st.nruns)
		st.runs[st.nruns - 1].count = st.next - st.first;
	mf->nruns = st.nruns;
	mf->npages = st.pages;
	*pp = (const char *)q;
	return r;
}

int vmmfs_mapfile_feed(struct vmmfs_mapfile *mf, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	uint64_t base = mf->bytes; /* file offset of buf[0] */
	int r;

	if (mf->error)
		return mf->error;
	if (len > VMMFS_MAPFILE_MAX_BYTES - mf->bytes)
		return fail(mf, -EFBIG, "mapping file larger than %llu bytes; split the mapping "
			    "into several files", (unsigned long long)VMMFS_MAPFILE_MAX_BYTES);
	mf->bytes += len;

	if (mf->in_comment) {
		const char *nl = memchr(p, '\n', len);
		if (!nl)
			return 0;
		mf->in_comment = false;
		p = nl + 1;
	} else if (mf->wordlen) {
		/* finish the word cut by the previous piece */
		while (p < end && byte_class[(unsigned char)*p] == C_WORD) {
			if (mf->wordlen == VMMFS_MAPFILE_MAX_WORD)
				return word_too_long(mf, mf->word, mf->word_at);
			mf->word[mf->wordlen++] = *p++;
		}
		if (p == end)
			return 0;
		r = parse_word(mf, mf->word, mf->wordlen, mf->word_at);
		mf->wordlen = 0;
		if (r)
			return r;
	}

	while (p < end) {
		const char *w;
		unsigned char c = byte_class[(unsigned char)*p];

		if (c == C_SEP) {
			p++;
			continue;
		}
		if (c == C_HASH) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				mf->in_comment = true;
				return 0;
			}
			p = nl + 1;
			continue;
		}
		if ((unsigned char)(*p - '0') <= 9) {
			w = p;
			r = scan_pfns(mf, &p, end);
			if (r)
				return r;
			if (p != w)
				continue;
		}
		w = p;
		while (++p < end && byte_class[(unsigned char)*p] == C_WORD)
			;
		if ((size_t)(p - w) > VMMFS_MAPFILE_MAX_WORD)
			return word_too_long(mf, w, base + (uint64_t)(w - buf));
		if (p == end) {
			/* may go on in the next piece */
			memcpy(mf->word, w, (size_t)(p - w));
			mf->wordlen = (size_t)(p - w);
			mf->word_at = base + (uint64_t)(w - buf);
			return 0;
		}
		r = parse_word(mf, w, (size_t)(p - w), base + (uint64_t)(w - buf));
		if (r)
			return r;
	}
	return 0;
}

int vmmfs_mapfile_finish(struct vmmfs_mapfile *mf)
{
	int r;

	if (mf->error)
		return mf->error;
	if (mf->wordlen) {
		r = parse_word(mf, mf->word, mf->wordlen, mf->word_at);
		mf->wordlen = 0;
		if (r)
			return r;
	}
	mf->in_comment = false;
	if (mf->bytes == 0)
		return -ENODATA;
	if (!mf->npages && !mf->alloc_bytes)
		return fail(mf, -EINVAL, "nothing to map: write PFNs (e.g. 0x100-0x1ff) or alloc=SIZE");
	return 0;
}

void vmmfs_mapfile_expand_into(const struct vmmfs_mapfile *mf, uint64_t *pfns)
{
	size_t i;

	for (i = 0; i < mf->nruns; i++) {
		uint64_t first = mf->runs[i].first, n = mf->runs[i].count, k;

		for (k = 0; k < n; k++)
			pfns[k] = first + k;
		pfns += n;
	}
}

int vmmfs_mapfile_expand(const struct vmmfs_mapfile *mf, uint64_t **pfns)
{
	uint64_t *a;

	a = malloc((mf->npages ? mf->npages : 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	vmmfs_mapfile_expand_into(mf, a);
	*pfns = a;
	return 0;
}
