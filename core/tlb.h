/* SPDX-License-Identifier: MIT */
/*
 * TLB invalidation for one address space (nvidia-mmu.md §4): the only flush
 * entry point. Sequence: PDB_LO = pdb >> 8 (ADDR 31:4, aperture VID),
 * UPPER_PDB = pdb >> 40, then INVALIDATE = TRIGGER | ALL_VA | ack, then poll
 * until TRIGGER reads 0, sleeping 1 us between polls, for at most
 * tlb.timeout_us (2 s by default).
 *
 * downgrade: the invalidate removes or narrows access (unmap): ACK_GLOBALLY
 * is requested so accesses in flight drain before memory is reused.
 *
 * Locking: gpu->tlb.lock, never held with the PRAMIN lock or across an
 * allocation. Returns 0, -ETIMEDOUT, -ENODEV (device gone).
 */
#ifndef VMMFS_TLB_H
#define VMMFS_TLB_H

#include "gpu.h"

#define TLB_INVALIDATE_TRIGGER  BIT(31)
#define TLB_INVALIDATE_ALL_VA   BIT(0)
#define TLB_INVALIDATE_ALL_PDB  BIT(1)
#define TLB_INVALIDATE_ACK_GLOBALLY (1u << 7)

void tlb_init(struct vmmfs_gpu *gpu);
int tlb_invalidate(struct vmmfs_gpu *gpu, uint64_t pdb, bool downgrade);

#endif
