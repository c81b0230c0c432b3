/* SPDX-License-Identifier: MIT */
/*
 * The GPU-wide owner of VRAM pages (core/vram.h).
 *
 * The buddy covers [0, end) with offsets equal to physical addresses, so
 * its alignment is physical alignment (a 2 MiB block is a 2 MiB-aligned
 * page run, usable as a big page); [0, start) is allocated once at create
 * and never handed out.
 *
 * Ownership words (vram.h): one 32-bit word per 2 MiB chunk, uniform or
 * split, and a word per page for split chunks: 4 bits (narrow), or those 4
 * bits and 12 more (wide, CW_WIDE in the chunk word). How a chunk word
 * changes:
 *
 *   uniform k -> k +/- 1     a reference on, or the drop of, a run that
 *                            covers the whole chunk (one CAS)
 *   uniform k -> LOCKED      a caller that needs the page words: it stores
 *                            k into all 512 of them first (narrow when k
 *                            fits in 4 bits, else wide)
 *   SPLIT|n   -> LOCKED      the same, the words are already right; the
 *                            holder turns narrow words wide (all 512 of
 *                            them) when a page needs a value they lack
 *   LOCKED    -> SPLIT|n     done; n = non-zero page words, counted by the
 *                            lock holder
 *   LOCKED    -> uniform k   done, and every page word is k (n = 0, or
 *                            n = 512 with equal plain counts): the chunk
 *                            is uniform again
 * While a chunk is LOCKED only its holder touches its page words, with plain
 * stores (two narrow words share a byte and two wide ones 3 bytes, always
 * of the same chunk); readers that do not change anything (vram_owner, the scan of
 * vram_alloc_pages) read them without the lock. The words of a uniform
 * chunk are stale and never read. The last chunk of a board that is not a
 * 2 MiB multiple is never made uniform (its missing pages would count).
 *
 * The chunk lock is a leaf: its holder only loads and stores page words,
 * never waits for another lock, never allocates and never calls out; it
 * holds one chunk at a time. A batch keeps the chunk it
 * last changed locked until it moves to another chunk or ends, so the
 * holder may also be the caller's own loop between two batch calls, which
 * in vmmfs only walks its PFN array. A buddy operation (under v->lock) may
 * take a chunk lock; nothing takes v->lock while holding one.
 *
 * Locking: v->lock guards the buddy. ref/unref take chunk locks only,
 * except that the unref that drops the last mapping of a parked page takes
 * v->lock (after unlocking its chunk) to give the page back.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vmmfs/vmmfs.h>
#include "internal.h"
#include "mem.h"
#include "vram.h"
#include "buddy_priv.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define CHUNK_SHIFT 9                  /* pages per chunk: 512 (2 MiB) */
#define CHUNK_PAGES (1u << CHUNK_SHIFT)
#define PAGES_2M CHUNK_PAGES

#define CW_SPLIT 0x80000000u
#define CW_LOCKED 0x40000000u
#define CW_WIDE 0x20000000u            /* split: the wide words are authoritative */
#define CW_COUNT 0x1fffffffu

/* A page word's value, and the wide words' encoding */
#define PW_PT 0xffffu
#define PW_PARKED 0x8000u
#define PW_COUNT 0x7fffu

/* Narrow words: 4 bits; anything else makes the chunk wide */
#define NW_MAX 12u                     /* plain counts 1..12 */
#define NW_PARKED1 13u                 /* parked, mapped once */
#define NW_PT 15u                      /* (14 is never stored) */

#define NO_CHUNK UINT64_MAX

struct vmmfs_vram {
	pthread_mutex_t lock;             /* guards buddy */
	struct vmmfs_buddy *buddy;        /* [0, end), offset = physical address */
	struct vmmfs_buddy_list reserved; /* [0, start) */
	uint64_t vram_size, start, end, pages;
	uint64_t chunks, full_chunks;     /* all chunks; those with 512 pages */
	_Atomic uint32_t *chunk;          /* chunks words */
	uint8_t *narrow;                  /* 4-bit page words, two per byte */
	uint8_t *high;                    /* wide words' upper 12 bits, two per 3 bytes */
	void *map;                        /* all three arrays */
	size_t map_bytes;
	atomic_uint_fast64_t pt_pages, mapped_pages, alloc_pages, parked_pages;
};

int vram_create(uint64_t vram_size, uint64_t start, uint64_t end, struct vmmfs_vram **out)
{
	struct vmmfs_vram *v;
	size_t chunk_bytes, narrow_bytes, high_bytes;
	long host_page = sysconf(_SC_PAGESIZE);
	void *map;
	int r = -ENOMEM;

	if (!out || !vram_size || start >= end || end > vram_size ||
	    !IS_ALIGNED(vram_size | start | end, PAGE_SIZE))
		return -EINVAL;
	v = vmmfs_calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->vram_size = vram_size;
	v->start = start;
	v->end = end;
	v->pages = vram_size >> PAGE_SHIFT;
	v->chunks = (v->pages + CHUNK_PAGES - 1) >> CHUNK_SHIFT;
	v->full_chunks = v->pages >> CHUNK_SHIFT;
	chunk_bytes = ALIGN_UP((size_t)v->chunks * sizeof(uint32_t), 64);
	narrow_bytes = ALIGN_UP((size_t)v->chunks * (CHUNK_PAGES / 2), 64);
	high_bytes = (size_t)v->chunks * (CHUNK_PAGES / 2 * 3);
	v->map_bytes = ALIGN_UP(chunk_bytes + narrow_bytes + high_bytes,
				(size_t)(host_page > 0 ? host_page : 4096));
	if (pthread_mutex_init(&v->lock, NULL))
		goto out_free;

	/* The owner arrays are an allocation too: let tests fail it. Charged
	 * to the commit limit now, no MAP_NORESERVE (vram.h "Memory"). */
	if (vmmfs_fault_point())
		goto out_mutex;
	map = mmap(NULL, v->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		log_err("vram: cannot get %llu KiB of memory for the page owner table of %llu MiB of VRAM",
			(unsigned long long)(v->map_bytes >> 10), (unsigned long long)(vram_size >> 20));
		goto out_mutex;
	}
	v->map = map;
	v->chunk = map;
	v->narrow = (uint8_t *)map + chunk_bytes;
	v->high = (uint8_t *)map + chunk_bytes + narrow_bytes;
	if (v->chunks > v->full_chunks)
		atomic_store(&v->chunk[v->full_chunks], CW_SPLIT);   /* short: always split */

	r = vmmfs_buddy_create(end, PAGE_SIZE, &v->buddy);
	if (r)
		goto out_unmap;
	if (start) {
		r = vmmfs_buddy_alloc(v->buddy, 0, start, start, PAGE_SIZE, 0, &v->reserved);
		if (r)
			goto out_buddy;
	}
	*out = v;
	return 0;

out_buddy:
	vmmfs_buddy_destroy(v->buddy);
out_unmap:
	munmap(v->map, v->map_bytes);
out_mutex:
	pthread_mutex_destroy(&v->lock);
out_free:
	vmmfs_free(v);
	return r == -ENOSPC ? -ENOMEM : r;
}

void vram_destroy(struct vmmfs_vram *v)
{
	uint64_t pt, alloc, parked;

	if (!v)
		return;
	pt = atomic_load(&v->pt_pages);
	alloc = atomic_load(&v->alloc_pages);
	parked = atomic_load(&v->parked_pages);
	if (pt || alloc || parked)
		log_warn("vram: released with %llu page-table pages, %llu alloc= pages and %llu "
			 "parked mapped pages still in use", (unsigned long long)pt,
			 (unsigned long long)alloc, (unsigned long long)parked);
	vmmfs_buddy_free_list(v->buddy, &v->reserved);
	vmmfs_buddy_destroy(v->buddy);
	munmap(v->map, v->map_bytes);
	pthread_mutex_destroy(&v->lock);
	vmmfs_free(v);
}

uint64_t vram_size(const struct vmmfs_vram *v)
{
	return v->vram_size;
}

/* ---- chunk words -------------------------------------------------------- */

/* The chunk word, once no one holds the chunk locked. */
static uint32_t chunk_load(const struct vmmfs_vram *v, uint64_t c)
{
	unsigned int spins = 0;
	uint32_t w;

	while ((w = atomic_load(&v->chunk[c])) == CW_LOCKED) {
		/* the holder only stores page words (vram.h) */
		if (++spins > 64)
			sched_yield();
	}
	return w;
}

/* ---- page words ----------------------------------------------------------- */

static const uint16_t nw_value[16] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, PW_PARKED | 1, PW_PT, PW_PT
};

/* The narrow word for a value, or -1 when it has none. */
static inline int nw_of(uint16_t pw)
{
	if (pw <= NW_MAX)
		return pw;
	if (pw == (PW_PARKED | 1))
		return NW_PARKED1;
	return pw == PW_PT ? (int)NW_PT : -1;
}

static inline unsigned int nw_get(const struct vmmfs_vram *v, uint64_t p)
{
	return (unsigned int)(__atomic_load_n(&v->narrow[p >> 1], __ATOMIC_RELAXED) >>
			      ((p & 1) * 4)) & 15u;
}

/* Chunk locked by the caller: no one else stores into its bytes. */
static inline void nw_set(struct vmmfs_vram *v, uint64_t p, unsigned int val)
{
	unsigned int sh = (unsigned int)(p & 1) * 4;
	uint8_t b = __atomic_load_n(&v->narrow[p >> 1], __ATOMIC_RELAXED);

	__atomic_store_n(&v->narrow[p >> 1], (uint8_t)((b & ~(15u << sh)) | (val << sh)),
			 __ATOMIC_RELAXED);
}

/* A wide word is its page's 4-bit word (the low bits) and 12 more bits in
 * the high array: pages 2k and 2k + 1 share its bytes 3k..3k+2. */
static inline uint32_t hi_load3(const uint8_t *h)
{
	return (uint32_t)__atomic_load_n(&h[0], __ATOMIC_RELAXED) |
	       (uint32_t)__atomic_load_n(&h[1], __ATOMIC_RELAXED) << 8 |
	       (uint32_t)__atomic_load_n(&h[2], __ATOMIC_RELAXED) << 16;
}

static inline uint16_t ww_get(const struct vmmfs_vram *v, uint64_t p)
{
	uint32_t x = hi_load3(&v->high[(p >> 1) * 3]);

	return (uint16_t)(((x >> ((p & 1) * 12)) & 0xfffu) << 4 | nw_get(v, p));
}

/* Chunk locked by the caller. */
static inline void ww_set(struct vmmfs_vram *v, uint64_t p, uint16_t val)
{
	uint8_t *h = &v->high[(p >> 1) * 3];
	unsigned int sh = (unsigned int)(p & 1) * 12;
	uint32_t x = (hi_load3(h) & ~(0xfffu << sh)) | (uint32_t)(val >> 4) << sh;

	__atomic_store_n(&h[0], (uint8_t)x, __ATOMIC_RELAXED);
	__atomic_store_n(&h[1], (uint8_t)(x >> 8), __ATOMIC_RELAXED);
	__atomic_store_n(&h[2], (uint8_t)(x >> 16), __ATOMIC_RELAXED);
	nw_set(v, p, val & 15u);
}

/* A page word's value in a split chunk of that width. */
static inline uint16_t pw_read(const struct vmmfs_vram *v, bool wide, uint64_t p)
{
	return wide ? ww_get(v, p) : nw_value[nw_get(v, p)];
}

static uint32_t owner_of(uint16_t pw)
{
	if (pw == PW_PT)
		return VRAM_OWNER_PT;
	return (pw & PW_PARKED ? VRAM_OWNER_PARKED : 0) | (pw & PW_COUNT);
}

/* ---- chunk locks ------------------------------------------------------------ */

/* Locks chunk c for its page words; returns how many are non-zero and sets
 * *wide to the width they are in. A uniform chunk's count is stored into
 * all of its words first (narrow when it fits). */
static uint32_t chunk_lock(struct vmmfs_vram *v, uint64_t c, bool *wide)
{
	_Atomic uint32_t *cw = &v->chunk[c];
	uint32_t w = chunk_load(v, c);

	for (;;) {
		if (w == CW_LOCKED) {
			w = chunk_load(v, c);
		} else if (atomic_compare_exchange_weak(cw, &w, CW_LOCKED)) {
			uint64_t p0 = c << CHUNK_SHIFT;

			if (w & CW_SPLIT) {
				*wide = w & CW_WIDE;
				return w & CW_COUNT;
			}
			*wide = w > NW_MAX;
			if (!*wide) {
				memset(&v->narrow[p0 >> 1], (int)(w * 0x11u), CHUNK_PAGES / 2);
			} else {
				for (uint32_t i = 0; i < CHUNK_PAGES; i++)
					ww_set(v, p0 + i, (uint16_t)w);
			}
			return w ? CHUNK_PAGES : 0;
		}
	}
}

/* Whether the 512 page words of chunk c are all the same plain count; *k
 * gets it. */
static bool chunk_same(const struct vmmfs_vram *v, uint64_t c, bool wide, uint32_t *k)
{
	uint64_t p0 = c << CHUNK_SHIFT;

	if (wide) {
		uint16_t x = ww_get(v, p0);
		uint32_t i = 1;

		while (i < CHUNK_PAGES && ww_get(v, p0 + i) == x)
			i++;
		*k = x;
		return i == CHUNK_PAGES && x <= VRAM_MAP_MAX;
	} else {
		const uint8_t *nb = &v->narrow[p0 >> 1];
		uint64_t x, y;

		*k = nb[0] & 15u;
		if (*k > NW_MAX)
			return false;
		x = (uint64_t)(*k * 0x11u) * 0x0101010101010101ull;   /* every nibble k */
		for (uint32_t i = 0; i < CHUNK_PAGES / 2; i += 8) {
			memcpy(&y, nb + i, 8);
			if (y != x)
				return false;
		}
		return true;
	}
}

/* Unlocks chunk c, whose page words now hold nz non-zero ones: uniform
 * again when they are all 0 or all the same plain count. */
static void chunk_unlock(struct vmmfs_vram *v, uint64_t c, uint32_t nz, bool wide)
{
	uint32_t w = CW_SPLIT | (wide ? CW_WIDE : 0) | nz, k;

	if (c < v->full_chunks) {
		if (!nz)
			w = 0;
		else if (nz == CHUNK_PAGES && chunk_same(v, c, wide, &k))
			w = k;
	}
	atomic_store(&v->chunk[c], w);
}

/* Copies the narrow words of locked chunk c to its wide ones. */
static void chunk_widen(struct vmmfs_vram *v, uint64_t c)
{
	uint64_t p0 = c << CHUNK_SHIFT;

	for (uint32_t i = 0; i < CHUNK_PAGES; i++)
		ww_set(v, p0 + i, nw_value[nw_get(v, p0 + i)]);
}

/* ---- batches: one chunk locked at a time ----------------------------------- */

void vram_batch_begin(struct vmmfs_vram *v, struct vram_batch *b)
{
	b->v = v;
	b->chunk = NO_CHUNK;
	b->nz = 0;
	b->wide = false;
	b->mapped = 0;
}

/* Unlocks the chunk the batch holds, if any. */
static void batch_leave(struct vram_batch *b)
{
	if (b->chunk != NO_CHUNK)
		chunk_unlock(b->v, b->chunk, b->nz, b->wide);
	b->chunk = NO_CHUNK;
}

/* Locks chunk c for the batch (one chunk at a time). */
static void batch_enter(struct vram_batch *b, uint64_t c)
{
	if (b->chunk == c)
		return;
	batch_leave(b);
	b->nz = chunk_lock(b->v, c, &b->wide);
	b->chunk = c;
}

/* Page words of the chunk the batch holds. */
static inline uint16_t bw_get(const struct vram_batch *b, uint64_t p)
{
	return pw_read(b->v, b->wide, p);
}

static void bw_put(struct vram_batch *b, uint64_t p, uint16_t val)
{
	if (!b->wide) {
		int n = nw_of(val);

		if (n >= 0) {
			nw_set(b->v, p, (unsigned int)n);
			return;
		}
		chunk_widen(b->v, b->chunk);
		b->wide = true;
	}
	ww_set(b->v, p, val);
}

/* ---- parking ------------------------------------------------------------ */

/* The page pfn was just allocated and may be mapped: park it (keep it
 * allocated until its last mapping goes). Chunk locked by the caller.
 * Returns false when it is not mapped: the page is usable. */
static bool park_locked(struct vram_batch *b, uint64_t pfn)
{
	uint16_t old = bw_get(b, pfn);

	if (!old)
		return false;
	if (VMMFS_WARN_ON(old == PW_PT || (old & PW_PARKED)))
		return true;    /* a free page can be neither: keep it out */
	bw_put(b, pfn, old | PW_PARKED);
	atomic_fetch_add(&b->v->parked_pages, 1);
	return true;
}

static bool park(struct vmmfs_vram *v, uint64_t pfn)
{
	struct vram_batch b;
	bool parked;

	vram_batch_begin(v, &b);
	batch_enter(&b, pfn >> CHUNK_SHIFT);
	parked = park_locked(&b, pfn);
	batch_leave(&b);
	return parked;
}

/* Undoes our own parking of blk's page (v->lock held, the batch enters
 * the page's chunk): if the page is still parked, it goes back to the
 * buddy now; if its last mapping went meanwhile, that unref returns it
 * once we drop v->lock. */
static void unpark_locked(struct vram_batch *b, struct vmmfs_buddy_block *blk)
{
	uint64_t pfn = vmmfs_buddy_block_offset(blk) >> PAGE_SHIFT;
	uint16_t old;

	batch_enter(b, pfn >> CHUNK_SHIFT);
	old = bw_get(b, pfn);
	if (!(old & PW_PARKED) || old == PW_PT)
		return;
	bw_put(b, pfn, old & ~PW_PARKED);
	atomic_fetch_sub(&b->v->parked_pages, 1);
	vmmfs_buddy_free_block(b->v->buddy, blk);
}

/* One batch for the whole list: each chunk is entered, and checked for
 * uniform words when left, once per stretch of its pages rather than once
 * per page (512 words each time). The buddy is not under the chunk lock's
 * protection, so freeing blocks while holding it is fine. */
static void unpark_list(struct vmmfs_vram *v, struct vmmfs_buddy_list *l)
{
	struct vmmfs_buddy_block *x = l->head;
	struct vram_batch b;

	vram_batch_begin(v, &b);
	while (x) {
		struct vmmfs_buddy_block *nx = vmmfs_buddy_block_next(x);

		unpark_locked(&b, x);
		x = nx;
	}
	batch_leave(&b);
	*l = (struct vmmfs_buddy_list)VMMFS_BUDDY_LIST_INIT;
}

/* The last mapping of a parked page went: give the page back. */
static void release_parked(struct vmmfs_vram *v, uint64_t pfn)
{
	struct vmmfs_buddy_block *blk;

	pthread_mutex_lock(&v->lock);
	blk = buddy_find_allocated(v->buddy, pfn << PAGE_SHIFT);
	if (!VMMFS_WARN_ON(!blk || vmmfs_buddy_block_offset(blk) != pfn << PAGE_SHIFT ||
			   vmmfs_buddy_block_order(blk) != 0)) {
		vmmfs_buddy_free_block(v->buddy, blk);
		atomic_fetch_sub(&v->parked_pages, 1);
	}
	pthread_mutex_unlock(&v->lock);
}

/* ---- page-table pages --------------------------------------------------- */

/* Marks a freshly allocated page as a page table (true), or parks it when
 * it is mapped (false). */
static bool claim_pt(struct vmmfs_vram *v, uint64_t pfn)
{
	struct vram_batch b;
	bool claimed = false;

	vram_batch_begin(v, &b);
	batch_enter(&b, pfn >> CHUNK_SHIFT);
	if (!bw_get(&b, pfn)) {
		bw_put(&b, pfn, PW_PT);
		b.nz++;
		claimed = true;
	} else {
		park_locked(&b, pfn);
	}
	batch_leave(&b);
	return claimed;
}

int vram_alloc_pt(struct vmmfs_vram *v, uint64_t *pa)
{
	struct vmmfs_buddy_list parked = VMMFS_BUDDY_LIST_INIT;
	uint64_t pfn;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		struct vmmfs_buddy_list one = VMMFS_BUDDY_LIST_INIT;

		if (vmmfs_buddy_alloc(v->buddy, 0, v->end, PAGE_SIZE, PAGE_SIZE, 0, &one)) {
			unpark_list(v, &parked);
			pthread_mutex_unlock(&v->lock);
			return -ENOMEM;
		}
		pfn = vmmfs_buddy_block_offset(one.head) >> PAGE_SHIFT;
		if (claim_pt(v, pfn))
			break;
		vmmfs_buddy_list_splice(&parked, &one);
	}
	/* the pages parked on the way stay out until their last mapping goes */
	pthread_mutex_unlock(&v->lock);
	atomic_fetch_add(&v->pt_pages, 1);
	*pa = pfn << PAGE_SHIFT;
	return 0;
}

void vram_free_pt(struct vmmfs_vram *v, uint64_t pa)
{
	uint64_t pfn = pa >> PAGE_SHIFT;
	struct vmmfs_buddy_block *blk;

	if (VMMFS_WARN_ON(pfn >= v->pages || (pa & (PAGE_SIZE - 1))))
		return;
	/* The word first: once the page is back in the buddy, the next
	 * allocation must see it unowned. */
	{
		struct vram_batch b;
		uint16_t w;

		vram_batch_begin(v, &b);
		batch_enter(&b, pfn >> CHUNK_SHIFT);
		w = bw_get(&b, pfn);
		if (w == PW_PT) {
			bw_put(&b, pfn, 0);
			b.nz--;
		}
		batch_leave(&b);
		if (w != PW_PT) {
			log_err("vram: page 0x%llx is returned as a page table but its owner word is 0x%x",
				(unsigned long long)pa, owner_of(w));
			return;
		}
	}
	atomic_fetch_sub(&v->pt_pages, 1);
	pthread_mutex_lock(&v->lock);
	blk = buddy_find_allocated(v->buddy, pa);
	if (!VMMFS_WARN_ON(!blk || vmmfs_buddy_block_offset(blk) != pa ||
			   vmmfs_buddy_block_order(blk) != 0))
		vmmfs_buddy_free_block(v->buddy, blk);
	pthread_mutex_unlock(&v->lock);
}

/* ---- alloc= pages ------------------------------------------------------- */

/* Blocks for npages pages, best first: one contiguous run aligned to its
 * size rounded up to a power of two; else 2 MiB-aligned blocks for the
 * 2 MiB multiple and small blocks for the rest; else any pages. Lowest
 * addresses first, away from page tables, which come from the top. */
static int take_pages(struct vmmfs_vram *v, uint64_t npages, struct vmmfs_buddy_list *out)
{
	struct vmmfs_buddy_list tmp = VMMFS_BUDDY_LIST_INIT;
	uint64_t size = npages << PAGE_SHIFT;
	int r;

	r = vmmfs_buddy_alloc(v->buddy, 0, v->end, size, PAGE_SIZE,
			      VMMFS_BUDDY_RANGE | VMMFS_BUDDY_CONTIGUOUS, out);
	if (r == 0 || r == -ENOMEM)
		return r;
	if (npages >= PAGES_2M) {
		uint64_t big = ALIGN_DOWN(npages, PAGES_2M);

		r = vmmfs_buddy_alloc(v->buddy, 0, v->end, big << PAGE_SHIFT, PAGES_2M * PAGE_SIZE,
				      VMMFS_BUDDY_RANGE, &tmp);
		if (!r && npages > big)
			r = vmmfs_buddy_alloc(v->buddy, 0, v->end, (npages - big) << PAGE_SHIFT,
					      PAGE_SIZE, VMMFS_BUDDY_RANGE, &tmp);
		if (!r) {
			vmmfs_buddy_list_splice(out, &tmp);
			return 0;
		}
		vmmfs_buddy_free_list(v->buddy, &tmp);
		if (r == -ENOMEM)
			return r;
	}
	r = vmmfs_buddy_alloc(v->buddy, 0, v->end, size, PAGE_SIZE, VMMFS_BUDDY_RANGE, out);
	return r ? -ENOMEM : 0;
}

static void list_push(struct vmmfs_buddy_list *l, struct vmmfs_buddy_block *x)
{
	x->next = NULL;
	if (l->tail)
		l->tail->next = x;
	else
		l->head = x;
	l->tail = x;
	l->count++;
}

static struct vmmfs_buddy_block *list_pop(struct vmmfs_buddy_list *l)
{
	struct vmmfs_buddy_block *x = l->head;

	l->head = x->next;
	if (!l->head)
		l->tail = NULL;
	l->count--;
	x->next = NULL;
	return x;
}

/* Removes x from l (x is in l). */
static void list_remove(struct vmmfs_buddy_list *l, struct vmmfs_buddy_block *x)
{
	struct vmmfs_buddy_block *prev = NULL, *y;

	for (y = l->head; y != x; y = y->next)
		prev = y;
	if (prev)
		prev->next = x->next;
	else
		l->head = x->next;
	if (l->tail == x)
		l->tail = prev;
	l->count--;
	x->next = NULL;
}

/* The first page of [first, first + n) that someone maps or that holds a
 * table, or first + n. Uniform chunks are judged by their word alone. */
static uint64_t first_owned(const struct vmmfs_vram *v, uint64_t first, uint64_t n)
{
	uint64_t p = first, end = first + n;

	while (p < end) {
		uint64_t c = p >> CHUNK_SHIFT, cend = MIN(end, (c + 1) << CHUNK_SHIFT);
		uint32_t w = chunk_load(v, c);

		if (!(w & CW_SPLIT)) {
			if (w)
				return p;
			p = cend;
			continue;
		}
		for (; p < cend; p++)
			if (pw_read(v, w & CW_WIDE, p))
				return p;
	}
	return end;
}

int vram_alloc_pages(struct vmmfs_vram *v, uint64_t npages, uint64_t *pfns)
{
	struct vmmfs_buddy_list todo = VMMFS_BUDDY_LIST_INIT, done = VMMFS_BUDDY_LIST_INIT;
	struct vmmfs_buddy_list parked = VMMFS_BUDDY_LIST_INIT;
	uint64_t shortfall = 0, i = 0;
	struct vmmfs_buddy_block *x;
	int r;

	if (!npages)
		return 0;
	if (npages > (v->end - v->start) >> PAGE_SHIFT)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	r = take_pages(v, npages, &todo);
	if (r)
		goto out_unlock;

	/* Pages someone maps stay out (parked); replace them. Each page is
	 * scanned at most twice. */
	while (todo.head || shortfall) {
		struct vmmfs_buddy_list pieces = VMMFS_BUDDY_LIST_INIT;
		struct vmmfs_buddy_block *c;
		uint64_t first, n, p;

		if (!todo.head) {
			r = take_pages(v, shortfall, &todo);
			if (r)
				goto out_free;
			shortfall = 0;
			continue;
		}
		x = list_pop(&todo);
		first = vmmfs_buddy_block_offset(x) >> PAGE_SHIFT;
		n = vmmfs_buddy_block_size(v->buddy, x) >> PAGE_SHIFT;
		p = first_owned(v, first, n);
		if (p == first + n) {
			list_push(&done, x);
			continue;
		}
		r = buddy_isolate(v->buddy, x, p << PAGE_SHIFT, &pieces, &c);
		if (r) {
			list_push(&done, x);
			goto out_free;
		}
		if (park(v, p)) {
			list_remove(&pieces, c);
			list_push(&parked, c);
			shortfall++;
		}
		vmmfs_buddy_list_splice(&pieces, &todo);
		todo = pieces;
	}

	for (x = done.head; x; x = vmmfs_buddy_block_next(x)) {
		uint64_t first = vmmfs_buddy_block_offset(x) >> PAGE_SHIFT;
		uint64_t n = vmmfs_buddy_block_size(v->buddy, x) >> PAGE_SHIFT;

		for (uint64_t p = 0; p < n; p++)
			pfns[i++] = first + p;
	}
	VMMFS_WARN_ON(i != npages);
	atomic_fetch_add(&v->alloc_pages, npages);
	pthread_mutex_unlock(&v->lock);
	return 0;

out_free:
	vmmfs_buddy_free_list(v->buddy, &todo);
	vmmfs_buddy_free_list(v->buddy, &done);
	unpark_list(v, &parked);
out_unlock:
	pthread_mutex_unlock(&v->lock);
	return -ENOMEM;
}

void vram_free_pages(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t npages)
{
	uint64_t i = 0, freed = 0;

	pthread_mutex_lock(&v->lock);
	while (i < npages) {
		uint64_t pfn = pfns[i], pa = pfn << PAGE_SHIFT, n, j;
		struct vmmfs_buddy_block *blk = NULL;
		uint32_t w;

		if (pfn < v->pages && pa >= v->start && pa < v->end)
			blk = buddy_find_allocated(v->buddy, pa);
		if (!blk || vmmfs_buddy_block_offset(blk) != pa) {
			log_err("vram: page 0x%llx is returned but was not handed out as the start of "
				"a run of alloc= pages; left alone", (unsigned long long)pfn);
			i++;
			continue;
		}
		n = vmmfs_buddy_block_size(v->buddy, blk) >> PAGE_SHIFT;
		w = vram_owner(v, pfn);
		for (j = 1; j < n && i + j < npages && pfns[i + j] == pfn + j; j++)
			;
		if (j != n || w == VRAM_OWNER_PT || (w & VRAM_OWNER_PARKED)) {
			log_err("vram: pages 0x%llx.. are returned but are not a whole run of alloc= "
				"pages (run of %llu, owner word 0x%x); left alone",
				(unsigned long long)pfn, (unsigned long long)n, w);
			i++;
			continue;
		}
		vmmfs_buddy_free_block(v->buddy, blk);
		freed += n;
		i += n;
	}
	pthread_mutex_unlock(&v->lock);
	atomic_fetch_sub(&v->alloc_pages, freed);
}

/* Takes exactly first..first+count-1 out of the buddy as alloc= pages
 * (crash recovery: pages a mapping owned before a restart). Unlike
 * vram_alloc_pages, pages that are mapped stay claimable: a mapping of
 * someone else's alloc= page is a legitimate share. */
int vram_claim_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	struct vmmfs_buddy_list got = VMMFS_BUDDY_LIST_INIT;
	uint64_t pa = first << PAGE_SHIFT;
	int r;

	if (!count)
		return -EINVAL;
	if (first >= v->pages || count > v->pages - first || pa < v->start || pa >= v->end ||
	    count > (v->end - pa) >> PAGE_SHIFT)
		return -ERANGE;
	pthread_mutex_lock(&v->lock);
	r = vmmfs_buddy_alloc(v->buddy, pa, pa + (count << PAGE_SHIFT), count << PAGE_SHIFT,
			      PAGE_SIZE, VMMFS_BUDDY_RANGE, &got);
	pthread_mutex_unlock(&v->lock);
	if (r)
		return r == -ENOSPC ? -EBUSY : r;
	/* the blocks stay allocated in the buddy, found again by address */
	atomic_fetch_add(&v->alloc_pages, count);
	return 0;
}

void vram_free_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	uint64_t pfn = first, end = first + count, freed = 0;

	pthread_mutex_lock(&v->lock);
	while (pfn < end) {
		uint64_t pa = pfn << PAGE_SHIFT, n;
		struct vmmfs_buddy_block *blk = NULL;
		uint32_t w;

		if (pfn < v->pages && pa >= v->start && pa < v->end)
			blk = buddy_find_allocated(v->buddy, pa);
		n = blk ? vmmfs_buddy_block_size(v->buddy, blk) >> PAGE_SHIFT : 0;
		w = vram_owner(v, pfn);
		if (!blk || vmmfs_buddy_block_offset(blk) != pa || n > end - pfn ||
		    w == VRAM_OWNER_PT || (w & VRAM_OWNER_PARKED)) {
			log_err("vram: pages 0x%llx-0x%llx are returned but 0x%llx does not start a "
				"run of alloc= pages inside them; the rest is left alone",
				(unsigned long long)first, (unsigned long long)(end - 1),
				(unsigned long long)pfn);
			break;
		}
		vmmfs_buddy_free_block(v->buddy, blk);
		freed += n;
		pfn += n;
	}
	pthread_mutex_unlock(&v->lock);
	atomic_fetch_sub(&v->alloc_pages, freed);
}

/* ---- mapping references --------------------------------------------------- */


/* References on pages [first, first + n) of one chunk. On an error, none
 * of them is kept. */
static int part_ref(struct vram_batch *b, uint64_t first, uint32_t n)
{
	uint32_t i, nz = 0;
	int r = 0;

	batch_enter(b, first >> CHUNK_SHIFT);
	for (i = 0; i < n; i++) {
		uint16_t old = bw_get(b, first + i);

		if (old == PW_PT) {
			r = -EACCES;
			break;
		}
		if ((old & PW_COUNT) >= VRAM_MAP_MAX) {
			r = -EOVERFLOW;
			break;
		}
		bw_put(b, first + i, (uint16_t)(old + 1));
		nz += !old;
	}
	if (r) {
		/* the chunk is still ours: the words are as we left them */
		while (i--) {
			uint16_t now = (uint16_t)(bw_get(b, first + i) - 1);

			bw_put(b, first + i, now);
			nz -= !now;
		}
	}
	b->nz += nz;
	b->mapped += nz;
	return r;
}

/* Drops references on pages [first, first + n) of one chunk. */
static void part_unref(struct vram_batch *b, uint64_t first, uint32_t n)
{
	struct vmmfs_vram *v = b->v;
	uint64_t c = first >> CHUNK_SHIFT;

	batch_enter(b, c);
	for (uint64_t p = first; p < first + n; p++) {
		uint16_t old = bw_get(b, p), now;

		if (old == PW_PT || !(old & PW_COUNT)) {
			log_err("vram: dropping a mapping of page 0x%llx, which is not mapped "
				"(owner word 0x%x)", (unsigned long long)p, owner_of(old));
			continue;
		}
		now = (uint16_t)(old - 1);
		if (now == PW_PARKED)
			now = 0;
		bw_put(b, p, now);
		if (now)
			continue;
		b->nz--;
		b->mapped--;
		if (old & PW_PARKED) {
			/* its last mapping: give it back, chunk unlocked */
			batch_leave(b);
			release_parked(v, p);
			batch_enter(b, c);
		}
	}
}

/* A reference on every page of chunk c. The batch's own chunk is unlocked
 * first: no one waits for a chunk while holding one. */
static int whole_ref(struct vram_batch *b, uint64_t c)
{
	_Atomic uint32_t *cw = &b->v->chunk[c];
	uint32_t w;

	batch_leave(b);
	w = chunk_load(b->v, c);

	for (;;) {
		if (w == CW_LOCKED)
			w = chunk_load(b->v, c);
		else if (w & CW_SPLIT)
			return part_ref(b, c << CHUNK_SHIFT, CHUNK_PAGES);
		else if (w >= VRAM_MAP_MAX)
			return -EOVERFLOW;
		else if (atomic_compare_exchange_weak(cw, &w, w + 1))
			break;
	}
	if (!w)
		b->mapped += CHUNK_PAGES;
	return 0;
}

/* Drops a reference on every page of chunk c (the batch's own chunk is
 * unlocked first). */
static void whole_unref(struct vram_batch *b, uint64_t c)
{
	_Atomic uint32_t *cw = &b->v->chunk[c];
	uint32_t w;

	batch_leave(b);
	w = chunk_load(b->v, c);

	for (;;) {
		if (w == CW_LOCKED) {
			w = chunk_load(b->v, c);
		} else if (w & CW_SPLIT) {
			part_unref(b, c << CHUNK_SHIFT, CHUNK_PAGES);
			return;
		} else if (!w) {
			log_err("vram: dropping a mapping of pages 0x%llx..0x%llx, which are not mapped",
				(unsigned long long)(c << CHUNK_SHIFT),
				(unsigned long long)(((c + 1) << CHUNK_SHIFT) - 1));
			return;
		} else if (atomic_compare_exchange_weak(cw, &w, w - 1)) {
			if (w == 1)
				b->mapped -= CHUNK_PAGES;
			return;
		}
	}
}

/* Whether [p, cend) is all of chunk c and may be changed through the chunk
 * word alone. */
static inline bool whole_chunk(const struct vram_batch *b, uint64_t c, uint64_t p, uint64_t cend)
{
	return cend - p == CHUNK_PAGES && c < b->v->full_chunks && b->chunk != c;
}

/* Drops references on [first, first + count). */
static void unref_range(struct vram_batch *b, uint64_t first, uint64_t count)
{
	uint64_t p = first, end = first + count;

	while (p < end) {
		uint64_t c = p >> CHUNK_SHIFT, cend = MIN(end, (c + 1) << CHUNK_SHIFT);

		if (whole_chunk(b, c, p, cend))
			whole_unref(b, c);
		else
			part_unref(b, p, (uint32_t)(cend - p));
		p = cend;
	}
}

int vram_batch_ref(struct vram_batch *b, uint64_t first, uint64_t count)
{
	struct vmmfs_vram *v = b->v;
	uint64_t p = first, end = first + count;
	int r = 0;

	if (first >= v->pages || count > v->pages - first)
		return count ? -ERANGE : 0;
	if (count == 1 && b->chunk == first >> CHUNK_SHIFT) {
		/* one page in the chunk the batch holds: scattered PFNs */
		uint16_t old = bw_get(b, first);

		if (old == PW_PT)
			return -EACCES;
		if ((old & PW_COUNT) >= VRAM_MAP_MAX)
			return -EOVERFLOW;
		bw_put(b, first, (uint16_t)(old + 1));
		b->nz += !old;
		b->mapped += !old;
		return 0;
	}
	while (p < end) {
		uint64_t c = p >> CHUNK_SHIFT, cend = MIN(end, (c + 1) << CHUNK_SHIFT);

		if (whole_chunk(b, c, p, cend))
			r = whole_ref(b, c);
		else
			r = part_ref(b, p, (uint32_t)(cend - p));
		if (r)
			break;
		p = cend;
	}
	if (r && p > first)
		unref_range(b, first, p - first);   /* nothing of this run is kept */
	return r;
}

void vram_batch_unref(struct vram_batch *b, uint64_t first, uint64_t count)
{
	struct vmmfs_vram *v = b->v;

	if (VMMFS_WARN_ON(first >= v->pages || count > v->pages - first))
		return;
	if (count == 1 && b->chunk == first >> CHUNK_SHIFT) {
		/* one page in the chunk the batch holds, not its last mapping */
		uint16_t old = bw_get(b, first);

		if (old != PW_PT && (old & PW_COUNT) > 1) {
			bw_put(b, first, (uint16_t)(old - 1));
			return;
		}
		if (old == 1) {
			bw_put(b, first, 0);
			b->nz--;
			b->mapped--;
			return;
		}
	}
	unref_range(b, first, count);
}

/*
 * Single pages in any order (scattered PFNs): the page word updates of
 * consecutive pages of one chunk share the batch's lock of it, and the
 * loop does no more per page than load, check and store its word.
 */
/*
 * The loops over single pages keep the chunk the batch holds, when its
 * words are narrow and all of it is below the loop's limit, as a byte
 * range in registers: a page there costs a load, a check and a store.
 */
struct fast_chunk {
	uint64_t base, span;   /* its pages [base, base + span); span 0: none */
	uint8_t *bytes;        /* its narrow words */
};

static inline void fast_set(struct fast_chunk *fc, const struct vram_batch *b, uint64_t lim)
{
	uint64_t base = b->chunk << CHUNK_SHIFT;

	fc->span = 0;
	if (b->chunk == NO_CHUNK || b->wide || base + CHUNK_PAGES > lim)
		return;
	fc->base = base;
	fc->span = CHUNK_PAGES;
	fc->bytes = &b->v->narrow[base >> 1];
}

/* A reference on page p the careful way. Returns 1 when the loop must
 * stop before p (*err: -EACCES, -EOVERFLOW, or 0 when p is not below lim). */
static int ref_slow(struct vram_batch *b, uint64_t p, uint64_t lim, int *err)
{
	uint16_t old;

	if (p >= lim)
		return 1;
	batch_enter(b, p >> CHUNK_SHIFT);
	old = bw_get(b, p);
	if (old == PW_PT) {
		*err = -EACCES;
		return 1;
	}
	if ((old & PW_COUNT) >= VRAM_MAP_MAX) {
		*err = -EOVERFLOW;
		return 1;
	}
	bw_put(b, p, (uint16_t)(old + 1));
	b->nz += !old;
	b->mapped += !old;
	return 0;
}

uint64_t vram_batch_ref_singles(struct vram_batch *b, const uint64_t *pfns, uint64_t n,
				uint64_t avail, uint64_t limit, uint32_t *out, int *err)
{
	const uint64_t lim = MIN(limit, b->v->pages);
	/* pages whose next PFN can be looked at */
	const uint64_t m = avail > n ? n : n - (n > 0);
	struct fast_chunk fc = { 0, 0, NULL };
	uint32_t fresh = 0;     /* pages newly mapped in fc, not yet in *b */
	uint64_t i;

	*err = 0;
	fast_set(&fc, b, lim);
	for (i = 0; i < m; i++) {
		uint64_t p = pfns[i], off = p - fc.base;

		if (pfns[i + 1] == p + 1)
			break;          /* a run of consecutive PFNs starts here */
		if (off < fc.span) {
			uint8_t *a = fc.bytes + (off >> 1);
			unsigned int sh = (unsigned int)(off & 1) * 4;
			uint8_t x = __atomic_load_n(a, __ATOMIC_RELAXED);
			unsigned int nw = (x >> sh) & 15u;

			if (nw < NW_MAX) {
				/* the common case: a plain count that stays narrow */
				__atomic_store_n(a, (uint8_t)(x + (1u << sh)), __ATOMIC_RELAXED);
				fresh += !nw;
				out[i] = (uint32_t)p;
				continue;
			}
		}
		b->nz += fresh;
		b->mapped += fresh;
		fresh = 0;
		if (ref_slow(b, p, lim, err))
			break;
		out[i] = (uint32_t)p;
		fast_set(&fc, b, lim);
	}
	b->nz += fresh;
	b->mapped += fresh;
	if (i == m && m < n && !ref_slow(b, pfns[i], lim, err))
		out[i++] = (uint32_t)pfns[m];   /* the last page, nothing after it */
	return i;
}

/* Drops a reference on page p the careful way. */
static void unref_slow(struct vram_batch *b, uint64_t p)
{
	uint16_t old;

	if (VMMFS_WARN_ON(p >= b->v->pages))
		return;
	batch_enter(b, p >> CHUNK_SHIFT);
	old = bw_get(b, p);
	if (old != PW_PT && (old & PW_COUNT) > 1 && !(old & PW_PARKED)) {
		bw_put(b, p, (uint16_t)(old - 1));
	} else if (old == 1) {
		bw_put(b, p, 0);
		b->nz--;
		b->mapped--;
	} else {
		part_unref(b, p, 1);   /* parked, or not mapped */
	}
}

uint64_t vram_batch_unref_pages32(struct vram_batch *b, const uint32_t *pfns, uint64_t n)
{
	const uint64_t lim = MIN(b->v->pages, 1ull << 31);
	struct fast_chunk fc = { 0, 0, NULL };
	uint32_t gone = 0;      /* pages unmapped in fc, not yet in *b */
	uint64_t i;

	fast_set(&fc, b, lim);
	for (i = 0; i < n; i++) {
		uint64_t p = pfns[i], off = p - fc.base;

		if (off < fc.span) {
			uint8_t *a = fc.bytes + (off >> 1);
			unsigned int sh = (unsigned int)(off & 1) * 4;
			uint8_t x = __atomic_load_n(a, __ATOMIC_RELAXED);
			unsigned int nw = (x >> sh) & 15u;

			if (nw - 1 < NW_MAX) {
				/* a plain count, 1..NW_MAX */
				__atomic_store_n(a, (uint8_t)(x - (1u << sh)), __ATOMIC_RELAXED);
				gone += nw == 1;
				continue;
			}
		}
		if (p >> 31)
			break;
		b->nz -= gone;
		b->mapped -= gone;
		gone = 0;
		unref_slow(b, p);
		fast_set(&fc, b, lim);
	}
	b->nz -= gone;
	b->mapped -= gone;
	return i;
}

void vram_batch_end(struct vram_batch *b)
{
	batch_leave(b);
	if (b->mapped)
		atomic_fetch_add(&b->v->mapped_pages, (uint_fast64_t)b->mapped);
	b->mapped = 0;
}

int vram_ref_pfns(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n)
{
	struct vram_batch b;
	uint64_t i = 0, j = 0;
	int r = 0;

	vram_batch_begin(v, &b);
	while (i < n) {
		for (j = i + 1; j < n && pfns[j] == pfns[j - 1] + 1; j++)
			;
		r = vram_batch_ref(&b, pfns[i], j - i);
		if (r)
			break;
		i = j;
	}
	/* a page beyond VRAM further on takes precedence */
	for (uint64_t k = j; r && r != -ERANGE && k < n; k++)
		if (pfns[k] >= v->pages)
			r = -ERANGE;
	if (r) {
		/* all or nothing: drop the runs before the one that failed */
		for (uint64_t k = 0; k < i; k = j) {
			for (j = k + 1; j < i && pfns[j] == pfns[j - 1] + 1; j++)
				;
			unref_range(&b, pfns[k], j - k);
		}
	}
	vram_batch_end(&b);
	return r;
}

int vram_ref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	struct vram_batch b;
	int r;

	vram_batch_begin(v, &b);
	r = vram_batch_ref(&b, first, count);
	vram_batch_end(&b);
	return r;
}

void vram_unref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	struct vram_batch b;

	vram_batch_begin(v, &b);
	vram_batch_unref(&b, first, count);
	vram_batch_end(&b);
}

uint32_t vram_owner(const struct vmmfs_vram *v, uint64_t pfn)
{
	uint64_t c = pfn >> CHUNK_SHIFT;
	uint32_t w;
	uint16_t pw;

	if (pfn >= v->pages)
		return 0;
	for (;;) {
		w = chunk_load(v, c);
		if (!(w & CW_SPLIT))
			return w;
		pw = pw_read(v, w & CW_WIDE, pfn);
		if (atomic_load(&v->chunk[c]) == w)
			return owner_of(pw);
	}
}

bool vram_is_pt(const struct vmmfs_vram *v, uint64_t pfn)
{
	return vram_owner(v, pfn) == VRAM_OWNER_PT;
}

void vram_owner_bytes(const struct vmmfs_vram *v, uint64_t *reserved, uint64_t *resident)
{
	long hp = sysconf(_SC_PAGESIZE);
	size_t host = (size_t)(hp > 0 ? hp : 4096), off = 0;
	unsigned char vec[256];
	uint64_t res = 0;

	*reserved = v->map_bytes;
	while (off < v->map_bytes) {
		size_t n = MIN((v->map_bytes - off) / host, sizeof(vec));

		if (mincore((char *)v->map + off, n * host, vec))
			break;
		for (size_t i = 0; i < n; i++)
			res += vec[i] & 1;
		off += n * host;
	}
	*resident = res * host;
}

void vram_get_usage(struct vmmfs_vram *v, struct vmmfs_vram_usage *u)
{
	uint64_t avail;

	pthread_mutex_lock(&v->lock);
	avail = vmmfs_buddy_avail(v->buddy);
	pthread_mutex_unlock(&v->lock);
	u->total_pages = (v->end - v->start) >> PAGE_SHIFT;
	u->free_pages = avail >> PAGE_SHIFT;
	u->pt_pages = atomic_load(&v->pt_pages);
	u->mapped_pages = atomic_load(&v->mapped_pages);
	u->alloc_pages = atomic_load(&v->alloc_pages);
}
