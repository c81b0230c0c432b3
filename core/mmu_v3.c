/* SPDX-License-Identifier: MIT */
/*
 * MMU v3 (Hopper, Blackwell): level table and bit layouts. Data only;
 * core/mmu.c encodes and decodes from it. Facts: nvidia-mmu.md §5.2, §5.3,
 * §5.5, big-pages-and-tlb.md §1–§4 and §6 (the NV_MMU_VER3_* fields of
 * NVIDIA's gh100 dev_mmu.h).
 *
 *  57-bit VA, 6 levels:
 *
 *    PD4   2 x 8 B = 16 B (root)                       VA 56
 *     └ PD3   512 x 8 B                                VA 55:47
 *        └ PD2   512 x 8 B                             VA 46:38
 *           └ PD1   512 x 8 B                          VA 37:29   [512 MiB PTE]
 *              └ PD0   256 x 16 B, dual                VA 28:21   [2 MiB PTE in lo]
 *                 ├ lo: big half ── LPT 32 x 8 B = 256 B  VA 20:16   64 KiB pages
 *                 └ hi: small half ─ PT 512 x 8 B         VA 20:12    4 KiB pages
 *
 *  VA:  56 55     47 46     38 37     29 28    21 20  16 15  12 11        0
 *      [PD4][  PD3  ] [  PD2  ] [  PD1  ] [ PD0  ] [      PT      ] [ offset ]
 *                                                 [ LPT ] (64 KiB pages: offset 15:0)
 */
#include "internal.h"
#include "mmu.h"

static const struct mmu_level v3_levels[] = {
	{ .name = "PD4", .shift = 56, .bits = 1, .entry_size = 8 },
	{ .name = "PD3", .shift = 47, .bits = 9, .entry_size = 8 },
	{ .name = "PD2", .shift = 38, .bits = 9, .entry_size = 8 },
	{ .name = "PD1", .shift = 29, .bits = 9, .entry_size = 8 },
	{ .name = "PD0", .shift = 21, .bits = 8, .entry_size = 16, .dual = true },
	{ .name = "PT",  .shift = 12, .bits = 9, .entry_size = 8 },
};

/*
 * PTE (NV_MMU_VER3_PTE_*), also the LPTE, the 2 MiB PTE in PD0's low word
 * and the 512 MiB PTE at PD1:
 *
 *   63   61 60   52 51                      12 11   8 7      3 2:1    0
 *  [PEER_ID][  0   ][        ADDRESS          ][ KIND ][  PCF   ] APER VALID
 *                            [ VID: 39:12 ]
 *   APER in the PTE encoding (0 VID, 1 PEER, 2 SYS, 3 SYSNC); the address is
 *   PA >> 12, 40 bits for SYS and PEER, 28 bits for VID.
 *
 * PCF with VALID = 1 is a bit set. The hardware order, which nova-core's
 * PtePcf gets wrong for bits 1 and 4:
 *   bit 0 (3) uncached, bit 1 (4) privileged, bit 2 (5) read-only,
 *   bit 3 (6) atomics disabled, bit 4 (7) ACD (access counting disabled).
 * PCF with VALID = 0 is a value:
 *   0 INVALID      raw 0     in an LPTE: "use the small PTEs"
 *   1 SPARSE       raw 0x08  reads 0, writes dropped, no fault
 *   2 MAPPING_NOWHERE  0x10  never written by any driver: decodes as OTHER
 *   3 NO_VALID_4KB_PAGE 0x18 LPTE only: fault, small PTEs ignored
 */
#define V3_PTE_VALID            BIT(0)
#define V3_PTE_APERTURE         GENMASK(2, 1)
#define V3_PTE_PCF              GENMASK(7, 3)
#define V3_PTE_PCF_UNCACHED     BIT(3)
#define V3_PTE_PCF_PRIVILEGE    BIT(4)
#define V3_PTE_PCF_READ_ONLY    BIT(5)
#define V3_PTE_PCF_NO_ATOMIC    BIT(6)
#define V3_PTE_PCF_ACD          BIT(7)
#define V3_PTE_KIND             GENMASK(11, 8)
#define V3_PTE_ADDRESS          GENMASK(51, 12)  /* SYS and PEER, PA >> 12 */
#define V3_PTE_ADDRESS_VID      GENMASK(39, 12)  /* PA >> 12, 28 bits */
#define V3_PTE_PEER_ID          GENMASK(63, 61)
#define V3_PTE_PCF_SHIFT        3
#define V3_PTE_SPARSE           (1ull << V3_PTE_PCF_SHIFT)  /* PCF 1 */
#define V3_LPTE_NO_4K           (3ull << V3_PTE_PCF_SHIFT)  /* PCF 3 */

/*
 * 8-byte PDE (NV_MMU_VER3_PDE_*), at PD4, PD3, PD2 and PD1:
 *
 *   63  52 51                      12 11  6 5   3 2:1    0
 *  [  0   ][        ADDRESS          ][ 0  ][PCF ] APER IS_PTE
 *   IS_PTE 0 = points to a table; APER in the PDE encoding (0 none, 1 VID,
 *   2 SYS, 3 SYSNC); address = table PA >> 12.
 *   PCF bit 0 (3) uncached, bit 1 (4) ATS not allowed. With APER 0,
 *   PCF 1 or 3 is sparse: raw 0x18 is "sparse, no ATS" here but
 *   NO_VALID_4KB_PAGE in an LPTE, so entries decode by level.
 */
#define V3_PDE_IS_PTE           BIT(0)
#define V3_PDE_APERTURE         GENMASK(2, 1)
#define V3_PDE_PCF_UNCACHED     BIT(3)
#define V3_PDE_PCF_NO_ATS       BIT(4)
#define V3_PDE_ADDRESS          GENMASK(51, 12)
#define V3_PDE_ADDRESS_SHIFT    12

/*
 * 16-byte dual PDE (NV_MMU_VER3_DUAL_PDE_*), at PD0:
 *
 *  lo (big half, LPT):   IS_PTE 0, APERTURE_BIG 2:1, PCF_BIG 5:3,
 *                        ADDRESS_BIG 51:8 = LPT PA >> 8 (the word is
 *                        LPT PA plus flags).
 *  hi (small half, PT):  APERTURE_SMALL 2:1 (66:65), PCF_SMALL 5:3 (69:67),
 *                        ADDRESS_SMALL 51:12 (115:76) = PT PA >> 12.
 *
 * Both PCFs are PDE PCFs (uncached, ATS not allowed; sparse with aperture
 * 0). IS_PTE = 1 makes lo a 2 MiB PTE (with hi 0). lo = 0x8 is a sparse
 * 2 MiB.
 */
#define V3_DUAL_IS_PTE              BIT(0)
#define V3_DUAL_APERTURE_BIG        GENMASK(2, 1)
#define V3_DUAL_PCF_BIG_UNCACHED    BIT(3)
#define V3_DUAL_PCF_BIG_NO_ATS      BIT(4)
#define V3_DUAL_ADDRESS_BIG         GENMASK(51, 8)
#define V3_DUAL_ADDRESS_BIG_SHIFT   8
#define V3_DUAL_APERTURE_SMALL      GENMASK(2, 1)
#define V3_DUAL_PCF_SMALL_UNCACHED  BIT(3)
#define V3_DUAL_PCF_SMALL_NO_ATS    BIT(4)
#define V3_DUAL_ADDRESS_SMALL       GENMASK(51, 12)

static const struct mmu_layout v3_layout = {
	.pte = {
		.valid = V3_PTE_VALID,
		.aperture = V3_PTE_APERTURE,
		.addr = {
			[MMU_APER_VID] = V3_PTE_ADDRESS_VID,
			[MMU_APER_PEER] = V3_PTE_ADDRESS,
			[MMU_APER_SYS] = V3_PTE_ADDRESS,
			[MMU_APER_SYSNC] = V3_PTE_ADDRESS,
		},
		.peer = V3_PTE_PEER_ID,
		.kind = V3_PTE_KIND,
		.comptagline = 0,
		.uncached = V3_PTE_PCF_UNCACHED,
		.encrypted = 0,
		.privileged = V3_PTE_PCF_PRIVILEGE,
		.read_only = V3_PTE_PCF_READ_ONLY,
		.atomic_disable = V3_PTE_PCF_NO_ATOMIC,
		.acd = V3_PTE_PCF_ACD,
		.raw_sparse = V3_PTE_SPARSE,
		.raw_no4k = V3_LPTE_NO_4K,
	},
	.pde = {
		.is_pte = V3_PDE_IS_PTE,
		.aperture = V3_PDE_APERTURE,
		.uncached = V3_PDE_PCF_UNCACHED,
		.no_ats = V3_PDE_PCF_NO_ATS,
		.addr_vid = V3_PDE_ADDRESS,
		.addr_sys = V3_PDE_ADDRESS,
		.addr_shift = V3_PDE_ADDRESS_SHIFT,
	},
	.dual_big = {
		.is_pte = V3_DUAL_IS_PTE,
		.aperture = V3_DUAL_APERTURE_BIG,
		.uncached = V3_DUAL_PCF_BIG_UNCACHED,
		.no_ats = V3_DUAL_PCF_BIG_NO_ATS,
		.addr_vid = V3_DUAL_ADDRESS_BIG,
		.addr_sys = V3_DUAL_ADDRESS_BIG,
		.addr_shift = V3_DUAL_ADDRESS_BIG_SHIFT,
	},
	.dual_small = {
		.is_pte = 0,
		.aperture = V3_DUAL_APERTURE_SMALL,
		.uncached = V3_DUAL_PCF_SMALL_UNCACHED,
		.no_ats = V3_DUAL_PCF_SMALL_NO_ATS,
		.addr_vid = V3_DUAL_ADDRESS_SMALL,
		.addr_sys = V3_DUAL_ADDRESS_SMALL,
		.addr_shift = V3_PDE_ADDRESS_SHIFT,
	},
	.dual_shared_no_ats = false,
	/*
	 * What vmmfs writes for VRAM:
	 *  - PTEs with PCF 0x08 (RW) / 0x0C (RO): cached, no atomics, access
	 *    counting on, as nova-core does; the word is PA | 0x41 / PA | 0x61.
	 *  - PDEs and present dual halves with PCF 2, VALID_CACHED_ATS_NOT_ALLOWED,
	 *    as nouveau does (nova-core writes PCF 0), i.e. T | 0x12. "ATS
	 *    allowed" lets the GPU resolve addresses under the entry through
	 *    PCIe Address Translation Services, i.e. the CPU's IOMMU page
	 *    tables, which is for address spaces shared with a CPU process. A
	 *    vmmfs address space is the GPU's own and maps only what its tables
	 *    say, so it asks for no ATS; on a system without ATS the two values
	 *    behave alike.
	 */
	.vid_pte_atomic_disable = true,
	.vid_pde_no_ats = true,
};

/* First unrepresentable value of a field, as a constant expression. */
#define V3_FIELD_END(mask) (((mask) >> __builtin_ctzll(mask)) + 1)

const struct mmu_fmt mmu_fmt_v3 = {
	.version = 3,
	.va_bits = 57,
	.nlevels = ARRAY_SIZE(v3_levels),
	.levels = v3_levels,
	.lpt = { .name = "LPT", .shift = 16, .bits = 5, .entry_size = 8 },
	.pd0 = 4,
	.max_vid_pfn = V3_FIELD_END(V3_PTE_ADDRESS_VID),                         /* 1 << 28 */
	.max_pde_pa = V3_FIELD_END(V3_PDE_ADDRESS) << V3_PDE_ADDRESS_SHIFT,     /* 1 << 52 */
	.layout = &v3_layout,
};
