/* SPDX-License-Identifier: MIT */
/*
 * The GPU-wide owner of VRAM pages, shared by every address space.
 *
 * A buddy allocator (4 KiB chunks) covers the managed range [start, end).
 * Ownership of every VRAM page of the board (not only the managed range) is
 * kept in small arrays, so that a mapping of a contiguous run costs one
 * atomic operation per 2 MiB, not per page, and a scattered page half a
 * byte of host memory:
 *
 *   chunk word, 32 bits, one per 2 MiB of VRAM (512 pages), atomic:
 *     0..VRAM_MAP_MAX  uniform: every page of the chunk is mapped that many
 *                      times (0: free, or allocated and not mapped); the
 *                      chunk's page words are not used
 *     SPLIT | n        the page words are authoritative, narrow; n of them
 *                      are non-zero
 *     SPLIT|WIDE | n   the same, wide page words
 *     LOCKED           a caller is changing the page words (see Locking)
 *   page word, used while its chunk is split; its value is one of
 *     0                free, or allocated and not mapped
 *     1..VRAM_MAP_MAX  mapped that many times
 *     PARKED | count   mapped, and held out of the allocator: a page-table
 *                      or alloc= allocation met it while it was mapped; it
 *                      returns to the allocator when its last mapping goes
 *     PT               holds a page table
 *   stored narrow, 4 bits a page (0, counts 1..12, PARKED | 1, PT), or,
 *   when a page of the chunk holds any other value, wide: 16 bits a page
 *   (those 4 bits and 12 more in a second array). A chunk turns wide when
 *   one of its pages needs it and narrow again when it turns uniform.
 * A reference on a run that covers whole chunks changes their chunk words
 * only (compare-and-swap); the chunks at its ends, scattered pages,
 * page-table pages and parked pages use page words. A split chunk turns
 * uniform again when its page words become all 0 or all the same plain
 * count.
 *
 * Limits: a page can be mapped at most VRAM_MAP_MAX (32766) times at once;
 * one more reference fails with -EOVERFLOW.
 *
 * Rules kept by construction:
 *   - a page-table allocation never takes a page whose count is non-zero (it
 *     parks it and takes the next page; the parked page returns to the
 *     buddy with its last mapping);
 *   - a reference on a page-table page fails with -EACCES;
 *   - the usage counters (vram_get_usage) are exact; each call updates the
 *     mapped-page counter once.
 *
 * Locking: an internal mutex guards the buddy; allocations and frees take
 *   it. References take no mutex. Page words are changed under a chunk
 *   lock (the LOCKED chunk word, taken by compare-and-swap), which is a
 *   leaf: its holder only loads and stores the chunk's page words (at most
 *   512 stores to make them from a uniform count, 1024 to widen them, then its
 *   own changes),
 *   holds one chunk at a time, never waits for anything while holding it
 *   (no other chunk, no mutex, no allocation, no call out) and releases it
 *   before taking the buddy mutex. An allocation may hold a chunk lock for a
 *   few stores, inside its own critical section; so a reference waits at
 *   most for such stores, never for an allocation to finish, and cannot
 *   deadlock. A batch (below) keeps its chunk locked from one call to the
 *   next: between them its caller must not block or call into vmmfs
 *   (vmmfs's own callers only walk their PFN arrays there).
 *   Dropping references takes the buddy mutex only to give back a parked
 *   page whose last mapping went; execute (core/vmm_execute.c) only takes
 *   references, so it never does (except to undo its own references after a
 *   validation error, before its point of no return).
 *
 * Memory: the arrays are one anonymous mapping made at create and
 *   charged to the system's commit limit then (not MAP_NORESERVE: creation
 *   fails with -ENOMEM if the memory cannot be promised, rather than a
 *   reference faulting later; about 2 bytes per VRAM page: 40 MiB for an
 *   80 GiB board). Host memory becomes resident only for the parts
 *   touched: 4 bytes per 2 MiB chunk in use, plus half a byte per page of
 *   split chunks (2 bytes per page of wide ones).
 */
#ifndef VMMFS_VRAM_H
#define VMMFS_VRAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <vmmfs/gpu.h>

/* vram_owner() values: a 32-bit summary of a page's state. */
#define VRAM_OWNER_PT 0xffffffffu
#define VRAM_OWNER_PARKED 0x80000000u
#define VRAM_OWNER_COUNT 0x7fffffffu   /* mask of the mapping count */
#define VRAM_MAP_MAX 0x7ffeu           /* mappings of one page at once */

struct vmmfs_vram;

/* vram_size: the board's VRAM; [start, end) the managed range (page
 * aligned). Returns 0, -EINVAL, -ENOMEM. */
int vram_create(uint64_t vram_size, uint64_t start, uint64_t end, struct vmmfs_vram **out);
void vram_destroy(struct vmmfs_vram *v);

uint64_t vram_size(const struct vmmfs_vram *v);

/* One 4 KiB page for a page table: marked VRAM_OWNER_PT. Not zeroed.
 * Highest free page first (as nova-core). Returns 0, -ENOMEM (no VRAM, or
 * fault injection). */
int vram_alloc_pt(struct vmmfs_vram *v, uint64_t *pa);
/* Releases a page-table page (the caller made sure the GPU no longer uses it). */
void vram_free_pt(struct vmmfs_vram *v, uint64_t pa);

/* npages fresh pages for alloc= mappings, written to pfns[] (contiguous
 * runs where possible, 2 MiB-aligned when npages allows). Their count
 * stays 0 until mapped. Returns 0, -ENOMEM. */
int vram_alloc_pages(struct vmmfs_vram *v, uint64_t npages, uint64_t *pfns);
/* Returns pages from vram_alloc_pages (not parked, not page tables). pfns
 * as handed out: one or more whole calls, each in the order it was
 * returned; other pages are refused with a log line. */
void vram_free_pages(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t npages);

/* Crash recovery: takes exactly the pages first..first+count-1 out of the
 * allocator as alloc= pages (counted in alloc_pages), contents untouched.
 * Mapped pages may be claimed (another mapping shares them). Returns 0,
 * -EINVAL (count 0), -ERANGE (outside the managed range), -EBUSY (a page is
 * not free in the allocator: page table, parked, alloc= page), -ENOMEM. */
int vram_claim_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);
/* Returns alloc= pages first..first+count-1, which must be made of whole
 * runs as claimed or allocated; a page that is not is refused with a log
 * line (and the rest of the range with it). */
void vram_free_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);

/* Take one mapping reference on each page of pfns[0..n); all or nothing.
 * Consecutive PFNs are taken as runs. Lock-free and allocation-free.
 * Returns 0, -ERANGE (beyond VRAM), -EACCES (a page holds a page table),
 * -EOVERFLOW (a page is already mapped VRAM_MAP_MAX times). */
int vram_ref_pfns(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n);
/* Same for the run first..first+count-1. */
int vram_ref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);
/* Drop references. Pages whose count reaches 0 and that were parked by a
 * page-table allocation return to the buddy (takes the buddy lock then). */
void vram_unref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);

/*
 * Batches: many runs for one call's worth of bookkeeping. Consecutive runs
 * that fall into the same 2 MiB chunk share one lock of it, whole chunks
 * take one compare-and-swap each, and the mapped-page counter is updated
 * once, at the end. begin, any number of ref and unref, end. A batch lives
 * on the caller's stack and allocates nothing; it may hold a chunk lock
 * until end (see Locking).
 *
 * vram_batch_ref: on an error nothing of this run is kept; runs referenced
 * earlier in the batch are kept (the caller drops them, e.g. with unref
 * in the same batch). Returns 0, -ERANGE, -EACCES, -EOVERFLOW.
 */
struct vram_batch {
	struct vmmfs_vram *v;
	uint64_t chunk;        /* the chunk the batch holds locked, or UINT64_MAX */
	uint32_t nz;           /* its non-zero page words */
	bool wide;             /* its page words are wide (16-bit) */
	int64_t mapped;        /* change of mapped pages, not yet applied */
};
void vram_batch_begin(struct vmmfs_vram *v, struct vram_batch *b);
int vram_batch_ref(struct vram_batch *b, uint64_t first, uint64_t count);
void vram_batch_unref(struct vram_batch *b, uint64_t first, uint64_t count);
/*
 * Scattered PFNs, the loop of a run stream builder: from pfns[0], for each
 * page that is a run of its own (pfns[i + 1] != pfns[i] + 1, looked at
 * while i + 1 < avail) and below limit, takes one reference and stores the
 * PFN as a 32-bit word in out[i] (limit <= 2^32); at most n pages (n <=
 * avail). Returns how many pages were done; it stops before a page that
 * starts a run of consecutive PFNs, that is not below limit or beyond
 * VRAM (*err 0), or whose reference fails (*err -EACCES or -EOVERFLOW):
 * that page is neither referenced nor stored.
 */
uint64_t vram_batch_ref_singles(struct vram_batch *b, const uint64_t *pfns, uint64_t n,
				uint64_t avail, uint64_t limit, uint32_t *out, int *err);
/* Drops one reference on each page of pfns[0..n) (32-bit PFNs), up to the
 * first word with bit 31 set (a word that is not a PFN in the callers'
 * streams). Returns how many were dropped. */
uint64_t vram_batch_unref_pages32(struct vram_batch *b, const uint32_t *pfns, uint64_t n);
void vram_batch_end(struct vram_batch *b);

/* True when the page holds a page table. */
bool vram_is_pt(const struct vmmfs_vram *v, uint64_t pfn);
/* The page's state as VRAM_OWNER_PT, or a count with VRAM_OWNER_PARKED;
 * 0 beyond VRAM. */
uint32_t vram_owner(const struct vmmfs_vram *v, uint64_t pfn);
/* Bytes of the owner arrays: reserved in all, and resident (touched). */
void vram_owner_bytes(const struct vmmfs_vram *v, uint64_t *reserved, uint64_t *resident);

void vram_get_usage(struct vmmfs_vram *v, struct vmmfs_vram_usage *u);

#endif
