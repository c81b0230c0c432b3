/* SPDX-License-Identifier: MIT */
/*
 * MMU formats as data (nvidia-mmu.md §5, big-pages-and-tlb.md §1–§4).
 *
 * A format is a table of levels, root first, leaf PT last; the walker and
 * the VMM derive every index, coverage and size from it and never know a bit
 * position. Entry encodings are one encode/decode pair per entry kind; only
 * core/mmu_v2.c and core/mmu_v3.c know bit layouts.
 *
 *  MMU v2 (Turing, Ampere, Ada), 49-bit VA:
 *
 *    PD3 (4 x 8 B)  VA 48:47
 *     └ PD2 (512 x 8 B)  VA 46:38
 *        └ PD1 (512 x 8 B)  VA 37:29        [512 MiB PTE here on Ampere/Ada]
 *           └ PD0 (256 x 16 B, dual)  VA 28:21   [2 MiB PTE in the low word]
 *              ├ big half ─ LPT (32 x 8 B, 256 B)  VA 20:16  64 KiB pages
 *              └ small half ─ PT (512 x 8 B)       VA 20:12   4 KiB pages
 *
 *  MMU v3 (Hopper, Blackwell), 57-bit VA: PD4 (2 x 8 B, VA 56) above PD3
 *  (VA 55:47), then as v2 from PD2 down; 512 MiB PTEs at PD1.
 */
#ifndef VMMFS_MMU_H
#define VMMFS_MMU_H

#include <stdint.h>
#include <stdbool.h>

enum mmu_aperture {
	MMU_APER_VID = 0,   /* video memory (local VRAM) */
	MMU_APER_PEER,      /* PTE only */
	MMU_APER_SYS,       /* system memory, coherent */
	MMU_APER_SYSNC,     /* system memory, non-coherent */
};

struct mmu_layout;

struct mmu_level {
	const char *name;     /* "PD3", ..., "PD0", "PT" */
	uint8_t shift;        /* lowest VA bit this level indexes (= page shift of a leaf here) */
	uint8_t bits;         /* index bits: entries = 1 << bits */
	uint8_t entry_size;   /* 8, or 16 for the dual PD0 */
	bool dual;            /* PD0: big half (LPT) + small half (PT) */
};

#define MMU_MAX_LEVELS 6

struct mmu_fmt {
	int version;          /* 2 or 3 */
	int va_bits;          /* 49 or 57 */
	int nlevels;          /* 5 or 6; levels[nlevels-1] is the 4 KiB PT */
	const struct mmu_level *levels;
	struct mmu_level lpt; /* the 64 KiB big-page table: shift 16, 5 bits, 8 B */
	int pd0;              /* index of the dual level */
	uint64_t max_vid_pfn; /* first VRAM PFN a PTE cannot address (v2: 1<<25, v3: 1<<28) */
	uint64_t max_pde_pa;  /* first table PA a PDE cannot address */
	const struct mmu_layout *layout; /* bit layouts (mmu_v2.c / mmu_v3.c), below */
};

extern const struct mmu_fmt mmu_fmt_v2;
extern const struct mmu_fmt mmu_fmt_v3;
const struct mmu_fmt *mmu_fmt_get(int version);

/* Checks a format's own consistency: the levels split the VA exactly
 * (PT at bit 12, each level right above the next, the root ending at
 * va_bits), entry sizes, table sizes (4096 B except the root and the LPT),
 * the dual level, and max_vid_pfn/max_pde_pa against the address fields.
 * Returns 0, or -EINVAL after logging what is wrong. */
int mmu_fmt_check(const struct mmu_fmt *f);

/* "vid", "peer", "sys", "sysnc" ("?" for anything else). */
const char *mmu_aperture_name(enum mmu_aperture aper);

/* Level arithmetic (mmu.c). */
static inline uint32_t mmu_index(const struct mmu_level *l, uint64_t va)
{
	return (uint32_t)((va >> l->shift) & ((1ull << l->bits) - 1));
}
static inline uint64_t mmu_entries(const struct mmu_level *l) { return 1ull << l->bits; }
/* Bytes of VA one entry covers, and one whole table. */
static inline uint64_t mmu_entry_span(const struct mmu_level *l) { return 1ull << l->shift; }
static inline uint64_t mmu_table_span(const struct mmu_level *l) { return 1ull << (l->shift + l->bits); }
/* Table size in bytes (entries * entry size): 4096 except roots and LPT. */
static inline uint64_t mmu_table_bytes(const struct mmu_level *l) { return mmu_entries(l) * l->entry_size; }

/* A leaf entry (PTE), decoded. Kinds for VALID = 0 matter for big pages. */
enum mmu_pte_kind {
	MMU_PTE_VALID = 0,
	MMU_PTE_INVALID,      /* all zero: at an LPTE, "look at the small PTEs" */
	MMU_PTE_SPARSE,       /* v2 VOL=1 / v3 PCF=SPARSE */
	MMU_PTE_NO_4K,        /* LPTE only: v2 0x20 (PRIV), v3 PCF=NO_VALID_4KB_PAGE */
	MMU_PTE_OTHER,        /* any other VALID=0 value (undocumented) */
};

struct mmu_pte {
	enum mmu_pte_kind kind;
	enum mmu_aperture aper;
	uint64_t pfn;         /* page frame (PA >> 12) */
	bool read_only;
	bool privileged;
	bool atomic_disable;
	bool uncached;        /* v2 VOL, v3 PCF bit 0 */
	bool acd;             /* v3 access counting disabled */
	uint8_t kind_field;   /* v2 KIND 63:56, v3 KIND 11:8 */
	uint8_t peer;
	bool encrypted;       /* v2 ENCRYPTED (bit 4); v3 has none */
	uint32_t comptagline; /* v2 COMPTAGLINE 55:36, VID/PEER only; v3 has none */
};

/* A directory entry (one 8-byte PDE, or one half of a dual PDE). */
struct mmu_pde {
	bool present;         /* aperture != INVALID */
	bool sparse;          /* not present, sparse marker set */
	enum mmu_aperture aper; /* VID, SYS or SYSNC when present */
	uint64_t addr;        /* table PA (4 KiB aligned; 256 B for the big half) */
	bool uncached;        /* v2 VOL, v3 PCF bit 0 */
	bool no_ats;          /* v2 NO_ATS, v3 PCF bit 1 */
};

/* Encoders return 0 or -ERANGE (address not representable: never truncated)
 * / -EINVAL (aperture not encodable there). In detail:
 *   -ERANGE  a number too big for its field: an address (PFN or table PA),
 *            kind, peer id or comptagline;
 *   -EINVAL  something the format cannot express at all: a PEER PDE, an
 *            unknown aperture or kind, a flag the entry lacks (v2 acd,
 *            v3 encrypted/comptagline, v2 dual NO_ATS beside a big table),
 *            a peer id without the PEER aperture,
 *            a misaligned table address (4 KiB; 256 B for a big half), an
 *            absent PDE with an address or uncached set, a present one
 *            marked sparse, MMU_PTE_OTHER. *raw is untouched on error.
 * VALID = 0 leaf entries decode by their exact raw value (0, sparse, no-4K;
 * anything else is MMU_PTE_OTHER). A non-valid PTE decodes with every other
 * member zero; an absent PDE half with aper and addr zero. */
int mmu_pte_encode(const struct mmu_fmt *f, const struct mmu_pte *pte, uint64_t *raw);
void mmu_pte_decode(const struct mmu_fmt *f, uint64_t raw, bool is_lpte, struct mmu_pte *pte);
int mmu_pde_encode(const struct mmu_fmt *f, const struct mmu_pde *pde, uint64_t *raw);
/* Decodes an 8-byte PDE. is_pte is set when bit 0 (IS_PTE) is 1 — then
 * decode the word with mmu_pte_decode instead. */
void mmu_pde_decode(const struct mmu_fmt *f, uint64_t raw, struct mmu_pde *pde, bool *is_pte);
/* Dual PDE: big half -> lo (address >> 8 granularity), small -> hi.
 * v2 has a single NO_ATS bit (lo bit 5) for the whole entry: big->no_ats
 * and small->no_ats must then be equal (-EINVAL otherwise), and decode
 * reports it in both halves. That bit is also inside the big half's
 * address field, so it can be set only while the big half is absent. */
int mmu_dual_encode(const struct mmu_fmt *f, const struct mmu_pde *big,
		    const struct mmu_pde *small, uint64_t raw[2]);
/* lo bit 0 set (a 2 MiB PTE in the low word) is reported through is_pte. */
void mmu_dual_decode(const struct mmu_fmt *f, const uint64_t raw[2],
		     struct mmu_pde *big, struct mmu_pde *small, bool *is_pte);

/* Fast path for runs: a valid VRAM PTE for pfn is
 *   mmu_pte_vid_template(f, ro) | (pfn << f->... ) — see mmu_pte_vid(). */
uint64_t mmu_pte_vid_template(const struct mmu_fmt *f, bool read_only);
unsigned int mmu_pte_vid_pfn_shift(const struct mmu_fmt *f); /* v2: 8, v3: 12 */
static inline uint64_t mmu_pte_vid(const struct mmu_fmt *f, uint64_t tmpl, uint64_t pfn)
{
	return tmpl | (pfn << mmu_pte_vid_pfn_shift(f));
}
/* Raw values of special leaf entries. */
uint64_t mmu_pte_raw_sparse(const struct mmu_fmt *f);
uint64_t mmu_lpte_raw_no4k(const struct mmu_fmt *f);

/* A VRAM directory entry for a table at pa (4 KiB aligned), the way vmmfs
 * writes it: aperture VID, cached; v3 PCF = VALID_CACHED_ATS_NOT_ALLOWED (2)
 * as nouveau does. */
uint64_t mmu_pde_vid(const struct mmu_fmt *f, uint64_t pa);
/* Dual PDE words with a small PT at small_pa and/or a big LPT at big_pa
 * (0 = that half absent). */
void mmu_dual_vid(const struct mmu_fmt *f, uint64_t big_pa, uint64_t small_pa, uint64_t raw[2]);
/* The fast paths do not return errors: the caller has checked pfn <
 * max_vid_pfn and pa < max_pde_pa. mmu_pde_vid/mmu_dual_vid log an internal
 * error and write an absent entry (0) rather than a wrapped address. */

/*
 * Bit layouts, for core/mmu*.c only. Every field is a mask over one 64-bit
 * word (FIELD_GET/FIELD_PREP in internal.h); a zero mask means the format
 * has no such field. mmu.c encodes and decodes every format from these.
 */
struct mmu_pte_layout {
	uint64_t valid;
	uint64_t aperture;        /* PTE aperture encoding */
	uint64_t addr[4];         /* PA >> 12, per enum mmu_aperture */
	uint64_t peer;            /* with MMU_APER_PEER only */
	uint64_t kind;
	uint64_t comptagline;     /* only with an address field it does not overlap */
	uint64_t uncached, encrypted, privileged, read_only, atomic_disable, acd;
	uint64_t raw_sparse;      /* the VALID = 0 special values */
	uint64_t raw_no4k;        /* LPTE only */
};

struct mmu_pde_layout {
	uint64_t is_pte;
	uint64_t aperture;        /* PDE aperture encoding */
	uint64_t uncached;        /* with aperture INVALID: the sparse marker */
	uint64_t no_ats;          /* 0: see mmu_layout.dual_shared_no_ats */
	uint64_t addr_vid;        /* table PA >> addr_shift */
	uint64_t addr_sys;        /* SYS and SYSNC */
	uint8_t addr_shift;       /* 12; 8 for the big half */
};

struct mmu_layout {
	struct mmu_pte_layout pte;
	struct mmu_pde_layout pde;        /* 8-byte PDE */
	struct mmu_pde_layout dual_big;   /* dual PDE, low word */
	struct mmu_pde_layout dual_small; /* dual PDE, high word */
	bool dual_shared_no_ats;          /* the big half's NO_ATS covers both */
	/* How vmmfs writes VRAM entries (mmu_pte_vid_template, mmu_pde_vid). */
	bool vid_pte_atomic_disable;
	bool vid_pde_no_ats;
};

#endif
