/* SPDX-License-Identifier: MIT */
/*
 * A backend is BAR0 access plus identity: one const ops table per kind
 * (simulated GPU, real GPU through libpci). Everything above this table is
 * the same code for both.
 *
 * Accesses are little-endian and naturally aligned; offsets are BAR0 byte
 * offsets below 16 MiB. Reads of an absent device return all ones, as on
 * PCIe. The block variants do n 64-bit accesses at off, off+8, ... and count
 * as n accesses; they exist so that a run of PTEs costs one call.
 */
#ifndef VMMFS_BACKEND_H
#define VMMFS_BACKEND_H

#include <stdint.h>
#include <stddef.h>

#define VMMFS_BAR0_SIZE (16u << 20)

struct vmmfs_backend_ops {
	const char *name;  /* "sim", "pci" */
	uint32_t (*rd32)(void *priv, uint32_t off);
	void (*wr32)(void *priv, uint32_t off, uint32_t val);
	uint64_t (*rd64)(void *priv, uint32_t off);
	void (*wr64)(void *priv, uint32_t off, uint64_t val);
	void (*rd64_block)(void *priv, uint32_t off, uint64_t *vals, size_t n);
	void (*wr64_block)(void *priv, uint32_t off, const uint64_t *vals, size_t n);
	/* "sim" or "pci 0000:65:00.0" */
	void (*describe)(void *priv, char *buf, size_t len);
	void (*close)(void *priv);
};

struct vmmfs_backend {
	const struct vmmfs_backend_ops *ops;
	void *priv;
};

#endif
