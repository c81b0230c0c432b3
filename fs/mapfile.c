/* SPDX-License-Identifier: MIT */
/*
 * Mapping-file parser (see mapfile.h for the grammar and the errors).
 *
 * The scanner walks each piece once with a byte-class table. A word is
 * parsed where it lies in the caller's buffer; only a word cut by the end
 * of a piece is copied (at most VMMFS_MAPFILE_MAX_WORD bytes) and finished
 * when the next piece arrives. Numbers are converted by hand: no sscanf,
 * no strtoull, no allocation per number.
 */
#include "mapfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		size_t cap = mf->runs_cap ? mf->runs_cap * 2 : 64;
		struct vmmfs_pfn_run *r = realloc(mf->runs, cap * sizeof(*r));
		if (!r)
			return fail(mf, -ENOMEM, "out of memory for the PFN list (%zu runs)", mf->nruns);
		mf->runs = r;
		mf->runs_cap = cap;
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
		end++; /* inclusive end; end + 1 cannot wrap: it is aligned */
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

/* Bytes 0x80-0xff never count as hex digits. */
static inline uint64_t hex_mask8(uint64_t x)
{
	uint64_t lo = x & ~HIGHS, y = lo | 0x20 * ONES;
	uint64_t digit = (lo + (0x80 - '0') * ONES) & ~(lo + (0x80 - '9' - 1) * ONES);
	uint64_t letter = (y + (0x80 - 'a') * ONES) & ~(y + (0x80 - 'f' - 1) * ONES);

	return (digit | letter) & ~x & HIGHS;
}

/* Number of leading hex digits among the 8 bytes (8 if all are). */
static inline unsigned int hex_run8(uint64_t x)
{
	uint64_t bad = ~hex_mask8(x) & HIGHS;

	return bad ? (unsigned int)__builtin_ctzll(bad) / 8 : 8;
}

/* The 8 bytes as 8 hex nibbles, first byte most significant (bytes that
 * are not hex digits give some nibble: callers shift them off). */
static inline uint64_t hex_pack8(uint64_t x)
{
	uint64_t letter = (hex_mask8(x) >> 7) & (x >> 6) & ONES; /* a-f, A-F have 0x40 */
	uint64_t n = (x & 0x0f * ONES) + letter * 9;

	n = ((n << 4) | (n >> 8)) & 0x00ff00ff00ff00ffull;
	n = ((n << 8) | (n >> 16)) & 0x0000ffff0000ffffull;
	n = ((n << 16) | (n >> 32)) & 0x00000000ffffffffull;
	return n;
}

/* The fast path for lists of single PFNs, the bulk of large mapping files:
 * from *pp, converts every lone PFN (followed by a separator inside the
 * piece) where it lies, extending the last run in registers, and skips the
 * separators between them. Stops at anything else (a range, an option, a
 * comment, a word that may go on in the next piece, a number too long to
 * convert here) and leaves it to the general path at *pp.
 * Returns 0 or an error. */
static int scan_pfns(struct vmmfs_mapfile *mf, const char **pp, const char *end,
		     const char *buf, uint64_t base)
{
	const unsigned char *q = (const unsigned char *)*pp, *e = (const unsigned char *)end;
	uint64_t first = 0, count = 0, added = 0, v;
	const uint64_t vram_pages = mf->vram_pages;
	uint64_t pages = mf->npages; /* mf->npages, kept in a register */
	int r = 0;

	if (mf->alloc_bytes)
		return 0;
	if (mf->nruns) {
		first = mf->runs[mf->nruns - 1].first;
		count = mf->runs[mf->nruns - 1].count;
	}
	while (q < e) {
		const unsigned char *w = q, *digits;
		unsigned int d;

		if (byte_class[*q] == C_SEP) {
			q++;
			continue;
		}
		v = 0;
		if (q[0] == '0' && q + 1 < e && (q[1] | 0x20) == 'x' && e - q >= 10) {
			/* "0x" and 1 to 7 hex digits, branch-free: classify the
			 * next 8 bytes as a word, pack their nibbles, shift off
			 * the tail */
			uint64_t x = load8(q + 2);
			unsigned int len = hex_run8(x);
			uint64_t packed = hex_pack8(x);
			const unsigned char *h = q + 2;

			if (len == 0)
				goto general;
			if (len < 8) {
				v = packed >> (4 * (8 - len));
				q = h + len;
			} else {
				q = h;
				while (q < e && (d = hex_digit[*q]) <= 15) {
					v = v << 4 | d;
					q++;
				}
				if (q - h > 16)
					goto general;
			}
		} else if (q[0] == '0' && q + 1 < e && (q[1] | 0x20) == 'x') {
			q += 2;
			digits = q;
			while (q < e && (d = hex_digit[*q]) <= 15) {
				v = v << 4 | d;
				q++;
			}
			if (q - digits > 16 || q == digits)
				goto general;
		} else {
			digits = q;
			while (q < e && (d = (unsigned int)(*q - '0')) <= 9) {
				v = v * 10 + d;
				q++;
			}
			if (q - digits > 19 || q == digits)
				goto general;
		}
		/* pages + added: every page so far (the cap is add_run's to report) */
		if (q == e || byte_class[*q] == C_WORD || v >= vram_pages ||
		    pages + added >= VMMFS_MAPFILE_MAX_PAGES)
			goto general;
		added++;
		if (mf->nruns && first + count == v) {
			count++;
			continue;
		}
		/* a new run: store the open one, append */
		if (mf->nruns)
			mf->runs[mf->nruns - 1].count = count;
		if (mf->nruns < mf->runs_cap) {
			mf->runs[mf->nruns].first = v;
			mf->nruns++;
		} else {
			mf->npages += added - 1;
			added = 0;
			r = add_run(mf, v, 1, base + (uint64_t)((const char *)w - buf));
			if (r)
				return r;
			pages = mf->npages;
		}
		first = v;
		count = 1;
		continue;
general:
		q = w;
		break;
	}
	if (mf->nruns)
		mf->runs[mf->nruns - 1].count = count;
	mf->npages += added;
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
			r = scan_pfns(mf, &p, end, buf, base);
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

int vmmfs_mapfile_expand(const struct vmmfs_mapfile *mf, uint64_t **pfns)
{
	uint64_t *a, *p;
	size_t i;

	a = malloc((mf->npages ? mf->npages : 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	p = a;
	for (i = 0; i < mf->nruns; i++) {
		uint64_t pfn = mf->runs[i].first, n = mf->runs[i].count;
		while (n--)
			*p++ = pfn++;
	}
	*pfns = a;
	return 0;
}
