/* SPDX-License-Identifier: MIT */
/*
 * Every allocation in libvmmfs — heap objects, VRAM pages, VA ranges — goes
 * through here, so tests can count them and fail the i-th one.
 *
 * vmmfs_fault_point() is called once per allocation attempt of any kind;
 * it returns true when that attempt must fail. Heap wrappers call it
 * themselves; the VRAM and VA allocators call it at their entry.
 */
#ifndef VMMFS_MEM_H
#define VMMFS_MEM_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

void *vmmfs_malloc(size_t size);
void *vmmfs_calloc(size_t n, size_t size);
void *vmmfs_realloc(void *p, size_t size);
void vmmfs_free(void *p);

bool vmmfs_fault_point(void);

/* Test control (process-wide, thread-safe):
 *  vmmfs_fault_reset()       stop failing, zero the counter
 *  vmmfs_fault_count()       attempts since the last reset
 *  vmmfs_fault_fail_nth(n)   the n-th attempt from now (0-based) fails
 *  vmmfs_fault_fail_all(on)  every attempt fails while on */
void vmmfs_fault_reset(void);
uint64_t vmmfs_fault_count(void);
void vmmfs_fault_fail_nth(uint64_t n);
void vmmfs_fault_fail_all(bool on);
/* Live heap objects handed out by vmmfs_malloc/calloc and not yet freed. */
int64_t vmmfs_mem_live(void);

#endif
