/* SPDX-License-Identifier: MIT */
/*
 * The GPU-wide owner of VRAM pages, shared by every address space.
 *
 * A buddy allocator (4 KiB chunks) covers the managed range [start, end).
 * Each VRAM page of the whole board (not only the managed range) has a
 * 32-bit owner word in a lazily-populated array (mmap, host memory only for
 * touched parts):
 *   0              free, or allocated but not yet owned
 *   1..0x7ffffffe  mapped that many times
 *   VRAM_OWNER_PARKED | count
 *                  mapped, and held out of the allocator: a page-table or
 *                  alloc= allocation met it while it was mapped; it returns
 *                  to the allocator when its last mapping goes
 *   VRAM_OWNER_PT  holds a page table
 * The word is changed with atomic compare-and-swap only, so execute can
 * take and drop page references without any lock an allocation holds:
 *   - a page-table allocation skips pages whose word is non-zero (they are
 *     parked and returned to the buddy when their last mapping goes);
 *   - a reference on a page-table page fails with -EACCES.
 *
 * Locking: an internal mutex guards the buddy; owner words are atomics.
 */
#ifndef VMMFS_VRAM_H
#define VMMFS_VRAM_H

#include <stdint.h>
#include <stddef.h>
#include <vmmfs/gpu.h>

#define VRAM_OWNER_PT 0xffffffffu
#define VRAM_OWNER_PARKED 0x80000000u
#define VRAM_OWNER_COUNT 0x7fffffffu   /* mask of the mapping count */

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
 * runs where possible, 2 MiB-aligned when npages allows). Their owner word
 * stays 0 until mapped. Returns 0, -ENOMEM. */
int vram_alloc_pages(struct vmmfs_vram *v, uint64_t npages, uint64_t *pfns);
/* Returns pages from vram_alloc_pages (owner word must be 0). pfns as
 * handed out: one or more whole calls, each in the order it was returned;
 * other pages are refused with a log line. */
void vram_free_pages(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t npages);

/* Take one mapping reference on each page of pfns[0..n); all or nothing.
 * Lock-free and allocation-free. Returns 0, -ERANGE (beyond VRAM),
 * -EACCES (a page holds a page table), -EOVERFLOW (a page is already
 * mapped 0x7ffffffe times). */
int vram_ref_pfns(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n);
/* Same for the run first..first+count-1. */
int vram_ref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);
/* Drop references. Pages whose count reaches 0 and that were parked by a
 * page-table allocation return to the buddy (may take the buddy lock: not
 * for use inside execute). */
void vram_unref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count);

/* True when the page holds a page table. */
bool vram_is_pt(const struct vmmfs_vram *v, uint64_t pfn);
uint32_t vram_owner(const struct vmmfs_vram *v, uint64_t pfn);

void vram_get_usage(struct vmmfs_vram *v, struct vmmfs_vram_usage *u);

#endif
