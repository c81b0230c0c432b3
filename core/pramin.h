/* SPDX-License-Identifier: MIT */
/*
 * VRAM access through the BAR0 PRAMIN window (nvidia-mmu.md §3).
 *
 * The window shows 1 MiB of VRAM at BAR0 0x700000. Its base register is
 * written only when an access falls outside the current window (new base:
 * the address aligned down to 64 KiB); it is never restored afterwards.
 *
 * Locking: gpu->pramin.lock guards the window. The *_locked functions
 * expect the caller to hold it (pramin_lock/pramin_unlock), so a batch of
 * accesses takes it once. No allocation ever happens under this lock.
 *
 * Errors: -ERANGE (outside [0, vram_size) or overflowing), -EINVAL
 * (misaligned for its width), -ENODEV (device gone).
 */
#ifndef VMMFS_PRAMIN_H
#define VMMFS_PRAMIN_H

#include "gpu.h"

void pramin_init(struct vmmfs_gpu *gpu);
void pramin_lock(struct vmmfs_gpu *gpu);
void pramin_unlock(struct vmmfs_gpu *gpu);

int pramin_rd32_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t *val);
int pramin_wr32_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t val);
int pramin_rd64_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *val);
int pramin_wr64_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t val);
/* n consecutive 64-bit words at pa (8-byte aligned); moves the window as
 * needed, one block call per window. */
int pramin_rd64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *vals, size_t n);
int pramin_wr64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, const uint64_t *vals, size_t n);
/* Writes n zero words (no heap, bounded stack). */
int pramin_zero64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, size_t n);

/* Same, taking the lock. */
int pramin_rd32(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t *val);
int pramin_wr32(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t val);
int pramin_rd64(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *val);
int pramin_wr64(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t val);

/* Byte-granular copies (any alignment), used by vram/raw and mem. */
int pramin_read(struct vmmfs_gpu *gpu, uint64_t pa, void *buf, size_t len);
int pramin_write(struct vmmfs_gpu *gpu, uint64_t pa, const void *buf, size_t len);

#endif
