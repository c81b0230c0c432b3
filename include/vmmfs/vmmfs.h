/* SPDX-License-Identifier: MIT */
/*
 * vmmfs — the virtual-memory manager of an NVIDIA GPU, in user space.
 *
 * Umbrella header. Every public function of libvmmfs returns 0 (or a
 * non-negative count) on success and a negative errno value on failure;
 * each function's comment lists the exact errno values it can return.
 *
 * Handles are opaque: struct vmmfs_gpu (one GPU: simulated or real),
 * struct vmmfs_vmm (one GPU virtual address space), struct vmmfs_map_op
 * (a prepared, not yet executed map) and struct vmmfs_mapping (a live map).
 */
#ifndef VMMFS_VMMFS_H
#define VMMFS_VMMFS_H

#define VMMFS_VERSION_MAJOR 0
#define VMMFS_VERSION_MINOR 1
#define VMMFS_VERSION_PATCH 0
#define VMMFS_VERSION_STRING "0.1.0"

#define VMMFS_PAGE_SHIFT 12
#define VMMFS_PAGE_SIZE (1ull << VMMFS_PAGE_SHIFT)

struct vmmfs_gpu;
struct vmmfs_vmm;
struct vmmfs_map_op;
struct vmmfs_mapping;

#include <vmmfs/log.h>
#include <vmmfs/gpu.h>
#include <vmmfs/vmm.h>

#endif
