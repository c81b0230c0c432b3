/* SPDX-License-Identifier: MIT */
/*
 * vmmfs_buddy_check(): the allocator's invariants, for tests and debugging.
 *
 *   - every free tree is a valid AVL tree: offsets strictly increasing in
 *     order, stored balance = height difference, |balance| <= 1, node count
 *     right, every node free and of the tree's order;
 *   - walking the buddy links from the roots (buddy_priv.h) reaches blocks
 *     that tile the space exactly, in offset order: no hole, no overlap, so
 *     free + allocated = size; every link points at offset XOR size, and
 *     each upper half links back to its lower half;
 *   - every block is aligned to its size;
 *   - every free block reached is in its free tree, and the trees hold
 *     nothing else;
 *   - a block and its buddy are never both free;
 *   - avail, the allocated count and allocated bytes match the blocks.
 *
 * It reads only and allocates nothing, so checking never changes what a
 * fault-injection test counts.
 */
#include <stdio.h>
#include <stdarg.h>
#include "internal.h"
#include "buddy_priv.h"

#define CHECK_MAX_DEPTH 96

typedef struct vmmfs_buddy_block blk_t;

struct check {
	const struct vmmfs_buddy *b;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

static const char *state_name(const blk_t *n)
{
	return (n->hdr & BUDDY_HDR_ALLOCATED) ? "allocated" : "free";
}

/* Describes a block for a message. */
static const char *describe(const struct vmmfs_buddy *b, const blk_t *n, char *buf, size_t len)
{
	unsigned int k = buddy_blk_order(n);

	snprintf(buf, len, "%s block [0x%llx, +0x%llx) order %u (header 0x%llx)", state_name(n),
		 (unsigned long long)buddy_blk_off(n),
		 (unsigned long long)(k < 64 - b->chunk_shift ? b->chunk << k : 0), k,
		 (unsigned long long)n->hdr);
	return buf;
}

/* Validates one AVL subtree whose keys must lie in (lo, hi) (exclusive,
 * have_lo/have_hi say whether the bound exists). Returns its height, or -1
 * with c->err filled. */
static int check_subtree(struct check *c, const blk_t *n, const blk_t *parent, unsigned int order,
			 uint64_t lo, bool have_lo, uint64_t hi, bool have_hi,
			 int depth, uint64_t *count)
{
	const struct vmmfs_buddy *b = c->b;
	char d[160];
	int hl, hr, bal;
	uint64_t off;

	if (!n)
		return 0;
	if (depth >= CHECK_MAX_DEPTH) {
		fail(c, "order-%u free tree is deeper than %d levels at %s", order, CHECK_MAX_DEPTH,
		     describe(b, n, d, sizeof(d)));
		return -1;
	}
	off = buddy_blk_off(n);
	if ((have_lo && off <= lo) || (have_hi && off >= hi)) {
		fail(c, "order-%u free tree out of order at %s", order, describe(b, n, d, sizeof(d)));
		return -1;
	}
	if (buddy_blk_order(n) != order || (n->hdr & BUDDY_HDR_ALLOCATED)) {
		fail(c, "order-%u free tree holds a %s", order, describe(b, n, d, sizeof(d)));
		return -1;
	}
	if (n->parent != parent) {
		fail(c, "order-%u free tree: wrong parent link at %s", order, describe(b, n, d, sizeof(d)));
		return -1;
	}
	(*count)++;
	hl = check_subtree(c, n->link[0], n, order, lo, have_lo, off, true, depth + 1, count);
	if (hl < 0)
		return -1;
	hr = check_subtree(c, n->link[1], n, order, off, true, hi, have_hi, depth + 1, count);
	if (hr < 0)
		return -1;
	bal = buddy_blk_bal(n);
	if (bal != hr - hl || bal < -1 || bal > 1) {
		fail(c, "order-%u free tree unbalanced at %s: stored balance %d, heights %d/%d", order,
		     describe(b, n, d, sizeof(d)), bal, hl, hr);
		return -1;
	}
	return 1 + MAX(hl, hr);
}

static bool in_tree(const struct buddy_tree *t, const blk_t *n)
{
	const blk_t *x = t->root;
	uint64_t key = buddy_blk_off(n);

	while (x && x != n)
		x = x->link[key > buddy_blk_off(x)];
	return x == n;
}

struct tally {
	uint64_t expect;          /* offset the next block must start at */
	uint64_t free_bytes, free_blocks, alloc_bytes, alloc_blocks;
};

/* The region [off(n), + chunk << K) whose first block is n; its sibling at
 * level K (what the links at its top must lead to) is top. */
static int check_region(struct check *c, struct tally *t, const blk_t *n, unsigned int K,
			const blk_t *top, int depth)
{
	const struct vmmfs_buddy *b = c->b;
	uint64_t off = buddy_blk_off(n), size;
	unsigned int j = buddy_blk_order(n), m;
	const blk_t *r;
	char d[160], e[160];

	if (depth > BUDDY_MAX_ORDERS)
		return fail(c, "buddy links loop below %s", describe(b, n, d, sizeof(d)));
	if (off != t->expect)
		return fail(c, "%s found where a block at 0x%llx was expected (%s)",
			    describe(b, n, d, sizeof(d)), (unsigned long long)t->expect,
			    off < t->expect ? "it overlaps the block before it" :
			    "a range is in no block");
	if (j > K)
		return fail(c, "%s is larger than its place in the buddy tree (order %u)",
			    describe(b, n, d, sizeof(d)), K);
	size = b->chunk << j;
	if (!IS_ALIGNED(off, size))
		return fail(c, "offset not aligned to the block size: %s", describe(b, n, d, sizeof(d)));
	t->expect = off + size;
	if (n->hdr & BUDDY_HDR_ALLOCATED) {
		t->alloc_bytes += size;
		t->alloc_blocks++;
	} else {
		if (!in_tree(&b->free[j], n))
			return fail(c, "%s is not in the order-%u free tree", describe(b, n, d, sizeof(d)), j);
		t->free_bytes += size;
		t->free_blocks++;
		if (j < K && n->buddy && !(n->buddy->hdr & BUDDY_HDR_ALLOCATED) &&
		    buddy_blk_order(n->buddy) == j)
			return fail(c, "%s and its buddy at 0x%llx are both free",
				    describe(b, n, d, sizeof(d)), (unsigned long long)(off ^ size));
	}

	/* The upper siblings at levels j .. K-1, then the region's own sibling. */
	r = n->buddy;
	for (m = j; m < K; m++) {
		int err;

		if (!r)
			return fail(c, "%s has no buddy link at order %u", describe(b, n, d, sizeof(d)), m);
		if (buddy_blk_off(r) != off + (b->chunk << m))
			return fail(c, "the order-%u buddy link of %s leads to %s, not to offset 0x%llx "
				    "(offset XOR size)", m, describe(b, n, d, sizeof(d)),
				    describe(b, r, e, sizeof(e)),
				    (unsigned long long)(off + (b->chunk << m)));
		err = check_region(c, t, r, m, n, depth + 1);
		if (err)
			return err;
		r = r->saved;
	}
	if (r != top)
		return fail(c, "the links above %s lead to %s instead of its order-%u sibling %s",
			    describe(b, n, d, sizeof(d)), r ? describe(b, r, e, sizeof(e)) : "nothing", K,
			    top ? "back to the lower half" : "nothing (a root)");
	return 0;
}

int vmmfs_buddy_check(const struct vmmfs_buddy *b, char *err, size_t errlen)
{
	struct check c = { b, err, errlen };
	struct tally tl = { 0 };
	uint64_t nonempty = 0, tree_blocks = 0, off = 0;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!b)
		return fail(&c, "no allocator");
	if (b->chunk < 4096 || (b->chunk & (b->chunk - 1)) || !b->size || b->size % b->chunk)
		return fail(&c, "bad geometry: size 0x%llx, chunk 0x%llx",
			    (unsigned long long)b->size, (unsigned long long)b->chunk);
	for (unsigned int k = 0; k < BUDDY_MAX_ORDERS; k++) {
		uint64_t count = 0;

		if (k > b->max_order) {
			if (b->free[k].root || b->free[k].count)
				return fail(&c, "free tree of order %u above the maximum %u is not empty",
					    k, b->max_order);
			continue;
		}
		const struct buddy_tree *t = &b->free[k];
		const blk_t *lo = t->root, *hi = t->root;

		if (check_subtree(&c, t->root, NULL, k, 0, false, 0, false, 0, &count) < 0)
			return -EUCLEAN;
		if (count != t->count)
			return fail(&c, "order-%u free tree holds %llu blocks but counts %llu", k,
				    (unsigned long long)count, (unsigned long long)t->count);
		while (lo && lo->link[0])
			lo = lo->link[0];
		while (hi && hi->link[1])
			hi = hi->link[1];
		if (t->min != lo || t->max != hi)
			return fail(&c, "order-%u free tree: cached lowest/highest block is wrong", k);
		if (t->hint && !in_tree(t, t->hint))
			return fail(&c, "order-%u free tree: insertion hint is not in the tree", k);
		tree_blocks += count;
		if (count)
			nonempty |= BIT(k);
	}
	if (nonempty != b->nonempty)
		return fail(&c, "non-empty order mask is 0x%llx, the trees say 0x%llx",
			    (unsigned long long)b->nonempty, (unsigned long long)nonempty);

	/* Roots: the binary digits of size, largest first from offset 0. */
	for (unsigned int i = 0; i < b->nroots; i++) {
		unsigned int K;

		if (off >= b->size)
			return fail(&c, "%u roots, but the space ends before root %u", b->nroots, i);
		K = 63u - (unsigned int)__builtin_clzll(b->size - off) - b->chunk_shift;
		if (!b->root[i] || buddy_blk_off(b->root[i]) != off)
			return fail(&c, "root %u is not at offset 0x%llx", i, (unsigned long long)off);
		r = check_region(&c, &tl, b->root[i], K, NULL, 0);
		if (r)
			return r;
		off += b->chunk << K;
	}
	if (off != b->size || tl.expect != b->size)
		return fail(&c, "blocks end at 0x%llx but the space is 0x%llx bytes",
			    (unsigned long long)tl.expect, (unsigned long long)b->size);
	if (tl.free_blocks != tree_blocks)
		return fail(&c, "the free trees hold %llu blocks but only %llu free blocks are in the "
			    "space", (unsigned long long)tree_blocks, (unsigned long long)tl.free_blocks);
	if (tl.free_bytes != b->avail)
		return fail(&c, "avail is 0x%llx but the free blocks hold 0x%llx bytes",
			    (unsigned long long)b->avail, (unsigned long long)tl.free_bytes);
	if (tl.alloc_blocks != b->alloc_count || tl.alloc_bytes != b->alloc_bytes)
		return fail(&c, "allocated: %llu blocks of 0x%llx bytes counted, %llu blocks of 0x%llx "
			    "bytes found", (unsigned long long)b->alloc_count,
			    (unsigned long long)b->alloc_bytes, (unsigned long long)tl.alloc_blocks,
			    (unsigned long long)tl.alloc_bytes);
	if (tl.free_bytes + tl.alloc_bytes != b->size)
		return fail(&c, "free 0x%llx + allocated 0x%llx != size 0x%llx",
			    (unsigned long long)tl.free_bytes, (unsigned long long)tl.alloc_bytes,
			    (unsigned long long)b->size);
	return 0;
}
