/* SPDX-License-Identifier: MIT */
/*
 * Failure leaves no trace (issue 3, required behaviour 2).
 *
 * Allocation failures: each scenario is run once to count its allocation
 * attempts (heap objects, VRAM pages, VA ranges: every vmmfs_fault_point),
 * then once per attempt with that attempt failing. Each run must fail
 * cleanly or succeed; after a failure, and after undoing a success, VA,
 * VRAM, page-table pages, pending ops, live heap objects and the shadow
 * tree (vmmfs_vmm_check) are exactly as before.
 *
 * Hardware errors: an execute or unmap that meets a TLB invalidate timeout
 * or a vanished device leaves no directory entry pointing at freed VRAM and
 * no valid PTE for VA that was released (the tables are walked straight
 * from simulated VRAM, not through vmmfs).
 */
#include <stdlib.h>
#include <string.h>
#include "helper.h"
#include "vmm_priv.h"
#include "vram.h"
#include "mem.h"
#include "sim/sim.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PG 4096ull

struct fx {
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	const struct mmu_fmt *f;
	uint64_t *pfns;
};

struct snap {
	uint64_t va_free, vram_free, vram_pt, pt_pages, pending, mappings, mapped, vram_mapped;
	int64_t live;
};

static struct snap snap_take(struct fx *x)
{
	struct vmmfs_vmm_stats st;
	struct vmmfs_vram_usage u;
	struct snap s;

	vmmfs_vmm_get_stats(x->vmm, &st);
	vmmfs_gpu_get_vram_usage(x->gpu, &u);
	s.va_free = st.va_free;
	s.vram_free = u.free_pages;
	s.vram_pt = u.pt_pages;
	s.pt_pages = st.pt_pages;
	s.pending = st.pending;
	s.mappings = st.mappings;
	s.mapped = st.mapped_pages;
	s.vram_mapped = u.mapped_pages;
	s.live = vmmfs_mem_live();
	return s;
}

static bool snap_same(const char *what, uint64_t i, const struct snap *a, const struct snap *b)
{
	bool same = a->va_free == b->va_free && a->vram_free == b->vram_free &&
		    a->vram_pt == b->vram_pt && a->pt_pages == b->pt_pages &&
		    a->pending == b->pending && a->mappings == b->mappings && a->mapped == b->mapped &&
		    a->vram_mapped == b->vram_mapped && a->live == b->live;

	if (!same)
		fprintf(stderr, "  %s, failing attempt %llu: va_free 0x%llx/0x%llx vram_free %llu/%llu "
			"vram_pt %llu/%llu pt_pages %llu/%llu pending %llu/%llu maps %llu/%llu "
			"VRAM mapped %llu/%llu live %lld/%lld (before/after)\n", what, (unsigned long long)i,
			(unsigned long long)a->va_free, (unsigned long long)b->va_free,
			(unsigned long long)a->vram_free, (unsigned long long)b->vram_free,
			(unsigned long long)a->vram_pt, (unsigned long long)b->vram_pt,
			(unsigned long long)a->pt_pages, (unsigned long long)b->pt_pages,
			(unsigned long long)a->pending, (unsigned long long)b->pending,
			(unsigned long long)a->mappings, (unsigned long long)b->mappings,
			(unsigned long long)a->vram_mapped, (unsigned long long)b->vram_mapped,
			(long long)a->live, (long long)b->live);
	return same;
}

static void check(struct fx *x, const char *what, uint64_t i)
{
	char err[512];
	int r = vmmfs_vmm_check(x->vmm, err, sizeof(err));

	if (r)
		fprintf(stderr, "  %s, failing attempt %llu: %s\n", what, (unsigned long long)i, err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

/* A scenario: does its thing, returns 0 or the error; on success it
 * undoes itself (the undo is not under fault injection). */
typedef int (*scenario_fn)(struct fx *x, bool undo);

static struct vmmfs_mapping *last_map;
static struct vmmfs_map_op *last_op;

static void undo_map(struct fx *x)
{
	vmmfs_fault_reset();
	CU_ASSERT_EQUAL(vmmfs_vmm_unmap(x->vmm, last_map), 0);
}

static const struct vmmfs_va_placement *exact(struct vmmfs_va_placement *pl, uint64_t va)
{
	*pl = (struct vmmfs_va_placement){ .kind = VMMFS_VA_EXACT, .start = va,
					   .pa_hint = VMMFS_NO_PA_HINT };
	return pl;
}

/* a map into a fresh part of the tree: every level new */
static int sc_fresh(struct fx *x, bool undo)
{
	struct vmmfs_va_placement pl;
	int r = vmmfs_vmm_map_pages(x->vmm, x->pfns, 600, exact(&pl, 3 * (1ull << x->f->levels[1].shift)),
				    0, &last_map);

	if (!r && undo)
		undo_map(x);
	return r;
}

/* a map into tables that exist (a mapping nearby is set up first) */
static int sc_existing(struct fx *x, bool undo)
{
	struct vmmfs_va_placement pl;
	int r = vmmfs_vmm_map_pages(x->vmm, x->pfns + 1000, 300, exact(&pl, 64 * GiB + 100 * PG), 0,
				    &last_map);

	if (!r && undo)
		undo_map(x);
	return r;
}

/* straddling a table boundary at every level (the root's first two entries) */
static int sc_straddle(struct fx *x, bool undo)
{
	struct vmmfs_va_placement pl;
	uint64_t va = (1ull << x->f->levels[0].shift) - 3 * PG;
	int r = vmmfs_vmm_map_pages(x->vmm, x->pfns + 7, 6, exact(&pl, va), VMMFS_MAP_READ_ONLY, &last_map);

	if (!r && undo)
		undo_map(x);
	return r;
}

/* big and small pages, 64 KiB tables from the pool, through map_pages */
static int sc_big(struct fx *x, bool undo)
{
	int r = vmmfs_vmm_map_pages(x->vmm, x->pfns + 512 - 32, 512 + 64 + 3, NULL, 0, &last_map);

	if (!r && undo)
		undo_map(x);
	return r;
}

/* scattered PFNs and runs: more runs than a mapping is first made room
 * for, so map_pages grows it (one more allocation) after taking the first
 * runs' page references */
static int sc_scattered(struct fx *x, bool undo)
{
	uint64_t pf[100];
	int r;

	for (int i = 0; i < 100; i++)
		pf[i] = i < 60 ? 0x3000 + 3 * (uint64_t)i : 0x3400 + (uint64_t)(i % 7) * 0x10 + (uint64_t)i;
	r = vmmfs_vmm_map_pages(x->vmm, pf, 100, NULL, VMMFS_MAP_READ_ONLY, &last_map);
	if (!r && undo)
		undo_map(x);
	return r;
}

/* prepare (PFNs unknown) then execute */
static int sc_prepare_execute(struct fx *x, bool undo)
{
	struct vmmfs_va_placement pl = { .kind = VMMFS_VA_RANGE, .start = 2 * GiB, .end = 4 * GiB,
					 .pa_hint = 0 };
	int r = vmmfs_vmm_prepare_map(x->vmm, 1100, &pl, &last_op);

	if (r)
		return r;
	r = vmmfs_vmm_execute_map(x->vmm, last_op, x->pfns, 0, &last_map);
	if (r)
		return r;   /* execute makes no allocation attempt: cannot fail here */
	if (undo)
		undo_map(x);
	return 0;
}

static int sc_map_alloc(struct fx *x, bool undo)
{
	int r = vmmfs_vmm_map_alloc(x->vmm, 3 * MiB + 5 * PG, NULL, 0, &last_map);

	if (!r && undo)
		undo_map(x);
	return r;
}

/* unmap freeing tables: it must make no allocation attempt at all */
static int sc_unmap(struct fx *x, bool undo)
{
	struct vmmfs_va_placement pl;
	struct snap s;
	int r;

	/* the map is set-up, outside fault injection */
	vmmfs_fault_reset();
	s = snap_take(x);
	CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(x->vmm, x->pfns, 40, exact(&pl, 5 * GiB - 20 * PG), 0,
						  &last_map), 0);
	vmmfs_fault_reset();
	r = vmmfs_vmm_unmap(x->vmm, last_map);
	CU_ASSERT_EQUAL(vmmfs_fault_count(), 0);
	{
		struct snap t = snap_take(x);

		CU_ASSERT(snap_same("unmap", 0, &s, &t));
	}
	(void)undo;
	return r;
}

static void run_scenario(struct fx *x, const char *name, scenario_fn fn)
{
	struct snap before, after;
	uint64_t count, fails = 0;
	int r;

	/* count */
	before = snap_take(x);
	vmmfs_fault_reset();
	r = fn(x, false);
	count = vmmfs_fault_count();
	VT_EQ_INT(r, 0);
	if (!r && fn != sc_unmap)
		undo_map(x);
	after = snap_take(x);
	CU_ASSERT(snap_same(name, UINT64_MAX, &before, &after));
	check(x, name, UINT64_MAX);

	for (uint64_t i = 0; i < count; i++) {
		before = snap_take(x);
		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		r = fn(x, true);
		vmmfs_fault_reset();
		if (r) {
			fails++;
			if (r != -ENOMEM)
				fprintf(stderr, "  %s, failing attempt %llu: %d\n", name,
					(unsigned long long)i, r);
			VT_EQ_INT(r, -ENOMEM);
		}
		after = snap_take(x);
		if (!snap_same(name, i, &before, &after))
			CU_FAIL_FATAL("state changed");
		check(x, name, i);
	}
	printf("  %-6s %-16s %3llu allocation attempts, %3llu runs failed cleanly\n",
	       vmmfs_gpu_get_info(x->gpu)->chip, name, (unsigned long long)count,
	       (unsigned long long)fails);
	if (fn != sc_unmap)
		CU_ASSERT(fails > 0);
}

static void test_failmalloc(void)
{
	static const struct {
		const char *name;
		scenario_fn fn;
	} sc[] = {
		{ "fresh", sc_fresh },
		{ "existing tables", sc_existing },
		{ "straddle", sc_straddle },
		{ "big pages", sc_big },
		{ "scattered", sc_scattered },
		{ "prepare+execute", sc_prepare_execute },
		{ "map_alloc", sc_map_alloc },
		{ "unmap", sc_unmap },
	};

	for (int c = 0; vt_chips[c]; c++) {
		struct fx x = { 0 };
		struct vmmfs_mapping *keep;
		struct vmmfs_va_placement pl;

		x.gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(x.gpu, &x.vmm), 0);
		x.f = x.vmm->fmt;
		x.pfns = malloc(4096 * sizeof(uint64_t));
		for (int i = 0; i < 4096; i++)
			x.pfns[i] = 0x2000 + (uint64_t)i;
		/* the tables of "existing tables" */
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(x.vmm, x.pfns, 1, exact(&pl, 64 * GiB), 0, &keep), 0);
		for (size_t s = 0; s < ARRAY_SIZE(sc); s++)
			run_scenario(&x, sc[s].name, sc[s].fn);
		CU_ASSERT_EQUAL(vmmfs_vmm_unmap(x.vmm, keep), 0);
		vmmfs_vmm_destroy(x.vmm);
		vmmfs_gpu_close(x.gpu);
		free(x.pfns);
	}
}

/* Creating an address space: each failing allocation, no trace. */
static void test_failmalloc_create(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("gh100", 256 * MiB);
	struct vmmfs_vram_usage u0, u;
	struct vmmfs_vmm *vmm = NULL;
	int64_t live0 = vmmfs_mem_live();
	uint64_t count;

	vmmfs_gpu_get_vram_usage(gpu, &u0);
	vmmfs_fault_reset();
	CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm), 0);
	count = vmmfs_fault_count();
	vmmfs_vmm_destroy(vmm);
	for (uint64_t i = 0; i < count; i++) {
		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		vmm = NULL;
		VT_EQ_INT(vmmfs_vmm_create(gpu, &vmm), -ENOMEM);
		vmmfs_fault_reset();
		CU_ASSERT_PTR_NULL(vmm);
		VT_EQ_U64(vmmfs_mem_live(), live0);
		vmmfs_gpu_get_vram_usage(gpu, &u);
		VT_EQ_U64(u.free_pages, u0.free_pages);
		VT_EQ_U64(u.pt_pages, u0.pt_pages);
	}
	printf("  create: %llu allocation attempts, each failing cleanly\n", (unsigned long long)count);
	CU_ASSERT(count >= 3);
	vmmfs_gpu_close(gpu);
}

/* ---- hardware errors ------------------------------------------------------------------- */

/* Walks the tables straight from simulated VRAM: every table a directory
 * entry points at must still be a page-table page (never freed VRAM);
 * every valid leaf must lie inside [lo, hi) (VA still held) and count. */
struct hw_walk {
	struct vmmfs_gpu *gpu;
	const struct mmu_fmt *f;
	uint64_t lo, hi, leaves, bad;
};

static void hw_leaf(struct hw_walk *w, uint64_t raw, bool lpte, uint64_t va)
{
	struct mmu_pte pte;

	mmu_pte_decode(w->f, raw, lpte, &pte);
	if (pte.kind != MMU_PTE_VALID)
		return;
	w->leaves++;
	if (va < w->lo || va >= w->hi) {
		fprintf(stderr, "  valid PTE for VA 0x%llx, outside the held VA\n", (unsigned long long)va);
		w->bad++;
	}
}

static void hw_table(struct hw_walk *w, uint64_t pa)
{
	if (!vram_is_pt(w->gpu->vram, pa >> 12)) {
		fprintf(stderr, "  a directory entry points at VRAM 0x%llx, which is no page table\n",
			(unsigned long long)pa);
		w->bad++;
	}
}

static void hw_walk_dir(struct hw_walk *w, int d, uint64_t pa, uint64_t base)
{
	const struct mmu_level *l = &w->f->levels[d];
	struct vmmfs_sim *sim = vt_sim(w->gpu);
	uint64_t buf[512];
	uint32_t n = (uint32_t)mmu_entries(l);

	vmmfs_sim_vram_peek(sim, pa, buf, n * l->entry_size);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t va = base + (uint64_t)i * mmu_entry_span(l);

		if (d == w->f->nlevels - 1) {
			hw_leaf(w, buf[i], false, va);
		} else if (l->dual) {
			uint64_t raw[2] = { buf[2 * i], buf[2 * i + 1] }, lpt[32], pt[512];
			struct mmu_pde big, small;
			bool is_pte;

			mmu_dual_decode(w->f, raw, &big, &small, &is_pte);
			if (is_pte) {
				hw_leaf(w, raw[0], false, va);
				continue;
			}
			if (big.present) {
				hw_table(w, big.addr);
				vmmfs_sim_vram_peek(sim, big.addr, lpt, sizeof(lpt));
				for (int k = 0; k < 32; k++)
					hw_leaf(w, lpt[k], true, va + ((uint64_t)k << 16));
			}
			if (small.present) {
				hw_table(w, small.addr);
				vmmfs_sim_vram_peek(sim, small.addr, pt, sizeof(pt));
				for (int k = 0; k < 512; k++)
					hw_leaf(w, pt[k], false, va + (uint64_t)k * PG);
			}
		} else {
			struct mmu_pde pde;
			bool is_pte;

			mmu_pde_decode(w->f, buf[i], &pde, &is_pte);
			if (is_pte) {
				hw_leaf(w, buf[i], false, va);
			} else if (pde.present) {
				hw_table(w, pde.addr);
				hw_walk_dir(w, d + 1, pde.addr, va);
			}
		}
	}
}

static struct hw_walk hw_check(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t lo, uint64_t hi)
{
	struct hw_walk w = { .gpu = gpu, .f = vmm->fmt, .lo = lo, .hi = hi };

	hw_walk_dir(&w, 0, vmmfs_vmm_pdb(vmm), 0);
	VT_EQ_U64(w.bad, 0);
	return w;
}

static void test_hw_stuck_invalidate(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_sim *sim = vt_sim(gpu);
		struct vmmfs_vmm *vmm = NULL;
		struct vmmfs_va_placement pl;
		struct vmmfs_map_op *op;
		struct vmmfs_mapping *m, *keep;
		struct vmmfs_vmm_stats st;
		struct vmmfs_sim_xlate x;
		uint64_t *pf = malloc(1100 * sizeof(uint64_t)), va = 40 * GiB - 512 * PG, pt0;
		struct hw_walk w;
		char err[256];
		int64_t live0 = vmmfs_mem_live();

		for (int i = 0; i < 1100; i++)
			pf[i] = 0x4000 + (uint64_t)i;
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm), 0);
		gpu->tlb.timeout_us = 20000;
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(vmm, pf, 3, exact(&pl, va - 8 * PG), 0, &keep), 0);

		/* execute: the invalidate never completes */
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_prepare_map(vmm, 1100, exact(&pl, va), &op), 0);
		pt0 = vmmfs_vmm_check(vmm, err, sizeof(err)) == 0 ? 0 : 1;
		VT_EQ_U64(pt0, 0);
		vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), -ETIMEDOUT);
		vmmfs_sim_set_faults(sim, 0);
		vmmfs_vmm_get_stats(vmm, &st);
		VT_EQ_U64(st.quarantined_pages, 1100);
		VT_EQ_U64(st.pending, 0);
		VT_EQ_U64(st.mappings, 1);
		/* the entries were taken out again; the VA stays held */
		w = hw_check(gpu, vmm, va - 8 * PG, va - 5 * PG);
		VT_EQ_U64(w.leaves, 3);
		CU_ASSERT_EQUAL(vmmfs_vmm_check(vmm, err, sizeof(err)), 0);
		vmmfs_sim_tlb_flush_all(sim);
		vmmfs_sim_translate(sim, vmmfs_vmm_pdb(vmm), va + 5 * PG, 'r', &x);
		VT_EQ_INT(x.result, VMMFS_SIM_XLATE_FAULT);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, exact(&pl, va + 5 * PG), &op), -EEXIST);
		/* pages stay referenced: never handed to page tables */
		VT_EQ_U64(vram_owner(gpu->vram, pf[5]), 1);

		/* unmap: the same */
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(vmm, pf, 40, exact(&pl, 80 * GiB), 0, &m), 0);
		{
			struct vmmfs_vram_usage u0, u1;

			vmmfs_gpu_get_vram_usage(gpu, &u0);
			vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), -ETIMEDOUT);
			vmmfs_sim_set_faults(sim, 0);
			/* the emptied tables were unhooked but not freed: the MMU may
			 * still cache them */
			vmmfs_gpu_get_vram_usage(gpu, &u1);
			VT_EQ_U64(u1.pt_pages, u0.pt_pages);
			VT_EQ_U64(u1.free_pages, u0.free_pages);
		}
		vmmfs_vmm_get_stats(vmm, &st);
		VT_EQ_U64(st.quarantined_pages, 1140);
		w = hw_check(gpu, vmm, va - 8 * PG, va - 5 * PG);
		VT_EQ_U64(w.leaves, 3);
		CU_ASSERT_EQUAL(vmmfs_vmm_check(vmm, err, sizeof(err)), 0);

		/* map_alloc: its fresh pages stay with the quarantined mapping */
		{
			struct vmmfs_vram_usage u;

			vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
			VT_EQ_INT(vmmfs_vmm_map_alloc(vmm, 5 * PG, NULL, 0, &m), -ETIMEDOUT);
			vmmfs_sim_set_faults(sim, 0);
			vmmfs_gpu_get_vram_usage(gpu, &u);
			VT_EQ_U64(u.alloc_pages, 5);
			CU_ASSERT_EQUAL(vmmfs_vmm_check(vmm, err, sizeof(err)), 0);
		}

		/* once the GPU responds again, work goes on; destroy releases all */
		CU_ASSERT_EQUAL(vmmfs_vmm_unmap(vmm, keep), 0);
		CU_ASSERT_EQUAL(vmmfs_vmm_check(vmm, err, sizeof(err)), 0);
		vmmfs_vmm_destroy(vmm);
		VT_EQ_U64(vmmfs_mem_live(), live0);
		{
			struct vmmfs_vram_usage u;

			vmmfs_gpu_get_vram_usage(gpu, &u);
			VT_EQ_U64(u.pt_pages, 0);
			VT_EQ_U64(u.alloc_pages, 0);
			VT_EQ_U64(vram_owner(gpu->vram, pf[5]), 0);
		}
		free(pf);
		vmmfs_gpu_close(gpu);
	}
}

static void test_hw_vanished(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		for (int when = 0; when < 2; when++) {   /* 0: in execute, 1: in unmap */
			int64_t live0 = vmmfs_mem_live();
			struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
			struct vmmfs_sim *sim = vt_sim(gpu);
			struct vmmfs_vmm *vmm = NULL;
			struct vmmfs_va_placement pl;
			struct vmmfs_map_op *op;
			struct vmmfs_mapping *m, *keep;
			struct vmmfs_vmm_stats st;
			uint64_t pf[700], va = 7 * GiB;
			int r;

			for (int i = 0; i < 700; i++)
				pf[i] = 0x5000 + (uint64_t)i;
			CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm), 0);
			CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(vmm, pf, 2, exact(&pl, va - 2 * PG), 0, &keep), 0);
			if (when == 0) {
				CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_prepare_map(vmm, 700, exact(&pl, va), &op), 0);
				vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_VANISHED);
				r = vmmfs_vmm_execute_map(vmm, op, pf, 0, &m);
			} else {
				CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(vmm, pf, 700, exact(&pl, va), 0, &m), 0);
				vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_VANISHED);
				r = vmmfs_vmm_unmap(vmm, m);
			}
			VT_EQ_INT(r, -ENODEV);
			vmmfs_vmm_get_stats(vmm, &st);
			VT_EQ_U64(st.quarantined_pages, 700);
			/* the VA stays held: whatever reached VRAM points only at
			 * page tables and only maps VA that is not released */
			vmmfs_sim_set_faults(sim, 0);
			hw_check(gpu, vmm, va - 2 * PG, va + 700 * PG);
			for (int i = 0; i < 700; i++)
				CU_ASSERT(vram_owner(gpu->vram, pf[i]) >= 1);
			vmmfs_vmm_destroy(vmm);  /* cannot flush a gone GPU: VRAM stays reserved */
			vmmfs_gpu_close(gpu);
			VT_EQ_U64(vmmfs_mem_live(), live0);
		}
	}
}

static void register_tests(void)
{
	static const struct vt_test tests[] = {
		{ "each_allocation_fails", test_failmalloc },
		{ "create", test_failmalloc_create },
		{ "hw_stuck_invalidate", test_hw_stuck_invalidate },
		{ "hw_vanished", test_hw_vanished },
		{ NULL, NULL },
	};

	vt_add_suite("failmalloc", tests);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
