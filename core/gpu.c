/* SPDX-License-Identifier: MIT */
/*
 * Opening a GPU: pick a backend, identify the chip from BOOT_0/BOOT_42,
 * read the VRAM size from the chip, set up PRAMIN, TLB and the VRAM owner.
 * Every register access goes through the counted gpu_rd and gpu_wr helpers below.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpu.h"
#include "internal.h"
#include "mem.h"
#include "pramin.h"
#include "tlb.h"
#include "vram.h"
#include "sim/sim.h"
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifdef HAVE_PCI
#include "pci.h"
#endif

uint32_t gpu_rd32(struct vmmfs_gpu *gpu, uint32_t off)
{
	atomic_fetch_add(&gpu->mmio_reads, 1);
	atomic_fetch_add(&gpu->mmio_read_bytes, 4);
	return gpu->be.ops->rd32(gpu->be.priv, off);
}

void gpu_wr32(struct vmmfs_gpu *gpu, uint32_t off, uint32_t val)
{
	atomic_fetch_add(&gpu->mmio_writes, 1);
	atomic_fetch_add(&gpu->mmio_write_bytes, 4);
	log_spam("wr32 0x%06x = 0x%08x", off, val);
	gpu->be.ops->wr32(gpu->be.priv, off, val);
}

uint64_t gpu_rd64(struct vmmfs_gpu *gpu, uint32_t off)
{
	atomic_fetch_add(&gpu->mmio_reads, 1);
	atomic_fetch_add(&gpu->mmio_read_bytes, 8);
	return gpu->be.ops->rd64(gpu->be.priv, off);
}

void gpu_wr64(struct vmmfs_gpu *gpu, uint32_t off, uint64_t val)
{
	atomic_fetch_add(&gpu->mmio_writes, 1);
	atomic_fetch_add(&gpu->mmio_write_bytes, 8);
	log_spam("wr64 0x%06x = 0x%016llx", off, (unsigned long long)val);
	gpu->be.ops->wr64(gpu->be.priv, off, val);
}

void gpu_rd64_block(struct vmmfs_gpu *gpu, uint32_t off, uint64_t *vals, size_t n)
{
	atomic_fetch_add(&gpu->mmio_reads, n);
	atomic_fetch_add(&gpu->mmio_read_bytes, 8 * n);
	gpu->be.ops->rd64_block(gpu->be.priv, off, vals, n);
}

void gpu_wr64_block(struct vmmfs_gpu *gpu, uint32_t off, const uint64_t *vals, size_t n)
{
	atomic_fetch_add(&gpu->mmio_writes, n);
	atomic_fetch_add(&gpu->mmio_write_bytes, 8 * n);
	if (vmmfs_log_spam_enabled)
		for (size_t i = 0; i < n; i++)
			log_spam("wr64 0x%06x = 0x%016llx", off + (uint32_t)(8 * i), (unsigned long long)vals[i]);
	gpu->be.ops->wr64_block(gpu->be.priv, off, vals, n);
}

bool gpu_check_gone(struct vmmfs_gpu *gpu)
{
	if (atomic_load(&gpu->gone))
		return true;
	if (gpu_rd32(gpu, NV_PMC_BOOT_0) != 0xffffffffu)
		return false;
	if (!atomic_exchange(&gpu->gone, true))
		log_err("the GPU (%s) stopped answering: BAR0 reads all ones. It was removed, reset or "
			"powered off; every further operation fails with ENODEV. Unmount and check the device.",
			gpu->info.backend);
	return true;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int vmmfs_gpu_open_backend(const struct vmmfs_backend *be, uint64_t vram_start, uint64_t vram_end,
			   struct vmmfs_gpu **out, char *err, size_t errlen)
{
	struct vmmfs_gpu *gpu;
	char why[256];
	uint32_t fb;
	int r;

	gpu = vmmfs_calloc(1, sizeof(*gpu));
	if (!gpu) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	gpu->be = *be;
	be->ops->describe(be->priv, gpu->info.backend, sizeof(gpu->info.backend));

	gpu->info.boot0 = gpu_rd32(gpu, NV_PMC_BOOT_0);
	gpu->info.boot42 = gpu_rd32(gpu, NV_PMC_BOOT_42);
	r = vmmfs_chip_identify(gpu->info.boot0, gpu->info.boot42, &gpu->chip, why, sizeof(why));
	if (r) {
		set_err(err, errlen, "%s: %s", gpu->info.backend, why);
		goto err_free;
	}
	fb = gpu_rd32(gpu, NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE);
	gpu->info.vram_size = vmmfs_fb_size_decode(fb);
	if (!gpu->info.vram_size || fb == 0xffffffffu) {
		set_err(err, errlen, "%s: the VRAM size register (0x%x) reads 0x%08x, which is not a size",
			gpu->info.backend, NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE, fb);
		r = -ENODEV;
		goto err_free;
	}
	if (!vram_end)
		vram_end = gpu->info.vram_size;
	if (vram_start >= vram_end || vram_end > gpu->info.vram_size ||
	    !IS_ALIGNED(vram_start, VMMFS_PAGE_SIZE) || !IS_ALIGNED(vram_end, VMMFS_PAGE_SIZE)) {
		set_err(err, errlen, "the VRAM range 0x%llx-0x%llx is not a page-aligned range inside the "
			"GPU's %llu MiB of VRAM (0x0-0x%llx)", (unsigned long long)vram_start,
			(unsigned long long)vram_end, (unsigned long long)(gpu->info.vram_size >> 20),
			(unsigned long long)gpu->info.vram_size);
		r = -EINVAL;
		goto err_free;
	}

	snprintf(gpu->info.chipset, sizeof(gpu->info.chipset), "%s", gpu->chip->chipset);
	snprintf(gpu->info.chip, sizeof(gpu->info.chip), "%s", gpu->chip->name);
	gpu->info.arch = gpu->chip->arch;
	gpu->info.chipset_code = gpu->chip->code;
	gpu->info.mmu_version = gpu->chip->mmu_version;
	gpu->info.va_bits = gpu->chip->va_bits;
	gpu->info.vram_start = vram_start;
	gpu->info.vram_end = vram_end;
	gpu->info.big_pages_2m = true;
	gpu->info.big_pages_512m = gpu->chip->pd1_512m;

	r = vram_create(gpu->info.vram_size, vram_start, vram_end, &gpu->vram);
	if (r) {
		set_err(err, errlen, "cannot set up the VRAM allocator for 0x%llx-0x%llx (%s)",
			(unsigned long long)vram_start, (unsigned long long)vram_end, strerror(-r));
		goto err_free;
	}
	pramin_init(gpu);
	tlb_init(gpu);
	log_info("GPU %s (%s, MMU v%d, %d-bit VA, %llu MiB VRAM) on %s", gpu->info.chipset,
		 gpu->info.arch, gpu->info.mmu_version, gpu->info.va_bits,
		 (unsigned long long)(gpu->info.vram_size >> 20), gpu->info.backend);
	*out = gpu;
	return 0;

err_free:
	vmmfs_free(gpu);
	return r;
}

int vmmfs_gpu_open(const struct vmmfs_gpu_config *cfg, struct vmmfs_gpu **out, char *err, size_t errlen)
{
	struct vmmfs_backend be;
	struct vmmfs_gpu *gpu;
	int r;

	if (cfg->backend == VMMFS_BACKEND_SIM) {
		struct vmmfs_sim_config sc = { .chip = cfg->chip, .vram_size = cfg->vram_size,
					       .vram_file = cfg->vram_file };
		struct vmmfs_sim *sim;

		r = vmmfs_sim_create(&sc, &sim, err, errlen);
		if (r)
			return r;
		vmmfs_sim_backend(sim, &be);
		r = vmmfs_gpu_open_backend(&be, cfg->vram_start, cfg->vram_end, &gpu, err, errlen);
		if (r) {
			be.ops->close(be.priv);
			return r;
		}
		gpu->sim = sim;
		*out = gpu;
		return 0;
	}
	if (cfg->backend != VMMFS_BACKEND_PCI) {
		set_err(err, errlen, "unknown backend %d", (int)cfg->backend);
		return -EINVAL;
	}
#ifdef HAVE_PCI
	if (!cfg->device) {
		set_err(err, errlen, "no PCI device given: pass --device=BDF (see vmmfs --list)");
		return -EINVAL;
	}
	if (!cfg->vram_end) {
		set_err(err, errlen, "a real GPU needs --vram-range=START-END: firmware owns parts of VRAM, so "
			"vmmfs allocates page tables and alloc= memory only from a range you name");
		return -EINVAL;
	}
	r = vmmfs_pci_open(cfg->device, cfg->pci_access, &be, err, errlen);
	if (r)
		return r;
	r = vmmfs_gpu_open_backend(&be, cfg->vram_start, cfg->vram_end, &gpu, err, errlen);
	if (r) {
		be.ops->close(be.priv);
		return r;
	}
	*out = gpu;
	return 0;
#else
	set_err(err, errlen, "this vmmfs was built without libpci: real GPUs are not supported "
		"(install libpci-dev and rebuild)");
	return -EOPNOTSUPP;
#endif
}

void vmmfs_gpu_close(struct vmmfs_gpu *gpu)
{
	if (!gpu)
		return;
	vram_destroy(gpu->vram);
	pthread_mutex_destroy(&gpu->pramin.lock);
	pthread_mutex_destroy(&gpu->tlb.lock);
	gpu->be.ops->close(gpu->be.priv);
	vmmfs_free(gpu);
}

const struct vmmfs_gpu_info *vmmfs_gpu_get_info(const struct vmmfs_gpu *gpu)
{
	return &gpu->info;
}

static const char *sim_names[64];

static void fill_sim_names(void)
{
	size_t n = 0;

	for (const struct vmmfs_sim_chip *c = vmmfs_sim_chips; c->name && n + 1 < ARRAY_SIZE(sim_names); c++)
		sim_names[n++] = c->name;
}

const char *const *vmmfs_sim_chip_names(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fill_sim_names);
	return sim_names;
}

void vmmfs_gpu_get_stats(struct vmmfs_gpu *gpu, struct vmmfs_gpu_stats *st)
{
	st->mmio_reads = atomic_load(&gpu->mmio_reads);
	st->mmio_writes = atomic_load(&gpu->mmio_writes);
	st->mmio_read_bytes = atomic_load(&gpu->mmio_read_bytes);
	st->mmio_write_bytes = atomic_load(&gpu->mmio_write_bytes);
	st->window_moves = atomic_load(&gpu->window_moves);
	st->tlb_flushes = atomic_load(&gpu->tlb_flushes);
}

void vmmfs_gpu_get_vram_usage(struct vmmfs_gpu *gpu, struct vmmfs_vram_usage *u)
{
	vram_get_usage(gpu->vram, u);
}

int vmmfs_gpu_vram_claim(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count)
{
	return vram_claim_run(gpu->vram, first_pfn, count);
}

void vmmfs_gpu_vram_unclaim(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count)
{
	vram_free_run(gpu->vram, first_pfn, count);
}

int vmmfs_gpu_vram_pin(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count)
{
	if (!count)
		return -EINVAL;
	if (first_pfn >= vram_size(gpu->vram) >> VMMFS_PAGE_SHIFT ||
	    count > (vram_size(gpu->vram) >> VMMFS_PAGE_SHIFT) - first_pfn)
		return -ERANGE;
	return vram_ref_run(gpu->vram, first_pfn, count);
}

void vmmfs_gpu_vram_unpin(struct vmmfs_gpu *gpu, uint64_t first_pfn, uint64_t count)
{
	vram_unref_run(gpu->vram, first_pfn, count);
}

int vmmfs_gpu_vram_read(struct vmmfs_gpu *gpu, uint64_t pa, void *buf, size_t len)
{
	return pramin_read(gpu, pa, buf, len);
}

int vmmfs_gpu_vram_write(struct vmmfs_gpu *gpu, uint64_t pa, const void *buf, size_t len)
{
	return pramin_write(gpu, pa, buf, len);
}

int vmmfs_gpu_hw_translate(struct vmmfs_gpu *gpu, uint64_t pdb, uint64_t va, struct vmmfs_hw_translation *out)
{
	struct vmmfs_sim_xlate x;
	int r;

	if (!gpu->sim)
		return -EOPNOTSUPP;
	r = vmmfs_sim_translate(gpu->sim, pdb, va, 'r', &x);
	if (r)
		return r;
	memset(out, 0, sizeof(*out));
	out->result = x.result == VMMFS_SIM_XLATE_OK ? VMMFS_HW_OK :
		      x.result == VMMFS_SIM_XLATE_SPARSE ? VMMFS_HW_SPARSE : VMMFS_HW_FAULT;
	out->pa = x.pa;
	out->page_size = x.page_size;
	out->read_only = x.read_only;
	out->from_tlb = x.from_tlb;
	out->level = x.level;
	out->index = x.index;
	snprintf(out->reason, sizeof(out->reason), "%s", x.reason);
	return 0;
}
