/* SPDX-License-Identifier: MIT */
/*
 * MMU formats: level tables, entry encode/decode, known answers.
 *
 * Known answers come from nvidia-mmu.md §5.4/§5.5 and big-pages-and-tlb.md
 * §1.2, §2.1, §3 and §6; expected bit positions are written out here from
 * those documents, not taken from core/mmu_v*.c, so a wrong field shows up.
 */
#include <string.h>
#include "helper.h"
#include "internal.h"
#include "mmu.h"

static const struct mmu_fmt *const fmts[] = { &mmu_fmt_v2, &mmu_fmt_v3 };

/* ---- comparison helpers ---------------------------------------------------- */

static bool pte_eq(const struct mmu_pte *a, const struct mmu_pte *b)
{
	return a->kind == b->kind && a->aper == b->aper && a->pfn == b->pfn &&
	       a->read_only == b->read_only && a->privileged == b->privileged &&
	       a->atomic_disable == b->atomic_disable && a->uncached == b->uncached &&
	       a->acd == b->acd && a->kind_field == b->kind_field && a->peer == b->peer &&
	       a->encrypted == b->encrypted && a->comptagline == b->comptagline;
}

static void pte_print(const char *what, const struct mmu_pte *p)
{
	fprintf(stderr, "    %s: kind %d aper %s pfn 0x%llx ro %d priv %d atd %d unc %d acd %d "
		"enc %d kindf 0x%x peer %u ctl 0x%x\n", what, p->kind, mmu_aperture_name(p->aper),
		(unsigned long long)p->pfn, p->read_only, p->privileged, p->atomic_disable,
		p->uncached, p->acd, p->encrypted, p->kind_field, p->peer, p->comptagline);
}

static bool pde_eq(const struct mmu_pde *a, const struct mmu_pde *b)
{
	return a->present == b->present && a->sparse == b->sparse && a->aper == b->aper &&
	       a->addr == b->addr && a->uncached == b->uncached && a->no_ats == b->no_ats;
}

static void pde_print(const char *what, const struct mmu_pde *p)
{
	fprintf(stderr, "    %s: present %d sparse %d aper %s addr 0x%llx unc %d no_ats %d\n",
		what, p->present, p->sparse, mmu_aperture_name(p->aper),
		(unsigned long long)p->addr, p->uncached, p->no_ats);
}

#define VT_PTE_EQ(f, actual, expected) do { \
	bool __ok = pte_eq((actual), (expected)); \
	if (!__ok) { \
		fprintf(stderr, "  %s:%d: v%d PTE differs\n", __FILE__, __LINE__, (f)->version); \
		pte_print("is      ", (actual)); pte_print("expected", (expected)); \
	} \
	CU_ASSERT(__ok); } while (0)

#define VT_PDE_EQ(f, actual, expected) do { \
	bool __ok = pde_eq((actual), (expected)); \
	if (!__ok) { \
		fprintf(stderr, "  %s:%d: v%d PDE differs\n", __FILE__, __LINE__, (f)->version); \
		pde_print("is      ", (actual)); pde_print("expected", (expected)); \
	} \
	CU_ASSERT(__ok); } while (0)

static struct mmu_pte vid_pte(uint64_t pfn, bool ro)
{
	return (struct mmu_pte){ .kind = MMU_PTE_VALID, .aper = MMU_APER_VID, .pfn = pfn,
				 .read_only = ro };
}

static struct mmu_pde pde_at(enum mmu_aperture aper, uint64_t addr)
{
	return (struct mmu_pde){ .present = true, .aper = aper, .addr = addr };
}

/* Encodes, expects success and raw == expected, and decodes back to *pte. */
static void check_pte_known(const struct mmu_fmt *f, const struct mmu_pte *pte, bool is_lpte,
			    uint64_t expected)
{
	struct mmu_pte back;
	uint64_t raw = ~0ull;

	VT_EQ_INT(mmu_pte_encode(f, pte, &raw), 0);
	VT_EQ_U64(raw, expected);
	mmu_pte_decode(f, expected, is_lpte, &back);
	VT_PTE_EQ(f, &back, pte);
}

static void check_pde_known(const struct mmu_fmt *f, const struct mmu_pde *pde, uint64_t expected)
{
	struct mmu_pde back;
	uint64_t raw = ~0ull;
	bool is_pte = true;

	VT_EQ_INT(mmu_pde_encode(f, pde, &raw), 0);
	VT_EQ_U64(raw, expected);
	mmu_pde_decode(f, expected, &back, &is_pte);
	CU_ASSERT_FALSE(is_pte);
	VT_PDE_EQ(f, &back, pde);
}

static void check_dual_known(const struct mmu_fmt *f, const struct mmu_pde *big,
			     const struct mmu_pde *small, uint64_t lo, uint64_t hi)
{
	uint64_t raw[2] = { ~0ull, ~0ull };
	const uint64_t exp[2] = { lo, hi };
	struct mmu_pde b, s;
	bool is_pte = true;

	VT_EQ_INT(mmu_dual_encode(f, big, small, raw), 0);
	VT_EQ_U64(raw[0], lo);
	VT_EQ_U64(raw[1], hi);
	mmu_dual_decode(f, exp, &b, &s, &is_pte);
	CU_ASSERT_FALSE(is_pte);
	VT_PDE_EQ(f, &b, big);
	VT_PDE_EQ(f, &s, small);
}

/* ---- level tables ------------------------------------------------------------ */

struct level_exp { const char *name; unsigned int shift, bits, entry_size; bool dual; };

static void check_levels(const struct mmu_fmt *f, int version, int va_bits,
			 const struct level_exp *exp, int n, uint64_t root_bytes)
{
	uint64_t covered = GENMASK(11, 0); /* the page offset */
	int i;

	VT_EQ_INT(f->version, version);
	VT_EQ_INT(f->va_bits, va_bits);
	VT_EQ_INT(f->nlevels, n);
	VT_EQ_INT(f->pd0, n - 2);
	for (i = 0; i < n && i < f->nlevels; i++) {
		const struct mmu_level *l = &f->levels[i];
		uint64_t bits = GENMASK(l->shift + l->bits - 1, l->shift);

		CU_ASSERT_STRING_EQUAL(l->name, exp[i].name);
		VT_EQ_INT(l->shift, exp[i].shift);
		VT_EQ_INT(l->bits, exp[i].bits);
		VT_EQ_INT(l->entry_size, exp[i].entry_size);
		VT_EQ_INT(l->dual, exp[i].dual);
		/* No overlap with any other level or the page offset. */
		VT_EQ_U64(covered & bits, 0);
		covered |= bits;
		VT_EQ_U64(mmu_entries(l), 1ull << exp[i].bits);
		VT_EQ_U64(mmu_entry_span(l), 1ull << exp[i].shift);
		VT_EQ_U64(mmu_table_span(l), 1ull << (exp[i].shift + exp[i].bits));
		VT_EQ_U64(mmu_table_bytes(l), i == 0 ? root_bytes : 4096);
	}
	/* No gap: the levels and the offset cover VA bits va_bits-1:0 exactly. */
	VT_EQ_U64(covered, GENMASK(va_bits - 1, 0));
	VT_EQ_U64(mmu_table_span(&f->levels[0]), 1ull << va_bits);

	/* LPT: VA 20:16 under PD0, 32 x 8 B = 256 B. */
	CU_ASSERT_STRING_EQUAL(f->lpt.name, "LPT");
	VT_EQ_INT(f->lpt.shift, 16);
	VT_EQ_INT(f->lpt.bits, 5);
	VT_EQ_INT(f->lpt.entry_size, 8);
	CU_ASSERT_FALSE(f->lpt.dual);
	VT_EQ_U64(mmu_table_bytes(&f->lpt), 256);
	VT_EQ_U64(mmu_table_span(&f->lpt), mmu_entry_span(&f->levels[f->pd0]));
	VT_EQ_INT(mmu_fmt_check(f), 0);
}

static void test_levels_v2(void)
{
	static const struct level_exp exp[] = {
		{ "PD3", 47, 2, 8, false }, { "PD2", 38, 9, 8, false }, { "PD1", 29, 9, 8, false },
		{ "PD0", 21, 8, 16, true }, { "PT", 12, 9, 8, false },
	};

	check_levels(&mmu_fmt_v2, 2, 49, exp, 5, 32);
	VT_EQ_U64(mmu_fmt_v2.max_vid_pfn, 1ull << 25);
	VT_EQ_U64(mmu_fmt_v2.max_pde_pa, 1ull << 37);
}

static void test_levels_v3(void)
{
	static const struct level_exp exp[] = {
		{ "PD4", 56, 1, 8, false }, { "PD3", 47, 9, 8, false }, { "PD2", 38, 9, 8, false },
		{ "PD1", 29, 9, 8, false }, { "PD0", 21, 8, 16, true }, { "PT", 12, 9, 8, false },
	};

	check_levels(&mmu_fmt_v3, 3, 57, exp, 6, 16);
	VT_EQ_U64(mmu_fmt_v3.max_vid_pfn, 1ull << 28);
	VT_EQ_U64(mmu_fmt_v3.max_pde_pa, 1ull << 52);
}

static void test_fmt_get(void)
{
	CU_ASSERT_PTR_EQUAL(mmu_fmt_get(2), &mmu_fmt_v2);
	CU_ASSERT_PTR_EQUAL(mmu_fmt_get(3), &mmu_fmt_v3);
	CU_ASSERT_PTR_NULL(mmu_fmt_get(0));
	CU_ASSERT_PTR_NULL(mmu_fmt_get(1));
	CU_ASSERT_PTR_NULL(mmu_fmt_get(4));
	CU_ASSERT_PTR_NULL(mmu_fmt_get(-2));
}

static void test_aperture_name(void)
{
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name(MMU_APER_VID), "vid");
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name(MMU_APER_PEER), "peer");
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name(MMU_APER_SYS), "sys");
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name(MMU_APER_SYSNC), "sysnc");
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name((enum mmu_aperture)4), "?");
	CU_ASSERT_STRING_EQUAL(mmu_aperture_name((enum mmu_aperture)-1), "?");
}

/* mmu_fmt_check must reject each kind of broken table. */
enum breakage { BRK_GAP, BRK_OVERLAP, BRK_VA_BITS, BRK_ENTRY_SIZE, BRK_DUAL, BRK_PT_SHIFT,
		BRK_LPT, BRK_MAX_PFN, BRK_MAX_PDE, BRK_COUNT };

static void test_fmt_check_rejects(void)
{
	size_t fi;
	int b;

	vmmfs_log_set_stderr_level(-1); /* the rejections log on purpose */
	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		for (b = 0; b < BRK_COUNT; b++) {
			struct mmu_level lv[MMU_MAX_LEVELS];
			struct mmu_fmt f = *fmts[fi];

			memcpy(lv, f.levels, sizeof(lv[0]) * (size_t)f.nlevels);
			f.levels = lv;
			switch (b) {
			case BRK_GAP: lv[1].shift++; lv[0].shift++; break;
			case BRK_OVERLAP: lv[2].bits++; break;
			case BRK_VA_BITS: f.va_bits--; break;
			case BRK_ENTRY_SIZE: lv[1].entry_size = 16; break;
			case BRK_DUAL: lv[f.pd0].dual = false; break;
			case BRK_PT_SHIFT: lv[f.nlevels - 1].shift = 13; break;
			case BRK_LPT: f.lpt.bits = 4; break;
			case BRK_MAX_PFN: f.max_vid_pfn++; break;
			case BRK_MAX_PDE: f.max_pde_pa <<= 1; break;
			}
			if (mmu_fmt_check(&f) != -EINVAL) {
				fprintf(stderr, "  v%d breakage %d accepted\n", f.version, b);
				CU_FAIL("mmu_fmt_check accepted a broken table");
			}
		}
	}
	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
}

static void test_index(void)
{
	/* v2: PD3 3, PD2 0x155, PD1 0x0AA, PD0 0xAB, PT 0x1CD, offset 0x123. */
	const struct mmu_fmt *f = &mmu_fmt_v2;
	uint64_t va = (3ull << 47) | (0x155ull << 38) | (0xAAull << 29) | (0xABull << 21) |
		      (0x1CDull << 12) | 0x123;
	static const uint32_t v2_idx[] = { 3, 0x155, 0xAA, 0xAB, 0x1CD };
	static const uint32_t v3_idx[] = { 1, 0x1FF, 0x000, 0x101, 0x80, 0x1 };
	int i;

	for (i = 0; i < f->nlevels; i++)
		VT_EQ_INT(mmu_index(&f->levels[i], va), v2_idx[i]);
	VT_EQ_INT(mmu_index(&f->lpt, va), 0x1C);
	/* The highest VA: every index at its maximum. */
	for (i = 0; i < f->nlevels; i++)
		VT_EQ_INT(mmu_index(&f->levels[i], GENMASK(48, 0)), mmu_entries(&f->levels[i]) - 1);
	/* Bits above va_bits do not leak into the root index. */
	VT_EQ_INT(mmu_index(&f->levels[0], 1ull << 49), 0);

	/* v3: PD4 1, PD3 0x1FF, PD2 0, PD1 0x101, PD0 0x80, PT 1, 64 KiB index 0. */
	f = &mmu_fmt_v3;
	va = (1ull << 56) | (0x1FFull << 47) | (0x101ull << 29) | (0x80ull << 21) | (1ull << 12);
	for (i = 0; i < f->nlevels; i++)
		VT_EQ_INT(mmu_index(&f->levels[i], va), v3_idx[i]);
	VT_EQ_INT(mmu_index(&f->lpt, va), 0);
	VT_EQ_INT(mmu_index(&f->lpt, va | 0x1F0000), 0x1F);
	VT_EQ_INT(mmu_index(&f->levels[0], 1ull << 57), 0);
}

/* Random VAs reassemble from their indices and page offset. */
static void test_index_random(void)
{
	size_t fi;
	int n;

	vt_seed("mmu index");
	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];

		for (n = 0; n < 10000; n++) {
			uint64_t va = vt_rand() & GENMASK(f->va_bits - 1, 0), back = va & 0xFFF;
			int i;

			for (i = 0; i < f->nlevels; i++)
				back |= (uint64_t)mmu_index(&f->levels[i], va) << f->levels[i].shift;
			if (back != va) {
				VT_EQ_U64(back, va);
				break;
			}
			if (mmu_index(&f->lpt, va) != ((va >> 16) & 31)) {
				VT_EQ_INT(mmu_index(&f->lpt, va), (va >> 16) & 31);
				break;
			}
		}
	}
}

/* ---- known answers -------------------------------------------------------- */

static void test_known_pte(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	struct mmu_pte p;

	/* v2: 1 | pfn << 8 | ro << 6 (nvidia-mmu.md §5.4). */
	p = vid_pte(0x12345, false);
	check_pte_known(v2, &p, false, 0x01234501);
	p = vid_pte(0x12345, true);
	check_pte_known(v2, &p, false, 0x01234541);
	VT_EQ_U64(mmu_pte_vid(v2, mmu_pte_vid_template(v2, false), 0x12345), 0x01234501);
	VT_EQ_U64(mmu_pte_vid(v2, mmu_pte_vid_template(v2, true), 0x12345), 0x01234541);

	/* v3: PA | PCF 0x08 / 0x0C << 3 | 1 (nvidia-mmu.md §5.5). */
	p = vid_pte(0x12345, false);
	p.atomic_disable = true;
	check_pte_known(v3, &p, false, 0x12345041);
	p.read_only = true;
	check_pte_known(v3, &p, false, 0x12345061);
	VT_EQ_U64(mmu_pte_vid(v3, mmu_pte_vid_template(v3, false), 0x12345), 0x12345041);
	VT_EQ_U64(mmu_pte_vid(v3, mmu_pte_vid_template(v3, true), 0x12345), 0x12345061);
	VT_EQ_U64(mmu_pte_vid_template(v2, false), 0x01);
	VT_EQ_U64(mmu_pte_vid_template(v2, true), 0x41);
	VT_EQ_U64(mmu_pte_vid_template(v3, false), 0x41);
	VT_EQ_U64(mmu_pte_vid_template(v3, true), 0x61);
	VT_EQ_INT(mmu_pte_vid_pfn_shift(v2), 8);
	VT_EQ_INT(mmu_pte_vid_pfn_shift(v3), 12);

	/* UVM: VID 0xBBBBBBB000, RO, no atomics, cached, KIND 6 (big-pages §3). */
	p = vid_pte(0xBBBBBBB, true);
	p.atomic_disable = true;
	p.kind_field = 6;
	check_pte_known(v3, &p, false, 0xBBBBBBB661);

	/* nova's sysmem PTEs (nvidia-mmu.md §5.4/§5.5): v2 uses the sys field and
	 * VOL; v3 PCF 0x09 / 0x0D with aperture 2. */
	p = (struct mmu_pte){ .kind = MMU_PTE_VALID, .aper = MMU_APER_SYS, .pfn = 0x12345,
			      .uncached = true };
	check_pte_known(v2, &p, false, 0x0123450D);
	p.atomic_disable = true;
	check_pte_known(v3, &p, false, 0x12345000 | (0x09 << 3) | (2 << 1) | 1);
	p.read_only = true;
	check_pte_known(v3, &p, false, 0x12345000 | (0x0D << 3) | (2 << 1) | 1);
}

/* Each field at its documented position, one at a time. */
static void test_pte_bits(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	struct mmu_pte p;

#define ONE(f, member, value, expected) do { \
	p = vid_pte(0, false); p.member = value; check_pte_known(f, &p, false, expected); } while (0)
	ONE(v2, uncached, true, 0x09);
	ONE(v2, encrypted, true, 0x11);
	ONE(v2, privileged, true, 0x21);
	ONE(v2, read_only, true, 0x41);
	ONE(v2, atomic_disable, true, 0x81);
	ONE(v2, kind_field, 0xFE, 0xFE00000000000001ull);
	ONE(v2, comptagline, 0xFFFFF, 0x00FFFFF000000001ull);
	ONE(v2, pfn, 0x1FFFFFF, 0x1FFFFFF01ull);
	ONE(v2, aper, MMU_APER_PEER, 0x03);
	ONE(v2, aper, MMU_APER_SYS, 0x05);
	ONE(v2, aper, MMU_APER_SYSNC, 0x07);
	/* PCF bit 0 uncached, 1 privileged, 2 read-only, 3 no atomics, 4 ACD. */
	ONE(v3, uncached, true, 0x09);
	ONE(v3, privileged, true, 0x11);
	ONE(v3, read_only, true, 0x21);
	ONE(v3, atomic_disable, true, 0x41);
	ONE(v3, acd, true, 0x81);
	ONE(v3, kind_field, 0xF, 0xF01);
	ONE(v3, pfn, 0xFFFFFFF, 0xFFFFFFF001ull);
	ONE(v3, aper, MMU_APER_PEER, 0x03);
	ONE(v3, aper, MMU_APER_SYS, 0x05);
	ONE(v3, aper, MMU_APER_SYSNC, 0x07);
#undef ONE
	/* Wide sysmem addresses: v2 53:8, v3 51:12. */
	p = (struct mmu_pte){ .kind = MMU_PTE_VALID, .aper = MMU_APER_SYS, .pfn = GENMASK(45, 0) };
	check_pte_known(v2, &p, false, GENMASK(53, 8) | 0x5);
	p.pfn = GENMASK(39, 0);
	check_pte_known(v3, &p, false, GENMASK(51, 12) | 0x5);
	/* Peers: v2 id at 35:33 with the 25-bit VID address, v3 at 63:61. */
	p = (struct mmu_pte){ .kind = MMU_PTE_VALID, .aper = MMU_APER_PEER, .pfn = 0x1FFFFFF,
			      .peer = 5 };
	check_pte_known(v2, &p, false, (5ull << 33) | (0x1FFFFFFull << 8) | 0x3);
	p.pfn = GENMASK(39, 0);
	check_pte_known(v3, &p, false, (5ull << 61) | GENMASK(51, 12) | 0x3);
	/* nouveau's v3 2 MiB PTE: RW, atomics, cached, ACD (PCF 0x10). */
	p = vid_pte(0x40000, false);
	p.acd = true;
	check_pte_known(v3, &p, false, 0x40000081);
}

static void test_known_pde(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	struct mmu_pde p = pde_at(MMU_APER_VID, 0x5FFFFF000), d;
	bool is_pte = true;

	/* v2: (T >> 4) | 2. */
	check_pde_known(v2, &p, 0x5FFFFF02);
	VT_EQ_U64(mmu_pde_vid(v2, 0x5FFFFF000), 0x5FFFFF02);

	/* v3, nova-style PCF 0: T | 2 decodes as a cached, ATS-allowed table. */
	check_pde_known(v3, &p, 0x5FFFFF002);
	mmu_pde_decode(v3, 0x5FFFFF002, &d, &is_pte);
	CU_ASSERT_FALSE(is_pte);
	VT_PDE_EQ(v3, &d, &p);

	/* v3, vmmfs: PCF 2 (VALID_CACHED_ATS_NOT_ALLOWED). */
	p.no_ats = true;
	check_pde_known(v3, &p, 0x5FFFFF012);
	VT_EQ_U64(mmu_pde_vid(v3, 0x5FFFFF000), 0x5FFFFF012);

	/* The other bits, one at a time. */
	p = pde_at(MMU_APER_SYS, 0x5FFFFF000);
	check_pde_known(v2, &p, 0x5FFFFF04);
	check_pde_known(v3, &p, 0x5FFFFF004);
	p.aper = MMU_APER_SYSNC;
	check_pde_known(v2, &p, 0x5FFFFF06);
	check_pde_known(v3, &p, 0x5FFFFF006);
	p.uncached = true;
	check_pde_known(v2, &p, 0x5FFFFF0E);
	check_pde_known(v3, &p, 0x5FFFFF00E);
	p = pde_at(MMU_APER_VID, 0x1000);
	p.no_ats = true;
	check_pde_known(v2, &p, 0x122);
	check_pde_known(v3, &p, 0x1012);
	/* Wide sysmem tables: v2 ADDRESS_SYS 53:8, v3 ADDRESS 51:12. */
	p = pde_at(MMU_APER_SYS, GENMASK(57, 12));
	check_pde_known(v2, &p, GENMASK(53, 8) | 0x4);
	p.addr = GENMASK(51, 12);
	check_pde_known(v3, &p, GENMASK(51, 12) | 0x4);
}

static void test_known_2m(void)
{
	size_t fi;

	/* 2 MiB at PA 0x40000000, RW: v2 lo 0x04000001, v3 (nova PCF) 0x40000041. */
	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		uint64_t lo = f->version == 2 ? 0x04000001 : 0x40000041;
		const uint64_t raw[2] = { lo, 0 };
		struct mmu_pte p = vid_pte(0x40000, false), back;
		struct mmu_pde b, s;
		bool is_pte = false;

		p.atomic_disable = f->version == 3;
		check_pte_known(f, &p, false, lo);
		VT_EQ_U64(mmu_pte_vid(f, mmu_pte_vid_template(f, false), 0x40000), lo);
		mmu_dual_decode(f, raw, &b, &s, &is_pte);
		CU_ASSERT_TRUE(is_pte);
		CU_ASSERT_FALSE(b.present || b.sparse || s.present || s.sparse);
		mmu_pte_decode(f, raw[0], false, &back);
		VT_PTE_EQ(f, &back, &p);
	}
}

/* The UVM dual-PDE vectors (big-pages-and-tlb.md §1.2), and nouveau's. */
static void test_known_dual(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	struct mmu_pde big, small;
	uint64_t raw[2];

	/* v2: big = VID 0x1BBBBBBB00, small = SYS 0x399999999999000, VOL on both. */
	big = pde_at(MMU_APER_VID, 0x1BBBBBBB00);
	big.uncached = true;
	small = pde_at(MMU_APER_SYS, 0x399999999999000);
	small.uncached = true;
	check_dual_known(v2, &big, &small, 0x1BBBBBBBA, 0x3999999999990C);

	/* v2: big = SYS 0x399999999999900, small = VID 0x1BBBBBB000, VOL on both. */
	big = pde_at(MMU_APER_SYS, 0x399999999999900);
	big.uncached = true;
	small = pde_at(MMU_APER_VID, 0x1BBBBBB000);
	small.uncached = true;
	check_dual_known(v2, &big, &small, 0x3999999999999C, 0x1BBBBBB0A);

	/* v3: big = VID 0xBBBBBBBB00, small = SYS 0x9999999999000, PCF 1 both. */
	big = pde_at(MMU_APER_VID, 0xBBBBBBBB00);
	big.uncached = true;
	small = pde_at(MMU_APER_SYS, 0x9999999999000);
	small.uncached = true;
	check_dual_known(v3, &big, &small, 0xBBBBBBBB0A, 0x999999999900C);

	/* nouveau: the same big table without VOL (v2) / with PCF 2 (v3). */
	mmu_dual_vid(v2, 0x1BBBBBBB00, 0, raw);
	VT_EQ_U64(raw[0], 0x1BBBBBBB2);
	VT_EQ_U64(raw[1], 0);
	mmu_dual_vid(v3, 0xBBBBBBBB00, 0, raw);
	VT_EQ_U64(raw[0], 0xBBBBBBBB12);
	VT_EQ_U64(raw[1], 0);

	/* vmmfs / nova small-only: lo 0, hi a PDE. */
	mmu_dual_vid(v2, 0, 0x5FFFFF000, raw);
	VT_EQ_U64(raw[0], 0);
	VT_EQ_U64(raw[1], 0x5FFFFF02);
	mmu_dual_vid(v3, 0, 0x5FFFFF000, raw);
	VT_EQ_U64(raw[0], 0);
	VT_EQ_U64(raw[1], 0x5FFFFF012);
	/* Both halves. */
	mmu_dual_vid(v2, 0x1BBBBBBB00, 0x5FFFFF000, raw);
	VT_EQ_U64(raw[0], 0x1BBBBBBB2);
	VT_EQ_U64(raw[1], 0x5FFFFF02);
	mmu_dual_vid(v3, 0xBBBBBBBB00, 0x5FFFFF000, raw);
	VT_EQ_U64(raw[0], 0xBBBBBBBB12);
	VT_EQ_U64(raw[1], 0x5FFFFF012);
	/* Neither. */
	mmu_dual_vid(v3, 0, 0, raw);
	VT_EQ_U64(raw[0], 0);
	VT_EQ_U64(raw[1], 0);

	/* v2's single NO_ATS bit is lo bit 5 and belongs to both halves... */
	big = (struct mmu_pde){ .no_ats = true };
	small = pde_at(MMU_APER_VID, 0x1BBBBBB000);
	small.no_ats = true;
	check_dual_known(v2, &big, &small, 0x20, 0x1BBBBBB02);
	small.no_ats = false;
	VT_EQ_INT(mmu_dual_encode(v2, &big, &small, raw), -EINVAL);
	/* ...but it is LPT PA bit 9 while a big table is present. */
	big = pde_at(MMU_APER_VID, 0x1BBBBBBB00);
	big.no_ats = small.no_ats = true;
	VT_EQ_INT(mmu_dual_encode(v2, &big, &small, raw), -EINVAL);
	big.addr = 0x1BBBBBBD00; /* bit 9 clear: still no room for NO_ATS */
	VT_EQ_INT(mmu_dual_encode(v2, &big, &small, raw), -EINVAL);
	/* v3 has one per half (PCF bit 1). */
	big.addr = 0x1BBBBBBB00;
	small.no_ats = false;
	check_dual_known(v3, &big, &small, 0x1BBBBBBB00 | 0x12, 0x1BBBBBB002);
}

/* Sparse, no-4K and the other VALID = 0 values (big-pages §2.1, §2.4, §6). */
static void test_special_values(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	static const struct { int ver; uint64_t raw; bool lpte; enum mmu_pte_kind kind; } pte[] = {
		{ 2, 0x0, false, MMU_PTE_INVALID }, { 2, 0x0, true, MMU_PTE_INVALID },
		{ 2, 0x8, false, MMU_PTE_SPARSE }, { 2, 0x8, true, MMU_PTE_SPARSE },
		{ 2, 0x20, true, MMU_PTE_NO_4K }, { 2, 0x20, false, MMU_PTE_OTHER },
		{ 2, 0x28, true, MMU_PTE_OTHER }, /* RM's ATS-only NV4K: ambiguous */
		{ 2, 0x2, false, MMU_PTE_OTHER }, { 2, 0x01234500, false, MMU_PTE_OTHER },
		{ 3, 0x0, true, MMU_PTE_INVALID }, { 3, 0x8, false, MMU_PTE_SPARSE },
		{ 3, 0x8, true, MMU_PTE_SPARSE }, { 3, 0x18, true, MMU_PTE_NO_4K },
		{ 3, 0x18, false, MMU_PTE_OTHER }, { 3, 0x10, true, MMU_PTE_OTHER },
		{ 3, 0x12345040, false, MMU_PTE_OTHER }, { 3, 0x20, true, MMU_PTE_OTHER },
	};
	struct mmu_pte p, exp;
	struct mmu_pde d;
	uint64_t raw;
	bool is_pte;
	size_t i;

	VT_EQ_U64(mmu_pte_raw_sparse(v2), 0x8);
	VT_EQ_U64(mmu_pte_raw_sparse(v3), 0x8);
	VT_EQ_U64(mmu_lpte_raw_no4k(v2), 0x20);
	VT_EQ_U64(mmu_lpte_raw_no4k(v3), 0x18);
	for (i = 0; i < ARRAY_SIZE(pte); i++) {
		const struct mmu_fmt *f = mmu_fmt_get(pte[i].ver);

		mmu_pte_decode(f, pte[i].raw, pte[i].lpte, &p);
		exp = (struct mmu_pte){ .kind = pte[i].kind };
		if (!pte_eq(&p, &exp))
			fprintf(stderr, "  v%d raw 0x%llx (lpte %d):\n", pte[i].ver,
				(unsigned long long)pte[i].raw, pte[i].lpte);
		VT_PTE_EQ(f, &p, &exp);
	}
	/* Encoding the special kinds; OTHER has no encoding. */
	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		const struct mmu_fmt *f = fmts[i];

		p = (struct mmu_pte){ .kind = MMU_PTE_SPARSE };
		check_pte_known(f, &p, false, 0x8);
		p = (struct mmu_pte){ .kind = MMU_PTE_NO_4K };
		check_pte_known(f, &p, true, f->version == 2 ? 0x20 : 0x18);
		p = (struct mmu_pte){ .kind = MMU_PTE_INVALID };
		check_pte_known(f, &p, true, 0);
		p = (struct mmu_pte){ .kind = MMU_PTE_OTHER };
		raw = 0x1234;
		VT_EQ_INT(mmu_pte_encode(f, &p, &raw), -EINVAL);
		VT_EQ_U64(raw, 0x1234);

		/* Sparse PDEs: aperture 0 with v2 VOL / v3 PCF 1. */
		d = (struct mmu_pde){ .sparse = true };
		check_pde_known(f, &d, 0x8);
		/* An absent PDE is 0. */
		d = (struct mmu_pde){ 0 };
		check_pde_known(f, &d, 0);
	}
	/* v3 0x18 in a PDE: sparse, ATS not allowed. v3 0x10: absent, no ATS. */
	d = (struct mmu_pde){ .sparse = true, .no_ats = true };
	check_pde_known(v3, &d, 0x18);
	d = (struct mmu_pde){ .no_ats = true };
	check_pde_known(v3, &d, 0x10);
	d = (struct mmu_pde){ .sparse = true, .no_ats = true };
	check_pde_known(v2, &d, 0x28);

	/* Sparse 2 MiB: lo 0x8, hi 0. */
	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		struct mmu_pde big = { .sparse = true }, none = { 0 };

		check_dual_known(fmts[i], &big, &none, 0x8, 0);
	}
	/* A PDE with IS_PTE set is a leaf, whatever else it holds. */
	mmu_pde_decode(v2, 0x04000001, &d, &is_pte);
	CU_ASSERT_TRUE(is_pte);
	CU_ASSERT_FALSE(d.present || d.sparse);
	mmu_pde_decode(v3, 0x20000041, &d, NULL);
	CU_ASSERT_FALSE(d.present);
}

/* -ERANGE at exactly the first unrepresentable value, 0 just below. */
static void test_limits(void)
{
	static const struct { int ver; enum mmu_aperture aper; uint64_t pfn_end; } pte_end[] = {
		{ 2, MMU_APER_VID, 1ull << 25 }, { 2, MMU_APER_PEER, 1ull << 25 },
		{ 2, MMU_APER_SYS, 1ull << 46 }, { 2, MMU_APER_SYSNC, 1ull << 46 },
		{ 3, MMU_APER_VID, 1ull << 28 }, { 3, MMU_APER_PEER, 1ull << 40 },
		{ 3, MMU_APER_SYS, 1ull << 40 }, { 3, MMU_APER_SYSNC, 1ull << 40 },
	};
	/* First table PA each directory half cannot hold, and its alignment. */
	static const struct { int ver; int half; enum mmu_aperture aper; uint64_t end, align; } pde_end[] = {
		{ 2, 0, MMU_APER_VID, 1ull << 37, 4096 }, { 2, 0, MMU_APER_SYS, 1ull << 58, 4096 },
		{ 2, 1, MMU_APER_VID, 1ull << 37, 256 }, { 2, 1, MMU_APER_SYSNC, 1ull << 58, 256 },
		{ 2, 2, MMU_APER_VID, 1ull << 37, 4096 }, { 2, 2, MMU_APER_SYS, 1ull << 58, 4096 },
		{ 3, 0, MMU_APER_VID, 1ull << 52, 4096 }, { 3, 0, MMU_APER_SYSNC, 1ull << 52, 4096 },
		{ 3, 1, MMU_APER_VID, 1ull << 52, 256 }, { 3, 1, MMU_APER_SYS, 1ull << 52, 256 },
		{ 3, 2, MMU_APER_VID, 1ull << 52, 4096 }, { 3, 2, MMU_APER_SYS, 1ull << 52, 4096 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pte_end); i++) {
		const struct mmu_fmt *f = mmu_fmt_get(pte_end[i].ver);
		struct mmu_pte p = { .kind = MMU_PTE_VALID, .aper = pte_end[i].aper };
		uint64_t raw = 0x5a5a;

		struct mmu_pte back;

		p.pfn = pte_end[i].pfn_end - 1;
		VT_EQ_INT(mmu_pte_encode(f, &p, &raw), 0);
		mmu_pte_decode(f, raw, false, &back);
		VT_PTE_EQ(f, &back, &p);
		raw = 0x5a5a;
		p.pfn = pte_end[i].pfn_end;
		VT_EQ_INT(mmu_pte_encode(f, &p, &raw), -ERANGE);
		VT_EQ_U64(raw, 0x5a5a);
		p.pfn = ~0ull;
		VT_EQ_INT(mmu_pte_encode(f, &p, &raw), -ERANGE);
		if (pte_end[i].aper == MMU_APER_VID)
			VT_EQ_U64(f->max_vid_pfn, pte_end[i].pfn_end);
	}
	for (i = 0; i < ARRAY_SIZE(pde_end); i++) {
		const struct mmu_fmt *f = mmu_fmt_get(pde_end[i].ver);
		struct mmu_pde p = pde_at(pde_end[i].aper, 0), none = { 0 }, back, b2;
		uint64_t raw[2] = { 0x5a5a, 0x5a5a }, a = pde_end[i].align;
		int half = pde_end[i].half;
		bool is_pte;

#define ENC(pde) (half == 0 ? mmu_pde_encode(f, (pde), &raw[0]) : half == 1 ? \
		  mmu_dual_encode(f, (pde), &none, raw) : mmu_dual_encode(f, &none, (pde), raw))
		p.addr = pde_end[i].end - a;
		VT_EQ_INT(ENC(&p), 0);
		if (half == 0)
			mmu_pde_decode(f, raw[0], &back, &is_pte);
		else if (half == 1)
			mmu_dual_decode(f, raw, &back, &b2, &is_pte);
		else
			mmu_dual_decode(f, raw, &b2, &back, &is_pte);
		VT_PDE_EQ(f, &back, &p);
		raw[0] = raw[1] = 0x5a5a;
		p.addr = pde_end[i].end;
		VT_EQ_INT(ENC(&p), -ERANGE);
		p.addr = a;
		VT_EQ_INT(ENC(&p), 0);
		p.addr = a + a / 2; /* misaligned */
		VT_EQ_INT(ENC(&p), -EINVAL);
		p.addr = pde_end[i].end + a / 2; /* misaligned and too big */
		CU_ASSERT(ENC(&p) < 0);
#undef ENC
		if (half == 0 && pde_end[i].aper == MMU_APER_VID)
			VT_EQ_U64(f->max_pde_pa, pde_end[i].end);
	}
	/* The fast paths refuse rather than wrap (and log an internal error). */
	vmmfs_log_set_stderr_level(-1);
	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		const struct mmu_fmt *f = fmts[i];
		uint64_t raw[2];

		VT_EQ_U64(mmu_pde_vid(f, f->max_pde_pa), 0);
		VT_EQ_U64(mmu_pde_vid(f, 0x1800), 0);
		CU_ASSERT(mmu_pde_vid(f, f->max_pde_pa - 4096) != 0);
		mmu_dual_vid(f, f->max_pde_pa, 0x1000, raw);
		VT_EQ_U64(raw[0] | raw[1], 0);
		mmu_dual_vid(f, 0x1080, 0x1000, raw);
		VT_EQ_U64(raw[0] | raw[1], 0);
		mmu_dual_vid(f, 0x1100, 0x1000, raw);
		CU_ASSERT(raw[0] != 0 && raw[1] != 0);
	}
	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
}

/* What the formats cannot express is -EINVAL (or -ERANGE for a too-big value). */
static void test_rejects(void)
{
	const struct mmu_fmt *v2 = &mmu_fmt_v2, *v3 = &mmu_fmt_v3;
	struct mmu_pte p;
	struct mmu_pde d, none = { 0 };
	uint64_t raw = 0x77, r2[2] = { 0x77, 0x77 };
	size_t i;

#define PTE_REJ(f, err, ...) do { \
	p = (struct mmu_pte){ .kind = MMU_PTE_VALID, __VA_ARGS__ }; \
	VT_EQ_INT(mmu_pte_encode(f, &p, &raw), err); } while (0)
	PTE_REJ(v2, -EINVAL, .acd = true);
	PTE_REJ(v3, -EINVAL, .encrypted = true);
	PTE_REJ(v3, -EINVAL, .comptagline = 1);
	PTE_REJ(v2, -EINVAL, .aper = MMU_APER_SYS, .comptagline = 1);
	PTE_REJ(v2, -ERANGE, .comptagline = 1u << 20);
	PTE_REJ(v3, -ERANGE, .kind_field = 16);
	PTE_REJ(v2, -EINVAL, .peer = 1);
	PTE_REJ(v3, -EINVAL, .aper = MMU_APER_SYS, .peer = 1);
	PTE_REJ(v2, -ERANGE, .aper = MMU_APER_PEER, .peer = 8);
	PTE_REJ(v3, -ERANGE, .aper = MMU_APER_PEER, .peer = 8);
	PTE_REJ(v2, -EINVAL, .aper = (enum mmu_aperture)4);
	PTE_REJ(v3, -EINVAL, .aper = (enum mmu_aperture)-1);
#undef PTE_REJ
	p = (struct mmu_pte){ .kind = (enum mmu_pte_kind)99 };
	VT_EQ_INT(mmu_pte_encode(v2, &p, &raw), -EINVAL);
	VT_EQ_U64(raw, 0x77);

	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		const struct mmu_fmt *f = fmts[i];

#define PDE_REJ(...) do { \
	d = (struct mmu_pde){ __VA_ARGS__ }; \
	VT_EQ_INT(mmu_pde_encode(f, &d, &raw), -EINVAL); \
	VT_EQ_INT(mmu_dual_encode(f, &d, &none, r2), -EINVAL); \
	VT_EQ_INT(mmu_dual_encode(f, &none, &d, r2), -EINVAL); } while (0)
		PDE_REJ(.present = true, .aper = MMU_APER_PEER, .addr = 0x1000);
		PDE_REJ(.present = true, .aper = (enum mmu_aperture)7, .addr = 0x1000);
		PDE_REJ(.present = true, .sparse = true, .aper = MMU_APER_VID, .addr = 0x1000);
		PDE_REJ(.present = false, .addr = 0x1000);
		PDE_REJ(.present = false, .uncached = true);
#undef PDE_REJ
		VT_EQ_U64(raw, 0x77);
		VT_EQ_U64(r2[0], 0x77);
		VT_EQ_U64(r2[1], 0x77);
	}
}

/* ---- round trips ---------------------------------------------------------- */

/* Expected field limits per version, from the documents. */
struct pte_limits { uint64_t pfn_end[4]; unsigned int kind_max, peer_max, ctl_max; bool has_acd, has_enc; };

static const struct pte_limits *limits_of(const struct mmu_fmt *f)
{
	static const struct pte_limits v2 = {
		.pfn_end = { 1ull << 25, 1ull << 25, 1ull << 46, 1ull << 46 },
		.kind_max = 0xFF, .peer_max = 7, .ctl_max = 0xFFFFF, .has_acd = false, .has_enc = true,
	}, v3 = {
		.pfn_end = { 1ull << 28, 1ull << 40, 1ull << 40, 1ull << 40 },
		.kind_max = 0xF, .peer_max = 7, .ctl_max = 0, .has_acd = true, .has_enc = false,
	};

	return f->version == 2 ? &v2 : &v3;
}

/* Encodes p; expects 0 and a decode equal to p, or the error given. */
static bool pte_roundtrip(const struct mmu_fmt *f, const struct mmu_pte *p, int expect)
{
	struct mmu_pte back;
	uint64_t raw = 0, raw2 = 0;
	int r = mmu_pte_encode(f, p, &raw);

	if (r != expect) {
		fprintf(stderr, "  v%d encode returned %d, expected %d\n", f->version, r, expect);
		pte_print("pte", p);
		CU_FAIL("mmu_pte_encode result");
		return false;
	}
	if (r)
		return true;
	mmu_pte_decode(f, raw, false, &back);
	if (!pte_eq(&back, p)) {
		fprintf(stderr, "  v%d raw 0x%llx:\n", f->version, (unsigned long long)raw);
		VT_PTE_EQ(f, &back, p);
		return false;
	}
	/* Decoding is lossless: re-encoding gives the same word. */
	if (mmu_pte_encode(f, &back, &raw2) || raw2 != raw) {
		VT_EQ_U64(raw2, raw);
		return false;
	}
	return true;
}

static void test_pte_roundtrip(void)
{
	size_t fi;

	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		const struct pte_limits *lim = limits_of(f);
		int aper, flags, pi, ki, ci, peer;
		bool ok = true;

		for (aper = 0; aper < 4 && ok; aper++) {
			uint64_t end = lim->pfn_end[aper];
			const uint64_t pfns[] = { 0, 1, 0x12345 & (end - 1), end - 1 };
			const unsigned int kinds[] = { 0, 6, lim->kind_max };
			const unsigned int ctls[] = { 0, 1, lim->ctl_max };
			bool has_ctl = lim->ctl_max && (aper == MMU_APER_VID || aper == MMU_APER_PEER);

			for (flags = 0; flags < 64 && ok; flags++)
			for (pi = 0; pi < 4 && ok; pi++)
			for (ki = 0; ki < 3 && ok; ki++)
			for (ci = 0; ci < (has_ctl ? 3 : 1) && ok; ci++)
			for (peer = 0; peer <= (aper == MMU_APER_PEER ? 7 : 0) && ok; peer++) {
				struct mmu_pte p = {
					.kind = MMU_PTE_VALID, .aper = (enum mmu_aperture)aper,
					.pfn = pfns[pi], .uncached = flags & 1,
					.privileged = flags & 2, .read_only = flags & 4,
					.atomic_disable = flags & 8, .acd = flags & 16,
					.encrypted = flags & 32, .kind_field = (uint8_t)kinds[ki],
					.peer = (uint8_t)peer, .comptagline = ctls[ci],
				};
				bool bad = (p.acd && !lim->has_acd) || (p.encrypted && !lim->has_enc);

				ok = pte_roundtrip(f, &p, bad ? -EINVAL : 0);
			}
		}
	}
}

/* Random valid PTEs: encode/decode/encode is the identity. */
static void test_pte_roundtrip_random(void)
{
	size_t fi;
	int n;

	vt_seed("mmu pte round trip");
	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		const struct pte_limits *lim = limits_of(f);

		for (n = 0; n < 20000; n++) {
			uint64_t r = vt_rand();
			enum mmu_aperture aper = (enum mmu_aperture)(r & 3);
			struct mmu_pte p = {
				.kind = MMU_PTE_VALID, .aper = aper,
				.pfn = vt_rand_below(lim->pfn_end[aper]),
				.uncached = r & 4, .privileged = r & 8, .read_only = r & 16,
				.atomic_disable = r & 32,
				.acd = lim->has_acd && (r & 64), .encrypted = lim->has_enc && (r & 128),
				.kind_field = (uint8_t)((r >> 8) % (lim->kind_max + 1)),
				.peer = aper == MMU_APER_PEER ? (uint8_t)((r >> 16) & 7) : 0,
			};

			if (lim->ctl_max && (aper == MMU_APER_VID || aper == MMU_APER_PEER))
				p.comptagline = (uint32_t)((r >> 20) % (lim->ctl_max + 1));
			if (!pte_roundtrip(f, &p, 0))
				break;
		}
	}
}

/* Every LPTE kind, and the levels where a raw value means something else. */
static void test_lpte_kinds(void)
{
	static const enum mmu_pte_kind kinds[] = { MMU_PTE_INVALID, MMU_PTE_SPARSE, MMU_PTE_NO_4K };
	size_t fi, k;

	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];

		for (k = 0; k < ARRAY_SIZE(kinds); k++) {
			struct mmu_pte p = { .kind = kinds[k] }, back;
			uint64_t raw = ~0ull;

			VT_EQ_INT(mmu_pte_encode(f, &p, &raw), 0);
			mmu_pte_decode(f, raw, true, &back);
			VT_PTE_EQ(f, &back, &p);
			/* Outside an LPT, no-4K means nothing: OTHER. */
			mmu_pte_decode(f, raw, false, &back);
			VT_EQ_INT(back.kind, kinds[k] == MMU_PTE_NO_4K ? MMU_PTE_OTHER : kinds[k]);
		}
		/* A valid 64 KiB LPTE is an ordinary PTE. */
		{
			struct mmu_pte p = vid_pte(0x12340, true), back;
			uint64_t raw = mmu_pte_vid(f, mmu_pte_vid_template(f, true), 0x12340);

			p.atomic_disable = f->version == 3;
			mmu_pte_decode(f, raw, true, &back);
			VT_PTE_EQ(f, &back, &p);
		}
	}
}

/* The PDE variants a half can take, for a version and half. */
static int pde_variants(const struct mmu_fmt *f, uint64_t align, struct mmu_pde *out)
{
	static const enum mmu_aperture apers[] = { MMU_APER_VID, MMU_APER_SYS, MMU_APER_SYSNC };
	const uint64_t addrs[] = { 0, align, 0x5FFFFF000, f->max_pde_pa - align };
	int n = 0, a, i, fl;

	for (fl = 0; fl < 4; fl++) {
		out[n++] = (struct mmu_pde){ .present = false, .sparse = fl & 1, .no_ats = fl & 2 };
		for (a = 0; a < 3; a++)
			for (i = 0; i < 4; i++)
				out[n++] = (struct mmu_pde){ .present = true, .aper = apers[a],
							     .addr = addrs[i], .uncached = fl & 1,
							     .no_ats = fl & 2 };
	}
	return n; /* 4 * (1 + 12) = 52 */
}

static void test_pde_roundtrip(void)
{
	size_t fi;

	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		struct mmu_pde v[64], back;
		int n = pde_variants(f, 4096, v), i;

		for (i = 0; i < n; i++) {
			uint64_t raw = 0, raw2 = 0;
			bool is_pte = true;

			VT_EQ_INT(mmu_pde_encode(f, &v[i], &raw), 0);
			CU_ASSERT_FALSE(raw & 1);
			mmu_pde_decode(f, raw, &back, &is_pte);
			CU_ASSERT_FALSE(is_pte);
			VT_PDE_EQ(f, &back, &v[i]);
			VT_EQ_INT(mmu_pde_encode(f, &back, &raw2), 0);
			VT_EQ_U64(raw2, raw);
		}
	}
}

/* Dual PDE: every big variant with every small variant (each present or absent). */
static void test_dual_roundtrip(void)
{
	size_t fi;

	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		struct mmu_pde big[64], small[64];
		int nb = pde_variants(f, 256, big), ns = pde_variants(f, 4096, small), b, s;
		int done = 0;

		for (b = 0; b < nb; b++)
			for (s = 0; s < ns; s++) {
				struct mmu_pde db, ds;
				uint64_t raw[2] = { 0, 0 }, raw2[2] = { 0, 0 };
				bool is_pte = true;
				/* v2 has one NO_ATS bit for the entry, and it is part
				 * of the address while a big table is present. */
				int expect = f->version == 2 && (big[b].no_ats != small[s].no_ats ||
								 (big[b].present && big[b].no_ats)) ?
					     -EINVAL : 0;
				int r = mmu_dual_encode(f, &big[b], &small[s], raw);

				if (r != expect) {
					VT_EQ_INT(r, expect);
					pde_print("big", &big[b]);
					pde_print("small", &small[s]);
					return;
				}
				if (r)
					continue;
				done++;
				CU_ASSERT_FALSE(raw[0] & 1);
				mmu_dual_decode(f, raw, &db, &ds, &is_pte);
				CU_ASSERT_FALSE(is_pte);
				if (!pde_eq(&db, &big[b]) || !pde_eq(&ds, &small[s])) {
					VT_PDE_EQ(f, &db, &big[b]);
					VT_PDE_EQ(f, &ds, &small[s]);
					return;
				}
				VT_EQ_INT(mmu_dual_encode(f, &db, &ds, raw2), 0);
				VT_EQ_U64(raw2[0], raw[0]);
				VT_EQ_U64(raw2[1], raw[1]);
				/* An absent half is all zero unless it carries flags. */
				if (!big[b].present && !big[b].sparse && !big[b].no_ats)
					VT_EQ_U64(raw[0], 0);
				if (!small[s].present && !small[s].sparse &&
				    (f->version == 2 || !small[s].no_ats))
					VT_EQ_U64(raw[1], 0);
			}
		/* v3 accepts every pair; v2 the 728 whose NO_ATS it can hold. */
		VT_EQ_INT(done, f->version == 2 ? 728 : nb * ns);
	}
}

/* 2 MiB (PD0 low word) and 512 MiB (PD1) leaves are PTEs of the version. */
static void test_big_leaves(void)
{
	size_t fi;

	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];
		static const uint64_t pas[] = { 0, 0x40000000, 0x3FE00000 };
		size_t i;
		int ro;

		for (i = 0; i < ARRAY_SIZE(pas); i++)
			for (ro = 0; ro < 2; ro++) {
				uint64_t pa_2m = pas[i], pa_512m = pas[i] & ~GENMASK(28, 0);
				struct mmu_pte p = vid_pte(pa_2m >> 12, ro), back;
				uint64_t raw[2] = { 0, 0 };
				struct mmu_pde b, s;
				bool is_pte = false;

				p.atomic_disable = f->version == 3;
				VT_EQ_INT(mmu_pte_encode(f, &p, &raw[0]), 0);
				VT_EQ_U64(raw[0], mmu_pte_vid(f, mmu_pte_vid_template(f, ro), pa_2m >> 12));
				mmu_dual_decode(f, raw, &b, &s, &is_pte);
				CU_ASSERT_TRUE(is_pte);
				mmu_pte_decode(f, raw[0], false, &back);
				VT_PTE_EQ(f, &back, &p);

				p.pfn = pa_512m >> 12;
				VT_EQ_INT(mmu_pte_encode(f, &p, &raw[0]), 0);
				is_pte = false;
				mmu_pde_decode(f, raw[0], &b, &is_pte);
				CU_ASSERT_TRUE(is_pte);
				mmu_pte_decode(f, raw[0], false, &back);
				VT_PTE_EQ(f, &back, &p);
			}
	}
}

/* The fast paths agree with the encoders over a run of PFNs. */
static void test_fast_paths(void)
{
	size_t fi;
	int n, ro;

	vt_seed("mmu fast paths");
	for (fi = 0; fi < ARRAY_SIZE(fmts); fi++) {
		const struct mmu_fmt *f = fmts[fi];

		for (ro = 0; ro < 2; ro++) {
			uint64_t tmpl = mmu_pte_vid_template(f, ro);

			for (n = 0; n < 5000; n++) {
				uint64_t pfn = n < 2 ? (n ? f->max_vid_pfn - 1 : 0) :
					       vt_rand_below(f->max_vid_pfn), raw = 0;
				struct mmu_pte p = vid_pte(pfn, ro);

				p.atomic_disable = f->version == 3;
				VT_EQ_INT(mmu_pte_encode(f, &p, &raw), 0);
				if (raw != mmu_pte_vid(f, tmpl, pfn)) {
					VT_EQ_U64(mmu_pte_vid(f, tmpl, pfn), raw);
					break;
				}
			}
		}
		for (n = 0; n < 2000; n++) {
			uint64_t t = n ? vt_rand_below(f->max_pde_pa >> 12) << 12 : 0;
			uint64_t big = n & 1 ? (vt_rand_below(f->max_pde_pa >> 8) << 8) | 0x100 : 0;
			uint64_t small = n & 2 ? t | 0x1000 : 0;
			struct mmu_pde pde = pde_at(MMU_APER_VID, t), pb = { 0 }, ps = { 0 };
			uint64_t raw = 0, r2[2] = { 0, 0 }, rv[2] = { 1, 1 };

			pde.no_ats = f->version == 3;
			VT_EQ_INT(mmu_pde_encode(f, &pde, &raw), 0);
			VT_EQ_U64(mmu_pde_vid(f, t), raw);
			if (big)
				pb = (struct mmu_pde){ .present = true, .addr = big, .no_ats = f->version == 3 };
			if (small)
				ps = (struct mmu_pde){ .present = true, .addr = small, .no_ats = f->version == 3 };
			VT_EQ_INT(mmu_dual_encode(f, &pb, &ps, r2), 0);
			mmu_dual_vid(f, big, small, rv);
			VT_EQ_U64(rv[0], r2[0]);
			VT_EQ_U64(rv[1], r2[1]);
		}
	}
}

static void register_tests(void)
{
	static const struct vt_test tables[] = {
		{ "levels_v2", test_levels_v2 },
		{ "levels_v3", test_levels_v3 },
		{ "fmt_get", test_fmt_get },
		{ "fmt_check_rejects", test_fmt_check_rejects },
		{ "aperture_name", test_aperture_name },
		{ "index", test_index },
		{ "index_random", test_index_random },
		{ NULL, NULL },
	};
	static const struct vt_test known[] = {
		{ "pte", test_known_pte },
		{ "pte_bits", test_pte_bits },
		{ "pde", test_known_pde },
		{ "leaf_2m", test_known_2m },
		{ "dual", test_known_dual },
		{ "special_values", test_special_values },
		{ "limits", test_limits },
		{ "rejects", test_rejects },
		{ NULL, NULL },
	};
	static const struct vt_test roundtrip[] = {
		{ "pte", test_pte_roundtrip },
		{ "pte_random", test_pte_roundtrip_random },
		{ "lpte_kinds", test_lpte_kinds },
		{ "pde", test_pde_roundtrip },
		{ "dual", test_dual_roundtrip },
		{ "leaves_2m_512m", test_big_leaves },
		{ "fast_paths", test_fast_paths },
		{ NULL, NULL },
	};

	vt_add_suite("mmu_tables", tables);
	vt_add_suite("mmu_known", known);
	vt_add_suite("mmu_roundtrip", roundtrip);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
