/* SPDX-License-Identifier: MIT */
/*
 * Page-table walking, two kinds:
 *
 *  - The shadow tree: one host node (struct vmm_pt) per page-table page of
 *    an address space, with its VRAM address, its place in the parent and
 *    its use count. The VMM decides everything from the shadow and never
 *    reads page tables back from VRAM to map or unmap (a BAR0 read is a PCIe
 *    round trip). Execute and unmap walk the shadow over the op's range
 *    once, visiting each table once; prepare does the same twice (count
 *    what is missing, then link what it allocated in between without the
 *    lock) — never a walk per page (vmm_prepare.c, vmm_execute.c).
 *
 *  - The VRAM walker (walk_lookup, walk_dump): what the tables in VRAM
 *    actually say, read through the PRAMIN window with the hardware's
 *    decoding rules (big-pages-and-tlb.md §2.3): the 2 MiB PTE in the low
 *    word of a dual PDE, the big-page table read before the small one,
 *    512 MiB PTEs at PD1 on chips that have them, sparse entries.
 *
 * Use count of a shadow table:
 *   refs = valid + nchild + resv
 *   valid   leaf entries in hardware (PTEs; 2 MiB/512 MiB PTEs in a
 *           directory; valid big PTEs in an LPT)
 *   nchild  child tables linked below (both halves of a dual PDE count)
 *   resv    entries reserved by prepared operations (leaf tables only)
 * A table whose count drops to 0 is detached from the tree (root excepted).
 *
 * Invariants: a table is "installed" when its directory entry is in
 * hardware; an installed table's parent is installed; a table that is not
 * installed has valid == 0 and its VRAM content is undefined (it is written
 * completely, in one batch, when it is installed).
 */
#ifndef VMMFS_WALK_H
#define VMMFS_WALK_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <vmmfs/vmmfs.h>
#include "gpu.h"
#include "mmu.h"

#define WALK_LPT 0xffu          /* level of a big-page table node */
#define WALK_CHUNKS 32u         /* 64 KiB chunks per PD0 slot = LPT entries */
#define WALK_LPT_BYTES 256u
#define WALK_LPT_PER_PAGE 16u   /* LPTs sub-allocated from one 4 KiB page */

struct lpt_page;

struct vmm_pt {
	struct vmm_pt *parent;     /* NULL for the root */
	struct vmm_pt *next;       /* pool / deferred / quarantine list link */
	uint64_t addr;             /* VRAM PA of the table */
	uint32_t pidx;             /* index in the parent (PD0: same for both halves) */
	uint8_t level;             /* index into fmt->levels, or WALK_LPT */
	bool installed;            /* the parent entry points at it in hardware */
	bool needs_flush;          /* detached while installed: free after an invalidate */
	uint32_t valid, nchild, resv;
	uint32_t chk;              /* scratch for vmmfs_vmm_check */
	/* Directories: child[entries]; at PD0, child[i] is the small PT and
	 * child[entries + i] the LPT of slot i. */
	struct vmm_pt **child;
	uint64_t *leafmap;         /* directories that may hold leaves: bit per entry */
	/* PD0, installed: bit per entry, its low / high word may be non-zero
	 * in VRAM (clear: vmmfs last wrote it as 0). Such a word is neither
	 * read back nor written again while it stays 0. */
	uint64_t *hwlo, *hwhi;
	uint8_t *cnt;              /* PT: valid small PTEs per 64 KiB chunk */
	uint32_t lvalid;           /* LPT: bit per valid big PTE */
	struct lpt_page *lpage;    /* LPT: the page it lives in */
};

/* A 4 KiB VRAM page holding up to 16 LPTs. */
struct lpt_page {
	struct lpt_page *next;
	uint64_t pa;
	uint16_t used;             /* bit per 256 B slot */
};

static inline uint32_t vmm_pt_refs(const struct vmm_pt *pt)
{
	return pt->valid + pt->nchild + pt->resv;
}

static inline bool walk_bit(const uint64_t *map, uint32_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}
static inline void walk_bit_set(uint64_t *map, uint32_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}
static inline void walk_bit_clear(uint64_t *map, uint32_t i)
{
	map[i / 64] &= ~(1ull << (i % 64));
}

/* Whether a directory level can hold leaf PTEs: PD0 (2 MiB) always, PD1
 * (512 MiB) when the chip has them. */
static inline bool walk_level_has_leaves(const struct mmu_fmt *f, bool pd1_512m, unsigned int level)
{
	return (int)level == f->pd0 || (pd1_512m && (int)level == f->pd0 - 1);
}

/* Bytes for a shadow node of that level (node plus its arrays). */
size_t walk_node_size(const struct mmu_fmt *f, bool pd1_512m, unsigned int level);
/* Lays out a zeroed block of walk_node_size bytes as a node of that level. */
struct vmm_pt *walk_node_init(void *mem, const struct mmu_fmt *f, bool pd1_512m,
			      unsigned int level);

/* ---- the VRAM walker ------------------------------------------------------ */

struct walk_hw {
	struct vmmfs_gpu *gpu;
	const struct mmu_fmt *fmt;
	bool pd1_512m;
	uint64_t pdb;
};

/* Translates va by reading the tables in VRAM. Takes the PRAMIN lock.
 * Returns 0, -ENODEV, -ERANGE (a table beyond VRAM). */
int walk_lookup(const struct walk_hw *hw, uint64_t va, struct vmmfs_lookup *out);

/* Depth-first over the tree in VRAM, one batched read per table; see
 * vmmfs_vmm_dump. fn runs without the PRAMIN lock. */
int walk_dump(const struct walk_hw *hw,
	      int (*fn)(void *ctx, const struct vmmfs_pt_entry *e), void *ctx);

#endif
