/* SPDX-License-Identifier: MIT */
/*
 * The simulated GPU's own register map and page-table entry bits, written
 * from the hardware notes (nvidia-mmu.md §2–§5, big-pages-and-tlb.md §1–§6).
 *
 * Used by core/sim/ and by tests/sim_test.c only. The driver side keeps its
 * own offsets (core/gpu.h) and its own entry formats (core/mmu*): the two
 * copies are written independently on purpose, so that a wrong bit on either
 * side shows up as a disagreement in tests. Never include a driver header
 * here.
 *
 * Field masks are (hi, lo) pairs expressed with SIM_MASK(hi, lo).
 */
#ifndef VMMFS_SIM_REGS_H
#define VMMFS_SIM_REGS_H

#include <stdint.h>

#define SIM_MASK(hi, lo) ((~0ull >> (63 - (hi))) & ~((1ull << (lo)) - 1))
#define SIM_GET(v, hi, lo) (((uint64_t)(v) & SIM_MASK(hi, lo)) >> (lo))
#define SIM_PUT(x, hi, lo) (((uint64_t)(x) << (lo)) & SIM_MASK(hi, lo))

#define SIM_BAR0_SIZE 0x01000000u /* 16 MiB */

/* ---- identification (§2.1) ------------------------------------------- */
#define SIM_PMC_BOOT_0 0x00000000u
/* BOOT_0: architecture_0 28:24 (arch & 0x1f), implementation 23:20,
 * architecture_1 8 (arch >> 5), major revision 7:4, minor revision 3:0. */
#define SIM_BOOT0(arch, impl, maj, min) \
	((uint32_t)(SIM_PUT((arch) & 0x1f, 28, 24) | SIM_PUT(impl, 23, 20) | \
		    SIM_PUT((arch) >> 5, 8, 8) | SIM_PUT(maj, 7, 4) | SIM_PUT(min, 3, 0)))

#define SIM_PMC_BOOT_42 0x00000a00u
/* BOOT_42: architecture 29:24, implementation 23:20, major 19:16, minor 15:12. */
#define SIM_BOOT42(arch, impl, maj, min) \
	((uint32_t)(SIM_PUT(arch, 29, 24) | SIM_PUT(impl, 23, 20) | \
		    SIM_PUT(maj, 19, 16) | SIM_PUT(min, 15, 12)))

/* ---- VRAM size (§2.2) -------------------------------------------------- */
#define SIM_PFB_PRI_MMU_LOCAL_MEMORY_RANGE 0x00100ce0u
#define SIM_LMR_SCALE_HI 3
#define SIM_LMR_SCALE_LO 0
#define SIM_LMR_MAG_HI   9
#define SIM_LMR_MAG_LO   4
#define SIM_LMR_SCALE_MAX 15u
#define SIM_LMR_MAG_MAX   63u
/* size = (mag << scale) MiB */

/* ---- PRAMIN (§3) ------------------------------------------------------- */
#define SIM_PRAMIN_BASE 0x00700000u
#define SIM_PRAMIN_SIZE 0x00100000u /* 1 MiB */
#define SIM_WINDOW_SHIFT 16         /* BASE counts 64 KiB */

/* Turing, Ampere, Ada: NV_PBUS_BAR0_WINDOW. */
#define SIM_PBUS_BAR0_WINDOW 0x00001700u
#define SIM_PBUS_WINDOW_BASE_HI 23
#define SIM_PBUS_WINDOW_BASE_LO 0
#define SIM_PBUS_WINDOW_TARGET_HI 25
#define SIM_PBUS_WINDOW_TARGET_LO 24
#define SIM_PBUS_WINDOW_TARGET_VID_MEM 0u

/* Hopper, Blackwell: NV_XAL_EP_BAR0_WINDOW, BASE (bits-1):0, no target. */
#define SIM_XAL_EP_BAR0_WINDOW 0x0010fd40u

/* ---- TLB invalidate (§4.1) -------------------------------------------- */
#define SIM_MMU_INVALIDATE_PDB 0x00b830a0u
#define SIM_INV_PDB_APERTURE_BIT 1        /* 0 VID_MEM, 1 SYS_MEM */
#define SIM_INV_PDB_ADDR_HI 31
#define SIM_INV_PDB_ADDR_LO 4             /* PDB >> 12 */
#define SIM_MMU_INVALIDATE_UPPER_PDB 0x00b830a4u
#define SIM_INV_UPPER_ADDR_HI 19
#define SIM_INV_UPPER_ADDR_LO 0           /* PDB >> 40 */
#define SIM_MMU_INVALIDATE 0x00b830b0u
#define SIM_INV_ALL_VA       (1u << 0)
#define SIM_INV_ALL_PDB      (1u << 1)
#define SIM_INV_HUBTLB_ONLY  (1u << 2)
#define SIM_INV_SYS_MEMBAR   (1u << 6)
#define SIM_INV_ACK_HI 8
#define SIM_INV_ACK_LO 7
#define SIM_INV_ACK_GLOBALLY 1u
#define SIM_INV_CACHE_LEVEL_HI 26
#define SIM_INV_CACHE_LEVEL_LO 24         /* 0 ALL, 1 PTE_ONLY, k UP_TO_PDE(k-2) */
#define SIM_INV_TRIGGER      (1u << 31)

/* ---- page-table entries (§5.3–§5.5; big-pages §1–§4) ------------------ */
/* Aperture field, bits 2:1 of every PDE, dual-PDE half and PTE. The PDE and
 * PTE encodings differ. */
#define SIM_APER_HI 2
#define SIM_APER_LO 1
#define SIM_PDE_APER_INVALID 0u
#define SIM_PDE_APER_VIDEO   1u
#define SIM_PDE_APER_SYS_COH 2u
#define SIM_PDE_APER_SYS_NONCOH 3u
#define SIM_PTE_APER_VIDEO   0u
#define SIM_PTE_APER_PEER    1u
#define SIM_PTE_APER_SYS_COH 2u
#define SIM_PTE_APER_SYS_NONCOH 3u

/* Bit 0 of every entry: PTE VALID; at directory levels IS_PTE (a leaf). */
#define SIM_ENTRY_VALID 0x1ull

/* MMU v2 (Turing, Ampere, Ada). */
#define SIM_V2_VA_BITS 49
#define SIM_V2_PDE_VOL        (1ull << 3)   /* with aperture 0: sparse */
#define SIM_V2_PDE_ADDR_HI 32
#define SIM_V2_PDE_ADDR_LO 8                /* table PA >> 12 */
#define SIM_V2_DUAL_BIG_VOL   (1ull << 3)   /* lo word; aperture 0: sparse */
#define SIM_V2_DUAL_BIG_ADDR_HI 32
#define SIM_V2_DUAL_BIG_ADDR_LO 4           /* LPT PA >> 8 */
#define SIM_V2_DUAL_SMALL_ADDR_HI 32
#define SIM_V2_DUAL_SMALL_ADDR_LO 8         /* hi word: PT PA >> 12 */
#define SIM_V2_PTE_VOL        (1ull << 3)
#define SIM_V2_PTE_ENCRYPTED  (1ull << 4)
#define SIM_V2_PTE_PRIV       (1ull << 5)
#define SIM_V2_PTE_RO         (1ull << 6)
#define SIM_V2_PTE_ATOMIC_DIS (1ull << 7)
#define SIM_V2_PTE_ADDR_VID_HI 32
#define SIM_V2_PTE_ADDR_VID_LO 8            /* PA >> 12 */
#define SIM_V2_PTE_SPARSE 0x8ull            /* VALID 0, VOL 1 */
#define SIM_V2_PTE_NO_4K  0x20ull           /* VALID 0, PRIV 1 (LPTE) */
#define SIM_V2_PTE_AMBIGUOUS 0x28ull        /* VALID 0, VOL 1, PRIV 1 */

/* MMU v3 (Hopper, Blackwell). */
#define SIM_V3_VA_BITS 57
#define SIM_V3_PDE_PCF_HI 5
#define SIM_V3_PDE_PCF_LO 3                 /* 1 or 3 with aperture 0: sparse */
#define SIM_V3_PDE_ADDR_HI 51
#define SIM_V3_PDE_ADDR_LO 12               /* table PA >> 12 */
#define SIM_V3_DUAL_BIG_ADDR_HI 51
#define SIM_V3_DUAL_BIG_ADDR_LO 8           /* LPT PA >> 8 */
#define SIM_V3_DUAL_SMALL_ADDR_HI 51
#define SIM_V3_DUAL_SMALL_ADDR_LO 12        /* hi word: PT PA >> 12 */
#define SIM_V3_PTE_PCF_HI 7
#define SIM_V3_PTE_PCF_LO 3
/* PCF with VALID = 1: bit 0 uncached, 1 privileged, 2 read-only,
 * 3 atomics disabled, 4 access counting disabled. */
#define SIM_V3_PCF_RO 0x4u
/* PCF with VALID = 0. */
#define SIM_V3_PCF_INVALID 0u
#define SIM_V3_PCF_SPARSE 1u
#define SIM_V3_PCF_MAPPING_NOWHERE 2u
#define SIM_V3_PCF_NO_VALID_4KB 3u
#define SIM_V3_PTE_ADDR_VID_HI 39
#define SIM_V3_PTE_ADDR_VID_LO 12           /* PA >> 12, in place */
#define SIM_V3_PTE_SPARSE 0x8ull
#define SIM_V3_PTE_NO_4K  0x18ull

#endif
