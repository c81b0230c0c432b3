/* SPDX-License-Identifier: MIT */
/*
 * MMU formats: the parts every version shares.
 *
 * mmu_v2.c and mmu_v3.c are data only: a level table and a struct
 * mmu_layout of field masks. Everything here reads those two and knows no
 * bit position, so a field is defined once, next to its hardware name, and
 * encode and decode cannot disagree about it.
 *
 * Aperture encodings are the same in v2 and v3 (nvidia-mmu.md §5.3), but
 * differ between leaf and directory entries: a PTE says 0 = VRAM, a PDE
 * says 0 = no table.
 */
#include <string.h>
#include "internal.h"
#include "mmu.h"

/* enum mmu_aperture -> PTE field value, and back. */
static const uint8_t pte_aper_code[4] = {
	[MMU_APER_VID] = 0, [MMU_APER_PEER] = 1, [MMU_APER_SYS] = 2, [MMU_APER_SYSNC] = 3,
};
static const enum mmu_aperture pte_aper_of_code[4] = {
	MMU_APER_VID, MMU_APER_PEER, MMU_APER_SYS, MMU_APER_SYSNC,
};

/* enum mmu_aperture -> PDE field value (0 = INVALID, so no PEER), and back. */
#define PDE_APER_NONE 0
static const uint8_t pde_aper_code[4] = {
	[MMU_APER_VID] = 1, [MMU_APER_PEER] = PDE_APER_NONE, [MMU_APER_SYS] = 2, [MMU_APER_SYSNC] = 3,
};
static const enum mmu_aperture pde_aper_of_code[4] = {
	MMU_APER_VID /* unused: absent */, MMU_APER_VID, MMU_APER_SYS, MMU_APER_SYSNC,
};

const char *mmu_aperture_name(enum mmu_aperture aper)
{
	static const char *const names[4] = {
		[MMU_APER_VID] = "vid", [MMU_APER_PEER] = "peer",
		[MMU_APER_SYS] = "sys", [MMU_APER_SYSNC] = "sysnc",
	};

	return (unsigned int)aper < ARRAY_SIZE(names) ? names[aper] : "?";
}

const struct mmu_fmt *mmu_fmt_get(int version)
{
	switch (version) {
	case 2:
		return &mmu_fmt_v2;
	case 3:
		return &mmu_fmt_v3;
	default:
		return NULL;
	}
}

/* ---- field helpers -------------------------------------------------------- */

/* Largest value a (non-zero) field holds. */
static uint64_t field_max(uint64_t mask)
{
	return mask >> __builtin_ctzll(mask);
}

static bool field_fits(uint64_t mask, uint64_t val)
{
	return mask && val <= field_max(mask);
}

/* ORs bit into *raw when set; a flag the format lacks (bit 0) cannot be set. */
static int flag_put(uint64_t *raw, bool set, uint64_t bit)
{
	if (!set)
		return 0;
	if (!bit)
		return -EINVAL;
	*raw |= bit;
	return 0;
}

static bool flag_get(uint64_t raw, uint64_t bit)
{
	return (raw & bit) != 0;
}

/* ---- format consistency ---------------------------------------------------- */

/* First table PA a directory half can address in VRAM. */
static uint64_t pde_vid_limit(const struct mmu_pde_layout *pl)
{
	return (field_max(pl->addr_vid) + 1) << pl->addr_shift;
}

#define fmt_bad(f, fmt, ...) do { \
	log_err("MMU v%d format table is inconsistent: " fmt, (f)->version, ##__VA_ARGS__); \
	return -EINVAL; } while (0)

int mmu_fmt_check(const struct mmu_fmt *f)
{
	const struct mmu_layout *L = f->layout;
	const struct mmu_level *pt, *pd0;
	uint64_t pde_limit;
	int i;

	if (f->nlevels < 2 || f->nlevels > MMU_MAX_LEVELS || !f->levels || !L)
		fmt_bad(f, "%d levels", f->nlevels);
	pt = &f->levels[f->nlevels - 1];
	if (pt->shift != 12)
		fmt_bad(f, "the PT indexes from VA bit %u, not 12", pt->shift);
	for (i = 0; i < f->nlevels; i++) {
		const struct mmu_level *l = &f->levels[i];

		if (l->bits == 0 || l->bits > 12)
			fmt_bad(f, "%s has %u index bits", l->name, l->bits);
		if (l->entry_size != (l->dual ? 16 : 8))
			fmt_bad(f, "%s entries are %u bytes", l->name, l->entry_size);
		if (l->dual != (i == f->pd0))
			fmt_bad(f, "%s: dual is %d, but PD0 is level %d", l->name, l->dual, f->pd0);
		if (i > 0 && mmu_table_bytes(l) != 4096)
			fmt_bad(f, "%s tables are %llu bytes, not 4096", l->name,
				(unsigned long long)mmu_table_bytes(l));
		if (i == 0 && mmu_table_bytes(l) > 4096)
			fmt_bad(f, "the root %s is %llu bytes", l->name,
				(unsigned long long)mmu_table_bytes(l));
		if (i + 1 < f->nlevels && l->shift != l[1].shift + l[1].bits)
			fmt_bad(f, "%s starts at VA bit %u, but %s ends below bit %u",
				l->name, l->shift, l[1].name, l[1].shift + l[1].bits);
	}
	if (f->levels[0].shift + f->levels[0].bits != f->va_bits)
		fmt_bad(f, "the root covers %u VA bits, not %d",
			f->levels[0].shift + f->levels[0].bits, f->va_bits);
	if (f->pd0 != f->nlevels - 2)
		fmt_bad(f, "PD0 is level %d of %d", f->pd0, f->nlevels);
	pd0 = &f->levels[f->pd0];
	if (f->lpt.dual || f->lpt.entry_size != 8 || f->lpt.shift <= pt->shift ||
	    f->lpt.shift + f->lpt.bits != pd0->shift || mmu_table_bytes(&f->lpt) != 256)
		fmt_bad(f, "the big-page table covers VA %u:%u in %llu bytes",
			f->lpt.shift + f->lpt.bits - 1, f->lpt.shift,
			(unsigned long long)mmu_table_bytes(&f->lpt));
	if (f->max_vid_pfn != field_max(L->pte.addr[MMU_APER_VID]) + 1)
		fmt_bad(f, "max_vid_pfn 0x%llx does not match the PTE address field",
			(unsigned long long)f->max_vid_pfn);
	pde_limit = MIN(pde_vid_limit(&L->pde),
			MIN(pde_vid_limit(&L->dual_big), pde_vid_limit(&L->dual_small)));
	if (f->max_pde_pa != pde_limit)
		fmt_bad(f, "max_pde_pa 0x%llx, but the PDE address fields end at 0x%llx",
			(unsigned long long)f->max_pde_pa, (unsigned long long)pde_limit);
	return 0;
}

/* ---- leaf entries ------------------------------------------------------------ */

int mmu_pte_encode(const struct mmu_fmt *f, const struct mmu_pte *pte, uint64_t *raw)
{
	const struct mmu_pte_layout *pl = &f->layout->pte;
	uint64_t v, addr;
	int r = 0;

	switch (pte->kind) {
	case MMU_PTE_VALID:
		break;
	case MMU_PTE_INVALID:
		*raw = 0;
		return 0;
	case MMU_PTE_SPARSE:
		*raw = pl->raw_sparse;
		return 0;
	case MMU_PTE_NO_4K:
		*raw = pl->raw_no4k;
		return 0;
	default: /* MMU_PTE_OTHER says nothing about the bits */
		return -EINVAL;
	}

	if ((unsigned int)pte->aper >= ARRAY_SIZE(pl->addr) || !pl->addr[pte->aper])
		return -EINVAL;
	addr = pl->addr[pte->aper];
	if (!field_fits(addr, pte->pfn))
		return -ERANGE;
	v = pl->valid | FIELD_PREP(pl->aperture, pte_aper_code[pte->aper]) | FIELD_PREP(addr, pte->pfn);

	if (pte->aper == MMU_APER_PEER) {
		if (!field_fits(pl->peer, pte->peer))
			return pl->peer ? -ERANGE : -EINVAL;
		v |= FIELD_PREP(pl->peer, pte->peer);
	} else if (pte->peer) {
		return -EINVAL;
	}

	if (!field_fits(pl->kind, pte->kind_field))
		return -ERANGE;
	v |= FIELD_PREP(pl->kind, pte->kind_field);

	if (pte->comptagline) {
		/* v2 shares these bits with the sysmem address. */
		if (!pl->comptagline || (pl->comptagline & addr))
			return -EINVAL;
		if (!field_fits(pl->comptagline, pte->comptagline))
			return -ERANGE;
		v |= FIELD_PREP(pl->comptagline, pte->comptagline);
	}

	r |= flag_put(&v, pte->uncached, pl->uncached);
	r |= flag_put(&v, pte->encrypted, pl->encrypted);
	r |= flag_put(&v, pte->privileged, pl->privileged);
	r |= flag_put(&v, pte->read_only, pl->read_only);
	r |= flag_put(&v, pte->atomic_disable, pl->atomic_disable);
	r |= flag_put(&v, pte->acd, pl->acd);
	if (r)
		return -EINVAL;
	*raw = v;
	return 0;
}

void mmu_pte_decode(const struct mmu_fmt *f, uint64_t raw, bool is_lpte, struct mmu_pte *pte)
{
	const struct mmu_pte_layout *pl = &f->layout->pte;
	uint64_t addr;

	memset(pte, 0, sizeof(*pte));
	if (!(raw & pl->valid)) {
		if (raw == 0)
			pte->kind = MMU_PTE_INVALID;
		else if (raw == pl->raw_sparse)
			pte->kind = MMU_PTE_SPARSE;
		else if (raw == pl->raw_no4k && is_lpte)
			pte->kind = MMU_PTE_NO_4K;
		else
			pte->kind = MMU_PTE_OTHER;
		return;
	}

	pte->kind = MMU_PTE_VALID;
	pte->aper = pte_aper_of_code[FIELD_GET(pl->aperture, raw) & 3];
	addr = pl->addr[pte->aper];
	pte->pfn = FIELD_GET(addr, raw);
	if (pte->aper == MMU_APER_PEER && pl->peer)
		pte->peer = (uint8_t)FIELD_GET(pl->peer, raw);
	if (pl->kind)
		pte->kind_field = (uint8_t)FIELD_GET(pl->kind, raw);
	if (pl->comptagline && !(pl->comptagline & addr))
		pte->comptagline = (uint32_t)FIELD_GET(pl->comptagline, raw);
	pte->uncached = flag_get(raw, pl->uncached);
	pte->encrypted = flag_get(raw, pl->encrypted);
	pte->privileged = flag_get(raw, pl->privileged);
	pte->read_only = flag_get(raw, pl->read_only);
	pte->atomic_disable = flag_get(raw, pl->atomic_disable);
	pte->acd = flag_get(raw, pl->acd);
}

uint64_t mmu_pte_raw_sparse(const struct mmu_fmt *f)
{
	return f->layout->pte.raw_sparse;
}

uint64_t mmu_lpte_raw_no4k(const struct mmu_fmt *f)
{
	return f->layout->pte.raw_no4k;
}

/* ---- directory entries ---------------------------------------------------- */

static int pde_half_encode(const struct mmu_pde_layout *pl, const struct mmu_pde *pde, uint64_t *raw)
{
	uint64_t v = 0, addr;

	if (!pde->present) {
		/* Absent: only the sparse marker and NO_ATS mean anything. */
		if (pde->addr || pde->uncached)
			return -EINVAL;
		if (flag_put(&v, pde->sparse, pl->uncached) || flag_put(&v, pde->no_ats, pl->no_ats))
			return -EINVAL;
		*raw = v;
		return 0;
	}

	if (pde->sparse || (unsigned int)pde->aper >= ARRAY_SIZE(pde_aper_code) ||
	    pde_aper_code[pde->aper] == PDE_APER_NONE)
		return -EINVAL;
	addr = pde->aper == MMU_APER_VID ? pl->addr_vid : pl->addr_sys;
	if (!IS_ALIGNED(pde->addr, 1ull << pl->addr_shift))
		return -EINVAL;
	if (!field_fits(addr, pde->addr >> pl->addr_shift))
		return -ERANGE;
	v = FIELD_PREP(pl->aperture, pde_aper_code[pde->aper]) |
	    FIELD_PREP(addr, pde->addr >> pl->addr_shift);
	/* A flag inside the address field (v2 NO_ATS in the big half) is
	 * address there, and does not exist while a table is present. */
	if (flag_put(&v, pde->uncached, pl->uncached & ~addr) ||
	    flag_put(&v, pde->no_ats, pl->no_ats & ~addr))
		return -EINVAL;
	*raw = v;
	return 0;
}

static void pde_half_decode(const struct mmu_pde_layout *pl, uint64_t raw, struct mmu_pde *pde)
{
	unsigned int code = (unsigned int)FIELD_GET(pl->aperture, raw) & 3;
	uint64_t addr;

	memset(pde, 0, sizeof(*pde));
	if (code == PDE_APER_NONE) {
		pde->sparse = flag_get(raw, pl->uncached);
		pde->no_ats = flag_get(raw, pl->no_ats);
		return;
	}
	pde->present = true;
	pde->aper = pde_aper_of_code[code];
	addr = pde->aper == MMU_APER_VID ? pl->addr_vid : pl->addr_sys;
	pde->addr = FIELD_GET(addr, raw) << pl->addr_shift;
	pde->uncached = flag_get(raw, pl->uncached & ~addr);
	pde->no_ats = flag_get(raw, pl->no_ats & ~addr);
}

int mmu_pde_encode(const struct mmu_fmt *f, const struct mmu_pde *pde, uint64_t *raw)
{
	return pde_half_encode(&f->layout->pde, pde, raw);
}

void mmu_pde_decode(const struct mmu_fmt *f, uint64_t raw, struct mmu_pde *pde, bool *is_pte)
{
	const struct mmu_pde_layout *pl = &f->layout->pde;
	bool leaf = (raw & pl->is_pte) != 0;

	if (is_pte)
		*is_pte = leaf;
	if (leaf)
		memset(pde, 0, sizeof(*pde));
	else
		pde_half_decode(pl, raw, pde);
}

int mmu_dual_encode(const struct mmu_fmt *f, const struct mmu_pde *big,
		    const struct mmu_pde *small, uint64_t raw[2])
{
	const struct mmu_layout *L = f->layout;
	struct mmu_pde s = *small;
	uint64_t lo, hi;
	int r;

	if (L->dual_shared_no_ats) {
		/* One bit, in the low word, for the whole entry. */
		if (big->no_ats != small->no_ats)
			return -EINVAL;
		s.no_ats = false;
	}
	r = pde_half_encode(&L->dual_big, big, &lo);
	if (r)
		return r;
	r = pde_half_encode(&L->dual_small, &s, &hi);
	if (r)
		return r;
	raw[0] = lo;
	raw[1] = hi;
	return 0;
}

void mmu_dual_decode(const struct mmu_fmt *f, const uint64_t raw[2],
		     struct mmu_pde *big, struct mmu_pde *small, bool *is_pte)
{
	const struct mmu_layout *L = f->layout;
	bool leaf = (raw[0] & L->dual_big.is_pte) != 0;

	if (is_pte)
		*is_pte = leaf;
	if (leaf) {
		/* A 2 MiB PTE in the low word; the high word is not consulted. */
		memset(big, 0, sizeof(*big));
		memset(small, 0, sizeof(*small));
		return;
	}
	pde_half_decode(&L->dual_big, raw[0], big);
	pde_half_decode(&L->dual_small, raw[1], small);
	if (L->dual_shared_no_ats)
		small->no_ats = big->no_ats;
}

/* ---- fast paths: what vmmfs writes for VRAM ------------------------------- */

uint64_t mmu_pte_vid_template(const struct mmu_fmt *f, bool read_only)
{
	const struct mmu_pte pte = {
		.kind = MMU_PTE_VALID, .aper = MMU_APER_VID, .pfn = 0, .read_only = read_only,
		.atomic_disable = f->layout->vid_pte_atomic_disable,
	};
	uint64_t raw = 0;

	/* Cannot fail: PFN 0, and the flags come from the format itself. */
	if (VMMFS_WARN_ON(mmu_pte_encode(f, &pte, &raw)))
		return 0;
	return raw;
}

unsigned int mmu_pte_vid_pfn_shift(const struct mmu_fmt *f)
{
	return (unsigned int)__builtin_ctzll(f->layout->pte.addr[MMU_APER_VID]);
}

/* A present VRAM directory half at pa, or an absent one for pa == 0. */
static struct mmu_pde vid_pde(const struct mmu_fmt *f, uint64_t pa, bool present)
{
	if (!present)
		return (struct mmu_pde){ .present = false };
	return (struct mmu_pde){ .present = true, .aper = MMU_APER_VID, .addr = pa,
				 .no_ats = f->layout->vid_pde_no_ats };
}

uint64_t mmu_pde_vid(const struct mmu_fmt *f, uint64_t pa)
{
	struct mmu_pde pde = vid_pde(f, pa, true);
	uint64_t raw;
	int r = mmu_pde_encode(f, &pde, &raw);

	if (r) {
		log_err("internal error: MMU v%d cannot point a directory entry at VRAM 0x%llx (%d)",
			f->version, (unsigned long long)pa, r);
		return 0;
	}
	return raw;
}

void mmu_dual_vid(const struct mmu_fmt *f, uint64_t big_pa, uint64_t small_pa, uint64_t raw[2])
{
	struct mmu_pde big = vid_pde(f, big_pa, big_pa != 0);
	struct mmu_pde small = vid_pde(f, small_pa, small_pa != 0);
	int r;

	/* A shared NO_ATS bit (v2) covers the absent half too. */
	if (f->layout->dual_shared_no_ats)
		big.no_ats = small.no_ats = big.no_ats || small.no_ats;
	r = mmu_dual_encode(f, &big, &small, raw);
	if (r) {
		log_err("internal error: MMU v%d cannot point a dual directory entry at VRAM "
			"0x%llx (big) / 0x%llx (small) (%d)", f->version,
			(unsigned long long)big_pa, (unsigned long long)small_pa, r);
		raw[0] = raw[1] = 0;
	}
}
