/* SPDX-License-Identifier: MIT */
/*
 * Opening a GPU: the simulated one (default) or a real one through libpci.
 *
 * State: a struct vmmfs_gpu owns its backend (BAR0 access), the PRAMIN
 *   window, the TLB-invalidate engine and the VRAM page allocator shared by
 *   every address space made on it.
 * Locking: all functions are thread-safe. Internally one mutex guards the
 *   PRAMIN window, one the TLB invalidate sequence, one the VRAM allocator;
 *   none of them is held while another is taken, except PRAMIN inside an
 *   address space's own lock (see vmm.h).
 */
#ifndef VMMFS_GPU_H
#define VMMFS_GPU_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

enum vmmfs_backend_kind {
	VMMFS_BACKEND_SIM = 0,
	VMMFS_BACKEND_PCI = 1,
};

struct vmmfs_gpu_config {
	enum vmmfs_backend_kind backend;
	/* simulated GPU */
	const char *chip;        /* "tu102", "ga102", "ad102", "gh100", "gb202"...; NULL = ga102 */
	uint64_t vram_size;      /* bytes; 0 = the chip's board default */
	const char *vram_file;   /* NULL = anonymous memory; else VRAM persists in this file */
	/* real GPU */
	const char *device;      /* PCI address "0000:65:00.0" */
	const char *pci_access;  /* "METHOD[:PATH]" for libpci, NULL = default */
	/* Both: the VRAM range vmmfs may allocate page tables and alloc= memory
	 * from, [start, end). end == 0 means all of VRAM (simulator only; a
	 * real GPU requires an explicit range). */
	uint64_t vram_start, vram_end;
};

struct vmmfs_gpu_info {
	char chipset[16];      /* "GA102" */
	char chip[16];         /* "ga102" */
	const char *arch;      /* "turing", "ampere", "ada", "hopper", "blackwell" */
	unsigned int chipset_code; /* e.g. 0x172 */
	int mmu_version;       /* 2 or 3 */
	int va_bits;           /* 49 or 57 */
	uint64_t vram_size;    /* bytes */
	uint64_t vram_start, vram_end; /* managed range, [start, end) */
	bool big_pages_2m;     /* 2 MiB PTEs at PD0 */
	bool big_pages_512m;   /* 512 MiB PTEs at PD1 (Ampere and later) */
	uint32_t boot0, boot42;
	char backend[64];      /* "sim" or "pci 0000:65:00.0" */
};

/* Opens a GPU.
 * err/errlen (may be NULL/0): on failure, one line for a person saying what
 *   failed and what to do.
 * Returns 0, or -EINVAL (bad config: unknown chip name, VRAM size not
 * expressible by the chip's size register, range outside VRAM), -ENOMEM,
 * -ENODEV (no such device, BAR0 reads all ones, unknown or pre-Turing chip),
 * -EBUSY (a kernel driver owns the device), -EACCES/-EPERM (BAR0 mapping
 * refused), -EIO (VRAM file unusable), -EOPNOTSUPP (built without libpci). */
int vmmfs_gpu_open(const struct vmmfs_gpu_config *cfg, struct vmmfs_gpu **out,
		   char *err, size_t errlen);

/* Closes the GPU. Every address space on it must have been destroyed. */
void vmmfs_gpu_close(struct vmmfs_gpu *gpu);

const struct vmmfs_gpu_info *vmmfs_gpu_get_info(const struct vmmfs_gpu *gpu);

/* Names of the simulated chips, NULL-terminated. */
const char *const *vmmfs_sim_chip_names(void);

struct vmmfs_gpu_stats {
	uint64_t mmio_reads, mmio_writes;       /* one per access, any width */
	uint64_t mmio_read_bytes, mmio_write_bytes;
	uint64_t window_moves;                  /* PRAMIN window register writes */
	uint64_t tlb_flushes;                   /* completed TLB invalidates */
};
void vmmfs_gpu_get_stats(struct vmmfs_gpu *gpu, struct vmmfs_gpu_stats *st);

struct vmmfs_vram_usage {
	uint64_t total_pages;  /* pages in the managed range */
	uint64_t free_pages;   /* free in the allocator */
	uint64_t pt_pages;     /* holding page tables (all address spaces) */
	uint64_t mapped_pages; /* distinct pages mapped at least once */
	uint64_t alloc_pages;  /* allocated for alloc= mappings */
};
void vmmfs_gpu_get_vram_usage(struct vmmfs_gpu *gpu, struct vmmfs_vram_usage *u);

/* Crash recovery (the daemon's --state): rebuilding mappings that existed
 * before a restart without letting the page tables of the rebuild land on
 * their pages. Claim and pin every page first, then create the address
 * spaces and map; alloc= pages go to their mapping with VMMFS_MAP_CLAIM.
 *
 * vmmfs_gpu_vram_claim: takes exactly first..first+count-1 out of the VRAM
 *   allocator as alloc= pages owned by the caller; contents untouched (not
 *   zeroed). Pages that something maps stay claimable. Returns 0, -EINVAL
 *   (count 0), -ERANGE (outside the managed range), -EBUSY (a page is not
 *   free: it holds a page table or is already owned), -ENOMEM.
 * vmmfs_gpu_vram_unclaim: gives claimed pages back (whole claims).
 * vmmfs_gpu_vram_pin: one mapping reference on each page of the run, as a
 *   mapping holds, so no page table is allocated there; all or nothing.
 *   Returns 0, -EINVAL (count 0), -ERANGE (beyond VRAM), -EACCES (a page
 *   holds a page table), -EOVERFLOW (a page is mapped too many times).
 * vmmfs_gpu_vram_unpin: drops those references. */
int vmmfs_gpu_vram_claim(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count);
void vmmfs_gpu_vram_unclaim(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count);
int vmmfs_gpu_vram_pin(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count);
void vmmfs_gpu_vram_unpin(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count);

/* Raw VRAM access through the PRAMIN window, any length and alignment.
 * Returns 0, -ERANGE (outside VRAM), -ENODEV (device gone). */
int vmmfs_gpu_vram_read(struct vmmfs_gpu *gpu, uint64_t pa, void *buf, size_t len);
int vmmfs_gpu_vram_write(struct vmmfs_gpu *gpu, uint64_t pa, const void *buf, size_t len);

/* What the GPU's own MMU (with its TLB) makes of a virtual address, as
 * opposed to what vmmfs's page-table walker reads (vmmfs_vmm_lookup).
 * Available on the simulated GPU; a real GPU returns -EOPNOTSUPP. */
enum vmmfs_hw_result {
	VMMFS_HW_OK = 0,    /* translated */
	VMMFS_HW_SPARSE,    /* sparse: reads zero, writes dropped */
	VMMFS_HW_FAULT,     /* fault: see level, index, reason */
};
struct vmmfs_hw_translation {
	enum vmmfs_hw_result result;
	uint64_t pa;          /* if OK */
	uint64_t page_size;   /* if OK or SPARSE */
	bool read_only;
	bool from_tlb;        /* served from a cached translation */
	int level;            /* fault: level name index (0 = root) */
	uint32_t index;       /* fault: entry index in that table */
	char reason[96];      /* fault: why, for a person */
};
int vmmfs_gpu_hw_translate(struct vmmfs_gpu *gpu, uint64_t pdb, uint64_t va,
			   struct vmmfs_hw_translation *out);

/* Lists the NVIDIA display functions libpci finds (vendor 0x10de, class
 * 0x0300/0x0302): one line per device with PCI address, device ID, chip and
 * architecture (from BOOT_0/BOOT_42 when BAR0 can be read, else a guess from
 * the device ID, marked "?"), MMU version, bound kernel driver, BAR0/BAR1
 * address and size, and whether vmmfs can drive it and why not.
 * pci_access: "METHOD[:PATH]" (e.g. "dump:tests/data/x.dump",
 * "linux-sysfs:/tmp/fake/sys/bus/pci"), NULL for libpci's default.
 * *text is malloc'ed (also on -EINVAL and -EIO, where it says why).
 * Returns the number of devices, or -EINVAL (unknown method), -EIO (libpci
 * failed), -ENOMEM, -EOPNOTSUPP (no libpci). */
int vmmfs_pci_list(const char *pci_access, char **text);

#endif
