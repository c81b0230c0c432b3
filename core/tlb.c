/* SPDX-License-Identifier: MIT */
/*
 * TLB invalidate for one address space (nvidia-mmu.md §4.1).
 *
 * PDB_LO carries PDB bits 39:12 in ADDR 31:4 with APERTURE (bit 1) = VID;
 * UPPER_PDB carries bits 59:40. INVALIDATE gets TRIGGER | ALL_VA and,
 * when access is removed, ACK = GLOBALLY so accesses in flight drain before
 * the memory is reused. CACHE_LEVEL stays 0 (ALL): one invalidate covers
 * directory caches at every level, which is what an op that frees tables
 * needs. HUBTLB_ONLY is not set: these address spaces are not BAR ones.
 *
 * Polling: the first polls spin (a BAR0 read is itself a PCIe round trip
 * of about a microsecond); after that we sleep 1 us between polls, up to
 * the timeout.
 */
#include <time.h>
#include "tlb.h"
#include "internal.h"

#define PDB_LO_ADDR      GENMASK(31, 4)
#define PDB_LO_APERTURE  GENMASK(1, 1)
#define UPPER_PDB_ADDR   GENMASK(19, 0)
#define SPIN_POLLS 256

void tlb_init(struct vmmfs_gpu *gpu)
{
	pthread_mutex_init(&gpu->tlb.lock, NULL);
	gpu->tlb.timeout_us = 2000000;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int tlb_invalidate(struct vmmfs_gpu *gpu, uint64_t pdb, bool downgrade)
{
	uint32_t ctrl = TLB_INVALIDATE_TRIGGER | TLB_INVALIDATE_ALL_VA;
	uint64_t deadline;
	unsigned int polls = 0;
	int r = 0;

	if (downgrade)
		ctrl |= TLB_INVALIDATE_ACK_GLOBALLY;
	pthread_mutex_lock(&gpu->tlb.lock);
	if (atomic_load(&gpu->gone)) {
		r = -ENODEV;
		goto out_unlock;
	}
	gpu_wr32(gpu, NV_VF_PRIV_MMU_INVALIDATE_PDB,
		 (uint32_t)(FIELD_PREP(PDB_LO_ADDR, pdb >> 12) | FIELD_PREP(PDB_LO_APERTURE, 0)));
	gpu_wr32(gpu, NV_VF_PRIV_MMU_INVALIDATE_UPPER_PDB, (uint32_t)FIELD_PREP(UPPER_PDB_ADDR, pdb >> 40));
	gpu_wr32(gpu, NV_VF_PRIV_MMU_INVALIDATE, ctrl);
	deadline = now_us() + gpu->tlb.timeout_us;
	for (;;) {
		uint32_t v = gpu_rd32(gpu, NV_VF_PRIV_MMU_INVALIDATE);

		if (v == 0xffffffffu && gpu_check_gone(gpu)) {
			r = -ENODEV;
			break;
		}
		if (!(v & TLB_INVALIDATE_TRIGGER))
			break;
		if (++polls > SPIN_POLLS) {
			struct timespec ts = { 0, 1000 };

			if (now_us() > deadline) {
				log_err("TLB invalidate for address space 0x%llx did not complete within %u ms: "
					"the GPU's MMU is not responding", (unsigned long long)pdb,
					gpu->tlb.timeout_us / 1000);
				r = -ETIMEDOUT;
				break;
			}
			nanosleep(&ts, NULL);
		}
	}
	if (!r)
		atomic_fetch_add(&gpu->tlb_flushes, 1);
out_unlock:
	pthread_mutex_unlock(&gpu->tlb.lock);
	return r;
}
