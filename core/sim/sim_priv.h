/* SPDX-License-Identifier: MIT */
/*
 * Private state of the simulated GPU, shared by sim.c (register file,
 * backend), sim_vram.c (VRAM storage) and sim_mmu.c (MMU walker + TLB).
 *
 * Locking:
 *  - sim->lock guards register side effects (window moves, the invalidate
 *    engine, last_invalidate*) and the whole TLB; translate takes it.
 *  - vram->lock only serialises the first write to a 64 KiB block (poison
 *    fill + bitmap bit). Reads and writes of VRAM words never take a lock:
 *    the written-block bitmap is read with acquire loads, and a block is
 *    marked written only after it holds the poison pattern.
 *  - Counters are relaxed atomics, so the PRAMIN data path takes no lock.
 */
#ifndef VMMFS_SIM_PRIV_H
#define VMMFS_SIM_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include "sim.h"

#define SIM_BLOCK_SHIFT 16 /* VRAM is materialised in 64 KiB blocks */
#define SIM_BLOCK_SIZE (1ull << SIM_BLOCK_SHIFT)

struct sim_vram {
	uint64_t size;          /* bytes of VRAM */
	uint8_t *mem;           /* mapping: VRAM bytes [, bitmap, header] */
	size_t map_len;
	uint64_t nblocks;
	uint64_t *written;      /* bit per block: holds data (else reads poison) */
	bool written_in_map;    /* bitmap lives in the (file) mapping */
	int fd;                 /* -1 when anonymous */
	pthread_mutex_t lock;   /* first write of a block */
	atomic_uint_fast64_t touched; /* blocks marked written */
};

int sim_vram_open(struct sim_vram *v, uint64_t size, const char *path,
		  char *err, size_t errlen);
void sim_vram_close(struct sim_vram *v);
/* Byte copies; the range must lie inside VRAM (callers check). */
void sim_vram_read(struct sim_vram *v, uint64_t pa, void *buf, size_t len);
void sim_vram_write(struct sim_vram *v, uint64_t pa, const void *buf, size_t len);
/* Naturally aligned single words, atomic with respect to each other. */
uint32_t sim_vram_rd32(struct sim_vram *v, uint64_t pa);
void sim_vram_wr32(struct sim_vram *v, uint64_t pa, uint32_t val);
uint64_t sim_vram_rd64(struct sim_vram *v, uint64_t pa);
void sim_vram_wr64(struct sim_vram *v, uint64_t pa, uint64_t val);
uint64_t sim_vram_resident(const struct sim_vram *v);
/* "24 GiB", "100 MiB" or "N bytes", for messages. */
void sim_fmt_size(char *buf, size_t len, uint64_t bytes);

/* ---- TLB model (sim_mmu.c) ---------------------------------------------- */
#define SIM_TLB_SETS 1024
#define SIM_TLB_WAYS 4

/* What a walk made of one VA, independent of the access kind. */
struct sim_outcome {
	enum vmmfs_sim_xlate_result result;
	enum vmmfs_sim_fault_kind fault;
	uint64_t pa_base;       /* page base (OK) */
	uint64_t page_size;     /* OK / SPARSE */
	bool read_only;
	int level;              /* leaf or fault: depth of the table */
	uint32_t index;         /* entry index there */
	char name[8];           /* level name of the leaf ("PT", "LPT", "PD0", ...) */
	char reason[96];        /* fault */
};

/* Keys and values live in separate arrays so that an invalidate scans only
 * the small keys. */
struct sim_pde_key {
	uint64_t pdb;
	uint64_t prefix;        /* va >> (low bit of this level's index) */
	uint8_t depth;
	bool valid;
};

struct sim_pde_val {
	uint64_t lo, hi;        /* raw entry (hi: second word at the dual level) */
};

struct sim_leaf_key {
	uint64_t pdb;
	uint64_t vpage;         /* va >> 12 */
	bool valid;
};

struct sim_tlb {
	bool enabled;
	uint32_t npde, nleaf;   /* valid entries */
	struct sim_pde_key pde[SIM_TLB_SETS][SIM_TLB_WAYS];
	struct sim_pde_val pde_val[SIM_TLB_SETS][SIM_TLB_WAYS];
	struct sim_leaf_key leaf[SIM_TLB_SETS][SIM_TLB_WAYS];
	struct sim_outcome leaf_out[SIM_TLB_SETS][SIM_TLB_WAYS];
	uint8_t pde_next[SIM_TLB_SETS], leaf_next[SIM_TLB_SETS]; /* round-robin victim */
};

struct vmmfs_sim {
	const struct vmmfs_sim_chip *chip;
	pthread_mutex_t lock;
	struct sim_vram vram;
	uint32_t size_reg;              /* LOCAL_MEMORY_RANGE value */
	atomic_uint_fast32_t window;    /* raw window register */
	atomic_uint faults;
	/* invalidate engine (under lock) */
	uint32_t inv_pdb_lo, inv_pdb_hi, inv_ctrl;
	bool inv_pending;
	unsigned int inv_busy_left, busy_polls;
	uint64_t inv_pdb;               /* latched at trigger */
	bool inv_pdb_sys;               /* latched aperture was SYS_MEM */
	uint32_t inv_value;             /* latched INVALIDATE value */
	uint64_t last_invalidate, last_invalidate_pdb;
	/* counters */
	atomic_uint_fast64_t reads, writes, read_bytes, write_bytes;
	atomic_uint_fast64_t unclaimed_reads, unclaimed_writes, window_writes;
	atomic_uint_fast64_t inv_started, inv_completed;
	atomic_uint_fast64_t pramin_reads, pramin_writes;
	atomic_uint_fast64_t pramin_dropped_reads, pramin_dropped_writes;
	struct sim_tlb tlb;             /* under lock */
};

/* Applies a completed invalidate to the TLB (sim->lock held). */
void sim_tlb_invalidate_locked(struct vmmfs_sim *sim, bool all_pdb, uint64_t pdb,
			       bool pdb_sys, unsigned int cache_level);
void sim_tlb_init(struct sim_tlb *tlb);

#endif
