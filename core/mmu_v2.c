/* SPDX-License-Identifier: MIT */
/*
 * MMU v2 (Turing, Ampere, Ada): level table and bit layouts. Data only;
 * core/mmu.c encodes and decodes from it. Facts: nvidia-mmu.md §5.2–§5.4,
 * big-pages-and-tlb.md §1–§4 and §6 (the NV_MMU_VER2_* fields of NVIDIA's
 * dev_mmu manual).
 *
 *  49-bit VA, 5 levels:
 *
 *    PD3   4 x 8 B = 32 B (root)                    VA 48:47
 *     └ PD2   512 x 8 B                             VA 46:38
 *        └ PD1   512 x 8 B                          VA 37:29   [512 MiB PTE, Ampere/Ada]
 *           └ PD0   256 x 16 B, dual                VA 28:21   [2 MiB PTE in lo]
 *              ├ lo: big half ── LPT 32 x 8 B = 256 B  VA 20:16   64 KiB pages
 *              └ hi: small half ─ PT 512 x 8 B         VA 20:12    4 KiB pages
 *
 *  VA:  48 47 46      38 37      29 28     21 20  16 15  12 11        0
 *       [PD3] [  PD2   ] [  PD1   ] [ PD0   ] [       PT      ] [ offset ]
 *                                             [ LPT ] (64 KiB pages: offset 15:0)
 */
#include "internal.h"
#include "mmu.h"

static const struct mmu_level v2_levels[] = {
	{ .name = "PD3", .shift = 47, .bits = 2, .entry_size = 8 },
	{ .name = "PD2", .shift = 38, .bits = 9, .entry_size = 8 },
	{ .name = "PD1", .shift = 29, .bits = 9, .entry_size = 8 },
	{ .name = "PD0", .shift = 21, .bits = 8, .entry_size = 16, .dual = true },
	{ .name = "PT",  .shift = 12, .bits = 9, .entry_size = 8 },
};

/*
 * PTE (NV_MMU_VER2_PTE_*), also the LPTE, the 2 MiB PTE in PD0's low word
 * and the 512 MiB PTE at PD1:
 *
 *   63  56 55         36 35  33 32          8   7    6   5    4    3   2:1    0
 *  [ KIND ][ COMPTAGLINE ][ PEER ][ ADDRESS_VID ] ATD  RO  PRIV ENC  VOL APER VALID
 *                  [<------- ADDRESS_SYS 53:8 ---->]
 *   ATD = ATOMIC_DISABLE, APER in the PTE encoding (0 VID, 1 PEER, 2 SYS,
 *   3 SYSNC); the address is PA >> 12 (PEER uses ADDRESS_VID).
 *
 * ADDRESS_SYS overlaps PEER and most of COMPTAGLINE: a sysmem PTE has
 * neither. COMPTAGLINE is 55:36 from Turing on (gp100 had 53:36).
 */
#define V2_PTE_VALID            BIT(0)
#define V2_PTE_APERTURE         GENMASK(2, 1)
#define V2_PTE_VOL              BIT(3)
#define V2_PTE_ENCRYPTED        BIT(4)
#define V2_PTE_PRIVILEGE        BIT(5)
#define V2_PTE_READ_ONLY        BIT(6)
#define V2_PTE_ATOMIC_DISABLE   BIT(7)
#define V2_PTE_ADDRESS_VID      GENMASK(32, 8)   /* PA >> 12, 25 bits */
#define V2_PTE_ADDRESS_SYS      GENMASK(53, 8)   /* PA >> 12, 46 bits */
#define V2_PTE_ADDRESS_VID_PEER GENMASK(35, 33)
#define V2_PTE_COMPTAGLINE      GENMASK(55, 36)
#define V2_PTE_KIND             GENMASK(63, 56)

/*
 * VALID = 0 values (big-pages-and-tlb.md §2.1, §6):
 *   0     invalid; in an LPTE: "use the small PTEs"
 *   0x08  sparse (VOL): reads 0, writes dropped, no fault
 *   0x20  LPTE only, no valid 4K page (PRIVILEGE): fault, small PTEs ignored.
 *         RM's ATS-only variant 0x28 decodes as OTHER: VOL there means sparse.
 */
#define V2_PTE_SPARSE           V2_PTE_VOL
#define V2_LPTE_NO_4K           V2_PTE_PRIVILEGE

/*
 * 8-byte PDE (NV_MMU_VER2_PDE_*), at PD3, PD2 and PD1:
 *
 *   63   54 53                       8 7 6 5 4 3 2 1 0
 *  [   0   ][ ADDRESS_SYS / _VID 32:8 ] 0 0 N 0 V APER I
 *   I = IS_PTE (0: points to a table), APER 2:1 in the PDE encoding
 *   (0 none, 1 VID, 2 SYS, 3 SYSNC), V = VOL (with APER 0: sparse),
 *   N = NO_ATS. Address = table PA >> 12.
 */
#define V2_PDE_IS_PTE           BIT(0)
#define V2_PDE_APERTURE         GENMASK(2, 1)
#define V2_PDE_VOL              BIT(3)
#define V2_PDE_NO_ATS           BIT(5)
#define V2_PDE_ADDRESS_VID      GENMASK(32, 8)
#define V2_PDE_ADDRESS_SYS      GENMASK(53, 8)
#define V2_PDE_ADDRESS_SHIFT    12

/*
 * 16-byte dual PDE (NV_MMU_VER2_DUAL_PDE_*), at PD0:
 *
 *  lo (big half, LPT):   IS_PTE 0, APERTURE_BIG 2:1, VOL_BIG 3, NO_ATS 5,
 *                        ADDRESS_BIG_VID 32:4 / _SYS 53:4 = LPT PA >> 8
 *                        (so the word is LPT PA >> 4 plus flags).
 *  hi (small half, PT):  APERTURE_SMALL 2:1, VOL_SMALL 3,
 *                        ADDRESS_SMALL_VID 32:8 / _SYS 53:8 = PT PA >> 12.
 *
 * NO_ATS exists only in lo and covers the whole entry. It also lies inside
 * ADDRESS_BIG (32:4): with an LPT present, bit 5 is LPT PA bit 9 (UVM's
 * known answer 0x1BBBBBBBA has it set for LPT 0x1BBBBBBB00), so the entry
 * can say NO_ATS only while its big half is absent. IS_PTE = 1 makes lo
 * a 2 MiB PTE (with hi 0). lo = 0x8 (aperture 0, VOL_BIG) is a sparse 2 MiB.
 */
#define V2_DUAL_IS_PTE          BIT(0)
#define V2_DUAL_APERTURE_BIG    GENMASK(2, 1)
#define V2_DUAL_VOL_BIG         BIT(3)
#define V2_DUAL_NO_ATS          BIT(5)
#define V2_DUAL_ADDRESS_BIG_VID GENMASK(32, 4)
#define V2_DUAL_ADDRESS_BIG_SYS GENMASK(53, 4)
#define V2_DUAL_ADDRESS_BIG_SHIFT 8
#define V2_DUAL_APERTURE_SMALL  GENMASK(2, 1)    /* 66:65 */
#define V2_DUAL_VOL_SMALL       BIT(3)           /* 67 */
#define V2_DUAL_ADDRESS_SMALL_VID GENMASK(32, 8) /* 96:72 */
#define V2_DUAL_ADDRESS_SMALL_SYS GENMASK(53, 8) /* 117:72 */

static const struct mmu_layout v2_layout = {
	.pte = {
		.valid = V2_PTE_VALID,
		.aperture = V2_PTE_APERTURE,
		.addr = {
			[MMU_APER_VID] = V2_PTE_ADDRESS_VID,
			[MMU_APER_PEER] = V2_PTE_ADDRESS_VID,
			[MMU_APER_SYS] = V2_PTE_ADDRESS_SYS,
			[MMU_APER_SYSNC] = V2_PTE_ADDRESS_SYS,
		},
		.peer = V2_PTE_ADDRESS_VID_PEER,
		.kind = V2_PTE_KIND,
		.comptagline = V2_PTE_COMPTAGLINE,
		.uncached = V2_PTE_VOL,
		.encrypted = V2_PTE_ENCRYPTED,
		.privileged = V2_PTE_PRIVILEGE,
		.read_only = V2_PTE_READ_ONLY,
		.atomic_disable = V2_PTE_ATOMIC_DISABLE,
		.acd = 0,
		.raw_sparse = V2_PTE_SPARSE,
		.raw_no4k = V2_LPTE_NO_4K,
	},
	.pde = {
		.is_pte = V2_PDE_IS_PTE,
		.aperture = V2_PDE_APERTURE,
		.uncached = V2_PDE_VOL,
		.no_ats = V2_PDE_NO_ATS,
		.addr_vid = V2_PDE_ADDRESS_VID,
		.addr_sys = V2_PDE_ADDRESS_SYS,
		.addr_shift = V2_PDE_ADDRESS_SHIFT,
	},
	.dual_big = {
		.is_pte = V2_DUAL_IS_PTE,
		.aperture = V2_DUAL_APERTURE_BIG,
		.uncached = V2_DUAL_VOL_BIG,
		.no_ats = V2_DUAL_NO_ATS,
		.addr_vid = V2_DUAL_ADDRESS_BIG_VID,
		.addr_sys = V2_DUAL_ADDRESS_BIG_SYS,
		.addr_shift = V2_DUAL_ADDRESS_BIG_SHIFT,
	},
	.dual_small = {
		.is_pte = 0,
		.aperture = V2_DUAL_APERTURE_SMALL,
		.uncached = V2_DUAL_VOL_SMALL,
		.no_ats = 0,
		.addr_vid = V2_DUAL_ADDRESS_SMALL_VID,
		.addr_sys = V2_DUAL_ADDRESS_SMALL_SYS,
		.addr_shift = V2_PDE_ADDRESS_SHIFT,
	},
	.dual_shared_no_ats = true,
	/*
	 * What vmmfs writes, as nova-core does on v2: PTE = 1 | pfn << 8
	 * (| READ_ONLY), VOL/PRIV/ATOMIC_DISABLE/KIND 0; PDE and each present
	 * dual half = (T >> 4) | 2 (VID aperture, cached, NO_ATS 0).
	 */
	.vid_pte_atomic_disable = false,
	.vid_pde_no_ats = false,
};

/* First unrepresentable value of a field, as a constant expression. */
#define V2_FIELD_END(mask) (((mask) >> __builtin_ctzll(mask)) + 1)

const struct mmu_fmt mmu_fmt_v2 = {
	.version = 2,
	.va_bits = 49,
	.nlevels = ARRAY_SIZE(v2_levels),
	.levels = v2_levels,
	.lpt = { .name = "LPT", .shift = 16, .bits = 5, .entry_size = 8 },
	.pd0 = 3,
	.max_vid_pfn = V2_FIELD_END(V2_PTE_ADDRESS_VID),                         /* 1 << 25 */
	.max_pde_pa = V2_FIELD_END(V2_PDE_ADDRESS_VID) << V2_PDE_ADDRESS_SHIFT, /* 1 << 37 */
	.layout = &v2_layout,
};
