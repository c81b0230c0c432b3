/* SPDX-License-Identifier: MIT */
/*
 * The GPU-wide owner of VRAM pages (core/vram.h).
 *
 * The buddy covers [0, end) with offsets equal to physical addresses, so
 * its alignment is physical alignment (a 2 MiB block is a 2 MiB-aligned
 * page run, usable as a big page); [0, start) is allocated once at create
 * and never handed out.
 *
 * Owner words (one per VRAM page of the board, in an mmap'ed array that
 * costs host memory only where touched):
 *   0                       free, or allocated and not mapped
 *   1..0x7ffffffe           mapped that many times
 *   PARKED | 1..0x7ffffffe  mapped, and held out of the buddy: an
 *                           allocation met the page while someone mapped it
 *   VRAM_OWNER_PT           holds a page table
 * Words change by compare-and-swap only. Whoever clears PARKED (the last
 * unref, or an allocation undoing its own parking) returns the page to the
 * buddy; nobody else does.
 *
 * Locking: v->lock guards the buddy. ref/unref take no lock, except that
 * the unref that drops the last mapping of a parked page takes it to give
 * the page back.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <vmmfs/vmmfs.h>
#include "internal.h"
#include "mem.h"
#include "vram.h"
#include "buddy_priv.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define PAGES_2M 512u
#define OWNER_COUNT_MAX (VRAM_OWNER_COUNT - 1)

struct vmmfs_vram {
	pthread_mutex_t lock;             /* guards buddy */
	struct vmmfs_buddy *buddy;        /* [0, end), offset = physical address */
	struct vmmfs_buddy_list reserved; /* [0, start) */
	uint64_t vram_size, start, end, pages;
	_Atomic uint32_t *owner;          /* pages words */
	size_t owner_bytes;
	atomic_uint_fast64_t pt_pages, mapped_pages, alloc_pages, parked_pages;
};

int vram_create(uint64_t vram_size, uint64_t start, uint64_t end, struct vmmfs_vram **out)
{
	struct vmmfs_vram *v;
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
	v->owner_bytes = (size_t)v->pages * sizeof(uint32_t);
	if (pthread_mutex_init(&v->lock, NULL))
		goto out_free;

	/* The owner array is an allocation too: let tests fail it. */
	if (vmmfs_fault_point())
		goto out_mutex;
	map = mmap(NULL, v->owner_bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		log_err("vram: cannot reserve %llu MiB of address space for the page owner table",
			(unsigned long long)(v->owner_bytes >> 20));
		goto out_mutex;
	}
	v->owner = map;

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
	munmap(v->owner, v->owner_bytes);
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
	munmap(v->owner, v->owner_bytes);
	pthread_mutex_destroy(&v->lock);
	vmmfs_free(v);
}

uint64_t vram_size(const struct vmmfs_vram *v)
{
	return v->vram_size;
}

/* ---- parking ------------------------------------------------------------ */

/* The page pfn was just allocated and its word is non-zero: someone maps
 * it. Park it (keep it allocated until its last mapping goes). Returns
 * false when the word dropped to 0 meanwhile: the page is usable after all. */
static bool park(struct vmmfs_vram *v, uint64_t pfn)
{
	_Atomic uint32_t *w = &v->owner[pfn];
	uint32_t old = atomic_load(w);

	for (;;) {
		if (!old)
			return false;
		if (VMMFS_WARN_ON(old == VRAM_OWNER_PT || (old & VRAM_OWNER_PARKED)))
			return true;    /* a free page can be neither: keep it out */
		if (atomic_compare_exchange_weak(w, &old, old | VRAM_OWNER_PARKED))
			break;
	}
	atomic_fetch_add(&v->parked_pages, 1);
	return true;
}

/* Undoes our own parking of blk's page (lock held): if the page is still
 * parked, it goes back to the buddy now; if its last mapping went
 * meanwhile, that unref returns it once we drop the lock. */
static void unpark(struct vmmfs_vram *v, struct vmmfs_buddy_block *blk)
{
	_Atomic uint32_t *w = &v->owner[vmmfs_buddy_block_offset(blk) >> PAGE_SHIFT];
	uint32_t old = atomic_load(w);

	for (;;) {
		if (!(old & VRAM_OWNER_PARKED) || old == VRAM_OWNER_PT)
			return;
		if (atomic_compare_exchange_weak(w, &old, old & ~VRAM_OWNER_PARKED))
			break;
	}
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

int vram_alloc_pt(struct vmmfs_vram *v, uint64_t *pa)
{
	struct vmmfs_buddy_list parked = VMMFS_BUDDY_LIST_INIT;
	uint64_t pfn;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		struct vmmfs_buddy_list one = VMMFS_BUDDY_LIST_INIT;
		uint32_t expect = 0;

		if (vmmfs_buddy_alloc(v->buddy, 0, v->end, PAGE_SIZE, PAGE_SIZE, 0, &one)) {
			unpark_list(v, &parked);
			pthread_mutex_unlock(&v->lock);
			return -ENOMEM;
		}
		pfn = vmmfs_buddy_block_offset(one.head) >> PAGE_SHIFT;
		for (;;) {
			expect = 0;
			if (atomic_compare_exchange_strong(&v->owner[pfn], &expect, VRAM_OWNER_PT))
				goto claimed;
			if (park(v, pfn))
				break;
			/* unmapped meanwhile: try to claim it again */
		}
		vmmfs_buddy_list_splice(&parked, &one);
	}
claimed:
	pthread_mutex_unlock(&v->lock);
	atomic_fetch_add(&v->pt_pages, 1);
	*pa = pfn << PAGE_SHIFT;
	return 0;
}

void vram_free_pt(struct vmmfs_vram *v, uint64_t pa)
{
	uint64_t pfn = pa >> PAGE_SHIFT;
	uint32_t expect = VRAM_OWNER_PT;
	struct vmmfs_buddy_block *blk;

	if (VMMFS_WARN_ON(pfn >= v->pages || (pa & (PAGE_SIZE - 1))))
		return;
	/* The word first: once the page is back in the buddy, the next
	 * allocation must see it unowned. */
	if (!atomic_compare_exchange_strong(&v->owner[pfn], &expect, 0)) {
		log_err("vram: page 0x%llx is returned as a page table but its owner word is 0x%x",
			(unsigned long long)pa, expect);
		return;
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
		for (p = first; p < first + n; p++)
			if (atomic_load_explicit(&v->owner[p], memory_order_relaxed))
				break;
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
		w = atomic_load(&v->owner[pfn]);
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

/* ---- mapping references ------------------------------------------------- */

static int ref_one(struct vmmfs_vram *v, uint64_t pfn)
{
	_Atomic uint32_t *w = &v->owner[pfn];
	uint32_t old = atomic_load_explicit(w, memory_order_relaxed);

	for (;;) {
		if (old == VRAM_OWNER_PT)
			return -EACCES;
		if ((old & VRAM_OWNER_COUNT) >= OWNER_COUNT_MAX)
			return -EOVERFLOW;
		if (atomic_compare_exchange_weak(w, &old, old + 1))
			break;
	}
	if (!(old & VRAM_OWNER_COUNT))
		atomic_fetch_add_explicit(&v->mapped_pages, 1, memory_order_relaxed);
	return 0;
}

/* Drops one reference. Returns true when the page was parked and this was
 * its last mapping: the caller gives it back to the buddy. */
static bool unref_one(struct vmmfs_vram *v, uint64_t pfn)
{
	_Atomic uint32_t *w = &v->owner[pfn];
	uint32_t old = atomic_load_explicit(w, memory_order_relaxed), new;

	for (;;) {
		if (old == VRAM_OWNER_PT || !(old & VRAM_OWNER_COUNT)) {
			log_err("vram: dropping a mapping of page 0x%llx, which is not mapped "
				"(owner word 0x%x)", (unsigned long long)pfn, old);
			return false;
		}
		new = old - 1;
		if (new == VRAM_OWNER_PARKED)
			new = 0;
		if (atomic_compare_exchange_weak(w, &old, new))
			break;
	}
	if (!(new & VRAM_OWNER_COUNT))
		atomic_fetch_sub_explicit(&v->mapped_pages, 1, memory_order_relaxed);
	return (old & VRAM_OWNER_PARKED) && !new;
}

static void unref(struct vmmfs_vram *v, uint64_t pfn)
{
	if (unref_one(v, pfn))
		release_parked(v, pfn);
}

int vram_ref_pfns(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n)
{
	uint64_t i;
	int r;

	for (i = 0; i < n; i++)
		if (pfns[i] >= v->pages)
			return -ERANGE;
	for (i = 0; i < n; i++) {
		r = ref_one(v, pfns[i]);
		if (r) {
			while (i--)
				unref(v, pfns[i]);
			return r;
		}
	}
	return 0;
}

int vram_ref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	uint64_t i;
	int r;

	if (first >= v->pages || count > v->pages - first)
		return count ? -ERANGE : 0;
	for (i = 0; i < count; i++) {
		r = ref_one(v, first + i);
		if (r) {
			while (i--)
				unref(v, first + i);
			return r;
		}
	}
	return 0;
}

void vram_unref_run(struct vmmfs_vram *v, uint64_t first, uint64_t count)
{
	if (VMMFS_WARN_ON(first >= v->pages || count > v->pages - first))
		return;
	for (uint64_t i = 0; i < count; i++)
		unref(v, first + i);
}

bool vram_is_pt(const struct vmmfs_vram *v, uint64_t pfn)
{
	return pfn < v->pages && atomic_load(&v->owner[pfn]) == VRAM_OWNER_PT;
}

uint32_t vram_owner(const struct vmmfs_vram *v, uint64_t pfn)
{
	return pfn < v->pages ? atomic_load(&v->owner[pfn]) : 0;
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
