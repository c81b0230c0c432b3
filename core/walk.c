/* SPDX-License-Identifier: MIT */
/*
 * Shadow-tree nodes, and the walker over the tables in VRAM (lookup, dump).
 *
 * The VRAM walker decodes entries with mmu.h only and follows the hardware's
 * resolution order for a dual PDE (big-pages-and-tlb.md §2.3):
 *   lo bit 0            a 2 MiB page
 *   big half present    read the big PTE first: valid = 64 KiB page,
 *                       sparse, no-4K (fault), or 0 = look at the small PT
 *   small half present  read the small PTE
 *   neither             sparse marker, else "no table"
 */
#include <string.h>
#include "internal.h"
#include "pramin.h"
#include "walk.h"

/* ---- shadow nodes ----------------------------------------------------------- */

static size_t node_children(const struct mmu_fmt *f, unsigned int level)
{
	if (level == WALK_LPT || (int)level == f->nlevels - 1)
		return 0;
	return (size_t)mmu_entries(&f->levels[level]) * ((int)level == f->pd0 ? 2 : 1);
}

size_t walk_node_size(const struct mmu_fmt *f, bool pd1_512m, unsigned int level)
{
	size_t sz = sizeof(struct vmm_pt);

	sz += node_children(f, level) * sizeof(struct vmm_pt *);
	if (level != WALK_LPT && walk_level_has_leaves(f, pd1_512m, level))
		sz += (size_t)(mmu_entries(&f->levels[level]) + 63) / 64 * sizeof(uint64_t);
	if ((int)level == f->pd0)
		sz += 2 * (size_t)(mmu_entries(&f->levels[level]) + 63) / 64 * sizeof(uint64_t);
	if ((int)level == f->nlevels - 1)
		sz += WALK_CHUNKS;
	return sz;
}

struct vmm_pt *walk_node_init(void *mem, const struct mmu_fmt *f, bool pd1_512m,
			      unsigned int level)
{
	struct vmm_pt *pt = mem;
	char *p = (char *)(pt + 1);
	size_t nc = node_children(f, level);

	pt->level = (uint8_t)level;
	if (nc) {
		pt->child = (struct vmm_pt **)(void *)p;
		p += nc * sizeof(struct vmm_pt *);
	}
	if (level != WALK_LPT && walk_level_has_leaves(f, pd1_512m, level)) {
		pt->leafmap = (uint64_t *)(void *)p;
		p += (size_t)(mmu_entries(&f->levels[level]) + 63) / 64 * sizeof(uint64_t);
	}
	if ((int)level == f->pd0) {
		size_t words = (size_t)(mmu_entries(&f->levels[level]) + 63) / 64;

		pt->hwlo = (uint64_t *)(void *)p;
		pt->hwhi = pt->hwlo + words;
		p += 2 * words * sizeof(uint64_t);
	}
	if ((int)level == f->nlevels - 1)
		pt->cnt = (uint8_t *)p;
	return pt;
}

/* ---- lookup ------------------------------------------------------------------- */

static void leaf_result(const struct mmu_fmt *f, uint64_t raw, bool is_lpte, uint64_t va,
			uint64_t page_size, struct vmmfs_lookup *out)
{
	struct mmu_pte pte;

	mmu_pte_decode(f, raw, is_lpte, &pte);
	switch (pte.kind) {
	case MMU_PTE_VALID:
		out->state = VMMFS_LOOKUP_MAPPED;
		out->pa = (pte.pfn << VMMFS_PAGE_SHIFT) + (va & (page_size - 1));
		out->page_size = page_size;
		out->read_only = pte.read_only;
		break;
	case MMU_PTE_SPARSE:
		out->state = VMMFS_LOOKUP_SPARSE;
		out->page_size = page_size;
		break;
	default:
		out->state = VMMFS_LOOKUP_UNMAPPED;
		break;
	}
}

static void at(struct vmmfs_lookup *out, int depth, const char *name, uint32_t index,
	       uint64_t addr, uint64_t raw)
{
	out->depth = depth;
	out->level = name;
	out->index = index;
	out->entry_addr = addr;
	out->entry = raw;
}

static int lookup_locked(const struct walk_hw *hw, uint64_t va, struct vmmfs_lookup *out)
{
	const struct mmu_fmt *f = hw->fmt;
	const struct mmu_level *l;
	uint64_t table = hw->pdb, addr, raw[2];
	struct mmu_pde pde, big, small;
	bool is_pte;
	uint32_t idx;
	int d, r;

	for (d = 0; d < f->pd0; d++) {
		l = &f->levels[d];
		idx = mmu_index(l, va);
		addr = table + (uint64_t)idx * l->entry_size;
		r = pramin_rd64_locked(hw->gpu, addr, &raw[0]);
		if (r)
			return r;
		at(out, d, l->name, idx, addr, raw[0]);
		mmu_pde_decode(f, raw[0], &pde, &is_pte);
		if (is_pte) {
			if (d == f->pd0 - 1 && hw->pd1_512m)
				leaf_result(f, raw[0], false, va, mmu_entry_span(l), out);
			else
				out->state = VMMFS_LOOKUP_UNMAPPED; /* no leaf can live here */
			return 0;
		}
		if (!pde.present) {
			out->state = pde.sparse ? VMMFS_LOOKUP_SPARSE : VMMFS_LOOKUP_NO_TABLE;
			out->page_size = pde.sparse ? mmu_entry_span(l) : 0;
			return 0;
		}
		if (pde.aper != MMU_APER_VID) {
			out->state = VMMFS_LOOKUP_NO_TABLE; /* not in VRAM: vmmfs cannot follow it */
			return 0;
		}
		table = pde.addr;
	}

	l = &f->levels[f->pd0];
	idx = mmu_index(l, va);
	addr = table + (uint64_t)idx * l->entry_size;
	r = pramin_rd64_n_locked(hw->gpu, addr, raw, 2);
	if (r)
		return r;
	at(out, f->pd0, l->name, idx, addr, raw[0]);
	mmu_dual_decode(f, raw, &big, &small, &is_pte);
	if (is_pte) {
		leaf_result(f, raw[0], false, va, mmu_entry_span(l), out);
		return 0;
	}
	if (!big.present && !small.present) {
		out->state = big.sparse ? VMMFS_LOOKUP_SPARSE : VMMFS_LOOKUP_NO_TABLE;
		out->page_size = big.sparse ? mmu_entry_span(l) : 0;
		return 0;
	}
	if (big.present) {
		uint64_t lpte;
		struct mmu_pte pte;

		if (big.aper != MMU_APER_VID) {
			out->state = VMMFS_LOOKUP_NO_TABLE;
			return 0;
		}
		idx = mmu_index(&f->lpt, va);
		addr = big.addr + (uint64_t)idx * 8;
		r = pramin_rd64_locked(hw->gpu, addr, &lpte);
		if (r)
			return r;
		at(out, f->nlevels - 1, f->lpt.name, idx, addr, lpte);
		mmu_pte_decode(f, lpte, true, &pte);
		if (pte.kind != MMU_PTE_INVALID || !small.present) {
			/* valid, sparse, no-4K, undocumented: the big PTE decides;
			 * 0 without a small table: a fault. */
			leaf_result(f, lpte, true, va, mmu_entry_span(&f->lpt), out);
			return 0;
		}
	}
	if (small.aper != MMU_APER_VID) {
		out->state = VMMFS_LOOKUP_NO_TABLE;
		return 0;
	}
	l = &f->levels[f->nlevels - 1];
	idx = mmu_index(l, va);
	addr = small.addr + (uint64_t)idx * 8;
	r = pramin_rd64_locked(hw->gpu, addr, &raw[0]);
	if (r)
		return r;
	at(out, f->nlevels - 1, l->name, idx, addr, raw[0]);
	leaf_result(f, raw[0], false, va, mmu_entry_span(l), out);
	return 0;
}

int walk_lookup(const struct walk_hw *hw, uint64_t va, struct vmmfs_lookup *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	pramin_lock(hw->gpu);
	r = lookup_locked(hw, va, out);
	pramin_unlock(hw->gpu);
	return r;
}

/* ---- dump ------------------------------------------------------------------------ */

struct dump_ctx {
	const struct walk_hw *hw;
	int (*fn)(void *ctx, const struct vmmfs_pt_entry *e);
	void *ctx;
	bool pending;             /* a run of leaves not yet reported */
	struct vmmfs_pt_entry run;
	/* VRAM PTEs the way vmmfs writes them (mmu_pte_vid): template | PFN.
	 * A leaf that is exactly that is read without the general decoder;
	 * anything else goes through mmu_pte_decode. fast is false when the
	 * format's own decoder disagrees with that shortcut. */
	bool fast;
	unsigned int vid_shift;
	uint64_t vid_mask;        /* the PFN field */
	uint64_t vid_tmpl[2];     /* rw, ro */
	const char *vid_name;     /* "vid" */
};

static int flush_run(struct dump_ctx *c)
{
	if (!c->pending)
		return 0;
	c->pending = false;
	return c->fn(c->ctx, &c->run);
}

static int emit_table(struct dump_ctx *c, int depth, const char *level, const char *half,
		      uint32_t idx, uint64_t va, uint64_t span, const struct mmu_pde *pde)
{
	struct vmmfs_pt_entry e = {
		.depth = depth, .level = level, .half = half, .first = idx, .last = idx,
		.va_first = va, .va_last = va + span - 1, .kind = VMMFS_PT_TABLE,
		.addr = pde->addr, .aperture = mmu_aperture_name(pde->aper),
	};
	int r = flush_run(c);

	return r ? r : c->fn(c->ctx, &e);
}

/* A leaf entry (a page at pa through aperture aper, or sparse): extends the
 * pending run or starts one. Every member of the run is set here: no
 * memset per leaf (the dump of a scattered mapping starts a run at each). */
static inline int emit_run(struct dump_ctx *c, int depth, const char *level, uint32_t idx,
			   uint64_t va, uint64_t span, enum vmmfs_pt_kind kind,
			   const char *aper, uint64_t pa, bool read_only)
{
	struct vmmfs_pt_entry *run = &c->run;
	int r;

	if (c->pending && run->last + 1 == idx && run->va_last + 1 == va &&
	    (kind == VMMFS_PT_SPARSE ||
	     run->addr + (uint64_t)(run->last - run->first + 1) * span == pa) &&
	    run->kind == kind && run->level == level && run->depth == depth &&
	    run->page_size == span && run->read_only == read_only && run->aperture == aper) {
		run->last = idx;
		run->va_last = va + span - 1;
		return 0;
	}
	r = flush_run(c);
	if (r)
		return r;
	run->depth = depth;
	run->level = level;
	run->half = NULL;
	run->first = run->last = idx;
	run->va_first = va;
	run->va_last = va + span - 1;
	run->kind = kind;
	run->addr = kind == VMMFS_PT_PAGE ? pa : 0;
	run->page_size = span;
	run->aperture = aper;
	run->read_only = read_only;
	c->pending = true;
	return 0;
}

/* A decoded leaf: only valid and sparse entries are shown. */
static int emit_leaf(struct dump_ctx *c, int depth, const char *level, uint32_t idx,
		     uint64_t va, uint64_t span, const struct mmu_pte *pte)
{
	if (pte->kind == MMU_PTE_VALID)
		return emit_run(c, depth, level, idx, va, span, VMMFS_PT_PAGE,
				mmu_aperture_name(pte->aper), pte->pfn << VMMFS_PAGE_SHIFT,
				pte->read_only);
	return emit_run(c, depth, level, idx, va, span, VMMFS_PT_SPARSE, NULL, 0,
			pte->read_only);
}

/* Sets up the shortcut for vmmfs's own VRAM PTEs, after checking it against
 * the format's decoder at both ends of the PFN field. */
static void dump_fast_init(struct dump_ctx *c)
{
	const struct mmu_fmt *f = c->hw->fmt;
	unsigned int i;

	c->fast = false;
	c->vid_shift = mmu_pte_vid_pfn_shift(f);
	if (!f->max_vid_pfn || c->vid_shift >= 64 ||
	    (f->max_vid_pfn - 1) > (UINT64_MAX >> c->vid_shift))
		return;
	c->vid_mask = (f->max_vid_pfn - 1) << c->vid_shift;
	c->vid_name = mmu_aperture_name(MMU_APER_VID);
	for (i = 0; i < 2; i++) {
		struct mmu_pte lo, hi;

		c->vid_tmpl[i] = mmu_pte_vid_template(f, i == 1);
		if (c->vid_tmpl[i] & c->vid_mask)
			return;
		mmu_pte_decode(f, c->vid_tmpl[i], false, &lo);
		mmu_pte_decode(f, c->vid_tmpl[i] | c->vid_mask, false, &hi);
		if (lo.kind != MMU_PTE_VALID || lo.aper != MMU_APER_VID || lo.pfn != 0 ||
		    lo.read_only != (i == 1) ||
		    hi.kind != MMU_PTE_VALID || hi.aper != MMU_APER_VID ||
		    hi.pfn != f->max_vid_pfn - 1 || hi.read_only != (i == 1))
			return;
	}
	c->fast = c->vid_tmpl[0] != c->vid_tmpl[1];
}

static int read_table(const struct walk_hw *hw, uint64_t pa, uint64_t *buf, size_t n)
{
	int r;

	pramin_lock(hw->gpu);
	r = pramin_rd64_n_locked(hw->gpu, pa, buf, n);
	pramin_unlock(hw->gpu);
	return r;
}

/* The leaf entries of a PT or LPT at pa. */
static int dump_leaves(struct dump_ctx *c, int depth, const struct mmu_level *l, bool is_lpt,
		       uint64_t pa, uint64_t va_base)
{
	const struct mmu_fmt *f = c->hw->fmt;
	const uint64_t span = mmu_entry_span(l), mask = c->vid_mask;
	const char *name = l->name;
	uint64_t buf[512];
	size_t n = (size_t)mmu_entries(l);
	int r = read_table(c->hw, pa, buf, n);

	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint64_t raw = buf[i], attr = raw & ~mask;
		struct mmu_pte pte;

		if (!raw)
			continue;
		if (c->fast && (attr == c->vid_tmpl[0] || attr == c->vid_tmpl[1])) {
			r = emit_run(c, depth, name, (uint32_t)i, va_base + i * span, span,
				     VMMFS_PT_PAGE, c->vid_name,
				     ((raw & mask) >> c->vid_shift) << VMMFS_PAGE_SHIFT,
				     attr == c->vid_tmpl[1]);
			if (r)
				return r;
			continue;
		}
		mmu_pte_decode(f, raw, is_lpt, &pte);
		if (pte.kind != MMU_PTE_VALID && pte.kind != MMU_PTE_SPARSE)
			continue;
		r = emit_leaf(c, depth, name, (uint32_t)i, va_base + i * span, span, &pte);
		if (r)
			return r;
	}
	return flush_run(c);
}

static int dump_dir(struct dump_ctx *c, int d, uint64_t pa, uint64_t va_base)
{
	const struct walk_hw *hw = c->hw;
	const struct mmu_fmt *f = hw->fmt;
	const struct mmu_level *l = &f->levels[d];
	uint64_t buf[512], span = mmu_entry_span(l);
	size_t n = (size_t)mmu_entries(l), words = n * l->entry_size / 8;
	int r = read_table(hw, pa, buf, words);

	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint64_t va = va_base + i * span;
		struct mmu_pde pde, big, small;
		struct mmu_pte pte;
		bool is_pte;

		if (d == f->pd0) {
			uint64_t raw[2] = { buf[2 * i], buf[2 * i + 1] };

			if (!raw[0] && !raw[1])
				continue;
			mmu_dual_decode(f, raw, &big, &small, &is_pte);
			if (is_pte) {
				mmu_pte_decode(f, raw[0], false, &pte);
				if (pte.kind == MMU_PTE_VALID || pte.kind == MMU_PTE_SPARSE)
					r = emit_leaf(c, d, l->name, (uint32_t)i, va, span, &pte);
				if (r)
					return r;
				continue;
			}
			if (!big.present && !small.present && big.sparse) {
				pte = (struct mmu_pte){ .kind = MMU_PTE_SPARSE };
				r = emit_leaf(c, d, l->name, (uint32_t)i, va, span, &pte);
				if (r)
					return r;
				continue;
			}
			if (big.present) {
				r = emit_table(c, d, l->name, "big", (uint32_t)i, va, span, &big);
				if (!r && big.aper == MMU_APER_VID)
					r = dump_leaves(c, d + 1, &f->lpt, true, big.addr, va);
				if (r)
					return r;
			}
			if (small.present) {
				r = emit_table(c, d, l->name, "small", (uint32_t)i, va, span, &small);
				if (!r && small.aper == MMU_APER_VID)
					r = dump_leaves(c, d + 1, &f->levels[d + 1], false, small.addr, va);
				if (r)
					return r;
			}
			continue;
		}

		if (!buf[i])
			continue;
		mmu_pde_decode(f, buf[i], &pde, &is_pte);
		if (is_pte) {
			mmu_pte_decode(f, buf[i], false, &pte);
			if (pte.kind == MMU_PTE_VALID || pte.kind == MMU_PTE_SPARSE)
				r = emit_leaf(c, d, l->name, (uint32_t)i, va, span, &pte);
			if (r)
				return r;
			continue;
		}
		if (!pde.present) {
			if (pde.sparse) {
				pte = (struct mmu_pte){ .kind = MMU_PTE_SPARSE };
				r = emit_leaf(c, d, l->name, (uint32_t)i, va, span, &pte);
				if (r)
					return r;
			}
			continue;
		}
		r = emit_table(c, d, l->name, NULL, (uint32_t)i, va, span, &pde);
		if (!r && pde.aper == MMU_APER_VID)
			r = dump_dir(c, d + 1, pde.addr, va);
		if (r)
			return r;
	}
	return flush_run(c);
}

int walk_dump(const struct walk_hw *hw,
	      int (*fn)(void *ctx, const struct vmmfs_pt_entry *e), void *ctx)
{
	struct dump_ctx c = { .hw = hw, .fn = fn, .ctx = ctx };

	dump_fast_init(&c);
	return dump_dir(&c, 0, hw->pdb, 0);
}
