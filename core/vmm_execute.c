/* SPDX-License-Identifier: MIT */
/*
 * Phase 2 of a map (execute), unmap, and the release of a prepared op.
 *
 * Nothing in this file allocates or frees: no heap (mem.h is not
 * included), no VRAM, no VA. Execute works only on tables that prepare
 * linked into the shadow tree and reserved; tables that big pages made
 * unnecessary go to vmm->deferred and are freed by a later call.
 *
 * One walk per op over the shadow, depth first, each table visited once:
 *   - leaf tables first, then their parent entry (bottom-up), so a
 *     directory entry never points at a table whose content is not yet
 *     written;
 *   - a table that is not yet installed is written completely in one batch
 *     (the op's entries plus zeros for the rest: no separate zeroing);
 *   - in an installed table only the entries that change are written, one
 *     batch per run of consecutive entries;
 *   - a dual PDE in an installed PD0 is written from the shadow, low word
 *     first, but a word that vmmfs last wrote as 0 and that stays 0 is
 *     neither written nor read (the shadow keeps a bit per word: may be
 *     non-zero), so a 2 MiB PTE over an empty slot is one write and so is
 *     a small table's pointer next to no big one; a half the shadow does
 *     not own but that may be non-zero is read back and kept
 *     (big-pages-and-tlb.md §7.2, nvidia-mmu.md §10.2 item 6);
 *   - PTEs are made two at a time, counted up from a run's first PFN where
 *     one run covers them, else from the caller's PFN array;
 *   - then one TLB invalidate (by the caller of the walk).
 *
 * Big pages (big-pages-and-tlb.md §2, §3, §4, §7.2):
 *   2 MiB   PD0 low word = PTE, high word 0, where a whole PD0 slot is one
 *           contiguous 2 MiB-aligned PFN run and no table is installed in
 *           the slot;
 *   512 MiB the same at PD1 on chips with pd1_512m;
 *   64 KiB  big PTEs in the slot's LPT for whole, contiguous, aligned
 *           64 KiB chunks. LPT entries obey: valid (a 64 KiB page), 0 when
 *           the small PT has valid PTEs under the chunk (so the MMU reads
 *           them), NO_4K otherwise (the MMU stops without reading the PT).
 *           A chunk never has both a valid big PTE and valid small PTEs:
 *           a 64 KiB page is used only where the whole chunk is the op's.
 */
#include <string.h>
#include "internal.h"
#include "vmm_priv.h"
#include "pramin.h"
#include "tlb.h"
#include "vram.h"

#define SZ_64K (1ull << 16)

/* ---- runs ---------------------------------------------------------------------- */

uint64_t vmm_pfn_limit(const struct vmmfs_vmm *vmm)
{
	return MIN(vmm->fmt->max_vid_pfn, vmm->gpu->info.vram_size >> VMMFS_PAGE_SHIFT);
}

/* The end of the run of consecutive PFNs that starts at pfns[i]: pfns[j] -
 * j is the same for every j of a run. Four at a time, no branch per PFN. */
static inline uint64_t run_end(const uint64_t *pfns, uint64_t i, uint64_t n)
{
	uint64_t key = pfns[i] - i, j = i + 1;

	if (j == n || pfns[j] - j != key)
		return j;       /* a single page: scattered PFNs */
	j++;
	while (j + 4 <= n && !(((pfns[j] - j) ^ key) | ((pfns[j + 1] - (j + 1)) ^ key) |
			       ((pfns[j + 2] - (j + 2)) ^ key) | ((pfns[j + 3] - (j + 3)) ^ key)))
		j += 4;
	while (j < n && pfns[j] - j == key)
		j++;
	return j;
}

/* Words a run of len pages takes (pieces of at most VMM_RUN_MAX pages). */
static inline uint64_t run_words(uint64_t len)
{
	uint64_t rest;

	if (len <= VMM_RUN_MAX)
		return len > 1 ? 2 : 1;
	rest = len % VMM_RUN_MAX;
	return 2 * (len / VMM_RUN_MAX) + (rest > 1 ? 2 : rest);
}

static inline bool run_in(uint64_t first, uint64_t len, uint64_t limit)
{
	return first < limit && len <= limit - first;
}

/* Stores the run first..first+len-1 (len >= 1) at word k of m's stream,
 * in pieces of at most VMM_RUN_MAX pages; returns the next word. */
static uint64_t run_store(struct vmmfs_mapping *m, uint64_t k, uint64_t first, uint64_t len)
{
	uint32_t *out = m->runs;

	m->max_run = MAX(m->max_run, len);
	m->nruns++;
	if (len == 1) {
		out[k++] = (uint32_t)first;
		return k;
	}
	while (len) {
		uint64_t piece = MIN(len, (uint64_t)VMM_RUN_MAX);

		if (piece == 1) {
			out[k++] = (uint32_t)first;
		} else {
			out[k++] = VMM_RUN_LONG | (uint32_t)first;
			out[k++] = VMM_RUN_LONG | (uint32_t)piece;
		}
		first += piece;
		len -= piece;
	}
	return k;
}

int vmm_runs_measure(const uint64_t *pfns, uint64_t n, uint64_t limit, uint64_t *words,
		     uint64_t *nruns)
{
	uint64_t w = 0, k = 0;

	for (uint64_t i = 0, j; i < n; i = j) {
		j = run_end(pfns, i, n);
		if (!run_in(pfns[i], j - i, limit))
			return -ERANGE;
		w += run_words(j - i);
		k++;
	}
	*words = w;
	*nruns = k;
	return 0;
}

int vmm_runs_add(struct vram_batch *b, const uint64_t *pfns, uint64_t *at, uint64_t n,
		 uint64_t limit, struct vmmfs_mapping *m)
{
	uint64_t k = m->nwords, cap = m->cap_words, i = *at, j;
	uint32_t *out = m->runs;
	int r = 0;

	for (; i < n; i = j) {
		uint64_t first, len, done;

		if (b) {
			/* single pages in a row (scattered PFNs): stored and
			 * referenced in one tight loop */
			done = vram_batch_ref_singles(b, pfns + i, MIN(n - i, cap - k), n - i, limit,
						      out + k, &r);
		} else {
			for (done = 0; done < MIN(n - i, cap - k) && pfns[i + done] < limit &&
				       (i + done + 1 == n || pfns[i + done + 1] != pfns[i + done] + 1); done++)
				out[k + done] = (uint32_t)pfns[i + done];
		}
		if (done) {
			k += done;
			m->nruns += done;
			m->max_run = MAX(m->max_run, 1);
			i += done;
		}
		if (r) {
			for (uint64_t q = i + 1; q < n; q++)
				if (pfns[q] >= limit)
					r = -ERANGE;
			break;
		}
		if (done) {
			j = i;
			continue;
		}
		first = pfns[i];
		j = run_end(pfns, i, n);
		len = j - i;
		if (!run_in(first, len, limit)) {
			r = -ERANGE;
			break;
		}
		if (run_words(len) > cap - k) {
			r = -ENOSPC;
			break;
		}
		if (b) {
			r = vram_batch_ref(b, first, len);
			if (r) {
				/* a PFN out of range further on takes precedence */
				for (uint64_t q = j; q < n; q++)
					if (pfns[q] >= limit)
						r = -ERANGE;
				break;
			}
		}
		k = run_store(m, k, first, len);
	}
	m->nwords = k;
	*at = i;
	return r;
}

int vmm_runs_measure_runs(const struct vmmfs_vmm_run *runs, uint64_t nruns, uint64_t limit,
			  uint64_t *words, uint64_t *npages, uint64_t *longest)
{
	uint64_t w = 0, pages = 0, big = 0;

	for (uint64_t q = 0; q < nruns; q++)
		if (!runs[q].count)
			return -EINVAL;
	for (uint64_t i = 0, j; i < nruns; i = j) {
		uint64_t first = runs[i].first, len = runs[i].count;

		/* join the runs that continue this one (vmm_runs_add_runs
		 * joins the same ones once these checks passed) */
		for (j = i + 1; j < nruns && len <= limit && runs[j].count <= limit &&
				runs[j].first == first + len; j++)
			len += runs[j].count;
		if (!run_in(first, len, limit) || len > UINT64_MAX - pages)
			return -ERANGE;
		w += run_words(len);
		pages += len;
		big = MAX(big, len);
	}
	*words = w;
	*npages = pages;
	*longest = big;
	return 0;
}

int vmm_runs_add_runs(struct vram_batch *b, const struct vmmfs_vmm_run *runs, uint64_t nruns,
		      struct vmmfs_mapping *m)
{
	uint64_t k = m->nwords;
	int r = 0;

	for (uint64_t i = 0, j; i < nruns; i = j) {
		uint64_t first = runs[i].first, len = runs[i].count;

		for (j = i + 1; j < nruns && runs[j].first == first + len; j++)
			len += runs[j].count;
		if (VMMFS_WARN_ON(run_words(len) > m->cap_words - k)) {
			r = -EINVAL;
			break;
		}
		r = vram_batch_ref(b, first, len);
		if (r)
			break;
		k = run_store(m, k, first, len);
	}
	m->nwords = k;
	return r;
}

/* Drops the references of runs[0..nwords): single pages in a row
 * together, longer runs one by one. */
static void runs_unref(struct vram_batch *b, const uint32_t *w, uint64_t nwords)
{
	uint64_t q = 0;

	while (q < nwords) {
		q += vram_batch_unref_pages32(b, w + q, nwords - q);   /* up to a long run */
		if (q == nwords)
			break;
		vram_batch_unref(b, vmm_run_pfn(w, q), vmm_run_count(w, q));
		q = vmm_run_next(w, q);
	}
}

void vmm_runs_drop(struct vram_batch *b, struct vmmfs_mapping *m)
{
	runs_unref(b, m->runs, m->nwords);
	m->nwords = m->nruns = m->max_run = 0;
}

int vmm_runs_build(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n, uint64_t limit,
		   struct vmmfs_mapping *m)
{
	struct vram_batch b;
	uint64_t at = 0;
	int r;

	m->nwords = m->nruns = m->max_run = 0;
	if (!v) {
		r = vmm_runs_add(NULL, pfns, &at, n, limit, m);
		return VMMFS_WARN_ON(r == -ENOSPC) ? -EINVAL : r;
	}
	vram_batch_begin(v, &b);
	r = vmm_runs_add(&b, pfns, &at, n, limit, m);
	if (VMMFS_WARN_ON(r == -ENOSPC))
		r = -EINVAL;
	if (r)
		vmm_runs_drop(&b, m);   /* all or nothing */
	vram_batch_end(&b);
	return r;
}

void vmm_runs_unref(struct vmmfs_vram *v, const struct vmmfs_mapping *m)
{
	struct vram_batch b;

	vram_batch_begin(v, &b);
	runs_unref(&b, m->runs, m->nwords);
	vram_batch_end(&b);
}

/* ---- page-size decisions ----------------------------------------------------------- */

void plan_init(struct vmm_plan *p, const struct vmmfs_vmm *vmm, uint64_t va, uint64_t npages,
	       bool planned, const struct vmmfs_mapping *runs, unsigned int flags)
{
	memset(p, 0, sizeof(*p));
	p->f = vmm->fmt;
	p->pd1_512m = vmm->pd1_512m;
	p->va = va;
	p->end = va + (npages << VMMFS_PAGE_SHIFT);
	p->planned = planned;
	if (runs && runs->nwords) {
		p->runs = runs->runs;
		p->nwords = runs->nwords;
		/* the smallest big page is 16 pages: shorter runs have none */
		p->big = !(flags & VMMFS_MAP_SMALL_ONLY) &&
			 runs->max_run >= mmu_entry_span(&vmm->fmt->lpt) >> VMMFS_PAGE_SHIFT;
	}
}

/* Moves the cursor to the run holding page pg (counted from p->va). */
static void plan_seek(struct vmm_plan *p, uint64_t pg)
{
	const uint32_t *w = p->runs;

	while (pg < p->rstart) {
		p->r = vmm_run_prev(w, p->r);
		p->rstart -= vmm_run_count(w, p->r);
	}
	while (pg >= p->rstart + vmm_run_count(w, p->r)) {
		p->rstart += vmm_run_count(w, p->r);
		p->r = vmm_run_next(w, p->r);
	}
}

uint64_t plan_pfn(struct vmm_plan *p, uint64_t va)
{
	uint64_t pg = (va - p->va) >> VMMFS_PAGE_SHIFT;

	plan_seek(p, pg);
	return vmm_run_pfn(p->runs, p->r) + (pg - p->rstart);
}

/* The run at the cursor and the stored pieces after it that continue it:
 * pages [*rs, *re) (from p->va) with PFN *pfn at *rs. Leaves the cursor on
 * the last piece. */
static void plan_run_at_cursor(struct vmm_plan *p, uint64_t *rs, uint64_t *re, uint64_t *pfn)
{
	const uint32_t *w = p->runs;
	uint64_t q = p->r, end = p->rstart + vmm_run_count(w, q), nq;

	*rs = p->rstart;
	*pfn = vmm_run_pfn(w, q);
	while ((nq = vmm_run_next(w, q)) < p->nwords &&
	       vmm_run_pfn(w, nq) == *pfn + (end - *rs)) {
		p->rstart = end;
		p->r = nq;
		end += vmm_run_count(w, nq);
		q = nq;
	}
	*re = end;
}

/* [va, va + size) maps one contiguous PFN run starting size-aligned. */
static bool plan_contig(struct vmm_plan *p, uint64_t va, uint64_t size)
{
	uint64_t pg = (va - p->va) >> VMMFS_PAGE_SHIFT, n = size >> VMMFS_PAGE_SHIFT;
	uint64_t rs, re, pfn;

	if (!p->big || va < p->va || p->end - va < size)
		return false;
	plan_seek(p, pg);
	plan_run_at_cursor(p, &rs, &re, &pfn);
	return !((pfn + (pg - rs)) & (n - 1)) && re - pg >= n;
}

bool plan_use_512m(struct vmm_plan *p, unsigned int level, const struct vmm_pt *child,
		   uint64_t sa, uint64_t sb)
{
	return p->big && p->pd1_512m && (int)level == p->f->pd0 - 1 &&
	       sb - sa == mmu_entry_span(&p->f->levels[level]) && !(child && child->installed) &&
	       plan_contig(p, sa, sb - sa);
}

uint32_t plan_full_chunks(const struct vmm_plan *p, uint64_t sa, uint64_t sb)
{
	uint64_t c0 = ALIGN_UP(sa, SZ_64K), c1 = ALIGN_DOWN(sb, SZ_64K);
	uint32_t lo, n;

	if (c1 <= c0)
		return 0;
	lo = mmu_index(&p->f->lpt, c0);
	n = (uint32_t)((c1 - c0) / SZ_64K);
	return (n >= 32 ? 0xffffffffu : ((1u << n) - 1)) << lo;
}

/*
 * The big pages the op's PFNs allow in the PD0 slot [sa, sb) (part of the
 * op): which whole 64 KiB chunks are one contiguous, 64 KiB-aligned run,
 * and whether the whole slot is one 2 MiB-aligned run. One forward scan
 * over the runs of the slot, kept for the next question about the same
 * slot (each walk asks several).
 */
static void plan_slot(struct vmm_plan *p, uint64_t sa, uint64_t sb)
{
	uint64_t base = ALIGN_DOWN(sa, mmu_table_span(&p->f->lpt));
	uint64_t slot_pages = mmu_entry_span(&p->f->levels[p->f->pd0]) >> VMMFS_PAGE_SHIFT;
	uint32_t full, m = 0;
	uint64_t pg, pend;

	if (p->ca == sa && p->cb == sb)
		return;
	p->ca = sa;
	p->cb = sb;
	p->c64 = 0;
	p->c2m = false;
	full = p->big ? plan_full_chunks(p, sa, sb) : 0;
	if (!full)
		return;
	/* pages from p->va: the first whole chunk, the end of the last */
	pg = (base + (uint64_t)__builtin_ctz(full) * SZ_64K - p->va) >> VMMFS_PAGE_SHIFT;
	pend = (base + (32 - (uint64_t)__builtin_clz(full)) * SZ_64K - p->va) >> VMMFS_PAGE_SHIFT;
	plan_seek(p, pg);
	while (pg < pend) {
		uint64_t rs, re, pfn, last, c;

		plan_run_at_cursor(p, &rs, &re, &pfn);
		if (pg == (sa - p->va) >> VMMFS_PAGE_SHIFT && sb - sa == slot_pages << VMMFS_PAGE_SHIFT)
			p->c2m = re - pg >= slot_pages && !((pfn + (pg - rs)) & (slot_pages - 1));
		/* the whole chunks inside [pg, min(re, pend)) with an aligned PFN */
		last = MIN(pend, re);
		c = (ALIGN_UP(p->va + (pg << VMMFS_PAGE_SHIFT), SZ_64K) - base) / SZ_64K;
		for (; c < WALK_CHUNKS; c++) {
			uint64_t cpg = (base + c * SZ_64K - p->va) >> VMMFS_PAGE_SHIFT;

			if (cpg + (SZ_64K >> VMMFS_PAGE_SHIFT) > last)
				break;
			if (!((pfn + (cpg - rs)) & ((SZ_64K >> VMMFS_PAGE_SHIFT) - 1)))
				m |= 1u << c;
		}
		pg = re;
		if (pg < pend) {
			p->rstart = re;
			p->r = vmm_run_next(p->runs, p->r);
		}
	}
	p->c64 = m & full;
}

bool plan_use_2m(struct vmm_plan *p, const struct vmm_pt *pt, const struct vmm_pt *lpt,
		 uint64_t sa, uint64_t sb)
{
	if (!p->big || sb - sa != mmu_entry_span(&p->f->levels[p->f->pd0]) ||
	    (pt && pt->installed) || (lpt && lpt->installed))
		return false;
	plan_slot(p, sa, sb);
	return p->c2m;
}

uint32_t plan_chunks64(struct vmm_plan *p, uint64_t sa, uint64_t sb)
{
	if (!p->big)
		return 0;
	plan_slot(p, sa, sb);
	return p->c64;
}

uint32_t plan_lpt_resv(struct vmm_plan *p, uint64_t sa, uint64_t sb, bool is2m)
{
	if (!p->planned)
		return (uint32_t)__builtin_popcount(plan_full_chunks(p, sa, sb));
	return is2m ? 0 : (uint32_t)__builtin_popcount(plan_chunks64(p, sa, sb));
}

/* ---- the walk context --------------------------------------------------------------- */

struct wctx {
	struct vmmfs_vmm *vmm;
	struct vmmfs_gpu *gpu;
	const struct mmu_fmt *f;
	struct vmm_plan plan;
	const uint64_t *pfns;      /* execute: the PFNs, page 0 at plan.va */
	bool fill_runs;            /* execute: PTEs from the runs, not from pfns */
	uint64_t tmpl;             /* execute: PTE template */
	unsigned int pfn_shift;
	uint64_t no4k;             /* LPTE "no 4 KiB PTEs" */
	uint32_t e0;               /* PD0 entries */
	int err;                   /* first PRAMIN error; later accesses are skipped */
	struct vmm_pt **freed;     /* where detached tables go */
	bool flush;                /* an installed table was detached */
	uint64_t n4k, n64k, n2m, n512m;
};

static void wctx_init(struct wctx *w, struct vmmfs_vmm *vmm, struct vmm_pt **freed)
{
	memset(w, 0, sizeof(*w));
	w->vmm = vmm;
	w->gpu = vmm->gpu;
	w->f = vmm->fmt;
	w->pfn_shift = mmu_pte_vid_pfn_shift(vmm->fmt);
	w->no4k = mmu_lpte_raw_no4k(vmm->fmt);
	w->e0 = (uint32_t)mmu_entries(&vmm->fmt->levels[vmm->fmt->pd0]);
	w->freed = freed;
}

static void hw_wr(struct wctx *w, uint64_t pa, const uint64_t *vals, size_t n)
{
	int r;

	if (w->err || !n)
		return;
	r = pramin_wr64_n_locked(w->gpu, pa, vals, n);
	if (r)
		w->err = r;
}

static void hw_zero(struct wctx *w, uint64_t pa, size_t n)
{
	int r;

	if (w->err || !n)
		return;
	r = pramin_zero64_n_locked(w->gpu, pa, n);
	if (r)
		w->err = r;
}

static uint64_t hw_rd(struct wctx *w, uint64_t pa)
{
	uint64_t v = 0;
	int r;

	if (w->err)
		return 0;
	r = pramin_rd64_locked(w->gpu, pa, &v);
	if (r) {
		w->err = r;
		return 0;
	}
	return v;
}

static uint64_t pte_at(struct wctx *w, uint64_t va)
{
	return w->tmpl | (plan_pfn(&w->plan, va) << w->pfn_shift);
}

/* Two 64-bit lanes (GCC/clang vector extension: SSE2, NEON, or scalar
 * code where there is no vector unit). */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

/*
 * The PTEs of the n 4 KiB pages from va: tmpl | pfn << shift, two at a
 * time. Where one stored run covers them (mappings of long runs), the PFNs
 * are counted up from the run's; else they are read from the caller's
 * array (scattered PFNs: seeking through short runs costs more).
 */
static void fill_ptes(struct wctx *w, uint64_t va, uint64_t n, uint64_t *restrict buf)
{
	uint64_t pg = (va - w->plan.va) >> VMMFS_PAGE_SHIFT, i = 0;
	const uint64_t tmpl = w->tmpl;
	const unsigned int shift = w->pfn_shift;
	const u64x2 t = { tmpl, tmpl };

	if (w->fill_runs) {
		struct vmm_plan *p = &w->plan;

		plan_seek(p, pg);
		if (pg + n <= p->rstart + vmm_run_count(p->runs, p->r)) {
			uint64_t pfn = vmm_run_pfn(p->runs, p->r) + (pg - p->rstart);
			u64x2 v = { pfn, pfn + 1 }, two = { 2, 2 };

			for (; i + 2 <= n; i += 2) {
				u64x2 a = (v << shift) | t;

				memcpy(buf + i, &a, sizeof(a));
				v += two;
			}
			if (i < n)
				buf[i] = tmpl | ((pfn + i) << shift);
			return;
		}
	}

	if (!w->pfns) {
		/* map_runs: no PFN array, the runs it was made from */
		struct vmm_plan *p = &w->plan;

		plan_seek(p, pg);
		while (i < n) {
			uint64_t cnt = vmm_run_count(p->runs, p->r), off = pg + i - p->rstart;
			uint64_t pfn = vmm_run_pfn(p->runs, p->r) + off, k = MIN(n - i, cnt - off);

			for (uint64_t q = 0; q < k; q++)
				buf[i + q] = tmpl | ((pfn + q) << shift);
			i += k;
			if (i < n) {
				p->rstart += cnt;
				p->r = vmm_run_next(p->runs, p->r);
			}
		}
		return;
	}

	const uint64_t *restrict src = w->pfns + pg;

	for (; i + 4 <= n; i += 4) {
		u64x2 a, b;

		memcpy(&a, src + i, sizeof(a));
		memcpy(&b, src + i + 2, sizeof(b));
		a = (a << shift) | t;
		b = (b << shift) | t;
		memcpy(buf + i, &a, sizeof(a));
		memcpy(buf + i + 2, &b, sizeof(b));
	}
	for (; i < n; i++)
		buf[i] = tmpl | (src[i] << shift);
}

/* Takes a table whose use count dropped to 0 out of the tree. */
static void detach(struct wctx *w, struct vmm_pt *pt)
{
	struct vmm_pt *d = pt->parent;
	uint32_t slot = pt->pidx + (pt->level == WALK_LPT ? w->e0 : 0);

	if (VMMFS_WARN_ON(!d || d->child[slot] != pt))
		return;
	d->child[slot] = NULL;
	d->nchild--;
	pt->needs_flush = pt->installed;
	if (pt->installed)
		w->flush = true;
	vmm_pt_push(w->freed, pt);
}

static void resv_drop(struct vmm_pt *pt, uint32_t n)
{
	if (VMMFS_WARN_ON(pt->resv < n))
		n = pt->resv;
	pt->resv -= n;
}

/* ---- directory entries ----------------------------------------------------------------- */

static void dual_vid(const struct mmu_fmt *f, const struct vmm_pt *big, const struct vmm_pt *small,
		     uint64_t raw[2])
{
	struct mmu_pde b = { .present = false }, s = { .present = false };

	if (big)
		b = (struct mmu_pde){ .present = true, .aper = MMU_APER_VID, .addr = big->addr,
				      .no_ats = f->layout->vid_pde_no_ats };
	if (small)
		s = (struct mmu_pde){ .present = true, .aper = MMU_APER_VID, .addr = small->addr,
				      .no_ats = f->layout->vid_pde_no_ats };
	if (f->layout->dual_shared_no_ats)
		b.no_ats = s.no_ats = b.no_ats || s.no_ats;
	if (VMMFS_WARN_ON(mmu_dual_encode(f, &b, &s, raw)))
		raw[0] = raw[1] = 0;
}

/* Keeps a present half of a dual PDE that is in VRAM but not in the shadow
 * (someone else's big or small table): installing or removing our half must
 * not destroy it. */
static void keep_foreign_half(struct wctx *w, const struct vmm_pt *d, uint32_t i, int half,
			      uint64_t raw[2])
{
	uint64_t v, two[2];
	struct mmu_pde big, small;
	bool is_pte;

	/* A word vmmfs last wrote as 0 is known to be 0: no read, and it is
	 * not written either while it stays 0 (pd0_write_slot). */
	if (!walk_bit(half ? d->hwhi : d->hwlo, i))
		return;
	v = hw_rd(w, d->addr + (uint64_t)i * 16 + (uint64_t)half * 8);
	two[0] = half ? 0 : v;
	two[1] = half ? v : 0;
	if (!v)
		return;
	mmu_dual_decode(w->f, two, &big, &small, &is_pte);
	if (half == 0 && is_pte) {
		log_warn("PD0 entry at VRAM 0x%llx held a 2 MiB PTE vmmfs did not write, over VA it "
			 "owns: replaced", (unsigned long long)(d->addr + (uint64_t)i * 16));
		return;
	}
	if (half == 0 ? big.present : small.present)
		raw[half] = v;
}

static void pd0_value(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t va,
		      bool gone_big, bool gone_small, uint64_t raw[2])
{
	struct vmm_pt *pt = d->child[i], *lpt = d->child[w->e0 + i];
	bool own_big = lpt && lpt->installed, own_small = pt && pt->installed;

	if (d->leafmap && walk_bit(d->leafmap, i)) {
		raw[0] = pte_at(w, va);
		raw[1] = 0;
		return;
	}
	dual_vid(w->f, own_big ? lpt : NULL, own_small ? pt : NULL, raw);
	if (d->installed) {
		if (!own_big && !gone_big)
			keep_foreign_half(w, d, i, 0, raw);
		if (!own_small && !gone_small)
			keep_foreign_half(w, d, i, 1, raw);
	}
}

static uint64_t dir_value(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t va)
{
	struct vmm_pt *c = d->child[i];

	if (d->leafmap && walk_bit(d->leafmap, i))
		return pte_at(w, va);
	return c && c->installed ? mmu_pde_vid(w->f, c->addr) : 0;
}

static void fill_entry(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t base,
		       const uint64_t *gb, const uint64_t *gs, uint64_t *out)
{
	const struct mmu_level *l = &w->f->levels[d->level];
	uint64_t va = base + (uint64_t)i * mmu_entry_span(l);

	if (l->dual)
		pd0_value(w, d, i, va, gb && walk_bit(gb, i), gs && walk_bit(gs, i), out);
	else
		out[0] = dir_value(w, d, i, va);
}

/* Records what a PD0 entry now holds in VRAM: which words may be non-zero
 * (after a failed access: unknown, so maybe). */
static void pd0_known(struct wctx *w, struct vmm_pt *d, uint32_t i, const uint64_t raw[2])
{
	if (raw[0] || w->err)
		walk_bit_set(d->hwlo, i);
	else
		walk_bit_clear(d->hwlo, i);
	if (raw[1] || w->err)
		walk_bit_set(d->hwhi, i);
	else
		walk_bit_clear(d->hwhi, i);
}

/* Writes one entry of an installed PD0. A word that is 0 and known to be 0
 * in VRAM already is not written: a 2 MiB PTE over an empty slot is its
 * low word alone, a small table next to no big one its high word alone
 * (big-pages-and-tlb.md §3: the high word of a 2 MiB PTE is 0). */
static void pd0_write_slot(struct wctx *w, struct vmm_pt *d, uint32_t i, const uint64_t raw[2])
{
	uint64_t pa = d->addr + (uint64_t)i * 16;
	bool lo = raw[0] || walk_bit(d->hwlo, i), hi = raw[1] || walk_bit(d->hwhi, i);

	if (lo && hi)
		hw_wr(w, pa, raw, 2);
	else if (lo)
		hw_wr(w, pa, &raw[0], 1);
	else if (hi)
		hw_wr(w, pa + 8, &raw[1], 1);
	pd0_known(w, d, i, raw);
}

/* Writes a directory: all of it when it is not installed yet, else the
 * dirty entries, one batch per run (PD0: per entry, the words that
 * change). */
static void dir_write(struct wctx *w, struct vmm_pt *d, uint64_t base, uint32_t first,
		      uint32_t last, const uint64_t *dirty, const uint64_t *gb, const uint64_t *gs)
{
	const struct mmu_level *l = &w->f->levels[d->level];
	uint32_t words = l->entry_size / 8, n = (uint32_t)mmu_entries(l), i, j;
	uint64_t *buf = w->vmm->scratch;

	if (!d->installed) {
		for (i = 0; i < n; i++)
			fill_entry(w, d, i, base, gb, gs, &buf[i * words]);
		hw_wr(w, d->addr, buf, (size_t)n * words);
		if (l->dual)
			for (i = 0; i < n; i++)
				pd0_known(w, d, i, &buf[2 * i]);
		return;
	}
	if (l->dual) {
		for (i = first; i <= last; i++) {
			if (!walk_bit(dirty, i))
				continue;
			fill_entry(w, d, i, base, gb, gs, buf);
			pd0_write_slot(w, d, i, buf);
		}
		return;
	}
	for (i = first; i <= last; i = j) {
		if (!walk_bit(dirty, i)) {
			j = i + 1;
			continue;
		}
		for (j = i; j <= last && walk_bit(dirty, j); j++)
			fill_entry(w, d, j, base, gb, gs, &buf[(j - i) * words]);
		hw_wr(w, d->addr + (uint64_t)i * l->entry_size, buf, (size_t)(j - i) * words);
	}
}

static bool has_installed_child(const struct wctx *w, const struct vmm_pt *d)
{
	const struct mmu_level *l = &w->f->levels[d->level];
	uint64_t n = mmu_entries(l) * (l->dual ? 2 : 1);

	for (uint64_t i = 0; i < n; i++)
		if (d->child[i] && d->child[i]->installed)
			return true;
	return false;
}

/* After a directory's entries were processed: detach it if empty, else
 * write what changed. Tables that are not installed are written only by
 * execute (install). */
static void dir_finish(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b,
		       const uint64_t *dirty, const uint64_t *gb, const uint64_t *gs, bool install)
{
	const struct mmu_level *l = &w->f->levels[d->level];

	if (d->parent && vmm_pt_refs(d) == 0) {
		detach(w, d);
		return;
	}
	if (!d->installed && (!install || (!d->valid && !has_installed_child(w, d))))
		return;
	dir_write(w, d, ALIGN_DOWN(a, mmu_table_span(l)), mmu_index(l, a), mmu_index(l, b - 1),
		  dirty, gb, gs);
	d->installed = true;
}

/* ---- leaf tables --------------------------------------------------------------------------- */

static uint64_t lpte_value(struct wctx *w, const struct vmm_pt *lpt, const struct vmm_pt *pt,
			   uint64_t base, uint32_t c)
{
	if (lpt->lvalid & (1u << c))
		return pte_at(w, base + c * SZ_64K);
	return pt && pt->cnt[c] ? 0 : w->no4k;
}

/* Writes the LPT entries of the chunks in mask, one batch per run. */
static void lpt_write(struct wctx *w, const struct vmm_pt *lpt, const struct vmm_pt *pt,
		      uint64_t base, uint32_t mask)
{
	uint64_t *buf = w->vmm->scratch;
	uint32_t c = 0, e;

	while (c < WALK_CHUNKS) {
		if (!(mask & (1u << c))) {
			c++;
			continue;
		}
		for (e = c; e < WALK_CHUNKS && (mask & (1u << e)); e++)
			buf[e - c] = lpte_value(w, lpt, pt, base, e);
		hw_wr(w, lpt->addr + (uint64_t)c * 8, buf, e - c);
		c = e;
	}
}

/* The last entry of [i, last] of a PT before the next 64 KiB chunk in skip
 * (i's own chunk is not in skip). */
static inline uint32_t chunk_run_end(uint32_t i, uint32_t last, uint32_t skip)
{
	uint32_t c = i / 16 + 1, above = c < WALK_CHUNKS ? skip & (~0u << c) : 0;

	return above ? MIN(last, (uint32_t)__builtin_ctz(above) * 16 - 1) : last;
}

/* Writes PTE values (or zeros) for entries [first, last] of a PT, skipping
 * the chunks in skip. */
static void pt_write_range(struct wctx *w, const struct vmm_pt *pt, uint64_t base, uint32_t first,
			   uint32_t last, uint32_t skip, bool zero)
{
	uint64_t *buf = w->vmm->scratch;
	uint32_t i = first, j;

	while (i <= last) {
		if (skip & (1u << (i / 16))) {
			i = (i / 16 + 1) * 16;
			continue;
		}
		j = chunk_run_end(i, last, skip);
		if (zero) {
			hw_zero(w, pt->addr + (uint64_t)i * 8, j - i + 1);
		} else {
			fill_ptes(w, base + (uint64_t)i * VMMFS_PAGE_SIZE, j - i + 1, buf);
			hw_wr(w, pt->addr + (uint64_t)i * 8, buf, j - i + 1);
		}
		i = j + 1;
	}
}

/* Adds (sign > 0) or removes the op's 4 KiB pages in [sa, sb) outside the
 * chunks in m64 to a PT's counts; *edge gets the chunks whose count went
 * from 0 to non-zero (add) or to 0 (remove). Returns the page count. */
static uint32_t pt_count(struct vmm_pt *pt, uint32_t first, uint32_t last, uint32_t m64,
			 bool add, uint32_t *edge)
{
	uint32_t n = 0;

	for (uint32_t c = first / 16; c <= last / 16; c++) {
		uint32_t lo = MAX(first, c * 16), hi = MIN(last, c * 16 + 15), k = hi - lo + 1;

		if (m64 & (1u << c))
			continue;
		if (add) {
			if (!pt->cnt[c])
				*edge |= 1u << c;
			pt->cnt[c] = (uint8_t)(pt->cnt[c] + k);
		} else {
			if (VMMFS_WARN_ON(pt->cnt[c] < k))
				k = pt->cnt[c];
			pt->cnt[c] = (uint8_t)(pt->cnt[c] - k);
			if (!pt->cnt[c])
				*edge |= 1u << c;
		}
		n += k;
	}
	return n;
}

static void release_pt(struct wctx *w, struct vmm_pt *pt, uint64_t sa, uint64_t sb)
{
	resv_drop(pt, (uint32_t)((sb - sa) >> VMMFS_PAGE_SHIFT));
	if (vmm_pt_refs(pt) == 0)
		detach(w, pt);
}

static void release_lpt(struct wctx *w, struct vmm_pt *lpt, uint32_t lres)
{
	resv_drop(lpt, lres);
	if (vmm_pt_refs(lpt) == 0)
		detach(w, lpt);
}

/* Execute: the op's 4 KiB pages of one PD0 slot. */
static void exec_pt(struct wctx *w, struct vmm_pt *pt, uint64_t sa, uint64_t sb, uint32_t m64,
		    uint32_t *nz)
{
	const struct mmu_level *l = &w->f->levels[w->f->nlevels - 1];
	uint32_t first = mmu_index(l, sa), last = mmu_index(l, sb - 1), n4;
	uint64_t base = ALIGN_DOWN(sa, mmu_table_span(l));

	resv_drop(pt, last - first + 1);
	n4 = pt_count(pt, first, last, m64, true, nz);
	pt->valid += n4;
	w->n4k += n4;
	if (vmm_pt_refs(pt) == 0) {
		detach(w, pt);
		return;
	}
	if (!n4)
		return;
	if (!pt->installed) {
		/* A new table: ours and zeros, one batch (no separate zeroing). */
		uint32_t n = (uint32_t)mmu_entries(l);

		if (first || last != n - 1 || m64)
			memset(w->vmm->scratch, 0, n * sizeof(uint64_t));
		for (uint32_t i = first; i <= last; ) {
			uint32_t j;

			if (m64 & (1u << (i / 16))) {
				i = (i / 16 + 1) * 16;
				continue;
			}
			j = chunk_run_end(i, last, m64);
			fill_ptes(w, base + (uint64_t)i * VMMFS_PAGE_SIZE, j - i + 1, &w->vmm->scratch[i]);
			i = j + 1;
		}
		hw_wr(w, pt->addr, w->vmm->scratch, n);
		pt->installed = true;
		return;
	}
	pt_write_range(w, pt, base, first, last, m64, false);
}

/* Execute: the op's 64 KiB pages of one PD0 slot (m64), and the LPT entries
 * that must now let the MMU see new small PTEs (nz). */
static void exec_lpt(struct wctx *w, struct vmm_pt *lpt, const struct vmm_pt *pt, uint64_t sa,
		     uint32_t m64, uint32_t nz, uint32_t lres)
{
	uint64_t base = ALIGN_DOWN(sa, mmu_table_span(&w->f->lpt));
	uint32_t add = (uint32_t)__builtin_popcount(m64);

	resv_drop(lpt, lres);
	lpt->lvalid |= m64;
	lpt->valid += add;
	w->n64k += add;
	if (vmm_pt_refs(lpt) == 0) {
		detach(w, lpt);
		return;
	}
	if (!lpt->installed) {
		if (!lpt->valid)
			return;
		lpt_write(w, lpt, pt, base, 0xffffffffu);
		lpt->installed = true;
		return;
	}
	lpt_write(w, lpt, pt, base, m64 | (nz & ~lpt->lvalid));
}

/* ---- the walks -------------------------------------------------------------------------------- */

#define SLOT_LOOP(w, d, a, b) \
	const struct mmu_level *l = &(w)->f->levels[(d)->level]; \
	uint64_t span = mmu_entry_span(l), base = ALIGN_DOWN(a, mmu_table_span(l)); \
	uint32_t first = mmu_index(l, a), last = mmu_index(l, (b) - 1); \
	for (uint32_t i = first; i <= last; i++)

#define SLOT_RANGE(a, b) \
	uint64_t s0 = base + (uint64_t)i * span, sa = MAX(a, s0), sb = MIN(b, s0 + span)

static void release_node(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b);

/* Release: the op's reservations in one PD0 slot. */
static void release_pd0_slot(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t sa, uint64_t sb,
			     uint64_t *dirty, uint64_t *gb, uint64_t *gs)
{
	struct vmm_pt *pt = d->child[i], *lpt = d->child[w->e0 + i];
	bool is2m = plan_use_2m(&w->plan, pt, lpt, sa, sb);
	uint32_t lres = plan_lpt_resv(&w->plan, sa, sb, is2m);
	bool pt_was = pt && pt->installed, lpt_was = lpt && lpt->installed;

	if (pt)
		release_pt(w, pt, sa, sb);
	if (lpt)
		release_lpt(w, lpt, lres);
	if (pt_was && !d->child[i]) {
		walk_bit_set(gs, i);
		walk_bit_set(dirty, i);
	}
	if (lpt_was && !d->child[w->e0 + i]) {
		walk_bit_set(gb, i);
		walk_bit_set(dirty, i);
	}
}

/* Release: undoes what prepare reserved in d over [a, b). */
static void release_node(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b)
{
	uint64_t dirty[8] = { 0 }, gb[4] = { 0 }, gs[4] = { 0 };
	bool pd0 = d->level == w->f->pd0;

	SLOT_LOOP(w, d, a, b) {
		SLOT_RANGE(a, b);
		struct vmm_pt *c;
		bool was;

		if (pd0) {
			release_pd0_slot(w, d, i, sa, sb, dirty, gb, gs);
			continue;
		}
		c = d->child[i];
		if (!c)
			continue;
		was = c->installed;
		release_node(w, c, sa, sb);
		if (was && d->child[i] != c)
			walk_bit_set(dirty, i);
	}
	dir_finish(w, d, a, b, dirty, gb, gs, false);
}

static void exec_node(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b);

static void exec_pd0_slot(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t sa, uint64_t sb,
			  uint64_t *dirty, uint64_t *gb, uint64_t *gs)
{
	struct vmm_pt *pt = d->child[i], *lpt = d->child[w->e0 + i];
	bool is2m = plan_use_2m(&w->plan, pt, lpt, sa, sb);
	uint32_t lres = plan_lpt_resv(&w->plan, sa, sb, is2m), m64, nz = 0;
	bool pt_was, lpt_was, pt_now, lpt_now;

	if (is2m) {
		if (pt)
			release_pt(w, pt, sa, sb);
		if (lpt)
			release_lpt(w, lpt, lres);
		walk_bit_set(d->leafmap, i);
		d->valid++;
		walk_bit_set(dirty, i);
		w->n2m++;
		return;
	}
	m64 = lpt ? plan_chunks64(&w->plan, sa, sb) : 0;
	pt_was = pt && pt->installed;
	lpt_was = lpt && lpt->installed;
	if (pt) {
		exec_pt(w, pt, sa, sb, m64, &nz);
	} else if (VMMFS_WARN_ON(!IS_ALIGNED(sa | sb, SZ_64K) || m64 != plan_full_chunks(&w->plan, sa, sb))) {
		/* prepare made a PT wherever small pages are possible */
		if (!w->err)
			w->err = -EIO;
	}
	if (lpt)
		exec_lpt(w, lpt, d->child[i], sa, m64, nz, lres);
	pt_now = d->child[i] && d->child[i]->installed;
	lpt_now = d->child[w->e0 + i] && d->child[w->e0 + i]->installed;
	if (pt_was && !d->child[i])
		walk_bit_set(gs, i);
	if (lpt_was && !d->child[w->e0 + i])
		walk_bit_set(gb, i);
	if (pt_was != pt_now || lpt_was != lpt_now)
		walk_bit_set(dirty, i);
}

/* Execute: maps the op's part [a, b) of directory d, bottom-up. */
static void exec_node(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b)
{
	uint64_t dirty[8] = { 0 }, gb[4] = { 0 }, gs[4] = { 0 };
	bool pd0 = d->level == w->f->pd0;

	SLOT_LOOP(w, d, a, b) {
		SLOT_RANGE(a, b);
		struct vmm_pt *c;
		bool was;

		if (pd0) {
			exec_pd0_slot(w, d, i, sa, sb, dirty, gb, gs);
			continue;
		}
		c = d->child[i];
		if (plan_use_512m(&w->plan, d->level, c, sa, sb)) {
			if (c)
				release_node(w, c, sa, sb);
			walk_bit_set(d->leafmap, i);
			d->valid++;
			walk_bit_set(dirty, i);
			w->n512m++;
			continue;
		}
		if (VMMFS_WARN_ON(!c)) {
			if (!w->err)
				w->err = -EIO;
			continue;
		}
		was = c->installed;
		exec_node(w, c, sa, sb);
		if (d->child[i] != c ? was : (!was && c->installed))
			walk_bit_set(dirty, i);
	}
	dir_finish(w, d, a, b, dirty, gb, gs, true);
}

static void unmap_pd0_slot(struct wctx *w, struct vmm_pt *d, uint32_t i, uint64_t sa, uint64_t sb,
			   uint64_t *dirty, uint64_t *gb, uint64_t *gs)
{
	const struct mmu_level *ptl = &w->f->levels[w->f->nlevels - 1];
	struct vmm_pt *pt = d->child[i], *lpt = d->child[w->e0 + i];
	uint32_t m64 = lpt ? lpt->lvalid & plan_full_chunks(&w->plan, sa, sb) : 0, zm = 0;
	bool pt_was = pt && pt->installed, lpt_was = lpt && lpt->installed;

	if (d->leafmap && walk_bit(d->leafmap, i)) {
		walk_bit_clear(d->leafmap, i);
		d->valid--;
		walk_bit_set(dirty, i);
		walk_bit_set(gb, i);
		walk_bit_set(gs, i);
		return;
	}
	if (pt) {
		uint32_t first = mmu_index(ptl, sa), last = mmu_index(ptl, sb - 1);
		uint32_t n4 = pt_count(pt, first, last, m64, false, &zm);

		if (VMMFS_WARN_ON(pt->valid < n4))
			n4 = pt->valid;
		pt->valid -= n4;
		if (vmm_pt_refs(pt) == 0)
			detach(w, pt);      /* its entries need not be cleared: unhooked */
		else if (n4)
			pt_write_range(w, pt, ALIGN_DOWN(sa, mmu_table_span(ptl)), first, last, m64, true);
	}
	if (lpt) {
		lpt->lvalid &= ~m64;
		lpt->valid -= (uint32_t)__builtin_popcount(m64);
		if (vmm_pt_refs(lpt) == 0)
			detach(w, lpt);
		else if (lpt->installed)
			lpt_write(w, lpt, d->child[i], ALIGN_DOWN(sa, mmu_table_span(&w->f->lpt)),
				  m64 | (zm & ~lpt->lvalid));
	}
	if (pt_was && !d->child[i]) {
		walk_bit_set(gs, i);
		walk_bit_set(dirty, i);
	}
	if (lpt_was && !d->child[w->e0 + i]) {
		walk_bit_set(gb, i);
		walk_bit_set(dirty, i);
	}
}

/* Unmap: clears the mapping's part [a, b) of d. */
static void unmap_node(struct wctx *w, struct vmm_pt *d, uint64_t a, uint64_t b)
{
	uint64_t dirty[8] = { 0 }, gb[4] = { 0 }, gs[4] = { 0 };
	bool pd0 = d->level == w->f->pd0;

	SLOT_LOOP(w, d, a, b) {
		SLOT_RANGE(a, b);
		struct vmm_pt *c;
		bool was;

		if (pd0) {
			unmap_pd0_slot(w, d, i, sa, sb, dirty, gb, gs);
			continue;
		}
		if (d->leafmap && walk_bit(d->leafmap, i)) {
			walk_bit_clear(d->leafmap, i);
			d->valid--;
			walk_bit_set(dirty, i);
			continue;
		}
		c = d->child[i];
		if (VMMFS_WARN_ON(!c))
			continue;
		was = c->installed;
		unmap_node(w, c, sa, sb);
		if (was && d->child[i] != c)
			walk_bit_set(dirty, i);
	}
	dir_finish(w, d, a, b, dirty, gb, gs, false);
}

/* ---- entry points ----------------------------------------------------------------------------- */

int vmm_unmap_locked(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m, struct vmm_pt **freed)
{
	struct wctx w;

	wctx_init(&w, vmm, freed);
	plan_init(&w.plan, vmm, m->va, m->npages, false, NULL, 0);
	pramin_lock(vmm->gpu);
	unmap_node(&w, vmm->root, m->va, m->va + (m->npages << VMMFS_PAGE_SHIFT));
	pramin_unlock(vmm->gpu);
	return w.err;
}

int vmm_release_op_locked(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op,
			  struct vmm_pt **freed, bool *need_flush)
{
	struct vmmfs_mapping *m = vmm_op_mapping(op);
	struct wctx w;

	wctx_init(&w, vmm, freed);
	plan_init(&w.plan, vmm, op->va, op->npages, op->planned, op->planned ? m : NULL,
		  op->plan_flags);
	pramin_lock(vmm->gpu);
	release_node(&w, vmm->root, op->va, op->va + (op->npages << VMMFS_PAGE_SHIFT));
	pramin_unlock(vmm->gpu);
	*need_flush = w.flush;
	return w.err;
}

/* Moves the tables execute detached while installed from the deferred list
 * to quarantine (the invalidate that would make freeing them safe failed),
 * or marks them safe. */
static void settle_deferred(struct vmmfs_vmm *vmm, bool flushed)
{
	struct vmm_pt **pp = &vmm->deferred;

	while (*pp) {
		struct vmm_pt *pt = *pp;

		if (!pt->needs_flush) {
			pp = &pt->next;
		} else if (flushed) {
			pt->needs_flush = false;
			pp = &pt->next;
		} else {
			*pp = pt->next;
			vmm_pt_push(&vmm->quar_pts, pt);
		}
	}
}

int vmm_execute(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op, const uint64_t *pfns,
		unsigned int flags, bool refs_held, struct vmmfs_mapping **out)
{
	struct vmmfs_mapping *m;
	struct vmm_pt *freed = NULL;
	uint64_t end;
	struct wctx w;
	int r, rf = 0;

	if (!vmm || !op || op->vmm != vmm || !op->prepared || !out || (!pfns && !refs_held) ||
	    (flags & ~(VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY)))
		return -EINVAL;
	if (op->planned && flags != op->plan_flags)
		return -EINVAL;
	m = vmm_op_mapping(op);
	/* planned ops come from map_pages, which built the runs and took the
	 * references before prepare */
	if (VMMFS_WARN_ON(op->planned != refs_held))
		return -EINVAL;
	if (!refs_held) {
		/* One pass over the PFNs: range check, runs, references. */
		r = vmm_runs_build(vmm->gpu->vram, pfns, op->npages, vmm_pfn_limit(vmm), m);
		if (r)
			return r;
	}

	/*
	 * Point of no return. The op is consumed whatever happens below; the
	 * mapping either goes to the caller or, after a hardware error, to
	 * quarantine with its VA and page references (vmm.h).
	 */
	pthread_mutex_lock(&vmm->lock);
	vmm_list_del_op(vmm, op);
	op->prepared = false;
	m->read_only = flags & VMMFS_MAP_READ_ONLY;
	end = op->va + (op->npages << VMMFS_PAGE_SHIFT);

	wctx_init(&w, vmm, &vmm->deferred);
	plan_init(&w.plan, vmm, op->va, op->npages, op->planned, m, flags);
	w.pfns = pfns;
	w.fill_runs = m->nruns <= m->npages / 64 || !pfns;   /* runs of 64 pages on average */
	w.tmpl = mmu_pte_vid_template(vmm->fmt, m->read_only);
	pramin_lock(vmm->gpu);
	exec_node(&w, vmm->root, op->va, end);
	pramin_unlock(vmm->gpu);
	m->pages_4k = w.n4k;
	m->pages_64k = w.n64k;
	m->pages_2m = w.n2m;
	m->pages_512m = w.n512m;
	log_spam("vmm 0x%llx: mapped VA 0x%llx + %llu pages: %llu x 4K, %llu x 64K, %llu x 2M, "
		 "%llu x 512M", (unsigned long long)vmm->root->addr, (unsigned long long)op->va,
		 (unsigned long long)op->npages, (unsigned long long)w.n4k,
		 (unsigned long long)w.n64k, (unsigned long long)w.n2m, (unsigned long long)w.n512m);

	r = w.err;
	if (!r) {
		rf = tlb_invalidate(vmm->gpu, vmm->root->addr, false);
		if (!rf)
			vmm->flushes++;
	}
	if (!r && !rf) {
		settle_deferred(vmm, true);
		m->state = VMM_MAP_LIVE;
		vmm_list_add_map(&vmm->maps, m);
		vmm->nmaps++;
		vmm->mapped_pages += m->npages;
		vmm->maps_done++;
	} else if (r) {
		/* The device is gone: what reached VRAM is unknown. Keep the
		 * mapping (VA, pages, tables) as it is until destroy. */
		settle_deferred(vmm, false);
		m->state = VMM_MAP_QUAR_MAPPED;
		vmm_list_add_map(&vmm->quar_maps, m);
		vmm->quarantined_pages += m->npages;
		log_err("map of %llu pages at VA 0x%llx failed: the GPU is gone (%d); VA and pages "
			"are withheld", (unsigned long long)m->npages, (unsigned long long)m->va, r);
	} else {
		/* The entries are written but the invalidate did not complete:
		 * take them out again; nothing is freed because the MMU may
		 * still hold any of it. */
		vmm_unmap_locked(vmm, m, &freed);
		while (freed) {
			struct vmm_pt *pt = freed;

			freed = pt->next;
			vmm_pt_push(&vmm->quar_pts, pt);
		}
		settle_deferred(vmm, false);
		m->state = VMM_MAP_QUAR_HELD;
		vmm_list_add_map(&vmm->quar_maps, m);
		vmm->quarantined_pages += m->npages;
		r = rf;
		log_err("map of %llu pages at VA 0x%llx failed: TLB invalidate failed (%d); entries "
			"cleared, VA and pages withheld", (unsigned long long)m->npages,
			(unsigned long long)m->va, r);
	}
	pthread_mutex_unlock(&vmm->lock);
	if (r)
		return r;
	*out = m;
	return 0;
}

int vmmfs_vmm_execute_map(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op,
			  const uint64_t *pfns, unsigned int flags,
			  struct vmmfs_mapping **out)
{
	return vmm_execute(vmm, op, pfns, flags, false, out);
}
