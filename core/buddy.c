/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator with the semantics of Linux's gpu_buddy/drm_buddy, for
 * VA ranges and VRAM pages (include/vmmfs/buddy.h; representation in
 * buddy_priv.h).
 *
 * Which block an allocation returns:
 *   Simple     the highest-offset free block of the smallest order that
 *              fits, split taking the upper half each time
 *   TOPDOWN    the highest-offset free block of any order that fits
 *   BOTTOMUP   the lowest-offset free block of the smallest order that
 *              fits, split taking the lower half
 *   RANGE      the lowest aligned slot inside [start, end) that lies in a
 *              free block (what drm_buddy's lower-first depth-first walk
 *              finds), found per order with a tree search
 *   exact      start + size == end: exactly that range, as the largest
 *              aligned blocks that tile it
 * A request is served as blocks of decreasing order (CONTIGUOUS: one block
 * of the size rounded up to a power of two, trimmed back).
 *
 * Failure leaves no trace: every step that needs block nodes reserves them
 * first, so nothing is modified until the nodes are in hand, and on any
 * failure the blocks taken so far are freed again. Because free buddies
 * are always merged, the free blocks are then exactly what they were, and
 * the merges free exactly the nodes the splits took, so the heap is too.
 *
 * Costs: a buddy is reached through links, not searched (O(1)); a free
 * tree's min and max are cached; a node leaves its tree through its parent
 * link without a search; an insert next to the previous one is O(1), any
 * other O(log n). So Simple, TOPDOWN and BOTTOMUP allocations and all frees
 * are O(1) amortized plus at most one O(log n) insert, RANGE and exact
 * allocations O(max_order * log n).
 *
 * On a large fragmented pool these costs are cache misses, not steps:
 * taking the blocks of one order from one end reaches the next end
 * without loading it and starts loading the nodes the next removal will
 * rebalance; frees in falling or rising order insert beside the previous
 * one without walking the tree.
 */
#include <stdlib.h>
#include "internal.h"
#include "mem.h"
#include "buddy_priv.h"

#define BUDDY_FLAGS (VMMFS_BUDDY_RANGE | VMMFS_BUDDY_TOPDOWN | VMMFS_BUDDY_CONTIGUOUS | \
		     VMMFS_BUDDY_TRIM_DISABLE | VMMFS_BUDDY_BOTTOMUP)

typedef struct vmmfs_buddy_block blk_t;

static inline uint64_t blk_size(const struct vmmfs_buddy *b, const blk_t *n)
{
	return b->chunk << buddy_blk_order(n);
}

static inline void blk_set(blk_t *n, uint64_t off, unsigned int order)
{
	n->hdr = off | order;
}

static inline void blk_set_bal(blk_t *n, int bal)
{
	n->hdr = (n->hdr & ~BUDDY_HDR_BAL) | ((uint64_t)(bal + 1) << BUDDY_HDR_BAL_SHIFT);
}

static inline unsigned int ilog2_u64(uint64_t x)
{
	return 63u - (unsigned int)__builtin_clzll(x);
}

/* Starts loading a node for writing. A node may straddle two cache lines
 * (the heap aligns it to 16 bytes only): fetch both ends. */
static inline void prefetch_node(const blk_t *n)
{
	if (n) {
		__builtin_prefetch(n, 1);
		__builtin_prefetch((const char *)n + sizeof(*n) - 1, 1);
	}
}

/* ---- AVL trees keyed by offset, with parent links ---------------------- */

static inline blk_t **avl_slot(struct buddy_tree *t, blk_t *n)
{
	return n->parent ? &n->parent->link[n->parent->link[1] == n] : &t->root;
}

/* x is two levels heavier on side d (0 lower, 1 higher): rotate. Returns
 * the new subtree root; *shrunk tells whether the subtree is now one level
 * lower than it was before the rotation. */
static blk_t *avl_fix(struct buddy_tree *t, blk_t *x, int d, bool *shrunk)
{
	int s = d ? 1 : -1;
	blk_t *y = x->link[d], *p = x->parent, **xs = avl_slot(t, x);
	int by = buddy_blk_bal(y);

	if (by == -s) {
		blk_t *z = y->link[!d];
		int bz = buddy_blk_bal(z);

		y->link[!d] = z->link[d];
		if (y->link[!d])
			y->link[!d]->parent = y;
		x->link[d] = z->link[!d];
		if (x->link[d])
			x->link[d]->parent = x;
		z->link[d] = y;
		y->parent = z;
		z->link[!d] = x;
		x->parent = z;
		z->parent = p;
		*xs = z;
		blk_set_bal(x, bz == s ? -s : 0);
		blk_set_bal(y, bz == -s ? s : 0);
		blk_set_bal(z, 0);
		*shrunk = true;
		return z;
	}
	x->link[d] = y->link[!d];
	if (x->link[d])
		x->link[d]->parent = x;
	y->link[!d] = x;
	x->parent = y;
	y->parent = p;
	*xs = y;
	if (by == s) {
		blk_set_bal(x, 0);
		blk_set_bal(y, 0);
		*shrunk = true;
	} else {
		blk_set_bal(x, s);
		blk_set_bal(y, -s);
		*shrunk = false;
	}
	return y;
}

/* In-order neighbour of n on side d (0 predecessor, 1 successor). */
static blk_t *avl_step(blk_t *n, int d)
{
	if (n->link[d]) {
		for (n = n->link[d]; n->link[!d]; n = n->link[!d])
			;
		return n;
	}
	while (n->parent && n->parent->link[d] == n)
		n = n->parent;
	return n->parent;
}

/* Links n as child d of parent (NULL: as the root) and rebalances. */
static void avl_link(struct buddy_tree *t, blk_t *n, blk_t *parent, int d)
{
	blk_t *c = n, *p = parent;
	bool shrunk;

	n->link[0] = n->link[1] = NULL;
	n->parent = parent;
	blk_set_bal(n, 0);
	if (parent)
		parent->link[d] = n;
	else
		t->root = n;
	t->count++;
	if (!t->min || buddy_blk_off(n) < buddy_blk_off(t->min))
		t->min = n;
	if (!t->max || buddy_blk_off(n) > buddy_blk_off(t->max))
		t->max = n;
	t->hint = n;

	while (p) {
		int s = p->link[1] == c ? 1 : -1;
		int bal = buddy_blk_bal(p) + s;

		if (bal == 0) {
			blk_set_bal(p, 0);
			return;
		}
		if (bal == s) {
			blk_set_bal(p, bal);
			c = p;
			p = p->parent;
			continue;
		}
		avl_fix(t, p, s > 0, &shrunk);
		return;
	}
}

/* Inserts n. Next to the last inserted node (the common pattern: frees
 * and splits close to each other) this is O(1); otherwise a search. */
static void avl_insert(struct buddy_tree *t, blk_t *n)
{
	uint64_t key = buddy_blk_off(n);
	blk_t *h = t->hint, *x, *p = NULL;
	int d = 0;

	if (h) {
		int side = key > buddy_blk_off(h);
		/* Beyond the tree's end there is no neighbour: skip the walk up
		 * the spine (a run of frees in falling or rising order). */
		blk_t *nb = h == (side ? t->max : t->min) ? NULL : avl_step(h, side);

		/* key lies between h and its neighbour: the free child slot
		 * between them is where it goes */
		if (!nb || (side ? key < buddy_blk_off(nb) : key > buddy_blk_off(nb))) {
			if (!h->link[side])
				avl_link(t, n, h, side);
			else
				avl_link(t, n, nb, !side);
			return;
		}
	}
	for (x = t->root; x; x = x->link[d]) {
		p = x;
		d = key > buddy_blk_off(x);
	}
	avl_link(t, n, p, d);
}

static void avl_remove(struct buddy_tree *t, blk_t *n)
{
	blk_t **ns = avl_slot(t, n), *p, *m;
	int d, end = -1;

	/* The next Simple (highest) or bottom-up (lowest) allocation takes the
	 * new max or min: start loading it now, it is likely cold. The tree is
	 * balanced, so the min has at most a leaf on its right and the max at
	 * most a leaf on its left: the neighbour is that leaf or the parent,
	 * known without reading it. */
	if (n == t->min) {
		end = 0;
		t->min = n->link[1] ? n->link[1] : n->parent;
		prefetch_node(t->min);
	}
	if (n == t->max) {
		end = 1;
		t->max = n->link[0] ? n->link[0] : n->parent;
		prefetch_node(t->max);
	}
	if (n == t->hint)
		t->hint = n->parent;

	if (n->link[0] && n->link[1]) {
		/* Put the successor s (lowest on the right) in n's place. */
		blk_t *s = n->link[1];

		while (s->link[0])
			s = s->link[0];
		if (s->parent == n) {
			p = s;
			d = 1;
		} else {
			p = s->parent;
			d = 0;
			p->link[0] = s->link[1];
			if (s->link[1])
				s->link[1]->parent = p;
			s->link[1] = n->link[1];
			s->link[1]->parent = s;
		}
		s->link[0] = n->link[0];
		s->link[0]->parent = s;
		s->parent = n->parent;
		blk_set_bal(s, buddy_blk_bal(n));
		*ns = s;
		if (t->hint == n)
			t->hint = s;
	} else {
		blk_t *c = n->link[0] ? n->link[0] : n->link[1];

		p = n->parent;
		d = p && p->link[1] == n;
		*ns = c;
		if (c)
			c->parent = p;
	}
	t->count--;

	while (p) {
		int s = d ? 1 : -1;     /* the side that became lower */
		int bal = buddy_blk_bal(p);
		blk_t *q;
		bool shrunk;

		if (bal == 0) {
			blk_set_bal(p, -s);
			break;
		}
		if (bal == s) {
			blk_set_bal(p, 0);
			q = p;
		} else {
			q = avl_fix(t, p, !d, &shrunk);
			if (!shrunk)
				break;
		}
		p = q->parent;
		d = p && p->link[1] == q;
	}

	/* Taking blocks from one end, the next removal rebalances at the new
	 * end's parent, turning its inner child: start loading those too. */
	m = end < 0 ? NULL : end ? t->max : t->min;
	if (m) {
		prefetch_node(m->link[!end]);
		if (m->parent)
			prefetch_node(m->parent->link[!end]);
	}
}

static blk_t *avl_find(const struct buddy_tree *t, uint64_t key)
{
	blk_t *x = t->root;

	while (x) {
		uint64_t o = buddy_blk_off(x);

		if (key == o)
			return x;
		x = x->link[key > o];
	}
	return NULL;
}

/* The lowest node with offset >= key. */
static blk_t *avl_lower_bound(const struct buddy_tree *t, uint64_t key)
{
	blk_t *x = t->root, *best = NULL;

	while (x) {
		if (buddy_blk_off(x) >= key) {
			best = x;
			x = x->link[0];
		} else {
			x = x->link[1];
		}
	}
	return best;
}

/* The highest node with offset <= key. */
static blk_t *avl_floor(const struct buddy_tree *t, uint64_t key)
{
	blk_t *x = t->root, *best = NULL;

	while (x) {
		if (buddy_blk_off(x) <= key) {
			best = x;
			x = x->link[1];
		} else {
			x = x->link[0];
		}
	}
	return best;
}

/* ---- free trees and allocation accounting ------------------------------ */

static void free_tree_add(struct vmmfs_buddy *b, blk_t *n)
{
	unsigned int k = buddy_blk_order(n);

	n->hdr &= ~BUDDY_HDR_ALLOCATED;
	avl_insert(&b->free[k], n);
	b->nonempty |= BIT(k);
}

static void free_tree_del(struct vmmfs_buddy *b, blk_t *n)
{
	unsigned int k = buddy_blk_order(n);

	avl_remove(&b->free[k], n);
	n->hdr |= BUDDY_HDR_ALLOCATED;      /* busy until placed again */
	if (!b->free[k].count)
		b->nonempty &= ~BIT(k);
}

static void mark_allocated(struct vmmfs_buddy *b, blk_t *n)
{
	n->hdr |= BUDDY_HDR_ALLOCATED;
	b->alloc_count++;
	b->alloc_bytes += blk_size(b, n);
}

static void unmark_allocated(struct vmmfs_buddy *b, blk_t *n)
{
	b->alloc_count--;
	b->alloc_bytes -= blk_size(b, n);
}

/* Splits the busy block n in two: n keeps the lower half, hi (a spare
 * node) becomes the upper half, busy too. */
static void split(struct vmmfs_buddy *b, blk_t *n, blk_t *hi)
{
	unsigned int k = buddy_blk_order(n) - 1;
	uint64_t off = buddy_blk_off(n);

	hi->hdr = (off + (b->chunk << k)) | k | BUDDY_HDR_ALLOCATED;
	hi->buddy = n;
	hi->saved = n->buddy;
	n->buddy = hi;
	n->hdr = (n->hdr & ~BUDDY_HDR_ORDER) | k;
}

/* ---- lists -------------------------------------------------------------- */

static void list_append(struct vmmfs_buddy_list *l, blk_t *n)
{
	n->next = NULL;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
	l->count++;
}

static blk_t *list_merge(blk_t *a, blk_t *c)
{
	blk_t head, *t = &head;

	while (a && c) {
		if (buddy_blk_off(a) < buddy_blk_off(c)) {
			t->next = a;
			a = a->next;
		} else {
			t->next = c;
			c = c->next;
		}
		t = t->next;
	}
	t->next = a ? a : c;
	return head.next;
}

/* Sorts by offset (bottom-up merge sort, O(n log n), no allocation). */
static void list_sort_slow(struct vmmfs_buddy_list *l)
{
	blk_t *bins[64] = { NULL };
	blk_t *x = l->head, *sorted = NULL;
	unsigned int i;

	while (x) {
		blk_t *nx = x->next, *c = x;

		x->next = NULL;
		for (i = 0; i < 63 && bins[i]; i++) {
			c = list_merge(bins[i], c);
			bins[i] = NULL;
		}
		bins[i] = list_merge(bins[i], c);
		x = nx;
	}
	for (i = 0; i < 64; i++)
		if (bins[i])
			sorted = list_merge(bins[i], sorted);
	l->head = sorted;
	for (x = sorted; x->next; x = x->next)
		;
	l->tail = x;
}

static void list_sort(struct vmmfs_buddy_list *l)
{
	for (blk_t *x = l->head; x && x->next; x = x->next)
		if (buddy_blk_off(x) > buddy_blk_off(x->next)) {
			list_sort_slow(l);
			return;
		}
}

/* ---- node reserves: every split takes a node reserved beforehand -------- */

struct reserve {
	blk_t *head;
	unsigned int n;
};

static int reserve_get(struct reserve *r, unsigned int n)
{
	while (r->n < n) {
		blk_t *x = vmmfs_malloc(sizeof(*x));

		if (!x)
			return -ENOMEM;
		x->next = r->head;
		r->head = x;
		r->n++;
	}
	return 0;
}

static blk_t *reserve_pop(struct reserve *r)
{
	blk_t *x = r->head;

	/* The counts below are exact; running dry is a bug in them. */
	if (VMMFS_WARN_ON(!x))
		abort();
	r->head = x->next;
	r->n--;
	return x;
}

static void reserve_release(struct reserve *r)
{
	while (r->head) {
		blk_t *x = r->head;

		r->head = x->next;
		vmmfs_free(x);
	}
	r->n = 0;
}

/* ---- freeing ------------------------------------------------------------ */

/* Puts a busy block back as free, merging it with free buddies. */
static void buddy_release(struct vmmfs_buddy *b, blk_t *n)
{
	b->avail += blk_size(b, n);
	for (;;) {
		blk_t *bud = n->buddy, *lo, *hi;

		if (!bud || (bud->hdr & BUDDY_HDR_ALLOCATED) ||
		    buddy_blk_order(bud) != buddy_blk_order(n))
			break;
		free_tree_del(b, bud);
		if (buddy_blk_off(bud) < buddy_blk_off(n)) {
			lo = bud;
			hi = n;
		} else {
			lo = n;
			hi = bud;
		}
		lo->buddy = hi->saved;
		lo->hdr = (lo->hdr & ~BUDDY_HDR_ORDER) | (buddy_blk_order(lo) + 1);
		vmmfs_free(hi);
		n = lo;
	}
	free_tree_add(b, n);
}

void vmmfs_buddy_free_block(struct vmmfs_buddy *b, struct vmmfs_buddy_block *blk)
{
	if (!blk)
		return;
	if (VMMFS_WARN_ON(!(blk->hdr & BUDDY_HDR_ALLOCATED)))
		return;
	unmark_allocated(b, blk);
	buddy_release(b, blk);
}

void vmmfs_buddy_free_list(struct vmmfs_buddy *b, struct vmmfs_buddy_list *list)
{
	blk_t *x = list->head;

	while (x) {
		blk_t *nx = x->next;

		prefetch_node(nx);
		vmmfs_buddy_free_block(b, x);
		x = nx;
	}
	list->head = list->tail = NULL;
	list->count = 0;
}

void vmmfs_buddy_list_splice(struct vmmfs_buddy_list *dst, struct vmmfs_buddy_list *src)
{
	if (!src->head)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->count += src->count;
	src->head = src->tail = NULL;
	src->count = 0;
}

/* ---- carving: keep part of a block, give the rest back ----------------- */

/* Splits needed to cut [ks, ke) out of the block [off, off + bsz). */
static unsigned int carve_count(uint64_t off, uint64_t bsz, uint64_t ks, uint64_t ke)
{
	if (ke <= off || ks >= off + bsz || (ks <= off && off + bsz <= ke))
		return 0;
	bsz >>= 1;
	return 1 + carve_count(off, bsz, ks, ke) + carve_count(off + bsz, bsz, ks, ke);
}

/* n is busy (detached from any tree, not counted as allocated or free).
 * The parts of it inside [ks, ke) become allocated blocks appended to out
 * in ascending order; the rest is released. Takes carve_count() nodes
 * from r. */
static void carve(struct vmmfs_buddy *b, blk_t *n, uint64_t ks, uint64_t ke,
		  struct reserve *r, struct vmmfs_buddy_list *out)
{
	uint64_t off = buddy_blk_off(n), bsz = blk_size(b, n);
	blk_t *hi;

	if (ke <= off || ks >= off + bsz) {
		buddy_release(b, n);
		return;
	}
	if (ks <= off && off + bsz <= ke) {
		mark_allocated(b, n);
		list_append(out, n);
		return;
	}
	hi = reserve_pop(r);
	split(b, n, hi);
	carve(b, n, ks, ke, r, out);
	carve(b, hi, ks, ke, r, out);
}

/* Takes the free block n and splits it down to the block of `order` that
 * contains target; the other halves stay free. Takes order(n) - order
 * nodes from r. Returns the allocated block. */
static blk_t *take_split(struct vmmfs_buddy *b, blk_t *n, uint64_t target, unsigned int order,
			 struct reserve *r)
{
	free_tree_del(b, n);
	b->avail -= blk_size(b, n);
	while (buddy_blk_order(n) > order) {
		blk_t *hi = reserve_pop(r);

		split(b, n, hi);
		if (target >= buddy_blk_off(hi)) {
			free_tree_add(b, n);
			b->avail += blk_size(b, n);
			n = hi;
		} else {
			free_tree_add(b, hi);
			b->avail += blk_size(b, hi);
		}
	}
	mark_allocated(b, n);
	return n;
}

/* ---- finding free blocks ------------------------------------------------ */

static blk_t *find_free_containing(const struct vmmfs_buddy *b, uint64_t pos)
{
	uint64_t mask = b->nonempty;

	while (mask) {
		unsigned int k = (unsigned int)__builtin_ctzll(mask);
		blk_t *c = avl_find(&b->free[k], ALIGN_DOWN(pos, b->chunk << k));

		if (c)
			return c;
		mask &= mask - 1;
	}
	return NULL;
}

/* The lowest slot of chunk << order bytes, aligned to its size, inside
 * [start, end) and inside one free block: that block, *slot its offset. */
static blk_t *range_find(const struct vmmfs_buddy *b, uint64_t start, uint64_t end,
			 unsigned int order, uint64_t *slot)
{
	uint64_t req = b->chunk << order;
	uint64_t mask = b->nonempty & ~(BIT(order) - 1);
	blk_t *best = NULL;
	uint64_t best_slot = 0;

	while (mask) {
		unsigned int k = (unsigned int)__builtin_ctzll(mask);
		uint64_t bsz = b->chunk << k;
		blk_t *c;

		mask &= mask - 1;
		/* Only the blocks straddling start or end can lack a slot, so
		 * this visits at most three blocks per order. */
		for (c = avl_lower_bound(&b->free[k], ALIGN_DOWN(start, bsz));
		     c && buddy_blk_off(c) < end;
		     c = avl_lower_bound(&b->free[k], buddy_blk_off(c) + bsz)) {
			uint64_t off = buddy_blk_off(c);
			uint64_t lo = MAX(off, start), hi = MIN(off + bsz, end);
			uint64_t s = lo + ((req - (lo & (req - 1))) & (req - 1));

			if (best && off >= best_slot)
				break;
			if (s >= lo && s < hi && hi - s >= req) {
				if (!best || s < best_slot) {
					best = c;
					best_slot = s;
				}
				break;
			}
		}
	}
	*slot = best_slot;
	return best;
}

/* One block of exactly `order`: -ENOSPC, -ENOMEM or 0. */
static int alloc_one(struct vmmfs_buddy *b, uint64_t start, uint64_t end, unsigned int order,
		     unsigned int flags, blk_t **out)
{
	uint64_t req = b->chunk << order;
	uint64_t mask = b->nonempty & ~(BIT(order) - 1);
	struct reserve r = { NULL, 0 };
	uint64_t target = 0;
	blk_t *n = NULL;

	if (flags & VMMFS_BUDDY_RANGE) {
		n = range_find(b, start, end, order, &target);
	} else if (flags & VMMFS_BUDDY_BOTTOMUP) {
		if (mask) {
			n = b->free[__builtin_ctzll(mask)].min;
			target = buddy_blk_off(n);
		}
	} else if (flags & VMMFS_BUDDY_TOPDOWN) {
		while (mask) {
			blk_t *c = b->free[__builtin_ctzll(mask)].max;

			if (!n || buddy_blk_off(c) > buddy_blk_off(n))
				n = c;
			mask &= mask - 1;
		}
		if (n)
			target = buddy_blk_off(n) + blk_size(b, n) - req;
	} else if (mask) {
		n = b->free[__builtin_ctzll(mask)].max;
		target = buddy_blk_off(n) + blk_size(b, n) - req;
	}
	if (!n)
		return -ENOSPC;
	if (reserve_get(&r, buddy_blk_order(n) - order)) {
		reserve_release(&r);
		return -ENOMEM;
	}
	*out = take_split(b, n, target, order, &r);
	reserve_release(&r);
	return 0;
}

/* ---- exact ranges ------------------------------------------------------- */

/* Allocates [s, s + len) exactly, appending the blocks to got in
 * ascending order. On -ENOSPC with filled non-NULL, the blocks covering
 * the free prefix [s, s + *filled) stay allocated in got (the caller frees
 * them); otherwise a failure takes nothing. The part beyond the space
 * counts as not free. */
static int alloc_range(struct vmmfs_buddy *b, uint64_t s, uint64_t len, uint64_t *filled,
		       struct vmmfs_buddy_list *got)
{
	struct vmmfs_buddy_list local = VMMFS_BUDDY_LIST_INIT;
	bool clipped = len > b->size - s;
	uint64_t e = clipped ? b->size : s + len;
	uint64_t pos = s;
	int err = -ENOSPC;

	while (pos < e) {
		struct reserve r = { NULL, 0 };
		blk_t *n = find_free_containing(b, pos);
		uint64_t off, bsz;

		if (!n)
			goto fail;
		off = buddy_blk_off(n);
		bsz = blk_size(b, n);
		if (reserve_get(&r, carve_count(off, bsz, s, e))) {
			reserve_release(&r);
			err = -ENOMEM;
			goto fail;
		}
		free_tree_del(b, n);
		b->avail -= bsz;
		carve(b, n, s, e, &r, &local);
		reserve_release(&r);
		pos = off + bsz;
	}
	if (clipped)
		goto fail;
	vmmfs_buddy_list_splice(got, &local);
	return 0;

fail:
	if (err == -ENOSPC && filled) {
		*filled = pos - s;
		vmmfs_buddy_list_splice(got, &local);
		return err;
	}
	vmmfs_buddy_free_list(b, &local);
	return err;
}

/* CONTIGUOUS without a free power-of-two block: look for `size` bytes of
 * contiguous free space that start in, or end just before, a free block of
 * order log2(size) (drm_buddy's "try harder"), highest first. */
static int alloc_contig_try_harder(struct vmmfs_buddy *b, uint64_t size,
				   struct vmmfs_buddy_list *got)
{
	unsigned int order = ilog2_u64(size >> b->chunk_shift);
	uint64_t key = UINT64_MAX;
	blk_t *n;

	if (order == 0 || order > b->max_order)
		return -ENOSPC;
	/* Every failed attempt restores the same free blocks (possibly other
	 * nodes), so walk the tree by offset, not by node. */
	while ((n = key ? avl_floor(&b->free[order], key - 1) : NULL)) {
		struct vmmfs_buddy_list rhs = VMMFS_BUDDY_LIST_INIT, lhs = VMMFS_BUDDY_LIST_INIT;
		uint64_t off = buddy_blk_off(n), filled = 0, lsize;
		int err;

		key = off;
		err = alloc_range(b, off, size, &filled, &rhs);
		if (!err) {
			vmmfs_buddy_list_splice(got, &rhs);
			return 0;
		}
		if (err != -ENOSPC)
			return err;
		lsize = size - filled;
		if (lsize <= off) {
			err = alloc_range(b, off - lsize, lsize, NULL, &lhs);
			if (!err) {
				vmmfs_buddy_list_splice(got, &lhs);
				vmmfs_buddy_list_splice(got, &rhs);
				return 0;
			}
			if (err != -ENOSPC) {
				vmmfs_buddy_free_list(b, &rhs);
				return err;
			}
		}
		vmmfs_buddy_free_list(b, &rhs);
	}
	return -ENOSPC;
}

/* Trims the last block of got (in allocation order: the smallest) down to
 * [its offset, + keep). */
static int trim_tail(struct vmmfs_buddy *b, struct vmmfs_buddy_list *got, uint64_t keep)
{
	struct vmmfs_buddy_list pieces = VMMFS_BUDDY_LIST_INIT;
	struct reserve r = { NULL, 0 };
	blk_t *n = got->tail, *prev = NULL, *x;
	uint64_t off = buddy_blk_off(n);

	if (reserve_get(&r, carve_count(off, blk_size(b, n), off, off + keep))) {
		reserve_release(&r);
		return -ENOMEM;
	}
	for (x = got->head; x != n; x = x->next)
		prev = x;
	if (prev) {
		prev->next = NULL;
		got->tail = prev;
	} else {
		got->head = got->tail = NULL;
	}
	got->count--;
	unmark_allocated(b, n);
	carve(b, n, off, off + keep, &r, &pieces);
	reserve_release(&r);
	vmmfs_buddy_list_splice(got, &pieces);
	return 0;
}

/* ---- the allocator API -------------------------------------------------- */

int vmmfs_buddy_create(uint64_t size, uint64_t chunk, struct vmmfs_buddy **out)
{
	struct vmmfs_buddy *b;
	uint64_t off = 0, rem;

	if (!out || chunk < 4096 || (chunk & (chunk - 1)))
		return -EINVAL;
	size = ALIGN_DOWN(size, chunk);
	if (size < chunk)
		return -EINVAL;
	b = vmmfs_calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->size = size;
	b->chunk = chunk;
	b->chunk_shift = (unsigned int)__builtin_ctzll(chunk);
	b->max_order = ilog2_u64(size) - b->chunk_shift;

	/* Power-of-two roots from offset 0, largest first. */
	for (rem = size; rem; ) {
		unsigned int k = ilog2_u64(rem) - b->chunk_shift;
		blk_t *root = vmmfs_malloc(sizeof(*root));

		if (!root)
			goto out_free_roots;
		blk_set(root, off, k);
		root->buddy = root->saved = NULL;
		b->root[b->nroots++] = root;
		free_tree_add(b, root);
		off += chunk << k;
		rem -= chunk << k;
	}
	b->avail = size;
	*out = b;
	return 0;

out_free_roots:
	while (b->nroots)
		vmmfs_free(b->root[--b->nroots]);
	vmmfs_free(b);
	return -ENOMEM;
}

/* Frees every node of the region whose first block is n, of order K. */
static void free_region(blk_t *n, unsigned int K)
{
	blk_t *r = n->buddy;

	for (unsigned int m = buddy_blk_order(n); m < K; m++) {
		blk_t *up = r->saved;

		free_region(r, m);
		r = up;
	}
	vmmfs_free(n);
}

void vmmfs_buddy_destroy(struct vmmfs_buddy *b)
{
	if (!b)
		return;
	if (b->alloc_count)
		log_warn("buddy allocator (%llu bytes) destroyed with %llu blocks (%llu bytes) still "
			 "allocated: freeing them", (unsigned long long)b->size,
			 (unsigned long long)b->alloc_count, (unsigned long long)b->alloc_bytes);
	for (unsigned int i = 0; i < b->nroots; i++)
		free_region(b->root[i], ilog2_u64(b->size - buddy_blk_off(b->root[i])) - b->chunk_shift);
	vmmfs_free(b);
}

int vmmfs_buddy_alloc(struct vmmfs_buddy *b, uint64_t start, uint64_t end,
		      uint64_t size, uint64_t min_block, unsigned int flags,
		      struct vmmfs_buddy_list *out)
{
	struct vmmfs_buddy_list got = VMMFS_BUDDY_LIST_INIT;
	uint64_t pages, rounded, remaining;
	unsigned int order, min_order;
	int err;

	if (!b || !out)
		return -EINVAL;
	if (size < b->chunk || min_block < b->chunk || (min_block & (min_block - 1)))
		return -EINVAL;
	if (!IS_ALIGNED(start | end | size, b->chunk) || end > b->size ||
	    start > end || size > end - start)
		return -EINVAL;
	if ((flags & ~BUDDY_FLAGS) ||
	    (flags & (VMMFS_BUDDY_TOPDOWN | VMMFS_BUDDY_BOTTOMUP)) ==
	    (VMMFS_BUDDY_TOPDOWN | VMMFS_BUDDY_BOTTOMUP))
		return -EINVAL;

	if (size == end - start) {
		if (!IS_ALIGNED(start | end, min_block))
			return -EINVAL;
		if (vmmfs_fault_point())
			return -ENOMEM;
		err = alloc_range(b, start, size, NULL, &got);
		if (err)
			return err;
		goto done;
	}

	pages = size >> b->chunk_shift;
	if (flags & VMMFS_BUDDY_CONTIGUOUS) {
		order = min_order = ilog2_u64(pages) + ((pages & (pages - 1)) != 0);
	} else {
		uint64_t mp = min_block >> b->chunk_shift;

		pages = ALIGN_UP(pages, mp);
		order = ilog2_u64(pages);
		min_order = ilog2_u64(mp);
	}
	if (order > b->max_order) {
		if ((flags & (VMMFS_BUDDY_CONTIGUOUS | VMMFS_BUDDY_RANGE)) != VMMFS_BUDDY_CONTIGUOUS)
			return -EINVAL;
		if (vmmfs_fault_point())
			return -ENOMEM;
		err = alloc_contig_try_harder(b, size, &got);
		if (err)
			return err;
		goto done;
	}
	if (vmmfs_fault_point())
		return -ENOMEM;

	rounded = (flags & VMMFS_BUDDY_CONTIGUOUS) ? 1ull << order : pages;
	remaining = rounded;
	do {
		blk_t *n;

		order = MIN(order, ilog2_u64(remaining));
		for (;;) {
			err = alloc_one(b, start, end, order, flags, &n);
			if (!err)
				break;
			if (err != -ENOSPC)
				goto out_free;
			if (order == min_order) {
				if ((flags & (VMMFS_BUDDY_CONTIGUOUS | VMMFS_BUDDY_RANGE)) ==
				    VMMFS_BUDDY_CONTIGUOUS) {
					err = alloc_contig_try_harder(b, size, &got);
					if (err)
						return err;
					goto done;
				}
				goto out_free;
			}
			order--;
		}
		list_append(&got, n);
		remaining -= 1ull << order;
	} while (remaining);

	/* Give back what rounding up added, from the last (smallest) block. */
	if (!(flags & VMMFS_BUDDY_TRIM_DISABLE) && rounded != (size >> b->chunk_shift)) {
		uint64_t extra = (rounded - (size >> b->chunk_shift)) << b->chunk_shift;

		err = trim_tail(b, &got, blk_size(b, got.tail) - extra);
		if (err)
			goto out_free;
	}

done:
	list_sort(&got);
	vmmfs_buddy_list_splice(out, &got);
	return 0;

out_free:
	vmmfs_buddy_free_list(b, &got);
	return err;
}

int vmmfs_buddy_trim(struct vmmfs_buddy *b, uint64_t start_off, uint64_t new_size,
		     struct vmmfs_buddy_list *list)
{
	struct vmmfs_buddy_list kept = VMMFS_BUDDY_LIST_INIT;
	struct reserve r = { NULL, 0 };
	uint64_t first, expect, total = 0, ks, ke;
	unsigned int need = 0;
	blk_t *x;

	if (!b || !list || !list->head || !new_size || !IS_ALIGNED(start_off | new_size, b->chunk))
		return -EINVAL;
	first = expect = buddy_blk_off(list->head);
	for (x = list->head; x; x = x->next) {
		if (!(x->hdr & BUDDY_HDR_ALLOCATED) || buddy_blk_off(x) != expect)
			return -EINVAL;
		total += blk_size(b, x);
		expect += blk_size(b, x);
	}
	if (start_off > total || new_size > total - start_off)
		return -EINVAL;
	if (new_size == total)
		return 0;
	ks = first + start_off;
	ke = ks + new_size;
	for (x = list->head; x; x = x->next)
		need += carve_count(buddy_blk_off(x), blk_size(b, x), ks, ke);
	if (reserve_get(&r, need)) {
		reserve_release(&r);
		return -ENOMEM;
	}
	x = list->head;
	while (x) {
		blk_t *nx = x->next;

		unmark_allocated(b, x);
		carve(b, x, ks, ke, &r, &kept);
		x = nx;
	}
	reserve_release(&r);
	*list = kept;
	return 0;
}

/* ---- internal helpers for the VRAM owner -------------------------------- */

/* Root i covers [off, off + chunk << order): the roots are the binary
 * digits of size, largest first. */
static unsigned int root_order(const struct vmmfs_buddy *b, unsigned int i)
{
	return ilog2_u64(b->size - buddy_blk_off(b->root[i])) - b->chunk_shift;
}

struct vmmfs_buddy_block *buddy_find_allocated(const struct vmmfs_buddy *b, uint64_t off)
{
	unsigned int i, K;
	blk_t *n;

	if (off >= b->size)
		return NULL;
	for (i = 0; i + 1 < b->nroots && off >= buddy_blk_off(b->root[i + 1]); i++)
		;
	n = b->root[i];
	K = root_order(b, i);
	for (;;) {
		unsigned int m = buddy_blk_order(n);
		uint64_t base = buddy_blk_off(n);
		blk_t *r;

		if (off - base < (b->chunk << m))
			return (n->hdr & BUDDY_HDR_ALLOCATED) ? n : NULL;
		/* the sibling at level m covers [base + 2^m, base + 2^(m+1)) */
		for (r = n->buddy; m + 1 < K && off - base >= (b->chunk << (m + 1)); m++)
			r = r->saved;
		n = r;
		K = m;
	}
}

static void walk_region(const blk_t *n, unsigned int K,
			void (*fn)(void *ctx, const struct vmmfs_buddy_block *blk), void *ctx)
{
	const blk_t *r = n->buddy;

	fn(ctx, n);
	for (unsigned int m = buddy_blk_order(n); m < K; m++) {
		walk_region(r, m, fn, ctx);
		r = r->saved;
	}
}

void buddy_walk(const struct vmmfs_buddy *b,
		void (*fn)(void *ctx, const struct vmmfs_buddy_block *blk), void *ctx)
{
	for (unsigned int i = 0; i < b->nroots; i++)
		walk_region(b->root[i], root_order(b, i), fn, ctx);
}

static void isolate(struct vmmfs_buddy *b, blk_t *n, uint64_t target, struct reserve *r,
		    struct vmmfs_buddy_list *pieces, blk_t **chunk_blk)
{
	blk_t *hi;

	if (buddy_blk_order(n) == 0) {
		mark_allocated(b, n);
		list_append(pieces, n);
		*chunk_blk = n;
		return;
	}
	hi = reserve_pop(r);
	split(b, n, hi);
	if (target < buddy_blk_off(hi)) {
		isolate(b, n, target, r, pieces, chunk_blk);
		mark_allocated(b, hi);
		list_append(pieces, hi);
	} else {
		mark_allocated(b, n);
		list_append(pieces, n);
		isolate(b, hi, target, r, pieces, chunk_blk);
	}
}

int buddy_isolate(struct vmmfs_buddy *b, struct vmmfs_buddy_block *blk, uint64_t off,
		  struct vmmfs_buddy_list *pieces, struct vmmfs_buddy_block **chunk_blk)
{
	struct vmmfs_buddy_list local = VMMFS_BUDDY_LIST_INIT;
	struct reserve r = { NULL, 0 };

	if (VMMFS_WARN_ON(!(blk->hdr & BUDDY_HDR_ALLOCATED) || off < buddy_blk_off(blk) ||
			  off - buddy_blk_off(blk) >= blk_size(b, blk)))
		return -EINVAL;
	if (reserve_get(&r, buddy_blk_order(blk))) {
		reserve_release(&r);
		return -ENOMEM;
	}
	unmark_allocated(b, blk);
	isolate(b, blk, ALIGN_DOWN(off, b->chunk), &r, &local, chunk_blk);
	reserve_release(&r);
	vmmfs_buddy_list_splice(pieces, &local);
	return 0;
}

/* ---- accessors ---------------------------------------------------------- */

uint64_t vmmfs_buddy_block_offset(const struct vmmfs_buddy_block *blk)
{
	return buddy_blk_off(blk);
}

uint64_t vmmfs_buddy_block_size(const struct vmmfs_buddy *b, const struct vmmfs_buddy_block *blk)
{
	return blk_size(b, blk);
}

unsigned int vmmfs_buddy_block_order(const struct vmmfs_buddy_block *blk)
{
	return buddy_blk_order(blk);
}

struct vmmfs_buddy_block *vmmfs_buddy_block_next(const struct vmmfs_buddy_block *blk)
{
	return blk->next;
}

uint64_t vmmfs_buddy_size(const struct vmmfs_buddy *b)
{
	return b->size;
}

uint64_t vmmfs_buddy_chunk(const struct vmmfs_buddy *b)
{
	return b->chunk;
}

uint64_t vmmfs_buddy_avail(const struct vmmfs_buddy *b)
{
	return b->avail;
}

unsigned int vmmfs_buddy_max_order(const struct vmmfs_buddy *b)
{
	return b->max_order;
}

uint64_t vmmfs_buddy_free_blocks(const struct vmmfs_buddy *b)
{
	uint64_t n = 0;

	for (unsigned int k = 0; k <= b->max_order; k++)
		n += b->free[k].count;
	return n;
}
