/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator internals, shared by buddy.c, buddy_check.c, the VRAM
 * owner (vram.c), the tests and the allocator benchmark. Never installed.
 *
 * Representation: only leaves of the buddy tree exist as nodes (split
 * blocks have none). A free block lives in the AVL tree of its order, keyed
 * by offset; an allocated block belongs to its caller's list.
 *
 * Buddies are found in O(1) through pointers, the way drm_buddy's parent
 * links do it but without interior nodes:
 *   - splitting a block keeps its node for the lower half and takes a new
 *     node for the upper half, so the node at an offset lives as long as a
 *     block starts there;
 *   - lower->buddy is the upper half's node, upper->buddy the lower half's;
 *   - upper->saved keeps the lower node's previous buddy (its sibling one
 *     level up), restored when the halves merge again.
 * Following lower->buddy, then ->saved repeatedly, walks the siblings of
 * the block at that offset at each level above it; that is how the whole
 * tree is walked (check, destroy) and how an address is found.
 *
 *   [0 ................................ 64)  root, node A
 *   [0 ..... 16) A   [16 .. 32) B   [32 ........ 64) C
 *   A->buddy = B, B->buddy = A, B->saved = C, C->buddy = A, C->saved = NULL
 *
 * A node is 48 bytes: header (offset | order | state | AVL balance), two
 * pointers for the buddy links, three shared by the AVL links (free: two
 * children and the parent, so a node leaves its tree without a search) and
 * the caller's list link (allocated).
 */
#ifndef VMMFS_BUDDY_PRIV_H
#define VMMFS_BUDDY_PRIV_H

#include <stdint.h>
#include <stdbool.h>
#include <vmmfs/buddy.h>

/* Header word layout. Offsets are multiples of the chunk (>= 4 KiB), so
 * their low 12 bits are free for the rest. */
#define BUDDY_HDR_ORDER     0x3full         /* bits 5:0 order */
#define BUDDY_HDR_ALLOCATED 0x40ull         /* bit 6: allocated (or being split), not free */
#define BUDDY_HDR_BAL_SHIFT 8               /* bits 9:8 AVL balance + 1 */
#define BUDDY_HDR_BAL       (3ull << BUDDY_HDR_BAL_SHIFT)
#define BUDDY_HDR_OFFSET    (~0xfffull)

/* Orders 0..51: a 4 KiB chunk and a 2^63-byte block. */
#define BUDDY_MAX_ORDERS 52

struct vmmfs_buddy_block {
	uint64_t hdr;
	struct vmmfs_buddy_block *buddy;    /* the sibling at this order; NULL for a root */
	struct vmmfs_buddy_block *saved;    /* upper half only: lower half's buddy one level up */
	union {
		struct {                            /* free: AVL links */
			struct vmmfs_buddy_block *link[2];  /* children, [0] lower */
			struct vmmfs_buddy_block *parent;
		};
		struct vmmfs_buddy_block *next;     /* allocated: the caller's list */
	};
};

/* A free tree; min and max are cached, hint is the node last inserted (an
 * insert next to it costs O(1)). */
struct buddy_tree {
	struct vmmfs_buddy_block *root, *min, *max, *hint;
	uint64_t count;
};

struct vmmfs_buddy {
	uint64_t size;            /* managed bytes, a multiple of chunk */
	uint64_t chunk;
	uint64_t avail;           /* free bytes */
	unsigned int chunk_shift;
	unsigned int max_order;
	unsigned int nroots;
	uint64_t nonempty;        /* bit k: free[k] holds at least one block */
	uint64_t alloc_count;     /* allocated blocks */
	uint64_t alloc_bytes;     /* bytes in them */
	struct vmmfs_buddy_block *root[BUDDY_MAX_ORDERS];  /* node at each root's offset */
	struct buddy_tree free[BUDDY_MAX_ORDERS];
};

static inline uint64_t buddy_blk_off(const struct vmmfs_buddy_block *b)
{
	return b->hdr & BUDDY_HDR_OFFSET;
}

static inline unsigned int buddy_blk_order(const struct vmmfs_buddy_block *b)
{
	return (unsigned int)(b->hdr & BUDDY_HDR_ORDER);
}

static inline int buddy_blk_bal(const struct vmmfs_buddy_block *b)
{
	return (int)((b->hdr & BUDDY_HDR_BAL) >> BUDDY_HDR_BAL_SHIFT) - 1;
}

/* The allocated block containing byte offset off, or NULL.
 * O(max_order^2) pointer steps at worst, no search. */
struct vmmfs_buddy_block *buddy_find_allocated(const struct vmmfs_buddy *b, uint64_t off);

/* Calls fn for every block, free and allocated, in offset order. */
void buddy_walk(const struct vmmfs_buddy *b,
		void (*fn)(void *ctx, const struct vmmfs_buddy_block *blk), void *ctx);

/* Splits the allocated block blk so that the chunk at offset off becomes a
 * block of its own. The pieces (all still allocated, blk among them) are
 * appended to pieces in ascending order; *chunk_blk gets the one-chunk
 * block. blk must not be in a caller's list any more. Returns 0 or -ENOMEM
 * (then nothing changed and blk is untouched). */
int buddy_isolate(struct vmmfs_buddy *b, struct vmmfs_buddy_block *blk, uint64_t off,
		  struct vmmfs_buddy_list *pieces, struct vmmfs_buddy_block **chunk_blk);

#endif
