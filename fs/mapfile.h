/* SPDX-License-Identifier: MIT */
/*
 * The mapping-file parser: what a user writes into vas/NAME/maps/FILE.
 *
 * Grammar (DESIGN.md, "Mapping files"): words separated by spaces, tabs,
 * commas or newlines; `#` starts a comment that runs to the end of the line.
 *   PFN          0x hex or decimal: one VRAM page
 *   A-B          inclusive range of PFNs
 *   va=ADDR      map exactly at ADDR (4 KiB-aligned)
 *   va=START-END place it anywhere inside; END exclusive when 4 KiB-aligned,
 *                inclusive when END+1 is (va=0x100000-0x1fffff = 0x100000-0x200000)
 *   ro | rw      access (default rw)
 *   alloc=SIZE   fresh zeroed VRAM instead of PFNs; SIZE with K, M, G or T
 *
 * The parser is fed the text in pieces of any size, exactly as write()s
 * arrive: a word split across two pieces is joined. It is pure (no FUSE, no
 * VMM): the daemon turns its result into a placement and a PFN array.
 *
 * Errors (negative errno, sticky: every later call returns the same one, and
 * vmmfs_mapfile_error() says why in one line):
 *   -EINVAL  malformed text (unknown word, bad number, backwards range,
 *            unaligned va=, conflicting or repeated options, word longer
 *            than VMMFS_MAPFILE_MAX_WORD, nothing to map at the end)
 *   -ERANGE  a number that does not fit in 64 bits, a PFN beyond VRAM, a VA
 *            beyond the address space, alloc= larger than VRAM
 *   -EFBIG   more than VMMFS_MAPFILE_MAX_BYTES of text, or more than
 *            VMMFS_MAPFILE_MAX_PAGES pages in one file
 *   -ENOMEM  no memory for the PFN list
 *
 * Cost: one pass over the bytes, where they lie in the caller's buffer (only
 * a word cut by the end of a piece is copied, at most MAX_WORD bytes). Lists
 * of single PFNs, the bulk of big files, go 64 bytes at a time: the bytes
 * are classified at once (AVX2 or SSE2, whichever the CPU has, 64-bit words
 * elsewhere) into bit masks of separators and digits and packed into hex
 * digits, two a byte; each "0x" word of up to 15 digits then costs one
 * 8-byte load and two shifts, a decimal one a few multiplications more;
 * everything else takes a loop per byte. No sscanf, no strtoull. PFNs are
 * stored as runs of consecutive pages (a range or consecutive single PFNs
 * cost one run) in an array that grows geometrically. No allocation per
 * number.
 *
 * Locking: none; one parser belongs to one writer.
 */
#ifndef VMMFS_FS_MAPFILE_H
#define VMMFS_FS_MAPFILE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include <vmmfs/vmm.h>

/* Limits, documented in vmmfs(8). */
#define VMMFS_MAPFILE_MAX_BYTES (64ull << 20) /* text written into one mapping file */
#define VMMFS_MAPFILE_MAX_PAGES (1ull << 24)  /* PFNs in one file: 64 GiB of 4 KiB pages */
#define VMMFS_MAPFILE_MAX_WORD 64             /* longest word (option or number) */

#define VMMFS_MAPFILE_PAGE_SIZE 4096ull

enum vmmfs_mapfile_va {
	VMMFS_MAPFILE_VA_ANY = 0,
	VMMFS_MAPFILE_VA_EXACT,
	VMMFS_MAPFILE_VA_RANGE,
};

/* The parser's runs of PFNs are the VMM's (struct vmmfs_vmm_run: first,
 * count): vmmfs_vmm_map_runs takes them as they are, without an array of
 * one PFN per page. */

struct vmmfs_mapfile {
	/* limits, set by init */
	uint64_t vram_pages;     /* a PFN must be below this */
	uint64_t va_size;        /* a VA must be below this */

	/* what was parsed */
	enum vmmfs_mapfile_va va_kind;
	uint64_t va_start, va_end; /* RANGE: [start, end) */
	bool read_only;
	bool access_given;
	uint64_t alloc_bytes;    /* alloc=SIZE, 0 if not given */
	struct vmmfs_vmm_run *runs;
	size_t nruns, runs_cap;
	uint64_t npages;         /* PFNs, counting every page of every range */
	uint64_t bytes;          /* text accepted so far */

	/* scanner state between pieces */
	bool in_comment;
	size_t wordlen;          /* bytes of a word cut by the end of a piece */
	uint64_t word_at;        /* its offset in the file */
	char word[VMMFS_MAPFILE_MAX_WORD + 1];

	int error;               /* sticky negative errno */
	char errmsg[192];
};

/* Starts a parser. vram_pages bounds PFNs, va_size bounds va=. */
void vmmfs_mapfile_init(struct vmmfs_mapfile *mf, uint64_t vram_pages, uint64_t va_size);
/* Frees the PFN runs. The parser may be initialised again. */
void vmmfs_mapfile_fini(struct vmmfs_mapfile *mf);

/* Feeds the next len bytes. Returns 0 or an error above. */
int vmmfs_mapfile_feed(struct vmmfs_mapfile *mf, const char *buf, size_t len);

/* End of text: parses a word left at the end and checks that there is
 * something to map. Returns 0, -ENODATA when not a single byte was fed (the
 * caller decides what an empty file means), or an error above. */
int vmmfs_mapfile_finish(struct vmmfs_mapfile *mf);

/* One line saying why the last error happened ("" if none). */
const char *vmmfs_mapfile_error(const struct vmmfs_mapfile *mf);

/* The PFNs as one array of mf->npages entries, malloc'ed into *pfns.
 * Returns 0 or -ENOMEM. */
int vmmfs_mapfile_expand(const struct vmmfs_mapfile *mf, uint64_t **pfns);
/* The same into the caller's array of mf->npages entries. */
void vmmfs_mapfile_expand_into(const struct vmmfs_mapfile *mf, uint64_t *pfns);

/* Backs a big array (1 MiB or more) with memory in one call instead of a
 * page fault per page (Linux; does nothing elsewhere or on failure). Pages
 * that already have memory are skipped. */
void vmmfs_mapfile_populate(void *p, size_t len);

/* The instruction set of the block path (the same results with any):
 * level VMMFS_MAPFILE_SIMD_NONE, _SSE2 or _AVX2 chooses that one, or the
 * best the CPU has if it lacks it; -1 chooses the best (the default); -2
 * only asks. Returns the level in use. For tests and benchmarks: it applies
 * to every parser of the process. */
#define VMMFS_MAPFILE_SIMD_NONE 0 /* 64-bit words */
#define VMMFS_MAPFILE_SIMD_SSE2 1
#define VMMFS_MAPFILE_SIMD_AVX2 2 /* with BMI1 and BMI2 */
int vmmfs_mapfile_simd(int level);

/* Number parsing shared with the command line and translate/ names, over
 * exactly len bytes (no terminator needed):
 * vmmfs_parse_u64:  0x hex or decimal.
 * vmmfs_parse_size: a number with an optional K, M, G or T suffix (powers
 *                   of 1024, either case).
 * Both return 0, -EINVAL (not a number) or -ERANGE (does not fit in 64 bits). */
int vmmfs_parse_u64(const char *s, size_t len, uint64_t *out);
int vmmfs_parse_size(const char *s, size_t len, uint64_t *out);

#endif
