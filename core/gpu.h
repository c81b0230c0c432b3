/* SPDX-License-Identifier: MIT */
/*
 * Private GPU object: chip table, counted register access, and the pieces
 * every address space shares (PRAMIN window, TLB engine, VRAM owner).
 *
 * Only this file's .c, pramin.c and tlb.c know register offsets on the
 * driver side. The simulator keeps its own copy (core/sim/sim_regs.h) so
 * that the two sides check each other.
 */
#ifndef VMMFS_CORE_GPU_H
#define VMMFS_CORE_GPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <vmmfs/vmmfs.h>
#include "backend.h"

/* Driver-side register offsets (nvidia-mmu.md §2–§4). */
#define NV_PMC_BOOT_0                 0x00000000u
#define NV_PMC_BOOT_42                0x00000a00u
#define NV_PBUS_BAR0_WINDOW           0x00001700u
#define NV_XAL_EP_BAR0_WINDOW         0x0010fd40u
#define NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE 0x00100ce0u
#define NV_PRAMIN_BASE                0x00700000u
#define NV_PRAMIN_SIZE                0x00100000u
#define NV_VF_PRIV_MMU_INVALIDATE_PDB       0x00b830a0u
#define NV_VF_PRIV_MMU_INVALIDATE_UPPER_PDB 0x00b830a4u
#define NV_VF_PRIV_MMU_INVALIDATE           0x00b830b0u

enum vmmfs_window_kind {
	VMMFS_WINDOW_PBUS = 0, /* 0x1700, BASE 23:0, TARGET 25:24 */
	VMMFS_WINDOW_XAL_EP,   /* 0x10FD40, BASE base_bits-1:0, no target */
};

struct vmmfs_chip {
	const char *name;          /* "ga102" */
	const char *chipset;       /* "GA102" */
	unsigned int code;         /* (arch << 4) | impl, e.g. 0x172 */
	const char *arch;          /* "ampere" */
	int mmu_version;           /* 2 or 3 */
	int va_bits;               /* 49 or 57 */
	enum vmmfs_window_kind window;
	int window_base_bits;      /* 24 (PBUS), 22 (Hopper), 23 (Blackwell) */
	bool pd1_512m;             /* 512 MiB PTEs at PD1 */
	uint64_t default_vram;     /* board size the simulator uses by default */
	uint16_t pci_ids[4];       /* a few device IDs, 0-terminated (for --list guesses) */
	uint16_t pci_id_lo, pci_id_hi; /* device-ID range (a guess when BAR0 is unreadable) */
};

/* The chip table; NULL-terminated by name. */
extern const struct vmmfs_chip vmmfs_chips[];
const struct vmmfs_chip *vmmfs_chip_by_name(const char *name);
const struct vmmfs_chip *vmmfs_chip_by_code(unsigned int code);
const struct vmmfs_chip *vmmfs_chip_by_pci_id(uint16_t device_id);

/* Decodes BOOT_0/BOOT_42 into a chip. Returns 0, or -ENODEV with a reason
 * in why (all ones: device gone; pre-Fermi/pre-Turing; unknown chipset). */
int vmmfs_chip_identify(uint32_t boot0, uint32_t boot42,
			const struct vmmfs_chip **chip, char *why, size_t whylen);
/* The BOOT_0/BOOT_42 values a chip reports (revision A1). */
void vmmfs_chip_boot_regs(const struct vmmfs_chip *chip, uint32_t *boot0, uint32_t *boot42);

/* NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE encoding: size = (mag << scale) MiB.
 * encode returns -EINVAL when size is not expressible. */
int vmmfs_fb_size_encode(uint64_t bytes, uint32_t *reg);
uint64_t vmmfs_fb_size_decode(uint32_t reg);

struct vmmfs_pramin {
	pthread_mutex_t lock;
	uint64_t base;      /* VRAM address the window shows at NV_PRAMIN_BASE */
	bool base_known;
};

struct vmmfs_tlb {
	pthread_mutex_t lock;
	unsigned int timeout_us;   /* poll bound, default 2 s */
};

struct vmmfs_vram;

struct vmmfs_gpu {
	struct vmmfs_backend be;
	const struct vmmfs_chip *chip;
	struct vmmfs_gpu_info info;
	struct vmmfs_pramin pramin;
	struct vmmfs_tlb tlb;
	struct vmmfs_vram *vram;
	void *sim;                 /* struct vmmfs_sim * when the backend is the simulator */
	atomic_bool gone;          /* device vanished: every access fails with -ENODEV */
	atomic_uint_fast64_t mmio_reads, mmio_writes, mmio_read_bytes, mmio_write_bytes;
	atomic_uint_fast64_t window_moves, tlb_flushes;
};

/* Counted register access. */
uint32_t gpu_rd32(struct vmmfs_gpu *gpu, uint32_t off);
void gpu_wr32(struct vmmfs_gpu *gpu, uint32_t off, uint32_t val);
uint64_t gpu_rd64(struct vmmfs_gpu *gpu, uint32_t off);
void gpu_wr64(struct vmmfs_gpu *gpu, uint32_t off, uint64_t val);
void gpu_rd64_block(struct vmmfs_gpu *gpu, uint32_t off, uint64_t *vals, size_t n);
void gpu_wr64_block(struct vmmfs_gpu *gpu, uint32_t off, const uint64_t *vals, size_t n);

/* True (and the device is marked gone) when BOOT_0 now reads all ones.
 * Callers use it after a read returned all ones, to tell "device gone"
 * from a legitimate all-ones value. */
bool gpu_check_gone(struct vmmfs_gpu *gpu);

/* Opens a GPU over an already-open backend (used by vmmfs_gpu_open and by
 * tests that build a backend themselves). Takes ownership of be on success. */
int vmmfs_gpu_open_backend(const struct vmmfs_backend *be, uint64_t vram_start,
			   uint64_t vram_end, struct vmmfs_gpu **out,
			   char *err, size_t errlen);

#endif
