/* SPDX-License-Identifier: MIT */
/*
 * Address spaces: create/destroy, map_pages/map_alloc, unmap, lookup,
 * mem_read/mem_write, dump, stats, and the invariant checker.
 *
 * The two phases of a map are in vmm_prepare.c (may fail) and
 * vmm_execute.c (may not allocate); unmap's entry writes are in
 * vmm_execute.c too, its frees here.
 *
 * Freeing a page table is always: unhook it (parent entry cleared), one
 * TLB invalidate, and only after that completed, return its VRAM
 * (big-pages-and-tlb.md §5.5). If the invalidate fails, or the GPU is gone,
 * nothing the MMU might still reach is returned: tables, VA and mapped
 * pages stay quarantined until destroy.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "mem.h"
#include "vmm_priv.h"
#include "pramin.h"
#include "tlb.h"
#include "vram.h"

/* ---- lists ------------------------------------------------------------------------------ */

void vmm_list_add_map(struct vmmfs_mapping **head, struct vmmfs_mapping *m)
{
	m->prev = NULL;
	m->next = *head;
	if (*head)
		(*head)->prev = m;
	*head = m;
}

void vmm_list_del_map(struct vmmfs_mapping **head, struct vmmfs_mapping *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		*head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	m->prev = m->next = NULL;
}

void vmm_list_add_op(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op)
{
	op->prev = NULL;
	op->next = vmm->ops;
	if (vmm->ops)
		vmm->ops->prev = op;
	vmm->ops = op;
	vmm->nops++;
}

void vmm_list_del_op(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		vmm->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
	vmm->nops--;
}

/* ---- freeing tables ------------------------------------------------------------------------ */

void vmm_release_slots_locked(struct vmmfs_vmm *vmm, struct vmm_pt *list, struct lpt_page **empty)
{
	for (struct vmm_pt *pt = list; pt; pt = pt->next) {
		struct lpt_page *pg = pt->lpage, **pp;

		if (pt->level != WALK_LPT) {
			vmm->pt_pages--;
			continue;
		}
		pg->used &= (uint16_t)~(1u << ((pt->addr - pg->pa) / WALK_LPT_BYTES));
		pt->lpage = NULL;
		if (pg->used)
			continue;
		for (pp = &vmm->lpt_pages; *pp != pg; pp = &(*pp)->next)
			;
		*pp = pg->next;
		pg->next = *empty;
		*empty = pg;
		vmm->pt_pages--;
	}
}

void vmm_free_detached(struct vmmfs_vmm *vmm, struct vmm_pt *list, struct lpt_page *empty)
{
	while (list) {
		struct vmm_pt *pt = list;

		list = pt->next;
		if (pt->level != WALK_LPT)
			vram_free_pt(vmm->gpu->vram, pt->addr);
		vmmfs_free(pt);
	}
	while (empty) {
		struct lpt_page *pg = empty;

		empty = pg->next;
		vram_free_pt(vmm->gpu->vram, pg->pa);
		vmmfs_free(pg);
	}
}

void vmm_steal_deferred_locked(struct vmmfs_vmm *vmm, struct vmm_pt **list, struct lpt_page **empty)
{
	struct vmm_pt *d = vmm->deferred;

	vmm->deferred = NULL;
	vmm_release_slots_locked(vmm, d, empty);
	while (d) {
		struct vmm_pt *pt = d;

		d = pt->next;
		vmm_pt_push(list, pt);
	}
}

/* ---- create / destroy -------------------------------------------------------------------- */

int vmmfs_vmm_create(struct vmmfs_gpu *gpu, struct vmmfs_vmm **out)
{
	const struct mmu_fmt *f;
	struct vmmfs_vmm *vmm;
	void *mem;
	uint64_t pa;
	int r;

	if (!gpu || !out)
		return -EINVAL;
	if (atomic_load(&gpu->gone))
		return -ENODEV;
	f = mmu_fmt_get(gpu->chip->mmu_version);
	if (VMMFS_WARN_ON(!f || f->max_vid_pfn > VMM_RUN_LONG))   /* PFNs in run words */
		return -ENODEV;
	vmm = vmmfs_calloc(1, sizeof(*vmm));
	if (!vmm)
		return -ENOMEM;
	vmm->gpu = gpu;
	vmm->fmt = f;
	vmm->pd1_512m = gpu->chip->pd1_512m;
	vmm->va_size = 1ull << f->va_bits;
	pthread_mutex_init(&vmm->lock, NULL);
	pthread_mutex_init(&vmm->va_lock, NULL);

	r = vmmfs_buddy_create(vmm->va_size, VMMFS_PAGE_SIZE, &vmm->va);
	if (r)
		goto out_free_vmm;
	mem = vmmfs_calloc(1, walk_node_size(f, vmm->pd1_512m, 0));
	if (!mem) {
		r = -ENOMEM;
		goto out_destroy_va;
	}
	vmm->root = walk_node_init(mem, f, vmm->pd1_512m, 0);
	r = vram_alloc_pt(gpu->vram, &pa);
	if (r)
		goto out_free_root;
	vmm->root->addr = pa;
	/* The root is 32 B (v2) or 16 B (v3) at the start of its page; the
	 * PDB must be 4 KiB aligned, which a page is. */
	pramin_lock(gpu);
	r = pramin_zero64_n_locked(gpu, pa, (size_t)mmu_table_bytes(&f->levels[0]) / 8);
	pramin_unlock(gpu);
	if (r)
		goto out_free_pt;
	vmm->root->installed = true;
	vmm->pt_pages = 1;
	log_info("address space created: MMU v%d, %d-bit VA, root directory at VRAM 0x%llx",
		 f->version, f->va_bits, (unsigned long long)pa);
	*out = vmm;
	return 0;

out_free_pt:
	vram_free_pt(gpu->vram, pa);
out_free_root:
	vmmfs_free(vmm->root);
out_destroy_va:
	vmmfs_buddy_destroy(vmm->va);
out_free_vmm:
	pthread_mutex_destroy(&vmm->lock);
	pthread_mutex_destroy(&vmm->va_lock);
	vmmfs_free(vmm);
	return r;
}

/* Frees a subtree's nodes (and their VRAM when release). */
static void free_tree(struct vmmfs_vmm *vmm, struct vmm_pt *pt, bool release)
{
	const struct mmu_fmt *f = vmm->fmt;

	if (pt->child) {
		uint64_t n = mmu_entries(&f->levels[pt->level]) * ((int)pt->level == f->pd0 ? 2 : 1);

		for (uint64_t i = 0; i < n; i++)
			if (pt->child[i])
				free_tree(vmm, pt->child[i], release);
	}
	if (release && pt->level != WALK_LPT)
		vram_free_pt(vmm->gpu->vram, pt->addr);
	vmmfs_free(pt);
}

static void free_node_list(struct vmmfs_vmm *vmm, struct vmm_pt *list, bool release)
{
	while (list) {
		struct vmm_pt *pt = list;

		list = pt->next;
		if (release && pt->level != WALK_LPT)
			vram_free_pt(vmm->gpu->vram, pt->addr);
		vmmfs_free(pt);
	}
}

/* Returns a mapping's pages: references, then alloc= pages to VRAM. */
static void release_pages(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m)
{
	struct vmmfs_vram *v = vmm->gpu->vram;

	vmm_runs_unref(v, m);
	if (!m->allocated || !m->free_buf)
		return;
	for (uint64_t q = 0; q < m->nwords; q = vmm_run_next(m->runs, q)) {
		uint64_t pfn = vmm_run_pfn(m->runs, q), n = vmm_run_count(m->runs, q);

		for (uint64_t k = 0; k < n; k++)
			m->free_buf[k] = pfn + k;
		vram_free_pages(v, m->free_buf, n);
	}
}

static void free_mapping_list(struct vmmfs_vmm *vmm, struct vmmfs_mapping *list, bool release)
{
	while (list) {
		struct vmmfs_mapping *m = list;

		list = m->next;
		if (release)
			release_pages(vmm, m);
		vmmfs_buddy_free_list(vmm->va, &m->va_blocks);
		vmmfs_free(m->free_buf);
		vmmfs_free(m);
	}
}

void vmmfs_vmm_destroy(struct vmmfs_vmm *vmm)
{
	const struct mmu_fmt *f;
	struct vmm_pt *root;
	uint64_t pdb;
	bool release;
	int r;

	if (!vmm)
		return;
	f = vmm->fmt;
	root = vmm->root;
	pdb = root->addr;
	pthread_mutex_lock(&vmm->lock);
	while (vmm->ops) {
		struct vmmfs_map_op *op = vmm->ops;
		struct vmmfs_mapping *m = vmm_op_mapping(op);

		log_warn("address space 0x%llx destroyed with a prepared map of %llu pages at VA "
			 "0x%llx that was never executed or aborted: dropped",
			 (unsigned long long)root->addr, (unsigned long long)op->npages,
			 (unsigned long long)op->va);
		vmm_list_del_op(vmm, op);
		vmmfs_buddy_free_list(vmm->va, &m->va_blocks);
		vmmfs_free(m);
	}

	/* Unmap everything at once: clear the root, one invalidate. */
	pramin_lock(vmm->gpu);
	r = pramin_zero64_n_locked(vmm->gpu, root->addr, (size_t)mmu_table_bytes(&f->levels[0]) / 8);
	pramin_unlock(vmm->gpu);
	if (!r)
		r = tlb_invalidate(vmm->gpu, root->addr, true);
	release = r == 0;
	if (!release)
		log_err("address space 0x%llx: the GPU did not confirm it stopped using it (%d); its "
			"page tables and mapped pages stay reserved", (unsigned long long)root->addr, r);

	free_tree(vmm, root, release);
	free_node_list(vmm, vmm->deferred, true);   /* deferred: already unreachable and flushed */
	free_node_list(vmm, vmm->quar_pts, release);
	while (vmm->lpt_pages) {
		struct lpt_page *pg = vmm->lpt_pages;

		vmm->lpt_pages = pg->next;
		if (release)
			vram_free_pt(vmm->gpu->vram, pg->pa);
		vmmfs_free(pg);
	}
	free_mapping_list(vmm, vmm->maps, release);
	free_mapping_list(vmm, vmm->quar_maps, release);
	pthread_mutex_unlock(&vmm->lock);

	log_info("address space 0x%llx destroyed", (unsigned long long)pdb);
	vmmfs_buddy_destroy(vmm->va);
	pthread_mutex_destroy(&vmm->lock);
	pthread_mutex_destroy(&vmm->va_lock);
	vmmfs_free(vmm);
}

uint64_t vmmfs_vmm_pdb(const struct vmmfs_vmm *vmm)
{
	return vmm->root->addr;
}

uint64_t vmmfs_vmm_va_size(const struct vmmfs_vmm *vmm)
{
	return vmm->va_size;
}

uint64_t vmmfs_map_op_va(const struct vmmfs_map_op *op)
{
	return op->va;
}

uint64_t vmmfs_map_op_npages(const struct vmmfs_map_op *op)
{
	return op->npages;
}

/* ---- map_pages / map_alloc / unmap ---------------------------------------------------------- */

/* Run words a mapping of known PFNs is made with at first: the worst case
 * (one word a page) up to this many, so that one pass over the PFNs does;
 * the room not used is given back (MAP_SLACK_WORDS). Bigger mappings of
 * scattered PFNs grow once more, after measuring the rest. */
#define MAP_FIRST_WORDS (1u << 20)
#define MAP_SLACK_WORDS 16u

/* Runs and references for map_pages, in one pass over the PFNs when they
 * fit the room *mp was made with; else the rest is measured and *mp grown
 * (reallocated) once. All or nothing. Returns 0, -ERANGE, -EACCES,
 * -EOVERFLOW, -ENOMEM. */
static int take_runs(struct vmmfs_vmm *vmm, const uint64_t *pfns, uint64_t n,
		     struct vmmfs_mapping **mp)
{
	struct vmmfs_mapping *m = *mp, *bigger;
	uint64_t limit = vmm_pfn_limit(vmm), at = 0, words, nruns;
	struct vram_batch b;
	int r;

	m->nwords = m->nruns = m->max_run = 0;
	vram_batch_begin(vmm->gpu->vram, &b);
	r = vmm_runs_add(&b, pfns, &at, n, limit, m);
	if (r == -ENOSPC) {
		/* more runs than room: measure the rest, grow, go on */
		r = vmm_runs_measure(pfns + at, n - at, limit, &words, &nruns);
		if (!r && words > (SIZE_MAX - sizeof(*m)) / sizeof(uint32_t) - m->nwords)
			r = -ENOMEM;
		if (!r) {
			bigger = vmmfs_realloc(m, sizeof(*m) + (size_t)(m->nwords + words) * sizeof(uint32_t));
			if (bigger) {
				*mp = m = bigger;
				m->cap_words = m->nwords + words;
				r = vmm_runs_add(&b, pfns, &at, n, limit, m);
			} else {
				r = -ENOMEM;
			}
		}
	}
	if (VMMFS_WARN_ON(r == -ENOSPC))
		r = -EINVAL;
	if (r)
		vmm_runs_drop(&b, m);
	vram_batch_end(&b);
	if (!r && m->cap_words - m->nwords > MAP_SLACK_WORDS) {
		/* give back the room not used (kept if the heap says no) */
		bigger = vmmfs_realloc(m, sizeof(*m) + (size_t)m->nwords * sizeof(uint32_t));
		if (bigger) {
			*mp = m = bigger;
			m->cap_words = m->nwords;
		}
	}
	return r;
}

/*
 * prepare + execute with the PFNs known up front. free_buf (map_alloc):
 * the mapping owns the pages and returns them at unmap. *consumed is set
 * when a hardware error left the mapping (and the page references) in
 * quarantine: the caller must not free the pages then.
 */
/* The PFNs of a map_known call: an array of one per page, or runs
 * (measured by vmm_runs_measure_runs: words). */
struct known_pfns {
	const uint64_t *pfns;
	const struct vmmfs_vmm_run *runs;
	uint64_t nruns, words;
};

/* Runs and references for map_runs: one allocation of the measured size. */
static int take_runs_runs(struct vmmfs_vmm *vmm, const struct known_pfns *k, uint64_t npages,
			  struct vmmfs_mapping **mp)
{
	struct vmmfs_mapping *m = vmm_mapping_new(vmm, npages, k->words);
	struct vram_batch b;
	int r;

	if (!m)
		return -ENOMEM;
	vram_batch_begin(vmm->gpu->vram, &b);
	r = vmm_runs_add_runs(&b, k->runs, k->nruns, m);
	if (r)
		vmm_runs_drop(&b, m);
	vram_batch_end(&b);
	if (r) {
		vmmfs_free(m);
		return r;
	}
	*mp = m;
	return 0;
}

static int map_known(struct vmmfs_vmm *vmm, const struct known_pfns *k, uint64_t npages,
		     const struct vmmfs_va_placement *pl, unsigned int flags, uint64_t *free_buf,
		     struct vmmfs_mapping **out, bool *consumed)
{
	struct vmmfs_va_placement place = { .kind = VMMFS_VA_ANY, .pa_hint = VMMFS_NO_PA_HINT };
	const uint64_t *pfns = k->pfns;
	struct vmmfs_vram *v;
	struct vmmfs_mapping *m;
	int r;

	*consumed = false;
	if (!vmm || (!pfns && !k->runs) || !npages || !out ||
	    (flags & ~(VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY)))
		return -EINVAL;
	if (npages > vmm->va_size >> VMMFS_PAGE_SHIFT)
		return -ERANGE;
	v = vmm->gpu->vram;
	if (pl)
		place = *pl;
	if (place.pa_hint == VMMFS_NO_PA_HINT)
		place.pa_hint = (pfns ? pfns[0] : k->runs[0].first) << VMMFS_PAGE_SHIFT;
	/* The runs and the references first: pages being mapped are never
	 * handed to the page tables prepare allocates. */
	if (pfns) {
		m = vmm_mapping_new(vmm, npages, MIN(npages, MAP_FIRST_WORDS));
		if (!m)
			return -ENOMEM;
		r = take_runs(vmm, pfns, npages, &m);
		if (r)
			goto out_free;
	} else {
		r = take_runs_runs(vmm, k, npages, &m);
		if (r)
			return r;
	}
	r = vmm_prepare(vmm, m, &place, true, flags);
	if (r)
		goto out_unref;
	m->allocated = free_buf != NULL;
	m->free_buf = free_buf;
	r = vmm_execute(vmm, &m->op, pfns, flags, true, out);
	if (r && m->op.prepared) {
		/* refused before the point of no return: undo it all */
		m->free_buf = NULL;
		vmm_runs_unref(v, m);
		vmmfs_vmm_abort_map(vmm, &m->op);
		return r;
	}
	/* after a hardware error the references stay with the quarantine */
	*consumed = r != 0;
	return r;

out_unref:
	vmm_runs_unref(v, m);
out_free:
	vmmfs_free(m);
	return r;
}

int vmmfs_vmm_map_pages(struct vmmfs_vmm *vmm, const uint64_t *pfns, uint64_t npages,
			const struct vmmfs_va_placement *pl, unsigned int flags,
			struct vmmfs_mapping **out)
{
	uint64_t *free_buf, longest = 0, run = 0;
	bool consumed;
	int r;

	struct known_pfns k = { .pfns = pfns };

	if (!(flags & VMMFS_MAP_CLAIM))
		return map_known(vmm, &k, npages, pl, flags, NULL, out, &consumed);
	/* Claimed pages: the mapping takes them over as map_alloc's own, with
	 * room to hand them back at unmap. */
	if (!vmm || !pfns || !npages || !out)
		return -EINVAL;
	for (uint64_t i = 0; i < npages; i++) {
		run = i && pfns[i] == pfns[i - 1] + 1 ? run + 1 : 1;
		longest = MAX(longest, run);
	}
	free_buf = vmmfs_malloc(longest * sizeof(*free_buf));
	if (!free_buf)
		return -ENOMEM;
	r = map_known(vmm, &k, npages, pl, flags & ~VMMFS_MAP_CLAIM, free_buf, out, &consumed);
	if (r && !consumed)
		vmmfs_free(free_buf); /* the pages stay the caller's */
	return r;
}

/*
 * Runs that are mostly single pages (2 pages a run or fewer on average) go
 * through map_pages' path: its tight loops take references and store the
 * run record several times faster than run by run, and the array of one
 * PFN per page it needs for the time of the call is half the size of the
 * caller's runs. Returns 1 when the runs are long enough to be taken as
 * they are, else the result of the map.
 */
static int map_runs_as_pages(struct vmmfs_vmm *vmm, const struct vmmfs_vmm_run *runs,
			     uint64_t nruns, const struct vmmfs_va_placement *pl,
			     unsigned int flags, struct vmmfs_mapping **out)
{
	struct known_pfns k = { .pfns = NULL };
	uint64_t npages = 0, *pfns, *p;
	bool consumed;
	int r;

	for (uint64_t i = 0; i < nruns; i++) {
		if (!runs[i].count)
			return -EINVAL;
		if (runs[i].count > UINT64_MAX - npages)
			return -ERANGE;
		npages += runs[i].count;
	}
	if (npages > 2 * nruns)
		return 1;
	if (npages > vmm->va_size >> VMMFS_PAGE_SHIFT)
		return -ERANGE;
	pfns = vmmfs_malloc(npages * sizeof(*pfns));
	if (!pfns)
		return -ENOMEM;
	p = pfns;
	for (uint64_t i = 0; i < nruns; i++)
		for (uint64_t j = 0; j < runs[i].count; j++)
			*p++ = runs[i].first + j;
	k.pfns = pfns;
	r = map_known(vmm, &k, npages, pl, flags, NULL, out, &consumed);
	vmmfs_free(pfns);
	return r;
}

int vmmfs_vmm_map_runs(struct vmmfs_vmm *vmm, const struct vmmfs_vmm_run *runs,
		       uint64_t nruns, const struct vmmfs_va_placement *pl, unsigned int flags,
		       struct vmmfs_mapping **out)
{
	struct known_pfns k = { .runs = runs, .nruns = nruns };
	uint64_t npages, longest, *free_buf = NULL;
	bool consumed;
	int r;

	if (!vmm || !runs || !nruns || !out ||
	    (flags & ~(VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY | VMMFS_MAP_CLAIM)))
		return -EINVAL;
	if (!(flags & VMMFS_MAP_CLAIM)) {
		r = map_runs_as_pages(vmm, runs, nruns, pl, flags, out);
		if (r != 1)
			return r;
	}
	/* checks every run; nothing is referenced yet */
	r = vmm_runs_measure_runs(runs, nruns, vmm_pfn_limit(vmm), &k.words, &npages, &longest);
	if (r)
		return r;
	if (flags & VMMFS_MAP_CLAIM) {
		/* as map_pages: room to hand the claimed pages back at unmap */
		free_buf = vmmfs_malloc(longest * sizeof(*free_buf));
		if (!free_buf)
			return -ENOMEM;
	}
	r = map_known(vmm, &k, npages, pl, flags & ~VMMFS_MAP_CLAIM, free_buf, out, &consumed);
	if (r && !consumed)
		vmmfs_free(free_buf);
	return r;
}

int vmmfs_vmm_map_alloc(struct vmmfs_vmm *vmm, uint64_t bytes,
			const struct vmmfs_va_placement *pl, unsigned int flags,
			struct vmmfs_mapping **out)
{
	struct known_pfns k = { .pfns = NULL };
	struct vmmfs_vram *v;
	uint64_t npages, *pfns, longest = 0, run = 0;
	uint64_t *free_buf;
	bool consumed;
	int r;

	if (!vmm || !bytes || !out || (flags & ~(VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY)))
		return -EINVAL;
	if (bytes > vmm->va_size)
		return -ERANGE;
	npages = ALIGN_UP(bytes, VMMFS_PAGE_SIZE) >> VMMFS_PAGE_SHIFT;
	v = vmm->gpu->vram;
	pfns = vmmfs_malloc(npages * sizeof(*pfns));
	if (!pfns)
		return -ENOMEM;
	r = vram_alloc_pages(v, npages, pfns);
	if (r)
		goto out_free_pfns;
	for (uint64_t i = 0; i < npages; i++) {
		run = i && pfns[i] == pfns[i - 1] + 1 ? run + 1 : 1;
		longest = MAX(longest, run);
	}
	/* Room to hand the pages back at unmap, untouched (no resident
	 * memory) until then. */
	free_buf = vmmfs_malloc(longest * sizeof(*free_buf));
	if (!free_buf) {
		r = -ENOMEM;
		goto out_free_pages;
	}
	/* Fresh pages: zero them before the GPU can see them. */
	pramin_lock(vmm->gpu);
	for (uint64_t i = 0, j; i < npages && !r; i = j) {
		for (j = i + 1; j < npages && pfns[j] == pfns[j - 1] + 1; j++)
			;
		r = pramin_zero64_n_locked(vmm->gpu, pfns[i] << VMMFS_PAGE_SHIFT,
					   (size_t)(j - i) * (VMMFS_PAGE_SIZE / 8));
	}
	pramin_unlock(vmm->gpu);
	if (r)
		goto out_free_buf;
	k.pfns = pfns;
	r = map_known(vmm, &k, npages, pl, flags, free_buf, out, &consumed);
	if (consumed) {
		/* quarantined with its pages: destroy returns them */
		vmmfs_free(pfns);
		return r;
	}
	if (r)
		goto out_free_buf;
	vmmfs_free(pfns);
	return 0;

out_free_buf:
	vmmfs_free(free_buf);
out_free_pages:
	vram_free_pages(v, pfns, npages);
out_free_pfns:
	vmmfs_free(pfns);
	return r;
}

int vmmfs_vmm_unmap(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m)
{
	struct vmm_pt *freed = NULL, *stale = NULL;
	struct lpt_page *empty = NULL;
	int r;

	if (!vmm || !m || m->vmm != vmm || m->state != VMM_MAP_LIVE)
		return -EINVAL;
	pthread_mutex_lock(&vmm->lock);
	vmm_list_del_map(&vmm->maps, m);
	vmm->nmaps--;
	vmm->mapped_pages -= m->npages;
	vmm->unmaps_done++;
	r = vmm_unmap_locked(vmm, m, &freed);
	if (!r) {
		r = tlb_invalidate(vmm->gpu, vmm->root->addr, true);
		if (!r)
			vmm->flushes++;
	}
	if (r) {
		/* Not proven gone from the MMU: keep tables, VA and pages. */
		while (freed) {
			struct vmm_pt *pt = freed;

			freed = pt->next;
			vmm_pt_push(&vmm->quar_pts, pt);
		}
		m->state = VMM_MAP_QUAR_HELD;
		vmm_list_add_map(&vmm->quar_maps, m);
		vmm->quarantined_pages += m->npages;
		log_err("unmap of %llu pages at VA 0x%llx: %s (%d); its VA, pages and emptied page "
			"tables are withheld", (unsigned long long)m->npages,
			(unsigned long long)m->va, r == -ETIMEDOUT ? "TLB invalidate timed out" :
			"the GPU is gone", r);
	}
	vmm_release_slots_locked(vmm, freed, &empty);
	vmm_steal_deferred_locked(vmm, &stale, &empty);
	pthread_mutex_unlock(&vmm->lock);

	vmm_free_detached(vmm, freed, NULL);
	vmm_free_detached(vmm, stale, empty);
	if (r)
		return r;
	vmm_va_release(vmm, &m->va_blocks);
	release_pages(vmm, m);
	vmmfs_free(m->free_buf);
	vmmfs_free(m);
	return 0;
}

/* ---- mappings ------------------------------------------------------------------------------- */

void vmmfs_mapping_get_info(const struct vmmfs_mapping *m, struct vmmfs_mapping_info *info)
{
	memset(info, 0, sizeof(*info));
	info->va = m->va;
	info->npages = m->npages;
	info->size = m->npages << VMMFS_PAGE_SHIFT;
	info->read_only = m->read_only;
	info->allocated = m->allocated;
	info->pages_4k = m->pages_4k;
	info->pages_64k = m->pages_64k;
	info->pages_2m = m->pages_2m;
	info->pages_512m = m->pages_512m;
	info->nruns = m->nruns;
}

int vmmfs_mapping_for_each_run(const struct vmmfs_mapping *m,
			       int (*fn)(void *ctx, uint64_t first_pfn, uint64_t count),
			       void *ctx)
{
	uint64_t q = 0;

	while (q < m->nwords) {
		uint64_t first = vmm_run_pfn(m->runs, q), count = vmm_run_count(m->runs, q);
		int r;

		/* Runs longer than VMM_RUN_MAX pages are stored in pieces. */
		for (q = vmm_run_next(m->runs, q);
		     q < m->nwords && vmm_run_pfn(m->runs, q) == first + count;
		     q = vmm_run_next(m->runs, q))
			count += vmm_run_count(m->runs, q);
		r = fn(ctx, first, count);
		if (r)
			return r;
	}
	return 0;
}

/* ---- lookup, memory, dump, stats ----------------------------------------------------------- */

static void vmm_hw(const struct vmmfs_vmm *vmm, struct walk_hw *hw)
{
	hw->gpu = vmm->gpu;
	hw->fmt = vmm->fmt;
	hw->pd1_512m = vmm->pd1_512m;
	hw->pdb = vmm->root->addr;
}

int vmmfs_vmm_lookup(struct vmmfs_vmm *vmm, uint64_t va, struct vmmfs_lookup *out)
{
	struct walk_hw hw;
	int r;

	if (!vmm || !out)
		return -EINVAL;
	if (va >= vmm->va_size)
		return -ERANGE;
	vmm_hw(vmm, &hw);
	pthread_mutex_lock(&vmm->lock);
	r = walk_lookup(&hw, va, out);
	pthread_mutex_unlock(&vmm->lock);
	return r;
}

static long mem_copy(struct vmmfs_vmm *vmm, uint64_t va, void *rbuf, const void *wbuf, size_t len)
{
	struct walk_hw hw;
	size_t done = 0;
	int err = 0;

	if (!vmm || (!rbuf && !wbuf && len))
		return -EINVAL;
	if (va >= vmm->va_size)
		return -ERANGE;
	if (len > vmm->va_size - va)
		len = (size_t)(vmm->va_size - va);
	if (len > LONG_MAX)
		len = LONG_MAX;
	vmm_hw(vmm, &hw);
	pthread_mutex_lock(&vmm->lock);
	while (done < len) {
		struct vmmfs_lookup lk;
		uint64_t at = va + done;
		size_t n;

		err = walk_lookup(&hw, at, &lk);
		if (err)
			break;
		if (lk.state == VMMFS_LOOKUP_SPARSE) {
			/* reads zero, writes dropped */
			n = (size_t)MIN((uint64_t)(len - done), lk.page_size - (at & (lk.page_size - 1)));
			if (rbuf)
				memset((char *)rbuf + done, 0, n);
			done += n;
			continue;
		}
		if (lk.state != VMMFS_LOOKUP_MAPPED) {
			err = -EFAULT;
			break;
		}
		if (wbuf && lk.read_only) {
			err = -EACCES;
			break;
		}
		n = (size_t)MIN((uint64_t)(len - done), lk.page_size - (at & (lk.page_size - 1)));
		err = rbuf ? pramin_read(vmm->gpu, lk.pa, (char *)rbuf + done, n)
			   : pramin_write(vmm->gpu, lk.pa, (const char *)wbuf + done, n);
		if (err)
			break;
		done += n;
	}
	pthread_mutex_unlock(&vmm->lock);
	return done ? (long)done : err;
}

long vmmfs_vmm_mem_read(struct vmmfs_vmm *vmm, uint64_t va, void *buf, size_t len)
{
	return mem_copy(vmm, va, buf, NULL, len);
}

long vmmfs_vmm_mem_write(struct vmmfs_vmm *vmm, uint64_t va, const void *buf, size_t len)
{
	return mem_copy(vmm, va, NULL, buf, len);
}

int vmmfs_vmm_dump(struct vmmfs_vmm *vmm,
		   int (*fn)(void *ctx, const struct vmmfs_pt_entry *e), void *ctx)
{
	struct walk_hw hw;
	int r;

	if (!vmm || !fn)
		return -EINVAL;
	vmm_hw(vmm, &hw);
	pthread_mutex_lock(&vmm->lock);
	r = walk_dump(&hw, fn, ctx);
	pthread_mutex_unlock(&vmm->lock);
	return r;
}

void vmmfs_vmm_get_stats(struct vmmfs_vmm *vmm, struct vmmfs_vmm_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&vmm->lock);
	st->maps = vmm->maps_done;
	st->unmaps = vmm->unmaps_done;
	st->tlb_flushes = vmm->flushes;
	st->pt_pages = vmm->pt_pages;
	st->mapped_pages = vmm->mapped_pages;
	st->mappings = vmm->nmaps;
	st->pending = vmm->nops;
	st->quarantined_pages = vmm->quarantined_pages;
	st->va_size = vmm->va_size;
	pthread_mutex_unlock(&vmm->lock);
	pthread_mutex_lock(&vmm->va_lock);
	st->va_free = vmmfs_buddy_avail(vmm->va);
	pthread_mutex_unlock(&vmm->va_lock);
}

/* ---- the invariant checker ------------------------------------------------------------------ */

/*
 * Test/debug only. Its scratch memory comes from plain malloc on purpose:
 * the checker must not count as an allocation of the code under test
 * (fault injection, live-object counts).
 */
struct chk {
	struct vmmfs_vmm *vmm;
	const struct mmu_fmt *f;
	char *err;
	size_t len;
	int r;
	uint64_t words[512];
	struct vmmfs_mapping **maps;  /* live and kept-mapped, by VA */
	size_t nm, mi;
	uint64_t ri, rstart;          /* run cursor in maps[mi] */
	uint64_t pt_pages, lpts, lpt_slots;
};

#define CHK_FAIL(c, ...) do { \
	if (!(c)->r) { \
		snprintf((c)->err, (c)->len, __VA_ARGS__); \
		(c)->r = -EUCLEAN; \
	} } while (0)

static int map_cmp(const void *a, const void *b)
{
	const struct vmmfs_mapping *x = *(struct vmmfs_mapping *const *)a;
	const struct vmmfs_mapping *y = *(struct vmmfs_mapping *const *)b;

	return x->va < y->va ? -1 : x->va > y->va;
}

static uint64_t map_end(const struct vmmfs_mapping *m)
{
	return m->va + (m->npages << VMMFS_PAGE_SHIFT);
}

static void chk_cursor_last(struct chk *c)
{
	const struct vmmfs_mapping *m = c->maps[c->mi];

	c->ri = vmm_run_prev(m->runs, m->nwords);
	c->rstart = m->npages - vmm_run_count(m->runs, c->ri);
}

/* The PFN and access the mappings say for va. The cursor moves both ways
 * (the tree is checked in VA order, but an LPT and the PT of the same slot
 * cover the same 2 MiB), each step O(1) per run passed. */
static bool chk_expect(struct chk *c, uint64_t va, uint64_t *pfn, bool *ro)
{
	struct vmmfs_mapping *m;
	uint64_t pg;

	if (!c->nm)
		return false;
	while (c->mi > 0 && va < c->maps[c->mi]->va) {
		c->mi--;
		chk_cursor_last(c);
	}
	while (c->mi + 1 < c->nm && va >= map_end(c->maps[c->mi])) {
		c->mi++;
		c->ri = c->rstart = 0;
	}
	m = c->maps[c->mi];
	if (va < m->va || va >= map_end(m))
		return false;
	pg = (va - m->va) >> VMMFS_PAGE_SHIFT;
	while (pg < c->rstart) {
		c->ri = vmm_run_prev(m->runs, c->ri);
		c->rstart -= vmm_run_count(m->runs, c->ri);
	}
	while (pg >= c->rstart + vmm_run_count(m->runs, c->ri)) {
		c->rstart += vmm_run_count(m->runs, c->ri);
		c->ri = vmm_run_next(m->runs, c->ri);
	}
	*pfn = vmm_run_pfn(m->runs, c->ri) + (pg - c->rstart);
	*ro = m->read_only;
	return true;
}

/* A valid leaf at va of size bytes: PFN, access and contiguity. */
static void chk_leaf(struct chk *c, uint64_t raw, bool is_lpte, uint64_t va, uint64_t size,
		     const char *what, uint64_t at)
{
	struct mmu_pte pte;
	uint64_t pfn, last;
	bool ro, ro2;

	mmu_pte_decode(c->f, raw, is_lpte, &pte);
	if (pte.kind != MMU_PTE_VALID) {
		CHK_FAIL(c, "%s at VRAM 0x%llx (VA 0x%llx) is 0x%llx, expected a valid PTE", what,
			 (unsigned long long)at, (unsigned long long)va, (unsigned long long)raw);
		return;
	}
	if (!chk_expect(c, va, &pfn, &ro)) {
		CHK_FAIL(c, "%s at VRAM 0x%llx maps VA 0x%llx, which no mapping covers", what,
			 (unsigned long long)at, (unsigned long long)va);
		return;
	}
	if (pte.pfn != pfn || pte.read_only != ro || pte.aper != MMU_APER_VID)
		CHK_FAIL(c, "%s at VRAM 0x%llx (VA 0x%llx) maps PFN 0x%llx%s, expected 0x%llx%s", what,
			 (unsigned long long)at, (unsigned long long)va, (unsigned long long)pte.pfn,
			 pte.read_only ? " ro" : "", (unsigned long long)pfn, ro ? " ro" : "");
	if (size > VMMFS_PAGE_SIZE) {
		uint64_t end = va + size - VMMFS_PAGE_SIZE;

		if (!chk_expect(c, end, &last, &ro2) ||
		    last != pfn + ((size >> VMMFS_PAGE_SHIFT) - 1) || ro2 != ro)
			CHK_FAIL(c, "%s at VRAM 0x%llx: a %llu KiB page over VA 0x%llx that is not one "
				 "contiguous run of its mapping", what, (unsigned long long)at,
				 (unsigned long long)(size >> 10), (unsigned long long)va);
	}
}

static void chk_zero_expected(struct chk *c, struct vmm_pt *t, uint32_t i, uint64_t got)
{
	CHK_FAIL(c, "%s at VRAM 0x%llx entry %u is 0x%llx: it points at nothing the shadow knows",
		 t->level == WALK_LPT ? "LPT" : c->f->levels[t->level].name,
		 (unsigned long long)t->addr, i, (unsigned long long)got);
}

static void chk_table(struct chk *c, struct vmm_pt *t, uint64_t base);

static void chk_dir(struct chk *c, struct vmm_pt *t, uint64_t base)
{
	const struct mmu_fmt *f = c->f;
	const struct mmu_level *l = &f->levels[t->level];
	uint32_t n = (uint32_t)mmu_entries(l), e0 = n, nchild = 0, leaves = 0;
	uint64_t span = mmu_entry_span(l), words[512];
	bool pd0 = l->dual;

	if (t->installed) {
		pramin_lock(c->vmm->gpu);
		int r = pramin_rd64_n_locked(c->vmm->gpu, t->addr, words, (size_t)n * l->entry_size / 8);
		pramin_unlock(c->vmm->gpu);
		if (r) {
			if (!c->r) {
				snprintf(c->err, c->len, "cannot read %s at VRAM 0x%llx (%d)", l->name,
					 (unsigned long long)t->addr, r);
				c->r = r;
			}
			return;
		}
	}
	for (uint32_t i = 0; i < n && !c->r; i++) {
		uint64_t va = base + (uint64_t)i * span;
		bool leaf = t->leafmap && walk_bit(t->leafmap, i);
		struct vmm_pt *ch = t->child[i], *big = pd0 ? t->child[e0 + i] : NULL;

		nchild += !!ch + !!big;
		leaves += leaf;
		if (leaf && (ch || big))
			CHK_FAIL(c, "%s at VRAM 0x%llx entry %u is a leaf and has a table", l->name,
				 (unsigned long long)t->addr, i);
		if (ch && (ch->parent != t || ch->pidx != i))
			CHK_FAIL(c, "%s entry %u: child table has a wrong parent link", l->name, i);
		if (big && (big->parent != t || big->pidx != i || big->level != WALK_LPT))
			CHK_FAIL(c, "%s entry %u: big table has a wrong parent link", l->name, i);
		if (!t->installed) {
			if ((ch && ch->installed) || (big && big->installed) || leaf)
				CHK_FAIL(c, "%s at VRAM 0x%llx is not installed but holds installed entries",
					 l->name, (unsigned long long)t->addr);
		} else if (pd0) {
			uint64_t lo = words[2 * i], hi = words[2 * i + 1], want[2];
			struct mmu_pde b = { 0 }, s = { 0 };

			/* words believed 0 are neither read nor written again */
			if ((lo && !walk_bit(t->hwlo, i)) || (hi && !walk_bit(t->hwhi, i)))
				CHK_FAIL(c, "PD0 at VRAM 0x%llx entry %u is 0x%llx:0x%llx, but the shadow "
					 "believes its %s word is 0", (unsigned long long)t->addr, i,
					 (unsigned long long)lo, (unsigned long long)hi,
					 lo && !walk_bit(t->hwlo, i) ? "low" : "high");
			if (leaf) {
				chk_leaf(c, lo, false, va, span, "PD0 2 MiB PTE", t->addr + (uint64_t)i * 16);
				if (hi)
					CHK_FAIL(c, "PD0 at VRAM 0x%llx entry %u: 2 MiB PTE with a non-zero "
						 "high word 0x%llx", (unsigned long long)t->addr, i,
						 (unsigned long long)hi);
			} else {
				if (big && big->installed)
					b = (struct mmu_pde){ .present = true, .aper = MMU_APER_VID,
							      .addr = big->addr, .no_ats = f->layout->vid_pde_no_ats };
				if (ch && ch->installed)
					s = (struct mmu_pde){ .present = true, .aper = MMU_APER_VID,
							      .addr = ch->addr, .no_ats = f->layout->vid_pde_no_ats };
				if (f->layout->dual_shared_no_ats)
					b.no_ats = s.no_ats = b.no_ats || s.no_ats;
				if (mmu_dual_encode(f, &b, &s, want))
					want[0] = want[1] = ~0ull;
				if (lo != want[0] || hi != want[1])
					CHK_FAIL(c, "PD0 at VRAM 0x%llx entry %u is 0x%llx:0x%llx, the shadow "
						 "says 0x%llx:0x%llx", (unsigned long long)t->addr, i,
						 (unsigned long long)lo, (unsigned long long)hi,
						 (unsigned long long)want[0], (unsigned long long)want[1]);
			}
		} else {
			uint64_t e = words[i];

			if (leaf)
				chk_leaf(c, e, false, va, span, l->name, t->addr + (uint64_t)i * 8);
			else if (ch && ch->installed) {
				if (e != mmu_pde_vid(f, ch->addr))
					CHK_FAIL(c, "%s at VRAM 0x%llx entry %u is 0x%llx, expected a PDE "
						 "to 0x%llx", l->name, (unsigned long long)t->addr, i,
						 (unsigned long long)e, (unsigned long long)ch->addr);
			} else if (e) {
				chk_zero_expected(c, t, i, e);
			}
		}
		if (big)
			chk_table(c, big, va);
		if (ch)
			chk_table(c, ch, va);
	}
	if (nchild != t->nchild || leaves != t->valid)
		CHK_FAIL(c, "%s at VRAM 0x%llx: shadow counts %u tables and %u leaves, has %u and %u",
			 l->name, (unsigned long long)t->addr, t->nchild, t->valid, nchild, leaves);
}

static void chk_pt(struct chk *c, struct vmm_pt *t, uint64_t base)
{
	const struct mmu_level *l = &c->f->levels[c->f->nlevels - 1];
	uint32_t n = (uint32_t)mmu_entries(l), valid = 0, cnt[WALK_CHUNKS] = { 0 };

	if (t->installed) {
		pramin_lock(c->vmm->gpu);
		int r = pramin_rd64_n_locked(c->vmm->gpu, t->addr, c->words, n);
		pramin_unlock(c->vmm->gpu);
		if (r) {
			if (!c->r) {
				snprintf(c->err, c->len, "cannot read PT at VRAM 0x%llx (%d)",
					 (unsigned long long)t->addr, r);
				c->r = r;
			}
			return;
		}
		for (uint32_t i = 0; i < n && !c->r; i++) {
			if (!c->words[i])
				continue;
			chk_leaf(c, c->words[i], false, base + (uint64_t)i * VMMFS_PAGE_SIZE,
				 VMMFS_PAGE_SIZE, "PTE", t->addr + (uint64_t)i * 8);
			valid++;
			cnt[i / 16]++;
		}
	}
	for (uint32_t k = 0; k < WALK_CHUNKS; k++)
		if (cnt[k] != t->cnt[k])
			CHK_FAIL(c, "PT at VRAM 0x%llx: chunk %u has %u valid PTEs, the shadow says %u",
				 (unsigned long long)t->addr, k, cnt[k], t->cnt[k]);
	if (valid != t->valid)
		CHK_FAIL(c, "PT at VRAM 0x%llx has %u valid PTEs, the shadow says %u",
			 (unsigned long long)t->addr, valid, t->valid);
}

static void chk_lpt(struct chk *c, struct vmm_pt *t, uint64_t base)
{
	const struct vmm_pt *pt = t->parent->child[t->pidx];
	uint64_t no4k = mmu_lpte_raw_no4k(c->f), words[WALK_CHUNKS];

	if (!t->installed) {
		if (t->lvalid)
			CHK_FAIL(c, "LPT at VRAM 0x%llx is not installed but has valid entries",
				 (unsigned long long)t->addr);
		return;
	}
	pramin_lock(c->vmm->gpu);
	int r = pramin_rd64_n_locked(c->vmm->gpu, t->addr, words, WALK_CHUNKS);
	pramin_unlock(c->vmm->gpu);
	if (r) {
		if (!c->r) {
			snprintf(c->err, c->len, "cannot read LPT at VRAM 0x%llx (%d)",
				 (unsigned long long)t->addr, r);
			c->r = r;
		}
		return;
	}
	for (uint32_t k = 0; k < WALK_CHUNKS && !c->r; k++) {
		uint64_t want = pt && pt->cnt[k] ? 0 : no4k;

		if (t->lvalid & (1u << k)) {
			chk_leaf(c, words[k], true, base + ((uint64_t)k << 16), 1ull << 16, "big PTE",
				 t->addr + (uint64_t)k * 8);
			if (pt && pt->cnt[k])
				CHK_FAIL(c, "LPT at VRAM 0x%llx entry %u: a 64 KiB page over valid small PTEs",
					 (unsigned long long)t->addr, k);
		} else if (words[k] != want) {
			CHK_FAIL(c, "LPT at VRAM 0x%llx entry %u is 0x%llx, expected 0x%llx (%s)",
				 (unsigned long long)t->addr, k, (unsigned long long)words[k],
				 (unsigned long long)want, want ? "no 4 KiB PTEs" : "use the small PTEs");
		}
	}
	if ((uint32_t)__builtin_popcount(t->lvalid) != t->valid)
		CHK_FAIL(c, "LPT at VRAM 0x%llx: %u valid entries, the shadow says %u",
			 (unsigned long long)t->addr, __builtin_popcount(t->lvalid), t->valid);
}

static void chk_table(struct chk *c, struct vmm_pt *t, uint64_t base)
{
	const struct mmu_fmt *f = c->f;
	const char *name = t->level == WALK_LPT ? "LPT" : f->levels[t->level].name;

	if (c->r)
		return;
	if (t->parent && vmm_pt_refs(t) == 0)
		CHK_FAIL(c, "empty %s at VRAM 0x%llx left allocated", name, (unsigned long long)t->addr);
	if (t->resv != t->chk)
		CHK_FAIL(c, "%s at VRAM 0x%llx: %u reserved entries, the prepared ops hold %u", name,
			 (unsigned long long)t->addr, t->resv, t->chk);
	if (t->parent && t->installed && !t->parent->installed)
		CHK_FAIL(c, "%s at VRAM 0x%llx is installed below a table that is not", name,
			 (unsigned long long)t->addr);
	if (t->level == WALK_LPT) {
		c->lpts++;
		if (!t->lpage || t->addr < t->lpage->pa || t->addr >= t->lpage->pa + VMMFS_PAGE_SIZE ||
		    !(t->lpage->used & (1u << ((t->addr - t->lpage->pa) / WALK_LPT_BYTES))))
			CHK_FAIL(c, "LPT at VRAM 0x%llx has no pool slot", (unsigned long long)t->addr);
		chk_lpt(c, t, base);
		return;
	}
	c->pt_pages++;
	if (vram_owner(c->vmm->gpu->vram, t->addr >> VMMFS_PAGE_SHIFT) != VRAM_OWNER_PT)
		CHK_FAIL(c, "%s at VRAM 0x%llx: the page is not owned as a page table", name,
			 (unsigned long long)t->addr);
	if ((int)t->level == f->nlevels - 1)
		chk_pt(c, t, base);
	else
		chk_dir(c, t, base);
}

/* Sets every node's chk to the reservations the prepared ops hold on it,
 * by the rules in vmm_priv.h, independently of prepare's own walk. */
static void chk_resv_clear(struct chk *c, struct vmm_pt *t)
{
	t->chk = 0;
	if (!t->child)
		return;
	for (uint64_t i = 0; i < mmu_entries(&c->f->levels[t->level]) * ((int)t->level == c->f->pd0 ? 2 : 1); i++)
		if (t->child[i])
			chk_resv_clear(c, t->child[i]);
}

static void chk_resv_add(struct chk *c, struct vmm_plan *p, struct vmm_pt *d, uint64_t a, uint64_t b)
{
	const struct mmu_level *l = &c->f->levels[d->level];
	uint64_t span = mmu_entry_span(l), base = ALIGN_DOWN(a, mmu_table_span(l));
	uint32_t e0 = (uint32_t)mmu_entries(&c->f->levels[c->f->pd0]);

	for (uint32_t i = mmu_index(l, a); i <= mmu_index(l, b - 1); i++) {
		uint64_t s0 = base + (uint64_t)i * span, sa = MAX(a, s0), sb = MIN(b, s0 + span);

		if (l->dual) {
			struct vmm_pt *pt = d->child[i], *lpt = d->child[e0 + i];
			bool is2m = plan_use_2m(p, pt, lpt, sa, sb);

			if (pt)
				pt->chk += (uint32_t)((sb - sa) >> VMMFS_PAGE_SHIFT);
			if (lpt)
				lpt->chk += plan_lpt_resv(p, sa, sb, is2m);
		} else if (d->child[i]) {
			chk_resv_add(c, p, d->child[i], sa, sb);
		}
	}
}

int vmmfs_vmm_check(struct vmmfs_vmm *vmm, char *err, size_t len)
{
	struct chk *c = calloc(1, sizeof(*c));
	uint64_t va_used = 0, slots = 0, pool_pages = 0, lpt_nodes = 0, pt_nodes = 0;
	size_t k = 0;
	int r;

	if (!c) {
		snprintf(err, len, "checker: out of memory");
		return -ENOMEM;
	}
	c->vmm = vmm;
	c->f = vmm->fmt;
	c->err = err;
	c->len = len;
	if (len)
		err[0] = '\0';
	pthread_mutex_lock(&vmm->lock);

	for (struct vmmfs_mapping *m = vmm->maps; m; m = m->next)
		c->nm++;
	for (struct vmmfs_mapping *m = vmm->quar_maps; m; m = m->next)
		c->nm += m->state == VMM_MAP_QUAR_MAPPED;
	c->maps = calloc(c->nm + 1, sizeof(*c->maps));
	if (!c->maps) {
		pthread_mutex_unlock(&vmm->lock);
		free(c);
		snprintf(err, len, "checker: out of memory");
		return -ENOMEM;
	}
	for (struct vmmfs_mapping *m = vmm->maps; m; m = m->next)
		c->maps[k++] = m;
	for (struct vmmfs_mapping *m = vmm->quar_maps; m; m = m->next)
		if (m->state == VMM_MAP_QUAR_MAPPED)
			c->maps[k++] = m;
	qsort(c->maps, c->nm, sizeof(*c->maps), map_cmp);
	for (size_t i = 1; i < c->nm; i++)
		if (c->maps[i]->va < c->maps[i - 1]->va + (c->maps[i - 1]->npages << VMMFS_PAGE_SHIFT))
			CHK_FAIL(c, "mappings at VA 0x%llx and 0x%llx overlap",
				 (unsigned long long)c->maps[i - 1]->va, (unsigned long long)c->maps[i]->va);

	/* Reservations, from the prepared ops. */
	chk_resv_clear(c, vmm->root);
	for (struct vmmfs_map_op *op = vmm->ops; op; op = op->next) {
		struct vmmfs_mapping *m = vmm_op_mapping(op);
		struct vmm_plan p;

		plan_init(&p, vmm, op->va, op->npages, op->planned, op->planned ? m : NULL,
			  op->plan_flags);
		chk_resv_add(c, &p, vmm->root, op->va, op->va + (op->npages << VMMFS_PAGE_SHIFT));
	}

	chk_table(c, vmm->root, 0);

	/* Accounting: pages, VA, the LPT pool. */
	uint64_t mapped = 0, nmaps = 0, quar = 0;

	for (struct vmmfs_mapping *m = vmm->maps; m && !c->r; m = m->next) {
		mapped += m->npages;
		nmaps++;
		va_used += m->npages;
		uint64_t runs = 0, pages = 0;

		for (uint64_t i = 0; i < m->nwords && !c->r; i = vmm_run_next(m->runs, i)) {
			uint64_t pfn = vmm_run_pfn(m->runs, i), n = vmm_run_count(m->runs, i);

			runs++;
			pages += n;
			for (uint64_t q = 0; q < n; q++) {
				uint32_t w = vram_owner(vmm->gpu->vram, pfn + q);

				if (w == 0 || w == VRAM_OWNER_PT) {
					CHK_FAIL(c, "mapped page 0x%llx has owner word 0x%x",
						 (unsigned long long)(pfn + q), w);
					break;
				}
			}
		}
		if (!c->r && (pages != m->npages || runs < m->nruns || m->nwords > m->cap_words))
			CHK_FAIL(c, "mapping at VA 0x%llx: %llu pages in %llu stored runs (%llu words "
				 "of %llu), it says %llu pages in %llu runs", (unsigned long long)m->va,
				 (unsigned long long)pages, (unsigned long long)runs,
				 (unsigned long long)m->nwords, (unsigned long long)m->cap_words,
				 (unsigned long long)m->npages, (unsigned long long)m->nruns);
	}
	for (struct vmmfs_mapping *m = vmm->quar_maps; m; m = m->next) {
		quar += m->npages;
		va_used += m->npages;
	}
	for (struct vmmfs_map_op *op = vmm->ops; op; op = op->next)
		va_used += op->npages;
	if (mapped != vmm->mapped_pages || nmaps != vmm->nmaps || quar != vmm->quarantined_pages)
		CHK_FAIL(c, "counters: %llu mapped pages in %llu mappings (%llu quarantined), stats say "
			 "%llu in %llu (%llu)", (unsigned long long)mapped, (unsigned long long)nmaps,
			 (unsigned long long)quar, (unsigned long long)vmm->mapped_pages,
			 (unsigned long long)vmm->nmaps, (unsigned long long)vmm->quarantined_pages);
	pthread_mutex_lock(&vmm->va_lock);
	if (vmm->va_size - vmmfs_buddy_avail(vmm->va) != va_used << VMMFS_PAGE_SHIFT)
		CHK_FAIL(c, "VA in use is 0x%llx bytes, mappings and prepared ops hold 0x%llx",
			 (unsigned long long)(vmm->va_size - vmmfs_buddy_avail(vmm->va)),
			 (unsigned long long)(va_used << VMMFS_PAGE_SHIFT));
	{
		char berr[256];

		r = vmmfs_buddy_check(vmm->va, berr, sizeof(berr));
		if (r)
			CHK_FAIL(c, "VA allocator: %s", berr);
	}
	pthread_mutex_unlock(&vmm->va_lock);

	for (struct lpt_page *pg = vmm->lpt_pages; pg; pg = pg->next) {
		pool_pages++;
		slots += (uint64_t)__builtin_popcount(pg->used);
		if (!pg->used)
			CHK_FAIL(c, "empty LPT pool page at VRAM 0x%llx kept", (unsigned long long)pg->pa);
	}
	for (struct vmm_pt *pt = vmm->deferred; pt; pt = pt->next)
		pt->level == WALK_LPT ? lpt_nodes++ : pt_nodes++;
	for (struct vmm_pt *pt = vmm->quar_pts; pt; pt = pt->next)
		pt->level == WALK_LPT ? lpt_nodes++ : pt_nodes++;
	if (slots != c->lpts + lpt_nodes)
		CHK_FAIL(c, "LPT pool: %llu slots used, %llu big tables exist",
			 (unsigned long long)slots, (unsigned long long)(c->lpts + lpt_nodes));
	if (vmm->pt_pages != c->pt_pages + pt_nodes + pool_pages)
		CHK_FAIL(c, "pt_pages is %llu, the tree holds %llu (+%llu detached, %llu LPT pool)",
			 (unsigned long long)vmm->pt_pages, (unsigned long long)c->pt_pages,
			 (unsigned long long)pt_nodes, (unsigned long long)pool_pages);
	pthread_mutex_unlock(&vmm->lock);
	r = c->r;
	free(c->maps);
	free(c);
	return r;
}
