/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator for ranges of VA and of VRAM pages, with the semantics of
 * Linux's gpu_buddy/drm_buddy (nvidia-mmu.md §8.2): a chunk size, the space
 * split into power-of-two roots (largest first, from offset 0), blocks of
 * order k covering chunk << k bytes, free blocks kept per order sorted by
 * offset, buddies merged on free.
 *
 * Offsets are relative to the start of the managed space [0, size).
 *
 * Locking: none inside; callers serialise (the VRAM owner and each address
 * space hold their own mutex).
 *
 * Cost: every free-list operation is O(log n) in the number of free blocks
 * of that order; allocation is O(max_order * log n). A buddy is found in
 * O(1) and inserts next to the previous one are O(1), so Simple, TOPDOWN
 * and BOTTOMUP allocation and every free are O(1) amortized plus at most
 * one O(log n) insert.
 */
#ifndef VMMFS_BUDDY_H
#define VMMFS_BUDDY_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

struct vmmfs_buddy;
struct vmmfs_buddy_block;

/* A list of allocated blocks, in ascending offset order. */
struct vmmfs_buddy_list {
	struct vmmfs_buddy_block *head, *tail;
	size_t count;
};
#define VMMFS_BUDDY_LIST_INIT { NULL, NULL, 0 }

/* Allocation flags. */
#define VMMFS_BUDDY_RANGE        0x1u /* only inside [start, end) */
#define VMMFS_BUDDY_TOPDOWN      0x2u /* highest offset across all orders */
#define VMMFS_BUDDY_CONTIGUOUS   0x4u /* one block run: rounded up to a power of two, then trimmed */
#define VMMFS_BUDDY_TRIM_DISABLE 0x8u /* with CONTIGUOUS: keep the rounded-up size */
#define VMMFS_BUDDY_BOTTOMUP     0x10u /* lowest offset of the smallest fitting order (VA placement) */

/* Creates an allocator of size bytes (rounded down to chunk), chunk a power
 * of two >= 4096. Returns 0, -EINVAL (size < chunk, bad chunk), -ENOMEM. */
int vmmfs_buddy_create(uint64_t size, uint64_t chunk, struct vmmfs_buddy **out);
/* Frees the allocator. Blocks still allocated are reported (log) as leaks
 * and freed. */
void vmmfs_buddy_destroy(struct vmmfs_buddy *b);

/* Allocates size bytes as blocks of at least min_block bytes, appended to
 * out (ascending offsets). If start + size == end the range is allocated
 * exactly. Returns 0, -EINVAL (size/min/start/end not chunk-aligned, min
 * not a power of two, end beyond the space, start+size beyond end),
 * -ENOSPC (no room), -ENOMEM (no heap for block nodes). On failure nothing
 * is allocated and out is unchanged. Every call is one allocation attempt
 * for fault injection (mem.h).
 * As in drm_buddy: a size that is not a multiple of min_block is rounded up
 * to it and, unless TRIM_DISABLE, the excess is trimmed back from the last
 * block, so the last blocks may be smaller than min_block. Also -EINVAL:
 * TOPDOWN with BOTTOMUP, unknown flag bits, or a size rounded up beyond the
 * largest block without CONTIGUOUS, or with CONTIGUOUS and RANGE. The
 * blocks of one call come ascending; out's earlier blocks are untouched. */
int vmmfs_buddy_alloc(struct vmmfs_buddy *b, uint64_t start, uint64_t end,
		      uint64_t size, uint64_t min_block, unsigned int flags,
		      struct vmmfs_buddy_list *out);

/* Shrinks a list holding one contiguous allocation to [*start_off, + new_size)
 * measured from the list's first block offset (drm_buddy_block_trim with a
 * start): the blocks outside are freed. Never allocates from the heap
 * beyond block nodes for splits. Returns 0, -EINVAL, -ENOMEM. */
int vmmfs_buddy_trim(struct vmmfs_buddy *b, uint64_t start_off, uint64_t new_size,
		     struct vmmfs_buddy_list *list);

/* Frees every block of the list (merging buddies) and empties it. Never
 * allocates. A freed block's node may be merged away: the caller must not
 * use it again (free_block: take it out of any list the caller walks). */
void vmmfs_buddy_free_list(struct vmmfs_buddy *b, struct vmmfs_buddy_list *list);
void vmmfs_buddy_free_block(struct vmmfs_buddy *b, struct vmmfs_buddy_block *block);

/* Moves every block of src to the end of dst. */
void vmmfs_buddy_list_splice(struct vmmfs_buddy_list *dst, struct vmmfs_buddy_list *src);

uint64_t vmmfs_buddy_block_offset(const struct vmmfs_buddy_block *blk);
uint64_t vmmfs_buddy_block_size(const struct vmmfs_buddy *b, const struct vmmfs_buddy_block *blk);
unsigned int vmmfs_buddy_block_order(const struct vmmfs_buddy_block *blk);
struct vmmfs_buddy_block *vmmfs_buddy_block_next(const struct vmmfs_buddy_block *blk);

uint64_t vmmfs_buddy_size(const struct vmmfs_buddy *b);
uint64_t vmmfs_buddy_chunk(const struct vmmfs_buddy *b);
uint64_t vmmfs_buddy_avail(const struct vmmfs_buddy *b);     /* free bytes */
unsigned int vmmfs_buddy_max_order(const struct vmmfs_buddy *b);
uint64_t vmmfs_buddy_free_blocks(const struct vmmfs_buddy *b); /* free block count */

/* Invariant check: every block's buddy is at offset XOR size; a block and
 * its buddy are never both free; offsets aligned to block size; free +
 * allocated = size; avail matches; free lists sorted. Returns 0 or -EUCLEAN
 * with the offending block described in err. O(blocks). It also checks the
 * buddy links and that the free trees are balanced, and allocates nothing
 * (checking never shifts fault-injection counts). */
int vmmfs_buddy_check(const struct vmmfs_buddy *b, char *err, size_t errlen);

#endif
