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
 * split, and one 16-bit word per page for split chunks. How a chunk word
 * changes:
 *
 *   uniform k -> k +/- 1     a reference on, or the drop of, a run that
 *                            covers the whole chunk (one CAS)
 *   uniform k -> LOCKED      a caller that needs the page words: it stores
 *                            k into all 512 of them first
 *   SPLIT|n   -> LOCKED      the same, the words are already right
 *   LOCKED    -> SPLIT|n     done; n = non-zero page words, counted by the
 *                            lock holder
 *   LOCKED    -> uniform k   done, and every page word is k (n = 0, or
 *                            n = 512 with equal plain counts): the chunk
 *                            is uniform again
 * While a chunk is LOCKED only its holder touches its page words, with plain
 * stores; readers that do not change anything (vram_owner, the scan of
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
#define CW_COUNT 0x3fffffffu

#define PW_PT 0xffffu
#define PW_PARKED 0x8000u
#define PW_COUNT 0x7fffu

#define NO_CHUNK UINT64_MAX

struct vmmfs_vram {
	pthread_mutex_t lock;             /* guards buddy */
	struct vmmfs_buddy *buddy;        /* [0, end), offset = physical address */
	struct vmmfs_buddy_list reserved; /* [0, start) */
	uint64_t vram_size, start, end, pages;
	uint64_t chunks, full_chunks;     /* all chunks; those with 512 pages */
	_Atomic uint32_t *chunk;          /* chunks words */
	_Atomic uint16_t *page;           /* pages words */
	void *map;                        /* both arrays */
	size_t map_bytes;
	atomic_uint_fast64_t pt_pages, mapped_pages, alloc_pages, parked_pages;
};

int vram_create(uint64_t vram_size, uint64_t start, uint64_t end, struct vmmfs_vram **out)
{
	struct vmmfs_vram *v;
	size_t chunk_bytes;
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
	v->map_bytes = ALIGN_UP(chunk_bytes + (size_t)v->pages * sizeof(uint16_t),
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
	v->page = (_Atomic uint16_t *)(void *)((char *)map + chunk_bytes);
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

/* Locks chunk c for its page words; returns how many are non-zero. */
static uint32_t chunk_lock(struct vmmfs_vram *v, uint64_t c)
{
	_Atomic uint32_t *cw = &v->chunk[c];
	uint32_t w = chunk_load(v, c);

	for (;;) {
		if (w == CW_LOCKED) {
			w = chunk_load(v, c);
		} else if (atomic_compare_exchange_weak(cw, &w, CW_LOCKED)) {
			_Atomic uint16_t *pw = &v->page[c << CHUNK_SHIFT];

			if (w & CW_SPLIT)
				return w & CW_COUNT;
			for (uint32_t i = 0; i < CHUNK_PAGES; i++)
				atomic_store_explicit(&pw[i], (uint16_t)w, memory_order_relaxed);
			return w ? CHUNK_PAGES : 0;
		}
	}
}

/* Unlocks chunk c, whose page words now hold nz non-zero ones: uniform
 * again when they are all 0 or all the same plain count. */
static void chunk_unlock(struct vmmfs_vram *v, uint64_t c, uint32_t nz)
{
	uint32_t w = CW_SPLIT | nz;

	if (c < v->full_chunks) {
		if (!nz) {
			w = 0;
		} else if (nz == CHUNK_PAGES) {
			_Atomic uint16_t *pw = &v->page[c << CHUNK_SHIFT];
			uint16_t k = atomic_load_explicit(&pw[0], memory_order_relaxed);
			uint32_t i = 1;

			while (i < CHUNK_PAGES && atomic_load_explicit(&pw[i], memory_order_relaxed) == k)
				i++;
			if (i == CHUNK_PAGES && k <= VRAM_MAP_MAX)
				w = k;
		}
	}
	atomic_store(&v->chunk[c], w);
}

/* ---- page words ----------------------------------------------------------- */

static uint32_t owner_of(uint16_t pw)
{
	if (pw == PW_PT)
		return VRAM_OWNER_PT;
	return (pw & PW_PARKED ? VRAM_OWNER_PARKED : 0) | (pw & PW_COUNT);
}

static inline uint16_t pw_get(const struct vmmfs_vram *v, uint64_t pfn)
{
	return atomic_load_explicit(&v->page[pfn], memory_order_relaxed);
}

static inline void pw_set(struct vmmfs_vram *v, uint64_t pfn, uint16_t val)
{
	atomic_store_explicit(&v->page[pfn], val, memory_order_relaxed);
}

/* ---- parking ------------------------------------------------------------ */

/* The page pfn was just allocated and may be mapped: park it (keep it
 * allocated until its last mapping goes). Chunk locked by the caller.
 * Returns false when it is not mapped: the page is usable. */
static bool park_locked(struct vmmfs_vram *v, uint64_t pfn)
{
	uint16_t old = pw_get(v, pfn);

	if (!old)
		return false;
	if (VMMFS_WARN_ON(old == PW_PT || (old & PW_PARKED)))
		return true;    /* a free page can be neither: keep it out */
	pw_set(v, pfn, old | PW_PARKED);
	atomic_fetch_add(&v->parked_pages, 1);
	return true;
}

static bool park(struct vmmfs_vram *v, uint64_t pfn)
{
	uint64_t c = pfn >> CHUNK_SHIFT;
	uint32_t nz = chunk_lock(v, c);
	bool parked = park_locked(v, pfn);

	chunk_unlock(v, c, nz);
	return parked;
}

/* Undoes our own parking of blk's page (lock held): if the page is still
 * parked, it goes back to the buddy now; if its last mapping went
 * meanwhile, that unref returns it once we drop the lock. */
static void unpark(struct vmmfs_vram *v, struct vmmfs_buddy_block *blk)
{
	uint64_t pfn = vmmfs_buddy_block_offset(blk) >> PAGE_SHIFT, c = pfn >> CHUNK_SHIFT;
	uint32_t nz = chunk_lock(v, c);
	uint16_t old = pw_get(v, pfn);
	bool mine = (old & PW_PARKED) && old != PW_PT;

	if (mine)
		pw_set(v, pfn, old & ~PW_PARKED);
	chunk_unlock(v, c, nz);
	if (!mine)
		return;
	atomic_fetch_sub(&v->parked_pages, 1);
	vmmfs_buddy_free_block(v->buddy, blk);
}

static void unpark_list(struct vmmfs_vram *v, struct vmmfs_buddy_list *l)
{
	struct vmmfs_buddy_block *x = l->head;

	while (x) {
		struct vmmfs_buddy_block *nx = vmmfs_buddy_block_next(x);

		unpark(v, x);
		x = nx;
	}
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
	uint64_t c = pfn >> CHUNK_SHIFT;
	uint32_t nz = chunk_lock(v, c);
	bool claimed = false;

	if (!pw_get(v, pfn)) {
		pw_set(v, pfn, PW_PT);
		nz++;
		claimed = true;
	} else {
		park_locked(v, pfn);
	}
	chunk_unlock(v, c, nz);
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
		uint64_t c = pfn >> CHUNK_SHIFT;
		uint32_t nz = chunk_lock(v, c);
		uint16_t w = pw_get(v, pfn);

		if (w == PW_PT)
			pw_set(v, pfn, 0);
		chunk_unlock(v, c, nz - (w == PW_PT));
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
			if (atomic_load_explicit(&v->page[p], memory_order_relaxed))
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

void vram_batch_begin(struct vmmfs_vram *v, struct vram_batch *b)
{
	b->v = v;
	b->chunk = NO_CHUNK;
	b->nz = 0;
	b->mapped = 0;
}

/* Unlocks the chunk the batch holds, if any. */
static void batch_leave(struct vram_batch *b)
{
	if (b->chunk != NO_CHUNK)
		chunk_unlock(b->v, b->chunk, b->nz);
	b->chunk = NO_CHUNK;
}

/* Locks chunk c for the batch (one chunk at a time). */
static void batch_enter(struct vram_batch *b, uint64_t c)
{
	if (b->chunk == c)
		return;
	batch_leave(b);
	b->nz = chunk_lock(b->v, c);
	b->chunk = c;
}

/* References on pages [first, first + n) of one chunk. On an error, none
 * of them is kept. */
static int part_ref(struct vram_batch *b, uint64_t first, uint32_t n)
{
	struct vmmfs_vram *v = b->v;
	uint32_t i, nz = 0;
	int r = 0;

	batch_enter(b, first >> CHUNK_SHIFT);
	for (i = 0; i < n; i++) {
		uint16_t old = pw_get(v, first + i);

		if (old == PW_PT) {
			r = -EACCES;
			break;
		}
		if ((old & PW_COUNT) >= VRAM_MAP_MAX) {
			r = -EOVERFLOW;
			break;
		}
		pw_set(v, first + i, (uint16_t)(old + 1));
		nz += !old;
	}
	if (r) {
		/* the chunk is still ours: the words are as we left them */
		while (i--) {
			uint16_t now = (uint16_t)(pw_get(v, first + i) - 1);

			pw_set(v, first + i, now);
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
		uint16_t old = pw_get(v, p), now;

		if (old == PW_PT || !(old & PW_COUNT)) {
			log_err("vram: dropping a mapping of page 0x%llx, which is not mapped "
				"(owner word 0x%x)", (unsigned long long)p, owner_of(old));
			continue;
		}
		now = (uint16_t)(old - 1);
		if (now == PW_PARKED)
			now = 0;
		pw_set(v, p, now);
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
		uint16_t old = pw_get(v, first);

		if (old == PW_PT)
			return -EACCES;
		if ((old & PW_COUNT) >= VRAM_MAP_MAX)
			return -EOVERFLOW;
		pw_set(v, first, (uint16_t)(old + 1));
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
		uint16_t old = pw_get(v, first);

		if (old != PW_PT && (old & PW_COUNT) > 1) {
			pw_set(v, first, (uint16_t)(old - 1));
			return;
		}
		if (old == 1) {
			pw_set(v, first, 0);
			b->nz--;
			b->mapped--;
			return;
		}
	}
	unref_range(b, first, count);
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
		pw = pw_get(v, pfn);
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
