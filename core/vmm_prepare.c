/* SPDX-License-Identifier: MIT */
/*
 * Phase 1 of a map: everything that can fail (vmm.h "Two phases").
 *
 *  1. validate the request (no silent truncation: -ERANGE, -EINVAL);
 *  2. the mapping object the op lives in comes from the caller
 *     (vmm_mapping_new), with room for its PFN runs: the exact run stream
 *     for planned ops (map_pages built it and took the page references),
 *     one 4-byte word per page otherwise (the worst case);
 *  3. reserve the VA (VA buddy, under va_lock only);
 *  4. under the VMM lock, walk the shadow over the range once and count
 *     the tables that are missing; drop the lock, allocate them (heap node
 *     + VRAM page; LPTs from the pool, whose pages are allocated here too);
 *     take the lock again, recount (another thread may have changed the
 *     tree meanwhile: retry if short), link them and take the reservations
 *     that keep every table of the range alive until execute or abort;
 *  5. give back what was allocated but not needed.
 * New tables are neither zeroed nor written here: execute writes each one
 * completely when it installs it.
 *
 * On failure every step is undone in reverse, so VA, VRAM, tables and
 * pending ops are exactly as before (tests/failmalloc_test.c proves it).
 */
#include <string.h>
#include "internal.h"
#include "mem.h"
#include "vmm_priv.h"
#include "vram.h"
#include "tlb.h"

#define SZ_64K (1ull << 16)

/* ---- VA reservation --------------------------------------------------------------- */

/* The largest page size a run of size bytes can use: the VA is placed
 * congruent to the first PA modulo it. */
static uint64_t va_align_for(const struct vmmfs_vmm *vmm, uint64_t size)
{
	const struct mmu_fmt *f = vmm->fmt;
	uint64_t p512 = mmu_entry_span(&f->levels[f->pd0 - 1]);
	uint64_t p2m = mmu_entry_span(&f->levels[f->pd0]);
	uint64_t p64 = mmu_entry_span(&f->lpt);

	if (vmm->pd1_512m && size >= p512)
		return p512;
	if (size >= p2m)
		return p2m;
	if (size >= p64)
		return p64;
	return VMMFS_PAGE_SIZE;
}

/* Exactly [at, at + size), appended to list: 0, -ENOSPC (not all free),
 * -ENOMEM. */
static int va_exact(struct vmmfs_buddy *b, uint64_t at, uint64_t size, struct vmmfs_buddy_list *list)
{
	return vmmfs_buddy_alloc(b, at, at + size, size, VMMFS_PAGE_SIZE, 0, list);
}

/* Whether [at, at + size) is free, by allocating and freeing it. */
static int va_probe(struct vmmfs_buddy *b, uint64_t at, uint64_t size)
{
	struct vmmfs_buddy_list t = VMMFS_BUDDY_LIST_INIT;
	int r = va_exact(b, at, size, &t);

	if (!r)
		vmmfs_buddy_free_list(b, &t);
	return r;
}

/*
 * RANGE: the lowest free stretch of [start, end) that holds size bytes,
 * at a start congruent to want modulo align when that stretch allows it.
 * Only the allocator's public calls are used: the lowest free page at or
 * after pos (a one-page RANGE allocation, given back), an exact try, and
 * when a stretch is too short, a binary search for its end with exact
 * probes. O(stretches * log(size)) allocator calls; nothing stays
 * allocated but the result.
 */
static int va_in_range(struct vmmfs_buddy *b, uint64_t start, uint64_t end, uint64_t size,
		       uint64_t align, uint64_t want, uint64_t *at, struct vmmfs_buddy_list *list)
{
	uint64_t pos = start;
	int r;

	while (end - pos >= size) {
		struct vmmfs_buddy_list one = VMMFS_BUDDY_LIST_INIT;
		uint64_t g, p, lo, hi;

		r = vmmfs_buddy_alloc(b, pos, end, VMMFS_PAGE_SIZE, VMMFS_PAGE_SIZE,
				      VMMFS_BUDDY_RANGE, &one);
		if (r)
			return r;
		g = vmmfs_buddy_block_offset(one.head);
		vmmfs_buddy_free_list(b, &one);
		if (end - g < size)
			return -ENOSPC;
		p = g + ((want - g) & (align - 1));
		if (p != g && p <= end - size) {
			r = va_exact(b, p, size, list);
			if (r != -ENOSPC) {
				*at = p;
				return r;
			}
		}
		r = va_exact(b, g, size, list);
		if (r != -ENOSPC) {
			*at = g;
			return r;
		}
		/* [g, g + lo) is free, [g, g + hi) is not */
		lo = VMMFS_PAGE_SIZE;
		hi = size;
		while (hi - lo > VMMFS_PAGE_SIZE) {
			uint64_t mid = ALIGN_DOWN(lo + (hi - lo) / 2, VMMFS_PAGE_SIZE);

			r = va_probe(b, g, mid);
			if (r == -ENOSPC)
				hi = mid;
			else if (r)
				return r;
			else
				lo = mid;
		}
		pos = g + hi;   /* the page at g + lo is taken */
	}
	return -ENOSPC;
}

/* Reserves [*va, *va + size) per the placement. va_lock is taken here. */
static int va_reserve(struct vmmfs_vmm *vmm, uint64_t size, const struct vmmfs_va_placement *pl,
		      uint64_t *va, struct vmmfs_buddy_list *blocks)
{
	enum vmmfs_va_place kind = pl ? pl->kind : VMMFS_VA_ANY;
	uint64_t align = va_align_for(vmm, size);
	uint64_t want = (pl && pl->pa_hint != VMMFS_NO_PA_HINT) ?
			ALIGN_DOWN(pl->pa_hint, VMMFS_PAGE_SIZE) & (align - 1) : 0;
	struct vmmfs_buddy_list got = VMMFS_BUDDY_LIST_INIT;
	uint64_t at = 0, slack, off;
	int r;

	pthread_mutex_lock(&vmm->va_lock);
	switch (kind) {
	case VMMFS_VA_EXACT:
		at = pl->start;
		r = vmmfs_buddy_alloc(vmm->va, at, at + size, size, VMMFS_PAGE_SIZE, 0, &got);
		if (r == -ENOSPC)
			r = -EEXIST;
		break;
	case VMMFS_VA_RANGE:
		r = va_in_range(vmm->va, pl->start, pl->end, size, align, want, &at, &got);
		break;
	default:
		/* Lowest fit, with room to slide the start to the wanted
		 * congruence; the surplus is trimmed off again. */
		slack = align - VMMFS_PAGE_SIZE;
		if (slack > vmm->va_size - size)
			slack = 0;
		r = vmmfs_buddy_alloc(vmm->va, 0, vmm->va_size, size + slack, VMMFS_PAGE_SIZE,
				      VMMFS_BUDDY_BOTTOMUP | VMMFS_BUDDY_CONTIGUOUS, &got);
		if (r == -ENOSPC && slack) {
			slack = 0;
			r = vmmfs_buddy_alloc(vmm->va, 0, vmm->va_size, size, VMMFS_PAGE_SIZE,
					      VMMFS_BUDDY_BOTTOMUP | VMMFS_BUDDY_CONTIGUOUS, &got);
		}
		if (r)
			break;
		at = vmmfs_buddy_block_offset(got.head);
		if (slack) {
			off = (want - at) & (align - 1);
			r = vmmfs_buddy_trim(vmm->va, off, size, &got);
			if (r) {
				vmmfs_buddy_free_list(vmm->va, &got);
				break;
			}
			at += off;
		}
		break;
	}
	pthread_mutex_unlock(&vmm->va_lock);
	if (r)
		return r;
	*va = at;
	*blocks = got;
	return 0;
}

void vmm_va_release(struct vmmfs_vmm *vmm, struct vmmfs_buddy_list *blocks)
{
	pthread_mutex_lock(&vmm->va_lock);
	vmmfs_buddy_free_list(vmm->va, blocks);
	pthread_mutex_unlock(&vmm->va_lock);
}

/* ---- table pool ---------------------------------------------------------------------- */

struct prep_need {
	uint64_t n[MMU_MAX_LEVELS];   /* directory and PT nodes per level */
	uint64_t lpt;                 /* LPT nodes */
	uint64_t lpt_pages;           /* new pool pages */
};

struct prep {
	struct vmmfs_vmm *vmm;
	const struct mmu_fmt *f;
	struct vmm_plan plan;
	uint32_t e0;
	struct prep_need need;
	/* allocated, not yet linked */
	struct vmm_pt *nodes[MMU_MAX_LEVELS];
	uint64_t have[MMU_MAX_LEVELS];
	struct vmm_pt *lpts;
	uint64_t have_lpt;
	struct lpt_page *pages;
	uint64_t have_pages;
};

static int pool_add_node(struct prep *p, unsigned int level)
{
	struct vmmfs_vmm *vmm = p->vmm;
	void *mem = vmmfs_calloc(1, walk_node_size(p->f, vmm->pd1_512m, level));
	struct vmm_pt *pt;
	uint64_t pa;

	if (!mem)
		return -ENOMEM;
	pt = walk_node_init(mem, p->f, vmm->pd1_512m, level);
	if (level != WALK_LPT) {
		if (vram_alloc_pt(vmm->gpu->vram, &pa)) {
			vmmfs_free(mem);
			return -ENOMEM;
		}
		if (pa >= p->f->max_pde_pa) {
			log_err("VRAM page 0x%llx cannot hold a page table: MMU v%d directory entries "
				"reach only below 0x%llx", (unsigned long long)pa, p->f->version,
				(unsigned long long)p->f->max_pde_pa);
			vram_free_pt(vmm->gpu->vram, pa);
			vmmfs_free(mem);
			return -ENOMEM;
		}
		pt->addr = pa;
		vmm_pt_push(&p->nodes[level], pt);
		p->have[level]++;
	} else {
		vmm_pt_push(&p->lpts, pt);
		p->have_lpt++;
	}
	return 0;
}

static int pool_add_page(struct prep *p)
{
	struct lpt_page *pg = vmmfs_calloc(1, sizeof(*pg));

	if (!pg)
		return -ENOMEM;
	if (vram_alloc_pt(p->vmm->gpu->vram, &pg->pa) || pg->pa >= p->f->max_pde_pa) {
		if (pg->pa >= p->f->max_pde_pa && pg->pa)
			vram_free_pt(p->vmm->gpu->vram, pg->pa);
		vmmfs_free(pg);
		return -ENOMEM;
	}
	pg->next = p->pages;
	p->pages = pg;
	p->have_pages++;
	return 0;
}

/* Allocates what the count says is missing. No VMM lock held. */
static int pool_fill(struct prep *p)
{
	int r = 0;

	for (int l = 1; l < p->f->nlevels && !r; l++)
		while (!r && p->have[l] < p->need.n[l])
			r = pool_add_node(p, (unsigned int)l);
	while (!r && p->have_lpt < p->need.lpt)
		r = pool_add_node(p, WALK_LPT);
	while (!r && p->have_pages < p->need.lpt_pages)
		r = pool_add_page(p);
	return r;
}

static bool pool_covers(const struct prep *p)
{
	for (int l = 1; l < p->f->nlevels; l++)
		if (p->have[l] < p->need.n[l])
			return false;
	return p->have_lpt >= p->need.lpt && p->have_pages >= p->need.lpt_pages;
}

/* Gives back what was not linked. No VMM lock held. */
static void pool_release(struct prep *p)
{
	struct vmmfs_vram *v = p->vmm->gpu->vram;

	for (int l = 0; l < MMU_MAX_LEVELS; l++) {
		while (p->nodes[l]) {
			struct vmm_pt *pt = p->nodes[l];

			p->nodes[l] = pt->next;
			vram_free_pt(v, pt->addr);
			vmmfs_free(pt);
		}
		p->have[l] = 0;
	}
	while (p->lpts) {
		struct vmm_pt *pt = p->lpts;

		p->lpts = pt->next;
		vmmfs_free(pt);
	}
	while (p->pages) {
		struct lpt_page *pg = p->pages;

		p->pages = pg->next;
		vram_free_pt(v, pg->pa);
		vmmfs_free(pg);
	}
	p->have_lpt = p->have_pages = 0;
}

/* ---- the walks ------------------------------------------------------------------------------ */

/* Does the slot [sa, sb) need a small PT? Not when it becomes a 2 MiB
 * page, nor (planned ops) when every page of it goes into 64 KiB pages. */
static bool need_pt(struct prep *p, uint64_t sa, uint64_t sb)
{
	uint32_t full;

	if (!p->plan.planned || !p->plan.big || !IS_ALIGNED(sa | sb, SZ_64K))
		return true;
	full = plan_full_chunks(&p->plan, sa, sb);
	return plan_chunks64(&p->plan, sa, sb) != full;
}

/*
 * One walk for both passes. count: d may be NULL (a table that does not
 * exist yet); tally what is missing. link: create what is missing from the
 * pool and take the op's reservations on the leaf tables. create is false
 * inside a slot that becomes a 512 MiB page (planned ops): existing tables
 * there are reserved as the rules say, nothing is created.
 */
static struct vmm_pt *link_node(struct prep *p, struct vmm_pt *d, unsigned int level, uint32_t i)
{
	struct vmm_pt *pt = p->nodes[level];

	p->nodes[level] = pt->next;
	p->have[level]--;
	pt->next = NULL;
	pt->parent = d;
	pt->pidx = i;
	d->child[i] = pt;
	d->nchild++;
	p->vmm->pt_pages++;
	return pt;
}

static struct vmm_pt *link_lpt(struct prep *p, struct vmm_pt *d, uint32_t i)
{
	struct vmmfs_vmm *vmm = p->vmm;
	struct vmm_pt *lpt = p->lpts;
	struct lpt_page *pg;
	unsigned int s;

	for (pg = vmm->lpt_pages; pg && pg->used == 0xffff; pg = pg->next)
		;
	if (!pg) {
		pg = p->pages;
		p->pages = pg->next;
		p->have_pages--;
		pg->next = vmm->lpt_pages;
		vmm->lpt_pages = pg;
		vmm->pt_pages++;
	}
	s = (unsigned int)__builtin_ctz(~(unsigned int)pg->used);
	pg->used |= (uint16_t)(1u << s);
	p->lpts = lpt->next;
	p->have_lpt--;
	lpt->next = NULL;
	lpt->addr = pg->pa + (uint64_t)s * WALK_LPT_BYTES;
	lpt->lpage = pg;
	lpt->parent = d;
	lpt->pidx = i;
	d->child[p->e0 + i] = lpt;
	d->nchild++;
	return lpt;
}

static void prep_walk(struct prep *p, struct vmm_pt *d, unsigned int level, uint64_t a, uint64_t b,
		      bool link, bool create)
{
	const struct mmu_level *l = &p->f->levels[level];
	uint64_t span = mmu_entry_span(l), base = ALIGN_DOWN(a, mmu_table_span(l));
	uint32_t first = mmu_index(l, a), last = mmu_index(l, b - 1);

	for (uint32_t i = first; i <= last; i++) {
		uint64_t s0 = base + (uint64_t)i * span, sa = MAX(a, s0), sb = MIN(b, s0 + span);

		if ((int)level == p->f->pd0) {
			struct vmm_pt *pt = d ? d->child[i] : NULL, *lpt = d ? d->child[p->e0 + i] : NULL;
			bool is2m = plan_use_2m(&p->plan, pt, lpt, sa, sb);
			uint32_t lres = plan_lpt_resv(&p->plan, sa, sb, is2m);
			bool mk_pt = create && !is2m && !pt && need_pt(p, sa, sb);
			bool mk_lpt = create && !lpt && lres;

			if (!link) {
				p->need.n[level + 1] += mk_pt;
				p->need.lpt += mk_lpt;
				continue;
			}
			if (mk_pt)
				pt = link_node(p, d, level + 1, i);
			if (mk_lpt)
				lpt = link_lpt(p, d, i);
			if (pt)
				pt->resv += (uint32_t)((sb - sa) >> VMMFS_PAGE_SHIFT);
			if (lpt)
				lpt->resv += lres;
			continue;
		}

		struct vmm_pt *c = d ? d->child[i] : NULL;
		bool sub = create && !plan_use_512m(&p->plan, level, c, sa, sb);

		if (!c && !sub)
			continue;
		if (!c) {
			if (!link)
				p->need.n[level + 1]++;
			else
				c = link_node(p, d, level + 1, i);
		}
		prep_walk(p, c, level + 1, sa, sb, link, sub);
	}
}

static void need_count(struct prep *p, uint64_t va, uint64_t end)
{
	uint64_t free_slots = 0, want;

	memset(&p->need, 0, sizeof(p->need));
	prep_walk(p, p->vmm->root, 0, va, end, false, true);
	for (struct lpt_page *pg = p->vmm->lpt_pages; pg; pg = pg->next)
		free_slots += WALK_LPT_PER_PAGE - (uint64_t)__builtin_popcount(pg->used);
	want = p->need.lpt > free_slots ? p->need.lpt - free_slots : 0;
	p->need.lpt_pages = (want + WALK_LPT_PER_PAGE - 1) / WALK_LPT_PER_PAGE;
}

/* ---- prepare --------------------------------------------------------------------------------- */

static int check_placement(const struct vmmfs_vmm *vmm, uint64_t npages,
			   const struct vmmfs_va_placement *pl)
{
	uint64_t size;

	if (!npages)
		return -EINVAL;
	if (npages > vmm->va_size >> VMMFS_PAGE_SHIFT)
		return -ERANGE;
	size = npages << VMMFS_PAGE_SHIFT;
	if (!pl)
		return 0;
	switch (pl->kind) {
	case VMMFS_VA_ANY:
		return 0;
	case VMMFS_VA_EXACT:
		if (!IS_ALIGNED(pl->start, VMMFS_PAGE_SIZE))
			return -EINVAL;
		if (pl->start >= vmm->va_size || size > vmm->va_size - pl->start)
			return -ERANGE;
		return 0;
	case VMMFS_VA_RANGE:
		if (!IS_ALIGNED(pl->start | pl->end, VMMFS_PAGE_SIZE) || pl->end <= pl->start)
			return -EINVAL;
		if (pl->end > vmm->va_size)
			return -ERANGE;
		if (size > pl->end - pl->start)
			return -ENOSPC;
		return 0;
	default:
		return -EINVAL;
	}
}

struct vmmfs_mapping *vmm_mapping_new(struct vmmfs_vmm *vmm, uint64_t npages, uint64_t cap_words)
{
	struct vmmfs_mapping *m;

	if (cap_words > (SIZE_MAX - sizeof(*m)) / sizeof(uint32_t))
		return NULL;
	m = vmmfs_malloc(sizeof(*m) + (size_t)cap_words * sizeof(uint32_t));
	if (!m)
		return NULL;
	/* the run words stay untouched (not resident) until written */
	memset(m, 0, sizeof(*m));
	m->vmm = vmm;
	m->npages = npages;
	m->cap_words = cap_words;
	return m;
}

int vmm_prepare(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m,
		const struct vmmfs_va_placement *pl, bool planned, unsigned int flags)
{
	struct vmm_pt *stale = NULL;
	struct lpt_page *empty = NULL;
	uint64_t npages = m->npages, end;
	struct prep p;
	int r;

	r = check_placement(vmm, npages, pl);
	if (r)
		return r;
	r = va_reserve(vmm, npages << VMMFS_PAGE_SHIFT, pl, &m->va, &m->va_blocks);
	if (r)
		return r;
	end = m->va + (npages << VMMFS_PAGE_SHIFT);
	m->op.vmm = vmm;
	m->op.va = m->va;
	m->op.npages = npages;
	m->op.planned = planned;
	m->op.plan_flags = flags;

	memset(&p, 0, sizeof(p));
	p.vmm = vmm;
	p.f = vmm->fmt;
	p.e0 = (uint32_t)mmu_entries(&vmm->fmt->levels[vmm->fmt->pd0]);
	plan_init(&p.plan, vmm, m->va, npages, planned, planned ? m : NULL, flags);

	pthread_mutex_lock(&vmm->lock);
	for (;;) {
		need_count(&p, m->va, end);
		if (pool_covers(&p))
			break;
		/* Never allocate under the VMM lock: execute may be waiting for it. */
		pthread_mutex_unlock(&vmm->lock);
		r = pool_fill(&p);
		if (r)
			goto out_release_pool;
		pthread_mutex_lock(&vmm->lock);
	}
	prep_walk(&p, vmm->root, 0, m->va, end, true, true);
	m->op.prepared = true;
	vmm_list_add_op(vmm, &m->op);
	vmm_steal_deferred_locked(vmm, &stale, &empty);
	pthread_mutex_unlock(&vmm->lock);

	pool_release(&p);
	vmm_free_detached(vmm, stale, empty);
	return 0;

out_release_pool:
	pool_release(&p);
	vmm_va_release(vmm, &m->va_blocks);
	m->va = 0;
	memset(&m->op, 0, sizeof(m->op));
	return r;
}

int vmmfs_vmm_prepare_map(struct vmmfs_vmm *vmm, uint64_t npages,
			  const struct vmmfs_va_placement *pl,
			  struct vmmfs_map_op **op)
{
	struct vmmfs_mapping *m;
	int r;

	if (!vmm || !op)
		return -EINVAL;
	r = check_placement(vmm, npages, pl);
	if (r)
		return r;
	/* the PFNs are not known: room for the worst case, one word a page */
	m = vmm_mapping_new(vmm, npages, npages);
	if (!m)
		return -ENOMEM;
	r = vmm_prepare(vmm, m, pl, false, 0);
	if (r) {
		vmmfs_free(m);
		return r;
	}
	*op = &m->op;
	return 0;
}

/* ---- abort ------------------------------------------------------------------------------------ */

void vmmfs_vmm_abort_map(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op)
{
	struct vmmfs_mapping *m;
	struct vmm_pt *freed = NULL, *stale = NULL;
	struct lpt_page *empty = NULL;
	bool need_flush = false;
	int r;

	if (!vmm || !op || op->vmm != vmm || VMMFS_WARN_ON(!op->prepared))
		return;
	m = vmm_op_mapping(op);
	pthread_mutex_lock(&vmm->lock);
	vmm_list_del_op(vmm, op);
	op->prepared = false;
	r = vmm_release_op_locked(vmm, op, &freed, &need_flush);
	if (!r && need_flush) {
		/* An installed table emptied: unhooked above, flushed before
		 * its page is reused. */
		r = tlb_invalidate(vmm->gpu, vmm->root->addr, true);
		if (!r)
			vmm->flushes++;
	}
	if (r && need_flush) {
		struct vmm_pt **pp = &freed;

		while (*pp) {
			struct vmm_pt *pt = *pp;

			if (pt->needs_flush) {
				*pp = pt->next;
				vmm_pt_push(&vmm->quar_pts, pt);
			} else {
				pp = &pt->next;
			}
		}
		log_err("abort of a prepared map at VA 0x%llx: could not flush the TLB (%d); "
			"its emptied page tables are withheld", (unsigned long long)op->va, r);
	}
	vmm_release_slots_locked(vmm, freed, &empty);
	vmm_steal_deferred_locked(vmm, &stale, &empty);
	pthread_mutex_unlock(&vmm->lock);

	vmm_free_detached(vmm, freed, NULL);
	vmm_free_detached(vmm, stale, empty);
	vmm_va_release(vmm, &m->va_blocks);
	vmmfs_free(m);
}
