/* SPDX-License-Identifier: MIT */
/*
 * GPU virtual address spaces: two-phase map, unmap, lookup, dump, stats.
 *
 * State: a struct vmmfs_vmm owns its root page directory (allocated and
 *   zeroed at create), every page-table page below it, its VA allocator and
 *   its live mappings. VRAM pages come from the GPU's shared allocator.
 *   VRAM ownership is global to the GPU: a page that holds a page table can
 *   never be mapped (-EACCES); a mapped page is never handed to page tables;
 *   mapped pages are reference-counted, so one page may be mapped many times.
 *
 * Two phases:
 *   prepare  may fail. It validates, reserves VA, allocates every page-table
 *            page and every heap object that execute will need (a true
 *            bound, for any alignment and for all outstanding preparations
 *            together), and takes references that keep those tables alive.
 *            On failure nothing changed: VA, VRAM, tables, pending pages.
 *   execute  validates the PFNs (may fail with the op still prepared), then
 *            passes the point of no return: it writes directory entries and
 *            PTEs and issues exactly one TLB invalidate. It never allocates
 *            (no heap, no VRAM, no VA) and takes no lock that an allocation
 *            holds. Page-table pages that the PFNs made unnecessary (big
 *            pages used instead) are queued and released by a later call.
 *   abort    releases a prepared op.
 *
 * Flushing: exactly one TLB invalidate for the address space's root per
 *   execute and per unmap, after all entry writes; none for prepare or for
 *   a failed validation. Page tables emptied by unmap are unhooked from
 *   their parent before that invalidate and their VRAM is released only
 *   after it completed.
 *
 * Locking: every function is thread-safe. Each address space has one mutex,
 *   held by prepare only while it links pre-allocated pages (never across an
 *   allocation), by execute, unmap, lookup, dump and stats. Lock order:
 *   address space -> PRAMIN window -> TLB. The VRAM allocator lock is never
 *   held together with the PRAMIN or TLB lock.
 *
 * Lifetimes: a struct vmmfs_mapping stays valid until vmmfs_vmm_unmap() or
 *   vmmfs_vmm_destroy(); callers that share it between threads must ensure
 *   no one uses it after unmap.
 */
#ifndef VMMFS_VMM_H
#define VMMFS_VMM_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

/* Opaque; declared here so that this header stands on its own. */
struct vmmfs_gpu;
struct vmmfs_vmm;
struct vmmfs_map_op;
struct vmmfs_mapping;

enum vmmfs_va_place {
	VMMFS_VA_ANY = 0,   /* anywhere in the address space */
	VMMFS_VA_EXACT,     /* starting exactly at start */
	VMMFS_VA_RANGE,     /* anywhere inside [start, end) — may be larger than needed */
};

struct vmmfs_va_placement {
	enum vmmfs_va_place kind;
	uint64_t start;
	uint64_t end;        /* RANGE only: exclusive */
	/* Physical address of the first page to be mapped, or VMMFS_NO_PA_HINT.
	 * With ANY or RANGE the VMM picks a VA congruent to it modulo the
	 * largest page size that the mapping can use, so that big pages fit. */
	uint64_t pa_hint;
};
#define VMMFS_NO_PA_HINT UINT64_MAX

/* execute/map flags */
#define VMMFS_MAP_READ_ONLY  0x1u
#define VMMFS_MAP_SMALL_ONLY 0x2u /* 4 KiB PTEs only, never 64 KiB/2 MiB/512 MiB */
/* map_pages only: the PFNs are alloc= pages the caller took with
 * vmmfs_gpu_vram_claim (crash recovery). The mapping takes them over, not
 * zeroed: it reports allocated and returns them to VRAM at unmap, as a
 * map_alloc mapping does. If the map fails they stay the caller's. */
#define VMMFS_MAP_CLAIM      0x4u

/* Creates an address space with a fresh zeroed root directory.
 * Returns 0, -ENOMEM (heap or VRAM), -ENODEV (device gone). */
int vmmfs_vmm_create(struct vmmfs_gpu *gpu, struct vmmfs_vmm **out);

/* Unmaps every live mapping (one invalidate), frees every page-table page
 * and the root. Prepared ops must have been executed or aborted. */
void vmmfs_vmm_destroy(struct vmmfs_vmm *vmm);

uint64_t vmmfs_vmm_pdb(const struct vmmfs_vmm *vmm);     /* root PA */
uint64_t vmmfs_vmm_va_size(const struct vmmfs_vmm *vmm); /* 1 << va_bits */

/* Phase 1. npages 4 KiB pages; pl NULL means anywhere.
 * Returns 0, -EINVAL (npages 0, start/end not page-aligned, end <= start),
 * -ERANGE (VA outside the address space, size overflows), -ENOSPC (no free
 * VA range of that size where asked), -EEXIST (EXACT overlaps a mapping or
 * a prepared op), -ENOMEM (no heap, or no VRAM for page tables). */
int vmmfs_vmm_prepare_map(struct vmmfs_vmm *vmm, uint64_t npages,
			  const struct vmmfs_va_placement *pl,
			  struct vmmfs_map_op **op);

uint64_t vmmfs_map_op_va(const struct vmmfs_map_op *op);
uint64_t vmmfs_map_op_npages(const struct vmmfs_map_op *op);

/* Phase 2: maps pfns[0..npages) at the prepared VA.
 * Validation errors leave the op prepared (abort or retry it):
 *   -EINVAL (pfns NULL, unknown flags), -ERANGE (a PFN beyond VRAM or
 *   beyond what the entry can address), -EACCES (a PFN holds a page table),
 *   -EOVERFLOW (a page would be mapped more than 32766 times at once).
 * After validation the op is consumed. Hardware errors: -ENODEV (device
 * gone), -ETIMEDOUT (TLB invalidate did not complete): the VMM undoes what
 * it can; VA and tables whose entries it could not prove cleared stay
 * quarantined (never reused) until destroy. No PDE ever points at freed
 * VRAM. */
int vmmfs_vmm_execute_map(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op,
			  const uint64_t *pfns, unsigned int flags,
			  struct vmmfs_mapping **out);

/* Releases a prepared op: VA, table references, pre-allocated objects. */
void vmmfs_vmm_abort_map(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op);

/* prepare + execute. Uses pfns[0] as the placement's pa_hint when the
 * caller gave none. flags: READ_ONLY, SMALL_ONLY, CLAIM. Errors: those of
 * both phases. */
int vmmfs_vmm_map_pages(struct vmmfs_vmm *vmm, const uint64_t *pfns,
			uint64_t npages, const struct vmmfs_va_placement *pl,
			unsigned int flags, struct vmmfs_mapping **out);

/* A run of consecutive PFNs: first, first + 1, ..., first + count - 1. */
struct vmmfs_vmm_run {
	uint64_t first;
	uint64_t count;
};

/* map_pages for PFNs given as runs, runs[0..nruns) in VA order (runs that
 * continue one another are joined): no array of one PFN per page is
 * needed, so a mapping of a few long runs costs what its runs do, whatever
 * its size. The pages mapped are the sum of the counts. Uses
 * runs[0].first as the placement's pa_hint when the caller gave none.
 * flags: READ_ONLY, SMALL_ONLY, CLAIM. Errors: those of map_pages, and
 * -EINVAL for nruns 0 or a run of 0 pages, -ERANGE for a sum that
 * overflows. */
int vmmfs_vmm_map_runs(struct vmmfs_vmm *vmm, const struct vmmfs_vmm_run *runs,
		       uint64_t nruns, const struct vmmfs_va_placement *pl, unsigned int flags,
		       struct vmmfs_mapping **out);

/* Allocates bytes (rounded up to pages) of fresh VRAM, zeroes it and maps
 * it; the pages are released at unmap. Errors: those of map_pages, and
 * -ENOMEM when VRAM is short. */
int vmmfs_vmm_map_alloc(struct vmmfs_vmm *vmm, uint64_t bytes,
			const struct vmmfs_va_placement *pl, unsigned int flags,
			struct vmmfs_mapping **out);

/* Writes invalid entries over the mapping, unhooks and frees emptied
 * tables, one TLB invalidate, releases VA and page references, frees the
 * mapping. Returns 0, or -ENODEV/-ETIMEDOUT (the mapping is gone all the
 * same; its VA stays quarantined). */
int vmmfs_vmm_unmap(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m);

struct vmmfs_mapping_info {
	uint64_t va, size, npages;
	bool read_only;
	bool allocated;           /* made by map_alloc */
	uint64_t nruns;           /* runs of consecutive PFNs */
	uint64_t pages_4k, pages_64k, pages_2m, pages_512m; /* PTEs by size */
};
void vmmfs_mapping_get_info(const struct vmmfs_mapping *m, struct vmmfs_mapping_info *info);

/* Calls fn for each run of consecutive PFNs in VA order; stops at and
 * returns the first non-zero value fn returns. */
int vmmfs_mapping_for_each_run(const struct vmmfs_mapping *m,
			       int (*fn)(void *ctx, uint64_t first_pfn, uint64_t count),
			       void *ctx);

enum vmmfs_lookup_state {
	VMMFS_LOOKUP_MAPPED = 0,  /* a valid PTE */
	VMMFS_LOOKUP_UNMAPPED,    /* the leaf table exists, its entry is invalid */
	VMMFS_LOOKUP_NO_TABLE,    /* a directory entry on the way is empty */
	VMMFS_LOOKUP_SPARSE,      /* a sparse entry */
};

struct vmmfs_lookup {
	enum vmmfs_lookup_state state;
	uint64_t pa;            /* MAPPED: physical address of va */
	uint64_t page_size;     /* MAPPED/SPARSE: 4K, 64K, 2M or 512M */
	bool read_only;
	int depth;              /* level where the walk ended, 0 = root */
	const char *level;      /* its name: "PD3".."PD0", "PT", "LPT" (v3: "PD4"...) */
	uint32_t index;         /* entry index in that table */
	uint64_t entry_addr;    /* VRAM address of that entry */
	uint64_t entry;         /* its raw value (low word for a dual PDE) */
};

/* Walks the page tables in VRAM (vmmfs's walker, not the GPU's MMU).
 * Returns 0, -ERANGE (va outside the address space), -ENODEV. */
int vmmfs_vmm_lookup(struct vmmfs_vmm *vmm, uint64_t va, struct vmmfs_lookup *out);

/* Copies through the page tables: like pread/pwrite at offset = VA.
 * Returns bytes copied (stops at the first page that fails, if some bytes
 * were already copied), or -EFAULT (va not mapped), -EACCES (write to a
 * read-only page), -ERANGE (outside the address space), -ENODEV. */
long vmmfs_vmm_mem_read(struct vmmfs_vmm *vmm, uint64_t va, void *buf, size_t len);
long vmmfs_vmm_mem_write(struct vmmfs_vmm *vmm, uint64_t va, const void *buf, size_t len);

enum vmmfs_pt_kind {
	VMMFS_PT_TABLE = 0, /* a directory entry pointing at a table */
	VMMFS_PT_PAGE,      /* a valid leaf: run of consecutive pages */
	VMMFS_PT_SPARSE,    /* sparse leaf or directory entry */
};

struct vmmfs_pt_entry {
	int depth;              /* 0 = root; children follow their parent */
	const char *level;      /* "PD3", ..., "PD0", "PT", "LPT" */
	const char *half;       /* dual PDE: "big" or "small", else NULL */
	uint32_t first, last;   /* entry index range, inclusive */
	uint64_t va_first, va_last; /* VA range covered, inclusive */
	enum vmmfs_pt_kind kind;
	uint64_t addr;          /* TABLE: next table's PA; PAGE: PA of the first page */
	uint64_t page_size;     /* PAGE/SPARSE */
	const char *aperture;   /* "vid", "sys", "peer", "sysnc" */
	bool read_only;
};

/* Walks the whole tree in VRAM, depth first, calling fn for every present
 * entry; consecutive leaves that map consecutive pages with the same access
 * are one call. Stops at and returns fn's first non-zero value. */
int vmmfs_vmm_dump(struct vmmfs_vmm *vmm,
		   int (*fn)(void *ctx, const struct vmmfs_pt_entry *e), void *ctx);

struct vmmfs_vmm_stats {
	uint64_t maps, unmaps, tlb_flushes;
	uint64_t pt_pages;        /* page-table pages, root included */
	uint64_t mapped_pages;    /* 4 KiB pages currently mapped */
	uint64_t mappings;        /* live mappings */
	uint64_t pending;         /* prepared ops not yet executed or aborted */
	uint64_t va_size, va_free;/* bytes */
	uint64_t quarantined_pages; /* VA pages withheld after hardware errors */
};
void vmmfs_vmm_get_stats(struct vmmfs_vmm *vmm, struct vmmfs_vmm_stats *st);

#endif
