/* SPDX-License-Identifier: MIT */
#include "mem.h"
#include <stdlib.h>
#include <stdatomic.h>

static atomic_uint_fast64_t fault_counter;
static atomic_int_fast64_t fault_target = -1; /* counter value that fails */
static atomic_bool fault_all;
static atomic_int_fast64_t mem_live;

bool vmmfs_fault_point(void)
{
	uint64_t n = atomic_fetch_add(&fault_counter, 1);
	if (atomic_load(&fault_all))
		return true;
	return atomic_load(&fault_target) == (int64_t)n;
}

void vmmfs_fault_reset(void)
{
	atomic_store(&fault_all, false);
	atomic_store(&fault_target, -1);
	atomic_store(&fault_counter, 0);
}

uint64_t vmmfs_fault_count(void)
{
	return atomic_load(&fault_counter);
}

void vmmfs_fault_fail_nth(uint64_t n)
{
	atomic_store(&fault_target, (int64_t)(atomic_load(&fault_counter) + n));
}

void vmmfs_fault_fail_all(bool on)
{
	atomic_store(&fault_all, on);
}

int64_t vmmfs_mem_live(void)
{
	return atomic_load(&mem_live);
}

void *vmmfs_malloc(size_t size)
{
	void *p;

	if (vmmfs_fault_point())
		return NULL;
	p = malloc(size ? size : 1);
	if (p)
		atomic_fetch_add(&mem_live, 1);
	return p;
}

void *vmmfs_calloc(size_t n, size_t size)
{
	void *p;

	if (vmmfs_fault_point())
		return NULL;
	p = calloc(n ? n : 1, size ? size : 1);
	if (p)
		atomic_fetch_add(&mem_live, 1);
	return p;
}

void *vmmfs_realloc(void *old, size_t size)
{
	void *p;

	if (!old)
		return vmmfs_malloc(size);
	if (vmmfs_fault_point())
		return NULL;
	p = realloc(old, size ? size : 1);
	return p;
}

void vmmfs_free(void *p)
{
	if (!p)
		return;
	atomic_fetch_sub(&mem_live, 1);
	free(p);
}
