/* SPDX-License-Identifier: MIT */
/*
 * VRAM through the BAR0 PRAMIN window (nvidia-mmu.md §3).
 *
 * The window register is written only when an access falls outside the
 * current 1 MiB window; the new base is the address aligned down to 64 KiB.
 * Batches move the window once per 1 MiB they cross.
 */
#include <string.h>
#include "pramin.h"
#include "internal.h"

#define WINDOW_SHIFT 16
#define PBUS_WINDOW_BASE   GENMASK(23, 0)
#define PBUS_WINDOW_TARGET GENMASK(25, 24)  /* 0 = VID_MEM */

static uint32_t window_reg(const struct vmmfs_gpu *gpu)
{
	return gpu->chip->window == VMMFS_WINDOW_PBUS ? NV_PBUS_BAR0_WINDOW : NV_XAL_EP_BAR0_WINDOW;
}

static uint64_t window_base_mask(const struct vmmfs_gpu *gpu)
{
	return GENMASK(gpu->chip->window_base_bits - 1, 0);
}

void pramin_init(struct vmmfs_gpu *gpu)
{
	uint32_t reg;

	pthread_mutex_init(&gpu->pramin.lock, NULL);
	reg = gpu_rd32(gpu, window_reg(gpu));
	gpu->pramin.base_known = reg != 0xffffffffu;
	gpu->pramin.base = (reg & window_base_mask(gpu)) << WINDOW_SHIFT;
	if (gpu->chip->window == VMMFS_WINDOW_PBUS && FIELD_GET(PBUS_WINDOW_TARGET, reg) != 0)
		gpu->pramin.base_known = false; /* pointing at system memory: move it on first use */
}

void pramin_lock(struct vmmfs_gpu *gpu)
{
	pthread_mutex_lock(&gpu->pramin.lock);
}

void pramin_unlock(struct vmmfs_gpu *gpu)
{
	pthread_mutex_unlock(&gpu->pramin.lock);
}

static int check_range(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t bytes)
{
	if (atomic_load(&gpu->gone))
		return -ENODEV;
	if (pa + bytes < pa || pa + bytes > gpu->info.vram_size)
		return -ERANGE;
	return 0;
}

/* Makes the window cover [pa, pa + bytes) (bytes <= 1 MiB). */
static int window_cover(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t bytes)
{
	struct vmmfs_pramin *w = &gpu->pramin;
	uint64_t base;

	if (w->base_known && pa >= w->base && pa + bytes <= w->base + NV_PRAMIN_SIZE)
		return 0;
	base = ALIGN_DOWN(pa, 1ull << WINDOW_SHIFT);
	if ((base >> WINDOW_SHIFT) & ~window_base_mask(gpu))
		return -ERANGE;
	/* Built from zero: TARGET = VID_MEM on chips that have the field. */
	gpu_wr32(gpu, window_reg(gpu), (uint32_t)(base >> WINDOW_SHIFT));
	atomic_fetch_add(&gpu->window_moves, 1);
	log_spam("pramin: window -> 0x%llx", (unsigned long long)base);
	w->base = base;
	w->base_known = true;
	return 0;
}

static uint32_t aperture_off(const struct vmmfs_gpu *gpu, uint64_t pa)
{
	return NV_PRAMIN_BASE + (uint32_t)(pa - gpu->pramin.base);
}

int pramin_rd32_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t *val)
{
	int r = check_range(gpu, pa, 4);

	if (r)
		return r;
	if (!IS_ALIGNED(pa, 4))
		return -EINVAL;
	r = window_cover(gpu, pa, 4);
	if (r)
		return r;
	*val = gpu_rd32(gpu, aperture_off(gpu, pa));
	if (*val == 0xffffffffu && gpu_check_gone(gpu))
		return -ENODEV;
	return 0;
}

int pramin_wr32_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t val)
{
	int r = check_range(gpu, pa, 4);

	if (r)
		return r;
	if (!IS_ALIGNED(pa, 4))
		return -EINVAL;
	r = window_cover(gpu, pa, 4);
	if (r)
		return r;
	gpu_wr32(gpu, aperture_off(gpu, pa), val);
	return 0;
}

int pramin_rd64_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *val)
{
	return pramin_rd64_n_locked(gpu, pa, val, 1);
}

int pramin_wr64_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t val)
{
	return pramin_wr64_n_locked(gpu, pa, &val, 1);
}

/* Words of the batch at pa that fit in the window once it covers pa. */
static size_t window_room(const struct vmmfs_gpu *gpu, uint64_t pa, size_t n)
{
	uint64_t room = (gpu->pramin.base + NV_PRAMIN_SIZE - pa) / 8;

	return room < n ? (size_t)room : n;
}

int pramin_rd64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *vals, size_t n)
{
	int r;

	if (n > (UINT64_MAX - pa) / 8)
		return -ERANGE;
	r = check_range(gpu, pa, (uint64_t)n * 8);
	if (r)
		return r;
	if (!IS_ALIGNED(pa, 8))
		return -EINVAL;
	while (n) {
		size_t k;
		bool ones = false;

		r = window_cover(gpu, pa, 8);
		if (r)
			return r;
		k = window_room(gpu, pa, n);
		gpu_rd64_block(gpu, aperture_off(gpu, pa), vals, k);
		for (size_t i = 0; i < k; i++)
			ones |= vals[i] == UINT64_MAX;
		if (ones && gpu_check_gone(gpu))
			return -ENODEV;
		pa += (uint64_t)k * 8;
		vals += k;
		n -= k;
	}
	return 0;
}

int pramin_wr64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, const uint64_t *vals, size_t n)
{
	int r;

	if (n > (UINT64_MAX - pa) / 8)
		return -ERANGE;
	r = check_range(gpu, pa, (uint64_t)n * 8);
	if (r)
		return r;
	if (!IS_ALIGNED(pa, 8))
		return -EINVAL;
	while (n) {
		size_t k;

		r = window_cover(gpu, pa, 8);
		if (r)
			return r;
		k = window_room(gpu, pa, n);
		gpu_wr64_block(gpu, aperture_off(gpu, pa), vals, k);
		pa += (uint64_t)k * 8;
		vals += k;
		n -= k;
	}
	return 0;
}

int pramin_zero64_n_locked(struct vmmfs_gpu *gpu, uint64_t pa, size_t n)
{
	static const uint64_t zeros[512];

	while (n) {
		size_t k = n < ARRAY_SIZE(zeros) ? n : ARRAY_SIZE(zeros);
		int r = pramin_wr64_n_locked(gpu, pa, zeros, k);

		if (r)
			return r;
		pa += (uint64_t)k * 8;
		n -= k;
	}
	return 0;
}

#define LOCKED_CALL(gpu, call) ({ int __r; pramin_lock(gpu); __r = (call); pramin_unlock(gpu); __r; })

int pramin_rd32(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t *val)
{
	return LOCKED_CALL(gpu, pramin_rd32_locked(gpu, pa, val));
}

int pramin_wr32(struct vmmfs_gpu *gpu, uint64_t pa, uint32_t val)
{
	return LOCKED_CALL(gpu, pramin_wr32_locked(gpu, pa, val));
}

int pramin_rd64(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t *val)
{
	return LOCKED_CALL(gpu, pramin_rd64_n_locked(gpu, pa, val, 1));
}

int pramin_wr64(struct vmmfs_gpu *gpu, uint64_t pa, uint64_t val)
{
	return LOCKED_CALL(gpu, pramin_wr64_n_locked(gpu, pa, &val, 1));
}

/*
 * Byte-granular copies: a partial word at either end is read-modify-written
 * as one 64-bit access; the aligned middle goes in batches.
 */
static int copy_locked(struct vmmfs_gpu *gpu, uint64_t pa, void *rbuf, const void *wbuf, size_t len)
{
	uint64_t words[256];
	int r = check_range(gpu, pa, len);

	if (r)
		return r;
	while (len) {
		uint64_t start = ALIGN_DOWN(pa, 8);
		size_t head = (size_t)(pa - start);
		size_t span = ALIGN_UP(head + len, 8);
		size_t nw = span / 8 < ARRAY_SIZE(words) ? span / 8 : ARRAY_SIZE(words);
		size_t bytes = MIN(nw * 8 - head, len);
		bool partial = head || (bytes % 8) != 0;

		if (start + nw * 8 > gpu->info.vram_size)
			return -ERANGE;
		if (rbuf || partial) {
			r = pramin_rd64_n_locked(gpu, start, words, nw);
			if (r)
				return r;
		}
		if (rbuf) {
			memcpy(rbuf, (char *)words + head, bytes);
			rbuf = (char *)rbuf + bytes;
		} else {
			memcpy((char *)words + head, wbuf, bytes);
			wbuf = (const char *)wbuf + bytes;
			r = pramin_wr64_n_locked(gpu, start, words, nw);
			if (r)
				return r;
		}
		pa += bytes;
		len -= bytes;
	}
	return 0;
}

int pramin_read(struct vmmfs_gpu *gpu, uint64_t pa, void *buf, size_t len)
{
	return LOCKED_CALL(gpu, copy_locked(gpu, pa, buf, NULL, len));
}

int pramin_write(struct vmmfs_gpu *gpu, uint64_t pa, const void *buf, size_t len)
{
	return LOCKED_CALL(gpu, copy_locked(gpu, pa, NULL, buf, len));
}
