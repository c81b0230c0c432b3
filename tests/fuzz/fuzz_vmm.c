/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the public VMM API (include/vmmfs/vmm.h) on simulated GPUs,
 * checked against a plain model, the simulated GPU's own MMU
 * (vmmfs_gpu_hw_translate) and the VMM's own consistency check.
 *
 * One simulated GPU per chip, opened on first use and kept for the whole
 * process (opening one costs as much as a small input): chip_reset() makes
 * it what a fresh one is at the start of every input (VRAM reads poison
 * again, empty TLB, PRAMIN window where open left it) and checks that
 * nothing else is left over; each input makes one or two address spaces
 * and destroys them at its end, after which the GPU must be exactly as
 * before (VRAM usage, heap objects, page owners). An input after which the
 * GPU is not as fresh (a vanished device; an invalidate still stuck) closes
 * it at its end. So inputs do not depend on each other and a crash replays
 * alone.
 *
 * Input layout (a byte stream; reading past the end gives zeros):
 *   byte 0   bits 0-1: chip (tu102 / ga102 MMU v2, gh100 / gb202 MMU v3)
 *            bit 2: two address spaces
 *            bits 3-4: how the input ends (destroy with mappings live,
 *                      unmap in order, unmap newest first, unmap half)
 *            bit 5: gb202 with 1 GiB of VRAM (512 MiB pages), else 64 MiB
 *   then operations, each an opcode byte (bits 0-3: operation, bit 4:
 *   which address space) followed by its arguments:
 *     prepare, execute, abort, map_pages (with VMMFS_MAP_CLAIM over a
 *     claimed run), map_alloc, unmap, lookup, mem read/write, claim and
 *     unclaim VRAM (vmmfs_gpu_vram_claim), pin and unpin VRAM
 *     (vmmfs_gpu_vram_pin), fail an allocation of the next operation, a
 *     hardware fault for the next operation (a TLB invalidate that never
 *     completes, or a device that vanishes for the rest of the input), full
 *     check. tests/fuzz/mkcorpus.py writes inputs in this layout.
 *
 * The model knows, for each address space, the live mappings (VA, PFN
 * runs, access, small-pages-only), the prepared ops (VA, size) and the
 * mappings a hardware error sent to quarantine; per GPU it counts how
 * often each VRAM page is mapped or pinned. For every call it works out
 * which errors the header allows (vmm.h lists them per function) and
 * whether success is required, then checks:
 *   - the result; on failure that nothing changed (stats, VRAM, VA);
 *   - TLB invalidates: exactly one per execute, map and unmap, none for
 *     prepare, lookups or a failed validation; execute never allocates;
 *   - placement: page-aligned, inside the address space / the range /
 *     exactly at the asked VA, overlapping no mapping, prepared op or
 *     quarantined VA; placed anywhere with a PA hint, congruent to it modulo
 *     the largest page size the size allows;
 *   - mapping info and PFN runs against the model;
 *   - translations: vmmfs_vmm_lookup and the GPU's MMU must both give the
 *     model's PA and access, agree on the page size, and a big page must
 *     cover only consecutive PFNs of one mapping; unmapped, aborted and
 *     prepared ranges must fault; a quarantined VA may only still reach
 *     (through the GPU's caches) what its mapping said;
 *   - hardware errors (vmm.h): -ETIMEDOUT/-ENODEV exactly when injected; an
 *     execute or map that fails so after its point of no return, or an
 *     unmap, quarantines its mapping: VA and page references withheld
 *     (stats.quarantined_pages) until destroy; after the device vanished,
 *     every call that reaches it fails with -ENODEV, and destroy keeps the
 *     tree and the mapped pages reserved, but frees every heap object;
 *   - VRAM: page-owner counts equal the model's; a page-table page is never
 *     mapped or pinned; alloc= pages are fresh and zeroed; free + tables +
 *     alloc= + parked pages make all of VRAM; a claim succeeds exactly when
 *     every page is free in the allocator, a pin exactly when no page holds
 *     a table; nothing makes the VRAM owner log an error;
 *   - at full checks: vmmfs_vmm_dump() shows exactly the model's pages,
 *     and vmmfs_vmm_check() (the VMM's own consistency check) passes.
 * When: after every step that changes something, the stats and the VA
 * ranges it touched; every FULL_EVERY such steps, every mapping sampled,
 * the VRAM sum and vmmfs_vmm_check; at the end of every input, everything
 * (full_check), every page's owner word included. See step_check().
 */
#include "fuzz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmmfs/vmmfs.h>
#include "gpu.h"
#include "mem.h"
#include "vram.h"
#include "vmm_priv.h"
#include "sim/sim.h"
#include "sim/sim_priv.h"

#define PAGE 4096ull
#define MAX_VMMS 2
#define MAX_MAPS 48
#define MAX_OPS 8
#define MAX_STEPS 64
#define MAX_HOLES 8
#define MAX_PT_KNOWN 16
#define MAX_CLAIMS 8
#define MAX_PINS 8
#define MAX_QUAR (2 * MAX_MAPS) /* room for every live mapping too */
#define MAX_TOUCHED 6
#define FULL_EVERY 8 /* changing steps between two checks of everything */
/* The checks cost time per page: one 512 MiB page (2^17 pages) is the
 * largest mapping that reaches a path smaller ones do not. */
#define EXEC_MAX_PAGES (1ull << 17)  /* larger prepared ops are aborted, never executed */
#define HUGE_MAX_PAGES (1ull << 18)  /* largest prepare-only op (1 GiB of VA) */
#define SPACE_MAX_PAGES ((1ull << 17) + (1ull << 14)) /* mapped and prepared pages per
						       * address space */

/* ---- chips ------------------------------------------------------------------------- */

struct chip {
	const char *name;
	uint64_t vram_bytes;
	struct vmmfs_gpu *gpu;
	uint64_t vram_pages;
	struct vmmfs_vram_usage base;
	uint32_t *refs;              /* model: mappings of each VRAM page */
	uint64_t distinct;           /* model: pages mapped at least once */
	uint32_t *mark, epoch;       /* pages already counted in this pass */
	uint32_t window0;            /* the simulator's window register after open */
	uint64_t pramin_base0;       /* the driver's view of it */
	bool pramin_known0;
	bool dirty;                  /* a hardware fault was injected: reopen */
	int64_t gpu_objs;            /* heap objects of the open GPU alone */
};

/* Small VRAM keeps the fuzzer fast (a map of more pages than VRAM has is
 * skipped, and the checks cost time per page); a gb202 with 1 GiB, which
 * inputs ask for, can map a 512 MiB page. */
static struct chip chips[5] = {
	{ .name = "tu102", .vram_bytes = 16ull << 20 },
	{ .name = "ga102", .vram_bytes = 64ull << 20 },
	{ .name = "gh100", .vram_bytes = 32ull << 20 },
	{ .name = "gb202", .vram_bytes = 64ull << 20 },
	{ .name = "gb202", .vram_bytes = 1024ull << 20 },
};

/* ---- the model --------------------------------------------------------------------- */

struct run {
	uint64_t idx;   /* first page of the run, counted from the mapping's VA */
	uint64_t pfn;
	uint64_t count;
};

struct model_map {
	struct vmmfs_mapping *m;
	uint64_t va, npages;
	bool ro, small_only, allocated;
	bool held;      /* quarantine: entries cleared (else: the device is gone) */
	struct run *runs;
	size_t nruns;
};

struct model_op {
	struct vmmfs_map_op *op;
	uint64_t va, npages;
};

struct hole {
	uint64_t va, npages;
};

struct mvmm {
	struct vmmfs_vmm *vmm;
	uint64_t pdb, va_size;
	struct model_map maps[MAX_MAPS];
	size_t nmaps;
	struct model_op ops[MAX_OPS];
	size_t nops;
	struct hole holes[MAX_HOLES];
	size_t nholes, hole_next;
	uint64_t flushes;            /* TLB invalidates the VMM must have issued */
	/* Mappings a hardware error sent to quarantine (vmm.h): VA and page
	 * references withheld until destroy. held: entries cleared (the GPU's
	 * TLB may still hold them); else (device gone) unknown. */
	struct model_map quar[MAX_QUAR];
	size_t nquar;
	uint64_t quar_pages;
};

/* vmmfs_gpu_vram_pin: one mapping reference on each page of the run. */
struct pin {
	uint64_t first, count;
};

/* VRAM taken with vmmfs_gpu_vram_claim (crash recovery), not yet handed
 * to a mapping with VMMFS_MAP_CLAIM or given back. */
struct claim {
	uint64_t first, count;
};

struct input {
	const uint8_t *p;
	size_t n;
};

struct ctx {
	struct chip *c;
	struct mvmm v[MAX_VMMS];
	int nvmm;
	struct input in;
	int step;
	const char *what;            /* the operation being checked, for messages */
	uint64_t pt_known[MAX_PT_KNOWN];
	size_t npt_known;
	struct claim claims[MAX_CLAIMS];
	size_t nclaims;
	struct pin pins[MAX_PINS];
	size_t npins;
	int fault_nth;               /* -1: none armed for the next operation */
	bool fault_all;
	unsigned int hw_fault;       /* simulator fault for the next operation */
	bool gone;                   /* the device vanished: -ENODEV from now on */
	bool kept;                   /* an address space was destroyed on the vanished
				      * device: its pages stay reserved, unmodelled */
	uint64_t rng;
	/* VA ranges the current step changed or tried: checked after it */
	struct { struct mvmm *mv; uint64_t va, npages; } touched[MAX_TOUCHED];
	size_t ntouched;
	unsigned int changed;        /* changing steps so far */
};

static struct ctx *cur;

/* VMMFS_FUZZ_TRACE=1 prints every operation with its arguments and result:
 * the way to read a crashing input. */
static int trace = -1;

__attribute__((format(printf, 1, 2)))
static void vf_trace(const char *fmt, ...)
{
	va_list ap;

	if (trace < 0) {
		const char *e = getenv("VMMFS_FUZZ_TRACE");
		trace = e && *e && *e != '0';
	}
	if (!trace)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static const char *place_str(const struct vmmfs_va_placement *pl, char *buf, size_t len)
{
	if (!pl)
		snprintf(buf, len, "anywhere");
	else if (pl->kind == VMMFS_VA_EXACT)
		snprintf(buf, len, "va=0x%llx", (unsigned long long)pl->start);
	else if (pl->kind == VMMFS_VA_RANGE)
		snprintf(buf, len, "va=0x%llx-0x%llx hint 0x%llx", (unsigned long long)pl->start,
			 (unsigned long long)pl->end, (unsigned long long)pl->pa_hint);
	else
		snprintf(buf, len, "any hint 0x%llx", (unsigned long long)pl->pa_hint);
	return buf;
}

static void trace_pfns(const uint64_t *pfns, uint64_t n)
{
	uint64_t i, j, shown = 0;

	if (trace <= 0)
		return;
	for (i = 0; i < n && shown < 8; i = j, shown++) {
		for (j = i + 1; j < n && pfns[j] == pfns[j - 1] + 1; j++)
			;
		fprintf(stderr, " 0x%llx", (unsigned long long)pfns[i]);
		if (j - i > 1)
			fprintf(stderr, "-0x%llx", (unsigned long long)pfns[j - 1]);
	}
	if (i < n)
		fprintf(stderr, " ...");
}

__attribute__((format(printf, 1, 2), noreturn))
static void vf_fail(const char *fmt, ...)
{
	char *log = NULL;
	va_list ap;

	fprintf(stderr, "fuzz_vmm: invariant broken");
	if (cur)
		fprintf(stderr, " (%s, step %d, %s)", cur->c ? cur->c->name : "?", cur->step,
			cur->what ? cur->what : "-");
	fprintf(stderr, ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (vmmfs_log_snapshot(&log) > 0)
		fprintf(stderr, "errors the library logged during this input:\n%s", log);
	fprintf(stderr, "(VMMFS_FUZZ_TRACE=1 shows every step of the input)\n");
	abort();
}

static uint8_t in_u8(struct ctx *x)
{
	if (!x->in.n)
		return 0;
	x->in.n--;
	return *x->in.p++;
}

static uint16_t in_u16(struct ctx *x)
{
	uint16_t v = in_u8(x);
	return (uint16_t)(v << 8 | in_u8(x));
}

static uint64_t in_u64(struct ctx *x)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | in_u8(x);
	return v;
}

static uint64_t rng_next(struct ctx *x)
{
	uint64_t s = x->rng;

	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	x->rng = s ? s : 1;
	return s * 0x2545f4914f6cdd1dull;
}

/* ---- errors a call may return ----------------------------------------------------------- */

enum {
	E_INVAL = 1 << 0, E_RANGE = 1 << 1, E_NOSPC = 1 << 2, E_EXIST = 1 << 3,
	E_ACCES = 1 << 4, E_NOMEM = 1 << 5, E_FAULT = 1 << 6, E_OVERFLOW = 1 << 7,
	E_BUSY = 1 << 8, E_NODEV = 1 << 9, E_TIMEDOUT = 1 << 10,
};

static unsigned int err_bit(int r)
{
	switch (r) {
	case -EINVAL: return E_INVAL;
	case -ERANGE: return E_RANGE;
	case -ENOSPC: return E_NOSPC;
	case -EEXIST: return E_EXIST;
	case -EACCES: return E_ACCES;
	case -ENOMEM: return E_NOMEM;
	case -EFAULT: return E_FAULT;
	case -EOVERFLOW: return E_OVERFLOW;
	case -EBUSY: return E_BUSY;
	case -ENODEV: return E_NODEV;
	case -ETIMEDOUT: return E_TIMEDOUT;
	default: return 1u << 31;
	}
}

/* Checks r against the allowed set. must: errors that apply (one of them
 * must come, unless empty); may: errors allowed besides (e.g. -ENOMEM when
 * an allocation was made to fail). */
FUZZ_NOCOV static void check_result(int r, unsigned int must, unsigned int may)
{
	if (r == 0) {
		if (must)
			vf_fail("returned 0, expected an error among 0x%x", must);
		return;
	}
	if (!(err_bit(r) & (must | may)))
		vf_fail("returned %d, expected %s (errors allowed: 0x%x, may: 0x%x)", r,
			must ? "one of the errors" : "success", must, may);
}

/* ---- model helpers ------------------------------------------------------------------- */

FUZZ_NOCOV static bool overlaps(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
	return a < b + bn * PAGE && b < a + an * PAGE;
}

/* True when [va, va + n pages) overlaps a mapping or prepared op. */
FUZZ_NOCOV static bool va_busy(const struct mvmm *mv, uint64_t va, uint64_t n)
{
	for (size_t i = 0; i < mv->nmaps; i++)
		if (overlaps(va, n, mv->maps[i].va, mv->maps[i].npages))
			return true;
	for (size_t i = 0; i < mv->nops; i++)
		if (overlaps(va, n, mv->ops[i].va, mv->ops[i].npages))
			return true;
	for (size_t i = 0; i < mv->nquar; i++)
		if (overlaps(va, n, mv->quar[i].va, mv->quar[i].npages))
			return true;
	return false;
}

FUZZ_NOCOV static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* True when [lo, hi) has a free stretch of size bytes (page aligned). */
FUZZ_NOCOV static bool va_gap(const struct mvmm *mv, uint64_t lo, uint64_t hi, uint64_t size)
{
	uint64_t iv[2 * (MAX_MAPS + MAX_OPS + MAX_QUAR)];
	size_t n = 0;
	uint64_t pos = lo;

	if (hi <= lo || hi - lo < size)
		return false;
	for (size_t i = 0; i < mv->nmaps; i++) {
		iv[2 * n] = mv->maps[i].va;
		iv[2 * n++ + 1] = mv->maps[i].va + mv->maps[i].npages * PAGE;
	}
	for (size_t i = 0; i < mv->nops; i++) {
		iv[2 * n] = mv->ops[i].va;
		iv[2 * n++ + 1] = mv->ops[i].va + mv->ops[i].npages * PAGE;
	}
	for (size_t i = 0; i < mv->nquar; i++) {
		iv[2 * n] = mv->quar[i].va;
		iv[2 * n++ + 1] = mv->quar[i].va + mv->quar[i].npages * PAGE;
	}
	qsort(iv, n, 2 * sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		uint64_t s = iv[2 * i], e = iv[2 * i + 1];
		if (e <= pos)
			continue;
		if (s >= hi)
			break;
		if (s > pos && s - pos >= size)
			return true;
		if (e > pos)
			pos = e;
	}
	return pos < hi && hi - pos >= size;
}

/* Mapping covering va, or NULL. */
FUZZ_NOCOV static const struct model_map *model_find(const struct mvmm *mv, uint64_t va)
{
	for (size_t i = 0; i < mv->nmaps; i++) {
		const struct model_map *m = &mv->maps[i];
		if (va >= m->va && va - m->va < m->npages * PAGE)
			return m;
	}
	return NULL;
}

/* Run of m holding page idx. */
FUZZ_NOCOV static const struct run *model_run(const struct model_map *m, uint64_t idx)
{
	size_t lo = 0, hi = m->nruns;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (m->runs[mid].idx <= idx)
			lo = mid;
		else
			hi = mid;
	}
	return &m->runs[lo];
}

FUZZ_NOCOV static uint64_t model_pfn(const struct model_map *m, uint64_t idx)
{
	const struct run *r = model_run(m, idx);

	return r->pfn + (idx - r->idx);
}

/* Builds the runs of pfns (consecutive PFNs merged). */
FUZZ_NOCOV static struct run *make_runs(const uint64_t *pfns, uint64_t n, size_t *nruns)
{
	struct run *runs;
	size_t k = 0, cap = 1;

	for (uint64_t i = 1; i < n; i++)
		cap += pfns[i] != pfns[i - 1] + 1;
	runs = malloc(cap * sizeof(*runs));
	if (!runs)
		vf_fail("out of memory for the model");
	for (uint64_t i = 0; i < n; i++) {
		if (k && runs[k - 1].pfn + runs[k - 1].count == pfns[i]) {
			runs[k - 1].count++;
			continue;
		}
		runs[k].idx = i;
		runs[k].pfn = pfns[i];
		runs[k].count = 1;
		k++;
	}
	*nruns = k;
	return runs;
}

FUZZ_NOCOV static void refs_add(struct ctx *x, const struct model_map *m, int d)
{
	for (size_t i = 0; i < m->nruns; i++)
		for (uint64_t j = 0; j < m->runs[i].count; j++) {
			uint32_t *ref = &x->c->refs[m->runs[i].pfn + j];
			if (d < 0 && *ref == 0)
				vf_fail("model: page 0x%llx unmapped more often than mapped",
					(unsigned long long)(m->runs[i].pfn + j));
			x->c->distinct += (*ref == 0) - (*ref == 1 && d < 0);
			*ref = (uint32_t)((int64_t)*ref + d);
		}
}

/* Page owner words of m's pages equal the model's counts; none is a table. */
FUZZ_NOCOV static void check_owners(struct ctx *x, const struct model_map *m)
{
	struct vmmfs_vram *v = x->c->gpu->vram;

	for (size_t i = 0; i < m->nruns; i++)
		for (uint64_t j = 0; j < m->runs[i].count; j++) {
			uint64_t pfn = m->runs[i].pfn + j;
			uint32_t w = vram_owner(v, pfn);
			if (w == VRAM_OWNER_PT)
				vf_fail("page 0x%llx is mapped (VA 0x%llx) and holds a page table",
					(unsigned long long)pfn,
					(unsigned long long)(m->va + (m->runs[i].idx + j) * PAGE));
			if ((w & VRAM_OWNER_COUNT) != x->c->refs[pfn])
				vf_fail("page 0x%llx: owner word 0x%x, the model maps it %u times",
					(unsigned long long)pfn, w, x->c->refs[pfn]);
		}
}

/* The same after a step, for large mappings on a sample: the first and
 * last pages of the first runs, and random pages (full_check, at the end
 * of every input, checks every page). */
FUZZ_NOCOV static void check_owners_some(struct ctx *x, const struct model_map *m)
{
	struct vmmfs_vram *v = x->c->gpu->vram;

	if (m->npages <= 2048) {
		check_owners(x, m);
		return;
	}
	for (size_t i = 0; i < m->nruns && i < 64; i++) {
		const struct run *r = &m->runs[i];

		for (uint64_t j = 0; j < r->count; j = j + 1 == 8 && r->count > 16 ? r->count - 8 : j + 1) {
			uint64_t pfn = r->pfn + j;
			uint32_t w = vram_owner(v, pfn);

			if (w == VRAM_OWNER_PT || (w & VRAM_OWNER_COUNT) != x->c->refs[pfn])
				vf_fail("page 0x%llx: owner word 0x%x, the model maps it %u times",
					(unsigned long long)pfn, w, x->c->refs[pfn]);
		}
	}
	for (int k = 0; k < 64; k++) {
		uint64_t pfn = model_pfn(m, rng_next(x) % m->npages);
		uint32_t w = vram_owner(v, pfn);

		if (w == VRAM_OWNER_PT || (w & VRAM_OWNER_COUNT) != x->c->refs[pfn])
			vf_fail("page 0x%llx: owner word 0x%x, the model maps it %u times",
				(unsigned long long)pfn, w, x->c->refs[pfn]);
	}
}

/* Upper bound of page-table pages a map of npages needs (any placement). */
static uint64_t pt_bound(uint64_t npages)
{
	return 2 * (npages / 512 + 2) + npages / 8192 + 2 * (npages / 131072 + 2) + 16;
}

/* May a call that needs npages pages of tables (plus extra pages of VRAM)
 * fail with -ENOMEM? Only when VRAM is really short. pfns: pages the call
 * maps (they are never handed to page tables), or NULL. */
FUZZ_NOCOV static bool vram_short(struct ctx *x, uint64_t npages, uint64_t extra,
				  const uint64_t *pfns)
{
	struct vmmfs_vram_usage u;
	uint64_t unusable = x->c->distinct, usable;

	vmmfs_gpu_get_vram_usage(x->c->gpu, &u);
	/* the pages the call maps would count at most npages */
	if (u.free_pages > unusable + npages &&
	    u.free_pages - unusable - npages >= 2 * pt_bound(npages) + extra + 64)
		return false;
	if (pfns) {
		uint32_t epoch = ++x->c->epoch;

		if (!epoch) {
			memset(x->c->mark, 0, x->c->vram_pages * sizeof(*x->c->mark));
			epoch = x->c->epoch = 1;
		}
		for (uint64_t i = 0; i < npages; i++) {
			uint64_t p = pfns[i];
			if (p < x->c->vram_pages && !x->c->refs[p] && x->c->mark[p] != epoch) {
				x->c->mark[p] = epoch;
				unusable++;
			}
		}
	}
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u);
	usable = u.free_pages > unusable ? u.free_pages - unusable : 0;
	return usable < 2 * pt_bound(npages) + extra + 64;
}

FUZZ_NOCOV static void remember_pt(struct ctx *x, uint64_t pfn)
{
	for (size_t i = 0; i < x->npt_known; i++)
		if (x->pt_known[i] == pfn)
			return;
	if (x->npt_known < MAX_PT_KNOWN)
		x->pt_known[x->npt_known++] = pfn;
	else
		x->pt_known[rng_next(x) % MAX_PT_KNOWN] = pfn;
}

/* ---- snapshots: what a failed call must leave unchanged ------------------------------- */

struct snap {
	struct vmmfs_vmm_stats st;
	struct vmmfs_vram_usage u;
	uint64_t flushes;
};

/* Mapped pages that an allocation met and took out of the allocator
 * (VRAM_OWNER_PARKED): they leave the free count until their last mapping
 * goes, even when the allocation that met them failed. */
FUZZ_NOCOV static uint64_t parked_pages(struct ctx *x)
{
	struct vmmfs_vram *v = x->c->gpu->vram;
	uint32_t epoch = ++x->c->epoch;
	uint64_t n = 0;

	if (!epoch) { /* wrapped: start the marks again */
		memset(x->c->mark, 0, x->c->vram_pages * sizeof(*x->c->mark));
		epoch = x->c->epoch = 1;
	}
	for (int k = 0; k < x->nvmm; k++)
		for (size_t i = 0; i < x->v[k].nmaps + x->v[k].nquar; i++) {
			const struct model_map *m = i < x->v[k].nmaps ? &x->v[k].maps[i] :
						    &x->v[k].quar[i - x->v[k].nmaps];
			for (size_t j = 0; j < m->nruns; j++)
				for (uint64_t p = m->runs[j].pfn; p < m->runs[j].pfn + m->runs[j].count; p++) {
					if (x->c->mark[p] == epoch)
						continue;
					x->c->mark[p] = epoch;
					n += !!(vram_owner(v, p) & VRAM_OWNER_PARKED);
				}
		}
	for (size_t i = 0; i < x->npins; i++)
		for (uint64_t p = x->pins[i].first; p < x->pins[i].first + x->pins[i].count; p++) {
			if (x->c->mark[p] == epoch)
				continue;
			x->c->mark[p] = epoch;
			n += !!(vram_owner(v, p) & VRAM_OWNER_PARKED);
		}
	return n;
}

FUZZ_NOCOV static void take_snap(struct ctx *x, struct mvmm *mv, struct snap *s)
{
	struct vmmfs_gpu_stats gs;

	vmmfs_vmm_get_stats(mv->vmm, &s->st);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &s->u);
	vmmfs_gpu_get_stats(x->c->gpu, &gs);
	s->flushes = gs.tlb_flushes;
}

FUZZ_NOCOV static uint64_t flushes_since(struct ctx *x, const struct snap *s)
{
	struct vmmfs_gpu_stats gs;

	vmmfs_gpu_get_stats(x->c->gpu, &gs);
	return gs.tlb_flushes - s->flushes;
}

/* Every managed VRAM page is free, holds a table, backs alloc= or is
 * parked: nothing leaks. */
FUZZ_NOCOV static void check_vram_sum(struct ctx *x)
{
	struct vmmfs_vram_usage u;
	uint64_t parked = 0;

	vmmfs_gpu_get_vram_usage(x->c->gpu, &u);
	/* parked + lost = total - (free + tables + alloc=): when that is 0,
	 * both are; else count the parked pages */
	if (u.free_pages + u.pt_pages + u.alloc_pages != u.total_pages)
		parked = parked_pages(x);
	/* pages of an address space destroyed on a vanished device stay
	 * reserved (parked ones among them), and the model forgot them */
	if (u.free_pages + u.pt_pages + u.alloc_pages + parked != u.total_pages &&
	    !(x->kept && u.free_pages + u.pt_pages + u.alloc_pages + parked < u.total_pages))
		vf_fail("VRAM: %llu free + %llu tables + %llu alloc= + %llu parked pages make %llu, "
			"not the %llu managed", (unsigned long long)u.free_pages,
			(unsigned long long)u.pt_pages, (unsigned long long)u.alloc_pages,
			(unsigned long long)parked,
			(unsigned long long)(u.free_pages + u.pt_pages + u.alloc_pages + parked),
			(unsigned long long)u.total_pages);
	if (u.mapped_pages != x->c->distinct)
		vf_fail("VRAM: %llu pages mapped, the model maps %llu distinct pages",
			(unsigned long long)u.mapped_pages, (unsigned long long)x->c->distinct);
}

/* After a failed call: VA, mappings, ops and pages as before; tables may
 * only have been given back (garbage from earlier calls); free VRAM may
 * have shrunk only by parking mapped pages (check_vram_sum). */
FUZZ_NOCOV static void check_unchanged(struct ctx *x, struct mvmm *mv, const struct snap *s, int r)
{
	struct snap n;

	take_snap(x, mv, &n);
	check_vram_sum(x);
	if (n.st.va_free != s->st.va_free || n.st.mappings != s->st.mappings ||
	    n.st.pending != s->st.pending || n.st.mapped_pages != s->st.mapped_pages)
		vf_fail("failed with %d but changed the address space: va_free 0x%llx -> 0x%llx, "
			"mappings %llu -> %llu, pending %llu -> %llu, mapped pages %llu -> %llu", r,
			(unsigned long long)s->st.va_free, (unsigned long long)n.st.va_free,
			(unsigned long long)s->st.mappings, (unsigned long long)n.st.mappings,
			(unsigned long long)s->st.pending, (unsigned long long)n.st.pending,
			(unsigned long long)s->st.mapped_pages, (unsigned long long)n.st.mapped_pages);
	if (n.st.pt_pages > s->st.pt_pages || n.u.pt_pages > s->u.pt_pages ||
	    n.u.alloc_pages != s->u.alloc_pages ||
	    n.u.mapped_pages != s->u.mapped_pages)
		vf_fail("failed with %d but kept VRAM: table pages %llu -> %llu (GPU %llu -> %llu), "
			"free %llu -> %llu (mapped pages may be parked), alloc %llu -> %llu, "
			"mapped %llu -> %llu", r,
			(unsigned long long)s->st.pt_pages, (unsigned long long)n.st.pt_pages,
			(unsigned long long)s->u.pt_pages, (unsigned long long)n.u.pt_pages,
			(unsigned long long)s->u.free_pages, (unsigned long long)n.u.free_pages,
			(unsigned long long)s->u.alloc_pages, (unsigned long long)n.u.alloc_pages,
			(unsigned long long)s->u.mapped_pages, (unsigned long long)n.u.mapped_pages);
}

/* ---- checks of translations ---------------------------------------------------------- */

FUZZ_NOCOV static bool is_page_size(uint64_t s)
{
	return s == PAGE || s == (64ull << 10) || s == (2ull << 20) || s == (512ull << 20);
}

/* va (page aligned) must translate as the model says, both in vmmfs's
 * walker and in the GPU's MMU. */
FUZZ_NOCOV static void check_va(struct ctx *x, struct mvmm *mv, uint64_t va)
{
	const struct model_map *m = model_find(mv, va);
	struct vmmfs_lookup lk;
	struct vmmfs_hw_translation hw;
	uint64_t off = (va * 0x9e37u) & (PAGE - 8); /* some byte offset in the page */
	int r;

	r = vmmfs_vmm_lookup(mv->vmm, va + off, &lk);
	if (r)
		vf_fail("lookup of VA 0x%llx failed: %d", (unsigned long long)(va + off), r);
	r = vmmfs_gpu_hw_translate(x->c->gpu, mv->pdb, va + off, &hw);
	if (r)
		vf_fail("GPU translation of VA 0x%llx failed: %d", (unsigned long long)(va + off), r);
	if (lk.state != VMMFS_LOOKUP_NO_TABLE && lk.entry_addr)
		remember_pt(x, lk.entry_addr / PAGE);

	if (!m) {
		const struct model_map *q = NULL;

		for (size_t i = 0; i < mv->nquar && !q; i++)
			if (va >= mv->quar[i].va && va - mv->quar[i].va < mv->quar[i].npages * PAGE)
				q = &mv->quar[i];
		/* a quarantined range: its entries are cleared, but the GPU's
		 * TLB or directory cache may still reach what they said (that
		 * is why VA, tables and pages are withheld) */
		if (q && hw.result == VMMFS_HW_OK &&
		    (hw.read_only != q->ro ||
		     hw.pa != model_pfn(q, (va - q->va) / PAGE) * PAGE + off))
			vf_fail("quarantined VA 0x%llx: the GPU translates it to PA 0x%llx%s, which its "
				"mapping never said", (unsigned long long)va, (unsigned long long)hw.pa,
				hw.from_tlb ? " from its TLB" : "");
		if (q && hw.result == VMMFS_HW_OK)
			hw.result = VMMFS_HW_FAULT;
		if (lk.state != VMMFS_LOOKUP_UNMAPPED && lk.state != VMMFS_LOOKUP_NO_TABLE)
			vf_fail("VA 0x%llx is mapped by no one, lookup says state %d (PA 0x%llx, %s)",
				(unsigned long long)va, (int)lk.state, (unsigned long long)lk.pa,
				lk.level ? lk.level : "?");
		if (hw.result != VMMFS_HW_FAULT)
			vf_fail("VA 0x%llx is mapped by no one, the GPU translates it (result %d, PA "
				"0x%llx, page 0x%llx%s)", (unsigned long long)va, (int)hw.result,
				(unsigned long long)hw.pa, (unsigned long long)hw.page_size,
				hw.from_tlb ? ", from its TLB" : "");
		return;
	}

	uint64_t idx = (va - m->va) / PAGE;
	uint64_t pa = model_pfn(m, idx) * PAGE + off;

	if (lk.state != VMMFS_LOOKUP_MAPPED || lk.pa != pa || lk.read_only != m->ro)
		vf_fail("VA 0x%llx (page %llu of the mapping at 0x%llx): lookup says state %d PA "
			"0x%llx %s, expected PA 0x%llx %s", (unsigned long long)(va + off),
			(unsigned long long)idx, (unsigned long long)m->va, (int)lk.state,
			(unsigned long long)lk.pa, lk.read_only ? "ro" : "rw", (unsigned long long)pa,
			m->ro ? "ro" : "rw");
	if (hw.result != VMMFS_HW_OK || hw.pa != pa || hw.read_only != m->ro)
		vf_fail("VA 0x%llx (page %llu of the mapping at 0x%llx): the GPU says result %d PA "
			"0x%llx %s%s (%s), expected PA 0x%llx %s", (unsigned long long)(va + off),
			(unsigned long long)idx, (unsigned long long)m->va, (int)hw.result,
			(unsigned long long)hw.pa, hw.read_only ? "ro" : "rw",
			hw.from_tlb ? " from its TLB" : "", hw.reason, (unsigned long long)pa,
			m->ro ? "ro" : "rw");
	if (!is_page_size(lk.page_size) || lk.page_size != hw.page_size)
		vf_fail("VA 0x%llx: lookup says page size 0x%llx, the GPU 0x%llx",
			(unsigned long long)va, (unsigned long long)lk.page_size,
			(unsigned long long)hw.page_size);
	if (lk.page_size > PAGE) {
		uint64_t ps = lk.page_size, bva = va & ~(ps - 1);
		uint64_t bidx = (bva - m->va) / PAGE, n = ps / PAGE;
		const struct run *run;

		if (m->small_only)
			vf_fail("VA 0x%llx: a page of 0x%llx bytes in a small-pages-only mapping",
				(unsigned long long)va, (unsigned long long)ps);
		if (bva < m->va || bidx + n > m->npages)
			vf_fail("VA 0x%llx: its page of 0x%llx bytes at 0x%llx reaches beyond its "
				"mapping (0x%llx, %llu pages)", (unsigned long long)va,
				(unsigned long long)ps, (unsigned long long)bva,
				(unsigned long long)m->va, (unsigned long long)m->npages);
		run = model_run(m, bidx);
		if (bidx + n > run->idx + run->count || (model_pfn(m, bidx) * PAGE) % ps)
			vf_fail("VA 0x%llx: a page of 0x%llx bytes at 0x%llx over PFNs that are not "
				"one aligned run (first 0x%llx)", (unsigned long long)va,
				(unsigned long long)ps, (unsigned long long)bva,
				(unsigned long long)model_pfn(m, bidx));
	}
}

/* Sampled pages of every mapping, the prepared ops and the recent holes. */
FUZZ_NOCOV static void check_translations(struct ctx *x, struct mvmm *mv)
{
	if (x->gone)
		return;   /* every lookup fails with -ENODEV */
	for (size_t i = 0; i < mv->nquar; i++) {
		check_va(x, mv, mv->quar[i].va);
		check_va(x, mv, mv->quar[i].va + (mv->quar[i].npages - 1) * PAGE);
	}
	for (size_t i = 0; i < mv->nmaps; i++) {
		const struct model_map *m = &mv->maps[i];

		check_va(x, mv, m->va);
		if (m->npages > 1)
			check_va(x, mv, m->va + (m->npages - 1) * PAGE);
		if (m->npages > 2)
			check_va(x, mv, m->va + (rng_next(x) % m->npages) * PAGE);
		for (size_t k = 1; k < m->nruns && k < 4; k++)
			check_va(x, mv, m->va + m->runs[k].idx * PAGE);
		/* just outside, when free */
		if (m->va >= PAGE && !model_find(mv, m->va - PAGE))
			check_va(x, mv, m->va - PAGE);
		if (m->va + m->npages * PAGE < mv->va_size &&
		    !model_find(mv, m->va + m->npages * PAGE))
			check_va(x, mv, m->va + m->npages * PAGE);
	}
	for (size_t i = 0; i < mv->nops; i++) {
		check_va(x, mv, mv->ops[i].va);
		check_va(x, mv, mv->ops[i].va + (mv->ops[i].npages - 1) * PAGE);
	}
	for (size_t i = 0; i < mv->nholes; i++) {
		check_va(x, mv, mv->holes[i].va);
		check_va(x, mv, mv->holes[i].va + (mv->holes[i].npages - 1) * PAGE);
	}
}

/* A VA range the current step changed or tried (checked after it). */
FUZZ_NOCOV static void touch(struct ctx *x, struct mvmm *mv, uint64_t va, uint64_t npages)
{
	va &= ~(PAGE - 1);
	if (x->ntouched == MAX_TOUCHED || !npages || va >= mv->va_size)
		return;
	if (npages > (mv->va_size - va) / PAGE)
		npages = (mv->va_size - va) / PAGE;
	x->touched[x->ntouched].mv = mv;
	x->touched[x->ntouched].va = va;
	x->touched[x->ntouched++].npages = npages;
}

/* The first, last and a random page of a range, the starts of the first
 * runs of a mapping there, and the pages just outside. */
FUZZ_NOCOV static void check_span(struct ctx *x, struct mvmm *mv, uint64_t va, uint64_t n)
{
	const struct model_map *m = model_find(mv, va);

	check_va(x, mv, va);
	if (n > 1)
		check_va(x, mv, va + (n - 1) * PAGE);
	if (n > 2)
		check_va(x, mv, va + (rng_next(x) % n) * PAGE);
	if (m && m->va == va)
		for (size_t k = 1; k < m->nruns && k < 4; k++)
			check_va(x, mv, m->va + m->runs[k].idx * PAGE);
	if (va >= PAGE)
		check_va(x, mv, va - PAGE);
	if (va + n * PAGE < mv->va_size)
		check_va(x, mv, va + n * PAGE);
}

FUZZ_NOCOV static void check_stats(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_vmm_stats st;
	uint64_t pages = 0, busy = 0;

	vmmfs_vmm_get_stats(mv->vmm, &st);
	for (size_t i = 0; i < mv->nmaps; i++)
		pages += mv->maps[i].npages;
	for (size_t i = 0; i < mv->nops; i++)
		busy += mv->ops[i].npages;
	busy = (busy + pages + mv->quar_pages) * PAGE;
	if (st.mappings != mv->nmaps || st.pending != mv->nops || st.mapped_pages != pages)
		vf_fail("stats: %llu mappings, %llu pending, %llu pages mapped; the model has %zu, "
			"%zu, %llu", (unsigned long long)st.mappings, (unsigned long long)st.pending,
			(unsigned long long)st.mapped_pages, mv->nmaps, mv->nops,
			(unsigned long long)pages);
	if (st.va_size != mv->va_size || st.va_free > st.va_size - busy ||
	    (!busy && st.va_free != st.va_size))
		vf_fail("stats: va_free 0x%llx of 0x%llx, but 0x%llx bytes are mapped or prepared",
			(unsigned long long)st.va_free, (unsigned long long)st.va_size,
			(unsigned long long)busy);
	if (st.tlb_flushes != mv->flushes)
		vf_fail("stats: %llu TLB flushes, the model counts %llu",
			(unsigned long long)st.tlb_flushes, (unsigned long long)mv->flushes);
	if (st.quarantined_pages != mv->quar_pages)
		vf_fail("stats: %llu quarantined pages, the model has %llu after the hardware errors",
			(unsigned long long)st.quarantined_pages, (unsigned long long)mv->quar_pages);
	if (st.pt_pages < 1)
		vf_fail("stats: no page-table page, not even the root");
}

/* ---- full check: the whole tree against the model ------------------------------------ */

struct dump_ctx {
	struct ctx *x;
	struct mvmm *mv;
	uint64_t bytes;
};

FUZZ_NOCOV static int dump_cb(void *arg, const struct vmmfs_pt_entry *e)
{
	struct dump_ctx *d = arg;
	struct ctx *x = d->x;

	if (e->kind == VMMFS_PT_SPARSE)
		vf_fail("dump: a sparse entry at VA 0x%llx (%s), vmmfs never makes one",
			(unsigned long long)e->va_first, e->level);
	if (e->kind == VMMFS_PT_TABLE) {
		uint64_t pfn = e->addr / PAGE;
		if (pfn >= x->c->vram_pages || !vram_is_pt(x->c->gpu->vram, pfn))
			vf_fail("dump: %s entry %u points at 0x%llx, which is no page-table page",
				e->level, e->first, (unsigned long long)e->addr);
		if (x->c->refs[pfn])
			vf_fail("dump: table at 0x%llx is a page mapped %u times",
				(unsigned long long)e->addr, x->c->refs[pfn]);
		return 0;
	}
	if (e->kind != VMMFS_PT_PAGE)
		vf_fail("dump: unknown entry kind %d", (int)e->kind);
	if (!is_page_size(e->page_size) || e->va_last < e->va_first ||
	    (e->va_last - e->va_first + 1) % e->page_size || e->va_first % e->page_size ||
	    e->addr % e->page_size)
		vf_fail("dump: leaf VA 0x%llx-0x%llx page 0x%llx PA 0x%llx is malformed",
			(unsigned long long)e->va_first, (unsigned long long)e->va_last,
			(unsigned long long)e->page_size, (unsigned long long)e->addr);
	for (uint64_t va = e->va_first; va <= e->va_last && va >= e->va_first;) {
		const struct model_map *m = model_find(d->mv, va);
		const struct run *run;
		uint64_t idx, n;

		if (!m)
			vf_fail("dump: VA 0x%llx is mapped (leaf 0x%llx-0x%llx) but not in the model",
				(unsigned long long)va, (unsigned long long)e->va_first,
				(unsigned long long)e->va_last);
		idx = (va - m->va) / PAGE;
		run = model_run(m, idx);
		if (model_pfn(m, idx) * PAGE != e->addr + (va - e->va_first) || m->ro != e->read_only)
			vf_fail("dump: VA 0x%llx maps PA 0x%llx %s, the model says 0x%llx %s",
				(unsigned long long)va,
				(unsigned long long)(e->addr + (va - e->va_first)),
				e->read_only ? "ro" : "rw",
				(unsigned long long)(model_pfn(m, idx) * PAGE), m->ro ? "ro" : "rw");
		n = run->idx + run->count - idx;
		if (n > (e->va_last - va) / PAGE + 1)
			n = (e->va_last - va) / PAGE + 1;
		d->bytes += n * PAGE;
		va += n * PAGE;
	}
	return 0;
}

FUZZ_NOCOV static void full_check(struct ctx *x, struct mvmm *mv)
{
	struct dump_ctx d = { .x = x, .mv = mv };
	uint64_t pages = 0;
	char err[256] = "";
	int r;

	if (x->gone) {   /* nothing can be read from VRAM */
		check_vram_sum(x);
		check_stats(x, mv);
		return;
	}
	r = vmmfs_vmm_check(mv->vmm, err, sizeof(err));
	if (r)
		vf_fail("vmmfs_vmm_check: %d: %s", r, err);
	r = vmmfs_vmm_dump(mv->vmm, dump_cb, &d);
	if (r)
		vf_fail("dump failed: %d", r);
	for (size_t i = 0; i < mv->nmaps; i++) {
		pages += mv->maps[i].npages;
		check_owners(x, &mv->maps[i]);
	}
	if (d.bytes != pages * PAGE)
		vf_fail("dump shows 0x%llx bytes mapped, the model 0x%llx",
			(unsigned long long)d.bytes, (unsigned long long)(pages * PAGE));
	check_vram_sum(x);
	check_stats(x, mv);
	check_translations(x, mv);
}

/* ---- argument decoding ----------------------------------------------------------------- */

/* Mostly small sizes (they are fast and reach most paths); 64 KiB, 2 MiB
 * and 512 MiB multiples and large ones when the input asks. */
static uint64_t spec_npages(struct ctx *x, bool allow_huge)
{
	uint8_t b = in_u8(x);

	if (b < 160)
		return b & 31;                                  /* 0..31, 0 is an error */
	if (b < 208)
		return 16ull * ((b & 15) + 1);                  /* 64 KiB .. 1 MiB */
	if (b < 240)
		return 512ull * ((b & 1) + 1) + in_u8(x) - 128;   /* around 2 or 4 MiB */
	if (allow_huge && (b & 1))
		return 1ull << (17 + (b >> 1) % 3);             /* 512 MiB .. 2 GiB of VA */
	if ((b & 2) && x->c->vram_pages >= 131072)
		return 131072;                                  /* 512 MiB */
	return 1 + (in_u16(x) & 0x3fff);                        /* up to 64 MiB */
}

static uint64_t spec_va(struct ctx *x, struct mvmm *mv)
{
	static const unsigned int shifts[8] = { 16, 21, 29, 30, 38, 47, 48, 56 };
	uint8_t b = in_u8(x);
	uint64_t va, mask = mv->va_size - 1;

	switch (b & 7) {
	case 0:
		return (uint64_t)in_u8(x) * PAGE;
	case 1:
		va = (uint64_t)(in_u8(x) + 1) << shifts[(b >> 3) & 7];
		return (va + (uint64_t)(int64_t)(int8_t)in_u8(x) * PAGE) & mask;
	case 2: {
		size_t n = mv->nmaps + mv->nops, i = in_u8(x);
		int64_t d = (int8_t)in_u8(x);
		if (!n)
			return 0;
		i %= n;
		if (i < mv->nmaps)
			va = mv->maps[i].va + (b & 8 ? mv->maps[i].npages * PAGE : 0);
		else
			va = mv->ops[i - mv->nmaps].va + (b & 8 ? mv->ops[i - mv->nmaps].npages * PAGE : 0);
		return va + (uint64_t)d * PAGE;
	}
	case 3:
		return mv->va_size - (uint64_t)(in_u8(x) + 1) * PAGE;
	case 4:
		return in_u64(x);
	case 5:
		return in_u64(x) & mask & ~(PAGE - 1);
	case 6:
		return ((uint64_t)in_u16(x) << 21 | (uint64_t)(in_u8(x) & 31) << 16) & mask;
	default:
		return ((uint64_t)in_u8(x) << 29) & mask;
	}
}

/* pa_hint: none, or an address aligned to 4K..2M. */
static uint64_t spec_hint(struct ctx *x, uint8_t b)
{
	uint64_t pfn = in_u16(x);

	if (b & 4)
		return VMMFS_NO_PA_HINT;
	return (b & 8 ? pfn << 9 : pfn) * PAGE;
}

static const struct vmmfs_va_placement *spec_place(struct ctx *x, struct mvmm *mv, uint64_t npages,
						   struct vmmfs_va_placement *pl)
{
	uint8_t b = in_u8(x);

	memset(pl, 0, sizeof(*pl));
	pl->pa_hint = VMMFS_NO_PA_HINT;
	switch (b & 3) {
	case 0:
		return NULL;
	case 1:
		pl->kind = VMMFS_VA_ANY;
		pl->pa_hint = spec_hint(x, b);
		return pl;
	case 2:
		pl->kind = VMMFS_VA_EXACT;
		pl->start = spec_va(x, mv);
		return pl;
	default:
		pl->kind = VMMFS_VA_RANGE;
		pl->start = spec_va(x, mv);
		switch ((b >> 4) & 7) {
		case 0: pl->end = pl->start + npages * PAGE; break;
		case 1: pl->end = pl->start + (npages + in_u8(x)) * PAGE; break;
		case 2: pl->end = pl->start + (npages - 1) * PAGE; break;
		case 3: pl->end = spec_va(x, mv); break;
		case 4: pl->end = pl->start + (1ull << (21 + in_u8(x) % 24)); break;
		case 5: pl->end = pl->start + (npages + 512) * PAGE; break;
		case 6: pl->end = pl->start + 2 * npages * PAGE + (64ull << 10); break;
		default: pl->end = pl->start + (1ull << 30); break;
		}
		pl->pa_hint = spec_hint(x, b);
		return pl;
	}
}

/* READ_ONLY, SMALL_ONLY, CLAIM (map_pages only: an error elsewhere), and
 * now and then a flag that does not exist. */
static unsigned int spec_flags(struct ctx *x)
{
	uint8_t b = in_u8(x);
	unsigned int f = b & (VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY | VMMFS_MAP_CLAIM);

	if ((b & 0xe0) == 0xe0)
		f |= 0x8u << (b & 7);
	return f;
}

#define MAP_FLAGS (VMMFS_MAP_READ_ONLY | VMMFS_MAP_SMALL_ONLY)

/* A PFN that holds a page table now, or none. */
static bool pick_pt(struct ctx *x, uint8_t sel, uint64_t *pfn)
{
	uint64_t cand[MAX_PT_KNOWN + MAX_VMMS];
	size_t n = 0;

	for (int i = 0; i < x->nvmm; i++)
		cand[n++] = x->v[i].pdb / PAGE;
	for (size_t i = 0; i < x->npt_known; i++)
		if (vram_is_pt(x->c->gpu->vram, x->pt_known[i]))
			cand[n++] = x->pt_known[i];
	if (!n)
		return false;
	*pfn = cand[sel % n];
	return true;
}

/* Fills pfns[0..n) as the input says (its loops are per page: no
 * coverage, which the library's code gives the fuzzer anyway). */
FUZZ_NOCOV static void spec_pfns(struct ctx *x, struct mvmm *mv, uint64_t *pfns, uint64_t n)
{
	const uint64_t vp = x->c->vram_pages;
	uint8_t b = in_u8(x);
	unsigned int kind = (b & 15) % 10;
	uint64_t base = (uint64_t)in_u16(x) << (b & 0x10 ? 4 : 0), align = 1, pos;
	uint64_t p;

	if (n > 16384 && (kind == 3 || kind == 9))
		kind = 0;   /* a PTE per page of a huge mapping: slow, nothing new */
	switch (kind) {
	case 1: align = 16; break;
	case 2: align = (b & 0x20) ? 131072 : 512; break;
	default: break;
	}
	base %= vp;
	if (vp >= n)
		base %= vp - n + 1;
	base -= base % align;
	for (uint64_t i = 0; i < n; i++)
		pfns[i] = (base + i) % vp;
	if (!n)
		return;
	pos = in_u16(x) % n;
	switch (kind) {
	case 3:
		x->rng ^= (uint64_t)in_u16(x) << 17 | 1;
		for (uint64_t i = 0; i < n; i++)
			pfns[i] = rng_next(x) % vp;
		break;
	case 4:
		for (uint64_t i = 0; i < n; i++)
			pfns[i] = base;
		break;
	case 5: {
		uint64_t b2 = in_u16(x) % vp;
		for (uint64_t i = pos; i < n; i++)
			pfns[i] = (b2 + i - pos) % vp;
		break;
	}
	case 6:
		pfns[pos] = (b & 0x40) ? UINT64_MAX - in_u8(x) : vp + in_u8(x);
		break;
	case 7:
		if (pick_pt(x, in_u8(x), &p))
			pfns[pos] = p;
		break;
	case 8: {
		size_t nm = mv->nmaps;
		if (nm) {
			const struct model_map *m = &mv->maps[in_u8(x) % nm];
			for (uint64_t i = 0; i < n; i++)
				pfns[i] = model_pfn(m, i % m->npages);
		}
		break;
	}
	case 9:
		for (uint64_t i = 1; i < n; i += 2)
			pfns[i] = (base + n + i) % vp;
		break;
	default:
		break;
	}
}

/* Errors the PFNs and flags of an execute allow. -EOVERFLOW: a page would
 * be mapped more than VRAM_MAP_MAX times at once (core/vram.h; vmm.h does
 * not list this error yet). */
FUZZ_NOCOV static unsigned int pfn_errors(struct ctx *x, const uint64_t *pfns, uint64_t n, unsigned int flags)
{
	uint32_t *refs = x->c->refs;
	unsigned int e = 0;

	if (flags & ~MAP_FLAGS)
		e |= E_INVAL;
	uint32_t most = 0;

	/* a page the model maps is no table (check_owners sees to that) */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = pfns[i];

		if (p >= x->c->vram_pages)
			e |= E_RANGE;
		else if (refs[p] > most)
			most = refs[p];
		else if (!refs[p] && vram_is_pt(x->c->gpu->vram, p))
			e |= E_ACCES;
	}
	if (most + n <= VRAM_MAP_MAX)
		return e;   /* no page can reach the limit */
	for (uint64_t i = 0; i < n; i++)
		if (pfns[i] < x->c->vram_pages && (refs[pfns[i]] || !vram_is_pt(x->c->gpu->vram, pfns[i])) &&
		    ++refs[pfns[i]] > VRAM_MAP_MAX)   /* undone below */
			e |= E_OVERFLOW;
	/* a table's count stayed 0; every other page's is at least 1 now */
	for (uint64_t i = 0; i < n; i++)
		if (pfns[i] < x->c->vram_pages && refs[pfns[i]])
			refs[pfns[i]]--;
	return e;
}

/* Pages mapped or prepared in mv. */
FUZZ_NOCOV static uint64_t space_pages(const struct mvmm *mv)
{
	uint64_t n = 0;

	for (size_t i = 0; i < mv->nmaps; i++)
		n += mv->maps[i].npages;
	for (size_t i = 0; i < mv->nops; i++)
		n += mv->ops[i].npages;
	return n;
}

/* Errors a placement allows for npages. */
FUZZ_NOCOV static unsigned int place_errors(struct mvmm *mv, uint64_t npages,
				 const struct vmmfs_va_placement *pl)
{
	uint64_t size = npages * PAGE;
	unsigned int e = 0;

	if (!npages)
		return E_INVAL;
	if (npages > mv->va_size / PAGE)
		return E_RANGE | E_NOSPC;
	if (!pl || pl->kind == VMMFS_VA_ANY)
		return va_gap(mv, 0, mv->va_size, size) ? 0 : E_NOSPC;
	if (pl->kind == VMMFS_VA_EXACT) {
		if (pl->start % PAGE)
			e |= E_INVAL;
		if (pl->start >= mv->va_size || size > mv->va_size - pl->start)
			e |= E_RANGE;
		if (!e && va_busy(mv, pl->start, npages))
			e |= E_EXIST;
		return e;
	}
	if (pl->start % PAGE || pl->end % PAGE || pl->end <= pl->start)
		e |= E_INVAL;
	if (pl->end > mv->va_size)
		e |= E_RANGE;
	if (!e && !va_gap(mv, pl->start, pl->end, size))
		e |= E_NOSPC;
	return e;
}

/* The VA a successful placement gave. */
FUZZ_NOCOV static void check_placed(struct mvmm *mv, uint64_t va, uint64_t npages,
			 const struct vmmfs_va_placement *pl)
{
	if (va % PAGE || va >= mv->va_size || npages * PAGE > mv->va_size - va)
		vf_fail("placed at VA 0x%llx (%llu pages): unaligned or beyond the address space",
			(unsigned long long)va, (unsigned long long)npages);
	if (pl && pl->kind == VMMFS_VA_EXACT && va != pl->start)
		vf_fail("asked for VA 0x%llx exactly, placed at 0x%llx",
			(unsigned long long)pl->start, (unsigned long long)va);
	if (pl && pl->kind == VMMFS_VA_RANGE &&
	    (va < pl->start || va + npages * PAGE > pl->end))
		vf_fail("asked for VA range 0x%llx-0x%llx, placed at 0x%llx + %llu pages",
			(unsigned long long)pl->start, (unsigned long long)pl->end,
			(unsigned long long)va, (unsigned long long)npages);
	if (va_busy(mv, va, npages))
		vf_fail("placed at VA 0x%llx + %llu pages, over a mapping or a prepared op",
			(unsigned long long)va, (unsigned long long)npages);
}

/* With ANY placement and a PA hint, the VA is congruent to the hint modulo
 * the largest page size a mapping of that size can use (vmm.h). */
FUZZ_NOCOV static void check_congruent(struct ctx *x, uint64_t va, uint64_t npages,
				       const struct vmmfs_va_placement *pl, uint64_t hint)
{
	uint64_t size = npages * PAGE, ps = 0;

	if (pl && pl->kind != VMMFS_VA_ANY)
		return;
	if (pl && pl->pa_hint != VMMFS_NO_PA_HINT)
		hint = pl->pa_hint;
	if (hint == VMMFS_NO_PA_HINT)
		return;
	if (vmmfs_gpu_get_info(x->c->gpu)->big_pages_512m && size >= (512ull << 20))
		ps = 512ull << 20;
	else if (size >= (2ull << 20))
		ps = 2ull << 20;
	else if (size >= (64ull << 10))
		ps = 64ull << 10;
	if (ps && (va - hint) % ps)
		vf_fail("placed anywhere at VA 0x%llx (%llu pages) for PA hint 0x%llx: not congruent "
			"modulo 0x%llx", (unsigned long long)va, (unsigned long long)npages,
			(unsigned long long)hint, (unsigned long long)ps);
}

/* ---- fault injection --------------------------------------------------------------------- */

static void fault_arm(struct ctx *x, uint64_t *count0)
{
	if (x->hw_fault) {
		/* a vanished GPU is closed at the end of the input; after a
		 * stuck invalidate, it is unless chip_fresh() */
		if (x->hw_fault & VMMFS_SIM_FAULT_VANISHED)
			x->c->dirty = true;
		vmmfs_sim_set_faults(x->c->gpu->sim, x->hw_fault);
	}
	vmmfs_fault_reset();
	if (x->fault_all)
		vmmfs_fault_fail_all(true);
	else if (x->fault_nth >= 0)
		vmmfs_fault_fail_nth((uint64_t)x->fault_nth);
	*count0 = vmmfs_fault_count();
}

/* Disarms; returns true when an allocation was made to fail. */
static bool fault_disarm(struct ctx *x, uint64_t count0)
{
	bool hit = x->fault_all ? vmmfs_fault_count() > count0 :
		   x->fault_nth >= 0 && vmmfs_fault_count() > count0 + (uint64_t)x->fault_nth;

	vmmfs_fault_reset();
	x->fault_all = false;
	x->fault_nth = -1;
	if (x->hw_fault & VMMFS_SIM_FAULT_VANISHED)
		x->gone = true;      /* and it stays gone */
	else if (x->hw_fault)
		vmmfs_sim_set_faults(x->c->gpu->sim, 0);
	x->hw_fault = 0;
	return hit;
}

/* Hardware errors the armed simulator fault allows for a call that
 * issues a TLB invalidate (tlb) or touches the GPU at all. */
static unsigned int hw_errors(const struct ctx *x, bool tlb)
{
	if (x->gone || (x->hw_fault & VMMFS_SIM_FAULT_VANISHED))
		return E_NODEV;
	if (tlb && (x->hw_fault & VMMFS_SIM_FAULT_STUCK_INVALIDATE))
		return E_TIMEDOUT;
	return 0;
}

/* ---- operations ---------------------------------------------------------------------------- */

static void add_hole(struct mvmm *mv, uint64_t va, uint64_t npages)
{
	mv->holes[mv->hole_next].va = va;
	mv->holes[mv->hole_next].npages = npages;
	mv->hole_next = (mv->hole_next + 1) % MAX_HOLES;
	if (mv->nholes < MAX_HOLES)
		mv->nholes++;
}

/* A new mapping m (runs from pfns) joined the model: check what the VMM
 * says about it. */
FUZZ_NOCOV static void model_add_map(struct ctx *x, struct mvmm *mv, struct vmmfs_mapping *m,
			  const uint64_t *pfns, uint64_t npages, unsigned int flags, bool allocated,
			  const struct vmmfs_va_placement *pl, uint64_t want_va)
{
	struct model_map *mm = &mv->maps[mv->nmaps];
	struct vmmfs_mapping_info info;

	memset(mm, 0, sizeof(*mm));
	mm->m = m;
	mm->npages = npages;
	mm->ro = flags & VMMFS_MAP_READ_ONLY;
	mm->small_only = flags & VMMFS_MAP_SMALL_ONLY;
	mm->allocated = allocated;
	mm->runs = make_runs(pfns, npages, &mm->nruns);
	vmmfs_mapping_get_info(m, &info);
	mm->va = info.va;
	if (info.npages != npages || info.size != npages * PAGE || info.read_only != mm->ro ||
	    info.allocated != allocated || info.nruns != mm->nruns)
		vf_fail("mapping info: %llu pages, size 0x%llx, %s, allocated %d, %llu runs; expected "
			"%llu pages, %s, allocated %d, %zu runs", (unsigned long long)info.npages,
			(unsigned long long)info.size, info.read_only ? "ro" : "rw", info.allocated,
			(unsigned long long)info.nruns, (unsigned long long)npages,
			mm->ro ? "ro" : "rw", allocated, mm->nruns);
	if (info.pages_4k + 16 * info.pages_64k + 512 * info.pages_2m +
	    131072 * info.pages_512m != npages)
		vf_fail("mapping info: %llu 4K + %llu 64K + %llu 2M + %llu 512M PTEs do not make %llu "
			"pages", (unsigned long long)info.pages_4k, (unsigned long long)info.pages_64k,
			(unsigned long long)info.pages_2m, (unsigned long long)info.pages_512m,
			(unsigned long long)npages);
	if (mm->small_only && info.pages_4k != npages)
		vf_fail("small-pages-only mapping with big PTEs");
	check_placed(mv, mm->va, npages, pl);
	if (want_va != UINT64_MAX && mm->va != want_va)
		vf_fail("executed at VA 0x%llx, prepared at 0x%llx", (unsigned long long)mm->va,
			(unsigned long long)want_va);
	refs_add(x, mm, +1);
	mv->nmaps++;
	check_owners_some(x, mm);
}

struct run_walk {
	const struct model_map *mm;
	uint64_t idx;
	size_t k;
};

FUZZ_NOCOV static int run_cb(void *arg, uint64_t first, uint64_t count)
{
	struct run_walk *w = arg;
	const struct run *r;

	if (w->k >= w->mm->nruns)
		vf_fail("for_each_run: more runs than the %zu expected", w->mm->nruns);
	r = &w->mm->runs[w->k++];
	if (r->pfn != first || r->count != count)
		vf_fail("for_each_run: run %zu is 0x%llx+%llu, expected 0x%llx+%llu", w->k - 1,
			(unsigned long long)first, (unsigned long long)count,
			(unsigned long long)r->pfn, (unsigned long long)r->count);
	return 0;
}

FUZZ_NOCOV static void check_runs(const struct model_map *mm)
{
	struct run_walk w = { .mm = mm };
	int r = vmmfs_mapping_for_each_run(mm->m, run_cb, &w);

	if (r || w.k != mm->nruns)
		vf_fail("for_each_run returned %d after %zu of %zu runs", r, w.k, mm->nruns);
}

struct collect {
	uint64_t *pfns;
	uint64_t n, cap;
};

FUZZ_NOCOV static int collect_cb(void *arg, uint64_t first, uint64_t count)
{
	struct collect *c = arg;

	if (count == 0 || count > c->cap - c->n)
		vf_fail("for_each_run: a run of %llu pages after %llu of %llu",
			(unsigned long long)count, (unsigned long long)c->n,
			(unsigned long long)c->cap);
	for (uint64_t i = 0; i < count; i++)
		c->pfns[c->n++] = first + i;
	return 0;
}

/* ---- hardware errors: the quarantine ------------------------------------------------------ */

/* A call that failed with r: did it send a mapping to quarantine? It must
 * have exactly when it failed with a hardware error after its point of no
 * return; that mapping is the newest of the VMM's quarantine list (its
 * VA was not known to the caller). Returns true when it did. */
FUZZ_NOCOV static bool quarantine_new(struct ctx *x, struct mvmm *mv, const struct snap *s, int r,
				      unsigned int flags, bool allocated, uint64_t want_va,
				      uint64_t want_n)
{
	struct vmmfs_vmm_stats st;
	struct vmmfs_mapping *m;
	struct model_map *q;
	struct collect col;
	uint64_t n;

	vmmfs_vmm_get_stats(mv->vmm, &st);
	n = st.quarantined_pages - s->st.quarantined_pages;
	if (!n)
		return false;
	if (r != -ETIMEDOUT && r != -ENODEV)
		vf_fail("failed with %d (no hardware error) and quarantined %llu pages", r,
			(unsigned long long)n);
	m = mv->vmm->quar_maps;
	if (!m || m->npages != n || (want_n && n != want_n) ||
	    (want_va != UINT64_MAX && m->va != want_va) ||
	    (m->state != VMM_MAP_QUAR_HELD && m->state != VMM_MAP_QUAR_MAPPED))
		vf_fail("quarantine grew by %llu pages, its newest mapping is %llu pages at VA "
			"0x%llx (expected %llu at 0x%llx)", (unsigned long long)n,
			m ? (unsigned long long)m->npages : 0ull, m ? (unsigned long long)m->va : 0ull,
			(unsigned long long)want_n, (unsigned long long)want_va);
	if (m->state == VMM_MAP_QUAR_MAPPED && r != -ENODEV)
		vf_fail("a mapping left in place after %d; only a vanished device may do that", r);
	if (mv->nquar == MAX_QUAR)
		vf_fail("fuzzer: quarantine model full");
	col.pfns = malloc(n * sizeof(*col.pfns));
	if (!col.pfns)
		vf_fail("out of memory for %llu PFNs", (unsigned long long)n);
	col.n = 0;
	col.cap = n;
	if (vmmfs_mapping_for_each_run(m, collect_cb, &col) || col.n != n)
		vf_fail("quarantined mapping: for_each_run gave %llu of %llu pages",
			(unsigned long long)col.n, (unsigned long long)n);
	q = &mv->quar[mv->nquar++];
	memset(q, 0, sizeof(*q));
	q->va = m->va;
	q->npages = n;
	q->ro = flags & VMMFS_MAP_READ_ONLY;
	q->allocated = allocated;
	q->held = m->state == VMM_MAP_QUAR_HELD;
	q->runs = make_runs(col.pfns, n, &q->nruns);
	free(col.pfns);
	if (m->read_only != q->ro || m->allocated != allocated)
		vf_fail("quarantined mapping: %s, allocated %d; expected %s, %d",
			m->read_only ? "ro" : "rw", m->allocated, q->ro ? "ro" : "rw", allocated);
	refs_add(x, q, +1);
	check_owners_some(x, q);
	mv->quar_pages += n;
	vf_trace("    quarantined %llu pages at VA 0x%llx (%s)\n", (unsigned long long)n,
		 (unsigned long long)q->va, q->held ? "entries cleared" : "device gone");
	return true;
}

/* A live mapping that unmap sent to quarantine (pages and VA withheld). */
FUZZ_NOCOV static void quarantine_map(struct mvmm *mv, size_t i)
{
	if (mv->nquar == MAX_QUAR)
		vf_fail("fuzzer: quarantine model full");
	mv->quar[mv->nquar] = mv->maps[i];
	mv->quar[mv->nquar].held = true;
	mv->quar[mv->nquar].m = NULL;
	mv->quar_pages += mv->maps[i].npages;
	mv->nquar++;
	mv->maps[i] = mv->maps[--mv->nmaps];
}

/* May a call quarantine one more mapping in mv (and every live one still
 * find room when unmapped)? */
FUZZ_NOCOV static bool quar_room(const struct ctx *x, const struct mvmm *mv)
{
	return !(x->gone || x->hw_fault) || mv->nquar + mv->nmaps + 1 < MAX_QUAR;
}

/* Arms a simulator fault for the next operation: a TLB invalidate that
 * never completes (-ETIMEDOUT) or, one time in four, a device that
 * vanishes (-ENODEV from then on, for the rest of the input). */
static void op_hw(struct ctx *x)
{
	uint8_t b = in_u8(x);

	if (x->gone)
		return;
	x->hw_fault = (b & 3) == 3 ? VMMFS_SIM_FAULT_VANISHED : VMMFS_SIM_FAULT_STUCK_INVALIDATE;
	vf_trace("%d: next operation: %s\n", x->step,
		 x->hw_fault == VMMFS_SIM_FAULT_VANISHED ? "the device vanishes" :
		 "the TLB invalidate gets stuck");
}

/* ---- pins (vmmfs_gpu_vram_pin: crash recovery holds pages with them) ----------------------- */

FUZZ_NOCOV static void refs_run(struct ctx *x, uint64_t first, uint64_t count, int d)
{
	struct run r = { .idx = 0, .pfn = first, .count = count };
	struct model_map m = { .runs = &r, .nruns = 1, .npages = count };

	refs_add(x, &m, d);
	check_owners(x, &m);
}

FUZZ_NOCOV static unsigned int pin_errors(struct ctx *x, uint64_t first, uint64_t count)
{
	if (!count)
		return E_INVAL;
	if (first >= x->c->vram_pages || count > x->c->vram_pages - first)
		return E_RANGE;
	for (uint64_t p = first; p < first + count; p++) {
		if (!x->c->refs[p] && vram_is_pt(x->c->gpu->vram, p))
			return E_ACCES;
		if (x->c->refs[p] >= VRAM_MAP_MAX)
			return E_OVERFLOW;
	}
	return 0;
}

/* Pins a run (somewhere, over a table, over a mapping, at the end of
 * VRAM) or unpins one. */
static void op_pin(struct ctx *x, struct mvmm *mv)
{
	uint8_t b = in_u8(x);
	uint64_t first = in_u16(x), count = in_u8(x) % 65, c0;
	struct vmmfs_vram_usage u0, u1;
	unsigned int must, may = 0;
	int r;

	x->what = "pin";
	if ((b & 1) && x->npins) {
		struct pin *p = &x->pins[first % x->npins];

		x->what = "unpin";
		vmmfs_gpu_vram_unpin(x->c->gpu, p->first, p->count);
		vf_trace("%d: unpin 0x%llx + %llu pages\n", x->step, (unsigned long long)p->first,
			 (unsigned long long)p->count);
		refs_run(x, p->first, p->count, -1);
		*p = x->pins[--x->npins];
		return;
	}
	switch ((b >> 1) & 3) {
	case 1:
		first = mv->pdb / PAGE + (first & 3);
		break;
	case 2:
		if (mv->nmaps)
			first = mv->maps[first % mv->nmaps].runs[0].pfn + (b >> 4);
		break;
	case 3:
		first = x->c->vram_pages - (first & 63);
		break;
	default:
		first <<= (b >> 3) & 3;
		break;
	}
	if (x->npins == MAX_PINS)
		return;
	must = pin_errors(x, first, count);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u0);
	may |= hw_errors(x, false);
	fault_arm(x, &c0);
	r = vmmfs_gpu_vram_pin(x->c->gpu, first, count);
	fault_disarm(x, c0);
	vf_trace("%d: pin 0x%llx + %llu pages -> %d\n", x->step, (unsigned long long)first,
		 (unsigned long long)count, r);
	check_result(r, must, may);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u1);
	if (r) {
		if (memcmp(&u0, &u1, sizeof(u0)))
			vf_fail("a pin that failed (%d) changed the VRAM usage", r);
		return;
	}
	x->pins[x->npins].first = first;
	x->pins[x->npins++].count = count;
	refs_run(x, first, count, +1);
	if (u1.mapped_pages != x->c->distinct)
		vf_fail("pin: %llu pages mapped, the model counts %llu",
			(unsigned long long)u1.mapped_pages, (unsigned long long)x->c->distinct);
}

static void op_prepare(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_va_placement plbuf;
	const struct vmmfs_va_placement *pl;
	struct vmmfs_map_op *op = NULL;
	struct snap s;
	uint64_t npages, c0;
	unsigned int must, may = 0;
	int r;

	char pbuf[96];

	x->what = "prepare";
	npages = spec_npages(x, true);
	pl = spec_place(x, mv, npages, &plbuf);
	if (mv->nops == MAX_OPS)
		return;
	must = place_errors(mv, npages, pl);
	if (npages > HUGE_MAX_PAGES || (!must && space_pages(mv) + npages > 2 * SPACE_MAX_PAGES))
		return;
	if (vram_short(x, npages, 0, NULL))
		may |= E_NOMEM;
	may |= hw_errors(x, false);
	take_snap(x, mv, &s);
	fault_arm(x, &c0);
	r = vmmfs_vmm_prepare_map(mv->vmm, npages, pl, &op);
	if (fault_disarm(x, c0))
		may |= E_NOMEM;
	vf_trace("%d: prepare %llu pages %s -> %d (va 0x%llx)\n", x->step,
		 (unsigned long long)npages, place_str(pl, pbuf, sizeof(pbuf)), r,
		 r ? 0ull : (unsigned long long)vmmfs_map_op_va(op));
	check_result(r, must, may);
	if (flushes_since(x, &s))
		vf_fail("prepare issued a TLB invalidate");
	if (r) {
		check_unchanged(x, mv, &s, r);
		if (pl && pl->kind != VMMFS_VA_ANY)
			touch(x, mv, pl->start, npages);
		return;
	}
	touch(x, mv, vmmfs_map_op_va(op), npages);
	if (vmmfs_map_op_npages(op) != npages)
		vf_fail("op of %llu pages says %llu", (unsigned long long)npages,
			(unsigned long long)vmmfs_map_op_npages(op));
	check_placed(mv, vmmfs_map_op_va(op), npages, pl);
	if (pl)
		check_congruent(x, vmmfs_map_op_va(op), npages, pl, VMMFS_NO_PA_HINT);
	mv->ops[mv->nops].op = op;
	mv->ops[mv->nops].va = vmmfs_map_op_va(op);
	mv->ops[mv->nops].npages = npages;
	mv->nops++;
}

static void op_abort_idx(struct ctx *x, struct mvmm *mv, size_t i)
{
	struct snap s;
	uint64_t f;

	x->what = "abort";
	take_snap(x, mv, &s);
	fault_arm(x, &f);
	vmmfs_vmm_abort_map(mv->vmm, mv->ops[i].op);
	fault_disarm(x, f);
	vf_trace("%d: abort op at 0x%llx (%llu pages)\n", x->step, (unsigned long long)mv->ops[i].va,
		 (unsigned long long)mv->ops[i].npages);
	f = flushes_since(x, &s);
	if (f > 1)
		vf_fail("abort issued %llu TLB invalidates", (unsigned long long)f);
	mv->flushes += f;
	add_hole(mv, mv->ops[i].va, mv->ops[i].npages);
	touch(x, mv, mv->ops[i].va, mv->ops[i].npages);
	mv->ops[i] = mv->ops[--mv->nops];
}

static void op_abort(struct ctx *x, struct mvmm *mv)
{
	uint8_t i = in_u8(x);

	if (mv->nops)
		op_abort_idx(x, mv, i % mv->nops);
}

static void op_execute(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_mapping *m = NULL;
	struct snap s;
	uint64_t *pfns, n, c0, want;
	unsigned int flags, must, may = 0;
	size_t i;
	int r;

	x->what = "execute";
	i = in_u8(x);
	if (!mv->nops || !quar_room(x, mv))
		return;
	i %= mv->nops;
	n = mv->ops[i].npages;
	if (n > EXEC_MAX_PAGES || n > x->c->vram_pages) {
		op_abort_idx(x, mv, i);
		return;
	}
	pfns = malloc(n * sizeof(*pfns));
	if (!pfns)
		vf_fail("out of memory for %llu PFNs", (unsigned long long)n);
	spec_pfns(x, mv, pfns, n);
	flags = spec_flags(x);
	must = pfn_errors(x, pfns, n, flags);  /* CLAIM is for map_pages only */
	if (mv->nmaps == MAX_MAPS && !must) {
		free(pfns);
		return;
	}
	/* a hardware error comes instead of success; on a vanished device
	 * it may come before the errors of the arguments */
	may |= hw_errors(x, true);
	if (!must)
		must = hw_errors(x, true);
	take_snap(x, mv, &s);
	fault_arm(x, &c0);
	r = vmmfs_vmm_execute_map(mv->vmm, mv->ops[i].op, pfns, flags, &m);
	vf_trace("%d: execute op at 0x%llx (%llu pages) flags 0x%x pfns", x->step,
		 (unsigned long long)mv->ops[i].va, (unsigned long long)n, flags);
	trace_pfns(pfns, n);
	vf_trace(" -> %d\n", r);
	if (vmmfs_fault_count() != c0)
		vf_fail("execute tried %llu allocations; it must not allocate",
			(unsigned long long)(vmmfs_fault_count() - c0));
	fault_disarm(x, c0);
	check_result(r, must, may);
	if (r) {
		if (flushes_since(x, &s))
			vf_fail("execute failed (%d) and issued a TLB invalidate", r);
		touch(x, mv, mv->ops[i].va, n);
		if (quarantine_new(x, mv, &s, r, flags, false, mv->ops[i].va, n)) {
			mv->ops[i] = mv->ops[--mv->nops];   /* consumed */
		} else {
			if (r == -ETIMEDOUT || r == -ENODEV)
				vf_fail("execute failed with %d and quarantined nothing", r);
			check_unchanged(x, mv, &s, r);
		}
		free(pfns);
		return;
	}
	if (flushes_since(x, &s) != 1)
		vf_fail("execute issued %llu TLB invalidates, expected one",
			(unsigned long long)flushes_since(x, &s));
	mv->flushes++;
	want = mv->ops[i].va;
	mv->ops[i] = mv->ops[--mv->nops];
	model_add_map(x, mv, m, pfns, n, flags, false, NULL, want);
	check_runs(&mv->maps[mv->nmaps - 1]);
	free(pfns);
}

static void op_map_pages(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_va_placement plbuf;
	const struct vmmfs_va_placement *pl;
	struct vmmfs_mapping *m = NULL;
	struct snap s;
	uint64_t *pfns, n, c0, f;
	unsigned int flags, must, may = 0;
	size_t cl = 0;
	int r;

	char pbuf[96];

	x->what = "map_pages";
	n = spec_npages(x, false);
	pl = spec_place(x, mv, n, &plbuf);
	flags = spec_flags(x);
	if (flags & VMMFS_MAP_CLAIM) {
		/* claimed pages only (a caller's promise vmm.h asks for):
		 * the whole of one claim */
		if (!x->nclaims) {
			flags &= ~VMMFS_MAP_CLAIM;
		} else {
			cl = n % x->nclaims;
			n = x->claims[cl].count;
		}
	}
	if (n > EXEC_MAX_PAGES || n > x->c->vram_pages || !quar_room(x, mv))
		return;   /* legal, but slow: pages would repeat */
	pfns = malloc((n ? n : 1) * sizeof(*pfns));
	if (!pfns)
		vf_fail("out of memory for %llu PFNs", (unsigned long long)n);
	if (flags & VMMFS_MAP_CLAIM)
		for (uint64_t i = 0; i < n; i++)
			pfns[i] = x->claims[cl].first + i;
	else
		spec_pfns(x, mv, pfns, n);
	must = place_errors(mv, n, pl) | pfn_errors(x, pfns, n, flags & ~VMMFS_MAP_CLAIM);
	if ((mv->nmaps == MAX_MAPS || space_pages(mv) + n > SPACE_MAX_PAGES) && !must) {
		free(pfns);
		return;
	}
	if (vram_short(x, n, 0, pfns))
		may |= E_NOMEM;
	/* a hardware error comes instead of success; on a vanished device
	 * it may come before the errors of the arguments */
	may |= hw_errors(x, true);
	if (!must)
		must = hw_errors(x, true);
	take_snap(x, mv, &s);
	fault_arm(x, &c0);
	r = vmmfs_vmm_map_pages(mv->vmm, pfns, n, pl, flags, &m);
	if (fault_disarm(x, c0))
		may |= E_NOMEM;
	vf_trace("%d: map_pages %llu pages %s flags 0x%x pfns", x->step, (unsigned long long)n,
		 place_str(pl, pbuf, sizeof(pbuf)), flags);
	trace_pfns(pfns, n);
	vf_trace(" -> %d (va 0x%llx)\n", r, r ? 0ull : (unsigned long long)m->va);
	check_result(r, must, may);
	f = flushes_since(x, &s);
	if (r) {
		if (f > 1)
			vf_fail("failed map_pages (%d) issued %llu TLB invalidates", r,
				(unsigned long long)f);
		mv->flushes += f;
		if (pl && pl->kind != VMMFS_VA_ANY)
			touch(x, mv, pl->start, n);
		if (quarantine_new(x, mv, &s, r, flags & MAP_FLAGS, flags & VMMFS_MAP_CLAIM,
				   pl && pl->kind == VMMFS_VA_EXACT ? pl->start : UINT64_MAX, n)) {
			touch(x, mv, mv->quar[mv->nquar - 1].va, n);
			if (flags & VMMFS_MAP_CLAIM)   /* the quarantine owns the claim now */
				x->claims[cl] = x->claims[--x->nclaims];
		} else {
			check_unchanged(x, mv, &s, r);
		}
		free(pfns);
		return;
	}
	if (f != 1)
		vf_fail("map_pages issued %llu TLB invalidates, expected one", (unsigned long long)f);
	mv->flushes++;
	model_add_map(x, mv, m, pfns, n, flags & MAP_FLAGS, flags & VMMFS_MAP_CLAIM, pl, UINT64_MAX);
	touch(x, mv, mv->maps[mv->nmaps - 1].va, n);
	check_runs(&mv->maps[mv->nmaps - 1]);
	check_congruent(x, mv->maps[mv->nmaps - 1].va, n, pl, pfns[0] * PAGE);
	if (flags & VMMFS_MAP_CLAIM)   /* the mapping owns the claim now */
		x->claims[cl] = x->claims[--x->nclaims];
	free(pfns);
}

FUZZ_NOCOV static void check_zero(struct ctx *x, uint64_t pfn)
{
	static uint8_t buf[PAGE];
	int r = vmmfs_gpu_vram_read(x->c->gpu, pfn * PAGE, buf, sizeof(buf));

	if (r)
		vf_fail("reading VRAM page 0x%llx failed: %d", (unsigned long long)pfn, r);
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i])
			vf_fail("alloc= page 0x%llx is not zeroed: byte 0x%zx is 0x%02x",
				(unsigned long long)pfn, i, buf[i]);
}

static void op_map_alloc(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_va_placement plbuf;
	const struct vmmfs_va_placement *pl;
	struct vmmfs_mapping *m = NULL;
	struct collect col;
	struct snap s;
	uint64_t n, bytes, c0, f;
	unsigned int flags, must, may = 0;
	uint8_t b;
	int r;

	char pbuf[96];

	x->what = "map_alloc";
	if (!quar_room(x, mv))
		return;
	n = spec_npages(x, false);
	if (n > 1024)
		n = 1 + n % 1024;  /* zeroing costs: at most 4 MiB */
	b = in_u8(x);
	bytes = n * PAGE;
	if ((b & 1) && bytes)
		bytes -= (uint64_t)(b >> 1) + 1;   /* not a whole number of pages */
	pl = spec_place(x, mv, n, &plbuf);
	flags = spec_flags(x);
	must = place_errors(mv, n, pl);
	if (flags & ~MAP_FLAGS)
		must |= E_INVAL;  /* CLAIM included: map_pages only */
	if (mv->nmaps == MAX_MAPS && !must)
		return;
	if (vram_short(x, n, n, NULL))
		may |= E_NOMEM;
	/* a hardware error comes instead of success; on a vanished device
	 * it may come before the errors of the arguments */
	may |= hw_errors(x, true);
	if (!must)
		must = hw_errors(x, true);
	take_snap(x, mv, &s);
	fault_arm(x, &c0);
	r = vmmfs_vmm_map_alloc(mv->vmm, bytes, pl, flags, &m);
	if (fault_disarm(x, c0))
		may |= E_NOMEM;
	vf_trace("%d: map_alloc 0x%llx bytes %s flags 0x%x -> %d (va 0x%llx)\n", x->step,
		 (unsigned long long)bytes, place_str(pl, pbuf, sizeof(pbuf)), flags, r,
		 r ? 0ull : (unsigned long long)m->va);
	check_result(r, must, may);
	f = flushes_since(x, &s);
	if (r) {
		if (f > 1)
			vf_fail("failed map_alloc (%d) issued %llu TLB invalidates", r,
				(unsigned long long)f);
		mv->flushes += f;
		if (pl && pl->kind != VMMFS_VA_ANY)
			touch(x, mv, pl->start, n);
		if (quarantine_new(x, mv, &s, r, flags, true,
				   pl && pl->kind == VMMFS_VA_EXACT ? pl->start : UINT64_MAX, n))
			touch(x, mv, mv->quar[mv->nquar - 1].va, n);
		else
			check_unchanged(x, mv, &s, r);
		return;
	}
	if (f != 1)
		vf_fail("map_alloc issued %llu TLB invalidates, expected one", (unsigned long long)f);
	mv->flushes++;
	col.pfns = malloc(n * sizeof(*col.pfns));
	if (!col.pfns)
		vf_fail("out of memory for %llu PFNs", (unsigned long long)n);
	col.n = 0;
	col.cap = n;
	r = vmmfs_mapping_for_each_run(m, collect_cb, &col);
	if (r || col.n != n)
		vf_fail("alloc=: for_each_run gave %llu of %llu pages (%d)", (unsigned long long)col.n,
			(unsigned long long)n, r);
	for (uint64_t i = 0; i < n; i++) {
		if (col.pfns[i] >= x->c->vram_pages)
			vf_fail("alloc= page 0x%llx is beyond VRAM", (unsigned long long)col.pfns[i]);
		if (x->c->refs[col.pfns[i]])
			vf_fail("alloc= handed out page 0x%llx, which is mapped %u times",
				(unsigned long long)col.pfns[i], x->c->refs[col.pfns[i]]);
	}
	check_zero(x, col.pfns[0]);
	if (n > 1)
		check_zero(x, col.pfns[n - 1]);
	model_add_map(x, mv, m, col.pfns, n, flags, true, pl, UINT64_MAX);
	touch(x, mv, mv->maps[mv->nmaps - 1].va, n);
	check_congruent(x, mv->maps[mv->nmaps - 1].va, n, pl, col.pfns[0] * PAGE);
	for (uint64_t i = 0; i < n; i++)
		if (x->c->refs[col.pfns[i]] != 1)
			vf_fail("alloc= gave page 0x%llx twice", (unsigned long long)col.pfns[i]);
	free(col.pfns);
}

static void unmap_idx(struct ctx *x, struct mvmm *mv, size_t i)
{
	struct model_map *mm = &mv->maps[i];
	struct vmmfs_vmm_stats st;
	struct snap s;
	uint64_t c0, f;
	unsigned int must;
	int r;

	x->what = "unmap";
	must = hw_errors(x, true);
	take_snap(x, mv, &s);
	fault_arm(x, &c0);
	r = vmmfs_vmm_unmap(mv->vmm, mm->m);
	fault_disarm(x, c0);
	vf_trace("%d: unmap 0x%llx (%llu pages) -> %d\n", x->step, (unsigned long long)mm->va,
		 (unsigned long long)mm->npages, r);
	touch(x, mv, mm->va, mm->npages);
	if (r && !(err_bit(r) & must))
		vf_fail("unmap of %llu pages at VA 0x%llx returned %d", (unsigned long long)mm->npages,
			(unsigned long long)mm->va, r);
	if (!r && must)
		vf_fail("unmap succeeded after a hardware error (expected 0x%x)", must);
	if (r) {
		/* the mapping is gone all the same; VA and pages withheld */
		f = flushes_since(x, &s);
		vmmfs_vmm_get_stats(mv->vmm, &st);
		if (f || st.quarantined_pages != s.st.quarantined_pages + mm->npages)
			vf_fail("unmap failed with %d: %llu TLB invalidates, quarantine %llu -> %llu "
				"pages, expected none and +%llu", r, (unsigned long long)f,
				(unsigned long long)s.st.quarantined_pages,
				(unsigned long long)st.quarantined_pages, (unsigned long long)mm->npages);
		quarantine_map(mv, i);
		return;
	}
	f = flushes_since(x, &s);
	if (f != 1)
		vf_fail("unmap issued %llu TLB invalidates, expected one", (unsigned long long)f);
	mv->flushes++;
	refs_add(x, mm, -1);
	check_owners_some(x, mm);
	add_hole(mv, mm->va, mm->npages);
	free(mm->runs);
	mv->maps[i] = mv->maps[--mv->nmaps];
}

static void op_unmap(struct ctx *x, struct mvmm *mv)
{
	uint8_t i = in_u8(x);

	if (mv->nmaps)
		unmap_idx(x, mv, i % mv->nmaps);
}

static void op_lookup(struct ctx *x, struct mvmm *mv)
{
	struct vmmfs_lookup lk;
	uint64_t va = spec_va(x, mv), c0;
	int r;

	x->what = "lookup";
	vf_trace("%d: lookup 0x%llx\n", x->step, (unsigned long long)va);
	if (x->gone || x->hw_fault) {
		unsigned int must = va >= mv->va_size ? E_RANGE : hw_errors(x, false);

		fault_arm(x, &c0);
		r = vmmfs_vmm_lookup(mv->vmm, va, &lk);
		fault_disarm(x, c0);
		if (!r && !x->gone) {   /* a stuck invalidate changes nothing here */
			check_va(x, mv, va & ~(PAGE - 1));
			return;
		}
		check_result(r, must, hw_errors(x, false));
		return;
	}
	if (va >= mv->va_size) {
		fault_arm(x, &c0);
		r = vmmfs_vmm_lookup(mv->vmm, va, &lk);
		fault_disarm(x, c0);
		if (r != -ERANGE)
			vf_fail("lookup of VA 0x%llx beyond the address space returned %d",
				(unsigned long long)va, r);
		return;
	}
	fault_arm(x, &c0);
	check_va(x, mv, va & ~(PAGE - 1));
	fault_disarm(x, c0);
	if (trace > 0 && !vmmfs_vmm_lookup(mv->vmm, va, &lk))
		vf_trace("    state %d PA 0x%llx page 0x%llx %s at %s[%u]\n", (int)lk.state,
			 (unsigned long long)lk.pa, (unsigned long long)lk.page_size,
			 lk.read_only ? "ro" : "rw", lk.level ? lk.level : "?", lk.index);
}

static void op_mem(struct ctx *x, struct mvmm *mv)
{
	static uint8_t buf[2 * PAGE], back[2 * PAGE];
	uint8_t b = in_u8(x);
	bool wr = b & 1;
	uint64_t va = spec_va(x, mv), len, pos, ok = 0, c0;
	bool gone;
	int why = 0;
	long r;

	x->what = wr ? "mem_write" : "mem_read";
	if (b & 2)
		va = (va | (PAGE - 1)) - (in_u8(x) & 63);   /* cross a page boundary */
	len = 1 + (uint64_t)in_u8(x) + (b & 4 ? PAGE : 0);
	if (va > UINT64_MAX - len)
		len = UINT64_MAX - va;
	if (!len)
		return;
	for (pos = va; pos < va + len;) {
		uint64_t page = pos & ~(PAGE - 1), chunk;
		const struct model_map *m;

		if (page >= mv->va_size) {
			why = -ERANGE;
			break;
		}
		m = model_find(mv, page);
		if (!m) {
			why = -EFAULT;
			break;
		}
		if (wr && m->ro) {
			why = -EACCES;
			break;
		}
		chunk = page + PAGE - pos;
		if (chunk > va + len - pos)
			chunk = va + len - pos;
		ok += chunk;
		pos += chunk;
	}
	x->rng ^= va;
	for (uint64_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rng_next(x);
	gone = x->gone || (x->hw_fault & VMMFS_SIM_FAULT_VANISHED);
	fault_arm(x, &c0);
	r = wr ? vmmfs_vmm_mem_write(mv->vmm, va, buf, len) : vmmfs_vmm_mem_read(mv->vmm, va, buf, len);
	fault_disarm(x, c0);
	vf_trace("%d: %s %llu bytes at 0x%llx -> %ld\n", x->step, x->what, (unsigned long long)len,
		 (unsigned long long)va, r);
	if (gone) {
		if (r != -ENODEV && !(r == why && why))
			vf_fail("%llu bytes at VA 0x%llx on a vanished device: returned %ld",
				(unsigned long long)len, (unsigned long long)va, r);
		return;
	}
	if (ok ? r != (long)ok : r != why)
		vf_fail("%llu bytes at VA 0x%llx: returned %ld, expected %lld",
			(unsigned long long)len, (unsigned long long)va, r,
			ok ? (long long)ok : (long long)why);
	/* what was copied is what VRAM holds at the model's addresses (the
	 * pages of one buffer may alias: the last write to a byte wins) */
	struct { uint64_t va, pa, len; } ch[4];
	size_t nch = 0;

	for (pos = va; pos < va + ok && nch < 4;) {
		const struct model_map *m = model_find(mv, pos & ~(PAGE - 1));
		uint64_t chunk = (pos | (PAGE - 1)) + 1 - pos;

		if (chunk > va + ok - pos)
			chunk = va + ok - pos;
		ch[nch].va = pos;
		ch[nch].pa = model_pfn(m, (pos - m->va) / PAGE) * PAGE + (pos & (PAGE - 1));
		ch[nch++].len = chunk;
		pos += chunk;
	}
	for (size_t j = 0; j < nch; j++) {
		int rr = vmmfs_gpu_vram_read(x->c->gpu, ch[j].pa, back, ch[j].len);

		if (rr)
			vf_fail("reading VRAM at 0x%llx failed: %d", (unsigned long long)ch[j].pa, rr);
		for (uint64_t i = 0; i < ch[j].len; i++) {
			uint64_t pa = ch[j].pa + i;
			uint8_t want = buf[ch[j].va - va + i];

			for (size_t k = j + 1; wr && k < nch; k++)
				if (pa >= ch[k].pa && pa < ch[k].pa + ch[k].len)
					want = buf[ch[k].va - va + (pa - ch[k].pa)];
			if (back[i] != want)
				vf_fail("%s at VA 0x%llx: VRAM at PA 0x%llx holds 0x%02x, expected 0x%02x",
					wr ? "written" : "read", (unsigned long long)(ch[j].va + i),
					(unsigned long long)pa, back[i], want);
		}
	}
}

/* May first..first+count-1 be claimed? Errors vmmfs_gpu_vram_claim must
 * give: the pages must all be free in the VRAM allocator, which a table, a
 * parked page, an alloc= page and a claimed page are not. */
FUZZ_NOCOV static unsigned int claim_errors(struct ctx *x, uint64_t first, uint64_t count)
{
	struct vmmfs_vram *v = x->c->gpu->vram;

	if (!count)
		return E_INVAL;
	if (first >= x->c->vram_pages || count > x->c->vram_pages - first)
		return E_RANGE;
	for (uint64_t p = first; p < first + count; p++) {
		uint32_t w = vram_owner(v, p);

		if (w == VRAM_OWNER_PT || (w & VRAM_OWNER_PARKED))
			return E_BUSY;
		for (size_t i = 0; i < x->nclaims; i++)
			if (p - x->claims[i].first < x->claims[i].count)
				return E_BUSY;
		for (int k = 0; k < x->nvmm; k++)
			for (size_t i = 0; i < x->v[k].nmaps + x->v[k].nquar; i++) {
				const struct model_map *m = i < x->v[k].nmaps ? &x->v[k].maps[i] :
							    &x->v[k].quar[i - x->v[k].nmaps];

				for (size_t j = 0; m->allocated && j < m->nruns; j++)
					if (p - m->runs[j].pfn < m->runs[j].count)
						return E_BUSY;
			}
	}
	return 0;
}

/* vmmfs_gpu_vram_claim of a run: somewhere, over a table, over a mapping
 * or over a claim. */
static void op_claim(struct ctx *x, struct mvmm *mv)
{
	uint8_t b = in_u8(x);
	uint64_t first = in_u16(x), count = in_u8(x) % 65, c0;
	struct vmmfs_vram_usage u0, u1;
	unsigned int must, may = 0;
	int r;

	x->what = "claim";
	switch (b & 3) {
	case 1:
		first = mv->pdb / PAGE + (first & 3);
		break;
	case 2:
		if (mv->nmaps)
			first = mv->maps[first % mv->nmaps].runs[0].pfn + (b >> 4);
		break;
	case 3:
		if (x->nclaims)
			first = x->claims[first % x->nclaims].first + (b >> 4);
		break;
	default:
		first <<= (b >> 2) & 3;   /* up to 1 GiB of VRAM */
		break;
	}
	if (x->nclaims == MAX_CLAIMS)
		return;
	must = claim_errors(x, first, count);
	may |= hw_errors(x, false);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u0);
	fault_arm(x, &c0);
	r = vmmfs_gpu_vram_claim(x->c->gpu, first, count);
	if (fault_disarm(x, c0))
		may |= E_NOMEM;
	vf_trace("%d: claim 0x%llx + %llu pages -> %d\n", x->step, (unsigned long long)first,
		 (unsigned long long)count, r);
	check_result(r, must, may);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u1);
	if (u1.alloc_pages != u0.alloc_pages + (r ? 0 : count) ||
	    u1.free_pages + (r ? 0 : count) != u0.free_pages)
		vf_fail("claim of %llu pages (%d): alloc= pages %llu -> %llu, free %llu -> %llu",
			(unsigned long long)count, r, (unsigned long long)u0.alloc_pages,
			(unsigned long long)u1.alloc_pages, (unsigned long long)u0.free_pages,
			(unsigned long long)u1.free_pages);
	if (!r) {
		x->claims[x->nclaims].first = first;
		x->claims[x->nclaims++].count = count;
	}
}

FUZZ_NOCOV static void unclaim_idx(struct ctx *x, size_t i)
{
	struct vmmfs_vram_usage u0, u1;
	const struct claim *c = &x->claims[i];

	x->what = "unclaim";
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u0);
	vmmfs_gpu_vram_unclaim(x->c->gpu, c->first, c->count);
	vf_trace("%d: unclaim 0x%llx + %llu pages\n", x->step, (unsigned long long)c->first,
		 (unsigned long long)c->count);
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u1);
	if (u1.alloc_pages + c->count != u0.alloc_pages)
		vf_fail("unclaim of %llu pages: alloc= pages %llu -> %llu", (unsigned long long)c->count,
			(unsigned long long)u0.alloc_pages, (unsigned long long)u1.alloc_pages);
	x->claims[i] = x->claims[--x->nclaims];
}

static void op_unclaim(struct ctx *x)
{
	uint8_t i = in_u8(x);

	if (x->nclaims)
		unclaim_idx(x, i % x->nclaims);
}

static void op_fault(struct ctx *x)
{
	uint8_t b = in_u8(x);

	x->fault_all = b & 0x80;
	x->fault_nth = b & 63;
	vf_trace("%d: next operation: fail %s allocation\n", x->step,
		 x->fault_all ? "every" : "one");
}

/* ---- chips, inputs ------------------------------------------------------------------------ */

/*
 * One simulated GPU per chip, opened on first use and kept: opening one
 * costs about as much as a whole input (the simulator maps its VRAM and
 * owner arrays, and the root table materialises a VRAM block). Between
 * inputs it is reset to what a fresh one is: VRAM reads the poison pattern
 * again (the written-block bitmap cleared), an empty TLB, the PRAMIN window
 * where open left it. The rest (allocator, owner words, heap objects,
 * counters of usage) each input gives back, which its end checks; after a
 * hardware fault the input closes the GPU instead unless chip_fresh() holds
 * (a stuck invalidate that a later one completed), so a vanished device or
 * an invalidate still pending never reaches the next input.
 */
/* What the reuse relies on and only a hardware fault could change. */
static bool chip_fresh(struct chip *c)
{
	struct vmmfs_sim *sim = c->gpu->sim;
	struct vmmfs_vram_usage u;

	vmmfs_gpu_get_vram_usage(c->gpu, &u);
	return !atomic_load(&sim->faults) && !sim->inv_pending && sim->busy_polls == 2 &&
	       !atomic_load(&c->gpu->gone) && !memcmp(&u, &c->base, sizeof(u));
}

static void chip_reset(struct chip *c)
{
	struct vmmfs_sim *sim = c->gpu->sim;

	memset(sim->vram.written, 0, (sim->vram.nblocks / 64 + 1) * sizeof(uint64_t));
	atomic_store(&sim->vram.touched, 0);
	atomic_store(&sim->window, c->window0);
	c->gpu->pramin.base = c->pramin_base0;
	c->gpu->pramin.base_known = c->pramin_known0;
	/* an empty TLB that picks its victims as a new one does (the
	 * entries no longer valid are never read) */
	vmmfs_sim_tlb_flush_all(sim);
	memset(sim->tlb.pde_next, 0, sizeof(sim->tlb.pde_next));
	memset(sim->tlb.leaf_next, 0, sizeof(sim->tlb.leaf_next));
	sim->tlb.enabled = true;
	vmmfs_sim_reset_counters(sim);
	/* the end of the last input closed the GPU if this did not hold */
	if (!chip_fresh(c) || vmmfs_sim_tlb_entries(sim))
		vf_fail("the %s reused from the last input is not as fresh", c->name);
}

static struct chip *chip_get(unsigned int i)
{
	struct chip *c = &chips[i];
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM };
	char err[256] = "";
	int r;

	if (c->gpu) {
		chip_reset(c);
		return c;
	}
	/* errors the fuzzer provokes stay off stderr; the ring keeps errors
	 * only, which the end of every input checks for internal errors */
	vmmfs_log_set_stderr_level(-1);
	vmmfs_log_set_ring_level(VMMFS_LOG_ERROR);
	cfg.chip = c->name;
	cfg.vram_size = c->vram_bytes;
	c->gpu_objs = vmmfs_mem_live();
	r = vmmfs_gpu_open(&cfg, &c->gpu, err, sizeof(err));
	c->gpu_objs = vmmfs_mem_live() - c->gpu_objs;
	if (r)
		vf_fail("cannot open a simulated %s: %s (%d)", c->name, err, r);
	/* a stuck invalidate gives up at once (the default waits 2 s) */
	c->gpu->tlb.timeout_us = 1;
	c->window0 = (uint32_t)atomic_load(&((struct vmmfs_sim *)c->gpu->sim)->window);
	c->pramin_base0 = c->gpu->pramin.base;
	c->pramin_known0 = c->gpu->pramin.base_known;
	c->dirty = false;
	c->vram_pages = vmmfs_gpu_get_info(c->gpu)->vram_size / PAGE;
	if (!c->refs) {
		c->refs = calloc(c->vram_pages, sizeof(*c->refs));
		c->mark = calloc(c->vram_pages, sizeof(*c->mark));
		if (!c->refs || !c->mark)
			vf_fail("out of memory for the page counts");
	}
	vmmfs_gpu_get_vram_usage(c->gpu, &c->base);
	return c;
}

/* At the end of an input that injected a hardware fault. */
static void chip_close(struct chip *c)
{
	vmmfs_gpu_close(c->gpu);
	c->gpu = NULL;
	c->dirty = false;
}

struct count_ctx {
	uint64_t n;
};

FUZZ_NOCOV static int count_cb(void *arg, const struct vmmfs_pt_entry *e)
{
	((struct count_ctx *)arg)->n++;
	(void)e;
	return 0;
}

FUZZ_NOCOV static void teardown(struct ctx *x, unsigned int mode)
{
	struct vmmfs_gpu_stats gs0, gs1;
	struct vmmfs_vram_usage u, u0;

	for (int k = 0; k < x->nvmm; k++) {
		struct mvmm *mv = &x->v[k];

		x->what = "end: full check";
		full_check(x, mv);
		while (mv->nops)
			op_abort_idx(x, mv, mv->nops - 1);
		switch (mode) {
		case 1:
			while (mv->nmaps)
				unmap_idx(x, mv, 0);
			break;
		case 2:
			while (mv->nmaps)
				unmap_idx(x, mv, mv->nmaps - 1);
			break;
		case 3:
			for (size_t i = 0; i < mv->nmaps; i++)
				unmap_idx(x, mv, i);
			break;
		default:
			break;
		}
		x->what = "end: after unmapping";
		check_stats(x, mv);
		check_translations(x, mv);
		if (!mv->nmaps && !mv->nquar && !x->gone) {
			struct count_ctx cc = { 0 };
			int r = vmmfs_vmm_dump(mv->vmm, count_cb, &cc);
			if (r || cc.n)
				vf_fail("nothing is mapped, yet the tree has %llu entries (dump %d)",
					(unsigned long long)cc.n, r);
		}
		x->what = "destroy";
		vmmfs_gpu_get_stats(x->c->gpu, &gs0);
		vmmfs_gpu_get_vram_usage(x->c->gpu, &u0);
		vmmfs_vmm_destroy(mv->vmm);
		x->kept = x->gone;
		vmmfs_gpu_get_stats(x->c->gpu, &gs1);
		vmmfs_gpu_get_vram_usage(x->c->gpu, &u);
		/* on a vanished device, nothing the GPU might still use is
		 * given back: the tree and the mapped pages stay reserved (tables
		 * unhooked and flushed before may go; the GPU is closed after
		 * this input) */
		if (x->gone && (u.mapped_pages != u0.mapped_pages || u.alloc_pages != u0.alloc_pages ||
				!vram_is_pt(x->c->gpu->vram, mv->pdb / PAGE)))
			vf_fail("destroy on a vanished device released VRAM: free %llu -> %llu, tables "
				"%llu -> %llu, mapped %llu -> %llu", (unsigned long long)u0.free_pages,
				(unsigned long long)u.free_pages, (unsigned long long)u0.pt_pages,
				(unsigned long long)u.pt_pages, (unsigned long long)u0.mapped_pages,
				(unsigned long long)u.mapped_pages);
		if (gs1.tlb_flushes - gs0.tlb_flushes > 1 ||
		    (mv->nmaps && !x->gone && gs1.tlb_flushes - gs0.tlb_flushes != 1))
			vf_fail("destroy with %zu mappings issued %llu TLB invalidates", mv->nmaps,
				(unsigned long long)(gs1.tlb_flushes - gs0.tlb_flushes));
		/* destroy returns the pages (but keeps them if the device is gone) */
		for (size_t i = 0; i < mv->nmaps; i++) {
			if (!x->gone)
				refs_add(x, &mv->maps[i], -1);
			free(mv->maps[i].runs);
		}
		for (size_t i = 0; i < mv->nquar; i++) {
			if (!x->gone)
				refs_add(x, &mv->quar[i], -1);
			free(mv->quar[i].runs);
		}
		mv->nmaps = mv->nquar = 0;
		mv->quar_pages = 0;
		mv->vmm = NULL;
	}
	while (x->nclaims)
		unclaim_idx(x, x->nclaims - 1);
	x->what = "end: unpin";
	while (x->npins) {
		struct pin *p = &x->pins[--x->npins];

		vmmfs_gpu_vram_unpin(x->c->gpu, p->first, p->count);
		refs_run(x, p->first, p->count, -1);
	}
	x->what = "end: GPU back to its state before the input";
	vmmfs_gpu_get_vram_usage(x->c->gpu, &u);
	if (!x->gone && memcmp(&u, &x->c->base, sizeof(u)))
		vf_fail("VRAM usage total %llu free %llu pt %llu mapped %llu alloc %llu, before the "
			"input %llu %llu %llu %llu %llu", (unsigned long long)u.total_pages,
			(unsigned long long)u.free_pages, (unsigned long long)u.pt_pages,
			(unsigned long long)u.mapped_pages, (unsigned long long)u.alloc_pages,
			(unsigned long long)x->c->base.total_pages,
			(unsigned long long)x->c->base.free_pages,
			(unsigned long long)x->c->base.pt_pages,
			(unsigned long long)x->c->base.mapped_pages,
			(unsigned long long)x->c->base.alloc_pages);
}

/*
 * After a step that changed something. Every such step: the stats, and the
 * translations of the ranges it changed or tried (touch()), plus a page of
 * one other mapping in turn. Every FULL_EVERY of them: every mapping of
 * every address space sampled (check_translations), the VRAM sum and the
 * VMM's own consistency check, which reads every entry of the tree (large
 * trees get it at the end only). The end of the input checks everything
 * (full_check). What a step could break and not touch is thus found at
 * most FULL_EVERY steps later, still inside the same input.
 */
FUZZ_NOCOV static void step_check(struct ctx *x, struct mvmm *mv)
{
	char err[256] = "";

	x->changed++;
	check_stats(x, mv);
	if (!x->gone) {
		for (size_t i = 0; i < x->ntouched; i++)
			check_span(x, x->touched[i].mv, x->touched[i].va, x->touched[i].npages);
		if (mv->nmaps) {
			const struct model_map *m = &mv->maps[x->changed % mv->nmaps];

			check_va(x, mv, m->va + (rng_next(x) % m->npages) * PAGE);
		}
	}
	x->ntouched = 0;
	if (x->changed % FULL_EVERY)
		return;
	check_vram_sum(x);
	for (int k = 0; k < x->nvmm; k++) {
		struct mvmm *v = &x->v[k];
		uint64_t pages = 0;
		int r;

		check_stats(x, v);
		check_translations(x, v);
		for (size_t i = 0; i < v->nmaps; i++)
			pages += v->maps[i].npages;
		if (x->gone || pages > 4096)
			continue;
		r = vmmfs_vmm_check(v->vmm, err, sizeof(err));
		if (r)
			vf_fail("vmmfs_vmm_check after the step: %d: %s", r, err);
	}
}

FUZZ_NOCOV static void check_log(void)
{
	char *text = NULL;
	long n = vmmfs_log_snapshot(&text);

	if (n < 0)
		vf_fail("log snapshot failed: %ld", n);
	/* VMMFS_WARN_ON, or the VRAM owner refusing what it was handed */
	if (strstr(text, "internal error") || strstr(text, "vram: "))
		vf_fail("the library logged an internal error:\n%s", text);
	free(text);
	vmmfs_log_clear();
}

int FUZZ_VMM_ENTRY(const uint8_t *data, size_t size)
{
	struct ctx x;
	uint8_t head;
	unsigned int mode;
	int64_t live0;

	if (size < 1)
		return 0;
	memset(&x, 0, sizeof(x));
	cur = &x;
	x.in.p = data;
	x.in.n = size;
	x.fault_nth = -1;
	x.rng = 0x9e3779b97f4a7c15ull;
	head = in_u8(&x);
	x.c = chip_get((head & 3) == 3 && (head & 0x20) ? 4 : head & 3);
	x.nvmm = head & 4 ? 2 : 1;
	mode = (head >> 3) & 3;

	vf_trace("input: %s, %d address space(s), end mode %u\n", x.c->name, x.nvmm, mode);
	vmmfs_log_clear();
	live0 = vmmfs_mem_live();
	for (int k = 0; k < x.nvmm; k++) {
		struct mvmm *mv = &x.v[k];
		int r = vmmfs_vmm_create(x.c->gpu, &mv->vmm);

		if (r)
			vf_fail("vmmfs_vmm_create failed: %d", r);
		mv->pdb = vmmfs_vmm_pdb(mv->vmm);
		mv->va_size = vmmfs_vmm_va_size(mv->vmm);
		if (mv->va_size != 1ull << vmmfs_gpu_get_info(x.c->gpu)->va_bits)
			vf_fail("address space of 0x%llx bytes on a %d-bit GPU",
				(unsigned long long)mv->va_size, vmmfs_gpu_get_info(x.c->gpu)->va_bits);
		if (mv->pdb % PAGE || !vram_is_pt(x.c->gpu->vram, mv->pdb / PAGE))
			vf_fail("root directory at 0x%llx is not a page-table page",
				(unsigned long long)mv->pdb);
	}

	while (x.in.n && x.step < MAX_STEPS) {
		uint8_t b = in_u8(&x);
		struct mvmm *mv = &x.v[(b >> 4) % x.nvmm];
		bool changed = true;

		x.step++;
		x.ntouched = 0;
		switch (b & 15) {
		case 0: op_prepare(&x, mv); break;
		case 1: op_execute(&x, mv); break;
		case 12: op_hw(&x); changed = false; break;
		case 13: op_pin(&x, mv); changed = false; break;
		case 2: op_abort(&x, mv); break;
		case 3: case 4: op_map_pages(&x, mv); break;
		case 14: op_claim(&x, mv); changed = false; break;
		case 5: op_map_alloc(&x, mv); break;
		case 6: case 7: op_unmap(&x, mv); break;
		case 8: op_lookup(&x, mv); changed = false; break;
		case 15: op_unclaim(&x); changed = false; break;
		case 9: op_mem(&x, mv); changed = false; break;
		case 10: op_fault(&x); changed = false; break;
		default: x.what = "full check"; full_check(&x, mv); changed = false; break;
		}
		if (changed)
			step_check(&x, mv);
	}

	teardown(&x, mode);
	if (x.gone) {
		/* destroy kept what the GPU might use: gone with the GPU */
		x.what = "end: close the vanished GPU";
		chip_close(x.c);
		live0 -= x.c->gpu_objs;
	}
	if (vmmfs_mem_live() != live0)
		vf_fail("%lld heap objects of libvmmfs are left after the input (%lld before)",
			(long long)vmmfs_mem_live(), (long long)live0);
	if (x.gone) {   /* the GPU with its reserved pages is closed below */
		memset(x.c->refs, 0, x.c->vram_pages * sizeof(*x.c->refs));
		x.c->distinct = 0;
	}
	if (x.c->distinct)
		vf_fail("model: %llu pages still counted as mapped", (unsigned long long)x.c->distinct);
	check_log();
	if (x.c->gpu && (x.c->dirty || !chip_fresh(x.c)))
		chip_close(x.c);
	cur = NULL;
	return 0;
}
