/* SPDX-License-Identifier: MIT */
/*
 * Private address-space state, shared by vmm.c (objects, lookup, stats,
 * teardown), vmm_prepare.c (phase 1: may fail) and vmm_execute.c (phase 2
 * and unmap: may not allocate).
 *
 * Locks (vmm.h "Locking"):
 *   vmm->lock     the VMM mutex: shadow tree, lists, LPT pool, stats.
 *                 Never held across an allocation.
 *   vmm->va_lock  the VA buddy (which has no lock of its own). Taken alone
 *                 by prepare, after vmm->lock is dropped by unmap; never
 *                 by execute.
 *   Order: vmm->lock -> PRAMIN -> (released) -> TLB.
 *   Page references (vram.h batches) take only VRAM chunk locks, which are
 *   leaves (any lock may be held when taking one); execute takes its
 *   references before vmm->lock, unmap drops them after releasing it.
 *
 * Memory: a mapping stores its PFNs as a stream of runs (below): 4 bytes
 * for a run of one page, 8 for a longer run, so a contiguous mapping costs
 * a few dozen bytes whatever its size and a scattered one at most 4 bytes
 * per page. A prepared op lives inside the mapping it will become (one
 * allocation, with room for the worst case when the PFNs are not known
 * yet), so execute never allocates or frees.
 */
#ifndef VMMFS_VMM_PRIV_H
#define VMMFS_VMM_PRIV_H

#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <vmmfs/vmmfs.h>
#include <vmmfs/buddy.h>
#include "internal.h"
#include "gpu.h"
#include "mmu.h"
#include "walk.h"

struct vmmfs_vram;
struct vram_batch;

/*
 * Runs of consecutive PFNs, stored as 32-bit words. PFNs are below 2^31 on
 * every format (max_vid_pfn <= 1 << 28; vmmfs_vmm_create checks it):
 *   [pfn]                               a run of one page (bit 31 clear)
 *   [RUN_LONG | pfn] [RUN_LONG | count] a run of 2..VMM_RUN_MAX pages
 * Both words of a long run have bit 31 set, so the stream can be walked
 * both ways: the word just before a run tells how long the previous run's
 * record is. Longer runs are stored in pieces.
 */
#define VMM_RUN_LONG 0x80000000u
#define VMM_RUN_MAX 0x7fffffffu

static inline uint64_t vmm_run_pfn(const uint32_t *w, uint64_t at)
{
	return w[at] & ~VMM_RUN_LONG;
}
static inline uint64_t vmm_run_count(const uint32_t *w, uint64_t at)
{
	return (w[at] & VMM_RUN_LONG) ? (w[at + 1] & VMM_RUN_MAX) : 1;
}
static inline uint64_t vmm_run_next(const uint32_t *w, uint64_t at)
{
	return at + 1 + (w[at] >> 31);
}
static inline uint64_t vmm_run_prev(const uint32_t *w, uint64_t at)
{
	return at - 1 - (w[at - 1] >> 31);
}

struct vmmfs_map_op {
	struct vmmfs_map_op *prev, *next;  /* vmm->ops */
	struct vmmfs_vmm *vmm;
	uint64_t va, npages;
	/* Planned ops (made by map_pages/map_alloc) were prepared knowing
	 * their PFNs and flags: prepare skipped the tables that big pages make
	 * unnecessary, and execute must get the same PFNs and flags. */
	bool planned;
	unsigned int plan_flags;
	bool prepared;                     /* not yet executed or aborted */
};

enum vmm_map_state {
	VMM_MAP_LIVE = 0,     /* owned by the caller */
	VMM_MAP_QUAR_MAPPED,  /* hardware error in execute before the entries were
			       * written or proven: kept mapped until destroy */
	VMM_MAP_QUAR_HELD,    /* entries cleared but not proven flushed: VA and page
			       * references withheld until destroy */
};

struct vmmfs_mapping {
	struct vmmfs_mapping *prev, *next; /* vmm->maps or vmm->quar_maps */
	struct vmmfs_vmm *vmm;
	uint64_t va, npages;
	struct vmmfs_buddy_list va_blocks;
	enum vmm_map_state state;
	bool read_only, allocated;
	uint64_t pages_4k, pages_64k, pages_2m, pages_512m;
	uint64_t *free_buf;                /* allocated: room to return the longest run */
	struct vmmfs_map_op op;            /* while prepared */
	uint64_t nruns;                    /* runs of consecutive PFNs */
	uint64_t max_run;                  /* pages in the longest */
	uint64_t nwords, cap_words;        /* words of runs[] used, and its room */
	uint32_t runs[];
};

static inline struct vmmfs_mapping *vmm_op_mapping(struct vmmfs_map_op *op)
{
	return container_of(op, struct vmmfs_mapping, op);
}

struct vmmfs_vmm {
	struct vmmfs_gpu *gpu;
	const struct mmu_fmt *fmt;
	bool pd1_512m;
	uint64_t va_size;
	pthread_mutex_t lock;
	pthread_mutex_t va_lock;
	struct vmmfs_buddy *va;            /* under va_lock */
	struct vmm_pt *root;
	struct lpt_page *lpt_pages;        /* LPT pool */
	struct vmm_pt *deferred;           /* detached, safe to free at the next prepare/unmap */
	struct vmm_pt *quar_pts;           /* detached, not proven flushed: kept until destroy */
	struct vmmfs_mapping *maps;        /* live mappings */
	struct vmmfs_mapping *quar_maps;   /* quarantined mappings */
	struct vmmfs_map_op *ops;          /* prepared ops */
	uint64_t nmaps, nops, mapped_pages, quarantined_pages;
	uint64_t pt_pages;                 /* VRAM pages held for tables, root and LPT pool included */
	uint64_t maps_done, unmaps_done, flushes;
	uint64_t scratch[512];             /* entry batch, under lock */
};

/* ---- shared helpers (vmm.c) ------------------------------------------------ */

/* Pushes a detached node to a list. */
static inline void vmm_pt_push(struct vmm_pt **list, struct vmm_pt *pt)
{
	pt->next = *list;
	*list = pt;
}

/* Releases LPT pool slots of detached LPT nodes in list and unlinks pool
 * pages that became empty (to *empty). Under vmm->lock. */
void vmm_release_slots_locked(struct vmmfs_vmm *vmm, struct vmm_pt *list,
			      struct lpt_page **empty);
/* Frees detached nodes and empty pool pages: VRAM and heap. Without
 * vmm->lock. */
void vmm_free_detached(struct vmmfs_vmm *vmm, struct vmm_pt *list, struct lpt_page *empty);
/* Takes the deferred list (under vmm->lock) for freeing after unlock. */
void vmm_steal_deferred_locked(struct vmmfs_vmm *vmm, struct vmm_pt **list,
			       struct lpt_page **empty);

void vmm_list_add_map(struct vmmfs_mapping **head, struct vmmfs_mapping *m);
void vmm_list_del_map(struct vmmfs_mapping **head, struct vmmfs_mapping *m);
void vmm_list_add_op(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op);
void vmm_list_del_op(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op);

/* ---- prepare (vmm_prepare.c) ------------------------------------------------ */

/* A mapping object for npages pages with room for cap_words run words,
 * not prepared yet (vmmfs_free it if unused). NULL when out of memory. */
struct vmmfs_mapping *vmm_mapping_new(struct vmmfs_vmm *vmm, uint64_t npages, uint64_t cap_words);
/* Phase 1 for prepare_map and for map_pages, on a mapping from
 * vmm_mapping_new. planned: m's runs are built and flags are what execute
 * will get; else the PFNs are unknown and prepare plans for any. On
 * failure m is as it was (the caller frees it). */
int vmm_prepare(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m,
		const struct vmmfs_va_placement *pl, bool planned, unsigned int flags);
/* Returns VA blocks to the VA buddy (takes va_lock). */
void vmm_va_release(struct vmmfs_vmm *vmm, struct vmmfs_buddy_list *blocks);

/* ---- page-size decisions (vmm_execute.c), shared by prepare and execute ------
 *
 * Which page size each part of an op gets depends on its PFNs, the flags
 * and the shadow, and prepare (which knows the PFNs only for planned ops)
 * must reserve exactly what execute then consumes. Both sides call the
 * same functions:
 *   plan_use_512m  a whole PD1 slot, one contiguous 512 MiB-aligned run,
 *                  the chip has 512 MiB PTEs, no PD0 installed under it;
 *   plan_use_2m    a whole PD0 slot, one contiguous 2 MiB-aligned run, no
 *                  small or big table installed in the slot;
 *   plan_chunks64  the 64 KiB chunks of a slot that are whole, contiguous
 *                  and 64 KiB-aligned (used when the slot has an LPT);
 *   plan_lpt_resv  what an op reserves in a slot's LPT: planned ops their
 *                  64 KiB chunks (none in a 2 MiB slot), other ops every
 *                  whole chunk (their PFNs are not known at prepare).
 * A PT reserves every page of the op in its range.
 */
struct vmm_plan {
	const struct mmu_fmt *f;
	bool pd1_512m;
	uint64_t va, end;               /* the op's range */
	bool planned;                   /* prepared knowing the PFNs */
	bool big;                       /* PFNs known, big pages allowed, a run of 16 pages */
	const uint32_t *runs;           /* run stream */
	uint64_t nwords;
	uint64_t r, rstart;             /* cursor: word of a run, its first page (from va) */
	/* the last PD0 slot looked at: [ca, cb), its 64 KiB chunks that are
	 * contiguous and aligned, whether it is one 2 MiB run */
	uint64_t ca, cb;
	uint32_t c64;
	bool c2m;
};

/* runs: the mapping whose runs say the PFNs, or NULL when they are not
 * known. */
void plan_init(struct vmm_plan *p, const struct vmmfs_vmm *vmm, uint64_t va, uint64_t npages,
	       bool planned, const struct vmmfs_mapping *runs, unsigned int flags);
uint64_t plan_pfn(struct vmm_plan *p, uint64_t va);
/* level: of the directory holding the slot; child: its table there (or NULL). */
bool plan_use_512m(struct vmm_plan *p, unsigned int level, const struct vmm_pt *child,
		   uint64_t sa, uint64_t sb);
/* pt, lpt: the slot's small and big tables (or NULL). */
bool plan_use_2m(struct vmm_plan *p, const struct vmm_pt *pt, const struct vmm_pt *lpt,
		 uint64_t sa, uint64_t sb);
uint32_t plan_chunks64(struct vmm_plan *p, uint64_t sa, uint64_t sb);
uint32_t plan_full_chunks(const struct vmm_plan *p, uint64_t sa, uint64_t sb);
uint32_t plan_lpt_resv(struct vmm_plan *p, uint64_t sa, uint64_t sb, bool is2m);

/* ---- execute and unmap (vmm_execute.c): no allocation ----------------------- */

/* The first PFN that a mapping cannot use: the end of VRAM or of the PTE
 * address field, whichever comes first. */
uint64_t vmm_pfn_limit(const struct vmmfs_vmm *vmm);
/* One pass over pfns[0..n): every PFN below limit (else -ERANGE), and the
 * size of their run stream (*words) and number of runs (*nruns). */
int vmm_runs_measure(const uint64_t *pfns, uint64_t n, uint64_t limit, uint64_t *words,
		     uint64_t *nruns);
/* One pass over pfns[0..n): checks every PFN below limit, stores the runs
 * into m->runs (room: m->cap_words) and, with v, takes one mapping
 * reference per run (vram.h batches: one atomic per 2 MiB of a contiguous
 * run). Sets m->nwords and m->nruns. Returns 0, -ERANGE, -EACCES,
 * -EOVERFLOW (no reference kept), -EINVAL (no room: a caller bug).
 * Allocation-free and lock-free: execute calls it. */
int vmm_runs_build(struct vmmfs_vram *v, const uint64_t *pfns, uint64_t n, uint64_t limit,
		   struct vmmfs_mapping *m);
/* Drops the mapping references of m's runs. */
void vmm_runs_unref(struct vmmfs_vram *v, const struct vmmfs_mapping *m);
/*
 * The steps of vmm_runs_build, for callers that size m as they go: adds
 * the runs of pfns[*at..n) after m's stored words, with a mapping reference
 * on each in batch b (when non-NULL), checking every PFN against limit.
 * Stops at the first run that does not fit in m->cap_words: -ENOSPC with
 * *at on that run. Else 0, or the first error (-ERANGE, -EACCES,
 * -EOVERFLOW) with the runs stored before it still stored and referenced;
 * vmm_runs_drop drops those references (in b) and forgets the runs.
 */
int vmm_runs_add(struct vram_batch *b, const uint64_t *pfns, uint64_t *at, uint64_t n,
		 uint64_t limit, struct vmmfs_mapping *m);
void vmm_runs_drop(struct vram_batch *b, struct vmmfs_mapping *m);
/*
 * The same from runs (vmmfs_vmm_map_runs), joining runs that continue one
 * another. measure: checks every run (count 0: -EINVAL; beyond limit:
 * -ERANGE; pages overflowing: -ERANGE) and gives the words, pages and
 * longest joined run. add: stores them after m's words (room: as measured)
 * with a reference on each in b; on an error (-EACCES, -EOVERFLOW) the
 * runs stored before it stay stored and referenced (vmm_runs_drop).
 */
int vmm_runs_measure_runs(const struct vmmfs_vmm_run *runs, uint64_t nruns, uint64_t limit,
			  uint64_t *words, uint64_t *npages, uint64_t *longest);
int vmm_runs_add_runs(struct vram_batch *b, const struct vmmfs_vmm_run *runs, uint64_t nruns,
		      struct vmmfs_mapping *m);

/* Phase 2. refs_held: the caller already took the page references and
 * built the runs (map_pages does both before prepare, so prepare's table
 * pages cannot be among the pages being mapped); pfns may then be NULL
 * (map_runs): the PTEs are made from the runs. */
int vmm_execute(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op, const uint64_t *pfns,
		unsigned int flags, bool refs_held, struct vmmfs_mapping **out);

/* Writes invalid entries over m, updates the shadow, detaches emptied
 * tables to *freed (parent entries cleared in hardware). vmm->lock held,
 * PRAMIN not. Returns 0 or the first PRAMIN error (the shadow is updated
 * all the same). */
int vmm_unmap_locked(struct vmmfs_vmm *vmm, struct vmmfs_mapping *m, struct vmm_pt **freed);

/* Releases the reservations of a prepared op (the abort walk); tables
 * that become empty are detached to *freed, and those that were installed
 * are unhooked in hardware (*need_flush set). vmm->lock held. */
int vmm_release_op_locked(struct vmmfs_vmm *vmm, struct vmmfs_map_op *op,
			  struct vmm_pt **freed, bool *need_flush);

/* ---- checks (vmm.c) ------------------------------------------------------------ */

/* Debug/test: verifies the shadow tree against the tables read back from
 * VRAM: every table's use count equals its valid entries + child tables +
 * reservations; no empty table is left (root excepted); every PDE points at
 * a table the shadow knows, every valid PTE maps the PFN its mapping says
 * with the right access; VA and LPT-pool accounting. Returns 0 or -EUCLEAN
 * with the first problem in err (or -ENODEV when VRAM cannot be read). */
int vmmfs_vmm_check(struct vmmfs_vmm *vmm, char *err, size_t len);

#endif
