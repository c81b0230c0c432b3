/* SPDX-License-Identifier: MIT */
/*
 * Real GPU backend: libpci discovery + BAR0 through sysfs resource0 mmap.
 * Built only with libpci (HAVE_PCI).
 */
#ifndef VMMFS_PCI_H
#define VMMFS_PCI_H

#include <stdint.h>
#include <stddef.h>
#include "backend.h"

/* Opens device bdf ("0000:65:00.0" or "65:00.0") for driving:
 * refuses (with a one-line reason and fix in err) a device that a kernel
 * driver owns (-EBUSY), whose memory decoding is off (-EIO), whose BAR0
 * reads all ones (-ENODEV), or whose resource0 cannot be mapped
 * (-EACCES/-EPERM: lockdown, iomem=relaxed). The chip check (unknown or
 * pre-Turing: -ENODEV) is done by the GPU layer above.
 * Also: -EINVAL (malformed BDF or pci_access, or a method without BAR0
 * access such as dump), -ENODEV (no such device, not an NVIDIA GPU
 * function), -EIO (libpci failed: err has its message), -ENOMEM, -EMFILE
 * (16 BAR0 mappings already open). err may be NULL.
 * Returns 0 and fills be (ops + priv). */
int vmmfs_pci_open(const char *bdf, const char *pci_access, struct vmmfs_backend *be,
		   char *err, size_t errlen);

#endif
