/* SPDX-License-Identifier: MIT */
/*
 * The simulated GPU's BAR0: identification and size registers, the PRAMIN
 * window, the TLB invalidate engine and unclaimed space, behind the same
 * backend ops table as a real GPU. Register offsets and fields come from
 * sim_regs.h only (never from the driver's headers).
 */
#include "sim_priv.h"
#include "sim_regs.h"
#include "internal.h"
#include "mem.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SIM_REV_MAJOR 0xa /* revision A1 */
#define SIM_REV_MINOR 0x1
#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

#define SIM_CHIP(nm, arch, impl, vram, mmu, p512, xal, bits) { \
	.name = nm, \
	.boot0 = SIM_BOOT0(arch, impl, SIM_REV_MAJOR, SIM_REV_MINOR), \
	.boot42 = SIM_BOOT42(arch, impl, SIM_REV_MAJOR, SIM_REV_MINOR), \
	.vram_default = (vram), .mmu_version = (mmu), .pd1_512m = (p512), \
	.xal_window = (xal), .window_base_bits = (bits) }

/* Board sizes: the largest common board of each chip. */
const struct vmmfs_sim_chip vmmfs_sim_chips[] = {
	/*        name     arch  impl VRAM      MMU 512M   window */
	SIM_CHIP("tu102", 0x16, 2, 24 * GiB,  2, false, false, 24), /* Titan RTX */
	SIM_CHIP("tu104", 0x16, 4, 16 * GiB,  2, false, false, 24), /* T4, RTX 5000 */
	SIM_CHIP("ga100", 0x17, 0, 80 * GiB,  2, true,  false, 24), /* A100 80GB */
	SIM_CHIP("ga102", 0x17, 2, 24 * GiB,  2, true,  false, 24), /* RTX 3090, A10 */
	SIM_CHIP("ga104", 0x17, 4, 8 * GiB,   2, true,  false, 24), /* RTX 3070 */
	SIM_CHIP("ad102", 0x19, 2, 24 * GiB,  2, true,  false, 24), /* RTX 4090 */
	SIM_CHIP("ad104", 0x19, 4, 12 * GiB,  2, true,  false, 24), /* RTX 4070 Ti */
	SIM_CHIP("gh100", 0x18, 0, 80 * GiB,  3, true,  true,  22), /* H100 */
	SIM_CHIP("gb100", 0x1a, 0, 192 * GiB, 3, true,  true,  23), /* B200 */
	SIM_CHIP("gb202", 0x1b, 2, 32 * GiB,  3, true,  true,  23), /* RTX 5090 */
	{ .name = NULL },
};

#define SIM_VRAM_MIN MiB
#define SIM_VRAM_MAX (1ull << 40)

/* ---- VRAM size register --------------------------------------------------- */

/* Encodes size as (mag << scale) MiB with the smallest scale; false if it
 * cannot be expressed. */
static bool size_encode(uint64_t bytes, uint32_t *reg)
{
	uint64_t mib = bytes >> 20;
	unsigned int scale;

	if (!bytes || (bytes & (MiB - 1)))
		return false;
	for (scale = 0; scale <= SIM_LMR_SCALE_MAX; scale++) {
		if (mib & ((1ull << scale) - 1))
			return false;
		if ((mib >> scale) <= SIM_LMR_MAG_MAX) {
			*reg = (uint32_t)(SIM_PUT(mib >> scale, SIM_LMR_MAG_HI, SIM_LMR_MAG_LO) |
					  SIM_PUT(scale, SIM_LMR_SCALE_HI, SIM_LMR_SCALE_LO));
			return true;
		}
	}
	return false;
}

/* The expressible sizes nearest to bytes: below (0 if none) and above. */
static void size_neighbours(uint64_t bytes, uint64_t *below, uint64_t *above)
{
	uint64_t mib_lo = bytes >> 20, mib_hi = (bytes + MiB - 1) >> 20;
	unsigned int s;

	*below = 0;
	*above = UINT64_MAX;
	for (s = 0; s <= SIM_LMR_SCALE_MAX; s++) {
		uint64_t m = MIN(mib_lo >> s, (uint64_t)SIM_LMR_MAG_MAX);
		uint64_t c = (mib_hi + (1ull << s) - 1) >> s;

		if (m && (m << s) > *below)
			*below = m << s;
		if (c <= SIM_LMR_MAG_MAX && (c << s) < *above)
			*above = c << s;
	}
	*below <<= 20;
	if (*above != UINT64_MAX)
		*above <<= 20;
}

static int check_size(const struct vmmfs_sim_chip *chip, uint64_t size, uint32_t *reg,
		      char *err, size_t errlen)
{
	uint64_t reach = 1ull << (chip->window_base_bits + SIM_WINDOW_SHIFT);
	uint64_t max = MIN(reach, SIM_VRAM_MAX), below, above;
	char s[32], a[32], b[32];

	sim_fmt_size(s, sizeof(s), size);
	if (size < SIM_VRAM_MIN || size > max) {
		sim_fmt_size(a, sizeof(a), SIM_VRAM_MIN);
		sim_fmt_size(b, sizeof(b), max);
		snprintf(err, errlen, "VRAM size %s is out of range for a simulated %s: "
			 "choose between %s and %s", s, chip->name, a, b);
		return -EINVAL;
	}
	if (size_encode(size, reg))
		return 0;
	size_neighbours(size, &below, &above);
	if (above > max)
		above = below;
	sim_fmt_size(a, sizeof(a), below);
	sim_fmt_size(b, sizeof(b), above);
	snprintf(err, errlen, "VRAM size %s cannot be expressed by the GPU's size register "
		 "((mag < 64) << scale MiB); nearest valid sizes: %s and %s", s, a, b);
	return -EINVAL;
}

/* ---- create / destroy ---------------------------------------------------- */

static const struct vmmfs_sim_chip *chip_by_name(const char *name)
{
	const struct vmmfs_sim_chip *c;

	for (c = vmmfs_sim_chips; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int vmmfs_sim_create(const struct vmmfs_sim_config *cfg, struct vmmfs_sim **out,
		     char *err, size_t errlen)
{
	static const struct vmmfs_sim_config defaults;
	const struct vmmfs_sim_chip *chip, *c;
	struct vmmfs_sim *sim;
	char dummy[1];
	uint32_t reg = 0;
	uint64_t size;
	size_t n;
	int r;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!cfg)
		cfg = &defaults;
	chip = chip_by_name(cfg->chip ? cfg->chip : "ga102");
	if (!chip) {
		n = (size_t)snprintf(err, errlen, "unknown simulated chip '%s'; known:", cfg->chip);
		for (c = vmmfs_sim_chips; c->name && n < errlen; c++)
			n += (size_t)snprintf(err + n, errlen - n, " %s", c->name);
		return -EINVAL;
	}
	size = cfg->vram_size ? cfg->vram_size : chip->vram_default;
	r = check_size(chip, size, &reg, err, errlen);
	if (r)
		return r;

	sim = vmmfs_calloc(1, sizeof(*sim));
	if (!sim) {
		snprintf(err, errlen, "out of memory for the simulated GPU");
		return -ENOMEM;
	}
	sim->chip = chip;
	sim->size_reg = reg;
	sim->busy_polls = 2;
	atomic_init(&sim->window, 0);
	atomic_init(&sim->faults, 0);
	if (pthread_mutex_init(&sim->lock, NULL)) {
		snprintf(err, errlen, "cannot initialise the simulated GPU's lock");
		r = -ENOMEM;
		goto err_free;
	}
	r = sim_vram_open(&sim->vram, size, cfg->vram_file, err, errlen);
	if (r)
		goto err_lock;
	sim_tlb_init(&sim->tlb);
	log_dbg("simulated %s: %" PRIu64 " MiB of VRAM%s%s", chip->name, size >> 20,
		cfg->vram_file ? " in " : "", cfg->vram_file ? cfg->vram_file : "");
	*out = sim;
	return 0;

err_lock:
	pthread_mutex_destroy(&sim->lock);
err_free:
	vmmfs_free(sim);
	return r;
}

void vmmfs_sim_destroy(struct vmmfs_sim *sim)
{
	if (!sim)
		return;
	sim_vram_close(&sim->vram);
	pthread_mutex_destroy(&sim->lock);
	vmmfs_free(sim);
}

const struct vmmfs_sim_chip *vmmfs_sim_get_chip(const struct vmmfs_sim *sim)
{
	return sim->chip;
}

uint64_t vmmfs_sim_vram_size(const struct vmmfs_sim *sim)
{
	return sim->vram.size;
}

/* ---- direct VRAM access (tests) ------------------------------------------ */

static bool vram_range_ok(const struct vmmfs_sim *sim, uint64_t pa, size_t len)
{
	return pa <= sim->vram.size && len <= sim->vram.size - pa;
}

void vmmfs_sim_vram_peek(struct vmmfs_sim *sim, uint64_t pa, void *buf, size_t len)
{
	if (VMMFS_WARN_ON(!vram_range_ok(sim, pa, len))) {
		memset(buf, 0xff, len);
		return;
	}
	sim_vram_read(&sim->vram, pa, buf, len);
}

void vmmfs_sim_vram_poke(struct vmmfs_sim *sim, uint64_t pa, const void *buf, size_t len)
{
	if (VMMFS_WARN_ON(!vram_range_ok(sim, pa, len)))
		return;
	sim_vram_write(&sim->vram, pa, buf, len);
}

uint64_t vmmfs_sim_vram_resident(const struct vmmfs_sim *sim)
{
	return sim_vram_resident(&sim->vram);
}

/* ---- fault injection and counters ---------------------------------------- */

void vmmfs_sim_set_faults(struct vmmfs_sim *sim, unsigned int faults)
{
	atomic_store(&sim->faults, faults);
}

void vmmfs_sim_set_busy_polls(struct vmmfs_sim *sim, unsigned int polls)
{
	pthread_mutex_lock(&sim->lock);
	sim->busy_polls = polls;
	pthread_mutex_unlock(&sim->lock);
}

#define CTR(x) ((uint64_t)atomic_load_explicit(&sim->x, memory_order_relaxed))
#define CTR_ADD(x, n) atomic_fetch_add_explicit(&sim->x, (n), memory_order_relaxed)
#define CTR_ZERO(x) atomic_store_explicit(&sim->x, 0, memory_order_relaxed)

void vmmfs_sim_get_counters(struct vmmfs_sim *sim, struct vmmfs_sim_counters *c)
{
	pthread_mutex_lock(&sim->lock);
	c->reads = CTR(reads);
	c->writes = CTR(writes);
	c->read_bytes = CTR(read_bytes);
	c->write_bytes = CTR(write_bytes);
	c->unclaimed_reads = CTR(unclaimed_reads);
	c->unclaimed_writes = CTR(unclaimed_writes);
	c->window_writes = CTR(window_writes);
	c->invalidates_started = CTR(inv_started);
	c->invalidates_completed = CTR(inv_completed);
	c->last_invalidate = sim->last_invalidate;
	c->last_invalidate_pdb = sim->last_invalidate_pdb;
	c->pramin_reads = CTR(pramin_reads);
	c->pramin_writes = CTR(pramin_writes);
	c->pramin_dropped_reads = CTR(pramin_dropped_reads);
	c->pramin_dropped_writes = CTR(pramin_dropped_writes);
	pthread_mutex_unlock(&sim->lock);
}

void vmmfs_sim_reset_counters(struct vmmfs_sim *sim)
{
	pthread_mutex_lock(&sim->lock);
	CTR_ZERO(reads);
	CTR_ZERO(writes);
	CTR_ZERO(read_bytes);
	CTR_ZERO(write_bytes);
	CTR_ZERO(unclaimed_reads);
	CTR_ZERO(unclaimed_writes);
	CTR_ZERO(window_writes);
	CTR_ZERO(inv_started);
	CTR_ZERO(inv_completed);
	CTR_ZERO(pramin_reads);
	CTR_ZERO(pramin_writes);
	CTR_ZERO(pramin_dropped_reads);
	CTR_ZERO(pramin_dropped_writes);
	sim->last_invalidate = 0;
	sim->last_invalidate_pdb = 0;
	pthread_mutex_unlock(&sim->lock);
}

/* ---- register file ------------------------------------------------------- */

static bool vanished(const struct vmmfs_sim *sim)
{
	return atomic_load_explicit(&sim->faults, memory_order_relaxed) & VMMFS_SIM_FAULT_VANISHED;
}

static uint32_t window_reg_offset(const struct vmmfs_sim *sim)
{
	return sim->chip->xal_window ? SIM_XAL_EP_BAR0_WINDOW : SIM_PBUS_BAR0_WINDOW;
}

static uint32_t window_reg_mask(const struct vmmfs_sim *sim)
{
	if (sim->chip->xal_window)
		return (uint32_t)SIM_MASK(sim->chip->window_base_bits - 1, 0);
	return (uint32_t)(SIM_MASK(SIM_PBUS_WINDOW_BASE_HI, SIM_PBUS_WINDOW_BASE_LO) |
			  SIM_MASK(SIM_PBUS_WINDOW_TARGET_HI, SIM_PBUS_WINDOW_TARGET_LO));
}

/* VRAM address behind aperture offset off for an access of width bytes;
 * false when the access reaches no VRAM. */
static bool pramin_pa(struct vmmfs_sim *sim, uint64_t off, uint64_t width, uint64_t *pa)
{
	uint32_t w = (uint32_t)atomic_load_explicit(&sim->window, memory_order_acquire);
	uint64_t base;

	if (sim->chip->xal_window) {
		base = (uint64_t)w << SIM_WINDOW_SHIFT;
	} else {
		if (SIM_GET(w, SIM_PBUS_WINDOW_TARGET_HI, SIM_PBUS_WINDOW_TARGET_LO) !=
		    SIM_PBUS_WINDOW_TARGET_VID_MEM)
			return false; /* no system memory behind the simulated GPU */
		base = SIM_GET(w, SIM_PBUS_WINDOW_BASE_HI, SIM_PBUS_WINDOW_BASE_LO) << SIM_WINDOW_SHIFT;
	}
	*pa = base + (off - SIM_PRAMIN_BASE);
	return *pa < sim->vram.size && width <= sim->vram.size - *pa;
}

static bool in_pramin(uint64_t off, uint64_t len)
{
	return off >= SIM_PRAMIN_BASE && off < SIM_PRAMIN_BASE + SIM_PRAMIN_SIZE &&
	       len <= SIM_PRAMIN_BASE + SIM_PRAMIN_SIZE - off;
}

/* Completes the pending invalidate (lock held). */
static void inv_complete_locked(struct vmmfs_sim *sim)
{
	uint32_t v = sim->inv_value;

	sim_tlb_invalidate_locked(sim, v & SIM_INV_ALL_PDB, sim->inv_pdb, sim->inv_pdb_sys,
				  (unsigned int)SIM_GET(v, SIM_INV_CACHE_LEVEL_HI, SIM_INV_CACHE_LEVEL_LO));
	sim->inv_pending = false;
	CTR_ADD(inv_completed, 1);
}

static uint32_t inv_read_locked(struct vmmfs_sim *sim)
{
	if (!sim->inv_pending)
		return sim->inv_ctrl;
	if (atomic_load(&sim->faults) & VMMFS_SIM_FAULT_STUCK_INVALIDATE)
		return sim->inv_value | SIM_INV_TRIGGER;
	if (sim->inv_busy_left) {
		sim->inv_busy_left--;
		return sim->inv_value | SIM_INV_TRIGGER;
	}
	inv_complete_locked(sim);
	return sim->inv_ctrl;
}

static void inv_write_locked(struct vmmfs_sim *sim, uint32_t val)
{
	sim->inv_ctrl = val & ~SIM_INV_TRIGGER;
	if (!(val & SIM_INV_TRIGGER))
		return;
	/* An invalidate still running when the next one is triggered finishes
	 * first (the hardware queues them), unless the engine is stuck. */
	if (sim->inv_pending && !(atomic_load(&sim->faults) & VMMFS_SIM_FAULT_STUCK_INVALIDATE))
		inv_complete_locked(sim);
	sim->inv_value = val;
	sim->inv_pdb = (SIM_GET(sim->inv_pdb_lo, SIM_INV_PDB_ADDR_HI, SIM_INV_PDB_ADDR_LO) << 12) |
		       (SIM_GET(sim->inv_pdb_hi, SIM_INV_UPPER_ADDR_HI, SIM_INV_UPPER_ADDR_LO) << 40);
	sim->inv_pdb_sys = sim->inv_pdb_lo & (1u << SIM_INV_PDB_APERTURE_BIT);
	sim->last_invalidate = val;
	sim->last_invalidate_pdb = sim->inv_pdb;
	sim->inv_pending = true;
	sim->inv_busy_left = sim->busy_polls;
	CTR_ADD(inv_started, 1);
	log_spam("sim: invalidate 0x%08x pdb 0x%" PRIx64, val, sim->inv_pdb);
}

/* A 32-bit register read at a 4-aligned offset outside the aperture; sets
 * *unclaimed (and returns the bad-register value) for unclaimed space. */
static uint32_t reg_rd32(struct vmmfs_sim *sim, uint64_t off, bool *unclaimed)
{
	uint32_t v;

	switch (off) {
	case SIM_PMC_BOOT_0:
		return sim->chip->boot0;
	case SIM_PMC_BOOT_42:
		return sim->chip->boot42;
	case SIM_PFB_PRI_MMU_LOCAL_MEMORY_RANGE:
		return sim->size_reg;
	case SIM_MMU_INVALIDATE_PDB:
	case SIM_MMU_INVALIDATE_UPPER_PDB:
	case SIM_MMU_INVALIDATE:
		pthread_mutex_lock(&sim->lock);
		if (off == SIM_MMU_INVALIDATE)
			v = inv_read_locked(sim);
		else
			v = off == SIM_MMU_INVALIDATE_PDB ? sim->inv_pdb_lo : sim->inv_pdb_hi;
		pthread_mutex_unlock(&sim->lock);
		return v;
	default:
		if (off == window_reg_offset(sim))
			return (uint32_t)atomic_load(&sim->window);
		*unclaimed = true;
		return VMMFS_SIM_BAD_REG;
	}
}

/* A 32-bit register write; sets *unclaimed for unclaimed space. */
static void reg_wr32(struct vmmfs_sim *sim, uint64_t off, uint32_t val, bool *unclaimed)
{
	switch (off) {
	case SIM_PMC_BOOT_0:
	case SIM_PMC_BOOT_42:
	case SIM_PFB_PRI_MMU_LOCAL_MEMORY_RANGE:
		return; /* read-only registers ignore writes */
	case SIM_MMU_INVALIDATE_PDB:
	case SIM_MMU_INVALIDATE_UPPER_PDB:
	case SIM_MMU_INVALIDATE:
		pthread_mutex_lock(&sim->lock);
		if (off == SIM_MMU_INVALIDATE)
			inv_write_locked(sim, val);
		else if (off == SIM_MMU_INVALIDATE_PDB)
			sim->inv_pdb_lo = val;
		else
			sim->inv_pdb_hi = val;
		pthread_mutex_unlock(&sim->lock);
		return;
	default:
		if (off == window_reg_offset(sim)) {
			pthread_mutex_lock(&sim->lock);
			atomic_store_explicit(&sim->window, val & window_reg_mask(sim),
					      memory_order_release);
			CTR_ADD(window_writes, 1);
			pthread_mutex_unlock(&sim->lock);
			log_spam("sim: window 0x%08x", val);
			return;
		}
		*unclaimed = true;
	}
}

/* One access of width 4 or 8 at any offset (counted by the caller). */
static uint64_t bar0_read(struct vmmfs_sim *sim, uint64_t off, unsigned int width)
{
	bool unclaimed = false;
	uint64_t pa, v;

	if (vanished(sim))
		return width == 8 ? ~0ull : 0xffffffffull;
	if (off & (width - 1) || off >= SIM_BAR0_SIZE || width > SIM_BAR0_SIZE - off) {
		CTR_ADD(unclaimed_reads, 1);
		return width == 8 ? ((uint64_t)VMMFS_SIM_BAD_REG << 32 | VMMFS_SIM_BAD_REG)
				  : VMMFS_SIM_BAD_REG;
	}
	if (in_pramin(off, width)) {
		CTR_ADD(pramin_reads, 1);
		if (!pramin_pa(sim, off, width, &pa)) {
			CTR_ADD(pramin_dropped_reads, 1);
			return width == 8 ? ((uint64_t)VMMFS_SIM_BAD_REG << 32 | VMMFS_SIM_BAD_REG)
					  : VMMFS_SIM_BAD_REG;
		}
		return width == 8 ? sim_vram_rd64(&sim->vram, pa) : sim_vram_rd32(&sim->vram, pa);
	}
	/* A 64-bit access to registers is two 32-bit ones; it counts as one
	 * unclaimed access if either half is unclaimed. */
	v = reg_rd32(sim, off, &unclaimed);
	if (width == 8)
		v |= (uint64_t)reg_rd32(sim, off + 4, &unclaimed) << 32;
	if (unclaimed)
		CTR_ADD(unclaimed_reads, 1);
	return v;
}

static void bar0_write(struct vmmfs_sim *sim, uint64_t off, uint64_t val, unsigned int width)
{
	bool unclaimed = false;
	uint64_t pa;

	if (vanished(sim))
		return;
	if (off & (width - 1) || off >= SIM_BAR0_SIZE || width > SIM_BAR0_SIZE - off) {
		CTR_ADD(unclaimed_writes, 1);
		return;
	}
	if (in_pramin(off, width)) {
		CTR_ADD(pramin_writes, 1);
		if (!pramin_pa(sim, off, width, &pa)) {
			CTR_ADD(pramin_dropped_writes, 1);
			return;
		}
		if (width == 8)
			sim_vram_wr64(&sim->vram, pa, val);
		else
			sim_vram_wr32(&sim->vram, pa, (uint32_t)val);
		return;
	}
	reg_wr32(sim, off, (uint32_t)val, &unclaimed);
	if (width == 8)
		reg_wr32(sim, off + 4, (uint32_t)(val >> 32), &unclaimed);
	if (unclaimed)
		CTR_ADD(unclaimed_writes, 1);
}

/* ---- backend ops ----------------------------------------------------------- */

static uint32_t sim_rd32(void *priv, uint32_t off)
{
	struct vmmfs_sim *sim = priv;

	CTR_ADD(reads, 1);
	CTR_ADD(read_bytes, 4);
	return (uint32_t)bar0_read(sim, off, 4);
}

static void sim_wr32(void *priv, uint32_t off, uint32_t val)
{
	struct vmmfs_sim *sim = priv;

	CTR_ADD(writes, 1);
	CTR_ADD(write_bytes, 4);
	bar0_write(sim, off, val, 4);
}

static uint64_t sim_rd64(void *priv, uint32_t off)
{
	struct vmmfs_sim *sim = priv;

	CTR_ADD(reads, 1);
	CTR_ADD(read_bytes, 8);
	return bar0_read(sim, off, 8);
}

static void sim_wr64(void *priv, uint32_t off, uint64_t val)
{
	struct vmmfs_sim *sim = priv;

	CTR_ADD(writes, 1);
	CTR_ADD(write_bytes, 8);
	bar0_write(sim, off, val, 8);
}

/* n words inside the aperture and inside VRAM: one copy. */
static bool block_fast_pa(struct vmmfs_sim *sim, uint32_t off, size_t n, uint64_t *pa)
{
	return !(off & 7) && n <= SIM_PRAMIN_SIZE / 8 && in_pramin(off, (uint64_t)n * 8) &&
	       pramin_pa(sim, off, (uint64_t)n * 8, pa);
}

static void sim_rd64_block(void *priv, uint32_t off, uint64_t *vals, size_t n)
{
	struct vmmfs_sim *sim = priv;
	uint64_t pa;
	size_t i;

	if (!n)
		return;
	CTR_ADD(reads, n);
	CTR_ADD(read_bytes, (uint64_t)n * 8);
	if (!vanished(sim) && block_fast_pa(sim, off, n, &pa)) {
		CTR_ADD(pramin_reads, n);
		sim_vram_read(&sim->vram, pa, vals, n * 8);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
		for (i = 0; i < n; i++)
			vals[i] = __builtin_bswap64(vals[i]);
#endif
		return;
	}
	for (i = 0; i < n; i++)
		vals[i] = bar0_read(sim, (uint64_t)off + 8 * (uint64_t)i, 8);
}

static void sim_wr64_block(void *priv, uint32_t off, const uint64_t *vals, size_t n)
{
	struct vmmfs_sim *sim = priv;
	uint64_t pa;
	size_t i;

	if (!n)
		return;
	CTR_ADD(writes, n);
	CTR_ADD(write_bytes, (uint64_t)n * 8);
	if (vanished(sim))
		return;
	if (block_fast_pa(sim, off, n, &pa)) {
		CTR_ADD(pramin_writes, n);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		sim_vram_write(&sim->vram, pa, vals, n * 8);
#else
		for (i = 0; i < n; i++)
			sim_vram_wr64(&sim->vram, pa + 8 * i, vals[i]);
#endif
		return;
	}
	for (i = 0; i < n; i++)
		bar0_write(sim, (uint64_t)off + 8 * (uint64_t)i, vals[i], 8);
}

static void sim_describe(void *priv, char *buf, size_t len)
{
	if (len)
		snprintf(buf, len, "sim");
}

static void sim_close(void *priv)
{
	vmmfs_sim_destroy(priv);
}

static const struct vmmfs_backend_ops sim_backend_ops = {
	.name = "sim",
	.rd32 = sim_rd32,
	.wr32 = sim_wr32,
	.rd64 = sim_rd64,
	.wr64 = sim_wr64,
	.rd64_block = sim_rd64_block,
	.wr64_block = sim_wr64_block,
	.describe = sim_describe,
	.close = sim_close,
};

void vmmfs_sim_backend(struct vmmfs_sim *sim, struct vmmfs_backend *be)
{
	be->ops = &sim_backend_ops;
	be->priv = sim;
}
