/* SPDX-License-Identifier: MIT */
/*
 * Mapping-file parser (see mapfile.h for the grammar and the errors).
 *
 * The scanner walks each piece once with a byte-class table. A word is
 * parsed where it lies in the caller's buffer; only a word cut by the end
 * of a piece is copied (at most VMMFS_MAPFILE_MAX_WORD bytes) and finished
 * when the next piece arrives. Numbers are converted by hand: no sscanf,
 * no strtoull, no allocation per number. Lists of lone PFNs take the block
 * path of scan_pfns() (64 bytes classified and turned into packed digits at
 * once, AVX2, SSE2 or 64-bit words), about 2 GB/s on the 2-core AMD EPYC
 * machine of bench_fs (scattered PFNs: one run each; contiguous: 2.4 GB/s);
 * the rest goes a word at a time.
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
	struct vmmfs_vmm_run *last;

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

/* ---- the block path --------------------------------------------------------
 *
 * A block is 64 bytes of text, classified at once (AVX2 or SSE2 where the
 * CPU has them, 64-bit words elsewhere) into bit masks, one bit per byte
 * (byte i is bit i), and turned into packed hex digits in the same pass.
 * The three classifiers give the same block; vmmfs_mapfile_simd() picks
 * one. */
struct block {
	uint64_t sep;  /* separators: space, tab, newline, CR, VT, FF, comma */
	uint64_t hex;  /* 0-9, a-f, A-F */
	uint64_t dec;  /* 0-9 */
	uint64_t x;    /* x or X */
	uint64_t zero; /* 0 */
	/* nib[k] holds bytes 2k and 2k + 1 as two hex digits, the first in
	 * the high half (only hex digits give their value, anything else some
	 * digit); then 16 bytes of zeros, so that 8 bytes can be loaded at any
	 * of the first 32. */
	_Alignas(32) unsigned char nib[48];
};

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* 8 text bytes, first byte in the low bits. */
static inline uint64_t load8(const unsigned char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

/* The same with 8 bytes in a 64-bit word (any CPU): a class as the high
 * bit of each byte, gathered into 8 bits by a multiplication. */

/* Decimal digits among 8 bytes (0x80-0xff never are). */
static inline uint64_t dec_mask8(uint64_t x)
{
	uint64_t lo = x & ~HIGHS;

	return (lo + (0x80 - '0') * ONES) & ~(lo + (0x80 - '9' - 1) * ONES) & ~x & HIGHS;
}

/* Hex digits among 8 bytes. */
static inline uint64_t hex_mask8(uint64_t x)
{
	uint64_t y = (x & ~HIGHS) | 0x20 * ONES;
	uint64_t letter = (y + (0x80 - 'a') * ONES) & ~(y + (0x80 - 'f' - 1) * ONES);

	return dec_mask8(x) | (letter & ~x & HIGHS);
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

/* The 8 bytes as 4 bytes of two hex digits each, the first byte's in the
 * high half of the first (a-f and A-F have 0x40, digits do not). */
static inline void hex_pairs8(uint64_t x, unsigned char *out)
{
	uint64_t n = ((x & 0x0f * ONES) + ((x >> 6) & ONES) * 9) & 0x0f * ONES;
	uint32_t pairs;

	n = ((n << 4) | (n >> 8)) & 0x00ff00ff00ff00ffull;
	n = (n | n >> 8) & 0x0000ffff0000ffffull;
	pairs = (uint32_t)(n | n >> 16); /* the first pair in the low bits */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	pairs = __builtin_bswap32(pairs);
#endif
	memcpy(out, &pairs, sizeof(pairs));
}

static inline void block_classify_swar(const unsigned char *p, struct block *b)
{
	uint64_t sep = 0, hex = 0, dec = 0, x = 0, zero = 0;
	unsigned int i;

	for (i = 0; i < 8; i++) {
		uint64_t v = load8(p + 8 * i), lo = v & ~HIGHS, lower = lo | 0x20 * ONES;
		uint64_t ctl = (lo + (0x80 - '\t') * ONES) & ~(lo + (0x80 - '\r' - 1) * ONES);
		uint64_t s = (ctl | eq_mask8(lo, ' ') | eq_mask8(lo, ',')) & ~v & HIGHS;

		sep |= high_bits8(s) << (8 * i);
		hex |= high_bits8(hex_mask8(v)) << (8 * i);
		dec |= high_bits8(dec_mask8(v)) << (8 * i);
		x |= high_bits8(eq_mask8(lower, 'x') & ~v) << (8 * i);
		zero |= high_bits8(eq_mask8(lo, '0') & ~v) << (8 * i);
		hex_pairs8(v, b->nib + 4 * i);
	}
	b->sep = sep;
	b->hex = hex;
	b->dec = dec;
	b->x = x;
	b->zero = zero;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE2 1

/* 0xff in each byte of v that lies in [lo, lo + span]: moved so that the
 * range starts at -128, one signed comparison. */
static inline __m128i in_range16(__m128i v, int lo, int span)
{
	__m128i t = _mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - lo)));

	return _mm_cmplt_epi8(t, _mm_set1_epi8((char)(span - 127)));
}

/* 16 bytes: their classes as 16-bit masks, their hex digits as 8 bytes of
 * two digits each (in the low bytes of the 16-bit lanes). */
static inline __m128i classify16(const unsigned char *p, uint64_t *sep, uint64_t *hex,
				 uint64_t *dec, uint64_t *x, uint64_t *zero)
{
	const __m128i low4 = _mm_set1_epi8(0x0f);
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
	__m128i s = _mm_or_si128(in_range16(v, '\t', '\r' - '\t'),
				 _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
					      _mm_cmpeq_epi8(v, _mm_set1_epi8(','))));
	__m128i d = in_range16(v, '0', 9), h = _mm_or_si128(d, in_range16(lower, 'a', 5));
	/* digit value: the low 4 bits, + 9 for letters (above '9') */
	__m128i n = _mm_and_si128(_mm_add_epi8(_mm_and_si128(v, low4),
					       _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('9')),
							     _mm_set1_epi8(9))), low4);

	*sep = (unsigned int)_mm_movemask_epi8(s);
	*hex = (unsigned int)_mm_movemask_epi8(h);
	*dec = (unsigned int)_mm_movemask_epi8(d);
	*x = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(lower, _mm_set1_epi8('x')));
	*zero = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('0')));
	/* 16-bit lanes d0 + d1 * 256 -> d0 * 16 + d1 */
	return _mm_srli_epi16(_mm_mullo_epi16(n, _mm_set1_epi16(0x1001)), 8);
}

static inline void block_classify_sse2(const unsigned char *p, struct block *b)
{
	uint64_t s0, s1, s2, s3, h0, h1, h2, h3, d0, d1, d2, d3, x0, x1, x2, x3, z0, z1, z2, z3;
	__m128i p0 = classify16(p, &s0, &h0, &d0, &x0, &z0);
	__m128i p1 = classify16(p + 16, &s1, &h1, &d1, &x1, &z1);
	__m128i p2 = classify16(p + 32, &s2, &h2, &d2, &x2, &z2);
	__m128i p3 = classify16(p + 48, &s3, &h3, &d3, &x3, &z3);

	b->sep = s0 | s1 << 16 | s2 << 32 | s3 << 48;
	b->hex = h0 | h1 << 16 | h2 << 32 | h3 << 48;
	b->dec = d0 | d1 << 16 | d2 << 32 | d3 << 48;
	b->x = x0 | x1 << 16 | x2 << 32 | x3 << 48;
	b->zero = z0 | z1 << 16 | z2 << 32 | z3 << 48;
	_mm_store_si128((__m128i *)(void *)b->nib, _mm_packus_epi16(p0, p1));
	_mm_store_si128((__m128i *)(void *)(b->nib + 16), _mm_packus_epi16(p2, p3));
}
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2 1
#define TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2")))

/* Byte classes for AVX2, looked up by the low and the high 4 bits of a
 * byte: a byte is in a class when both halves say so. */
enum {
	K_CTL = 0x80,   /* \t \n \v \f \r */
	K_SPACE = 0x40, /* ' ' and ',' */
	K_DEC = 0x20,   /* 0-9 */
	K_ALPHA = 0x10, /* a-f, A-F */
	K_X = 0x08,     /* x, X */
	K_ZERO = 0x04,  /* 0 */
};

/* classify16 on 32 bytes, with table look-ups: 32-bit masks; the digit
 * pairs in the low bytes of the 16-bit lanes. */
TARGET_AVX2 static inline __m256i classify32(const unsigned char *p, uint64_t *sep,
					     uint64_t *hex, uint64_t *dec, uint64_t *x,
					     uint64_t *zero)
{
	const __m256i by_low = _mm256_broadcastsi128_si256(_mm_setr_epi8(
		K_DEC | K_ZERO | K_SPACE, K_DEC | K_ALPHA, K_DEC | K_ALPHA, K_DEC | K_ALPHA,
		K_DEC | K_ALPHA, K_DEC | K_ALPHA, K_DEC | K_ALPHA, K_DEC, K_DEC | K_X,
		(char)(K_DEC | K_CTL), (char)K_CTL, (char)K_CTL, (char)(K_CTL | K_SPACE),
		(char)K_CTL, 0, 0));
	const __m256i by_high = _mm256_broadcastsi128_si256(_mm_setr_epi8(
		(char)K_CTL, 0, K_SPACE, K_DEC | K_ZERO, K_ALPHA, K_X, K_ALPHA, K_X,
		0, 0, 0, 0, 0, 0, 0, 0));
	/* what a letter's low 4 bits lack of its value */
	const __m256i letter_add = _mm256_broadcastsi128_si256(_mm_setr_epi8(
		0, 0, 0, 0, 9, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0));
	const __m256i low4 = _mm256_set1_epi8(0x0f);
	__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
	__m256i lo = _mm256_and_si256(v, low4);
	__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
	__m256i k = _mm256_and_si256(_mm256_shuffle_epi8(by_low, lo),
				     _mm256_shuffle_epi8(by_high, hi));
	__m256i n = _mm256_and_si256(_mm256_add_epi8(lo, _mm256_shuffle_epi8(letter_add, hi)),
				     low4);

	/* a class bit moved to the top of its byte for the movemask (16-bit
	 * shifts: what crosses into the next byte stays below its top) */
	*sep = (unsigned int)_mm256_movemask_epi8(_mm256_or_si256(k, _mm256_add_epi8(k, k)));
	*dec = (unsigned int)_mm256_movemask_epi8(_mm256_slli_epi16(k, 2));
	*hex = (unsigned int)_mm256_movemask_epi8(_mm256_or_si256(_mm256_slli_epi16(k, 2),
								  _mm256_slli_epi16(k, 3)));
	*x = (unsigned int)_mm256_movemask_epi8(_mm256_slli_epi16(k, 4));
	*zero = (unsigned int)_mm256_movemask_epi8(_mm256_slli_epi16(k, 5));
	/* 16-bit lanes d0 + d1 * 256 -> d0 * 16 + d1 */
	return _mm256_maddubs_epi16(n, _mm256_set1_epi16(0x0110));
}

TARGET_AVX2 static inline void block_classify_avx2(const unsigned char *p, struct block *b)
{
	uint64_t s0, s1, h0, h1, d0, d1, x0, x1, z0, z1;
	__m256i p0 = classify32(p, &s0, &h0, &d0, &x0, &z0);
	__m256i p1 = classify32(p + 32, &s1, &h1, &d1, &x1, &z1);

	b->sep = s0 | s1 << 32;
	b->hex = h0 | h1 << 32;
	b->dec = d0 | d1 << 32;
	b->x = x0 | x1 << 32;
	b->zero = z0 | z1 << 32;
	/* the pack works within 128-bit halves: bytes 0-7 of the result come
	 * from p0's first half, 8-15 from p1's, 16-23 from p0's second half */
	_mm256_store_si256((__m256i *)(void *)b->nib,
			   _mm256_permute4x64_epi64(_mm256_packus_epi16(p0, p1), 0xd8));
}
#endif

/* The nd hex digits (1 to 15) of a block from byte i on, as a number. */
static inline uint64_t block_hex(const struct block *b, unsigned int i, unsigned int nd)
{
	uint64_t v;

	memcpy(&v, b->nib + i / 2, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return (v << (i & 1) * 4) >> (64 - 4 * nd);
}

/* Whether bits [i, i + n) of m are all set (n from 1 to 63, i + n <= 64). */
static inline bool bits_set(uint64_t m, unsigned int i, unsigned int n)
{
	uint64_t want = (1ull << n) - 1;

	return (m >> i & want) == want;
}

/* Up to 16 decimal digits, 4 bits each (packed BCD, as block_hex() gives
 * them), as a number: combined in pairs, fours and eights. */
static inline uint64_t bcd_value(uint64_t v)
{
	v = (v & 0x0f0f0f0f0f0f0f0full) + (v >> 4 & 0x0f0f0f0f0f0f0f0full) * 10;
	v = (v & 0x00ff00ff00ff00ffull) + (v >> 8 & 0x00ff00ff00ff00ffull) * 100;
	v = (v & 0x0000ffff0000ffffull) + (v >> 16 & 0x0000ffff0000ffffull) * 10000;
	return (v & 0xffffffffull) + (v >> 32) * 100000000;
}

/* The value of the word of len bytes at byte s of a block when it is "0x"
 * and 1 to 15 hex digits or 1 to 15 decimal digits; false for anything
 * else (word_value() then decides). */
static inline bool block_word(const struct block *b, unsigned int s, unsigned int len,
			      uint64_t *out)
{
	if (len >= 3 && len <= 17 && (b->zero >> s & 1) && (b->x >> (s + 1) & 1) &&
	    bits_set(b->hex, s + 2, len - 2)) {
		*out = block_hex(b, s + 2, len - 2);
		return true;
	}
	if (len > 15 || !bits_set(b->dec, s, len))
		return false;
	*out = bcd_value(block_hex(b, s, len));
	return true;
}

/* Backs len bytes at p with memory in one call rather than a page fault
 * per page as they are first written (big arrays only; on failure, or on
 * systems without it, the faults happen as before). Pages that already
 * have memory, as when the allocator hands back memory freed before, are
 * skipped: populating them would walk them for nothing. */
void vmmfs_mapfile_populate(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	const uintptr_t page = 4096;
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + len) & ~(page - 1);
	unsigned char resident[256];

	if (len < (1u << 20) || e <= a)
		return;
	while (a < e) {
		size_t n = (e - a) / page, i;

		if (n > sizeof(resident))
			n = sizeof(resident);
		if (mincore((void *)a, n * page, resident))
			break;
		for (i = 0; i < n && (resident[i] & 1); i++)
			;
		a += i * page;
		if (i < n)
			break;
	}
	if (a < e)
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
	struct vmmfs_vmm_run *r = realloc(mf->runs, cap * sizeof(*r));

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
 * open run is [first, next) and *open (the last run, or a dummy while
 * there is none) gets its count when it closes. */
struct scan_state {
	struct vmmfs_vmm_run *runs, *open;
	size_t nruns, cap;
	uint64_t pages, first, next;
};

/* Adds PFN v, which the caller checked (below VRAM, under the page limit),
 * when the array has room for it. */
static inline __attribute__((always_inline))
void scan_add_room(struct scan_state *st, uint64_t v)
{
	st->pages++;
	if (v == st->next) {
		st->next++;
		return;
	}
	st->open->count = st->next - st->first;
	st->open = &st->runs[st->nruns++];
	st->open->first = v;
	st->first = v;
	st->next = v + 1;
}

/* The same, growing the array when it is full. Returns 0 or -ENOMEM. */
static inline __attribute__((always_inline))
int scan_add(struct vmmfs_mapfile *mf, struct scan_state *st, uint64_t v)
{
	if (v != st->next && st->nruns == st->cap) {
		st->open->count = st->next - st->first;
		mf->nruns = st->nruns;
		if (runs_grow(mf))
			return -ENOMEM;
		st->runs = mf->runs;
		st->cap = mf->runs_cap;
		if (st->nruns)
			st->open = &st->runs[st->nruns - 1];
	}
	scan_add_room(st, v);
	return 0;
}

/* The fast path for lists of single PFNs, the bulk of large mapping files.
 * From *pp it converts every lone PFN that a separator ends inside the
 * piece, where it lies, and skips the separators between them.
 *
 * Blocks of 64 bytes are classified at once (classify: AVX2, SSE2 or 64-bit
 * words, the best the CPU has): separators, hex and decimal digits, x and 0
 * as bit masks, and the bytes as packed hex digits, two a byte. The words
 * that end in the block then come from two bit masks, their starts and
 * their ends, so finding the next word never waits for the value of this
 * one, nor the next block for the words of this one. When every such word
 * is "0x" and hex digits, or every one decimal digits (checked for the
 * block with a few mask operations), each costs one 8-byte load of packed
 * digits and two shifts (and a few multiplications for decimal); other
 * blocks take the words one by one (block_word, else word_value), and the
 * end of the piece a loop per byte.
 *
 * It stops at anything else (a range, an option, a comment, a number that
 * may go on in the next piece, a PFN beyond VRAM, the page limit) and
 * leaves that word at *pp to the general path, which reports any error.
 * Returns 0 or -ENOMEM. */
static inline __attribute__((always_inline))
int scan_pfns_with(struct vmmfs_mapfile *mf, const char **pp, const char *end,
		   void (*classify)(const unsigned char *p, struct block *b))
{
	const unsigned char *q = (const unsigned char *)*pp, *e = (const unsigned char *)end;
	const unsigned char *w = q;
	const uint64_t vram_pages = mf->vram_pages, max_pages = VMMFS_MAPFILE_MAX_PAGES;
	struct vmmfs_vmm_run none = { 0, 0 };
	struct scan_state st = {
		.runs = mf->runs, .open = &none, .nruns = mf->nruns, .cap = mf->runs_cap,
		.pages = mf->npages, .next = UINT64_MAX, /* no PFN is UINT64_MAX */
	};
	struct block b;
	uint64_t v;
	int r = 0;

	if (mf->alloc_bytes)
		return 0; /* PFNs and alloc= do not mix: the general path says so */
	if (st.nruns) {
		st.open = &st.runs[st.nruns - 1];
		st.first = st.open->first;
		st.next = st.first + st.open->count;
	}
	memset(b.nib + 32, 0, 16);

	while (e - q >= 64) {
		const unsigned char *bq = q;
		uint64_t word, starts, ends, done, rest;

		classify(bq, &b);
		word = ~b.sep;
		starts = word & ~(word << 1);
		ends = b.sep & (word << 1); /* the separator after each word */
		/* bits up to the last end: the words that end here. A word
		 * that starts after it goes on past the block: the next block
		 * starts there (found before any word here is converted, so
		 * that the next block need not wait for them). */
		done = ends ? ~0ull >> __builtin_clzll(ends) : 0;
		rest = starts & ~done;
		if (rest) {
			q = bq + __builtin_ctzll(rest);
			if (q == bq) {
				w = q;
				goto general; /* longer than a block */
			}
		} else {
			q = bq + 64;
		}
		if (ends && st.cap - st.nruns >= 32 && max_pages - st.pages >= 32) {
			uint64_t in = done >> 1, t = starts & in;

			if ((b.x & in) == t << 1 && !(t & ~b.zero) && !(t << 2 & b.sep) &&
			    !(word & in & ~b.x & ~t & ~b.hex)) {
				/* all "0x" and at least one hex digit; at most 32
				 * words, so room for them all */
				do {
					unsigned int s = (unsigned int)__builtin_ctzll(starts);
					unsigned int nd = (unsigned int)__builtin_ctzll(ends) - s - 2;

					if (nd > 15)
						break; /* 16 digits or more: below */
					v = block_hex(&b, s + 2, nd);
					if (v >= vram_pages) {
						w = bq + s;
						goto general;
					}
					scan_add_room(&st, v);
					starts &= starts - 1;
					ends &= ends - 1;
				} while (ends);
			} else if (!(word & in & ~b.dec)) {
				/* all decimal */
				do {
					unsigned int s = (unsigned int)__builtin_ctzll(starts);
					unsigned int nd = (unsigned int)__builtin_ctzll(ends) - s;

					if (nd > 15)
						break; /* 16 digits or more: below */
					v = bcd_value(block_hex(&b, s, nd));
					if (v >= vram_pages) {
						w = bq + s;
						goto general;
					}
					scan_add_room(&st, v);
					starts &= starts - 1;
					ends &= ends - 1;
				} while (ends);
			}
		}
		while (ends) {
			unsigned int s = (unsigned int)__builtin_ctzll(starts);
			unsigned int len = (unsigned int)__builtin_ctzll(ends) - s;

			w = bq + s;
			if ((!block_word(&b, s, len, &v) && !word_value(w, len, &v)) ||
			    v >= vram_pages || st.pages == max_pages)
				goto general;
			r = scan_add(mf, &st, v);
			if (r)
				goto general;
			starts &= starts - 1;
			ends &= ends - 1;
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
	st.open->count = st.next - st.first;
	mf->nruns = st.nruns;
	mf->npages = st.pages;
	*pp = (const char *)q;
	return r;
}

/* scan_pfns_with() for each way of classifying blocks; the compiler makes
 * each a function of its own with the classifier inlined. */
static int scan_pfns_swar(struct vmmfs_mapfile *mf, const char **pp, const char *end)
{
	return scan_pfns_with(mf, pp, end, block_classify_swar);
}

#ifdef HAVE_SSE2
static int scan_pfns_sse2(struct vmmfs_mapfile *mf, const char **pp, const char *end)
{
	return scan_pfns_with(mf, pp, end, block_classify_sse2);
}
#endif

#ifdef HAVE_AVX2
TARGET_AVX2 static int scan_pfns_avx2(struct vmmfs_mapfile *mf, const char **pp, const char *end)
{
	return scan_pfns_with(mf, pp, end, block_classify_avx2);
}
#endif

/* The block path's instruction set: -1 until first used, then the best
 * this CPU has, unless vmmfs_mapfile_simd() chose one (read and written
 * atomically: parsers of several writers may start at once). */
static int simd_level = -1;

static int simd_best(void)
{
#ifdef VMMFS_MAPFILE_SIMD_MAX /* a build that tests a lesser path everywhere */
	if (VMMFS_MAPFILE_SIMD_MAX < VMMFS_MAPFILE_SIMD_SSE2)
		return VMMFS_MAPFILE_SIMD_NONE;
#ifdef HAVE_SSE2
	if (VMMFS_MAPFILE_SIMD_MAX < VMMFS_MAPFILE_SIMD_AVX2)
		return VMMFS_MAPFILE_SIMD_SSE2;
#endif
#endif
#ifdef HAVE_AVX2
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
	    __builtin_cpu_supports("bmi2"))
		return VMMFS_MAPFILE_SIMD_AVX2;
#endif
#ifdef HAVE_SSE2
	return VMMFS_MAPFILE_SIMD_SSE2;
#else
	return VMMFS_MAPFILE_SIMD_NONE;
#endif
}

int vmmfs_mapfile_simd(int level)
{
	int best = simd_best(), cur = __atomic_load_n(&simd_level, __ATOMIC_RELAXED);

	if (level >= 0 || level == -1 || cur < 0) {
		cur = level >= 0 && level < best ? level : best;
		__atomic_store_n(&simd_level, cur, __ATOMIC_RELAXED);
	}
	return cur;
}

static int scan_pfns(struct vmmfs_mapfile *mf, const char **pp, const char *end)
{
	int level = __atomic_load_n(&simd_level, __ATOMIC_RELAXED);

	if (level < 0)
		level = vmmfs_mapfile_simd(-1);
#ifdef HAVE_AVX2
	if (level == VMMFS_MAPFILE_SIMD_AVX2)
		return scan_pfns_avx2(mf, pp, end);
#endif
#ifdef HAVE_SSE2
	if (level == VMMFS_MAPFILE_SIMD_SSE2)
		return scan_pfns_sse2(mf, pp, end);
#endif
	return scan_pfns_swar(mf, pp, end);
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
