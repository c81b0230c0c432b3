/* SPDX-License-Identifier: MIT */
/*
 * The simulated GPU's MMU: a page walker over the tables in simulated VRAM,
 * with a TLB in front of it. This is the "hardware" the driver's tables are
 * checked against; it shares nothing with the driver's walker or formats.
 *
 * MMU v2 (Turing, Ampere, Ada), 49-bit VA, 5 levels:
 *
 *   PD3 [48:47] -> PD2 [46:38] -> PD1 [37:29] -> PD0 [28:21] -+-> PT  [20:12] 4 KiB
 *   4 x 8 B        512 x 8 B      512 x 8 B      256 x 16 B   |   512 x 8 B
 *                                 (512 MiB PTE   (lo bit 0:   +-> LPT [20:16] 64 KiB
 *                                  on Ampere+)    2 MiB PTE)      32 x 8 B, 256 B aligned
 *
 * MMU v3 (Hopper, Blackwell), 57-bit VA, 6 levels: PD4 [56] (2 x 8 B) on top
 * of the same PD3 .. PT shape; 512 MiB PTEs at PD1.
 *
 * Walk rules (big-pages-and-tlb.md §2.3, §2.4; nvidia-mmu.md §5):
 *  - upper levels: bit 0 (IS_PTE) = leaf where the chip allows one (PD1
 *    512 MiB), else BAD_ENCODING; aperture (PDE encoding) 0 = not present,
 *    or SPARSE with the sparse marker (v2 VOL, v3 PCF 1 or 3);
 *  - PD0: lo bit 0 = 2 MiB PTE; else big half (LPT) and small half (PT);
 *    neither present: SPARSE with the big-half marker, else not present;
 *    the LPTE is read first and decides: valid 64 KiB, sparse, NO_4K
 *    (fault without reading the PT), or all-zero = look at the small PT;
 *  - leaves: VALID, PTE aperture must be video memory, address aligned to
 *    the page size and inside VRAM; read-only faults writes.
 *
 * TLB: a PDE cache (raw entries, empty ones too, keyed by PDB, depth and VA
 * prefix) and a leaf cache (OK, SPARSE and FAULT outcomes, keyed by PDB and
 * 4 KiB VA page). Both are 4-way set associative with round-robin
 * replacement, so behaviour is deterministic. Cached data is used until an
 * invalidate covering it completes.
 */
#include "sim_priv.h"
#include "sim_regs.h"
#include "internal.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct sim_level {
	const char *name;
	unsigned int lo, bits;   /* index = VA[lo + bits - 1 : lo] */
	unsigned int entry_size; /* 8, or 16 at the dual PD0 */
};

struct sim_fmt {
	int version;
	unsigned int va_bits;
	const struct sim_level *levels;
	unsigned int pd1, pd0, pt; /* depths */
};

static const struct sim_level v2_levels[] = {
	{ "PD3", 47, 2, 8 },
	{ "PD2", 38, 9, 8 },
	{ "PD1", 29, 9, 8 },
	{ "PD0", 21, 8, 16 },
	{ "PT", 12, 9, 8 },
};

static const struct sim_level v3_levels[] = {
	{ "PD4", 56, 1, 8 },
	{ "PD3", 47, 9, 8 },
	{ "PD2", 38, 9, 8 },
	{ "PD1", 29, 9, 8 },
	{ "PD0", 21, 8, 16 },
	{ "PT", 12, 9, 8 },
};

static const struct sim_fmt fmt_v2 = { 2, SIM_V2_VA_BITS, v2_levels, 2, 3, 4 };
static const struct sim_fmt fmt_v3 = { 3, SIM_V3_VA_BITS, v3_levels, 3, 4, 5 };

#define LPT_LO 16
#define LPT_BITS 5

static const struct sim_fmt *sim_fmt(const struct vmmfs_sim *sim)
{
	return sim->chip->mmu_version == 3 ? &fmt_v3 : &fmt_v2;
}

static uint32_t va_index(uint64_t va, unsigned int lo, unsigned int bits)
{
	return (uint32_t)((va >> lo) & ((1ull << bits) - 1));
}

/* ---- TLB ------------------------------------------------------------------ */

/* The TLB arrays come zeroed (calloc) and are left untouched here, so an
 * idle simulator costs no resident memory for them. */
void sim_tlb_init(struct sim_tlb *tlb)
{
	tlb->enabled = true;
}

static unsigned int tlb_set(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t x = a * 0x9e3779b97f4a7c15ull ^ b * 0xc2b2ae3d27d4eb4full ^ c * 0x165667b19e3779f9ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return (unsigned int)(x & (SIM_TLB_SETS - 1));
}

static bool pde_lookup(struct sim_tlb *tlb, uint64_t pdb, unsigned int depth, uint64_t prefix,
		       uint64_t *lo, uint64_t *hi)
{
	unsigned int s = tlb_set(pdb, depth, prefix), w;

	for (w = 0; w < SIM_TLB_WAYS; w++) {
		const struct sim_pde_key *k = &tlb->pde[s][w];

		if (k->valid && k->pdb == pdb && k->depth == depth && k->prefix == prefix) {
			*lo = tlb->pde_val[s][w].lo;
			*hi = tlb->pde_val[s][w].hi;
			return true;
		}
	}
	return false;
}

static void pde_insert(struct sim_tlb *tlb, uint64_t pdb, unsigned int depth, uint64_t prefix,
		       uint64_t lo, uint64_t hi)
{
	unsigned int s = tlb_set(pdb, depth, prefix), w;

	for (w = 0; w < SIM_TLB_WAYS; w++)
		if (!tlb->pde[s][w].valid)
			break;
	if (w == SIM_TLB_WAYS)
		w = tlb->pde_next[s]++ % SIM_TLB_WAYS;
	else
		tlb->npde++;
	tlb->pde[s][w] = (struct sim_pde_key){ .pdb = pdb, .prefix = prefix,
					       .depth = (uint8_t)depth, .valid = true };
	tlb->pde_val[s][w] = (struct sim_pde_val){ .lo = lo, .hi = hi };
}

static const struct sim_outcome *leaf_lookup(struct sim_tlb *tlb, uint64_t pdb, uint64_t vpage)
{
	unsigned int s = tlb_set(pdb, 0xff, vpage), w;

	for (w = 0; w < SIM_TLB_WAYS; w++) {
		const struct sim_leaf_key *k = &tlb->leaf[s][w];

		if (k->valid && k->pdb == pdb && k->vpage == vpage)
			return &tlb->leaf_out[s][w];
	}
	return NULL;
}

static void leaf_insert(struct sim_tlb *tlb, uint64_t pdb, uint64_t vpage,
			const struct sim_outcome *o)
{
	unsigned int s = tlb_set(pdb, 0xff, vpage), w;

	for (w = 0; w < SIM_TLB_WAYS; w++)
		if (!tlb->leaf[s][w].valid)
			break;
	if (w == SIM_TLB_WAYS)
		w = tlb->leaf_next[s]++ % SIM_TLB_WAYS;
	else
		tlb->nleaf++;
	tlb->leaf[s][w] = (struct sim_leaf_key){ .pdb = pdb, .vpage = vpage, .valid = true };
	tlb->leaf_out[s][w] = *o;
}

void sim_tlb_invalidate_locked(struct vmmfs_sim *sim, bool all_pdb, uint64_t pdb,
			       bool pdb_sys, unsigned int cache_level)
{
	const struct sim_fmt *f = sim_fmt(sim);
	struct sim_tlb *tlb = &sim->tlb;
	unsigned int s, w;

	/* A PDB in system memory names no address space of this GPU. */
	if (!all_pdb && pdb_sys)
		return;
	for (s = 0; s < SIM_TLB_SETS && tlb->nleaf; s++) {
		for (w = 0; w < SIM_TLB_WAYS; w++) {
			struct sim_leaf_key *l = &tlb->leaf[s][w];

			if (l->valid && (all_pdb || l->pdb == pdb)) {
				l->valid = false;
				tlb->nleaf--;
			}
		}
	}
	if (cache_level == 1)
		return; /* PTE_ONLY */
	for (s = 0; s < SIM_TLB_SETS && tlb->npde; s++) {
		for (w = 0; w < SIM_TLB_WAYS; w++) {
			struct sim_pde_key *p = &tlb->pde[s][w];

			if (!p->valid || !(all_pdb || p->pdb == pdb))
				continue;
			/* CACHE_LEVEL: 0 all, 1 leaves only, k >= 2 leaves and
			 * PD0 .. PD(k-2). PD(j) sits at depth pd0 - j. */
			if (cache_level == 0 || f->pd0 - p->depth <= cache_level - 2) {
				p->valid = false;
				tlb->npde--;
			}
		}
	}
}

void vmmfs_sim_tlb_set_enabled(struct vmmfs_sim *sim, bool on)
{
	pthread_mutex_lock(&sim->lock);
	sim->tlb.enabled = on;
	if (!on)
		sim_tlb_invalidate_locked(sim, true, 0, false, 0);
	pthread_mutex_unlock(&sim->lock);
}

void vmmfs_sim_tlb_flush_all(struct vmmfs_sim *sim)
{
	pthread_mutex_lock(&sim->lock);
	sim_tlb_invalidate_locked(sim, true, 0, false, 0);
	pthread_mutex_unlock(&sim->lock);
}

uint64_t vmmfs_sim_tlb_entries(struct vmmfs_sim *sim)
{
	uint64_t n;

	pthread_mutex_lock(&sim->lock);
	n = (uint64_t)sim->tlb.npde + sim->tlb.nleaf;
	pthread_mutex_unlock(&sim->lock);
	return n;
}

/* ---- walker --------------------------------------------------------------- */

__attribute__((format(printf, 6, 7)))
static void fault(struct sim_outcome *o, enum vmmfs_sim_fault_kind kind, int level,
		  uint32_t index, const char *name, const char *fmt, ...)
{
	va_list ap;
	int n;

	o->result = VMMFS_SIM_XLATE_FAULT;
	o->fault = kind;
	o->level = level;
	o->index = index;
	snprintf(o->name, sizeof(o->name), "%s", name);
	n = snprintf(o->reason, sizeof(o->reason), "%s[%u]: ", name, index);
	va_start(ap, fmt);
	vsnprintf(o->reason + n, sizeof(o->reason) - (size_t)n, fmt, ap);
	va_end(ap);
}

static void sparse(struct sim_outcome *o, int level, uint32_t index, const char *name,
		   uint64_t size)
{
	o->result = VMMFS_SIM_XLATE_SPARSE;
	o->fault = VMMFS_SIM_FAULT_NONE;
	o->page_size = size;
	o->level = level;
	o->index = index;
	snprintf(o->name, sizeof(o->name), "%s", name);
}

/* Reads the entry (entry_size bytes) at table[idx], through the PDE cache
 * when cacheable. False (with a fault in o) when it lies beyond VRAM. */
static bool fetch(struct vmmfs_sim *sim, uint64_t pdb, unsigned int depth, bool cacheable,
		  uint64_t prefix, uint64_t table, uint32_t idx, unsigned int size,
		  const char *name, uint64_t *lo, uint64_t *hi, struct sim_outcome *o)
{
	uint64_t addr = table + (uint64_t)idx * size, vsz = sim->vram.size;

	if (cacheable && sim->tlb.enabled && pde_lookup(&sim->tlb, pdb, depth, prefix, lo, hi))
		return true;
	if (table >= vsz || addr >= vsz || size > vsz - addr) {
		fault(o, VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)depth, idx, name,
		      "table at 0x%" PRIx64 " is beyond VRAM", table);
		return false;
	}
	*lo = sim_vram_rd64(&sim->vram, addr);
	*hi = size == 16 ? sim_vram_rd64(&sim->vram, addr + 8) : 0;
	if (cacheable && sim->tlb.enabled)
		pde_insert(&sim->tlb, pdb, depth, prefix, *lo, *hi);
	return true;
}

static bool poisoned(struct sim_outcome *o, int depth, uint32_t idx, const char *name,
		     uint64_t lo, uint64_t hi)
{
	if (lo != VMMFS_SIM_POISON64 && hi != VMMFS_SIM_POISON64)
		return false;
	fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, depth, idx, name,
	      "entry is uninitialised VRAM (poison)");
	return true;
}

/* A valid leaf PTE (bit 0 set) mapping page_size bytes. */
static void leaf_valid(struct vmmfs_sim *sim, const struct sim_fmt *f, uint64_t e, int depth,
		       uint32_t idx, const char *name, uint64_t page_size, struct sim_outcome *o)
{
	unsigned int aper = (unsigned int)SIM_GET(e, SIM_APER_HI, SIM_APER_LO);
	uint64_t pa;

	if (aper != SIM_PTE_APER_VIDEO) {
		fault(o, VMMFS_SIM_FAULT_OUT_OF_VRAM, depth, idx, name,
		      "PTE aperture %s: not video memory", aper == SIM_PTE_APER_PEER ? "peer" : "system");
		return;
	}
	if (f->version == 2)
		pa = SIM_GET(e, SIM_V2_PTE_ADDR_VID_HI, SIM_V2_PTE_ADDR_VID_LO) << 12;
	else
		pa = e & SIM_MASK(SIM_V3_PTE_ADDR_VID_HI, SIM_V3_PTE_ADDR_VID_LO);
	if (pa & (page_size - 1)) {
		fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, depth, idx, name,
		      "page 0x%" PRIx64 " not aligned to its size 0x%" PRIx64, pa, page_size);
		return;
	}
	if (pa >= sim->vram.size || page_size > sim->vram.size - pa) {
		fault(o, VMMFS_SIM_FAULT_OUT_OF_VRAM, depth, idx, name,
		      "page 0x%" PRIx64 " is beyond VRAM", pa);
		return;
	}
	o->result = VMMFS_SIM_XLATE_OK;
	o->fault = VMMFS_SIM_FAULT_NONE;
	o->pa_base = pa;
	o->page_size = page_size;
	o->level = depth;
	o->index = idx;
	snprintf(o->name, sizeof(o->name), "%s", name);
	if (f->version == 2)
		o->read_only = e & SIM_V2_PTE_RO;
	else
		o->read_only = SIM_GET(e, SIM_V3_PTE_PCF_HI, SIM_V3_PTE_PCF_LO) & SIM_V3_PCF_RO;
}

/* A leaf entry at a PTE level other than the LPT: 4 KiB, 2 MiB, 512 MiB. */
static void leaf(struct vmmfs_sim *sim, const struct sim_fmt *f, uint64_t e, int depth,
		 uint32_t idx, const char *name, uint64_t page_size, struct sim_outcome *o)
{
	unsigned int pcf;

	if (e & SIM_ENTRY_VALID) {
		leaf_valid(sim, f, e, depth, idx, name, page_size, o);
		return;
	}
	if (f->version == 2) {
		if ((e & SIM_V2_PTE_VOL) && (e & SIM_V2_PTE_PRIV))
			fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, depth, idx, name,
			      "undocumented invalid PTE 0x%" PRIx64 " (VOL and PRIV)", e);
		else if (e & SIM_V2_PTE_VOL)
			sparse(o, depth, idx, name, page_size);
		else
			fault(o, VMMFS_SIM_FAULT_PTE_INVALID, depth, idx, name, "PTE not valid");
		return;
	}
	pcf = (unsigned int)SIM_GET(e, SIM_V3_PTE_PCF_HI, SIM_V3_PTE_PCF_LO);
	if (pcf == SIM_V3_PCF_SPARSE)
		sparse(o, depth, idx, name, page_size);
	else if (pcf == SIM_V3_PCF_INVALID || pcf == SIM_V3_PCF_NO_VALID_4KB)
		fault(o, VMMFS_SIM_FAULT_PTE_INVALID, depth, idx, name, "PTE not valid");
	else
		fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, depth, idx, name,
		      "undocumented invalid PTE 0x%" PRIx64 " (PCF %u)", e, pcf);
}

enum lpte_kind { LPTE_VALID, LPTE_ZERO, LPTE_SPARSE, LPTE_NO_4K, LPTE_INVALID, LPTE_UNDOC };

static enum lpte_kind lpte_kind(const struct sim_fmt *f, uint64_t e)
{
	unsigned int pcf;

	if (e & SIM_ENTRY_VALID)
		return LPTE_VALID;
	if (!e)
		return LPTE_ZERO;
	if (f->version == 2) {
		bool vol = e & SIM_V2_PTE_VOL, priv = e & SIM_V2_PTE_PRIV;

		if (vol && priv)
			return LPTE_UNDOC;
		return vol ? LPTE_SPARSE : priv ? LPTE_NO_4K : LPTE_INVALID;
	}
	pcf = (unsigned int)SIM_GET(e, SIM_V3_PTE_PCF_HI, SIM_V3_PTE_PCF_LO);
	switch (pcf) {
	case SIM_V3_PCF_SPARSE:
		return LPTE_SPARSE;
	case SIM_V3_PCF_NO_VALID_4KB:
		return LPTE_NO_4K;
	case SIM_V3_PCF_INVALID:
		return LPTE_INVALID;
	default:
		return LPTE_UNDOC;
	}
}

/* v2 PDE sparse marker: VOL; v3: PCF 1 or 3 (uncached bit). */
static bool pde_sparse_marker(const struct sim_fmt *f, uint64_t e)
{
	if (f->version == 2)
		return e & SIM_V2_PDE_VOL;
	return SIM_GET(e, SIM_V3_PDE_PCF_HI, SIM_V3_PDE_PCF_LO) & 1;
}

static void walk(struct vmmfs_sim *sim, const struct sim_fmt *f, uint64_t pdb, uint64_t va,
		 struct sim_outcome *o)
{
	uint64_t table = pdb, lo, hi, lpt = 0, spt = 0;
	unsigned int d, aper, aper_big, aper_small;
	const struct sim_level *l;
	uint32_t idx, lidx;
	enum lpte_kind lk;

	for (d = 0; d < f->pd0; d++) {
		l = &f->levels[d];
		idx = va_index(va, l->lo, l->bits);
		if (!fetch(sim, pdb, d, true, va >> l->lo, table, idx, 8, l->name, &lo, &hi, o))
			return;
		if (poisoned(o, (int)d, idx, l->name, lo, 0))
			return;
		if (lo & SIM_ENTRY_VALID) {
			/* IS_PTE: a leaf, where the chip has one at this level. */
			if (d == f->pd1 && sim->chip->pd1_512m) {
				leaf(sim, f, lo, (int)d, idx, l->name, 1ull << l->lo, o);
				return;
			}
			fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, (int)d, idx, l->name,
			      "IS_PTE set, but no page can be mapped here");
			return;
		}
		aper = (unsigned int)SIM_GET(lo, SIM_APER_HI, SIM_APER_LO);
		if (aper == SIM_PDE_APER_INVALID) {
			if (pde_sparse_marker(f, lo))
				sparse(o, (int)d, idx, l->name, 1ull << l->lo);
			else
				fault(o, VMMFS_SIM_FAULT_PDE_NOT_PRESENT, (int)d, idx, l->name,
				      "directory entry not present");
			return;
		}
		if (aper != SIM_PDE_APER_VIDEO) {
			fault(o, VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)d, idx, l->name,
			      "directory in system memory (the simulated GPU has none)");
			return;
		}
		if (f->version == 2)
			table = SIM_GET(lo, SIM_V2_PDE_ADDR_HI, SIM_V2_PDE_ADDR_LO) << 12;
		else
			table = lo & SIM_MASK(SIM_V3_PDE_ADDR_HI, SIM_V3_PDE_ADDR_LO);
	}

	/* PD0: the dual entry. */
	l = &f->levels[f->pd0];
	idx = va_index(va, l->lo, l->bits);
	if (!fetch(sim, pdb, f->pd0, true, va >> l->lo, table, idx, 16, l->name, &lo, &hi, o))
		return;
	if (poisoned(o, (int)f->pd0, idx, l->name, lo, hi))
		return;
	if (lo & SIM_ENTRY_VALID) {
		leaf(sim, f, lo, (int)f->pd0, idx, l->name, 1ull << l->lo, o);
		return;
	}
	aper_big = (unsigned int)SIM_GET(lo, SIM_APER_HI, SIM_APER_LO);
	aper_small = (unsigned int)SIM_GET(hi, SIM_APER_HI, SIM_APER_LO);
	if (aper_big == SIM_PDE_APER_INVALID && aper_small == SIM_PDE_APER_INVALID) {
		if (pde_sparse_marker(f, lo))
			sparse(o, (int)f->pd0, idx, l->name, 1ull << l->lo);
		else
			fault(o, VMMFS_SIM_FAULT_PDE_NOT_PRESENT, (int)f->pd0, idx, l->name,
			      "directory entry not present");
		return;
	}
	if ((aper_big != SIM_PDE_APER_INVALID && aper_big != SIM_PDE_APER_VIDEO) ||
	    (aper_small != SIM_PDE_APER_INVALID && aper_small != SIM_PDE_APER_VIDEO)) {
		fault(o, VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)f->pd0, idx, l->name,
		      "page table in system memory (the simulated GPU has none)");
		return;
	}
	if (f->version == 2) {
		lpt = SIM_GET(lo, SIM_V2_DUAL_BIG_ADDR_HI, SIM_V2_DUAL_BIG_ADDR_LO) << 8;
		spt = SIM_GET(hi, SIM_V2_DUAL_SMALL_ADDR_HI, SIM_V2_DUAL_SMALL_ADDR_LO) << 12;
	} else {
		lpt = lo & SIM_MASK(SIM_V3_DUAL_BIG_ADDR_HI, SIM_V3_DUAL_BIG_ADDR_LO);
		spt = hi & SIM_MASK(SIM_V3_DUAL_SMALL_ADDR_HI, SIM_V3_DUAL_SMALL_ADDR_LO);
	}

	if (aper_big == SIM_PDE_APER_VIDEO) {
		uint64_t lpte, unused;

		lidx = va_index(va, LPT_LO, LPT_BITS);
		if (!fetch(sim, pdb, f->pt, false, 0, lpt, lidx, 8, "LPT", &lpte, &unused, o))
			return;
		if (poisoned(o, (int)f->pt, lidx, "LPT", lpte, 0))
			return;
		lk = lpte_kind(f, lpte);
		switch (lk) {
		case LPTE_VALID:
			leaf_valid(sim, f, lpte, (int)f->pt, lidx, "LPT", 1ull << LPT_LO, o);
			return;
		case LPTE_SPARSE:
			sparse(o, (int)f->pt, lidx, "LPT", 1ull << LPT_LO);
			return;
		case LPTE_NO_4K:
			fault(o, VMMFS_SIM_FAULT_NO_4K, (int)f->pt, lidx, "LPT",
			      "big PTE says no valid 4 KiB PTEs");
			return;
		case LPTE_INVALID:
			fault(o, VMMFS_SIM_FAULT_PTE_INVALID, (int)f->pt, lidx, "LPT",
			      "big PTE not valid (0x%" PRIx64 ")", lpte);
			return;
		case LPTE_UNDOC:
			fault(o, VMMFS_SIM_FAULT_BAD_ENCODING, (int)f->pt, lidx, "LPT",
			      "undocumented big PTE 0x%" PRIx64, lpte);
			return;
		case LPTE_ZERO:
			break;
		}
		if (aper_small == SIM_PDE_APER_INVALID) {
			fault(o, VMMFS_SIM_FAULT_PTE_INVALID, (int)f->pt, lidx, "LPT",
			      "big PTE not valid, and PD0[%u] has no small table", idx);
			return;
		}
	}

	/* The small page table. */
	l = &f->levels[f->pt];
	idx = va_index(va, l->lo, l->bits);
	{
		uint64_t pte, unused;

		if (!fetch(sim, pdb, f->pt, false, 0, spt, idx, 8, l->name, &pte, &unused, o))
			return;
		if (poisoned(o, (int)f->pt, idx, l->name, pte, 0))
			return;
		leaf(sim, f, pte, (int)f->pt, idx, l->name, 1ull << l->lo, o);
	}
}

int vmmfs_sim_translate(struct vmmfs_sim *sim, uint64_t pdb, uint64_t va,
			char access, struct vmmfs_sim_xlate *out)
{
	const struct sim_fmt *f = sim_fmt(sim);
	const struct sim_outcome *cached = NULL;
	struct sim_outcome o;

	if (access != 'r' && access != 'w')
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (va >> f->va_bits) {
		out->result = VMMFS_SIM_XLATE_FAULT;
		out->fault = VMMFS_SIM_FAULT_VA_RANGE;
		snprintf(out->reason, sizeof(out->reason),
			 "VA 0x%" PRIx64 " is beyond the %u-bit address space", va, f->va_bits);
		return 0;
	}
	memset(&o, 0, sizeof(o));
	pthread_mutex_lock(&sim->lock);
	if (sim->tlb.enabled)
		cached = leaf_lookup(&sim->tlb, pdb, va >> 12);
	if (cached) {
		o = *cached;
		out->from_tlb = true;
	} else if (pdb & 0xfff) {
		fault(&o, VMMFS_SIM_FAULT_BAD_ENCODING, 0, 0, f->levels[0].name,
		      "PDB 0x%" PRIx64 " is not 4 KiB aligned", pdb);
	} else {
		walk(sim, f, pdb, va, &o);
		if (sim->tlb.enabled)
			leaf_insert(&sim->tlb, pdb, va >> 12, &o);
	}
	pthread_mutex_unlock(&sim->lock);

	out->result = o.result;
	out->fault = o.fault;
	out->level = o.level;
	out->index = o.index;
	out->page_size = o.page_size;
	out->read_only = o.read_only;
	memcpy(out->reason, o.reason, sizeof(out->reason));
	if (o.result == VMMFS_SIM_XLATE_OK) {
		out->pa = o.pa_base + (va & (o.page_size - 1));
		if (access == 'w' && o.read_only) {
			out->result = VMMFS_SIM_XLATE_FAULT;
			out->fault = VMMFS_SIM_FAULT_READ_ONLY;
			snprintf(out->reason, sizeof(out->reason), "%s[%u]: write to a read-only page",
				 o.name, o.index);
		}
	}
	return 0;
}
