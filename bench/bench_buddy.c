/* SPDX-License-Identifier: MIT */
/*
 * bench_buddy: the buddy allocator on a fragmented pool and on a fresh one
 * (issue 6, item 8), and its host memory per block.
 *
 *   bench_buddy [CHUNKS]     default 20M chunks: an 80 GiB VRAM of 4 KiB pages
 *
 * A round is CHUNKS/4 single-chunk allocations (Simple: highest first, as
 * page tables are taken) followed by their frees in the same order; it
 * leaves its pool as it found it.
 *   (b) fragmented: every chunk allocated, a random half freed; rounds.
 *   (a) fresh: the same pool after the other half is freed too (every
 *       buddy merged again, the state of a new pool); rounds.
 *   (a0) a new pool on an untouched heap, measured first: its nodes come
 *       out of malloc in address order, which no long-lived pool has; shown
 *       for information.
 *   (c) host memory per allocated block with every chunk allocated: heap
 *       bytes in use (glibc's mallinfo2, heap headers included), or the
 *       growth of resident memory elsewhere.
 * Target: (b) costs at most twice (a). (a) and (b) use the same pool in the
 * same heap, so the ratio is the allocator's, not the heap layout's.
 * Each pool gets ROUNDS rounds and its fastest counts, in this thread's CPU
 * time, so other processes on the machine do not skew it. BENCH_SEED=N
 * repeats the random pattern.
 *
 * Build alone: gcc -O2 -std=gnu11 -Iinclude -Icore -I. bench/bench_buddy.c \
 *   core/buddy.c core/buddy_check.c core/mem.c core/log.c -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define HAVE_MALLINFO2 1
#include <malloc.h>
#endif
#include <vmmfs/vmmfs.h>
#include <vmmfs/buddy.h>
#include "buddy_priv.h"
#include "bench.h"

#define CHUNK 4096ull
#define ROUNDS 3

/* Heap bytes in use (glibc), 0 when unknown (other libcs, or a sanitizer
 * that replaces malloc). */
static uint64_t heap_bytes(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_buddy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static struct vmmfs_buddy *pool(uint64_t chunks)
{
	struct vmmfs_buddy *b;
	int r = vmmfs_buddy_create(chunks * CHUNK, CHUNK, &b);

	if (r)
		die("cannot create a pool of %llu chunks: %s", (unsigned long long)chunks, strerror(-r));
	return b;
}

/* n single-chunk allocations (Simple: highest offset first) into blk[]. */
static double alloc_singles(struct vmmfs_buddy *b, uint64_t n, struct vmmfs_buddy_block **blk)
{
	uint64_t size = vmmfs_buddy_size(b);
	double t0 = bench_cpu_now();

	for (uint64_t i = 0; i < n; i++) {
		struct vmmfs_buddy_list l = VMMFS_BUDDY_LIST_INIT;
		int r = vmmfs_buddy_alloc(b, 0, size, CHUNK, CHUNK, 0, &l);

		if (r)
			die("allocation %llu of %llu failed: %s", (unsigned long long)i,
			    (unsigned long long)n, strerror(-r));
		blk[i] = l.head;
	}
	return bench_cpu_now() - t0;
}

static double free_singles(struct vmmfs_buddy *b, uint64_t n, struct vmmfs_buddy_block **blk)
{
	double t0 = bench_cpu_now();

	for (uint64_t i = 0; i < n; i++)
		vmmfs_buddy_free_block(b, blk[i]);
	return bench_cpu_now() - t0;
}

struct phase {
	struct vmmfs_buddy *b;
	struct vmmfs_buddy_block **blk;   /* room for ops pointers */
	uint64_t avail;
	double alloc_s, free_s;          /* best so far */
};

/* One round: ops allocations, then their frees in the same order. */
static void round_once(struct phase *p, uint64_t ops)
{
	double a = alloc_singles(p->b, ops, p->blk), f = free_singles(p->b, ops, p->blk);

	if (vmmfs_buddy_avail(p->b) != p->avail)
		die("free space differs after a round: 0x%llx, was 0x%llx",
		    (unsigned long long)vmmfs_buddy_avail(p->b), (unsigned long long)p->avail);
	p->alloc_s = a < p->alloc_s ? a : p->alloc_s;
	p->free_s = f < p->free_s ? f : p->free_s;
}

static void run_rounds(struct phase *p, uint64_t ops)
{
	p->avail = vmmfs_buddy_avail(p->b);
	p->alloc_s = p->free_s = 1e30;
	for (int round = 0; round < ROUNDS; round++)
		round_once(p, ops);
}

int main(int argc, char **argv)
{
	uint64_t chunks = bench_parse_size(argc > 1 ? argv[1] : NULL, 20ull << 20);
	uint64_t seed = bench_seed(), rng, ops, mem0, mem1, rss0, rss1, frag_free_blocks, kept, want, i;
	struct phase pristine, frag, fresh;
	double t_fill, t_half, t0;
	struct vmmfs_buddy_block **blk;
	struct vmmfs_buddy *b;
	char title[200];

	if (argc > 2 || chunks < 64 || chunks > (1ull << 40))
		die("usage: bench_buddy [CHUNKS]   (64..2^40 chunks of 4 KiB, e.g. 20M; default 20M)");
	vmmfs_log_set_stderr_level(VMMFS_LOG_ERROR);
	ops = chunks / 4;
	rng = seed;
	blk = malloc(chunks * sizeof(*blk));
	if (!blk)
		die("no memory for %llu block pointers", (unsigned long long)chunks);
	memset(blk, 0, chunks * sizeof(*blk));
	snprintf(title, sizeof(title), "buddy allocator: %llu chunks of 4 KiB (%.1f GiB), %llu "
		 "single-chunk operations per round, best of %d rounds, seed %llu",
		 (unsigned long long)chunks, (double)(chunks * CHUNK) / (1u << 30),
		 (unsigned long long)ops, ROUNDS, (unsigned long long)seed);

	/* (a0) a new pool on an untouched heap */
	pristine.b = pool(chunks);
	pristine.blk = blk;
	run_rounds(&pristine, ops);
	vmmfs_buddy_destroy(pristine.b);

	/* (b) fill, then free a random half: selection sampling (exactly half,
	 * uniformly), visited in address order; the order of the frees does not
	 * change the resulting pool. */
	b = pool(chunks);
	rss0 = bench_rss();             /* before: reading it uses the heap */
	mem0 = heap_bytes();
	t0 = bench_cpu_now();
	alloc_singles(b, chunks, blk);
	t_fill = bench_cpu_now() - t0;
	mem1 = heap_bytes();
	rss1 = bench_rss();
	if (mem1 <= mem0) {             /* no heap figure: resident memory instead */
		mem0 = rss0;
		mem1 = rss1;
	}
	t0 = bench_cpu_now();
	want = chunks / 2;
	for (i = 0, kept = 0; i < chunks; i++) {
		if (bench_rand(&rng) % (chunks - i) < want) {
			vmmfs_buddy_free_block(b, blk[i]);
			want--;
		} else {
			blk[kept++] = blk[i];
		}
	}
	t_half = bench_cpu_now() - t0;
	frag_free_blocks = vmmfs_buddy_free_blocks(b);
	if (vmmfs_buddy_avail(b) != (chunks / 2) * CHUNK || kept != chunks - chunks / 2)
		die("fragmented pool has the wrong free space");
	frag.b = b;
	frag.blk = blk + kept;           /* free room: chunks / 2 >= ops slots */
	run_rounds(&frag, ops);

	/* (a) the same pool, fresh again */
	free_singles(b, kept, blk);
	if (vmmfs_buddy_free_blocks(b) != (uint64_t)__builtin_popcountll(chunks) ||
	    vmmfs_buddy_check(b, NULL, 0))
		die("pool not whole again after freeing everything");
	fresh.b = b;
	fresh.blk = blk;
	run_rounds(&fresh, ops);
	vmmfs_buddy_destroy(b);

	bench_table_begin(title);
	bench_row("alloc 1 chunk: fragmented vs fresh pool", frag.alloc_s / ops * 1e9,
		  fresh.alloc_s / ops * 1e9, "ns", BENCH_RATIO_AT_MOST(2));
	bench_row("free 1 chunk: fragmented vs fresh pool", frag.free_s / ops * 1e9,
		  fresh.free_s / ops * 1e9, "ns", BENCH_RATIO_AT_MOST(2));
	bench_row("alloc+free: fragmented vs fresh pool", (frag.alloc_s + frag.free_s) / ops * 1e9,
		  (fresh.alloc_s + fresh.free_s) / ops * 1e9, "ns", BENCH_RATIO_AT_MOST(2));
	bench_row("alloc+free: fragmented vs new pool, new heap",
		  (frag.alloc_s + frag.free_s) / ops * 1e9,
		  (pristine.alloc_s + pristine.free_s) / ops * 1e9, "ns", BENCH_NO_TARGET);
	bench_row("host memory per allocated block", (double)(mem1 > mem0 ? mem1 - mem0 : 0) /
		  (double)chunks, (double)sizeof(struct vmmfs_buddy_block), "B", BENCH_AT_MOST(64));
	bench_note("fresh = the same pool with everything freed again; new pool, new heap = "
		   "a pool made first, whose nodes malloc hands out in address order");
	bench_note("memory reference: the block node itself (%zu bytes); the rest is the heap's "
		   "own header and rounding", sizeof(struct vmmfs_buddy_block));
	bench_note("setup: %llu single-chunk allocations at %.1f ns each; a random half freed at "
		   "%.1f ns each, leaving %llu free blocks", (unsigned long long)chunks,
		   t_fill / chunks * 1e9, t_half / (chunks / 2) * 1e9,
		   (unsigned long long)frag_free_blocks);
	free(blk);
	return bench_finish("bench_buddy");
}
