/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator and VRAM owner tests.
 *
 * Suite "buddy": scenarios named after drm_buddy's (limit, optimistic,
 * pessimistic, pathological, contiguous, range) plus exact range, top-down,
 * bottom-up, trim, minimum block size, all-or-nothing under injected
 * failures and a randomised soak checked against a model. The invariant
 * checker runs after every operation; a failure prints the offending block.
 *
 * Suite "vram": page-table pages never handed out while mapped (parked and
 * returned), references refused on page-table pages, reference counts,
 * usage counters, alloc= contiguity and alignment, an 80 GiB board.
 */
#include "helper.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "mem.h"
#include "buddy_priv.h"
#include "vram.h"

#define PS 4096ull
#define SZ_1M (1ull << 20)
#define SZ_2M (2ull << 20)

/* ---- helpers ------------------------------------------------------------ */

static void dump_block(const struct vmmfs_buddy *b, const struct vmmfs_buddy_block *blk,
		       const char *what)
{
	fprintf(stderr, "    %s: [0x%llx, +0x%llx) order %u %s (header 0x%llx)\n", what,
		(unsigned long long)vmmfs_buddy_block_offset(blk),
		(unsigned long long)vmmfs_buddy_block_size(b, blk), vmmfs_buddy_block_order(blk),
		(blk->hdr & BUDDY_HDR_ALLOCATED) ? "allocated" : "free", (unsigned long long)blk->hdr);
}

static bool check_mm_at(const struct vmmfs_buddy *b, const char *file, int line)
{
	char err[512];
	int r = vmmfs_buddy_check(b, err, sizeof(err));

	if (r)
		fprintf(stderr, "  %s:%d: buddy invariant broken: %s\n", file, line, err);
	CU_ASSERT_EQUAL(r, 0);
	return r == 0;
}
#define CHECK_MM(b) check_mm_at((b), __FILE__, __LINE__)

/* Every block allocated, aligned to its size, ascending, total bytes as
 * expected, adjacent when contiguous. */
static bool check_blocks_at(const struct vmmfs_buddy *b, const struct vmmfs_buddy_list *l,
			    uint64_t expected, bool contiguous, const char *file, int line)
{
	const struct vmmfs_buddy_block *x, *prev = NULL;
	uint64_t total = 0, count = 0;
	const char *why = NULL;

	for (x = l->head; x; prev = x, x = vmmfs_buddy_block_next(x)) {
		uint64_t off = vmmfs_buddy_block_offset(x), size = vmmfs_buddy_block_size(b, x);

		count++;
		if (!(x->hdr & BUDDY_HDR_ALLOCATED))
			why = "block not allocated";
		else if (!IS_ALIGNED(off, size))
			why = "block not aligned to its size";
		else if (prev && vmmfs_buddy_block_offset(prev) >= off)
			why = "blocks not in ascending order";
		else if (contiguous && prev &&
			 vmmfs_buddy_block_offset(prev) + vmmfs_buddy_block_size(b, prev) != off)
			why = "blocks not contiguous";
		if (why)
			break;
		total += size;
	}
	if (!why && count != l->count)
		why = "list count wrong";
	if (!why && total != expected)
		why = "wrong total size";
	if (why) {
		fprintf(stderr, "  %s:%d: %s (total 0x%llx, expected 0x%llx)\n", file, line, why,
			(unsigned long long)total, (unsigned long long)expected);
		if (prev)
			dump_block(b, prev, "previous block");
		if (x)
			dump_block(b, x, "bad block");
	}
	CU_ASSERT_PTR_NULL(why);
	return !why;
}
#define CHECK_BLOCKS(b, l, size, contig) check_blocks_at((b), (l), (size), (contig), __FILE__, __LINE__)

static uint64_t list_bytes(const struct vmmfs_buddy *b, const struct vmmfs_buddy_list *l)
{
	uint64_t t = 0;

	for (const struct vmmfs_buddy_block *x = l->head; x; x = vmmfs_buddy_block_next(x))
		t += vmmfs_buddy_block_size(b, x);
	return t;
}

/* Moves the first block of src to the end of dst. */
static struct vmmfs_buddy_block *move_first(struct vmmfs_buddy_list *dst, struct vmmfs_buddy_list *src)
{
	struct vmmfs_buddy_block *x = src->head;
	struct vmmfs_buddy_list one;

	if (!x)
		return NULL;
	src->head = x->next;
	if (!src->head)
		src->tail = NULL;
	src->count--;
	x->next = NULL;
	one = (struct vmmfs_buddy_list){ x, x, 1 };
	vmmfs_buddy_list_splice(dst, &one);
	return x;
}

static struct vmmfs_buddy *mk(uint64_t size, uint64_t chunk)
{
	struct vmmfs_buddy *b = NULL;
	int r = vmmfs_buddy_create(size, chunk, &b);

	if (r)
		fprintf(stderr, "  vmmfs_buddy_create(0x%llx, 0x%llx) = %d\n", (unsigned long long)size,
			(unsigned long long)chunk, r);
	CU_ASSERT_FATAL(r == 0);
	CHECK_MM(b);
	return b;
}

/* A copy of the allocator's block layout, to prove "state unchanged". */
struct snap {
	uint64_t *hdrs;    /* every block's header, in offset order */
	size_t n;
	uint64_t avail, free_blocks, alloc_count;
	int64_t live;
};

static void snap_one(void *ctx, const struct vmmfs_buddy_block *blk)
{
	struct snap *s = ctx;

	if (s->n < (1 << 16))
		s->hdrs[s->n] = blk->hdr & ~BUDDY_HDR_BAL;
	s->n++;
}

static void snap_take(const struct vmmfs_buddy *b, struct snap *s)
{
	s->hdrs = calloc(1 << 16, sizeof(uint64_t));
	CU_ASSERT_FATAL(s->hdrs != NULL);
	s->n = 0;
	buddy_walk(b, snap_one, s);
	CU_ASSERT_FATAL(s->n <= (1 << 16));
	s->avail = vmmfs_buddy_avail(b);
	s->free_blocks = vmmfs_buddy_free_blocks(b);
	s->alloc_count = b->alloc_count;
	s->live = vmmfs_mem_live();
}

static bool snap_same_at(const struct vmmfs_buddy *b, const struct snap *before, const char *file,
			 int line)
{
	struct snap now;
	bool same;

	snap_take(b, &now);
	same = now.n == before->n && !memcmp(now.hdrs, before->hdrs, now.n * sizeof(uint64_t)) &&
	       now.avail == before->avail && now.free_blocks == before->free_blocks &&
	       now.alloc_count == before->alloc_count && now.live == before->live;
	if (!same)
		fprintf(stderr, "  %s:%d: allocator state changed: blocks %zu -> %zu, avail 0x%llx -> "
			"0x%llx, live heap objects %lld -> %lld\n", file, line, before->n, now.n,
			(unsigned long long)before->avail, (unsigned long long)now.avail,
			(long long)before->live, (long long)now.live);
	CU_ASSERT(same);
	free(now.hdrs);
	return same;
}
#define SNAP_SAME(b, s) snap_same_at((b), (s), __FILE__, __LINE__)

static uint64_t size_of_order(unsigned int order)
{
	return PS << order;
}

/* ---- creation and arguments --------------------------------------------- */

static void test_create(void)
{
	int64_t live = vmmfs_mem_live();
	struct vmmfs_buddy *b = NULL;

	VT_EQ_INT(vmmfs_buddy_create(PS * 8, 2048, &b), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_create(PS * 8, PS * 3, &b), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_create(PS - 1, PS, &b), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_create(PS * 4, PS * 8, &b), -EINVAL);
	CU_ASSERT_PTR_NULL(b);

	/* 24 chunks + a bit: rounded down, roots of 16 and 8 chunks. */
	b = mk(PS * 24 + 100, PS);
	VT_EQ_U64(vmmfs_buddy_size(b), PS * 24);
	VT_EQ_U64(vmmfs_buddy_chunk(b), PS);
	VT_EQ_U64(vmmfs_buddy_avail(b), PS * 24);
	VT_EQ_U64(vmmfs_buddy_max_order(b), 4);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 2);
	vmmfs_buddy_destroy(b);

	b = mk(SZ_1M * 7, SZ_1M);
	VT_EQ_U64(vmmfs_buddy_max_order(b), 2);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 3);
	vmmfs_buddy_destroy(b);

	/* Every creation failure unwinds. */
	for (uint64_t i = 0; i < 4; i++) {
		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		b = NULL;
		VT_EQ_INT(vmmfs_buddy_create(PS * 7, PS, &b), -ENOMEM);
		CU_ASSERT_PTR_NULL(b);
	}
	vmmfs_fault_reset();
	VT_EQ_INT(vmmfs_mem_live(), live);
}

static void test_alloc_einval(void)
{
	struct vmmfs_buddy *b = mk(PS * 64, PS);
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
	uint64_t end = PS * 64;
	struct snap s;

	snap_take(b, &s);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS / 2, PS, 0, &l), -EINVAL);     /* size < chunk */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS, PS / 2, 0, &l), -EINVAL);     /* min < chunk */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS, PS * 3, 0, &l), -EINVAL);     /* min not 2^n */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 1, end, PS, PS, 0, &l), -EINVAL);         /* start */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end - 1, PS, PS, 0, &l), -EINVAL);     /* end */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS + 1, PS, 0, &l), -EINVAL);     /* size */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end + PS, PS, PS, 0, &l), -EINVAL);    /* end beyond */
	VT_EQ_INT(vmmfs_buddy_alloc(b, PS * 8, PS * 10, PS * 3, PS, VMMFS_BUDDY_RANGE, &l), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_alloc(b, PS * 10, PS * 8, PS, PS, VMMFS_BUDDY_RANGE, &l), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS, PS, VMMFS_BUDDY_TOPDOWN | VMMFS_BUDDY_BOTTOMUP, &l),
		  -EINVAL);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS, PS, 0x100, &l), -EINVAL);
	/* exact range not aligned to the minimum block */
	VT_EQ_INT(vmmfs_buddy_alloc(b, PS * 2, PS * 6, PS * 4, PS * 4, 0, &l), -EINVAL);
	/* rounded up past the largest block */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, end, PS * 33, PS * 128, 0, &l), -EINVAL);
	CU_ASSERT_PTR_NULL(l.head);
	VT_EQ_U64(l.count, 0);
	SNAP_SAME(b, &s);
	free(s.hdrs);
	vmmfs_buddy_destroy(b);
}

/* ---- drm_buddy's scenarios ---------------------------------------------- */

/* The largest spaces: 2^64 - 4 KiB, and a 57-bit VA space. */
static void test_limit(void)
{
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(UINT64_MAX, PS);
	uint64_t size;

	VT_EQ_U64(vmmfs_buddy_max_order(b), 51);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 52);
	size = PS << vmmfs_buddy_max_order(b);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, size, size, PS, 0, &l), 0);
	CU_ASSERT_FATAL(l.head != NULL);
	VT_EQ_U64(l.count, 1);
	VT_EQ_U64(vmmfs_buddy_block_order(l.head), 51);
	VT_EQ_U64(vmmfs_buddy_block_size(b, l.head), 1ull << 63);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);

	/* Simple: the smallest root, the last chunk below 2^64. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), PS, PS, 0, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), UINT64_MAX - 2 * PS + 1);
	vmmfs_buddy_free_list(b, &l);
	/* Top-down the same; bottom-up (smallest fitting order first) too,
	 * unless the size needs the largest root. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), PS, PS, VMMFS_BUDDY_TOPDOWN, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), UINT64_MAX - 2 * PS + 1);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), PS, PS, VMMFS_BUDDY_BOTTOMUP, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), UINT64_MAX - 2 * PS + 1);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), 1ull << 63, PS,
				    VMMFS_BUDDY_BOTTOMUP, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 0);
	vmmfs_buddy_free_list(b, &l);
	/* 2^62 + 2^61: the order-50 and order-49 roots, lowest of each order. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), 3ull << 61, PS,
				    VMMFS_BUDDY_BOTTOMUP, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 1ull << 63);
	CHECK_BLOCKS(b, &l, 3ull << 61, true);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, vmmfs_buddy_size(b), 3ull << 61, PS,
				    VMMFS_BUDDY_CONTIGUOUS, &l), 0);
	CHECK_BLOCKS(b, &l, 3ull << 61, true);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 52);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);

	/* 57-bit VA space, 4 KiB chunks: max order 45; single chunks from the
	 * top (Simple) and from the bottom (BOTTOMUP). */
	b = mk(1ull << 57, PS);
	VT_EQ_U64(vmmfs_buddy_max_order(b), 45);
	for (int i = 0; i < 1000; i++) {
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1ull << 57, PS, PS, 0, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), (1ull << 57) - PS * (uint64_t)(i + 1));
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), (1ull << 57) - 1000 * PS);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	for (int i = 0; i < 1000; i++) {
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1ull << 57, PS, PS, VMMFS_BUDDY_BOTTOMUP, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), PS * (uint64_t)i);
	}
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* One block of each order available: take them all, then it is full. */
static void test_optimistic(void)
{
	const unsigned int max_order = 16;
	struct vmmfs_buddy_list blocks = VMMFS_BUDDY_LIST_INIT, tmp = VMMFS_BUDDY_LIST_INIT;
	uint64_t mm_size = PS * ((1ull << (max_order + 1)) - 1);
	struct vmmfs_buddy *b = mk(mm_size, PS);

	VT_EQ_U64(vmmfs_buddy_max_order(b), max_order);
	for (unsigned int order = 0; order <= max_order; order++) {
		uint64_t size = size_of_order(order);

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size, size, 0, &tmp), 0);
		CU_ASSERT_FATAL(tmp.head != NULL);
		VT_EQ_U64(vmmfs_buddy_block_order(tmp.head), order);
		move_first(&blocks, &tmp);
		CHECK_MM(b);
	}
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, PS, PS, 0, &tmp), -ENOSPC);
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);
	vmmfs_buddy_free_list(b, &blocks);
	VT_EQ_U64(vmmfs_buddy_avail(b), mm_size);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Take one block of each order from a power-of-two space: one page is
 * left. Freeing in increasing size makes ever larger blocks available. */
static void test_pessimistic(void)
{
	const unsigned int max_order = 16;
	struct vmmfs_buddy_list blocks = VMMFS_BUDDY_LIST_INIT, tmp = VMMFS_BUDDY_LIST_INIT;
	uint64_t mm_size = PS << max_order;
	struct vmmfs_buddy *b = mk(mm_size, PS);
	struct vmmfs_buddy_block *blk, *last;
	unsigned int order;

	for (order = 0; order < max_order; order++) {
		uint64_t size = size_of_order(order);

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size, size, 0, &tmp), 0);
		CU_ASSERT_FATAL(move_first(&blocks, &tmp) != NULL);
	}
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, PS, PS, 0, &tmp), 0);
	last = move_first(&blocks, &tmp);
	CU_ASSERT_FATAL(last != NULL);
	CHECK_MM(b);
	for (order = max_order; order--; ) {
		uint64_t size = size_of_order(order);

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size, size, 0, &tmp), -ENOSPC);
	}

	/* Free the last (one page), then each block in increasing order;
	 * after each, the next larger order fits. */
	CU_ASSERT_FATAL(blocks.tail == last);
	{
		struct vmmfs_buddy_block *x;

		for (x = blocks.head; x->next != last; x = x->next)
			;
		x->next = NULL;
		blocks.tail = x;
		blocks.count--;
	}
	vmmfs_buddy_free_block(b, last);
	CHECK_MM(b);
	order = 1;
	while ((blk = blocks.head)) {
		uint64_t size = size_of_order(order);

		blocks.head = blk->next;
		blocks.count--;
		vmmfs_buddy_free_block(b, blk);
		CHECK_MM(b);
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size, size, 0, &tmp), 0);
		vmmfs_buddy_free_list(b, &tmp);
		order++;
	}
	blocks.tail = NULL;
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, mm_size, mm_size, 0, &tmp), 0);
	VT_EQ_U64(tmp.count, 1);
	vmmfs_buddy_free_list(b, &tmp);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Allocate one of each order, leaving one page; free the largest and whittle
 * down again, until the space is 50% fragmented. */
static void test_pathological(void)
{
	const int max_order = 3;
	struct vmmfs_buddy_list blocks = VMMFS_BUDDY_LIST_INIT, holes = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy_list tmp = VMMFS_BUDDY_LIST_INIT;
	uint64_t mm_size = PS << max_order;
	struct vmmfs_buddy *b = mk(mm_size, PS);

	for (int top = max_order; top; top--) {
		struct vmmfs_buddy_list largest = VMMFS_BUDDY_LIST_INIT;

		if (move_first(&largest, &blocks))
			vmmfs_buddy_free_list(b, &largest);
		for (int order = top; order--; ) {
			uint64_t size = size_of_order(order);

			VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size, size, 0, &tmp), 0);
			CU_ASSERT_FATAL(move_first(&blocks, &tmp) != NULL);
			CHECK_MM(b);
		}
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, PS, PS, 0, &tmp), 0);
		CU_ASSERT_FATAL(move_first(&holes, &tmp) != NULL);
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size_of_order(top), size_of_order(top), 0,
					    &tmp), -ENOSPC);
		CHECK_MM(b);
	}
	vmmfs_buddy_free_list(b, &holes);
	CHECK_MM(b);
	for (int order = 1; order <= max_order; order++)
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, size_of_order(order), size_of_order(order),
					    0, &tmp), -ENOSPC);
	/* The free space is all single chunks (one hole per round). */
	VT_EQ_U64(vmmfs_buddy_avail(b), max_order * PS);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), max_order);
	vmmfs_buddy_free_list(b, &blocks);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Simple allocations come from the top down (what nova-core relies on). */
static void test_simple_placement(void)
{
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
	uint64_t mm = PS * 24;
	struct vmmfs_buddy *b = mk(mm, PS);

	for (uint64_t i = 1; i <= 24; i++) {
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm, PS, PS, 0, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), mm - i * PS);
		CHECK_MM(b);
	}
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm, PS, PS, 0, &l), -ENOSPC);
	vmmfs_buddy_free_list(b, &l);
	/* 3 pages: an order-1 block at the top, then the page below it. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm, 3 * PS, PS, 0, &l), 0);
	CHECK_BLOCKS(b, &l, 3 * PS, true);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), mm - 3 * PS);
	VT_EQ_U64(vmmfs_buddy_block_order(l.head), 0);
	VT_EQ_U64(vmmfs_buddy_block_order(l.tail), 1);
	vmmfs_buddy_free_list(b, &l);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Fragment by thirds; CONTIGUOUS must find runs, including through the
 * try-harder path when the free pages are never buddies. */
static void test_contiguous(void)
{
	const uint64_t mm_size = 16 * 3 * PS;
	struct vmmfs_buddy_list left = VMMFS_BUDDY_LIST_INIT, middle = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy_list right = VMMFS_BUDDY_LIST_INIT, allocated = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(mm_size, PS);
	const unsigned int C = VMMFS_BUDDY_CONTIGUOUS;
	struct snap s;

	for (uint64_t i = 0; i < mm_size / PS; i++) {
		struct vmmfs_buddy_list *l = i % 3 == 0 ? &left : i % 3 == 1 ? &middle : &right;

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, PS, PS, 0, l), 0);
	}
	CHECK_MM(b);
	snap_take(b, &s);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C, &allocated), -ENOSPC);
	SNAP_SAME(b, &s);
	free(s.hdrs);

	vmmfs_buddy_free_list(b, &middle);
	CHECK_MM(b);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C, &allocated), -ENOSPC);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 2 * PS, PS, C, &allocated), -ENOSPC);

	vmmfs_buddy_free_list(b, &right);
	CHECK_MM(b);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C, &allocated), -ENOSPC);
	/* Two adjacent free pages that are not buddies: try harder finds them. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 2 * PS, PS, C, &allocated), 0);
	CHECK_BLOCKS(b, &allocated, 2 * PS, true);
	CHECK_MM(b);

	vmmfs_buddy_free_list(b, &left);
	CHECK_MM(b);
	{
		struct vmmfs_buddy_list three = VMMFS_BUDDY_LIST_INIT;

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C, &three), 0);
		CHECK_BLOCKS(b, &three, 3 * PS, true);
		vmmfs_buddy_list_splice(&allocated, &three);
	}
	VT_EQ_U64(list_bytes(b, &allocated), 5 * PS);
	vmmfs_buddy_free_list(b, &allocated);
	CHECK_MM(b);

	/* On a fresh space: 3 pages = the top 4-page block trimmed to 3. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C, &allocated), 0);
	CHECK_BLOCKS(b, &allocated, 3 * PS, true);
	VT_EQ_U64(vmmfs_buddy_block_offset(allocated.head), mm_size - 4 * PS);
	vmmfs_buddy_free_list(b, &allocated);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 3 * PS, PS, C | VMMFS_BUDDY_TRIM_DISABLE,
				    &allocated), 0);
	CHECK_BLOCKS(b, &allocated, 4 * PS, true);
	VT_EQ_U64(allocated.count, 1);
	vmmfs_buddy_free_list(b, &allocated);
	/* Larger than any block (48 pages: roots 32 + 16): only try harder,
	 * which RANGE does not do. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size - PS, 40 * PS, PS, C | VMMFS_BUDDY_RANGE,
				    &allocated), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, mm_size, 40 * PS, PS, C, &allocated), 0);
	CHECK_BLOCKS(b, &allocated, 40 * PS, true);
	vmmfs_buddy_free_list(b, &allocated);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

static bool all_inside(const struct vmmfs_buddy *b, const struct vmmfs_buddy_list *l, uint64_t s,
		       uint64_t e)
{
	for (const struct vmmfs_buddy_block *x = l->head; x; x = vmmfs_buddy_block_next(x)) {
		uint64_t o = vmmfs_buddy_block_offset(x);

		if (o < s || o + vmmfs_buddy_block_size(b, x) > e) {
			dump_block(b, x, "block outside the range");
			return false;
		}
	}
	return true;
}

/* Consecutive exact ranges of prime sizes; then biased (RANGE) allocations
 * inside 1 MiB windows taken in random order. */
static void test_range(void)
{
	static const unsigned int primes[] = { 1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43,
		47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127 };
	struct vmmfs_buddy_list blocks = VMMFS_BUDDY_LIST_INIT, allocated = VMMFS_BUDDY_LIST_INIT;
	const unsigned int R = VMMFS_BUDDY_RANGE;
	uint64_t mm_size, offset = 0, rem, bias = SZ_1M;
	struct vmmfs_buddy *b;
	unsigned int order[8];

	vt_seed("buddy range");
	mm_size = PS * (1000 + vt_rand_below(3000));
	b = mk(mm_size, PS);
	rem = mm_size;
	for (unsigned int i = 0; rem; i = (i + 1) % ARRAY_SIZE(primes)) {
		struct vmmfs_buddy_list tmp = VMMFS_BUDDY_LIST_INIT;
		uint64_t size = MIN(primes[i] * PS, rem);

		VT_EQ_INT(vmmfs_buddy_alloc(b, offset, offset + size, size, PS, R, &tmp), 0);
		CU_ASSERT_FATAL(tmp.head != NULL);
		VT_EQ_U64(vmmfs_buddy_block_offset(tmp.head), offset);
		CHECK_BLOCKS(b, &tmp, size, true);
		vmmfs_buddy_list_splice(&blocks, &tmp);
		offset += size;
		rem -= size;
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &blocks);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);

	/* Several roots: 8 MiB - 4 KiB. */
	mm_size = 8 * SZ_1M - PS;
	b = mk(mm_size, PS);
	for (unsigned int i = 0; i < 8; i++)
		order[i] = i;
	for (unsigned int i = 7; i; i--) {
		unsigned int j = (unsigned int)vt_rand_below(i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned int i = 0; i < 8; i++) {
		uint64_t bs = order[i] * bias, be = MIN(bs + bias, mm_size), brem = be - bs;
		struct vmmfs_buddy_list tmp = VMMFS_BUDDY_LIST_INIT;
		uint64_t size;

		/* internal round-up too big, size too big, window too small,
		 * window misaligned for the block size */
		VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be - PS, bias / 2 + PS, bias, R, &tmp), -ENOSPC);
		VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be, brem + PS, PS, R, &tmp), -EINVAL);
		VT_EQ_INT(vmmfs_buddy_alloc(b, bs + PS, be - PS, bias / 2, bias / 2, R, &tmp), -ENOSPC);
		CU_ASSERT_PTR_NULL(tmp.head);
		if (brem == bias) {
			/* one big page, then one page with a big minimum */
			VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be, bias, bias, R, &tmp), 0);
			CHECK_BLOCKS(b, &tmp, bias, true);
			vmmfs_buddy_free_list(b, &tmp);
			VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be, bias / 4, bias / 2, R, &tmp), 0);
			CU_ASSERT(IS_ALIGNED(vmmfs_buddy_block_offset(tmp.head), bias / 2));
			VT_EQ_U64(vmmfs_buddy_block_offset(tmp.head), bs);   /* lowest first */
			vmmfs_buddy_free_list(b, &tmp);
		}
		/* random fills inside the window, until it is full */
		while (brem) {
			size = MAX(ALIGN_UP(vt_rand_below(brem), PS), PS);
			VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be, size, PS, R, &tmp), 0);
			CU_ASSERT(all_inside(b, &tmp, bs, be));
			CHECK_BLOCKS(b, &tmp, size, false);
			vmmfs_buddy_list_splice(&allocated, &tmp);
			brem -= size;
			VT_EQ_INT(vmmfs_buddy_alloc(b, bs, be, brem + PS, PS, R, &tmp),
				  brem + PS > be - bs ? -EINVAL : -ENOSPC);
			CHECK_MM(b);
		}
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);
	vmmfs_buddy_free_list(b, &allocated);
	CHECK_MM(b);

	/* RANGE is lowest-first, whatever the order of the free blocks. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 3 * PS, mm_size, PS, PS, R, &allocated), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(allocated.head), 3 * PS);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 3 * PS, mm_size, 4 * PS, 4 * PS, R, &allocated), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(allocated.tail), 4 * PS);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 3 * PS, mm_size, PS, PS, R, &allocated), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(allocated.tail), 8 * PS);
	vmmfs_buddy_free_list(b, &allocated);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* start + size == end: exactly that range, as the largest aligned blocks. */
static void test_exact_range(void)
{
	struct vmmfs_buddy_list a = VMMFS_BUDDY_LIST_INIT, c = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(64 * PS, PS);
	static const unsigned int want[][2] = { { 3, 0 }, { 4, 2 }, { 8, 2 }, { 12, 0 } };
	const struct vmmfs_buddy_block *x;
	struct snap s;
	unsigned int i = 0;

	VT_EQ_INT(vmmfs_buddy_alloc(b, 3 * PS, 13 * PS, 10 * PS, PS, 0, &a), 0);
	CHECK_BLOCKS(b, &a, 10 * PS, true);
	VT_EQ_U64(a.count, 4);
	for (x = a.head; x && i < 4; x = vmmfs_buddy_block_next(x), i++) {
		VT_EQ_U64(vmmfs_buddy_block_offset(x), want[i][0] * PS);
		VT_EQ_U64(vmmfs_buddy_block_order(x), want[i][1]);
	}
	CHECK_MM(b);

	/* Overlapping an allocated page: -ENOSPC and nothing taken. */
	snap_take(b, &s);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 10 * PS, 20 * PS, 10 * PS, PS, 0, &c), -ENOSPC);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 4 * PS, 4 * PS, PS, VMMFS_BUDDY_RANGE, &c), -ENOSPC);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 12 * PS, 64 * PS, 52 * PS, PS, 0, &c), -ENOSPC);
	CU_ASSERT_PTR_NULL(c.head);
	SNAP_SAME(b, &s);
	free(s.hdrs);

	/* Neighbours fit; min block alignment of start and end is required. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 13 * PS, 16 * PS, 3 * PS, PS, 0, &c), 0);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 16 * PS, 24 * PS, 8 * PS, 8 * PS, 0, &c), 0);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 24 * PS, 28 * PS, 4 * PS, 8 * PS, 0, &c), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 3 * PS, 3 * PS, PS, 0, &c), 0);
	VT_EQ_U64(list_bytes(b, &c), 14 * PS);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &a);
	vmmfs_buddy_free_list(b, &c);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Free: a single page at 5 and an order-2 block at 24..27. */
static struct vmmfs_buddy *mk_two_holes(struct vmmfs_buddy_list *held)
{
	struct vmmfs_buddy *b = mk(32 * PS, PS);

	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 5 * PS, 5 * PS, PS, 0, held), 0);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 6 * PS, 24 * PS, 18 * PS, PS, 0, held), 0);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 28 * PS, 32 * PS, 4 * PS, PS, 0, held), 0);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 2);
	CHECK_MM(b);
	return b;
}

static void test_topdown(void)
{
	struct vmmfs_buddy_list held = VMMFS_BUDDY_LIST_INIT, l = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk_two_holes(&held);

	/* Top-down: highest across orders (the order-2 block, its top page);
	 * Simple: smallest order first (page 5). */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, VMMFS_BUDDY_TOPDOWN, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 27 * PS);
	CHECK_MM(b);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, VMMFS_BUDDY_TOPDOWN, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 26 * PS);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, 0, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 5 * PS);
	vmmfs_buddy_free_list(b, &l);
	/* Top-down with 2 pages: the upper half of the order-2 block. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, 2 * PS, PS, VMMFS_BUDDY_TOPDOWN, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 26 * PS);
	VT_EQ_U64(l.count, 1);
	vmmfs_buddy_free_list(b, &l);
	/* Top-down, 5 pages: 4 at 24 then the page at 5, returned ascending. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, 5 * PS, PS, VMMFS_BUDDY_TOPDOWN, &l), 0);
	CHECK_BLOCKS(b, &l, 5 * PS, false);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 5 * PS);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 24 * PS);
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);
	vmmfs_buddy_free_list(b, &l);
	vmmfs_buddy_free_list(b, &held);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

static void test_bottomup(void)
{
	struct vmmfs_buddy_list held = VMMFS_BUDDY_LIST_INIT, l = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk_two_holes(&held);
	const unsigned int B = VMMFS_BUDDY_BOTTOMUP;

	/* Smallest fitting order, lowest offset, lower half when splitting. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, B, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 5 * PS);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, B, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 24 * PS);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, B, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), 25 * PS);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	vmmfs_buddy_free_list(b, &held);

	/* Single pages from a fresh space come out 0, 1, 2, ... */
	for (uint64_t i = 0; i < 20; i++) {
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, B, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.tail), i * PS);
	}
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	/* Sizes 1, 2, 3, 1, 2, 3, ...: the 19 pages pack [0, 19) exactly. */
	for (uint64_t i = 0; i < 10; i++) {
		uint64_t size = (1 + i % 3) * PS;

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, size, PS, B, &held), 0);
		CU_ASSERT(all_inside(b, &held, 0, 19 * PS));
		CHECK_MM(b);
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), 13 * PS);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 32 * PS, PS, PS, B, &l), 0);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 19 * PS);
	vmmfs_buddy_free_list(b, &l);
	vmmfs_buddy_free_list(b, &held);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* A pool where one chunk of every pair is free (so every free block is a
 * single chunk with an allocated buddy): Simple takes the highest free
 * chunk and bottom-up the lowest, from either end of a large free tree in
 * turn, and frees in falling and rising runs put them back; the checker
 * (min and max caches, balance) runs after every step. */
static void test_tree_ends(void)
{
	enum { N = 2048 };
	struct vmmfs_buddy_block **blk = calloc(N, sizeof(*blk)), **taken = calloc(N, sizeof(*taken));
	bool *isfree = calloc(N, sizeof(*isfree));
	struct vmmfs_buddy *b = NULL;
	uint64_t lo = 0, hi = N - 1, nfree = 0, ntaken = 0;

	vt_seed("buddy tree ends");
	VT_EQ_INT(vmmfs_buddy_create(N * PS, PS, &b), 0);
	if (!b || !blk || !taken || !isfree)
		goto out;
	for (uint64_t i = 0; i < N; i++) {
		struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;

		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, N * PS, PS, PS, VMMFS_BUDDY_BOTTOMUP, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.head), i * PS);
		blk[i] = l.head;
	}
	for (uint64_t i = 0; i < N; i += 2) {
		uint64_t c = i + vt_rand_below(2);

		vmmfs_buddy_free_block(b, blk[c]);
		blk[c] = NULL;
		isfree[c] = true;
		nfree++;
	}
	CHECK_MM(b);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), nfree);

	/* Take every free chunk, from the top or the bottom at random. */
	while (nfree) {
		struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
		bool top = vt_rand_below(2);
		uint64_t want;

		while (!isfree[lo])
			lo++;
		while (!isfree[hi])
			hi--;
		want = top ? hi : lo;
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, N * PS, PS, PS, top ? 0 : VMMFS_BUDDY_BOTTOMUP, &l), 0);
		VT_EQ_U64(vmmfs_buddy_block_offset(l.head), want * PS);
		isfree[want] = false;
		taken[ntaken++] = l.head;
		nfree--;
		if (!CHECK_MM(b))
			goto out;
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);

	/* Give them back by offset: the upper half falling, then the lower
	 * half rising, each next to the last one inserted. */
	memset(isfree, 0, N * sizeof(*isfree));
	for (uint64_t i = 0; i < ntaken; i++)
		isfree[vmmfs_buddy_block_offset(taken[i]) / PS] = true;
	for (uint64_t k = 0; k < N; k++) {
		uint64_t c = k < N / 2 ? N - 1 - k : k - N / 2;

		if (!isfree[c])
			continue;
		for (uint64_t i = 0; i < ntaken; i++)
			if (taken[i] && vmmfs_buddy_block_offset(taken[i]) == c * PS) {
				vmmfs_buddy_free_block(b, taken[i]);
				taken[i] = NULL;
				break;
			}
		nfree++;
		if (!CHECK_MM(b))
			goto out;
	}
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), nfree);
	VT_EQ_U64(vmmfs_buddy_avail(b), nfree * PS);
	for (uint64_t i = 0; i < N; i++)
		if (blk[i])
			vmmfs_buddy_free_block(b, blk[i]);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
out:
	vmmfs_buddy_destroy(b);
	free(isfree);
	free(taken);
	free(blk);
}

static void test_trim(void)
{
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT, empty = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy_list other = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(64 * PS, PS);
	struct snap s;

	VT_EQ_INT(vmmfs_buddy_alloc(b, 16 * PS, 32 * PS, 16 * PS, PS, 0, &l), 0);
	VT_EQ_U64(l.count, 1);

	VT_EQ_INT(vmmfs_buddy_trim(b, 0, PS, &empty), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_trim(b, 12 * PS, 5 * PS, &l), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_trim(b, 1, 5 * PS, &l), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_trim(b, 0, 0, &l), -EINVAL);
	VT_EQ_INT(vmmfs_buddy_trim(b, 0, 16 * PS, &l), 0);    /* whole: nothing to do */
	VT_EQ_U64(l.count, 1);

	/* A failed trim changes nothing. */
	snap_take(b, &s);
	vmmfs_fault_reset();
	vmmfs_fault_fail_nth(0);
	VT_EQ_INT(vmmfs_buddy_trim(b, 3 * PS, 5 * PS, &l), -ENOMEM);
	vmmfs_fault_reset();
	VT_EQ_U64(l.count, 1);
	SNAP_SAME(b, &s);
	free(s.hdrs);

	/* Keep [19, 24): page 19 and the order-2 block at 20. */
	VT_EQ_INT(vmmfs_buddy_trim(b, 3 * PS, 5 * PS, &l), 0);
	CHECK_BLOCKS(b, &l, 5 * PS, true);
	VT_EQ_U64(l.count, 2);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 19 * PS);
	VT_EQ_U64(vmmfs_buddy_avail(b), 59 * PS);
	CHECK_MM(b);

	/* Trim across the two blocks: keep [20, 23). */
	VT_EQ_INT(vmmfs_buddy_trim(b, PS, 3 * PS, &l), 0);
	CHECK_BLOCKS(b, &l, 3 * PS, true);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 20 * PS);
	CHECK_MM(b);

	/* Not one contiguous allocation. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 40 * PS, 41 * PS, PS, PS, 0, &other), 0);
	vmmfs_buddy_list_splice(&l, &other);
	VT_EQ_INT(vmmfs_buddy_trim(b, 0, PS, &l), -EINVAL);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);

	/* The VMM's use: an aligned block, then a phase inside it. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 64 * PS, 32 * PS, 32 * PS, 0, &l), 0);
	VT_EQ_INT(vmmfs_buddy_trim(b, 7 * PS, 17 * PS, &l), 0);
	CHECK_BLOCKS(b, &l, 17 * PS, true);
	VT_EQ_U64(vmmfs_buddy_block_offset(l.head), 32 * PS + 7 * PS);
	VT_EQ_U64(vmmfs_buddy_avail(b), 47 * PS);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

static void test_min_block_size(void)
{
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT, held = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(1024 * PS, PS);

	/* 5 pages, min 4: an 8-page block, trimmed to 5, starting aligned. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1024 * PS, 5 * PS, 4 * PS, 0, &l), 0);
	CHECK_BLOCKS(b, &l, 5 * PS, true);
	CU_ASSERT(IS_ALIGNED(vmmfs_buddy_block_offset(l.head), 8 * PS));
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1024 * PS, 5 * PS, 4 * PS, VMMFS_BUDDY_TRIM_DISABLE, &l), 0);
	CHECK_BLOCKS(b, &l, 8 * PS, true);
	VT_EQ_U64(l.count, 1);
	vmmfs_buddy_free_list(b, &l);
	/* 1 page with min 512 pages (a 2 MiB-aligned page). */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1024 * PS, PS, 512 * PS, 0, &l), 0);
	CHECK_BLOCKS(b, &l, PS, true);
	CU_ASSERT(IS_ALIGNED(vmmfs_buddy_block_offset(l.head), 512 * PS));
	vmmfs_buddy_free_list(b, &l);
	CHECK_MM(b);

	/* Fragment: every other 4-page block taken. Then 12 pages min 4 must
	 * come as 4-page aligned blocks; min 8 cannot be served at all. */
	for (uint64_t o = 0; o < 1024; o += 8)
		VT_EQ_INT(vmmfs_buddy_alloc(b, o * PS, (o + 4) * PS, 4 * PS, PS, 0, &held), 0);
	CHECK_MM(b);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1024 * PS, 12 * PS, 4 * PS, 0, &l), 0);
	CHECK_BLOCKS(b, &l, 12 * PS, false);
	VT_EQ_U64(l.count, 3);
	for (const struct vmmfs_buddy_block *x = l.head; x; x = vmmfs_buddy_block_next(x)) {
		VT_EQ_U64(vmmfs_buddy_block_size(b, x), 4 * PS);
		CU_ASSERT(IS_ALIGNED(vmmfs_buddy_block_offset(x), 4 * PS));
	}
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 1024 * PS, 8 * PS, 8 * PS, 0, &l), -ENOSPC);
	CHECK_MM(b);
	vmmfs_buddy_free_list(b, &l);
	vmmfs_buddy_free_list(b, &held);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* Merging on free: every page allocated alone, freed in random order. */
static void test_free_merges(void)
{
	const uint64_t pages = 3000;
	struct vmmfs_buddy *b = mk(pages * PS, PS);
	struct vmmfs_buddy_block **blk = calloc(pages, sizeof(*blk));
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;

	vt_seed("buddy free merges");
	CU_ASSERT_FATAL(blk != NULL);
	for (uint64_t i = 0; i < pages; i++) {
		VT_EQ_INT(vmmfs_buddy_alloc(b, 0, pages * PS, PS, PS, 0, &l), 0);
		blk[i] = l.tail;
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), 0);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 0);
	CHECK_MM(b);
	for (uint64_t i = pages - 1; i; i--) {
		uint64_t j = vt_rand_below(i + 1);
		struct vmmfs_buddy_block *t = blk[i];

		blk[i] = blk[j];
		blk[j] = t;
	}
	for (uint64_t i = 0; i < pages; i++) {
		vmmfs_buddy_free_block(b, blk[i]);
		if (i % 97 == 0)
			CHECK_MM(b);
	}
	VT_EQ_U64(vmmfs_buddy_avail(b), pages * PS);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), (uint64_t)__builtin_popcountll(pages));
	CHECK_MM(b);
	free(blk);
	vmmfs_buddy_destroy(b);
}

/* Destroy with blocks still allocated: reported and freed. */
static void test_destroy_leaks(void)
{
	int64_t live = vmmfs_mem_live();
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(64 * PS, PS);
	char *text = NULL;

	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 64 * PS, 7 * PS, PS, 0, &l), 0);
	vmmfs_log_clear();
	vmmfs_log_set_stderr_level(-1);
	vmmfs_buddy_destroy(b);
	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
	VT_EQ_INT(vmmfs_mem_live(), live);
	CU_ASSERT(vmmfs_log_snapshot(&text) > 0);
	CU_ASSERT(text && strstr(text, "3 blocks") && strstr(text, "still allocated"));
	free(text);
}

/* The checker itself: each kind of corruption is caught and described. */
static bool check_says(struct vmmfs_buddy *b, const char *words)
{
	char err[512];
	int r = vmmfs_buddy_check(b, err, sizeof(err));

	if (r != -EUCLEAN || !strstr(err, words))
		fprintf(stderr, "  check gave %d \"%s\", expected -EUCLEAN with \"%s\"\n", r, err, words);
	return r == -EUCLEAN && strstr(err, words);
}

static void test_check_detects(void)
{
	struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT, one = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy *b = mk(64 * PS, PS);
	struct vmmfs_buddy_block *blk, *top, *fr;
	uint64_t hdr;

	VT_EQ_INT(vmmfs_buddy_alloc(b, 16 * PS, 20 * PS, 4 * PS, PS, 0, &l), 0);
	blk = l.head;                                  /* order 2 at 16 */
	CHECK_MM(b);

	b->avail += PS;
	CU_ASSERT(check_says(b, "avail"));
	b->avail -= PS;
	b->alloc_count++;
	CU_ASSERT(check_says(b, "counted"));
	b->alloc_count--;

	hdr = blk->hdr;
	blk->hdr = (hdr & ~BUDDY_HDR_ORDER) | 1;       /* shrinks: links lead elsewhere */
	CU_ASSERT(check_says(b, "buddy link"));
	blk->hdr = (hdr & ~BUDDY_HDR_ORDER) | 3;       /* grows: overlaps its neighbour */
	CU_ASSERT(check_says(b, "buddy link"));
	blk->hdr = hdr + 2 * PS;                       /* moved */
	CU_ASSERT(check_says(b, "buddy link"));
	blk->hdr = hdr & ~BUDDY_HDR_ALLOCATED;         /* free, but in no tree */
	CU_ASSERT(check_says(b, "not in the order-2 free tree"));
	blk->hdr = hdr;
	CHECK_MM(b);

	/* Free trees: balance, count, order mask. The order-3 tree holds the
	 * single block [24, 32). */
	fr = b->free[3].root;
	CU_ASSERT_FATAL(fr && b->free[3].count == 1);
	hdr = fr->hdr;
	fr->hdr = (hdr & ~BUDDY_HDR_BAL) | (2ull << BUDDY_HDR_BAL_SHIFT);
	CU_ASSERT(check_says(b, "unbalanced"));
	fr->hdr = hdr;
	b->free[3].count++;
	CU_ASSERT(check_says(b, "counts"));
	b->free[3].count--;
	b->nonempty ^= 1;
	CU_ASSERT(check_says(b, "mask"));
	b->nonempty ^= 1;
	CHECK_MM(b);

	/* Two free buddies: take page 23 (from the order-2 block at 20), then
	 * put it into the order-0 free tree by hand, next to its free buddy 22,
	 * without merging. */
	VT_EQ_INT(vmmfs_buddy_alloc(b, 0, 64 * PS, PS, PS, 0, &one), 0);
	top = one.head;
	VT_EQ_U64(vmmfs_buddy_block_offset(top), 23 * PS);
	fr = b->free[0].root;
	CU_ASSERT_FATAL(fr && b->free[0].count == 1 && !fr->link[0] && !fr->link[1]);
	VT_EQ_U64(vmmfs_buddy_block_offset(fr), 22 * PS);
	hdr = top->hdr;
	top->hdr = (hdr & ~(BUDDY_HDR_ALLOCATED | BUDDY_HDR_BAL)) | (1ull << BUDDY_HDR_BAL_SHIFT);
	top->link[0] = top->link[1] = NULL;
	top->parent = fr;
	fr->link[1] = top;
	b->free[0].max = top;
	fr->hdr = (fr->hdr & ~BUDDY_HDR_BAL) | (2ull << BUDDY_HDR_BAL_SHIFT);
	b->free[0].count = 2;
	b->avail += PS;
	b->alloc_count--;
	b->alloc_bytes -= PS;
	CU_ASSERT(check_says(b, "are both free"));
	/* put it back */
	b->alloc_bytes += PS;
	b->alloc_count++;
	b->avail -= PS;
	b->free[0].count = 1;
	b->free[0].max = fr;
	fr->link[1] = NULL;
	fr->hdr = (fr->hdr & ~BUDDY_HDR_BAL) | (1ull << BUDDY_HDR_BAL_SHIFT);
	top->hdr = hdr;
	top->next = NULL;
	CHECK_MM(b);

	vmmfs_buddy_free_list(b, &one);
	vmmfs_buddy_free_list(b, &l);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), 1);
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
}

/* ---- failure leaves no trace -------------------------------------------- */

struct scenario {
	const char *name;
	uint64_t start, end, size, min;
	unsigned int flags;
};

/* Space of 256 pages, fragmented: pages 0..63 held in a checkerboard of
 * single pages, 100..119 held. */
static struct vmmfs_buddy *mk_fragmented(struct vmmfs_buddy_list *held)
{
	struct vmmfs_buddy *b = mk(256 * PS, PS);

	for (uint64_t p = 0; p < 64; p += 2)
		VT_EQ_INT(vmmfs_buddy_alloc(b, p * PS, (p + 1) * PS, PS, PS, 0, held), 0);
	VT_EQ_INT(vmmfs_buddy_alloc(b, 100 * PS, 120 * PS, 20 * PS, PS, 0, held), 0);
	CHECK_MM(b);
	return b;
}

static void test_all_or_nothing(void)
{
	static const struct scenario sc[] = {
		{ "simple, many blocks", 0, 256 * PS, 120 * PS, PS, 0 },
		{ "top-down", 0, 256 * PS, 77 * PS, PS, VMMFS_BUDDY_TOPDOWN },
		{ "bottom-up", 0, 256 * PS, 77 * PS, PS, VMMFS_BUDDY_BOTTOMUP },
		{ "range", 1 * PS, 250 * PS, 140 * PS, PS, VMMFS_BUDDY_RANGE },
		{ "exact range", 120 * PS, 250 * PS, 130 * PS, PS, 0 },
		{ "contiguous, trimmed", 0, 256 * PS, 45 * PS, PS, VMMFS_BUDDY_CONTIGUOUS },
		{ "contiguous, try harder", 0, 256 * PS, 70 * PS, PS, VMMFS_BUDDY_CONTIGUOUS },
		{ "min block, trimmed", 0, 256 * PS, 21 * PS, 8 * PS, 0 },
		{ "too big (no room)", 0, 256 * PS, 250 * PS, PS, 0 },
	};

	for (unsigned int i = 0; i < ARRAY_SIZE(sc); i++) {
		struct vmmfs_buddy_list held = VMMFS_BUDDY_LIST_INIT;
		struct vmmfs_buddy *b = mk_fragmented(&held);
		struct vmmfs_buddy_list out = VMMFS_BUDDY_LIST_INIT, keep = VMMFS_BUDDY_LIST_INIT;
		uint64_t n, failed = 0;
		int expect, r;
		struct snap s;

		/* Something already in out must survive a failure untouched. */
		VT_EQ_INT(vmmfs_buddy_alloc(b, 255 * PS, 256 * PS, PS, PS, 0, &out), 0);
		snap_take(b, &s);

		vmmfs_fault_reset();
		expect = vmmfs_buddy_alloc(b, sc[i].start, sc[i].end, sc[i].size, sc[i].min,
					   sc[i].flags, &keep);
		n = vmmfs_fault_count();
		vmmfs_fault_reset();
		if (expect == 0) {
			CU_ASSERT(list_bytes(b, &keep) >= sc[i].size);
			vmmfs_buddy_free_list(b, &keep);
		} else {
			VT_EQ_INT(expect, -ENOSPC);
		}
		SNAP_SAME(b, &s);
		CU_ASSERT(n >= 1);

		for (uint64_t k = 0; k < n; k++) {
			vmmfs_fault_reset();
			vmmfs_fault_fail_nth(k);
			r = vmmfs_buddy_alloc(b, sc[i].start, sc[i].end, sc[i].size, sc[i].min,
					      sc[i].flags, &out);
			vmmfs_fault_reset();
			/* Every allocation inside the buddy is needed: each failure
			 * fails the call. */
			if (r != -ENOMEM)
				fprintf(stderr, "  %s: failing allocation %llu of %llu gave %d\n",
					sc[i].name, (unsigned long long)k, (unsigned long long)n, r);
			VT_EQ_INT(r, -ENOMEM);
			failed += r == -ENOMEM;
			VT_EQ_U64(out.count, 1);
			CU_ASSERT(out.head && vmmfs_buddy_block_offset(out.head) == 255 * PS);
			if (!SNAP_SAME(b, &s) || !CHECK_MM(b))
				fprintf(stderr, "  scenario '%s', failing allocation %llu of %llu\n",
					sc[i].name, (unsigned long long)k, (unsigned long long)n);
		}
		VT_EQ_U64(failed, n);
		free(s.hdrs);
		vmmfs_buddy_free_list(b, &out);
		vmmfs_buddy_free_list(b, &held);
		CHECK_MM(b);
		vmmfs_buddy_destroy(b);
	}
}

/* ---- randomised soak against a model ------------------------------------ */

#define SOAK_RECS 128

struct rec {
	struct vmmfs_buddy_list l;
	bool contiguous;
};

static void model_mark(uint8_t *model, const struct vmmfs_buddy *b, const struct vmmfs_buddy_list *l,
		       uint8_t v)
{
	uint64_t cs = vmmfs_buddy_chunk(b);

	for (const struct vmmfs_buddy_block *x = l->head; x; x = vmmfs_buddy_block_next(x))
		for (uint64_t o = vmmfs_buddy_block_offset(x); o < vmmfs_buddy_block_offset(x) +
		     vmmfs_buddy_block_size(b, x); o += cs)
			model[o / cs] = v;
}

static bool model_free(const uint8_t *model, const struct vmmfs_buddy *b,
		       const struct vmmfs_buddy_list *l)
{
	uint64_t cs = vmmfs_buddy_chunk(b);

	for (const struct vmmfs_buddy_block *x = l->head; x; x = vmmfs_buddy_block_next(x))
		for (uint64_t o = vmmfs_buddy_block_offset(x); o < vmmfs_buddy_block_offset(x) +
		     vmmfs_buddy_block_size(b, x); o += cs)
			if (model[o / cs]) {
				dump_block(b, x, "block handed out twice");
				return false;
			}
	return true;
}

static void test_soak(void)
{
	static const unsigned int kinds[] = { 0, VMMFS_BUDDY_TOPDOWN, VMMFS_BUDDY_BOTTOMUP,
		VMMFS_BUDDY_RANGE, VMMFS_BUDDY_CONTIGUOUS,
		VMMFS_BUDDY_CONTIGUOUS | VMMFS_BUDDY_TRIM_DISABLE, VMMFS_BUDDY_RANGE | VMMFS_BUDDY_CONTIGUOUS,
		VMMFS_BUDDY_TRIM_DISABLE, 0x80000000u /* exact */ };
	struct rec *recs = calloc(SOAK_RECS, sizeof(*recs));
	uint64_t chunks, cs, space, nfree;
	unsigned int nrec = 0, ops = 4000;
	struct vmmfs_buddy *b;
	uint8_t *model;

	vt_seed("buddy soak");
	cs = PS << vt_rand_below(3);
	chunks = 64 + vt_rand_below(4000);
	space = chunks * cs;
	b = mk(space, cs);
	model = calloc(chunks, 1);
	CU_ASSERT_FATAL(model && recs);
	nfree = chunks;

	for (unsigned int op = 0; op < ops; op++) {
		unsigned int what = (unsigned int)vt_rand_below(10);

		if (nrec && (what < 4 || nrec == SOAK_RECS)) {
			unsigned int i = (unsigned int)vt_rand_below(nrec);

			model_mark(model, b, &recs[i].l, 0);
			nfree += list_bytes(b, &recs[i].l) / cs;
			vmmfs_buddy_free_list(b, &recs[i].l);
			recs[i] = recs[--nrec];
		} else if (nrec && what == 4) {
			/* trim a contiguous allocation to a random sub-range */
			unsigned int i = (unsigned int)vt_rand_below(nrec);
			uint64_t total = list_bytes(b, &recs[i].l) / cs, so, ns;

			if (!recs[i].contiguous || total < 2)
				continue;
			so = vt_rand_below(total);
			ns = 1 + vt_rand_below(total - so);
			model_mark(model, b, &recs[i].l, 0);
			VT_EQ_INT(vmmfs_buddy_trim(b, so * cs, ns * cs, &recs[i].l), 0);
			CHECK_BLOCKS(b, &recs[i].l, ns * cs, true);
			model_mark(model, b, &recs[i].l, 1);
			nfree += total - ns;
		} else {
			unsigned int flags = kinds[vt_rand_below(ARRAY_SIZE(kinds))];
			uint64_t pages = 1 + vt_rand_below(MIN(chunks / 4, 100));
			uint64_t min = cs << vt_rand_below(3), start = 0, end = space, got;
			bool exact = flags == 0x80000000u, inside = true;
			struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
			int r;

			if (exact) {
				flags = 0;
				min = cs;
				start = vt_rand_below(chunks - pages + 1) * cs;
				end = start + pages * cs;
			} else if (flags & VMMFS_BUDDY_RANGE) {
				start = vt_rand_below(chunks - pages + 1) * cs;
				end = start + (pages + vt_rand_below(chunks - pages - start / cs + 1)) * cs;
				if (end - start == pages * cs)
					min = cs;
			}
			r = vmmfs_buddy_alloc(b, start, end, pages * cs, min, flags, &l);
			if (exact) {
				bool all_free = true;

				for (uint64_t p = start / cs; p < end / cs; p++)
					all_free &= !model[p];
				VT_EQ_INT(r, all_free ? 0 : -ENOSPC);
			} else if (r) {
				if (r != -ENOSPC && r != -EINVAL)
					fprintf(stderr, "  op %u: alloc flags 0x%x pages %llu min %llu: %d\n",
						op, flags, (unsigned long long)pages,
						(unsigned long long)(min / cs), r);
				CU_ASSERT(r == -ENOSPC || r == -EINVAL);
				/* Plain allocations with single-chunk blocks fail only when full. */
				if (!(flags & (VMMFS_BUDDY_RANGE | VMMFS_BUDDY_CONTIGUOUS)) && min == cs)
					CU_ASSERT(nfree < pages);
			}
			if (!r) {
				bool contig = exact || (flags & VMMFS_BUDDY_CONTIGUOUS);

				got = list_bytes(b, &l) / cs;
				if (got != pages && !(flags & VMMFS_BUDDY_TRIM_DISABLE)) {
					fprintf(stderr, "  op %u: %llu pages for %llu (flags 0x%x)\n", op,
						(unsigned long long)got, (unsigned long long)pages, flags);
					CU_FAIL("allocation has the wrong size");
				}
				CHECK_BLOCKS(b, &l, got * cs, contig);
				if (flags & VMMFS_BUDDY_RANGE)
					inside = all_inside(b, &l, start, end);
				CU_ASSERT(inside);
				CU_ASSERT(model_free(model, b, &l));
				model_mark(model, b, &l, 1);
				nfree -= got;
				recs[nrec].l = l;
				recs[nrec++].contiguous = contig;
			}
		}
		VT_EQ_U64(vmmfs_buddy_avail(b), nfree * cs);
		if (!CHECK_MM(b)) {
			fprintf(stderr, "  after operation %u\n", op);
			break;
		}
	}
	while (nrec)
		vmmfs_buddy_free_list(b, &recs[--nrec].l);
	VT_EQ_U64(vmmfs_buddy_avail(b), space);
	VT_EQ_U64(vmmfs_buddy_free_blocks(b), (uint64_t)__builtin_popcountll(chunks));
	CHECK_MM(b);
	vmmfs_buddy_destroy(b);
	free(model);
	free(recs);
}

/* ---- the VRAM owner ----------------------------------------------------- */

static struct vmmfs_vram *mkv(uint64_t size, uint64_t start, uint64_t end)
{
	struct vmmfs_vram *v = NULL;
	int r = vram_create(size, start, end, &v);

	VT_EQ_INT(r, 0);
	CU_ASSERT_FATAL(v != NULL);
	return v;
}

static struct vmmfs_vram_usage usage(struct vmmfs_vram *v)
{
	struct vmmfs_vram_usage u;

	vram_get_usage(v, &u);
	return u;
}

static void test_vram_create(void)
{
	int64_t live = vmmfs_mem_live();
	struct vmmfs_vram *v = NULL;
	struct vmmfs_vram_usage u;

	VT_EQ_INT(vram_create(64 * PS, 0, 65 * PS, &v), -EINVAL);
	VT_EQ_INT(vram_create(64 * PS, 8 * PS, 8 * PS, &v), -EINVAL);
	VT_EQ_INT(vram_create(64 * PS, 1, 8 * PS, &v), -EINVAL);
	CU_ASSERT_PTR_NULL(v);

	v = mkv(64 * PS, 8 * PS, 48 * PS);
	VT_EQ_U64(vram_size(v), 64 * PS);
	u = usage(v);
	VT_EQ_U64(u.total_pages, 40);
	VT_EQ_U64(u.free_pages, 40);
	VT_EQ_U64(u.pt_pages + u.mapped_pages + u.alloc_pages, 0);
	/* Pages below start and above end are never handed out. */
	for (int i = 0; i < 40; i++) {
		uint64_t pa;

		VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
		CU_ASSERT(pa >= 8 * PS && pa < 48 * PS);
	}
	{
		uint64_t pa = 0;

		VT_EQ_INT(vram_alloc_pt(v, &pa), -ENOMEM);
	}
	VT_EQ_U64(usage(v).pt_pages, 40);
	VT_EQ_U64(usage(v).free_pages, 0);
	for (uint64_t p = 8; p < 48; p++)
		vram_free_pt(v, p * PS);
	VT_EQ_U64(usage(v).free_pages, 40);
	vram_destroy(v);

	/* Every creation failure unwinds. */
	for (uint64_t i = 0; i < 6; i++) {
		int r;

		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		v = NULL;
		r = vram_create(64 * PS, 8 * PS, 48 * PS, &v);
		vmmfs_fault_reset();
		CU_ASSERT(r == 0 || r == -ENOMEM);
		if (r)
			CU_ASSERT_PTR_NULL(v);
		vram_destroy(v);
	}
	VT_EQ_INT(vmmfs_mem_live(), live);
}

static uint64_t rss_bytes(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%llu %llu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An 80 GiB board: created at once, host memory only for what is used. */
static void test_vram_80g(void)
{
	const uint64_t size = 80ull << 30;
	uint64_t rss0, rss1, pa, prev = size;
	struct vmmfs_vram *v;
	double t0, t1;

	rss0 = rss_bytes();
	t0 = now_s();
	v = mkv(size, 0, size);
	t1 = now_s();
	rss1 = rss_bytes();
	fprintf(stderr, "\n    80 GiB VRAM owner: created in %.3f ms, RSS +%llu KiB\n",
		(t1 - t0) * 1e3, (unsigned long long)((rss1 > rss0 ? rss1 - rss0 : 0) >> 10));
	CU_ASSERT(t1 - t0 < 0.5);
	CU_ASSERT(rss1 < rss0 + (4ull << 20));
	VT_EQ_U64(usage(v).total_pages, size / PS);

	/* Page tables from the top down; a mapped page far away is fine. */
	for (int i = 0; i < 2000; i++) {
		VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
		VT_EQ_U64(pa, prev - PS);
		prev = pa;
	}
	VT_EQ_INT(vram_ref_run(v, 0, 1), 0);
	VT_EQ_INT(vram_ref_run(v, size / PS - 1, 1), -EACCES);
	VT_EQ_INT(vram_ref_run(v, size / PS, 1), -ERANGE);
	VT_EQ_U64(usage(v).pt_pages, 2000);
	VT_EQ_U64(usage(v).mapped_pages, 1);
	CU_ASSERT(rss_bytes() < rss0 + (8ull << 20));
	vram_unref_run(v, 0, 1);
	for (uint64_t p = prev; p < size; p += PS)
		vram_free_pt(v, p);
	VT_EQ_U64(usage(v).free_pages, size / PS);
	vram_destroy(v);
}

/* A page-table allocation never hands out a mapped page: it parks it and
 * takes the next one; the parked page comes back when unmapped. */
static void test_vram_pt_skips_mapped(void)
{
	const uint64_t n = 64;
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);
	uint64_t pa, pa2;

	/* Map the top three pages (explicit PFNs), one of them twice. */
	VT_EQ_INT(vram_ref_run(v, n - 3, 3), 0);
	VT_EQ_INT(vram_ref_run(v, n - 2, 1), 0);
	VT_EQ_U64(usage(v).mapped_pages, 3);
	VT_EQ_U64(vram_owner(v, n - 2), 2);
	VT_EQ_U64(usage(v).free_pages, n);   /* mapped, yet free in the allocator */

	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
	VT_EQ_U64(pa, (n - 4) * PS);
	CU_ASSERT(vram_is_pt(v, n - 4));
	for (uint64_t p = n - 3; p < n; p++) {
		CU_ASSERT(!vram_is_pt(v, p));
		CU_ASSERT(vram_owner(v, p) & VRAM_OWNER_PARKED);
	}
	VT_EQ_U64(vram_owner(v, n - 2) & VRAM_OWNER_COUNT, 2);
	VT_EQ_U64(usage(v).free_pages, n - 4);   /* 1 page table + 3 parked */
	VT_EQ_U64(usage(v).pt_pages, 1);

	/* Parked pages can still be mapped and unmapped. */
	VT_EQ_INT(vram_ref_run(v, n - 1, 1), 0);
	VT_EQ_U64(vram_owner(v, n - 1), VRAM_OWNER_PARKED | 2);
	vram_unref_run(v, n - 1, 1);
	VT_EQ_U64(vram_owner(v, n - 1), VRAM_OWNER_PARKED | 1);

	/* Last mapping of n-1 goes: it returns to the allocator, and being
	 * the highest free page, is the next page table. */
	vram_unref_run(v, n - 1, 1);
	VT_EQ_U64(vram_owner(v, n - 1), 0);
	VT_EQ_U64(usage(v).free_pages, n - 3);
	VT_EQ_U64(usage(v).mapped_pages, 2);
	VT_EQ_INT(vram_alloc_pt(v, &pa2), 0);
	VT_EQ_U64(pa2, (n - 1) * PS);
	vram_free_pt(v, pa2);
	vram_free_pt(v, pa);

	/* A failed page-table allocation leaves no page parked. */
	VT_EQ_INT(vram_ref_run(v, 10, 1), 0);
	vram_unref_run(v, n - 3, 1);
	vram_unref_run(v, n - 2, 1);
	vram_unref_run(v, n - 2, 1);
	VT_EQ_U64(usage(v).free_pages, n);
	VT_EQ_U64(usage(v).mapped_pages, 1);
	vmmfs_fault_reset();
	vmmfs_fault_fail_all(true);
	VT_EQ_INT(vram_alloc_pt(v, &pa), -ENOMEM);
	vmmfs_fault_fail_all(false);
	vmmfs_fault_reset();
	/* Everything mapped except the parked path: fill with PTs around page 10. */
	for (uint64_t i = 0; i < n - 1; i++) {
		VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
		CU_ASSERT(pa != 10 * PS);
	}
	VT_EQ_U64(vram_owner(v, 10), VRAM_OWNER_PARKED | 1);
	VT_EQ_U64(usage(v).free_pages, 0);
	/* No page left: the failure unparks nothing it did not park. */
	VT_EQ_INT(vram_alloc_pt(v, &pa), -ENOMEM);
	VT_EQ_U64(vram_owner(v, 10), VRAM_OWNER_PARKED | 1);
	for (uint64_t p = 0; p < n; p++)
		if (p != 10)
			vram_free_pt(v, p * PS);
	vram_unref_run(v, 10, 1);
	VT_EQ_U64(usage(v).free_pages, n);
	VT_EQ_U64(usage(v).pt_pages + usage(v).mapped_pages, 0);

	/* With a parked page in the way and no other page, the allocation
	 * fails and unparks what it parked itself. */
	for (uint64_t i = 0; i < n - 1; i++)
		VT_EQ_INT(vram_alloc_pt(v, &pa), 0);      /* all but page 0 */
	VT_EQ_INT(vram_ref_run(v, 0, 1), 0);
	VT_EQ_INT(vram_alloc_pt(v, &pa), -ENOMEM);
	VT_EQ_U64(vram_owner(v, 0), 1);                /* not parked any more */
	VT_EQ_U64(usage(v).free_pages, 1);
	vram_unref_run(v, 0, 1);
	for (uint64_t p = 1; p < n; p++)
		vram_free_pt(v, p * PS);
	VT_EQ_U64(usage(v).free_pages, n);
	vram_destroy(v);
}

static void test_vram_refs(void)
{
	const uint64_t n = 256;
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);
	uint64_t pa, pfns[4];

	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
	VT_EQ_U64(vram_owner(v, pa / PS), VRAM_OWNER_PT);

	/* A page-table page cannot be mapped; all or nothing. */
	VT_EQ_INT(vram_ref_run(v, pa / PS - 2, 3), -EACCES);
	VT_EQ_U64(vram_owner(v, pa / PS - 2), 0);
	VT_EQ_U64(vram_owner(v, pa / PS - 1), 0);
	pfns[0] = 5;
	pfns[1] = 6;
	pfns[2] = pa / PS;
	pfns[3] = 7;
	VT_EQ_INT(vram_ref_pfns(v, pfns, 4), -EACCES);
	VT_EQ_U64(vram_owner(v, 5) | vram_owner(v, 6) | vram_owner(v, 7), 0);
	VT_EQ_U64(usage(v).mapped_pages, 0);

	/* Beyond VRAM: -ERANGE before anything is taken. */
	pfns[2] = n;
	VT_EQ_INT(vram_ref_pfns(v, pfns, 3), -ERANGE);
	VT_EQ_U64(vram_owner(v, 5), 0);
	VT_EQ_INT(vram_ref_run(v, n - 1, 2), -ERANGE);
	VT_EQ_INT(vram_ref_run(v, UINT64_MAX, 2), -ERANGE);
	VT_EQ_INT(vram_ref_run(v, 3, 0), 0);

	/* Counts: the same page twice counts once as mapped. */
	pfns[0] = 5;
	pfns[1] = 5;
	pfns[2] = 9;
	VT_EQ_INT(vram_ref_pfns(v, pfns, 3), 0);
	VT_EQ_U64(vram_owner(v, 5), 2);
	VT_EQ_U64(vram_owner(v, 9), 1);
	VT_EQ_U64(usage(v).mapped_pages, 2);
	VT_EQ_INT(vram_ref_run(v, 4, 3), 0);
	VT_EQ_U64(vram_owner(v, 5), 3);
	VT_EQ_U64(usage(v).mapped_pages, 4);
	vram_unref_run(v, 4, 3);
	vram_unref_run(v, 5, 1);
	VT_EQ_U64(usage(v).mapped_pages, 2);
	vram_unref_run(v, 5, 1);
	vram_unref_run(v, 9, 1);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	VT_EQ_U64(vram_owner(v, 5), 0);
	CU_ASSERT(!vram_is_pt(v, 5));
	CU_ASSERT(!vram_is_pt(v, n + 5));
	VT_EQ_U64(vram_owner(v, n + 5), 0);

	/* A PT page freed can be mapped again. */
	vram_free_pt(v, pa);
	VT_EQ_INT(vram_ref_run(v, pa / PS, 1), 0);
	vram_unref_run(v, pa / PS, 1);
	VT_EQ_U64(usage(v).pt_pages, 0);
	VT_EQ_U64(usage(v).free_pages, n);
	vram_destroy(v);
}

static bool pfns_contiguous(const uint64_t *pfns, uint64_t n)
{
	for (uint64_t i = 1; i < n; i++)
		if (pfns[i] != pfns[0] + i)
			return false;
	return true;
}

static void test_vram_alloc_pages(void)
{
	const uint64_t n = 8192;                 /* 32 MiB */
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);
	uint64_t *pfns = calloc(n, sizeof(*pfns)), *more = calloc(n, sizeof(*more));
	uint64_t pa;

	CU_ASSERT_FATAL(pfns && more);
	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);     /* page tables at the top */

	/* 1000 pages: one run, aligned to 1024 pages (4 MiB), owner words 0. */
	VT_EQ_INT(vram_alloc_pages(v, 1000, pfns), 0);
	CU_ASSERT(pfns_contiguous(pfns, 1000));
	VT_EQ_U64(pfns[0] % 1024, 0);
	VT_EQ_U64(vram_owner(v, pfns[0]), 0);
	VT_EQ_U64(usage(v).alloc_pages, 1000);
	VT_EQ_U64(usage(v).free_pages, n - 1001);
	/* 3 pages: contiguous too. */
	VT_EQ_INT(vram_alloc_pages(v, 3, more), 0);
	CU_ASSERT(pfns_contiguous(more, 3));
	vram_free_pages(v, more, 3);
	vram_free_pages(v, pfns, 1000);
	VT_EQ_U64(usage(v).alloc_pages, 0);
	VT_EQ_U64(usage(v).free_pages, n - 1);

	/* Fragment: one page held in every 4 MiB, so no 4 MiB run exists.
	 * 1536 pages (6 MiB) then come as 2 MiB-aligned 2 MiB runs. */
	for (uint64_t p = 0; p < n - 1; p++) {
		VT_EQ_INT(vram_alloc_pages(v, 1, &more[p]), 0);
		VT_EQ_U64(more[p], p);                 /* lowest first */
	}
	for (uint64_t p = 0; p < n - 1; p++)
		if (p % 1024)
			vram_free_pages(v, &more[p], 1);
	VT_EQ_U64(usage(v).alloc_pages, 8);
	{
		uint64_t hold[8];

		for (int i = 0; i < 8; i++)
			hold[i] = more[i * 1024];
		VT_EQ_INT(vram_alloc_pages(v, 1536, pfns), 0);
		for (uint64_t i = 0; i < 1536; i += 512) {
			VT_EQ_U64(pfns[i] % 512, 0);
			CU_ASSERT(pfns_contiguous(pfns + i, 512));
		}
		vram_free_pages(v, pfns, 1536);
		/* 1000 pages: 512 aligned + 488 more. */
		VT_EQ_INT(vram_alloc_pages(v, 1000, pfns), 0);
		VT_EQ_U64(pfns[0] % 512, 0);
		CU_ASSERT(pfns_contiguous(pfns, 512));
		vram_free_pages(v, pfns, 1000);
		for (int i = 0; i < 8; i++)
			vram_free_pages(v, &hold[i], 1);
	}
	VT_EQ_U64(usage(v).free_pages, n - 1);

	/* Mapped pages inside the run are skipped (parked), not zeroed by
	 * their new owner. */
	VT_EQ_INT(vram_ref_run(v, 1, 1), 0);
	VT_EQ_INT(vram_ref_run(v, 700, 2), 0);
	VT_EQ_INT(vram_alloc_pages(v, 1024, pfns), 0);
	for (uint64_t i = 0; i < 1024; i++) {
		CU_ASSERT(pfns[i] != 1 && pfns[i] != 700 && pfns[i] != 701);
		VT_EQ_U64(vram_owner(v, pfns[i]), 0);
	}
	VT_EQ_U64(vram_owner(v, 700), VRAM_OWNER_PARKED | 1);
	VT_EQ_U64(usage(v).free_pages, n - 1 - 1024 - 3);
	VT_EQ_U64(usage(v).alloc_pages, 1024);
	vram_free_pages(v, pfns, 1024);
	vram_unref_run(v, 1, 1);
	vram_unref_run(v, 700, 2);
	VT_EQ_U64(usage(v).free_pages, n - 1);

	/* Failures: -ENOMEM, nothing taken, nothing parked. */
	VT_EQ_INT(vram_alloc_pages(v, n, pfns), -ENOMEM);
	VT_EQ_INT(vram_ref_run(v, 3, 1), 0);
	for (uint64_t k = 0; k < 3; k++) {
		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(k);
		VT_EQ_INT(vram_alloc_pages(v, 100, pfns), -ENOMEM);
		vmmfs_fault_reset();
		VT_EQ_U64(usage(v).free_pages, n - 1);
		VT_EQ_U64(usage(v).alloc_pages, 0);
		VT_EQ_U64(vram_owner(v, 3), 1);
	}
	vram_unref_run(v, 3, 1);
	VT_EQ_INT(vram_alloc_pages(v, 0, pfns), 0);

	vram_free_pt(v, pa);
	VT_EQ_U64(usage(v).free_pages, n);
	vram_destroy(v);
	free(pfns);
	free(more);
}

/* Owner memory that is resident (host pages touched). */
static uint64_t owner_resident(struct vmmfs_vram *v)
{
	uint64_t reserved, resident;

	vram_owner_bytes(v, &reserved, &resident);
	return resident;
}

/* Runs that cover whole 2 MiB chunks are counted in one word per chunk;
 * the chunks at a run's ends, page tables and parked pages per page. The
 * counts and usage are the same either way. */
static void test_vram_chunks(void)
{
	const uint64_t n = 8 * 512 + 12;          /* 8 chunks and a short one */
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);
	uint64_t pa, pfns[6];
	struct vram_batch b;

	/* whole chunks, then a run inside one of them: it splits */
	VT_EQ_INT(vram_ref_run(v, 512, 3 * 512), 0);
	VT_EQ_U64(usage(v).mapped_pages, 3 * 512);
	VT_EQ_INT(vram_ref_run(v, 600, 10), 0);
	VT_EQ_U64(vram_owner(v, 599), 1);
	VT_EQ_U64(vram_owner(v, 600), 2);
	VT_EQ_U64(vram_owner(v, 609), 2);
	VT_EQ_U64(vram_owner(v, 610), 1);
	VT_EQ_U64(usage(v).mapped_pages, 3 * 512);
	/* a whole-chunk drop over a split chunk and over uniform ones */
	vram_unref_run(v, 512, 3 * 512);
	VT_EQ_U64(vram_owner(v, 599), 0);
	VT_EQ_U64(vram_owner(v, 605), 1);
	VT_EQ_U64(vram_owner(v, 1100), 0);
	VT_EQ_U64(usage(v).mapped_pages, 10);
	vram_unref_run(v, 600, 10);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	/* the chunk is whole again: a whole-chunk reference works as before */
	VT_EQ_INT(vram_ref_run(v, 512, 512), 0);
	VT_EQ_U64(vram_owner(v, 605), 1);
	vram_unref_run(v, 512, 512);

	/* unaligned runs straddling chunks, the same page in two runs of one batch */
	vram_batch_begin(v, &b);
	VT_EQ_INT(vram_batch_ref(&b, 500, 600), 0);
	VT_EQ_INT(vram_batch_ref(&b, 510, 1), 0);
	VT_EQ_INT(vram_batch_ref(&b, 3000, 2), 0);
	vram_batch_unref(&b, 3001, 1);
	VT_EQ_U64(usage(v).mapped_pages, 0);      /* applied at the end, once */
	vram_batch_end(&b);
	VT_EQ_U64(usage(v).mapped_pages, 601);
	VT_EQ_U64(vram_owner(v, 510), 2);
	VT_EQ_U64(vram_owner(v, 1099), 1);
	VT_EQ_U64(vram_owner(v, 1100), 0);
	VT_EQ_U64(vram_owner(v, 3001), 0);
	vram_unref_run(v, 500, 600);
	vram_unref_run(v, 510, 1);
	vram_unref_run(v, 3000, 1);
	VT_EQ_U64(usage(v).mapped_pages, 0);

	/* the short last chunk */
	VT_EQ_INT(vram_ref_run(v, n - 12, 12), 0);
	VT_EQ_INT(vram_ref_run(v, n - 12, 13), -ERANGE);
	VT_EQ_U64(vram_owner(v, n - 1), 1);
	VT_EQ_U64(usage(v).mapped_pages, 12);
	vram_unref_run(v, n - 12, 12);
	VT_EQ_U64(vram_owner(v, n - 1), 0);

	/* a page table inside a whole run: -EACCES, nothing kept, even in
	 * the chunks before it that were taken whole */
	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
	VT_EQ_U64(pa / PS, n - 1);
	vram_free_pt(v, pa);
	for (uint64_t i = 0; i < 12; i++) {
		VT_EQ_INT(vram_alloc_pt(v, &pa), 0);     /* the short chunk first */
		CU_ASSERT(pa / PS >= n - 12);
	}
	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
	VT_EQ_U64(pa / PS, 8 * 512 - 1);              /* then the top of chunk 7 */
	VT_EQ_INT(vram_ref_run(v, 0, 8 * 512), -EACCES);
	for (uint64_t p = 0; p < 8 * 512 - 1; p += 97)
		VT_EQ_U64(vram_owner(v, p), 0);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	VT_EQ_INT(vram_ref_run(v, 0, 7 * 512), 0);
	VT_EQ_U64(usage(v).mapped_pages, 7 * 512);
	vram_unref_run(v, 0, 7 * 512);
	vram_free_pt(v, pa);
	for (uint64_t p = n - 12; p < n; p++)
		vram_free_pt(v, p * PS);

	/* PFN lists: out of range wins over a page table, all or nothing */
	VT_EQ_INT(vram_alloc_pt(v, &pa), 0);
	pfns[0] = 1;
	pfns[1] = 2;
	pfns[2] = pa / PS;
	pfns[3] = 4;
	pfns[4] = n;
	VT_EQ_INT(vram_ref_pfns(v, pfns, 5), -ERANGE);
	VT_EQ_INT(vram_ref_pfns(v, pfns, 4), -EACCES);
	VT_EQ_U64(vram_owner(v, 1) | vram_owner(v, 2) | vram_owner(v, 4), 0);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	vram_free_pt(v, pa);

	VT_EQ_U64(usage(v).free_pages, n);
	VT_EQ_U64(usage(v).pt_pages, 0);
	vram_destroy(v);
}

/* VRAM_MAP_MAX mappings of a page, whole chunk or single pages; one more
 * fails with -EOVERFLOW and takes nothing. */
static void test_vram_overflow(void)
{
	const uint64_t n = 4 * 512;
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);

	for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
		if (vram_ref_run(v, 512, 512))
			break;
	VT_EQ_U64(vram_owner(v, 700), VRAM_MAP_MAX);
	VT_EQ_INT(vram_ref_run(v, 512, 512), -EOVERFLOW);
	VT_EQ_INT(vram_ref_run(v, 700, 1), -EOVERFLOW);
	VT_EQ_INT(vram_ref_run(v, 500, 20), -EOVERFLOW);  /* straddles: all or nothing */
	VT_EQ_U64(vram_owner(v, 500), 0);
	VT_EQ_U64(vram_owner(v, 511), 0);
	VT_EQ_U64(vram_owner(v, 512), VRAM_MAP_MAX);
	VT_EQ_U64(usage(v).mapped_pages, 512);
	/* one page fewer: that page can take one more, the others not */
	vram_unref_run(v, 700, 1);
	VT_EQ_INT(vram_ref_run(v, 700, 1), 0);
	VT_EQ_INT(vram_ref_run(v, 700, 1), -EOVERFLOW);
	for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
		vram_unref_run(v, 512, 512);
	VT_EQ_U64(vram_owner(v, 700), 0);
	VT_EQ_U64(usage(v).mapped_pages, 0);

	/* the same with a single page, counted in its page word */
	for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
		if (vram_ref_run(v, 3, 1))
			break;
	VT_EQ_INT(vram_ref_run(v, 3, 1), -EOVERFLOW);
	VT_EQ_U64(vram_owner(v, 3), VRAM_MAP_MAX);
	for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
		vram_unref_run(v, 3, 1);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	vram_destroy(v);
}

/* Host memory of the owner arrays: a contiguous run touches one word per
 * 2 MiB (and the page words of its two end chunks), scattered pages the
 * page words of their chunks, 2 bytes a page. */
static void test_vram_owner_memory(void)
{
	const uint64_t size = 80ull << 30, pages = size / PS;
	struct vmmfs_vram *v = mkv(size, 0, size);
	uint64_t reserved, r0, r1, r2;

	vram_owner_bytes(v, &reserved, &r0);
	CU_ASSERT(reserved >= pages * 2 && reserved <= pages * 2 + (1ull << 20));
	CU_ASSERT(r0 <= 8192);
	/* 4 GiB contiguous, not 2 MiB aligned at either end */
	VT_EQ_INT(vram_ref_run(v, 12345, 1ull << 20), 0);
	r1 = owner_resident(v);
	printf("\n    owner arrays: %llu MiB reserved for 80 GiB; 1M contiguous pages: %llu KiB "
	       "resident", (unsigned long long)(reserved >> 20), (unsigned long long)((r1 - r0) >> 10));
	CU_ASSERT(r1 - r0 <= 6 * 4096);            /* 2048 chunk words + 2 end chunks */
	/* 64K scattered pages (every 8th) */
	for (uint64_t i = 0; i < 65536; i++)
		VT_EQ_INT(vram_ref_run(v, (2ull << 20) + 8 * i, 1), 0);
	r2 = owner_resident(v);
	printf("; 64K scattered pages: %llu KiB\n", (unsigned long long)((r2 - r1) >> 10));
	CU_ASSERT(r2 - r1 <= 8 * 65536 * 2 + 8192);  /* 2 bytes a page spanned */
	VT_EQ_U64(usage(v).mapped_pages, (1ull << 20) + 65536);
	for (uint64_t i = 0; i < 65536; i++)
		vram_unref_run(v, (2ull << 20) + 8 * i, 1);
	vram_unref_run(v, 12345, 1ull << 20);
	VT_EQ_U64(usage(v).mapped_pages, 0);
	vram_destroy(v);
}

/* Threads taking and dropping references on overlapping runs (whole
 * chunks, chunk ends, single pages) while others allocate and free page
 * tables in the same chunks: counts stay exact, no page table is ever
 * mapped, a page is never both. */
struct vthr {
	struct vmmfs_vram *v;
	uint64_t seed, n;
	int kind;           /* 0 references, 1 page tables */
	int bad;
};

static uint64_t vthr_rand(struct vthr *t)
{
	t->seed ^= t->seed << 13;
	t->seed ^= t->seed >> 7;
	t->seed ^= t->seed << 17;
	return t->seed;
}

static void *vthr_main(void *arg)
{
	struct vthr *t = arg;
	uint64_t held[64][2], nheld = 0, pts[32], npts = 0;

	for (int it = 0; it < 4000; it++) {
		if (t->kind == 1) {
			uint64_t pa;

			if (npts < 32 && vthr_rand(t) % 2 == 0) {
				if (!vram_alloc_pt(t->v, &pa)) {
					pts[npts++] = pa;
					if (!vram_is_pt(t->v, pa / PS))
						t->bad++;
				}
			} else if (npts) {
				uint64_t k = vthr_rand(t) % npts;

				vram_free_pt(t->v, pts[k]);
				pts[k] = pts[--npts];
			}
			continue;
		}
		if (nheld < 64 && vthr_rand(t) % 3) {
			uint64_t kind = vthr_rand(t) % 3, first, count;
			int r;

			if (kind == 0) {         /* whole chunks */
				first = (vthr_rand(t) % (t->n / 512 - 2)) * 512;
				count = 512 * (1 + vthr_rand(t) % 2);
			} else if (kind == 1) {  /* across a chunk boundary */
				first = (1 + vthr_rand(t) % (t->n / 512 - 2)) * 512 - 1 - vthr_rand(t) % 100;
				count = 2 + vthr_rand(t) % 200;
			} else {
				first = vthr_rand(t) % t->n;
				count = 1;
			}
			r = vram_ref_run(t->v, first, count);
			if (!r) {
				held[nheld][0] = first;
				held[nheld][1] = count;
				nheld++;
				for (uint64_t p = first; p < first + count; p += 37) {
					uint32_t w = vram_owner(t->v, p);

					if (w == VRAM_OWNER_PT || !(w & VRAM_OWNER_COUNT))
						t->bad++;
				}
			} else if (r != -EACCES) {
				t->bad++;
			}
		} else if (nheld) {
			uint64_t k = vthr_rand(t) % nheld;

			vram_unref_run(t->v, held[k][0], held[k][1]);
			held[k][0] = held[nheld - 1][0];
			held[k][1] = held[nheld - 1][1];
			nheld--;
		}
	}
	while (nheld--)
		vram_unref_run(t->v, held[nheld][0], held[nheld][1]);
	while (npts--)
		vram_free_pt(t->v, pts[npts]);
	return NULL;
}

static void test_vram_threads(void)
{
	const uint64_t n = 16 * 512;
	struct vmmfs_vram *v = mkv(n * PS, 0, n * PS);
	struct vthr t[4];
	pthread_t th[4];
	uint64_t seed = vt_seed("vram threads");

	for (int i = 0; i < 4; i++) {
		t[i] = (struct vthr){ .v = v, .seed = (seed + (uint64_t)i * 0x9e3779b97f4a7c15ull) | 1,
				      .n = n, .kind = i == 3 };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, vthr_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		VT_EQ_INT(t[i].bad, 0);
	}
	VT_EQ_U64(usage(v).mapped_pages, 0);
	VT_EQ_U64(usage(v).pt_pages, 0);
	VT_EQ_U64(usage(v).free_pages, n);
	for (uint64_t p = 0; p < n; p++)
		if (vram_owner(v, p)) {
			VT_EQ_U64(vram_owner(v, p), 0);
			break;
		}
	vram_destroy(v);
}

/* Randomised: page tables, alloc= pages and mappings interleaved; a page
 * table is never a mapped page, counters stay exact. */
static void test_vram_soak(void)
{
	const uint64_t n = 2048;
	struct vmmfs_vram *v = mkv(n * PS, 16 * PS, n * PS);
	uint32_t *refs = calloc(n, sizeof(*refs));
	uint8_t *kind = calloc(n, 1);       /* 1 page table, 2 alloc= */
	uint64_t *pfns = calloc(n, sizeof(*pfns));
	uint64_t pts = 0, allocs = 0;

	CU_ASSERT_FATAL(refs && kind && pfns);
	vt_seed("vram soak");
	for (int op = 0; op < 3000; op++) {
		uint64_t r = vt_rand_below(6), p = vt_rand_below(n), pa, mapped = 0;

		if (r == 0) {
			if (vram_alloc_pt(v, &pa) == 0) {
				CU_ASSERT(kind[pa / PS] == 0 && refs[pa / PS] == 0 && pa >= 16 * PS);
				kind[pa / PS] = 1;
				pts++;
			}
		} else if (r == 1) {
			if (kind[p] == 1) {
				vram_free_pt(v, p * PS);
				kind[p] = 0;
				pts--;
			}
		} else if (r == 2) {
			uint64_t cnt = 1 + vt_rand_below(40);

			if (vram_alloc_pages(v, cnt, pfns) == 0) {
				for (uint64_t i = 0; i < cnt; i++) {
					CU_ASSERT(kind[pfns[i]] == 0 && refs[pfns[i]] == 0);
					kind[pfns[i]] = 2;
				}
				/* give them back at once, as whole runs */
				vram_free_pages(v, pfns, cnt);
				for (uint64_t i = 0; i < cnt; i++)
					kind[pfns[i]] = 0;
				allocs++;
			}
		} else if (r == 3 || r == 4) {
			int e = vram_ref_run(v, p, 1);

			VT_EQ_INT(e, kind[p] == 1 ? -EACCES : 0);
			if (!e)
				refs[p]++;
		} else if (refs[p]) {
			vram_unref_run(v, p, 1);
			refs[p]--;
		}
		for (uint64_t i = 0; i < n; i++)
			mapped += refs[i] != 0;
		VT_EQ_U64(usage(v).pt_pages, pts);
		VT_EQ_U64(usage(v).mapped_pages, mapped);
		VT_EQ_U64(usage(v).alloc_pages, 0);
	}
	for (uint64_t i = 0; i < n; i++) {
		if (kind[i] == 1)
			vram_free_pt(v, i * PS);
		for (; refs[i]; refs[i]--)
			vram_unref_run(v, i, 1);
	}
	VT_EQ_U64(usage(v).free_pages, n - 16);
	VT_EQ_U64(usage(v).pt_pages + usage(v).mapped_pages, 0);
	CU_ASSERT(allocs > 0);
	vram_destroy(v);
	free(refs);
	free(kind);
	free(pfns);
}

static void register_tests(void)
{
	static const struct vt_test buddy[] = {
		{ "create", test_create },
		{ "invalid arguments", test_alloc_einval },
		{ "limit", test_limit },
		{ "optimistic", test_optimistic },
		{ "pessimistic", test_pessimistic },
		{ "pathological", test_pathological },
		{ "simple placement", test_simple_placement },
		{ "contiguous", test_contiguous },
		{ "range", test_range },
		{ "exact range", test_exact_range },
		{ "topdown", test_topdown },
		{ "bottomup", test_bottomup },
		{ "taking from both ends of a large free tree", test_tree_ends },
		{ "trim", test_trim },
		{ "min block size", test_min_block_size },
		{ "free merges", test_free_merges },
		{ "destroy reports leaks", test_destroy_leaks },
		{ "checker catches corruption", test_check_detects },
		{ "all or nothing", test_all_or_nothing },
		{ "soak", test_soak },
		{ NULL, NULL },
	};
	static const struct vt_test vram[] = {
		{ "create", test_vram_create },
		{ "80 GiB", test_vram_80g },
		{ "page tables skip mapped pages", test_vram_pt_skips_mapped },
		{ "references", test_vram_refs },
		{ "alloc pages", test_vram_alloc_pages },
		{ "chunks", test_vram_chunks },
		{ "overflow", test_vram_overflow },
		{ "owner memory", test_vram_owner_memory },
		{ "threads", test_vram_threads },
		{ "soak", test_vram_soak },
		{ NULL, NULL },
	};

	vt_add_suite("buddy", buddy);
	vt_add_suite("vram", vram);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
