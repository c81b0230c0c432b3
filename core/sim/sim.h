/* SPDX-License-Identifier: MIT */
/*
 * The simulated GPU: a BAR0 register file, VRAM, and the GPU's own MMU with
 * a TLB — "hardware" that vmmfs's driver code talks to through the same
 * backend ops table as a real GPU.
 *
 * The simulator shares no code or bit definitions with the driver side
 * (core/mmu*, core/gpu.c): its register map is core/sim/sim_regs.h and its
 * page walker is core/sim/sim_mmu.c, so a wrong bit on either side shows up
 * as a disagreement in tests.
 *
 * BAR0 map (16 MiB):
 *   0x000000 BOOT_0, 0x000a00 BOOT_42 (consistent with the chip)
 *   0x001700 NV_PBUS_BAR0_WINDOW (pre-Hopper: BASE 23:0, TARGET 25:24)
 *   0x10fd40 NV_XAL_EP_BAR0_WINDOW (Hopper BASE 21:0, Blackwell 22:0)
 *   0x100ce0 NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE (VRAM size)
 *   0x700000-0x7fffff PRAMIN: VRAM [window base, +1 MiB)
 *   0xb830a0/0xb830a4/0xb830b0 TLB invalidate PDB / UPPER_PDB / INVALIDATE
 *   anything else: reads 0xbadf5040 ("bad register" pattern), writes are
 *   dropped; both are counted in unclaimed_reads/unclaimed_writes.
 *
 * VRAM: sized by the chip's board default or by config (any size the size
 * register can express, up to 80 GiB and more). Host memory is used only
 * for 64 KiB blocks that were written (reads of untouched VRAM return the
 * poison pattern 0x5a5a5a5a_dead_beef-style word VMMFS_SIM_POISON64 without
 * allocating). Optionally backed by a file (sparse), so VRAM survives a
 * restart; a file of a different size is refused.
 *
 * TLB invalidate: a write with TRIGGER (bit 31) starts an invalidate;
 * INVALIDATE reads back with bit 31 set for `busy_polls` reads (default 2)
 * and then clear, at which point the invalidate takes effect (cached
 * entries for that PDB — or all, with ALL_PDB — are dropped). With
 * VMMFS_SIM_FAULT_STUCK_INVALIDATE it never completes.
 *
 * Thread safety: all functions are thread-safe (one internal mutex; VRAM
 * block allocation is lock-protected, reads/writes of distinct words may
 * run concurrently).
 */
#ifndef VMMFS_SIM_H
#define VMMFS_SIM_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "../backend.h"

#define VMMFS_SIM_POISON32 0xbaadf00du
#define VMMFS_SIM_POISON64 0xbaadf00dbaadf00dull
#define VMMFS_SIM_BAD_REG  0xbadf5040u

struct vmmfs_sim;

struct vmmfs_sim_config {
	const char *chip;       /* simulator chip name, NULL = "ga102" */
	uint64_t vram_size;     /* 0 = chip default */
	const char *vram_file;  /* NULL = anonymous */
};

/* Chips the simulator models: name, BOOT_0, BOOT_42, default VRAM size,
 * MMU version. Independent of the driver's chip table on purpose. */
struct vmmfs_sim_chip {
	const char *name;
	uint32_t boot0, boot42;
	uint64_t vram_default;
	int mmu_version;        /* 2 or 3 */
	bool pd1_512m;          /* the MMU accepts 512 MiB PTEs at PD1 */
	bool xal_window;        /* window register at 0x10fd40 */
	int window_base_bits;   /* 24, 22 or 23 */
};
extern const struct vmmfs_sim_chip vmmfs_sim_chips[]; /* NULL-name terminated */

/* Returns 0, -EINVAL (unknown chip, bad size; err says why), -ENOMEM,
 * -EIO (file cannot be opened/sized; err says why). */
int vmmfs_sim_create(const struct vmmfs_sim_config *cfg, struct vmmfs_sim **out,
		     char *err, size_t errlen);
void vmmfs_sim_destroy(struct vmmfs_sim *sim);

/* The backend ops over this simulator. The backend's close() destroys sim. */
void vmmfs_sim_backend(struct vmmfs_sim *sim, struct vmmfs_backend *be);

const struct vmmfs_sim_chip *vmmfs_sim_get_chip(const struct vmmfs_sim *sim);
uint64_t vmmfs_sim_vram_size(const struct vmmfs_sim *sim);

/* Direct VRAM access for tests (no register traffic, not counted). */
void vmmfs_sim_vram_peek(struct vmmfs_sim *sim, uint64_t pa, void *buf, size_t len);
void vmmfs_sim_vram_poke(struct vmmfs_sim *sim, uint64_t pa, const void *buf, size_t len);
/* Host bytes in use for VRAM blocks (for memory tests). */
uint64_t vmmfs_sim_vram_resident(const struct vmmfs_sim *sim);

/* Fault injection. */
#define VMMFS_SIM_FAULT_STUCK_INVALIDATE 0x1u /* TRIGGER never clears */
#define VMMFS_SIM_FAULT_VANISHED         0x2u /* every read returns all ones, writes dropped */
void vmmfs_sim_set_faults(struct vmmfs_sim *sim, unsigned int faults);
void vmmfs_sim_set_busy_polls(struct vmmfs_sim *sim, unsigned int polls);

struct vmmfs_sim_counters {
	uint64_t reads, writes;              /* every BAR0 access, any width */
	uint64_t read_bytes, write_bytes;
	uint64_t unclaimed_reads, unclaimed_writes;
	uint64_t window_writes;              /* writes to the window register */
	uint64_t invalidates_started, invalidates_completed;
	uint64_t last_invalidate;            /* last value written to INVALIDATE */
	uint64_t last_invalidate_pdb;        /* PDB it named (PA) */
	uint64_t pramin_reads, pramin_writes;/* accesses inside the aperture */
	/* aperture accesses that reached no VRAM (beyond VRAM, or window
	 * TARGET != VID_MEM): reads return VMMFS_SIM_BAD_REG, writes dropped */
	uint64_t pramin_dropped_reads, pramin_dropped_writes;
};
void vmmfs_sim_get_counters(struct vmmfs_sim *sim, struct vmmfs_sim_counters *c);
void vmmfs_sim_reset_counters(struct vmmfs_sim *sim);

/* The GPU's MMU: translate va in the address space rooted at pdb (a VRAM
 * PA), through the TLB. access: 'r' or 'w' (a write to a read-only page
 * faults). Returns 0 with *out filled, or -EINVAL for another access.
 * from_tlb: the outcome came from the leaf TLB (PDE-cache hits alone do not
 * set it). Entries pointing at system or peer memory fault OUT_OF_VRAM (the
 * simulator has none); an entry that reads the poison pattern faults
 * BAD_ENCODING ("uninitialised VRAM"). The walk costs no BAR0 accesses. */
enum vmmfs_sim_xlate_result {
	VMMFS_SIM_XLATE_OK = 0,
	VMMFS_SIM_XLATE_SPARSE,
	VMMFS_SIM_XLATE_FAULT,
};
enum vmmfs_sim_fault_kind {
	VMMFS_SIM_FAULT_NONE = 0,
	VMMFS_SIM_FAULT_PDE_NOT_PRESENT, /* a directory entry is empty */
	VMMFS_SIM_FAULT_PTE_INVALID,     /* leaf entry VALID=0 */
	VMMFS_SIM_FAULT_NO_4K,           /* big PTE says: no 4 KiB PTEs */
	VMMFS_SIM_FAULT_READ_ONLY,       /* write to a read-only page */
	VMMFS_SIM_FAULT_BAD_ENCODING,    /* IS_PTE where no leaf is allowed, undocumented value, misaligned */
	VMMFS_SIM_FAULT_OUT_OF_VRAM,     /* a table or page beyond VRAM */
	VMMFS_SIM_FAULT_VA_RANGE,        /* va beyond the address space */
};
struct vmmfs_sim_xlate {
	enum vmmfs_sim_xlate_result result;
	enum vmmfs_sim_fault_kind fault;
	uint64_t pa;
	uint64_t page_size;
	bool read_only;
	bool from_tlb;
	int level;          /* fault: depth of the table (0 = root; the 64 KiB
			     * LPT counts at the PT's depth, its reason says
			     * "LPT"); OK/SPARSE: where the leaf entry is */
	uint32_t index;     /* entry index there */
	char reason[96];    /* fault: for a person, e.g. "PD1[3]: entry not present" */
};
int vmmfs_sim_translate(struct vmmfs_sim *sim, uint64_t pdb, uint64_t va,
			char access, struct vmmfs_sim_xlate *out);

/* TLB model control: caching on (default) or off; drop everything. */
void vmmfs_sim_tlb_set_enabled(struct vmmfs_sim *sim, bool on);
void vmmfs_sim_tlb_flush_all(struct vmmfs_sim *sim);
uint64_t vmmfs_sim_tlb_entries(struct vmmfs_sim *sim);

#endif
