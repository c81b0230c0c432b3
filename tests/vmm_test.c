/* SPDX-License-Identifier: MIT */
/*
 * VMM tests, for every simulated chip: a random differential test against a
 * plain model and against the simulated GPU's own MMU, then one test per
 * required behaviour of issue 3 (execute never allocates, no silent
 * truncation, dual PDE, freeing empty tables, one invalidate per op, one
 * walk per table = the MMIO counts of issue 6), big pages, concurrency.
 * vmmfs_vmm_check (shadow vs. tables read back from VRAM) runs after every
 * step.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "helper.h"
#include "vmm_priv.h"
#include "vram.h"
#include "mem.h"
#include "sim/sim.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PG 4096ull

/* ---- helpers ------------------------------------------------------------------------ */

static void check_vmm(struct vmmfs_vmm *vmm, const char *what, long step)
{
	char err[512];
	int r = vmmfs_vmm_check(vmm, err, sizeof(err));

	if (r)
		fprintf(stderr, "  vmm check failed after %s (step %ld): %s\n", what, step, err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

static struct vmmfs_vmm *new_vmm(struct vmmfs_gpu *gpu)
{
	struct vmmfs_vmm *vmm = NULL;
	int r = vmmfs_vmm_create(gpu, &vmm);

	CU_ASSERT_EQUAL_FATAL(r, 0);
	check_vmm(vmm, "create", 0);
	return vmm;
}

static uint64_t invalidates(struct vmmfs_gpu *gpu)
{
	struct vmmfs_sim_counters c;

	vmmfs_sim_get_counters(vt_sim(gpu), &c);
	return c.invalidates_completed;
}

static struct vmmfs_sim_xlate xlate(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t va, char acc)
{
	struct vmmfs_sim_xlate x;

	CU_ASSERT_EQUAL(vmmfs_sim_translate(vt_sim(gpu), vmmfs_vmm_pdb(vmm), va, acc, &x), 0);
	return x;
}

/* The GPU's MMU must translate va to pa with the given access. */
static bool expect_mapped(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t va, uint64_t pa, bool ro)
{
	struct vmmfs_sim_xlate r = xlate(gpu, vmm, va, 'r'), w = xlate(gpu, vmm, va, 'w');
	bool ok = r.result == VMMFS_SIM_XLATE_OK && r.pa == pa && r.read_only == ro &&
		  (ro ? w.result == VMMFS_SIM_XLATE_FAULT && w.fault == VMMFS_SIM_FAULT_READ_ONLY
		      : w.result == VMMFS_SIM_XLATE_OK);

	if (!ok)
		fprintf(stderr, "  GPU MMU: VA 0x%llx -> result %d pa 0x%llx ro %d (%s), expected pa 0x%llx ro %d\n",
			(unsigned long long)va, r.result, (unsigned long long)r.pa, r.read_only, r.reason,
			(unsigned long long)pa, ro);
	CU_ASSERT(ok);
	return ok;
}

static bool expect_fault(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t va)
{
	struct vmmfs_sim_xlate r = xlate(gpu, vmm, va, 'r');
	bool ok = r.result == VMMFS_SIM_XLATE_FAULT && r.fault != VMMFS_SIM_FAULT_BAD_ENCODING &&
		  r.fault != VMMFS_SIM_FAULT_OUT_OF_VRAM;

	if (!ok)
		fprintf(stderr, "  GPU MMU: VA 0x%llx -> result %d pa 0x%llx fault %d (%s)%s, expected a fault\n",
			(unsigned long long)va, r.result, (unsigned long long)r.pa, r.fault, r.reason,
			r.from_tlb ? " [from TLB]" : "");
	CU_ASSERT(ok);
	return ok;
}

static uint64_t vram_pt_pages(struct vmmfs_gpu *gpu)
{
	struct vmmfs_vram_usage u;

	vmmfs_gpu_get_vram_usage(gpu, &u);
	return u.pt_pages;
}

static uint64_t vram_free(struct vmmfs_gpu *gpu)
{
	struct vmmfs_vram_usage u;

	vmmfs_gpu_get_vram_usage(gpu, &u);
	return u.free_pages;
}

static struct vmmfs_vmm_stats stats(struct vmmfs_vmm *vmm)
{
	struct vmmfs_vmm_stats st;

	vmmfs_vmm_get_stats(vmm, &st);
	return st;
}

static uint64_t *seq(uint64_t first, uint64_t n)
{
	uint64_t *p = malloc(n * sizeof(*p));

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (uint64_t i = 0; i < n; i++)
		p[i] = first + i;
	return p;
}

static const struct vmmfs_va_placement *at_va(struct vmmfs_va_placement *pl, uint64_t va)
{
	*pl = (struct vmmfs_va_placement){ .kind = VMMFS_VA_EXACT, .start = va,
					   .pa_hint = VMMFS_NO_PA_HINT };
	return pl;
}

/* ---- the random differential test ----------------------------------------------------- */

#define MAXM 48
#define MAXO 8
#define WINDOW (64 * GiB)   /* where EXACT and RANGE placements aim, to collide */

struct mmap_ {
	struct vmmfs_mapping *m;
	uint64_t va, npages, *pfns;
	bool ro;
};

struct mop {
	struct vmmfs_map_op *op;
	uint64_t va, npages;
};

struct model {
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	uint64_t vram_pages, pfn_limit;
	struct mmap_ maps[MAXM];
	int nm;
	struct mop ops[MAXO];
	int no;
	long step;
	uint64_t big_pages;        /* non-4K PTEs seen: the test must cover them */
	uint64_t page_sizes_seen;  /* bit per log2(page size) */
	/* what the run covered */
	uint64_t n_map, n_exec, n_unmap, n_abort, n_abort_flush, n_alloc;
	uint64_t n_64k, n_2m, n_512m;
	uint64_t n_eexist, n_enospc, n_eacces, n_erange, n_range, n_exact;
};

static bool overlaps(const struct model *md, uint64_t va, uint64_t n)
{
	uint64_t end = va + n * PG;

	for (int i = 0; i < md->nm; i++)
		if (va < md->maps[i].va + md->maps[i].npages * PG && md->maps[i].va < end)
			return true;
	for (int i = 0; i < md->no; i++)
		if (va < md->ops[i].va + md->ops[i].npages * PG && md->ops[i].va < end)
			return true;
	return false;
}

/* Whether n free pages fit somewhere in [s, e). */
static bool gap_exists(const struct model *md, uint64_t s, uint64_t e, uint64_t n)
{
	for (uint64_t pos = s; pos + n * PG <= e; ) {
		uint64_t next = 0;
		bool hit = false;

		for (int i = 0; i < md->nm + md->no; i++) {
			uint64_t a = i < md->nm ? md->maps[i].va : md->ops[i - md->nm].va;
			uint64_t b = a + (i < md->nm ? md->maps[i].npages : md->ops[i - md->nm].npages) * PG;

			if (a < pos + n * PG && pos < b) {
				hit = true;
				next = MAX(next, b);
			}
		}
		if (!hit)
			return true;
		pos = next;
	}
	return false;
}

static uint64_t rand_size(void)
{
	switch (vt_rand_below(10)) {
	case 0: case 1: case 2:
		return 1 + vt_rand_below(16);
	case 3: case 4: case 5: case 6:
		return 1 + vt_rand_below(700);
	default:
		return 512 * (1 + vt_rand_below(5)) + (vt_rand_below(2) ? vt_rand_below(300) : 0);
	}
}

/* PFNs in one of several patterns; returns an error the map must give. */
static int rand_pfns(struct model *md, uint64_t *p, uint64_t n)
{
	uint64_t lim = md->pfn_limit, k = vt_rand_below(100), i = 0;

	if (k < 30) {                       /* contiguous, any start */
		uint64_t s = vt_rand_below(lim - n);

		for (i = 0; i < n; i++)
			p[i] = s + i;
	} else if (k < 50) {                /* 2 MiB-aligned contiguous: big pages */
		uint64_t s = ALIGN_DOWN(vt_rand_below(lim - n - 512), 512);

		for (i = 0; i < n; i++)
			p[i] = s + i;
	} else if (k < 62) {                /* 64 KiB-aligned contiguous */
		uint64_t s = ALIGN_DOWN(vt_rand_below(lim - n - 16), 16);

		for (i = 0; i < n; i++)
			p[i] = s + i;
	} else if (k < 80) {                /* several runs */
		while (i < n) {
			uint64_t want = 1 + vt_rand_below(40), len = MIN(n - i, want);
			uint64_t s = vt_rand_below(lim - len);

			if (vt_rand_below(2))
				s = ALIGN_DOWN(s, 16);
			for (uint64_t j = 0; j < len; j++)
				p[i++] = s + j;
		}
	} else {                            /* scattered */
		for (i = 0; i < n; i++)
			p[i] = vt_rand_below(lim);
	}
	if (vt_rand_below(60) == 0) {
		p[vt_rand_below(n)] = md->vram_pages + vt_rand_below(100);
		return -ERANGE;
	}
	if (vt_rand_below(60) == 0) {
		/* a page-table page: found from the top of VRAM, where they live */
		for (uint64_t q = md->vram_pages; q-- > 0; )
			if (vram_is_pt(md->gpu->vram, q)) {
				p[vt_rand_below(n)] = q;
				break;
			}
	}
	return 0;
}

/* What mapping pfns must give now: -ERANGE beyond VRAM, -EACCES for a page
 * that holds a page table (wherever the allocator put it). */
static int pfns_verdict(struct model *md, const uint64_t *p, uint64_t n)
{
	bool pt = false;

	for (uint64_t i = 0; i < n; i++) {
		if (p[i] >= md->vram_pages)
			return -ERANGE;
		pt |= vram_is_pt(md->gpu->vram, p[i]);
	}
	return pt ? -EACCES : 0;
}

static void count_err(struct model *md, int r)
{
	md->n_eexist += r == -EEXIST;
	md->n_enospc += r == -ENOSPC;
	md->n_eacces += r == -EACCES;
	md->n_erange += r == -ERANGE;
}

static void rand_placement(struct model *md, struct vmmfs_va_placement *pl, uint64_t n,
			   int *expect)
{
	uint64_t k = vt_rand_below(10);

	*pl = (struct vmmfs_va_placement){ .kind = VMMFS_VA_ANY, .pa_hint = VMMFS_NO_PA_HINT };
	*expect = 0;
	if (k < 6)
		return;
	if (k < 8) {
		uint64_t va;

		if (md->nm && vt_rand_below(2)) {  /* next to a mapping: shares its tables */
			const struct mmap_ *m = &md->maps[vt_rand_below(md->nm)];
			uint64_t back = (n + vt_rand_below(3)) * PG;

			va = vt_rand_below(2) ? m->va + m->npages * PG + vt_rand_below(4) * PG
					      : m->va - MIN(m->va, back);
		} else {
			va = ALIGN_DOWN(vt_rand_below(WINDOW), PG);
			if (vt_rand_below(3) == 0)
				va = ALIGN_DOWN(va, 2 * MiB);
		}
		pl->kind = VMMFS_VA_EXACT;
		pl->start = va;
		*expect = overlaps(md, va, n) ? -EEXIST : 0;
		return;
	}
	pl->kind = VMMFS_VA_RANGE;
	pl->start = ALIGN_DOWN(vt_rand_below(WINDOW), PG);
	if (md->nm && vt_rand_below(2))
		pl->start = ALIGN_DOWN(md->maps[vt_rand_below(md->nm)].va, PG);
	pl->end = pl->start + n * PG + vt_rand_below(4) * vt_rand_below(n + 1) * PG;
	*expect = gap_exists(md, pl->start, pl->end, n) ? 0 : -ENOSPC;
}

/* Checks a mapping's pages (all, or a sample) against the GPU's MMU and
 * vmmfs's own walker. */
static void verify_map(struct model *md, const struct mmap_ *m, bool all)
{
	uint64_t n = m->npages, samples = all ? n : MIN(n, 8);

	for (uint64_t s = 0; s < samples; s++) {
		uint64_t i = all ? s : s == 0 ? 0 : s == 1 ? n - 1 : vt_rand_below(n);
		uint64_t va = m->va + i * PG + (vt_rand_below(PG) & ~7ull);
		uint64_t pa = (m->pfns[i] << 12) + (va & (PG - 1));
		struct vmmfs_lookup lk;
		struct vmmfs_sim_xlate x;

		if (!expect_mapped(md->gpu, md->vmm, va, pa, m->ro)) {
			fprintf(stderr, "  mapping VA 0x%llx + %llu pages, page %llu (step %ld)\n",
				(unsigned long long)m->va, (unsigned long long)n, (unsigned long long)i, md->step);
			CU_FAIL_FATAL("GPU MMU disagrees");
		}
		x = xlate(md->gpu, md->vmm, va, 'r');
		CU_ASSERT_EQUAL(vmmfs_vmm_lookup(md->vmm, va, &lk), 0);
		if (lk.state != VMMFS_LOOKUP_MAPPED || lk.pa != pa || lk.page_size != x.page_size ||
		    lk.read_only != m->ro) {
			fprintf(stderr, "  lookup VA 0x%llx: state %d pa 0x%llx size 0x%llx, expected pa 0x%llx size 0x%llx\n",
				(unsigned long long)va, lk.state, (unsigned long long)lk.pa,
				(unsigned long long)lk.page_size, (unsigned long long)pa,
				(unsigned long long)x.page_size);
			CU_FAIL_FATAL("lookup disagrees");
		}
		md->page_sizes_seen |= x.page_size;
	}
}

static void verify_gone(struct model *md, uint64_t va, uint64_t n)
{
	for (uint64_t s = 0; s < MIN(n, 8); s++) {
		uint64_t i = s == 0 ? 0 : s == 1 ? n - 1 : vt_rand_below(n);
		struct vmmfs_lookup lk;

		if (!expect_fault(md->gpu, md->vmm, va + i * PG))
			CU_FAIL_FATAL("stale translation after unmap");
		CU_ASSERT_EQUAL(vmmfs_vmm_lookup(md->vmm, va + i * PG, &lk), 0);
		CU_ASSERT_NOT_EQUAL(lk.state, VMMFS_LOOKUP_MAPPED);
	}
}

static void model_add(struct model *md, struct vmmfs_mapping *m, const uint64_t *pfns, bool ro)
{
	struct vmmfs_mapping_info info;
	struct mmap_ *x = &md->maps[md->nm++];

	vmmfs_mapping_get_info(m, &info);
	x->m = m;
	x->va = info.va;
	x->npages = info.npages;
	x->ro = ro;
	x->pfns = malloc(info.npages * sizeof(uint64_t));
	memcpy(x->pfns, pfns, info.npages * sizeof(uint64_t));
	CU_ASSERT_EQUAL(info.read_only, ro);
	CU_ASSERT_EQUAL(info.pages_4k + 16 * info.pages_64k + 512 * info.pages_2m +
			131072 * info.pages_512m, info.npages);
	md->big_pages += info.pages_64k + info.pages_2m + info.pages_512m;
	md->n_64k += info.pages_64k;
	md->n_2m += info.pages_2m;
	md->n_512m += info.pages_512m;
	verify_map(md, x, false);
}

static int run_collect(void *ctx, uint64_t first, uint64_t count)
{
	uint64_t **p = ctx;

	for (uint64_t i = 0; i < count; i++)
		*(*p)++ = first + i;
	return 0;
}

static void step_map(struct model *md, bool via_prepare)
{
	struct vmmfs_va_placement pl;
	uint64_t n = rand_size(), *pfns = malloc(n * sizeof(uint64_t)), inv = invalidates(md->gpu);
	unsigned int flags = (vt_rand_below(4) == 0 ? VMMFS_MAP_READ_ONLY : 0) |
			     (vt_rand_below(5) == 0 ? VMMFS_MAP_SMALL_ONLY : 0);
	int want_place, want_pfn, r;
	struct vmmfs_mapping *m = NULL;

	rand_pfns(md, pfns, n);
	want_pfn = pfns_verdict(md, pfns, n);
	rand_placement(md, &pl, n, &want_place);
	if (via_prepare) {
		struct vmmfs_map_op *op = NULL;

		if (md->no == MAXO) {
			free(pfns);
			return;
		}
		r = vmmfs_vmm_prepare_map(md->vmm, n, &pl, &op);
		if (r != want_place)
			fprintf(stderr, "  step %ld: prepare %llu pages, placement %d 0x%llx-0x%llx\n", md->step,
				(unsigned long long)n, pl.kind, (unsigned long long)pl.start, (unsigned long long)pl.end);
		VT_EQ_INT(r, want_place);
		VT_EQ_U64(invalidates(md->gpu), inv);
		count_err(md, r);
		md->n_exact += pl.kind == VMMFS_VA_EXACT && !r;
		md->n_range += pl.kind == VMMFS_VA_RANGE && !r;
		if (!r) {
			VT_EQ_U64(vmmfs_map_op_npages(op), n);
			if (pl.kind == VMMFS_VA_EXACT)
				VT_EQ_U64(vmmfs_map_op_va(op), pl.start);
			if (pl.kind == VMMFS_VA_RANGE)
				CU_ASSERT(vmmfs_map_op_va(op) >= pl.start &&
					  vmmfs_map_op_va(op) + n * PG <= pl.end);
			CU_ASSERT(!overlaps(md, vmmfs_map_op_va(op), n));
			md->ops[md->no++] = (struct mop){ op, vmmfs_map_op_va(op), n };
		}
		free(pfns);
		return;
	}
	if (md->nm == MAXM) {
		free(pfns);
		return;
	}
	r = vmmfs_vmm_map_pages(md->vmm, pfns, n, &pl, flags, &m);
	VT_EQ_INT(r, want_pfn ? want_pfn : want_place);
	count_err(md, r);
	md->n_map += !r;
	md->n_exact += pl.kind == VMMFS_VA_EXACT && !r;
	md->n_range += pl.kind == VMMFS_VA_RANGE && !r;
	if (r) {
		VT_EQ_U64(invalidates(md->gpu), inv);
	} else {
		struct vmmfs_mapping_info info;

		VT_EQ_U64(invalidates(md->gpu), inv + 1);
		vmmfs_mapping_get_info(m, &info);
		CU_ASSERT(!overlaps(md, info.va, n));
		if (pl.kind == VMMFS_VA_EXACT)
			VT_EQ_U64(info.va, pl.start);
		if (pl.kind == VMMFS_VA_RANGE)
			CU_ASSERT(info.va >= pl.start && info.va + n * PG <= pl.end);
		if (flags & VMMFS_MAP_SMALL_ONLY)
			VT_EQ_U64(info.pages_4k, n);
		model_add(md, m, pfns, flags & VMMFS_MAP_READ_ONLY);
	}
	free(pfns);
}

static void step_execute(struct model *md)
{
	struct mop o;
	uint64_t *pfns, inv = invalidates(md->gpu);
	unsigned int flags = (vt_rand_below(4) == 0 ? VMMFS_MAP_READ_ONLY : 0) |
			     (vt_rand_below(5) == 0 ? VMMFS_MAP_SMALL_ONLY : 0);
	struct vmmfs_mapping *m = NULL;
	int want, r, k;

	if (!md->no || md->nm == MAXM)
		return;
	k = (int)vt_rand_below(md->no);
	o = md->ops[k];
	pfns = malloc(o.npages * sizeof(uint64_t));
	rand_pfns(md, pfns, o.npages);
	want = pfns_verdict(md, pfns, o.npages);
	r = vmmfs_vmm_execute_map(md->vmm, o.op, pfns, flags, &m);
	VT_EQ_INT(r, want);
	count_err(md, r);
	md->n_exec += !r;
	if (!r) {
		VT_EQ_U64(invalidates(md->gpu), inv + 1);
		md->ops[k] = md->ops[--md->no];
		model_add(md, m, pfns, flags & VMMFS_MAP_READ_ONLY);
	} else {
		VT_EQ_U64(invalidates(md->gpu), inv);  /* the op stays prepared */
	}
	free(pfns);
}

static void step_abort(struct model *md)
{
	uint64_t inv = invalidates(md->gpu), fl = stats(md->vmm).tlb_flushes;
	int k;

	if (!md->no)
		return;
	k = (int)vt_rand_below(md->no);
	vmmfs_vmm_abort_map(md->vmm, md->ops[k].op);
	md->ops[k] = md->ops[--md->no];
	/* none, unless the abort emptied an installed table: then one */
	CU_ASSERT(invalidates(md->gpu) - inv <= 1);
	VT_EQ_U64(invalidates(md->gpu) - inv, stats(md->vmm).tlb_flushes - fl);
	md->n_abort++;
	md->n_abort_flush += invalidates(md->gpu) - inv;
}

static void step_unmap(struct model *md)
{
	uint64_t inv = invalidates(md->gpu);
	struct mmap_ x;
	int k;

	if (!md->nm)
		return;
	k = (int)vt_rand_below(md->nm);
	x = md->maps[k];
	VT_EQ_INT(vmmfs_vmm_unmap(md->vmm, x.m), 0);
	VT_EQ_U64(invalidates(md->gpu), inv + 1);
	md->maps[k] = md->maps[--md->nm];
	md->n_unmap++;
	verify_gone(md, x.va, x.npages);
	free(x.pfns);
}

static void step_alloc(struct model *md)
{
	uint64_t bytes = 1 + vt_rand_below(vt_rand_below(2) ? 64 * KiB : 3 * MiB), n, *pfns, *p;
	struct vmmfs_mapping *m = NULL;
	struct vmmfs_mapping_info info;
	int r;

	if (md->nm == MAXM)
		return;
	r = vmmfs_vmm_map_alloc(md->vmm, bytes, NULL, 0, &m);
	VT_EQ_INT(r, 0);
	if (r)
		return;
	vmmfs_mapping_get_info(m, &info);
	n = ALIGN_UP(bytes, PG) / PG;
	VT_EQ_U64(info.npages, n);
	CU_ASSERT(info.allocated);
	pfns = p = malloc(n * sizeof(uint64_t));
	vmmfs_mapping_for_each_run(m, run_collect, &p);
	VT_EQ_U64(p - pfns, n);
	/* fresh memory reads as zeros through the mapping */
	{
		char buf[64], zero[64] = { 0 };

		VT_EQ_INT(vmmfs_vmm_mem_read(md->vmm, info.va + (n - 1) * PG, buf, sizeof(buf)), sizeof(buf));
		CU_ASSERT(!memcmp(buf, zero, sizeof(buf)));
	}
	model_add(md, m, pfns, false);
	md->n_alloc++;
	free(pfns);
}

static void step_probe(struct model *md)
{
	for (int k = 0; k < 8; k++) {
		uint64_t va = ALIGN_DOWN(vt_rand_below(WINDOW), PG);
		bool hit = false;

		if (md->nm && vt_rand_below(2)) {
			const struct mmap_ *m = &md->maps[vt_rand_below(md->nm)];

			va = m->va + vt_rand_below(m->npages + 2) * PG;
			va = va >= PG ? va - PG : va;
		}
		for (int i = 0; i < md->nm; i++) {
			const struct mmap_ *m = &md->maps[i];

			if (va >= m->va && va < m->va + m->npages * PG) {
				expect_mapped(md->gpu, md->vmm, va, (m->pfns[(va - m->va) / PG] << 12), m->ro);
				hit = true;
			}
		}
		if (!hit)
			expect_fault(md->gpu, md->vmm, va);
	}
}

static void model_stats(struct model *md)
{
	struct vmmfs_vmm_stats st = stats(md->vmm);
	uint64_t pages = 0;

	for (int i = 0; i < md->nm; i++)
		pages += md->maps[i].npages;
	VT_EQ_U64(st.mappings, md->nm);
	VT_EQ_U64(st.pending, md->no);
	VT_EQ_U64(st.mapped_pages, pages);
	VT_EQ_U64(st.quarantined_pages, 0);
}

static void random_test_chip(const char *chip, long steps)
{
	struct vmmfs_gpu *gpu = vt_open_sim(chip, 256 * MiB);
	struct model *md = calloc(1, sizeof(*md));
	uint64_t pt0 = vram_pt_pages(gpu), free0 = vram_free(gpu);
	int64_t live0 = vmmfs_mem_live();

	md->gpu = gpu;
	md->vram_pages = vmmfs_gpu_get_info(gpu)->vram_size / PG;
	md->pfn_limit = md->vram_pages * 3 / 4;   /* page tables come from the top */
	md->vmm = new_vmm(gpu);
	for (md->step = 0; md->step < steps; md->step++) {
		uint64_t k = vt_rand_below(100);
		const char *what;

		if (k < 30) {
			step_map(md, false);
			what = "map_pages";
		} else if (k < 42) {
			step_map(md, true);
			what = "prepare";
		} else if (k < 55) {
			step_execute(md);
			what = "execute";
		} else if (k < 60) {
			step_abort(md);
			what = "abort";
		} else if (k < 63) {
			step_alloc(md);
			what = "map_alloc";
		} else if (k < 70) {
			step_probe(md);
			what = "probe";
		} else {
			step_unmap(md);
			what = "unmap";
		}
		check_vmm(md->vmm, what, md->step);
		if (md->step % 64 == 0) {
			model_stats(md);
			for (int i = 0; i < md->nm; i++)
				verify_map(md, &md->maps[i], false);
		}
	}
	printf("    %llu maps, %llu executes, %llu unmaps, %llu aborts (%llu flushed), %llu alloc=; "
	       "%llu x 64K, %llu x 2M, %llu x 512M; %llu exact, %llu range; errors: %llu EEXIST, "
	       "%llu ENOSPC, %llu EACCES, %llu ERANGE\n",
	       (unsigned long long)md->n_map, (unsigned long long)md->n_exec,
	       (unsigned long long)md->n_unmap, (unsigned long long)md->n_abort,
	       (unsigned long long)md->n_abort_flush, (unsigned long long)md->n_alloc,
	       (unsigned long long)md->n_64k, (unsigned long long)md->n_2m,
	       (unsigned long long)md->n_512m, (unsigned long long)md->n_exact,
	       (unsigned long long)md->n_range, (unsigned long long)md->n_eexist,
	       (unsigned long long)md->n_enospc, (unsigned long long)md->n_eacces,
	       (unsigned long long)md->n_erange);
	/* big pages of every kind the chip has were exercised */
	CU_ASSERT(md->big_pages > 0);
	CU_ASSERT(md->page_sizes_seen & (2 * MiB));
	CU_ASSERT(md->page_sizes_seen & (64 * KiB));
	CU_ASSERT(md->n_eexist > 0 && md->n_exact > 0 && md->n_range > 0);
	for (int i = 0; i < md->nm; i++)
		verify_map(md, &md->maps[i], true);
	while (md->nm)
		step_unmap(md);
	while (md->no)
		step_abort(md);
	check_vmm(md->vmm, "teardown", md->step);
	VT_EQ_U64(stats(md->vmm).pt_pages, 1);
	VT_EQ_U64(stats(md->vmm).va_free, stats(md->vmm).va_size);
	vmmfs_vmm_destroy(md->vmm);
	VT_EQ_U64(vram_pt_pages(gpu), pt0);
	VT_EQ_U64(vram_free(gpu), free0);
	VT_EQ_U64(vmmfs_mem_live(), live0);
	free(md);
	vmmfs_gpu_close(gpu);
}

static void test_random_differential(void)
{
	long steps = getenv("VMMFS_TEST_STEPS") ? atol(getenv("VMMFS_TEST_STEPS")) : 1500;

	vt_seed("vmm random differential");
	for (int c = 0; vt_chips[c]; c++) {
		printf("  %s: %ld steps\n", vt_chips[c], steps);
		random_test_chip(vt_chips[c], steps);
	}
}

/* ---- item 1: execute never allocates ----------------------------------------------------- */

static void test_execute_no_alloc(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 1 * GiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		struct vmmfs_va_placement pl;
		struct vmmfs_map_op *op1, *op2, *op3;
		struct vmmfs_mapping *m1, *m2, *m3;
		/* straddles a PD0 boundary (512 MiB); 2 MiB-aligned PFNs for big pages */
		uint64_t va = 512 * MiB - 3 * 2 * MiB - 5 * PG, n = 3000, *pf = seq(0x10000 - 3 * 512 - 5, n);
		uint64_t *pf2 = seq(0x20000, 1024), *pf3 = seq(0x30001, 17);
		int r;

		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, n, at_va(&pl, va), &op1), 0);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1024, NULL, &op2), 0);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 17, at_va(&pl, va + n * PG), &op3), 0);
		check_vmm(vmm, "prepare", 0);
		/* every allocator fails from here on */
		vmmfs_fault_fail_all(true);
		r = vmmfs_vmm_execute_map(vmm, op1, pf, 0, &m1);
		VT_EQ_INT(r, 0);
		r = vmmfs_vmm_execute_map(vmm, op2, pf2, VMMFS_MAP_READ_ONLY, &m2);
		VT_EQ_INT(r, 0);
		r = vmmfs_vmm_execute_map(vmm, op3, pf3, VMMFS_MAP_SMALL_ONLY, &m3);
		VT_EQ_INT(r, 0);
		vmmfs_fault_fail_all(false);
		vmmfs_fault_reset();
		check_vmm(vmm, "execute without allocators", 0);
		for (uint64_t i = 0; i < n; i += 97)
			expect_mapped(gpu, vmm, va + i * PG, pf[i] << 12, false);
		expect_mapped(gpu, vmm, va + (n - 1) * PG, pf[n - 1] << 12, false);
		{
			struct vmmfs_mapping_info info;

			vmmfs_mapping_get_info(m1, &info);
			CU_ASSERT(info.pages_2m >= 1);  /* big pages from prepared (unplanned) ops too */
			vmmfs_mapping_get_info(m2, &info);
			expect_mapped(gpu, vmm, info.va + 1000 * PG, pf2[1000] << 12, true);
		}
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m1), 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m2), 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m3), 0);
		check_vmm(vmm, "unmap", 0);
		VT_EQ_U64(stats(vmm).pt_pages, 1);
		vmmfs_vmm_destroy(vmm);
		free(pf);
		free(pf2);
		free(pf3);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- item 3: no silent truncation --------------------------------------------------------- */

static void test_errors(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		int64_t live0 = vmmfs_mem_live();
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		uint64_t vsz = vmmfs_vmm_va_size(vmm), vram_pages = 256 * MiB / PG;
		struct vmmfs_va_placement pl = { .pa_hint = VMMFS_NO_PA_HINT };
		struct vmmfs_map_op *op = NULL;
		struct vmmfs_mapping *m = NULL;
		uint64_t pf[4] = { 1, 2, 3, 4 }, inv = invalidates(gpu), free0;

		free0 = stats(vmm).va_free;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 0, NULL, &op), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, vsz / PG + 1, NULL, &op), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, UINT64_MAX, NULL, &op), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1ull << 52, NULL, &op), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, at_va(&pl, 0x1001), &op), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, at_va(&pl, vsz), &op), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 2, at_va(&pl, vsz - PG), &op), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, at_va(&pl, UINT64_MAX & ~0xfffull), &op), -ERANGE);
		pl = (struct vmmfs_va_placement){ .kind = VMMFS_VA_RANGE, .start = 0x10000, .end = 0x10000,
						  .pa_hint = VMMFS_NO_PA_HINT };
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, &pl, &op), -EINVAL);
		pl.end = 0x8000;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, &pl, &op), -EINVAL);
		pl.end = 0x20001;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, &pl, &op), -EINVAL);
		pl.start = vsz - PG;
		pl.end = vsz + PG;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, &pl, &op), -ERANGE);
		pl.start = 0x10000;
		pl.end = 0x12000;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 3, &pl, &op), -ENOSPC);
		pl.kind = (enum vmmfs_va_place)42;
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, &pl, &op), -EINVAL);
		VT_EQ_U64(stats(vmm).va_free, free0);

		/* A range larger than needed is fine, and the map lands inside. */
		pl = (struct vmmfs_va_placement){ .kind = VMMFS_VA_RANGE, .start = 0x7f0000000ull,
						  .end = 0x7f0100000ull, .pa_hint = VMMFS_NO_PA_HINT };
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 4, &pl, 0, &m), 0);
		{
			struct vmmfs_mapping_info info;

			vmmfs_mapping_get_info(m, &info);
			CU_ASSERT(info.va >= pl.start && info.va + 4 * PG <= pl.end);
			/* EXACT over it: taken */
			VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, at_va(&pl, info.va + PG), &op), -EEXIST);
		}
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		inv = invalidates(gpu);

		/* PFNs: beyond VRAM, beyond the PTE field, a page table: each an
		 * error, and the op stays prepared. */
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 4, NULL, &op), 0);
		pf[2] = vram_pages;
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), -ERANGE);
		pf[2] = vmmfs_vmm_pdb(vmm) >> 12;
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), -EACCES);
		pf[2] = 1ull << 40;
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), -ERANGE);
		pf[2] = 3;
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, NULL, 0, &m), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0x80, &m), -EINVAL);
		VT_EQ_U64(stats(vmm).pending, 1);
		VT_EQ_U64(invalidates(gpu), inv);
		for (int i = 0; i < 4; i++)  /* nothing was referenced by the failed attempts */
			VT_EQ_U64(vram_owner(gpu->vram, pf[i]), 0);
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), 0);
		VT_EQ_U64(invalidates(gpu), inv + 1);
		check_vmm(vmm, "execute after errors", 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);

		/* map_pages validates first: nothing is prepared, no flush */
		inv = invalidates(gpu);
		pf[1] = vram_pages + 7;
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 4, NULL, 0, &m), -ERANGE);
		pf[1] = vmmfs_vmm_pdb(vmm) >> 12;
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 4, NULL, 0, &m), -EACCES);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 0, NULL, 0, &m), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_map_alloc(vmm, 0, NULL, 0, &m), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_map_alloc(vmm, vsz + 1, NULL, 0, &m), -ERANGE);
		VT_EQ_INT(vmmfs_vmm_map_alloc(vmm, 512 * MiB, NULL, 0, &m), -ENOMEM);
		VT_EQ_U64(invalidates(gpu), inv);
		VT_EQ_U64(stats(vmm).pending, 0);
		VT_EQ_U64(stats(vmm).pt_pages, 1);

		/* outside the address space */
		{
			struct vmmfs_lookup lk;
			char b[8];

			VT_EQ_INT(vmmfs_vmm_lookup(vmm, vsz, &lk), -ERANGE);
			VT_EQ_INT(vmmfs_vmm_mem_read(vmm, vsz, b, 8), -ERANGE);
			VT_EQ_INT(vmmfs_vmm_mem_read(vmm, 0x5000, b, 8), -EFAULT);
		}
		check_vmm(vmm, "errors", 0);
		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
		VT_EQ_U64(vmmfs_mem_live(), live0);
	}
}

/* A PFN beyond what a v2 PTE can address (128 GiB), on a board with more
 * VRAM than that: an error, not a wrapped address. */
static void test_pfn_beyond_pte_field(void)
{
	/* tables and alloc= pages from the low 64 GiB: v2 directory entries
	 * reach only below 128 GiB */
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM, .chip = "tu102",
					.vram_size = 256 * GiB, .vram_start = 0, .vram_end = 64 * GiB };
	struct vmmfs_gpu *gpu = NULL;
	struct vmmfs_vmm *vmm;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)), 0);
	vmm = new_vmm(gpu);
	struct vmmfs_mapping *m = NULL;
	uint64_t pf[2] = { (1ull << 25) - 1, 1ull << 25 };

	VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 2, NULL, 0, &m), -ERANGE);
	CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_map_pages(vmm, pf, 1, NULL, 0, &m), 0);
	{
		struct vmmfs_mapping_info info;

		vmmfs_mapping_get_info(m, &info);
		expect_mapped(gpu, vmm, info.va, ((1ull << 25) - 1) << 12, false);
	}
	check_vmm(vmm, "map below 128 GiB", 0);
	VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
}

/* ---- item 4: the dual PDE keeps a big-page pointer ---------------------------------------- */

static void test_dual_pde_keeps_big(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		const struct mmu_fmt *f = mmu_fmt_get(vmmfs_gpu_get_info(gpu)->mmu_version);
		struct vmmfs_sim *sim = vt_sim(gpu);
		struct vmmfs_va_placement pl;
		struct vmmfs_mapping *m0, *m1;
		struct vmmfs_lookup lk;
		uint64_t region = 64 * GiB, slot = region + 2 * MiB, lpt_pa, lpt[32] = { 0 };
		uint64_t dual[2], pf0 = 0x100, pf1 = 0x200, big_pfn = 0x1230; /* 64 KiB aligned */
		uint64_t entry;

		/* a mapping in the first slot makes the PD0 table */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, &pf0, 1, at_va(&pl, region), 0, &m0), 0);
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, region, &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_MAPPED);
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, slot, &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_NO_TABLE);
		CU_ASSERT_STRING_EQUAL(lk.level, "PD0");
		entry = lk.entry_addr;

		/* someone else plants a big-page table in the next slot: 64 KiB
		 * page at chunk 0, "look at the small PTEs" elsewhere */
		CU_ASSERT_EQUAL_FATAL(vram_alloc_pt(gpu->vram, &lpt_pa), 0);
		{
			struct mmu_pte pte = { .kind = MMU_PTE_VALID, .aper = MMU_APER_VID, .pfn = big_pfn };

			CU_ASSERT_EQUAL(mmu_pte_encode(f, &pte, &lpt[0]), 0);
		}
		vmmfs_sim_vram_poke(sim, lpt_pa + 0x300, lpt, sizeof(lpt)); /* 256 B aligned, not 4 KiB */
		mmu_dual_vid(f, lpt_pa + 0x300, 0, dual);
		vmmfs_sim_vram_poke(sim, entry, dual, sizeof(dual));
		vmmfs_sim_tlb_flush_all(sim);
		expect_mapped(gpu, vmm, slot + 0x1238, (big_pfn << 12) + 0x1238, false);

		/* vmmfs installs a small table in that slot: the big half stays */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, &pf1, 1, at_va(&pl, slot + 64 * KiB + PG), 0, &m1), 0);
		{
			uint64_t now[2];

			vmmfs_sim_vram_peek(sim, entry, now, sizeof(now));
			VT_EQ_U64(now[0], dual[0]);
			CU_ASSERT_NOT_EQUAL(now[1], 0);
		}
		expect_mapped(gpu, vmm, slot + 0x1238, (big_pfn << 12) + 0x1238, false);
		expect_mapped(gpu, vmm, slot + 64 * KiB + PG + 8, (pf1 << 12) + 8, false);
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, slot + 8, &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_MAPPED);
		VT_EQ_U64(lk.page_size, 64 * KiB);

		/* and when the small table is freed again, only its half goes */
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m1), 0);
		{
			uint64_t now[2];

			vmmfs_sim_vram_peek(sim, entry, now, sizeof(now));
			VT_EQ_U64(now[0], dual[0]);
			VT_EQ_U64(now[1], 0);
		}
		expect_mapped(gpu, vmm, slot + 0x1238, (big_pfn << 12) + 0x1238, false);
		expect_fault(gpu, vmm, slot + 64 * KiB + PG);

		/* take the foreign table out again; then the shadow agrees */
		memset(dual, 0, sizeof(dual));
		vmmfs_sim_vram_poke(sim, entry, dual, sizeof(dual));
		vmmfs_sim_tlb_flush_all(sim);
		vram_free_pt(gpu->vram, lpt_pa);
		check_vmm(vmm, "foreign big table removed", 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m0), 0);
		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- items 5 and 6: freeing empty tables, one invalidate per op ---------------------------- */

static void test_free_empty_tables(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		const struct mmu_fmt *f = mmu_fmt_get(vmmfs_gpu_get_info(gpu)->mmu_version);
		struct vmmfs_sim *sim = vt_sim(gpu);
		struct vmmfs_va_placement pl;
		struct vmmfs_mapping *a, *b;
		struct vmmfs_map_op *op;
		uint64_t pt0 = vram_pt_pages(gpu), inv, root[4];
		uint64_t pf[2] = { 0x100, 0x101 }, va = 3 * (1ull << f->levels[1].shift) / 2;
		size_t rootw = (size_t)mmu_table_bytes(&f->levels[0]) / 8;

		/* one page: a full path of tables, all freed by its unmap */
		inv = invalidates(gpu);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, va), 0, &a), 0);
		VT_EQ_U64(invalidates(gpu), inv + 1);
		VT_EQ_U64(stats(vmm).pt_pages, (uint64_t)f->nlevels);
		VT_EQ_U64(vram_pt_pages(gpu), pt0 + f->nlevels - 1);
		expect_mapped(gpu, vmm, va, pf[0] << 12, false);  /* cached in the TLB now */
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
		VT_EQ_U64(invalidates(gpu), inv + 2);
		VT_EQ_U64(stats(vmm).pt_pages, 1);
		VT_EQ_U64(vram_pt_pages(gpu), pt0);
		vmmfs_sim_vram_peek(sim, vmmfs_vmm_pdb(vmm), root, rootw * 8);
		for (size_t i = 0; i < rootw; i++)
			VT_EQ_U64(root[i], 0);          /* the parent entry is cleared */
		expect_fault(gpu, vmm, va);
		check_vmm(vmm, "unmap freed the path", 0);

		/* Freed only after the invalidate completed: with an invalidate
		 * that never completes, nothing is freed (quarantine). */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, va), 0, &a), 0);
		gpu->tlb.timeout_us = 20000;
		vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
		inv = invalidates(gpu);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), -ETIMEDOUT);
		vmmfs_sim_set_faults(sim, 0);
		VT_EQ_U64(invalidates(gpu), inv);
		VT_EQ_U64(vram_pt_pages(gpu), pt0 + f->nlevels - 1);  /* still held */
		VT_EQ_U64(stats(vmm).quarantined_pages, 1);
		VT_EQ_U64(stats(vmm).va_free, stats(vmm).va_size - PG); /* VA withheld */
		VT_EQ_U64(vram_owner(gpu->vram, pf[0]), 1);              /* page withheld */
		check_vmm(vmm, "unmap with a stuck invalidate", 0);
		vmmfs_sim_set_busy_polls(sim, 2);
		vmmfs_sim_tlb_flush_all(sim);
		expect_fault(gpu, vmm, va);                 /* but no valid PTE is left */
		/* the quarantined VA is not handed out again */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, va), 0, &a), -EEXIST);

		/* A table kept by a prepared op and emptied by an unmap is freed
		 * by the abort: one invalidate for that abort. */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, 8 * GiB), 0, &a), 0);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 1, at_va(&pl, 8 * GiB + PG), &op), 0);
		inv = invalidates(gpu);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
		VT_EQ_U64(invalidates(gpu), inv + 1);
		check_vmm(vmm, "unmap with a table kept by an op", 0);
		vmmfs_vmm_abort_map(vmm, op);
		VT_EQ_U64(invalidates(gpu), inv + 2);
		check_vmm(vmm, "abort freeing an installed table", 0);
		/* an abort that frees nothing installed: no invalidate */
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 5, NULL, &op), 0);
		vmmfs_vmm_abort_map(vmm, op);
		VT_EQ_U64(invalidates(gpu), inv + 2);

		/* two mappings sharing tables: the first unmap frees nothing */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, 16 * GiB), 0, &a), 0);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf + 1, 1, at_va(&pl, 16 * GiB + 2 * MiB), 0, &b), 0);
		{
			uint64_t held = stats(vmm).pt_pages;

			VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
			VT_EQ_U64(stats(vmm).pt_pages, held - 1);   /* only a's PT */
			expect_fault(gpu, vmm, 16 * GiB);
			expect_mapped(gpu, vmm, 16 * GiB + 2 * MiB, pf[1] << 12, false);
		}
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, b), 0);
		check_vmm(vmm, "shared tables", 0);
		vmmfs_vmm_destroy(vmm);
		VT_EQ_U64(vram_pt_pages(gpu), pt0 - 1);
		vmmfs_gpu_close(gpu);
	}
}

static void test_one_invalidate_per_op(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 1 * GiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		struct vmmfs_va_placement pl;
		struct vmmfs_mapping *m, *m2;
		struct vmmfs_map_op *op;
		uint64_t inv = invalidates(gpu), n = 20000, *pf = seq(0x1000, n);

		/* big or small, fresh tables or not: one each */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, VMMFS_MAP_SMALL_ONLY, &m), 0);
		VT_EQ_U64(invalidates(gpu), inv + 1);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &m2), 0);
		VT_EQ_U64(invalidates(gpu), inv + 2);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 10, NULL, &op), 0);
		VT_EQ_U64(invalidates(gpu), inv + 2);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 10, at_va(&pl, vmmfs_map_op_va(op)), &op), -EEXIST);
		VT_EQ_U64(invalidates(gpu), inv + 2);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		VT_EQ_U64(invalidates(gpu), inv + 3);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m2), 0);
		VT_EQ_U64(invalidates(gpu), inv + 4);
		VT_EQ_U64(stats(vmm).tlb_flushes, 4);
		vmmfs_vmm_destroy(vmm);  /* one for the teardown */
		VT_EQ_U64(invalidates(gpu), inv + 5);
		free(pf);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- item 7 / issue 6 item 1: MMIO per mapped page ---------------------------------------- */

struct mmio {
	uint64_t reads, writes, moves;
};

static struct mmio mmio_now(struct vmmfs_gpu *gpu)
{
	struct vmmfs_gpu_stats st;

	vmmfs_gpu_get_stats(gpu, &st);
	return (struct mmio){ st.mmio_reads, st.mmio_writes, st.window_moves };
}

static void report_mmio(const char *chip, const char *what, uint64_t pages, struct mmio a, struct mmio b)
{
	double w = (double)(b.writes - a.writes) / (double)pages;
	double r = (double)(b.reads - a.reads) / (double)pages;

	printf("  %-6s %-34s %8llu pages: %6.4f writes/page, %6.4f reads/page\n", chip, what,
	       (unsigned long long)pages, w, r);
	CU_ASSERT(w <= 1.01);
	CU_ASSERT(r <= 0.01);
}

static void test_mmio_per_page(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		const char *chip = vt_chips[c];
		struct vmmfs_gpu *gpu = vt_open_sim(chip, 8 * GiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		const struct mmu_fmt *f = mmu_fmt_get(vmmfs_gpu_get_info(gpu)->mmu_version);
		struct vmmfs_va_placement pl;
		struct vmmfs_mapping *g[8], *m;
		uint64_t region = 256 * GiB, n = 4096, big = 1ull << 20, *pf = seq(0x40000, big);
		uint64_t inv_reads;
		struct mmio a, b;

		/* 1M pages (4 GiB) into a fresh tree, small pages only */
		a = mmio_now(gpu);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, big, at_va(&pl, 512 * GiB), VMMFS_MAP_SMALL_ONLY, &m), 0);
		b = mmio_now(gpu);
		report_mmio(chip, "map into fresh tables", big, a, b);
		/* the only reads of a map are the invalidate's (its poll) */
		inv_reads = b.reads - a.reads;
		CU_ASSERT(inv_reads >= 1 && inv_reads <= 4);
		/* exactly: every PTE once, each new directory once (fully: 512
		 * words), one entry in the root, the invalidate (3 writes),
		 * window moves */
		{
			uint64_t dirs = 0, span = big * PG;

			for (int l = 1; l < f->nlevels - 1; l++)
				dirs += ALIGN_UP(span, mmu_table_span(&f->levels[l])) / mmu_table_span(&f->levels[l]);
			VT_EQ_U64(b.writes - a.writes, big + dirs * 512 + 1 + 3 + (b.moves - a.moves));
		}
		a = mmio_now(gpu);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		b = mmio_now(gpu);
		report_mmio(chip, "unmap emptying every table", big, a, b);
		check_vmm(vmm, "1M pages", 0);

		/* 4096 pages into fresh page tables under existing directories:
		 * a page at the far end of the PD0 table keeps them */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, region + 500 * MiB), 0, &g[0]), 0);
		a = mmio_now(gpu);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, at_va(&pl, region), VMMFS_MAP_SMALL_ONLY, &m), 0);
		b = mmio_now(gpu);
		report_mmio(chip, "map into fresh PTs", n, a, b);
		/* 8 PTs written whole, 8 dual PDEs, 3 for the flush. Each PDE is
		 * its high word alone: the low (big) half was written as 0 when
		 * the PD0 table was installed, so it is neither read back nor
		 * written again */
		VT_EQ_U64(b.writes - a.writes, n + 8 + 3 + (b.moves - a.moves));
		VT_EQ_U64(b.reads - a.reads, inv_reads);
		a = mmio_now(gpu);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		b = mmio_now(gpu);
		report_mmio(chip, "unmap freeing the PTs", n, a, b);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, g[0]), 0);

		/* into existing page tables: a guard page at the end of each
		 * 2 MiB keeps its PT; eight maps of 511 pages fill the rest */
		for (int i = 0; i < 8; i++)
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, region + (uint64_t)(i + 1) * 2 * MiB - PG),
						      0, &g[i]), 0);
		{
			struct vmmfs_mapping *e[8];

			a = mmio_now(gpu);
			for (int i = 0; i < 8; i++)
				VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 511, at_va(&pl, region + (uint64_t)i * 2 * MiB),
							      VMMFS_MAP_SMALL_ONLY, &e[i]), 0);
			b = mmio_now(gpu);
			report_mmio(chip, "map into existing tables (8 maps)", 8 * 511, a, b);
			VT_EQ_U64(b.writes - a.writes, 8 * (511 + 3) + (b.moves - a.moves));
			a = mmio_now(gpu);
			for (int i = 0; i < 8; i++)
				VT_EQ_INT(vmmfs_vmm_unmap(vmm, e[i]), 0);
			b = mmio_now(gpu);
			report_mmio(chip, "unmap from existing tables (8)", 8 * 511, a, b);
			VT_EQ_U64(b.writes - a.writes, 8 * (511 + 3) + (b.moves - a.moves));
		}
		check_vmm(vmm, "existing tables", 0);
		for (int i = 0; i < 8; i++)
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, g[i]), 0);

		/* 2 MiB pages into an existing PD0 (a page in its last slot holds
		 * it): one write per 2 MiB PTE, its low word; the high word was
		 * written as 0 when the table was installed and stays 0. Twice,
		 * because unmap clears the low word alone too. */
		{
			uint64_t pd0 = region + 512 * MiB;   /* 512 MiB aligned: one PD0 table */

			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, pd0 + 510 * MiB), 0, &g[0]), 0);
			for (int round = 0; round < 2; round++) {
				a = mmio_now(gpu);
				VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 8 * 512, at_va(&pl, pd0), 0, &m), 0);
				b = mmio_now(gpu);
				VT_EQ_U64(stats(vmm).mapped_pages, 8 * 512 + 1);
				{
					struct vmmfs_mapping_info info;

					vmmfs_mapping_get_info(m, &info);
					VT_EQ_U64(info.pages_2m, 8);
				}
				report_mmio(chip, "2 MiB PTEs into an existing PD0", 8 * 512, a, b);
				VT_EQ_U64(b.writes - a.writes, 8 + 3 + (b.moves - a.moves));
				VT_EQ_U64(b.reads - a.reads, inv_reads);
				expect_mapped(gpu, vmm, pd0 + 5 * MiB + 8, (pf[0] << 12) + 5 * MiB + 8, false);
				check_vmm(vmm, "2 MiB PTEs in an existing PD0", 0);
				a = mmio_now(gpu);
				VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
				b = mmio_now(gpu);
				VT_EQ_U64(b.writes - a.writes, 8 + 3 + (b.moves - a.moves));
				expect_fault(gpu, vmm, pd0 + 5 * MiB + 8);
				check_vmm(vmm, "2 MiB PTEs unmapped", 0);
			}
			/* a small table in a slot, then gone: its high word was
			 * written as 0 again, so a 2 MiB PTE is still one write */
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, pd0 + PG), 0, &m), 0);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			a = mmio_now(gpu);
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 512, at_va(&pl, pd0), 0, &m), 0);
			b = mmio_now(gpu);
			VT_EQ_U64(b.writes - a.writes, 1 + 3 + (b.moves - a.moves));
			check_vmm(vmm, "2 MiB PTE where a small table was", 0);
			/* and a small table next to a 2 MiB page: one PDE word */
			{
				struct vmmfs_mapping *s4;

				a = mmio_now(gpu);
				VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1, at_va(&pl, pd0 + 2 * MiB), 0, &s4), 0);
				b = mmio_now(gpu);
				VT_EQ_U64(b.writes - a.writes, 512 + 1 + 3 + (b.moves - a.moves));
				check_vmm(vmm, "small table beside a 2 MiB page", 0);
				VT_EQ_INT(vmmfs_vmm_unmap(vmm, s4), 0);
			}
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, g[0]), 0);
			check_vmm(vmm, "PD0 gone", 0);
		}
		vmmfs_vmm_destroy(vmm);
		free(pf);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- big pages ------------------------------------------------------------------------------ */

static void expect_size(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t va, uint64_t pa, uint64_t size)
{
	struct vmmfs_sim_xlate x = xlate(gpu, vmm, va, 'r');
	struct vmmfs_lookup lk;

	VT_EQ_INT(x.result, VMMFS_SIM_XLATE_OK);
	VT_EQ_U64(x.pa, pa);
	VT_EQ_U64(x.page_size, size);
	VT_EQ_INT(vmmfs_vmm_lookup(vmm, va, &lk), 0);
	VT_EQ_INT(lk.state, VMMFS_LOOKUP_MAPPED);
	VT_EQ_U64(lk.pa, pa);
	VT_EQ_U64(lk.page_size, size);
}

static void test_big_pages(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 4 * GiB);
		bool has512 = vmmfs_gpu_get_info(gpu)->big_pages_512m;
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		struct vmmfs_mapping_info info;
		struct vmmfs_mapping *m;
		uint64_t *pf, n;
		struct mmio a, b;

		/* one 2 MiB page */
		pf = seq(0x200, 512);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 512, NULL, 0, &m), 0);
		vmmfs_mapping_get_info(m, &info);
		VT_EQ_U64(info.pages_2m, 1);
		VT_EQ_U64(info.va % (2 * MiB), 0);
		expect_size(gpu, vmm, info.va + 0x12345, (0x200ull << 12) + 0x12345, 2 * MiB);
		check_vmm(vmm, "2M", 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		expect_fault(gpu, vmm, info.va + 0x12345);
		free(pf);

		/* mixed: 64 KiB-aligned start, then 2 MiB, 64 KiB, 4 KiB tails;
		 * the VA follows the PA modulo 2 MiB */
		n = 16 * 3 + 512 + 16 + 5;
		pf = seq(0x400 - 48, n);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &m), 0);
		vmmfs_mapping_get_info(m, &info);
		VT_EQ_U64(info.va % (2 * MiB), (pf[0] << 12) % (2 * MiB));
		VT_EQ_U64(info.pages_2m, 1);
		VT_EQ_U64(info.pages_64k, 4);
		VT_EQ_U64(info.pages_4k, 5);
		expect_size(gpu, vmm, info.va + 8, (pf[0] << 12) + 8, 64 * KiB);
		expect_size(gpu, vmm, info.va + 48 * PG + 0x1000, (pf[48] << 12) + 0x1000, 2 * MiB);
		expect_size(gpu, vmm, info.va + (48 + 512) * PG, pf[48 + 512] << 12, 64 * KiB);
		expect_size(gpu, vmm, info.va + (n - 1) * PG, pf[n - 1] << 12, PG);
		check_vmm(vmm, "mixed", 0);
		/* small pages next to the 64 KiB ones in the same slot */
		{
			struct vmmfs_va_placement pl;
			struct vmmfs_mapping *s;
			uint64_t q = 0x999;

			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, &q, 1, at_va(&pl, info.va + n * PG + 3 * PG), 0, &s), 0);
			check_vmm(vmm, "4K beside 64K", 0);
			expect_size(gpu, vmm, info.va + n * PG + 3 * PG, q << 12, PG);
			expect_size(gpu, vmm, info.va + (48 + 512) * PG, pf[48 + 512] << 12, 64 * KiB);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			check_vmm(vmm, "64K gone, 4K stays", 0);
			expect_size(gpu, vmm, info.va + n * PG + 3 * PG, q << 12, PG);
			expect_fault(gpu, vmm, info.va + (48 + 512) * PG);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, s), 0);
		}
		free(pf);

		/* RANGE placement also follows the PA modulo the big-page size */
		{
			struct vmmfs_va_placement pl = { .kind = VMMFS_VA_RANGE, .start = GiB + PG,
							 .end = GiB + 8 * MiB, .pa_hint = VMMFS_NO_PA_HINT };

			pf = seq(0x600, 512);
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 512, &pl, 0, &m), 0);
			vmmfs_mapping_get_info(m, &info);
			VT_EQ_U64(info.va, GiB + 2 * MiB);
			VT_EQ_U64(info.pages_2m, 1);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			free(pf);
		}

		/* SMALL_ONLY: no big pages */
		pf = seq(0x800, 1024);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 1024, NULL, VMMFS_MAP_SMALL_ONLY, &m), 0);
		vmmfs_mapping_get_info(m, &info);
		VT_EQ_U64(info.pages_4k, 1024);
		expect_size(gpu, vmm, info.va, 0x800ull << 12, PG);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		free(pf);

		/* 1 GiB aligned: 512 MiB pages where the chip has them, else
		 * 2 MiB pages; a few hundred writes, not 262,144 */
		n = GiB / PG;
		pf = seq(GiB / PG, n);
		a = mmio_now(gpu);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &m), 0);
		b = mmio_now(gpu);
		vmmfs_mapping_get_info(m, &info);
		printf("  %-6s 1 GiB aligned: %llu x 512M, %llu x 2M: %llu writes\n", vt_chips[c],
		       (unsigned long long)info.pages_512m, (unsigned long long)info.pages_2m,
		       (unsigned long long)(b.writes - a.writes));
		if (has512) {
			VT_EQ_U64(info.pages_512m, 2);
			expect_size(gpu, vmm, info.va + 700 * MiB, GiB + 700 * MiB, 512 * MiB);
		} else {
			VT_EQ_U64(info.pages_2m, 512);
			expect_size(gpu, vmm, info.va + 700 * MiB, GiB + 700 * MiB, 2 * MiB);
		}
		CU_ASSERT(b.writes - a.writes <= 2600);
		check_vmm(vmm, "1 GiB", 0);
		/* no page tables were allocated for the big pages */
		CU_ASSERT(stats(vmm).pt_pages <= (uint64_t)(has512 ? 4 : 5));
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		expect_fault(gpu, vmm, info.va + 700 * MiB);
		free(pf);

		/* mixed with 512 MiB: each part gets the largest page that fits */
		if (has512) {
			n = 131072 + 512 + 16 + 1;
			pf = seq(GiB / PG, n);
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &m), 0);
			vmmfs_mapping_get_info(m, &info);
			VT_EQ_U64(info.va % (512 * MiB), 0);
			VT_EQ_U64(info.pages_512m, 1);
			VT_EQ_U64(info.pages_2m, 1);
			VT_EQ_U64(info.pages_64k, 1);
			VT_EQ_U64(info.pages_4k, 1);
			expect_size(gpu, vmm, info.va + 3 * MiB, GiB + 3 * MiB, 512 * MiB);
			expect_size(gpu, vmm, info.va + 513 * MiB, GiB + 513 * MiB, 2 * MiB);
			expect_size(gpu, vmm, info.va + 514 * MiB + 8, GiB + 514 * MiB + 8, 64 * KiB);
			expect_size(gpu, vmm, info.va + 514 * MiB + 64 * KiB, GiB + 514 * MiB + 64 * KiB, PG);
			check_vmm(vmm, "512M mixed", 0);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			free(pf);
		}

		/* big pages through prepare + execute (PFNs unknown at prepare) */
		{
			struct vmmfs_map_op *op;
			struct vmmfs_va_placement pl = { .kind = VMMFS_VA_ANY, .pa_hint = 0 };

			n = 512 * 3 + 16 * 2 + 3;
			pf = seq(0x1000, n);
			VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, n, &pl, &op), 0);
			VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), 0);
			vmmfs_mapping_get_info(m, &info);
			VT_EQ_U64(info.pages_2m, 3);
			VT_EQ_U64(info.pages_64k, 2);
			check_vmm(vmm, "big pages after prepare", 0);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			check_vmm(vmm, "unmap", 0);
			free(pf);
		}
		VT_EQ_U64(stats(vmm).pt_pages, 1);
		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- lookup, dump, memory -------------------------------------------------------------------- */

struct dump_stats {
	int tables, pages, big, calls;
	uint64_t pages_4k;
};

static int dump_cb(void *ctx, const struct vmmfs_pt_entry *e)
{
	struct dump_stats *d = ctx;

	d->calls++;
	if (e->kind == VMMFS_PT_TABLE)
		d->tables++;
	if (e->kind == VMMFS_PT_PAGE) {
		d->pages++;
		if (e->page_size == PG)
			d->pages_4k += e->last - e->first + 1;
		else
			d->big++;
	}
	return 0;
}

static int run_count(void *ctx, uint64_t first, uint64_t count)
{
	uint64_t *c = ctx;

	c[0]++;
	c[1] += count;
	c[2] = first;
	return c[0] == 2 ? 5 : 0;
}

static int dump_stop(void *ctx, const struct vmmfs_pt_entry *e)
{
	(void)e;
	return ++*(int *)ctx == 2 ? 77 : 0;
}

static void test_lookup_dump_mem(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		const struct mmu_fmt *f = mmu_fmt_get(vmmfs_gpu_get_info(gpu)->mmu_version);
		struct vmmfs_mapping *m, *big, *ro;
		struct vmmfs_mapping_info info;
		struct vmmfs_lookup lk;
		struct dump_stats d = { 0 };
		uint64_t pf[600];
		char buf[10000], back[10000];
		int stop = 0;

		for (int i = 0; i < 600; i++)
			pf[i] = 0x3000 + (i < 300 ? i : i + 1);  /* two runs */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 600, NULL, VMMFS_MAP_SMALL_ONLY, &m), 0);
		vmmfs_mapping_get_info(m, &info);
		VT_EQ_U64(info.nruns, 2);
		{
			uint64_t rc[3] = { 0 };

			/* runs in VA order; a non-zero return stops the walk */
			VT_EQ_INT(vmmfs_mapping_for_each_run(m, run_count, rc), 5);
			VT_EQ_U64(rc[0], 2);
			VT_EQ_U64(rc[1], 600);
			VT_EQ_U64(rc[2], 0x3000 + 301);
		}
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, (uint64_t[]){ 0 }, 1, NULL, VMMFS_MAP_READ_ONLY, &ro), 0);
		{
			uint64_t *p2 = seq(0x2000, 512);

			VT_EQ_INT(vmmfs_vmm_map_pages(vmm, p2, 512, NULL, 0, &big), 0);
			free(p2);
		}

		/* lookup: mapped, unmapped entry, missing table with its level */
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, info.va + 300 * PG + 5, &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_MAPPED);
		VT_EQ_U64(lk.pa, (0x3000ull + 301) * PG + 5);
		CU_ASSERT_STRING_EQUAL(lk.level, "PT");
		VT_EQ_INT(lk.depth, f->nlevels - 1);
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, info.va + 610 * PG, &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_UNMAPPED);
		CU_ASSERT_STRING_EQUAL(lk.level, "PT");
		VT_EQ_INT(vmmfs_vmm_lookup(vmm, 1ull << (f->va_bits - 1), &lk), 0);
		VT_EQ_INT(lk.state, VMMFS_LOOKUP_NO_TABLE);
		VT_EQ_INT(lk.depth, 0);
		CU_ASSERT_STRING_EQUAL(lk.level, f->levels[0].name);

		/* mem: write and read back across pages and the run boundary */
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (char)(i * 7 + 3);
		VT_EQ_INT(vmmfs_vmm_mem_write(vmm, info.va + 298 * PG + 100, buf, sizeof(buf)), sizeof(buf));
		VT_EQ_INT(vmmfs_vmm_mem_read(vmm, info.va + 298 * PG + 100, back, sizeof(back)), sizeof(back));
		CU_ASSERT(!memcmp(buf, back, sizeof(buf)));
		{
			char raw[64];

			/* page 300 of the mapping is PFN 0x3000 + 301 */
			VT_EQ_INT(vmmfs_gpu_vram_read(gpu, (0x3000ull + 301) * PG, raw, 64), 0);
			CU_ASSERT(!memcmp(raw, buf + (2 * PG - 100), 64));
		}
		vmmfs_mapping_get_info(ro, &info);
		VT_EQ_INT(vmmfs_vmm_mem_write(vmm, info.va, buf, 8), -EACCES);
		VT_EQ_INT(vmmfs_vmm_mem_read(vmm, info.va + PG - 4, back, 8), 4); /* stops at the end */

		/* dump: tables and collapsed runs */
		VT_EQ_INT(vmmfs_vmm_dump(vmm, dump_cb, &d), 0);
		VT_EQ_INT(d.pages_4k, 601);
		VT_EQ_INT(d.big, 1);
		CU_ASSERT(d.pages <= 4 + 2);   /* two runs (maybe split by a PT boundary), one ro page, one 2M */
		CU_ASSERT(d.tables >= f->nlevels - 1);
		VT_EQ_INT(vmmfs_vmm_dump(vmm, dump_stop, &stop), 77);
		VT_EQ_INT(stop, 2);

		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, ro), 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, big), 0);
		memset(&d, 0, sizeof(d));
		VT_EQ_INT(vmmfs_vmm_dump(vmm, dump_cb, &d), 0);
		VT_EQ_INT(d.calls, 0);
		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- memory per mapped page (issue 6 item 7) ------------------------------------------------- */

static void test_memory_per_page(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("ga102", 8 * GiB);
	struct vmmfs_vmm *vmm = new_vmm(gpu);
	uint64_t n = 1ull << 20, *pf = seq(0, n);
	struct vmmfs_mapping *m;
	int64_t live0 = vmmfs_mem_live();

	/* contiguous: the mapping holds one run */
	VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, VMMFS_MAP_SMALL_ONLY, &m), 0);
	CU_ASSERT(sizeof(*m) + m->cap_words * sizeof(uint32_t) <= 320);
	VT_EQ_U64(m->nwords, 2);
	VT_EQ_U64(m->nruns, 1);
	/* bookkeeping grows per page table, not per page: a shadow node and
	 * the VRAM allocator's block node for each of the 2048 PTs */
	printf("  contiguous 1M pages: %llu run stored, %lld heap objects, PT node %zu bytes\n",
	       (unsigned long long)m->nruns, (long long)(vmmfs_mem_live() - live0),
	       walk_node_size(vmm->fmt, vmm->pd1_512m, (unsigned int)vmm->fmt->nlevels - 1));
	CU_ASSERT(vmmfs_mem_live() - live0 <= 2 * 2048 + 64);
	/* node + allocator overheads (< 128 B) per 512 pages: under 1 byte a page */
	CU_ASSERT(walk_node_size(vmm->fmt, vmm->pd1_512m, (unsigned int)vmm->fmt->nlevels - 1) + 128 <= 512);
	VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
	/* scattered: a run of one page is one 4-byte word */
	for (uint64_t i = 0; i < n; i++)
		pf[i] = (i * 7919) % (n * 2);
	VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 4096, NULL, 0, &m), 0);
	VT_EQ_U64(m->cap_words, 4096);
	VT_EQ_U64(m->nwords, 4096);
	VT_EQ_U64(m->nruns, 4096);
	VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
	/* pairs: a run of two pages is two words, 4 bytes a page again */
	for (uint64_t i = 0; i < 4096; i++)
		pf[i] = 4 * (i / 2) + (i % 2);
	VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, 4096, NULL, 0, &m), 0);
	VT_EQ_U64(m->cap_words, 4096);
	VT_EQ_U64(m->nruns, 2048);
	check_vmm(vmm, "pairs", 0);
	VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
	/* the PFNs unknown at prepare: room for the worst case, one word a page */
	{
		struct vmmfs_map_op *op;

		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, 4096, NULL, &op), 0);
		m = vmm_op_mapping(op);
		VT_EQ_U64(m->cap_words, 4096);
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &m), 0);
		VT_EQ_U64(m->nwords, 4096);
		VT_EQ_U64(m->nruns, 2048);
		check_vmm(vmm, "pairs, two phases", 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
	}
	free(pf);
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
}

/*
 * Page references of scattered PFNs (the single-page loop of vram.h): a
 * page mapped more often than its 4-bit owner word holds moves its chunk
 * to wide words and back; an error anywhere in a stretch of single pages
 * (a page table, a page beyond VRAM, a page at VRAM_MAP_MAX) leaves no
 * reference behind, in both phases' paths; a random permutation maps and
 * checks out.
 */
static void test_scattered_refs(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("ga102", 256 * MiB);
	struct vmmfs_vmm *vmm = new_vmm(gpu);
	const uint64_t n = 3000, vram_pages = 256 * MiB / PG;
	uint64_t *pf = calloc(n, sizeof(*pf)), pt = vmmfs_vmm_pdb(vmm) >> 12;
	struct vmmfs_mapping *m[20];
	struct vmmfs_map_op *op;
	struct vmmfs_mapping *mm;

	vt_seed("scattered_refs");
	CU_ASSERT_FATAL(pf != NULL);
	/* every third page from 100: no two consecutive, across chunks */
	for (uint64_t i = 0; i < n; i++)
		pf[i] = 100 + 3 * i;
	for (int k = 0; k < 20; k++) {
		/* the first 40 pages 20 times, the rest once */
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, k ? 40 : n, NULL, 0, &m[k]), 0);
		check_vmm(vmm, "scattered map", k);
	}
	VT_EQ_U64(vram_owner(gpu->vram, pf[0]), 20);
	VT_EQ_U64(vram_owner(gpu->vram, pf[39]), 20);
	VT_EQ_U64(vram_owner(gpu->vram, pf[40]), 1);
	VT_EQ_U64(vram_owner(gpu->vram, pf[0] + 1), 0);
	VT_EQ_U64(vram_owner(gpu->vram, pf[n - 1]), 1);
	for (int k = 19; k >= 1; k -= 2) {   /* odd ones first: counts go down unevenly */
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m[k]), 0);
		check_vmm(vmm, "scattered unmap", k);
	}
	VT_EQ_U64(vram_owner(gpu->vram, pf[7]), 10);
	for (int k = 18; k >= 0; k -= 2)
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m[k]), 0);
	for (uint64_t i = 0; i < n; i++)
		if (vram_owner(gpu->vram, pf[i])) {
			VT_EQ_U64(vram_owner(gpu->vram, pf[i]), 0);
			break;
		}
	VT_EQ_U64(stats(vmm).mapped_pages, 0);

	/* a chunk all of whose pages are mapped, unevenly (a pattern that
	 * repeats every 16 pages): it must not be taken for a uniform one */
	{
		const uint64_t base = 8 * 512;

		VT_EQ_INT(vram_ref_run(gpu->vram, base, 512), 0);
		for (uint64_t i = 0; i < 512; i++)
			if (i % 16 == 2 || i % 16 == 3)
				VT_EQ_INT(vram_ref_run(gpu->vram, base + i, 1), 0);
		VT_EQ_U64(vram_owner(gpu->vram, base), 1);
		VT_EQ_U64(vram_owner(gpu->vram, base + 2), 2);
		VT_EQ_U64(vram_owner(gpu->vram, base + 19), 2);
		VT_EQ_U64(vram_owner(gpu->vram, base + 511), 1);
		for (uint64_t i = 0; i < 512; i++)
			if (i % 16 == 2 || i % 16 == 3)
				vram_unref_run(gpu->vram, base + i, 1);
		VT_EQ_U64(vram_owner(gpu->vram, base + 2), 1);
		vram_unref_run(gpu->vram, base, 512);
		VT_EQ_U64(vram_owner(gpu->vram, base + 2), 0);
	}

	/* errors in the middle of single pages: nothing kept */
	for (int e = 0; e < 3; e++) {
		uint64_t at = 1 + vt_rand_below(n - 2), keep = pf[at];

		pf[at] = e == 0 ? pt : e == 1 ? vram_pages + at : 50000;
		if (e == 2)
			for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
				CU_ASSERT_EQUAL_FATAL(vram_ref_run(gpu->vram, 50000, 1), 0);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &mm),
			  e == 0 ? -EACCES : e == 1 ? -ERANGE : -EOVERFLOW);
		VT_EQ_INT(vmmfs_vmm_prepare_map(vmm, n, NULL, &op), 0);
		VT_EQ_INT(vmmfs_vmm_execute_map(vmm, op, pf, 0, &mm),
			  e == 0 ? -EACCES : e == 1 ? -ERANGE : -EOVERFLOW);
		vmmfs_vmm_abort_map(vmm, op);
		for (uint64_t i = 0; i < n; i++)
			if (i != at && vram_owner(gpu->vram, pf[i])) {
				VT_EQ_U64(vram_owner(gpu->vram, pf[i]), 0);
				break;
			}
		if (e == 2) {
			VT_EQ_U64(vram_owner(gpu->vram, 50000), VRAM_MAP_MAX);
			for (uint64_t i = 0; i < VRAM_MAP_MAX; i++)
				vram_unref_run(gpu->vram, 50000, 1);
		}
		pf[at] = keep;
		check_vmm(vmm, "scattered error", e);
	}

	/* a random permutation of 3000 pages: every page its own run */
	for (uint64_t i = 0; i < n; i++)
		pf[i] = 2000 + i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = vt_rand_below(i + 1), t = pf[i];

		pf[i] = pf[j];
		pf[j] = t;
	}
	VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &mm), 0);
	check_vmm(vmm, "random permutation", 0);
	for (uint64_t i = 0; i < n; i += 97)
		VT_EQ_U64(vram_owner(gpu->vram, pf[i]), 1);
	VT_EQ_INT(vmmfs_vmm_unmap(vmm, mm), 0);
	VT_EQ_U64(vram_owner(gpu->vram, pf[0]), 0);
	VT_EQ_U64(stats(vmm).mapped_pages, 0);
	check_vmm(vmm, "random permutation unmapped", 0);
	free(pf);
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
}

/*
 * vmmfs_vmm_map_runs: the same mapping as map_pages of the expanded PFNs
 * (runs that continue one another joined, big pages planned from the
 * runs, every page translated by the GPU's MMU), its errors leave nothing
 * behind, and claimed runs go back to the allocator at unmap.
 */
static void test_map_runs(void)
{
	for (int c = 0; vt_chips[c]; c++) {
		struct vmmfs_gpu *gpu = vt_open_sim(vt_chips[c], 256 * MiB);
		struct vmmfs_vmm *vmm = new_vmm(gpu);
		/* 4 MiB from a 2 MiB-aligned PFN in two pieces, 3 singles, a 20-page run */
		const struct vmmfs_vmm_run runs[] = {
			{ 4096, 700 }, { 4796, 324 }, { 9, 1 }, { 7, 1 }, { 100, 1 }, { 200, 20 },
		};
		const uint64_t nr = sizeof(runs) / sizeof(runs[0]), n = 1024 + 3 + 20;
		uint64_t *pf = calloc(n, sizeof(*pf)), k = 0, inv;
		struct vmmfs_mapping_info ia, ib;
		struct vmmfs_mapping *a, *b;
		struct vmmfs_vmm_run bad[3];
		struct vmmfs_vram_usage u;

		CU_ASSERT_FATAL(pf != NULL);
		for (uint64_t i = 0; i < nr; i++)
			for (uint64_t q = 0; q < runs[i].count; q++)
				pf[k++] = runs[i].first + q;
		VT_EQ_U64(k, n);
		inv = invalidates(gpu);
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, runs, nr, NULL, 0, &a), 0);
		VT_EQ_U64(invalidates(gpu), inv + 1);
		check_vmm(vmm, "map_runs", c);
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pf, n, NULL, 0, &b), 0);
		check_vmm(vmm, "map_pages of the same", c);
		vmmfs_mapping_get_info(a, &ia);
		vmmfs_mapping_get_info(b, &ib);
		VT_EQ_U64(ia.npages, n);
		VT_EQ_U64(ia.nruns, 5);
		VT_EQ_U64(ib.nruns, 5);
		VT_EQ_U64(ia.pages_4k, ib.pages_4k);
		VT_EQ_U64(ia.pages_64k, ib.pages_64k);
		VT_EQ_U64(ia.pages_2m, ib.pages_2m);
		VT_EQ_U64(ia.pages_2m, 2);      /* the aligned 4 MiB run, VA placed for it */
		for (uint64_t i = 0; i < n; i++)
			if (!expect_mapped(gpu, vmm, ia.va + i * PG, pf[i] * PG, false))
				break;
		VT_EQ_U64(vram_owner(gpu->vram, 4800), 2);
		VT_EQ_U64(vram_owner(gpu->vram, 7), 2);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, b), 0);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
		VT_EQ_U64(vram_owner(gpu->vram, 4800), 0);
		VT_EQ_U64(stats(vmm).mapped_pages, 0);

		/* errors: nothing prepared, referenced or flushed */
		inv = invalidates(gpu);
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, runs, 0, NULL, 0, &a), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, NULL, 1, NULL, 0, &a), -EINVAL);
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, runs, nr, NULL, 0x80, &a), -EINVAL);
		bad[0] = (struct vmmfs_vmm_run){ 10, 5 };
		bad[1] = (struct vmmfs_vmm_run){ 30, 0 };
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, bad, 2, NULL, 0, &a), -EINVAL);
		bad[1] = (struct vmmfs_vmm_run){ 256 * MiB / PG - 2, 3 };
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, bad, 2, NULL, 0, &a), -ERANGE);
		bad[1] = (struct vmmfs_vmm_run){ 15, UINT64_MAX };
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, bad, 2, NULL, 0, &a), -ERANGE);
		bad[1] = (struct vmmfs_vmm_run){ 40, 3 };
		bad[2] = (struct vmmfs_vmm_run){ vmmfs_vmm_pdb(vmm) / PG, 1 };
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, bad, 3, NULL, 0, &a), -EACCES);
		VT_EQ_U64(vram_owner(gpu->vram, 10) | vram_owner(gpu->vram, 41), 0);
		VT_EQ_U64(invalidates(gpu), inv);
		VT_EQ_U64(stats(vmm).pending, 0);
		check_vmm(vmm, "map_runs errors", c);

		/* claimed runs are the mapping's, returned at unmap */
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x4000 - 64, 32), 0);
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x4000 - 16, 16), 0);
		bad[0] = (struct vmmfs_vmm_run){ 0x4000 - 64, 32 };
		bad[1] = (struct vmmfs_vmm_run){ 0x4000 - 16, 16 };
		VT_EQ_INT(vmmfs_vmm_map_runs(vmm, bad, 2, NULL, VMMFS_MAP_CLAIM, &a), 0);
		vmmfs_mapping_get_info(a, &ia);
		CU_ASSERT(ia.allocated);
		vmmfs_gpu_get_vram_usage(gpu, &u);
		VT_EQ_U64(u.alloc_pages, 48);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
		vmmfs_gpu_get_vram_usage(gpu, &u);
		VT_EQ_U64(u.alloc_pages, 0);
		check_vmm(vmm, "map_runs claimed", c);

		/* each allocation failing in turn: -ENOMEM and nothing changed,
		 * until the map goes through */
		{
			uint64_t free0 = stats(vmm).va_free, pt0 = stats(vmm).pt_pages;
			int64_t live0 = vmmfs_mem_live();
			int r = -ENOMEM;

			for (uint64_t nth = 0; r == -ENOMEM && nth < 1000; nth++) {
				vmmfs_fault_reset();
				vmmfs_fault_fail_nth(nth);
				r = vmmfs_vmm_map_runs(vmm, runs, nr, NULL, 0, &a);
				vmmfs_fault_reset();
				if (r == -ENOMEM) {
					VT_EQ_U64(stats(vmm).va_free, free0);
					VT_EQ_U64(stats(vmm).pt_pages, pt0);
					VT_EQ_U64(vram_owner(gpu->vram, 4800) | vram_owner(gpu->vram, 100), 0);
					VT_EQ_U64((uint64_t)vmmfs_mem_live(), (uint64_t)live0);
					check_vmm(vmm, "map_runs, allocation failed", (long)nth);
				}
			}
			VT_EQ_INT(r, 0);
			check_vmm(vmm, "map_runs after failures", c);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, a), 0);
		}
		free(pf);
		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
	}
}

/* ---- concurrency ------------------------------------------------------------------------------- */

struct thr {
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	uint64_t pfn_base, seed;
	int iters, fails;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct vmmfs_mapping *live[8] = { 0 };
	uint64_t pf[1100];

	for (int it = 0; it < t->iters; it++) {
		int k = (int)(xs(&t->seed) % 8);

		if (live[k]) {
			if (vmmfs_vmm_unmap(t->vmm, live[k]))
				t->fails++;
			live[k] = NULL;
			continue;
		}
		uint64_t n = 1 + xs(&t->seed) % 1050, s = t->pfn_base + (xs(&t->seed) % 2) * 512;

		for (uint64_t i = 0; i < n; i++)
			pf[i] = xs(&t->seed) % 4 ? s + i : t->pfn_base + xs(&t->seed) % 4096;
		if (xs(&t->seed) % 3) {
			if (vmmfs_vmm_map_pages(t->vmm, pf, n, NULL, 0, &live[k]))
				t->fails++;
		} else {
			struct vmmfs_map_op *op;

			if (vmmfs_vmm_prepare_map(t->vmm, n, NULL, &op) ||
			    vmmfs_vmm_execute_map(t->vmm, op, pf, 0, &live[k]))
				t->fails++;
		}
		if (live[k]) {
			struct vmmfs_mapping_info info;
			struct vmmfs_hw_translation x;

			vmmfs_mapping_get_info(live[k], &info);
			if (vmmfs_gpu_hw_translate(t->gpu, vmmfs_vmm_pdb(t->vmm), info.va + (n - 1) * PG, &x) ||
			    x.result != VMMFS_HW_OK || x.pa != pf[n - 1] << 12)
				t->fails++;
		}
	}
	for (int k = 0; k < 8; k++)
		if (live[k] && vmmfs_vmm_unmap(t->vmm, live[k]))
			t->fails++;
	return NULL;
}

static void test_concurrency(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("gh100", 1 * GiB);
	struct vmmfs_vmm *v1 = new_vmm(gpu), *v2 = new_vmm(gpu);
	pthread_t th[6];
	struct thr t[6];
	uint64_t seed = vt_seed("vmm concurrency");

	for (int i = 0; i < 6; i++) {
		t[i] = (struct thr){ .gpu = gpu, .vmm = i < 4 ? v1 : v2, .pfn_base = 0x1000 + (uint64_t)i * 0x2000,
				     .seed = seed + (uint64_t)i * 7919 + 1, .iters = 300 };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		VT_EQ_INT(t[i].fails, 0);
	}
	check_vmm(v1, "threads", 0);
	check_vmm(v2, "threads", 0);
	VT_EQ_U64(stats(v1).pt_pages, 1);
	VT_EQ_U64(stats(v2).pt_pages, 1);
	VT_EQ_U64(stats(v1).mappings, 0);
	vmmfs_vmm_destroy(v1);
	vmmfs_vmm_destroy(v2);
	vmmfs_gpu_close(gpu);
}

static void register_tests(void)
{
	static const struct vt_test vmm_tests[] = {
		{ "random_differential", test_random_differential },
		{ "execute_no_alloc", test_execute_no_alloc },
		{ "errors", test_errors },
		{ "pfn_beyond_pte_field", test_pfn_beyond_pte_field },
		{ "dual_pde_keeps_big", test_dual_pde_keeps_big },
		{ "free_empty_tables", test_free_empty_tables },
		{ "one_invalidate_per_op", test_one_invalidate_per_op },
		{ "mmio_per_page", test_mmio_per_page },
		{ "big_pages", test_big_pages },
		{ "lookup_dump_mem", test_lookup_dump_mem },
		{ "memory_per_page", test_memory_per_page },
		{ "scattered_refs", test_scattered_refs },
		{ "map_runs", test_map_runs },
		{ "concurrency", test_concurrency },
		{ NULL, NULL },
	};

	vt_add_suite("vmm", vmm_tests);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
