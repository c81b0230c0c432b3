/* SPDX-License-Identifier: MIT */
/*
 * Tests of the simulated GPU (core/sim/): chip registers, the PRAMIN window,
 * VRAM (poison, file backing, big boards), the TLB invalidate protocol, the
 * MMU walking hand-built v2 and v3 trees, the TLB's stale translations,
 * unclaimed registers, a vanished device and the access counters.
 *
 * Page-table entries are built here with this file's own encoders, written
 * from the hardware notes, and poked straight into VRAM; the simulator's
 * walker must agree with them.
 */
#include "helper.h"
#include "sim/sim.h"
#include "sim/sim_regs.h"
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define BAD64 ((uint64_t)VMMFS_SIM_BAD_REG << 32 | VMMFS_SIM_BAD_REG)

/* ---- fixtures ---------------------------------------------------------------- */

struct fx {
	struct vmmfs_sim *sim;
	struct vmmfs_backend be;
};

static bool fx_open(struct fx *f, const char *chip, uint64_t vram)
{
	struct vmmfs_sim_config cfg = { .chip = chip, .vram_size = vram };
	char err[256] = "";
	int r = vmmfs_sim_create(&cfg, &f->sim, err, sizeof(err));

	if (r) {
		fprintf(stderr, "  cannot create simulated %s: %s (%d)\n", chip, err, r);
		CU_FAIL("vmmfs_sim_create");
		return false;
	}
	vmmfs_sim_backend(f->sim, &f->be);
	return true;
}

static void fx_close(struct fx *f)
{
	f->be.ops->close(f->be.priv);
	f->sim = NULL;
}

static uint32_t rd32(struct fx *f, uint32_t off) { return f->be.ops->rd32(f->be.priv, off); }
static void wr32(struct fx *f, uint32_t off, uint32_t v) { f->be.ops->wr32(f->be.priv, off, v); }
static uint64_t rd64(struct fx *f, uint32_t off) { return f->be.ops->rd64(f->be.priv, off); }
static void wr64(struct fx *f, uint32_t off, uint64_t v) { f->be.ops->wr64(f->be.priv, off, v); }

static struct vmmfs_sim_counters counters(struct fx *f)
{
	struct vmmfs_sim_counters c;

	vmmfs_sim_get_counters(f->sim, &c);
	return c;
}

static uint64_t peek64(struct fx *f, uint64_t pa)
{
	uint64_t v;

	vmmfs_sim_vram_peek(f->sim, pa, &v, 8);
	return v;
}

static void poke64(struct fx *f, uint64_t pa, uint64_t v)
{
	vmmfs_sim_vram_poke(f->sim, pa, &v, 8);
}

/* ---- chips: this file's own expectations -------------------------------- */

struct exp_chip {
	const char *name;
	unsigned int arch, impl;
	uint64_t vram;
	int mmu;
	bool pd1_512m;
	uint32_t window_reg;
	unsigned int base_bits;
};

static const struct exp_chip exp_chips[] = {
	{ "tu102", 0x16, 2, 24 * GiB, 2, false, 0x1700, 24 },
	{ "tu104", 0x16, 4, 16 * GiB, 2, false, 0x1700, 24 },
	{ "ga100", 0x17, 0, 80 * GiB, 2, true, 0x1700, 24 },
	{ "ga102", 0x17, 2, 24 * GiB, 2, true, 0x1700, 24 },
	{ "ga104", 0x17, 4, 8 * GiB, 2, true, 0x1700, 24 },
	{ "ad102", 0x19, 2, 24 * GiB, 2, true, 0x1700, 24 },
	{ "ad104", 0x19, 4, 12 * GiB, 2, true, 0x1700, 24 },
	{ "gh100", 0x18, 0, 80 * GiB, 3, true, 0x10fd40, 22 },
	{ "gb100", 0x1a, 0, 192 * GiB, 3, true, 0x10fd40, 23 },
	{ "gb202", 0x1b, 2, 32 * GiB, 3, true, 0x10fd40, 23 },
};
#define N_EXP (sizeof(exp_chips) / sizeof(exp_chips[0]))

static const struct exp_chip *exp_chip(const char *name)
{
	for (size_t i = 0; i < N_EXP; i++)
		if (!strcmp(exp_chips[i].name, name))
			return &exp_chips[i];
	return NULL;
}

static uint32_t window_reg(struct fx *f)
{
	return exp_chip(vmmfs_sim_get_chip(f->sim)->name)->window_reg;
}

static void set_window(struct fx *f, uint64_t base)
{
	wr32(f, window_reg(f), (uint32_t)(base >> 16));
}

static void test_chip_table(void)
{
	size_t n = 0;

	for (const struct vmmfs_sim_chip *c = vmmfs_sim_chips; c->name; c++, n++) {
		const struct exp_chip *e = exp_chip(c->name);

		if (!e) {
			fprintf(stderr, "  chip %s is not expected\n", c->name);
			CU_FAIL("unexpected chip");
			continue;
		}
		VT_EQ_U64(c->vram_default, e->vram);
		VT_EQ_INT(c->mmu_version, e->mmu);
		VT_EQ_INT(c->pd1_512m, e->pd1_512m);
		VT_EQ_INT(c->xal_window, e->window_reg != 0x1700);
		VT_EQ_INT(c->window_base_bits, e->base_bits);
	}
	VT_EQ_U64(n, N_EXP);
}

/* BOOT_0 / BOOT_42 decoded with nvidia-mmu.md §2.1, for every chip, read
 * through BAR0; the size register decodes to the board size. */
static void test_chip_registers(void)
{
	for (size_t i = 0; i < N_EXP; i++) {
		const struct exp_chip *e = &exp_chips[i];
		struct fx f;
		uint32_t b0, b42, lmr;
		unsigned int arch0;

		if (!fx_open(&f, e->name, 0))
			continue;
		b0 = rd32(&f, 0x0);
		b42 = rd32(&f, 0xa00);
		arch0 = (b0 >> 24 & 0x1f) | (b0 >> 8 & 1) << 5;
		VT_EQ_INT(arch0, e->arch);
		VT_EQ_INT(b0 >> 20 & 0xf, e->impl);
		VT_EQ_INT(b0 >> 4 & 0xf, 0xa); /* revision A1 */
		VT_EQ_INT(b0 & 0xf, 1);
		VT_EQ_INT(b0 >> 29, 0);
		VT_EQ_INT(b42 >> 24 & 0x3f, e->arch);
		VT_EQ_INT(b42 >> 20 & 0xf, e->impl);
		VT_EQ_INT(b42 >> 16 & 0xf, 0xa);
		VT_EQ_INT(b42 >> 12 & 0xf, 1);
		VT_EQ_INT(b42 >> 30, 0);
		/* chipset code as the driver forms it */
		VT_EQ_INT((b42 >> 24 & 0x3f) << 4 | (b42 >> 20 & 0xf), e->arch << 4 | e->impl);
		lmr = rd32(&f, 0x100ce0);
		VT_EQ_U64((uint64_t)(lmr >> 4 & 0x3f) << (lmr & 0xf) << 20, e->vram);
		VT_EQ_U64(vmmfs_sim_vram_size(f.sim), e->vram);
		CU_ASSERT_STRING_EQUAL(vmmfs_sim_get_chip(f.sim)->name, e->name);
		/* read-only registers ignore writes */
		wr32(&f, 0x0, 0);
		VT_EQ_U64(rd32(&f, 0x0), b0);
		fx_close(&f);
	}
}

/* The window register of the other generation is unclaimed space; the
 * chip's own one keeps only its fields. */
static void test_chip_window_registers(void)
{
	for (size_t i = 0; i < N_EXP; i++) {
		const struct exp_chip *e = &exp_chips[i];
		uint32_t other = e->window_reg == 0x1700 ? 0x10fd40 : 0x1700;
		uint32_t mask = e->window_reg == 0x1700 ? 0x03ffffffu : (uint32_t)((1ull << e->base_bits) - 1);
		struct vmmfs_sim_counters c;
		struct fx f;

		if (!fx_open(&f, e->name, 64 * MiB))
			continue;
		VT_EQ_U64(rd32(&f, e->window_reg), 0);
		wr32(&f, e->window_reg, 0xffffffffu);
		VT_EQ_U64(rd32(&f, e->window_reg), mask);
		VT_EQ_U64(rd32(&f, other), VMMFS_SIM_BAD_REG);
		wr32(&f, other, 5);
		c = counters(&f);
		VT_EQ_U64(c.unclaimed_reads, 1);
		VT_EQ_U64(c.unclaimed_writes, 1);
		VT_EQ_U64(c.window_writes, 1);
		fx_close(&f);
	}
}

static int try_create(const char *chip, uint64_t size, char *err, size_t len)
{
	struct vmmfs_sim_config cfg = { .chip = chip, .vram_size = size };
	struct vmmfs_sim *sim = NULL;
	int r = vmmfs_sim_create(&cfg, &sim, err, len);

	if (!r)
		vmmfs_sim_destroy(sim);
	return r;
}

static void test_chip_sizes(void)
{
	char err[256];
	struct vmmfs_sim *sim = NULL;
	struct fx f;

	/* expressible sizes, with their size register */
	static const struct { uint64_t size; } ok[] = {
		{ 1 * MiB }, { 16 * MiB }, { 100 * MiB }, { 63 * MiB }, { 24 * GiB }, { 48 * GiB },
		{ 1024 * GiB },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint32_t lmr;

		if (!fx_open(&f, "tu102", ok[i].size))
			continue;
		lmr = rd32(&f, 0x100ce0);
		VT_EQ_U64((uint64_t)(lmr >> 4 & 0x3f) << (lmr & 0xf) << 20, ok[i].size);
		VT_EQ_U64(lmr & ~0x3ffu, 0);
		fx_close(&f);
	}
	/* 1000 MiB = 125 << 3: the neighbours are 992 MiB (62 << 4) and 1008 MiB (63 << 4) */
	VT_EQ_INT(try_create("ga102", 1000 * MiB, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "992 MiB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "1008 MiB"));
	VT_EQ_INT(try_create("ga102", 16 * MiB + 4096, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "16 MiB"));
	VT_EQ_INT(try_create("ga102", 512 * KiB, err, sizeof(err)), -EINVAL);
	VT_EQ_INT(try_create("ga102", 2048 * GiB, err, sizeof(err)), -EINVAL);
	/* gh100's window base has 22 bits: 256 GiB of reach */
	VT_EQ_INT(try_create("gh100", 512 * GiB, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "256 GiB"));
	VT_EQ_INT(try_create("gh100", 256 * GiB, err, sizeof(err)), 0);
	VT_EQ_INT(try_create("gb202", 512 * GiB, err, sizeof(err)), 0);
	/* unknown chip: the message lists the known ones */
	VT_EQ_INT(try_create("nv50", 0, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nv50"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "gb202"));
	/* no config, or no chip: ga102 with its board size */
	VT_EQ_INT(vmmfs_sim_create(NULL, &sim, NULL, 0), 0);
	if (sim) {
		CU_ASSERT_STRING_EQUAL(vmmfs_sim_get_chip(sim)->name, "ga102");
		VT_EQ_U64(vmmfs_sim_vram_size(sim), 24 * GiB);
		vmmfs_sim_destroy(sim);
	}
}

static void test_chip_backend(void)
{
	struct fx f;
	char buf[32] = "";

	if (!fx_open(&f, "ad102", 64 * MiB))
		return;
	CU_ASSERT_STRING_EQUAL(f.be.ops->name, "sim");
	f.be.ops->describe(f.be.priv, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "sim");
	CU_ASSERT_PTR_EQUAL(f.be.priv, f.sim);
	fx_close(&f); /* close() destroys the simulator (ASan checks the rest) */
}

/* ---- PRAMIN --------------------------------------------------------------------- */

static void test_pramin_window_moves(void)
{
	static const char *chips[] = { "ga102", "gh100", "gb202" };

	for (size_t ci = 0; ci < 3; ci++) {
		struct fx f;

		if (!fx_open(&f, chips[ci], 256 * MiB))
			continue;
		poke64(&f, 0x0, 0x1111111111111111ull);
		poke64(&f, 0x10000, 0x2222222222222222ull);
		poke64(&f, 0x3450008, 0x3333333344444444ull);
		VT_EQ_U64(rd64(&f, 0x700000), 0x1111111111111111ull);
		VT_EQ_U64(rd64(&f, 0x710000), 0x2222222222222222ull);
		set_window(&f, 0x10000);
		VT_EQ_U64(rd64(&f, 0x700000), 0x2222222222222222ull);
		set_window(&f, 0x3450000);
		VT_EQ_U64(rd64(&f, 0x700008), 0x3333333344444444ull);
		VT_EQ_U64(rd32(&f, 0x700008), 0x44444444u); /* little-endian halves */
		VT_EQ_U64(rd32(&f, 0x70000c), 0x33333333u);
		/* writes land at base + offset */
		wr32(&f, 0x7ffffc, 0xcafef00du);
		VT_EQ_U64(peek64(&f, 0x3450000 + 0xffff8) >> 32, 0xcafef00du);
		wr64(&f, 0x700100, 0x0123456789abcdefull);
		{
			uint8_t b[8];

			vmmfs_sim_vram_peek(f.sim, 0x3450100, b, 8);
			VT_EQ_INT(b[0], 0xef);
			VT_EQ_INT(b[7], 0x01);
		}
		VT_EQ_U64(counters(&f).window_writes, 2);
		fx_close(&f);
	}
}

/* Block accesses that run off the end of the aperture: the words inside
 * reach VRAM, the rest is unclaimed space. */
static void test_pramin_across_window_end(void)
{
	struct fx f;
	uint64_t in[4] = { 1, 2, 3, 4 }, out[4];
	struct vmmfs_sim_counters c;

	if (!fx_open(&f, "tu102", 64 * MiB))
		return;
	set_window(&f, 1 * MiB);
	vmmfs_sim_reset_counters(f.sim);
	f.be.ops->wr64_block(f.be.priv, 0x7ffff0, in, 4);
	VT_EQ_U64(peek64(&f, 2 * MiB - 16), 1);
	VT_EQ_U64(peek64(&f, 2 * MiB - 8), 2);
	VT_EQ_U64(peek64(&f, 2 * MiB), VMMFS_SIM_POISON64); /* not reached */
	c = counters(&f);
	VT_EQ_U64(c.writes, 4);
	VT_EQ_U64(c.write_bytes, 32);
	VT_EQ_U64(c.pramin_writes, 2);
	VT_EQ_U64(c.unclaimed_writes, 2);
	f.be.ops->rd64_block(f.be.priv, 0x7ffff0, out, 4);
	VT_EQ_U64(out[0], 1);
	VT_EQ_U64(out[1], 2);
	VT_EQ_U64(out[2], BAD64);
	VT_EQ_U64(out[3], BAD64);
	c = counters(&f);
	VT_EQ_U64(c.reads, 4);
	VT_EQ_U64(c.unclaimed_reads, 2);
	/* the next window continues where this one ended */
	set_window(&f, 2 * MiB - 64 * KiB);
	VT_EQ_U64(rd64(&f, 0x700000 + 64 * KiB - 8), 2);
	VT_EQ_U64(rd64(&f, 0x700000 + 64 * KiB), VMMFS_SIM_POISON64);
	fx_close(&f);
}

static void test_pramin_vram_ends(void)
{
	static const char *chips[] = { "ga102", "gh100", "gb202" };

	for (size_t ci = 0; ci < 3; ci++) {
		const uint64_t size = 64 * MiB;
		struct vmmfs_sim_counters c;
		struct fx f;

		if (!fx_open(&f, chips[ci], size))
			continue;
		/* first bytes */
		wr32(&f, 0x700000, 0xa1a2a3a4u);
		VT_EQ_U64(peek64(&f, 0) & 0xffffffffu, 0xa1a2a3a4u);
		/* last bytes: the window's last 1 MiB */
		set_window(&f, size - MiB);
		wr64(&f, 0x7ffff8, 0xfeedfacecafebeefull);
		VT_EQ_U64(peek64(&f, size - 8), 0xfeedfacecafebeefull);
		VT_EQ_U64(rd32(&f, 0x7ffffc), 0xfeedfaceu);
		/* a window hanging over the end: the part beyond VRAM reads bad and
		 * drops writes */
		set_window(&f, size - 64 * KiB);
		vmmfs_sim_reset_counters(f.sim);
		VT_EQ_U64(rd64(&f, 0x700000 + 64 * KiB - 8), 0xfeedfacecafebeefull);
		VT_EQ_U64(rd32(&f, 0x700000 + 64 * KiB), VMMFS_SIM_BAD_REG);
		VT_EQ_U64(rd64(&f, 0x7ffff8), BAD64);
		wr64(&f, 0x700000 + 64 * KiB, 42);
		{
			uint64_t b[2] = { 7, 8 }, r[2];

			f.be.ops->wr64_block(f.be.priv, 0x700000 + 64 * KiB - 8, b, 2);
			VT_EQ_U64(peek64(&f, size - 8), 7);
			f.be.ops->rd64_block(f.be.priv, 0x700000 + 64 * KiB - 8, r, 2);
			VT_EQ_U64(r[0], 7);
			VT_EQ_U64(r[1], BAD64);
		}
		c = counters(&f);
		VT_EQ_U64(c.pramin_dropped_reads, 3);
		VT_EQ_U64(c.pramin_dropped_writes, 2);
		VT_EQ_U64(c.pramin_reads, 5);
		VT_EQ_U64(c.pramin_writes, 3);
		VT_EQ_U64(c.unclaimed_reads, 0);
		/* a window entirely beyond VRAM */
		set_window(&f, 4 * GiB);
		VT_EQ_U64(rd32(&f, 0x700000), VMMFS_SIM_BAD_REG);
		fx_close(&f);
	}
}

/* Pre-Hopper TARGET != VID_MEM: no system memory behind the simulator. */
static void test_pramin_target_sysmem(void)
{
	struct fx f;

	if (!fx_open(&f, "ad102", 64 * MiB))
		return;
	poke64(&f, 0, 99);
	wr32(&f, 0x1700, 2u << 24);
	VT_EQ_U64(rd32(&f, 0x1700), 2u << 24);
	VT_EQ_U64(rd64(&f, 0x700000), BAD64);
	wr64(&f, 0x700000, 5);
	VT_EQ_U64(counters(&f).pramin_dropped_writes, 1);
	wr32(&f, 0x1700, 0);
	VT_EQ_U64(rd64(&f, 0x700000), 99);
	fx_close(&f);
}

static void test_pramin_misaligned(void)
{
	struct fx f;
	struct vmmfs_sim_counters c;

	if (!fx_open(&f, "ga102", 64 * MiB))
		return;
	poke64(&f, 0, 0x1122334455667788ull);
	VT_EQ_U64(rd32(&f, 0x700002), VMMFS_SIM_BAD_REG);
	VT_EQ_U64(rd64(&f, 0x700004), BAD64);
	wr64(&f, 0x700004, 0);
	VT_EQ_U64(peek64(&f, 0), 0x1122334455667788ull);
	/* beyond the 16 MiB BAR */
	VT_EQ_U64(rd32(&f, 0x1000000), VMMFS_SIM_BAD_REG);
	VT_EQ_U64(rd64(&f, 0xfffffc), BAD64);
	c = counters(&f);
	VT_EQ_U64(c.unclaimed_reads, 4);
	VT_EQ_U64(c.unclaimed_writes, 1);
	fx_close(&f);
}

static void test_pramin_blocks(void)
{
	struct fx f;
	uint64_t in[512], out[512];
	struct vmmfs_sim_counters c;

	if (!fx_open(&f, "gh100", 64 * MiB))
		return;
	vt_seed("pramin blocks");
	for (size_t i = 0; i < 512; i++)
		in[i] = vt_rand();
	set_window(&f, 5 * MiB);
	vmmfs_sim_reset_counters(f.sim);
	/* spans two 64 KiB VRAM blocks */
	f.be.ops->wr64_block(f.be.priv, 0x700000 + 64 * KiB - 2048, in, 512);
	c = counters(&f);
	VT_EQ_U64(c.writes, 512);
	VT_EQ_U64(c.write_bytes, 4096);
	VT_EQ_U64(c.pramin_writes, 512);
	for (size_t i = 0; i < 512; i++)
		if (peek64(&f, 5 * MiB + 64 * KiB - 2048 + 8 * i) != in[i]) {
			VT_EQ_U64(peek64(&f, 5 * MiB + 64 * KiB - 2048 + 8 * i), in[i]);
			break;
		}
	f.be.ops->rd64_block(f.be.priv, 0x700000 + 64 * KiB - 2048, out, 512);
	CU_ASSERT(memcmp(in, out, sizeof(in)) == 0);
	for (size_t i = 0; i < 512; i += 97)
		VT_EQ_U64(rd64(&f, 0x700000 + 64 * KiB - 2048 + 8 * (uint32_t)i), in[i]);
	c = counters(&f);
	VT_EQ_U64(c.reads, 512 + 6);
	VT_EQ_U64(c.read_bytes, 8 * (512 + 6));
	/* n = 0 does nothing */
	f.be.ops->rd64_block(f.be.priv, 0x700000, out, 0);
	f.be.ops->wr64_block(f.be.priv, 0x700000, in, 0);
	VT_EQ_U64(counters(&f).reads, 512 + 6);
	VT_EQ_U64(counters(&f).writes, 512);
	fx_close(&f);
}

/* Untouched VRAM reads as poison, in every width and through every path; a
 * write materialises its 64 KiB block only. */
static void test_vram_poison(void)
{
	struct fx f;
	uint8_t b[13];
	uint64_t w[3];

	if (!fx_open(&f, "ga102", 64 * MiB))
		return;
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 0);
	VT_EQ_U64(rd32(&f, 0x700000), VMMFS_SIM_POISON32);
	VT_EQ_U64(rd32(&f, 0x700004), VMMFS_SIM_POISON32);
	VT_EQ_U64(rd64(&f, 0x700008), VMMFS_SIM_POISON64);
	f.be.ops->rd64_block(f.be.priv, 0x700010, w, 3);
	VT_EQ_U64(w[0], VMMFS_SIM_POISON64);
	VT_EQ_U64(w[2], VMMFS_SIM_POISON64);
	vmmfs_sim_vram_peek(f.sim, 3, b, sizeof(b)); /* unaligned: byte phase kept */
	for (size_t i = 0; i < sizeof(b); i++)
		VT_EQ_INT(b[i], (uint8_t)(VMMFS_SIM_POISON64 >> (8 * ((3 + i) & 7))));
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 0); /* reads allocate nothing */
	wr32(&f, 0x700104, 0x12345678u);
	VT_EQ_U64(rd32(&f, 0x700104), 0x12345678u);
	VT_EQ_U64(rd32(&f, 0x700100), VMMFS_SIM_POISON32); /* rest of the block: poison */
	VT_EQ_U64(rd64(&f, 0x70fff8), VMMFS_SIM_POISON64);
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 64 * KiB);
	/* a poke across a block boundary materialises both */
	poke64(&f, 2 * MiB - 4, 0);
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 3 * 64 * KiB);
	VT_EQ_U64(peek64(&f, 2 * MiB - 8), (VMMFS_SIM_POISON64 & 0xffffffffu));
	VT_EQ_U64(peek64(&f, 2 * MiB), VMMFS_SIM_POISON64 & ~0xffffffffull);
	fx_close(&f);
}

struct writer_arg {
	struct fx *f;
	unsigned int id, n;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;

	for (unsigned int i = a->id; i < a->n; i += 4)
		a->f->be.ops->wr64(a->f->be.priv, 0x700000 + 8 * i, 0x5000000000000000ull | i);
	return NULL;
}

/* Threads writing distinct words of the same fresh blocks at once: the
 * first-write poison fill never overwrites another thread's data. */
static void test_vram_concurrent_first_writes(void)
{
	const unsigned int n = (unsigned int)(512 * KiB / 8);
	struct writer_arg a[4];
	pthread_t t[4];
	struct fx f;
	unsigned int bad = 0;

	if (!fx_open(&f, "ga102", 64 * MiB))
		return;
	for (unsigned int i = 0; i < 4; i++) {
		a[i] = (struct writer_arg){ &f, i, n };
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, writer, &a[i]) == 0);
	}
	for (unsigned int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (unsigned int i = 0; i < n; i++)
		bad += peek64(&f, 8ull * i) != (0x5000000000000000ull | i);
	VT_EQ_INT(bad, 0);
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 512 * KiB);
	VT_EQ_U64(counters(&f).writes, n);
	fx_close(&f);
}

static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;

	if (!fp)
		return -1;
	if (fscanf(fp, "%ld %ld", &size, &res) != 2)
		res = -1;
	fclose(fp);
	return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* An 80 GiB board: created at once, written at the very top, resident in
 * kilobytes. */
static void test_vram_big_board(void)
{
	struct fx f;
	long before = rss_kib(), after;

	if (!fx_open(&f, "gh100", 0))
		return;
	VT_EQ_U64(vmmfs_sim_vram_size(f.sim), 80 * GiB);
	set_window(&f, 80 * GiB - MiB);
	VT_EQ_U64(rd32(&f, 0x700000), VMMFS_SIM_POISON32);
	wr64(&f, 0x7ffff8, 0x80808080deadbeefull);
	VT_EQ_U64(rd64(&f, 0x7ffff8), 0x80808080deadbeefull);
	VT_EQ_U64(peek64(&f, 80 * GiB - 8), 0x80808080deadbeefull);
	set_window(&f, 40 * GiB);
	wr32(&f, 0x700000, 1);
	VT_EQ_U64(vmmfs_sim_vram_resident(f.sim), 2 * 64 * KiB);
	after = rss_kib();
	if (before > 0 && after > 0) {
		if (after - before > 16 * 1024)
			fprintf(stderr, "  RSS grew by %ld KiB\n", after - before);
		CU_ASSERT(after - before <= 16 * 1024);
	}
	fx_close(&f);
}

static char tmpdir[64];

static const char *tmp_path(const char *name, char *buf, size_t len)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmmfs-simtest-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			tmpdir[0] = 0;
			CU_FAIL_FATAL("mkdtemp");
		}
	}
	snprintf(buf, len, "%s/%s", tmpdir, name);
	return buf;
}

static void test_vram_file(void)
{
	struct vmmfs_sim_config cfg = { .chip = "ga102", .vram_size = 256 * MiB };
	struct vmmfs_sim *sim = NULL;
	char path[128], err[256];
	uint64_t v;
	struct stat st;

	cfg.vram_file = tmp_path("vram.bin", path, sizeof(path));
	unlink(path);
	VT_EQ_INT(vmmfs_sim_create(&cfg, &sim, err, sizeof(err)), 0);
	if (!sim)
		return;
	v = 0x0123456789abcdefull;
	vmmfs_sim_vram_poke(sim, 0x100000, &v, 8);
	v = 0xfedcba9876543210ull;
	vmmfs_sim_vram_poke(sim, 256 * MiB - 8, &v, 8);
	VT_EQ_U64(vmmfs_sim_vram_resident(sim), 2 * 64 * KiB);
	vmmfs_sim_destroy(sim);
	/* sparse: the file holds far less than 256 MiB */
	CU_ASSERT(stat(path, &st) == 0 && st.st_size > (off_t)(256 * MiB) &&
		  (uint64_t)st.st_blocks * 512 < 16 * MiB);

	sim = NULL;
	VT_EQ_INT(vmmfs_sim_create(&cfg, &sim, err, sizeof(err)), 0);
	if (!sim)
		return;
	VT_EQ_U64(vmmfs_sim_vram_resident(sim), 2 * 64 * KiB);
	vmmfs_sim_vram_peek(sim, 0x100000, &v, 8);
	VT_EQ_U64(v, 0x0123456789abcdefull);
	vmmfs_sim_vram_peek(sim, 0x100008, &v, 8);
	VT_EQ_U64(v, VMMFS_SIM_POISON64); /* same block, never written */
	vmmfs_sim_vram_peek(sim, 256 * MiB - 8, &v, 8);
	VT_EQ_U64(v, 0xfedcba9876543210ull);
	vmmfs_sim_vram_peek(sim, 0x200000, &v, 8);
	VT_EQ_U64(v, VMMFS_SIM_POISON64); /* untouched block */
	{
		/* also through BAR0 */
		struct fx f = { .sim = sim };

		vmmfs_sim_backend(sim, &f.be);
		set_window(&f, MiB);
		VT_EQ_U64(rd64(&f, 0x700000), 0x0123456789abcdefull);
		/* the file is locked while in use */
		VT_EQ_INT(vmmfs_sim_create(&cfg, &(struct vmmfs_sim *){ NULL }, err, sizeof(err)), -EIO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "in use"));
		fx_close(&f);
	}

	/* a file of another VRAM size is refused, naming both sizes */
	cfg.vram_size = 512 * MiB;
	VT_EQ_INT(vmmfs_sim_create(&cfg, &(struct vmmfs_sim *){ NULL }, err, sizeof(err)), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "256 MiB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "512 MiB"));
	cfg.vram_size = 0; /* ga102's 24 GiB */
	VT_EQ_INT(vmmfs_sim_create(&cfg, &(struct vmmfs_sim *){ NULL }, err, sizeof(err)), -EIO);
	unlink(path);

	/* a file that is not ours is never overwritten */
	{
		FILE *fp = fopen(path, "w");

		CU_ASSERT_FATAL(fp != NULL);
		fputs("precious data\n", fp);
		fclose(fp);
		cfg.vram_size = 64 * MiB;
		VT_EQ_INT(vmmfs_sim_create(&cfg, &(struct vmmfs_sim *){ NULL }, err, sizeof(err)), -EIO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a vmmfs VRAM file"));
		CU_ASSERT(stat(path, &st) == 0 && st.st_size == 14);
		unlink(path);
	}
	/* an impossible path */
	cfg.vram_file = "/nonexistent-dir/vram.bin";
	VT_EQ_INT(vmmfs_sim_create(&cfg, &(struct vmmfs_sim *){ NULL }, err, sizeof(err)), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent-dir/vram.bin"));
	rmdir(tmpdir);
	tmpdir[0] = 0;
}

/* ---- test-side page-table encoders (nvidia-mmu.md §5, big-pages §1–§4) ------ */

struct tlev { const char *name; unsigned int lo, bits; };
static const struct tlev tl_v2[] = {
	{ "PD3", 47, 2 }, { "PD2", 38, 9 }, { "PD1", 29, 9 }, { "PD0", 21, 8 }, { "PT", 12, 9 },
};
static const struct tlev tl_v3[] = {
	{ "PD4", 56, 1 }, { "PD3", 47, 9 }, { "PD2", 38, 9 }, { "PD1", 29, 9 }, { "PD0", 21, 8 },
	{ "PT", 12, 9 },
};

struct tt {
	struct fx f;
	int ver;
	const struct tlev *lv;
	unsigned int pd1, pd0, pt; /* depths */
	uint64_t pdb, next;
};

static uint64_t enc_pde(int ver, uint64_t t)
{
	/* aperture VIDEO (PDE encoding 1) at 2:1; v2 address at 32:8 = t >> 12;
	 * v3 address at 51:12 in place, with PCF 2 (cached, no ATS) as nouveau
	 * writes it */
	return ver == 2 ? (t >> 12) << 8 | 1 << 1 : t | 2u << 3 | 1 << 1;
}
static uint64_t enc_dual_lo(int ver, uint64_t lpt)
{
	return ver == 2 ? (lpt >> 8) << 4 | 1 << 1 : lpt | 1 << 1;
}
static uint64_t enc_dual_hi(int ver, uint64_t pt)
{
	return ver == 2 ? (pt >> 12) << 8 | 1 << 1 : pt | 1 << 1;
}
static uint64_t enc_pte(int ver, uint64_t pa, bool ro)
{
	/* VALID, aperture VIDEO (PTE encoding 0); v2 RO bit 6; v3 PCF 0x08 / 0x0c */
	if (ver == 2)
		return 1 | (pa >> 12) << 8 | (ro ? 1u << 6 : 0);
	return 1 | pa | (ro ? 0x0cu : 0x08u) << 3;
}
/* v2: VALID 0 + VOL; v3: VALID 0 + PCF 1 (SPARSE): the same raw value */
static uint64_t sparse_pte(int ver) { (void)ver; return 0x8; }
static uint64_t no4k_pte(int ver) { return ver == 2 ? 0x20 : 0x18; }
static uint64_t dec_pde(int ver, uint64_t e)
{
	return ver == 2 ? (e >> 8 & ((1ull << 25) - 1)) << 12 : e & 0x000ffffffffff000ull;
}
static uint64_t dec_dual_lo(int ver, uint64_t e)
{
	return ver == 2 ? (e >> 4 & ((1ull << 29) - 1)) << 8 : e & 0x000fffffffffff00ull;
}

static uint32_t tidx(const struct tt *t, uint64_t va, unsigned int d)
{
	return (uint32_t)(va >> t->lv[d].lo & ((1ull << t->lv[d].bits) - 1));
}

static uint64_t tt_zalloc(struct tt *t, uint64_t size)
{
	uint64_t a = t->next;
	static const uint8_t zero[4096];

	t->next += (size + 4095) & ~4095ull;
	for (uint64_t o = 0; o < size; o += 4096)
		vmmfs_sim_vram_poke(t->f.sim, a + o, zero, size - o < 4096 ? size - o : 4096);
	return a;
}

#define TT_DATA 0x10000000ull /* pages live from 256 MiB up */

static bool tt_open(struct tt *t, const char *chip)
{
	memset(t, 0, sizeof(*t));
	if (!fx_open(&t->f, chip, 2 * GiB))
		return false;
	t->ver = vmmfs_sim_get_chip(t->f.sim)->mmu_version;
	t->lv = t->ver == 2 ? tl_v2 : tl_v3;
	t->pd0 = t->ver == 2 ? 3 : 4;
	t->pd1 = t->pd0 - 1;
	t->pt = t->pd0 + 1;
	t->next = 0x100000;
	t->pdb = tt_zalloc(t, 4096);
	return true;
}

/* Address of the entry at depth d on the path to va; tables above it are
 * created (zeroed) as needed. */
static uint64_t tt_slot(struct tt *t, uint64_t va, unsigned int d)
{
	uint64_t table = t->pdb;

	for (unsigned int l = 0; l < d; l++) {
		uint64_t slot = table + 8ull * tidx(t, va, l), e = peek64(&t->f, slot);

		if (!e) {
			e = enc_pde(t->ver, tt_zalloc(t, 4096));
			poke64(&t->f, slot, e);
		}
		table = dec_pde(t->ver, e);
	}
	return table + (d == t->pd0 ? 16ull : 8ull) * tidx(t, va, d);
}

static uint64_t tt_spt(struct tt *t, uint64_t va)
{
	uint64_t slot = tt_slot(t, va, t->pd0), hi = peek64(&t->f, slot + 8);

	if (!hi) {
		hi = enc_dual_hi(t->ver, tt_zalloc(t, 4096));
		poke64(&t->f, slot + 8, hi);
	}
	return dec_pde(t->ver, hi);
}

/* LPTs are placed 256-byte aligned but never 4 KiB aligned. */
static uint64_t tt_lpt(struct tt *t, uint64_t va)
{
	uint64_t slot = tt_slot(t, va, t->pd0), lo = peek64(&t->f, slot);

	if (!lo) {
		lo = enc_dual_lo(t->ver, tt_zalloc(t, 4096) + 0x300);
		poke64(&t->f, slot, lo);
	}
	return dec_dual_lo(t->ver, lo);
}

static void tt_spte(struct tt *t, uint64_t va, uint64_t e)
{
	poke64(&t->f, tt_spt(t, va) + 8 * tidx(t, va, t->pt), e);
}
static void tt_lpte(struct tt *t, uint64_t va, uint64_t e)
{
	poke64(&t->f, tt_lpt(t, va) + 8 * (va >> 16 & 31), e);
}
static void tt_map4k(struct tt *t, uint64_t va, uint64_t pa, bool ro)
{
	tt_spte(t, va, enc_pte(t->ver, pa, ro));
}

static struct vmmfs_sim_xlate xl(struct tt *t, uint64_t va, char access)
{
	struct vmmfs_sim_xlate x;

	CU_ASSERT(vmmfs_sim_translate(t->f.sim, t->pdb, va, access, &x) == 0);
	return x;
}

/* Fresh walk (no TLB) */
static struct vmmfs_sim_xlate xl_fresh(struct tt *t, uint64_t va, char access)
{
	vmmfs_sim_tlb_flush_all(t->f.sim);
	return xl(t, va, access);
}

static void expect_ok(struct vmmfs_sim_xlate x, uint64_t pa, uint64_t page_size, bool ro)
{
	VT_EQ_INT(x.result, VMMFS_SIM_XLATE_OK);
	if (x.result != VMMFS_SIM_XLATE_OK)
		fprintf(stderr, "  fault: %s\n", x.reason);
	VT_EQ_U64(x.pa, pa);
	VT_EQ_U64(x.page_size, page_size);
	VT_EQ_INT(x.read_only, ro);
}

static void expect_fault(struct vmmfs_sim_xlate x, enum vmmfs_sim_fault_kind kind, int level,
			 uint32_t index, const char *reason_part)
{
	VT_EQ_INT(x.result, VMMFS_SIM_XLATE_FAULT);
	VT_EQ_INT(x.fault, kind);
	VT_EQ_INT(x.level, level);
	VT_EQ_U64(x.index, index);
	if (reason_part && !strstr(x.reason, reason_part)) {
		fprintf(stderr, "  reason \"%s\" lacks \"%s\"\n", x.reason, reason_part);
		CU_FAIL("fault reason");
	}
}

static void expect_sparse(struct vmmfs_sim_xlate x, uint64_t page_size)
{
	VT_EQ_INT(x.result, VMMFS_SIM_XLATE_SPARSE);
	if (x.result != VMMFS_SIM_XLATE_SPARSE)
		fprintf(stderr, "  %s\n", x.reason);
	VT_EQ_U64(x.page_size, page_size);
}

/* A VA with distinct, non-zero indices at every level of both formats. */
#define VA_V2 (1ull << 47 | 5ull << 38 | 7ull << 29 | 9ull << 21 | 17ull << 12)
#define VA_V3 (1ull << 56 | 3ull << 47 | 5ull << 38 | 7ull << 29 | 9ull << 21 | 17ull << 12)

static uint64_t tt_va(const struct tt *t)
{
	return t->ver == 2 ? VA_V2 : VA_V3;
}

static const char *const mmu_chips[] = { "tu102", "ga102", "gh100", "gb202" };
#define FOR_MMU_CHIPS(t) \
	for (size_t __c = 0; __c < 4; __c++) \
		if (tt_open(&(t), mmu_chips[__c]))

/* Known answers from nvidia-mmu.md §5.4/§5.5. */
static void test_mmu_known_encodings(void)
{
	struct tt t;

	CU_ASSERT_EQUAL(enc_pte(2, 0x12345000, false), 0x01234501);
	CU_ASSERT_EQUAL(enc_pte(2, 0x12345000, true), 0x01234541);
	CU_ASSERT_EQUAL(enc_pde(2, 0x5fffff000), 0x5fffff02);
	CU_ASSERT_EQUAL(enc_pte(3, 0x12345000, false), 0x12345041);
	CU_ASSERT_EQUAL(enc_pte(3, 0x12345000, true), 0x12345061);
	CU_ASSERT_EQUAL(enc_dual_lo(2, 0x1bbbbbbb00) | 0x8, 0x1bbbbbbba);

	FOR_MMU_CHIPS(t) {
		uint64_t va = 0x7000;

		/* the known-answer PTE values, written raw */
		tt_spte(&t, va, t.ver == 2 ? 0x01234501 : 0x12345041);
		expect_ok(xl(&t, va + 0x123, 'w'), 0x12345123, 4096, false);
		tt_spte(&t, va + 0x1000, t.ver == 2 ? 0x01234541 : 0x12345061);
		expect_ok(xl(&t, va + 0x1000, 'r'), 0x12345000, 4096, true);
		/* v3 PTE with kind bits and the ACD PCF (nouveau style) */
		if (t.ver == 3) {
			tt_spte(&t, va + 0x2000, 0x12346000 | 6u << 8 | 0x10u << 3 | 1);
			expect_ok(xl(&t, va + 0x2000, 'w'), 0x12346000, 4096, false);
		}
		fx_close(&t.f);
	}
}

static void test_mmu_4k(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t), pa = TT_DATA + 0x5000;
		struct vmmfs_sim_xlate x;

		tt_map4k(&t, va, pa, false);
		x = xl(&t, va + 0xabc, 'w');
		expect_ok(x, pa + 0xabc, 4096, false);
		VT_EQ_INT(x.from_tlb, false);
		x = xl(&t, va + 0x10, 'r');
		expect_ok(x, pa + 0x10, 4096, false);
		VT_EQ_INT(x.from_tlb, true);
		/* the neighbour PTE is zero: PTE not valid, at the PT, index 18 */
		expect_fault(xl(&t, va + 0x1000, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt, 18,
			     "PT[18]: PTE not valid");
		/* reading tables costs no BAR0 access */
		VT_EQ_U64(counters(&t.f).reads, 0);
		fx_close(&t.f);
	}
}

static void test_mmu_64k(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t) & ~0xffffull, pa = TT_DATA + 0x30000;

		tt_lpte(&t, va, enc_pte(t.ver, pa, false));
		VT_EQ_U64(tt_lpt(&t, va) & 0xfff, 0x300);
		expect_ok(xl(&t, va, 'w'), pa, 64 * KiB, false);
		expect_ok(xl(&t, va + 0xfffc, 'r'), pa + 0xfffc, 64 * KiB, false);
		/* the next LPTE is zero and there is no small table */
		expect_fault(xl(&t, va + 0x10000, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt,
			     (uint32_t)(va >> 16 & 31) + 1, "LPT[");
		/* a valid big PTE shadows the small table */
		tt_map4k(&t, va + 0x1000, TT_DATA + 0x900000, false);
		expect_ok(xl_fresh(&t, va + 0x1000, 'r'), pa + 0x1000, 64 * KiB, false);
		/* all-zero LPTE: the small table decides */
		tt_map4k(&t, va + 0x10000, TT_DATA + 0x901000, true);
		expect_ok(xl_fresh(&t, va + 0x10000, 'r'), TT_DATA + 0x901000, 4096, true);
		expect_fault(xl(&t, va + 0x11000, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt,
			     tidx(&t, va + 0x11000, t.pt), "PT[");
		/* read-only big page */
		tt_lpte(&t, va + 0x20000, enc_pte(t.ver, pa + 0x10000, true));
		expect_ok(xl(&t, va + 0x20008, 'r'), pa + 0x10008, 64 * KiB, true);
		expect_fault(xl(&t, va + 0x20008, 'w'), VMMFS_SIM_FAULT_READ_ONLY, (int)t.pt,
			     (uint32_t)(va >> 16 & 31) + 2, "LPT[");
		/* a big page must be 64 KiB aligned */
		tt_lpte(&t, va + 0x30000, enc_pte(t.ver, pa + 0x1000, false));
		expect_fault(xl(&t, va + 0x30000, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pt,
			     (uint32_t)(va >> 16 & 31) + 3, "aligned");
		fx_close(&t.f);
	}
}

/* NO_4K stops the walk without reading the small table: the small half
 * points beyond VRAM, yet the fault is NO_4K. */
static void test_mmu_no4k(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t) & ~0xffffull, slot;
		uint32_t li = (uint32_t)(va >> 16 & 31);

		tt_lpte(&t, va, no4k_pte(t.ver));
		slot = tt_slot(&t, va, t.pd0);
		poke64(&t.f, slot + 8, enc_dual_hi(t.ver, 64 * GiB));
		expect_fault(xl(&t, va + 0x3000, 'r'), VMMFS_SIM_FAULT_NO_4K, (int)t.pt, li, "LPT[");
		/* the zero LPTE next to it does read the small table: beyond VRAM */
		expect_fault(xl(&t, va + 0x10000, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt,
			     tidx(&t, va + 0x10000, t.pt), "beyond VRAM");
		/* undocumented big PTE encodings: v2 VOL+PRIV, v3 PCF 2 */
		tt_lpte(&t, va + 0x20000, t.ver == 2 ? 0x28 : 0x10);
		expect_fault(xl(&t, va + 0x20000, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pt, li + 2,
			     "undocumented");
		/* a non-zero invalid LPTE without a meaning: not valid */
		tt_lpte(&t, va + 0x30000, 0x1000);
		expect_fault(xl(&t, va + 0x30000, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt, li + 3,
			     "LPT[");
		fx_close(&t.f);
	}
}

static void test_mmu_2m(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t) & ~(2 * MiB - 1), slot = tt_slot(&t, va, t.pd0);
		uint32_t i0 = tidx(&t, va, t.pd0);

		poke64(&t.f, slot, enc_pte(t.ver, 0x40000000, false));
		poke64(&t.f, slot + 8, 0);
		expect_ok(xl(&t, va + 0x1fffff, 'w'), 0x401fffff, 2 * MiB, false);
		expect_ok(xl(&t, va + 0x12345, 'r'), 0x40012345, 2 * MiB, false);
		/* worked example: v2 lo = 0x04000001, v3 nouveau lo = 0x40000081 */
		poke64(&t.f, slot, t.ver == 2 ? 0x04000001 : 0x40000081);
		expect_ok(xl_fresh(&t, va + 8, 'w'), 0x40000008, 2 * MiB, false);
		/* read-only */
		poke64(&t.f, slot, enc_pte(t.ver, 0x40000000, true));
		expect_fault(xl_fresh(&t, va + 8, 'w'), VMMFS_SIM_FAULT_READ_ONLY, (int)t.pd0, i0,
			     "read-only");
		/* misaligned */
		poke64(&t.f, slot, enc_pte(t.ver, 0x40010000, false));
		expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pd0, i0,
			     "aligned");
		/* beyond VRAM (2 GiB) */
		poke64(&t.f, slot, enc_pte(t.ver, 4 * GiB, false));
		expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pd0, i0,
			     "beyond VRAM");
		/* a 2 MiB PTE shadows the tables below (the hi word is ignored) */
		poke64(&t.f, slot, enc_pte(t.ver, 0x40000000, false));
		poke64(&t.f, slot + 8, enc_dual_hi(t.ver, tt_zalloc(&t, 4096)));
		expect_ok(xl_fresh(&t, va + 0x3000, 'r'), 0x40003000, 2 * MiB, false);
		fx_close(&t.f);
	}
}

static void test_mmu_512m(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t) & ~(512 * MiB - 1), slot = tt_slot(&t, va, t.pd1);
		struct vmmfs_sim_xlate x;

		poke64(&t.f, slot, enc_pte(t.ver, GiB, false));
		x = xl(&t, va + 0x1234567, 'w');
		if (vmmfs_sim_get_chip(t.f.sim)->pd1_512m) {
			expect_ok(x, GiB + 0x1234567, 512 * MiB, false);
			/* must be 512 MiB aligned */
			poke64(&t.f, slot, enc_pte(t.ver, GiB + 2 * MiB, false));
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pd1,
				     7, "aligned");
			/* and inside VRAM (2 GiB): the top 512 MiB fits, beyond does not */
			poke64(&t.f, slot, enc_pte(t.ver, 1536 * MiB, false));
			expect_ok(xl_fresh(&t, va, 'r'), 1536 * MiB, 512 * MiB, false);
			poke64(&t.f, slot, enc_pte(t.ver, 2 * GiB, false));
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pd1, 7,
				     "beyond VRAM");
		} else {
			/* Turing: PD1 holds no pages */
			expect_fault(x, VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pd1, 7, "PD1[7]: IS_PTE");
		}
		fx_close(&t.f);
	}
}

static void test_mmu_sparse(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t), sl;

		/* 4 KiB PTE */
		tt_spte(&t, va, sparse_pte(t.ver));
		expect_sparse(xl(&t, va + 5, 'w'), 4 * KiB);
		/* 64 KiB LPTE, over a valid small PTE (sparse LPTE blocks it) */
		tt_map4k(&t, va + 2 * MiB, TT_DATA, false);
		tt_lpte(&t, va + 2 * MiB, sparse_pte(t.ver));
		expect_sparse(xl(&t, va + 2 * MiB, 'r'), 64 * KiB);
		/* PD0 entry: lo = 0x8, hi = 0 */
		sl = tt_slot(&t, va + 4 * MiB, t.pd0);
		poke64(&t.f, sl, 0x8);
		expect_sparse(xl(&t, va + 4 * MiB, 'r'), 2 * MiB);
		if (t.ver == 3) {
			poke64(&t.f, sl, 0x18); /* PCF_BIG 3: sparse, ATS not allowed */
			expect_sparse(xl_fresh(&t, va + 4 * MiB, 'r'), 2 * MiB);
		}
		/* every upper level */
		for (unsigned int d = 0; d < t.pd0; d++) {
			uint64_t v = va ^ (1ull << (t.lv[d].lo + t.lv[d].bits - 1)) ^
				     (d + 1 < t.pd0 ? 1ull << t.lv[d + 1].lo : 0);
			uint64_t s = tt_slot(&t, v, d);

			if (peek64(&t.f, s))
				continue; /* shared with the path above: cannot mark it */
			poke64(&t.f, s, 0x8);
			expect_sparse(xl_fresh(&t, v, 'r'), 1ull << t.lv[d].lo);
			if (t.ver == 3) {
				poke64(&t.f, s, 0x18);
				expect_sparse(xl_fresh(&t, v, 'r'), 1ull << t.lv[d].lo);
			}
			/* aperture 0 without the marker: not present */
			poke64(&t.f, s, t.ver == 2 ? 0x10 : 0x10);
			expect_fault(xl_fresh(&t, v, 'r'), VMMFS_SIM_FAULT_PDE_NOT_PRESENT, (int)d,
				     tidx(&t, v, d), "not present");
		}
		/* v2: VOL and PRIV together is undocumented at a 4 KiB PTE too */
		if (t.ver == 2) {
			tt_spte(&t, va + 0x1000, 0x28);
			expect_fault(xl(&t, va + 0x1000, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pt,
				     18, "undocumented");
		}
		/* NO_4K at a 4 KiB PTE is just not valid */
		tt_spte(&t, va + 0x2000, no4k_pte(t.ver));
		expect_fault(xl(&t, va + 0x2000, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt, 19,
			     "not valid");
		fx_close(&t.f);
	}
}

/* Every fault kind at every level, with its depth and index. */
static void test_mmu_faults_per_level(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t);
		char want[64];

		tt_map4k(&t, va, TT_DATA, false);
		expect_ok(xl(&t, va, 'r'), TT_DATA, 4096, false);
		for (unsigned int d = 0; d <= t.pd0; d++) {
			uint64_t s = tt_slot(&t, va, d), e = peek64(&t.f, s), hi = 0;
			uint32_t i = tidx(&t, va, d);

			if (d == t.pd0)
				hi = peek64(&t.f, s + 8);
			/* not present */
			poke64(&t.f, s, 0);
			if (d == t.pd0)
				poke64(&t.f, s + 8, 0);
			snprintf(want, sizeof(want), "%s[%u]: directory entry not present", t.lv[d].name, i);
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_PDE_NOT_PRESENT, (int)d, i, want);
			/* pointing beyond VRAM: the fault is at the next table */
			if (d < t.pd0) {
				poke64(&t.f, s, enc_pde(t.ver, 8 * GiB));
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)d + 1,
					     tidx(&t, va, d + 1), "beyond VRAM");
				/* a directory in system memory (aperture 2) */
				poke64(&t.f, s, enc_pde(t.ver, 0x1000) ^ 3u << 1);
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)d, i,
					     "system memory");
			} else {
				poke64(&t.f, s + 8, enc_dual_hi(t.ver, 8 * GiB));
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt,
					     tidx(&t, va, t.pt), "PT[17]: table at 0x200000000 is beyond VRAM");
				poke64(&t.f, s + 8, 0);
				poke64(&t.f, s, enc_dual_lo(t.ver, 8 * GiB + 0x100));
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt,
					     (uint32_t)(va >> 16 & 31), "LPT[");
				poke64(&t.f, s, 0);
				poke64(&t.f, s + 8, enc_dual_hi(t.ver, 0x1000) ^ 3u << 1);
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)d, i,
					     "system memory");
			}
			/* IS_PTE where no page can be (everywhere above PD1; PD1 on Turing) */
			if (d < t.pd1 || (d == t.pd1 && !vmmfs_sim_get_chip(t.f.sim)->pd1_512m)) {
				poke64(&t.f, s, enc_pte(t.ver, 0, false));
				expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)d, i,
					     "IS_PTE");
			}
			/* a table that was never zeroed */
			poke64(&t.f, s, VMMFS_SIM_POISON64);
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)d, i,
				     "uninitialised");
			poke64(&t.f, s, e);
			if (d == t.pd0)
				poke64(&t.f, s + 8, hi);
			expect_ok(xl_fresh(&t, va, 'r'), TT_DATA, 4096, false);
		}
		/* leaf level */
		{
			uint64_t s = tt_spt(&t, va) + 8 * 17;

			poke64(&t.f, s, 0);
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt, 17,
				     "PT[17]: PTE not valid");
			poke64(&t.f, s, enc_pte(t.ver, 4 * GiB, false));
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt, 17,
				     "beyond VRAM");
			poke64(&t.f, s, enc_pte(t.ver, TT_DATA, false) | 2u << 1); /* system memory */
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt, 17,
				     "not video memory");
			poke64(&t.f, s, enc_pte(t.ver, TT_DATA, false) | 1u << 1); /* peer */
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_OUT_OF_VRAM, (int)t.pt, 17,
				     "peer");
			poke64(&t.f, s, enc_pte(t.ver, TT_DATA, true));
			expect_fault(xl_fresh(&t, va, 'w'), VMMFS_SIM_FAULT_READ_ONLY, (int)t.pt, 17,
				     "PT[17]: write to a read-only page");
			expect_ok(xl(&t, va, 'r'), TT_DATA, 4096, true);
			poke64(&t.f, s, VMMFS_SIM_POISON64);
			expect_fault(xl_fresh(&t, va, 'r'), VMMFS_SIM_FAULT_BAD_ENCODING, (int)t.pt, 17,
				     "uninitialised");
		}
		/* VA beyond the address space, a PDB beyond VRAM or misaligned */
		expect_fault(xl(&t, 1ull << (t.ver == 2 ? 49 : 57), 'r'), VMMFS_SIM_FAULT_VA_RANGE, 0, 0,
			     t.ver == 2 ? "49-bit" : "57-bit");
		{
			struct vmmfs_sim_xlate x;

			vmmfs_sim_translate(t.f.sim, 4 * GiB, va, 'r', &x);
			expect_fault(x, VMMFS_SIM_FAULT_OUT_OF_VRAM, 0, 1, "beyond VRAM");
			vmmfs_sim_translate(t.f.sim, t.pdb + 8, va, 'r', &x);
			expect_fault(x, VMMFS_SIM_FAULT_BAD_ENCODING, 0, 0, "aligned");
			VT_EQ_INT(vmmfs_sim_translate(t.f.sim, t.pdb, va, 'x', &x), -EINVAL);
		}
		fx_close(&t.f);
	}
}

/* ---- TLB invalidate registers -------------------------------------------------- */

static uint32_t inv_trigger(struct fx *f, uint64_t pdb, uint32_t ctrl)
{
	wr32(f, 0xb830a0, (uint32_t)(pdb >> 12) << 4);
	wr32(f, 0xb830a4, (uint32_t)(pdb >> 40));
	wr32(f, 0xb830b0, ctrl | 1u << 31);
	return ctrl | 1u << 31;
}

/* Polls until TRIGGER clears; returns the number of busy reads, or -1. */
static int inv_poll(struct fx *f, int max)
{
	for (int i = 0; i <= max; i++)
		if (!(rd32(f, 0xb830b0) & 1u << 31))
			return i;
	return -1;
}

static void test_tlb_protocol(void)
{
	const uint64_t pdb = 5ull << 40 | 0x123456000ull;
	struct vmmfs_sim_counters c;
	struct fx f;

	if (!fx_open(&f, "gb202", 64 * MiB))
		return;
	inv_trigger(&f, pdb, 0x81);
	c = counters(&f);
	VT_EQ_U64(c.invalidates_started, 1);
	VT_EQ_U64(c.invalidates_completed, 0);
	VT_EQ_U64(c.last_invalidate, 0x80000081u);
	VT_EQ_U64(c.last_invalidate_pdb, pdb);
	VT_EQ_U64(rd32(&f, 0xb830a0), (uint32_t)(pdb >> 12) << 4);
	VT_EQ_U64(rd32(&f, 0xb830a4), 5);
	/* default: two busy reads, then clear */
	VT_EQ_U64(rd32(&f, 0xb830b0), 0x80000081u);
	VT_EQ_U64(counters(&f).invalidates_completed, 0);
	VT_EQ_U64(rd32(&f, 0xb830b0), 0x80000081u);
	VT_EQ_U64(rd32(&f, 0xb830b0), 0x00000081u);
	VT_EQ_U64(counters(&f).invalidates_completed, 1);
	VT_EQ_U64(rd32(&f, 0xb830b0), 0x00000081u);
	/* exact number of busy reads for several settings */
	for (unsigned int polls = 0; polls < 6; polls++) {
		vmmfs_sim_set_busy_polls(f.sim, polls);
		inv_trigger(&f, pdb, 1);
		VT_EQ_INT(inv_poll(&f, 100), (int)polls);
	}
	c = counters(&f);
	VT_EQ_U64(c.invalidates_started, 7);
	VT_EQ_U64(c.invalidates_completed, 7);
	/* a write without TRIGGER starts nothing */
	wr32(&f, 0xb830b0, 1);
	VT_EQ_U64(counters(&f).invalidates_started, 7);
	VT_EQ_U64(rd32(&f, 0xb830b0), 1);
	/* a second trigger before the first was polled: the first completes */
	vmmfs_sim_set_busy_polls(f.sim, 3);
	inv_trigger(&f, pdb, 1);
	inv_trigger(&f, 0x1000, 3);
	c = counters(&f);
	VT_EQ_U64(c.invalidates_started, 9);
	VT_EQ_U64(c.invalidates_completed, 8);
	VT_EQ_U64(c.last_invalidate_pdb, 0x1000);
	VT_EQ_INT(inv_poll(&f, 100), 3);
	/* stuck: never clears */
	vmmfs_sim_set_faults(f.sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
	inv_trigger(&f, pdb, 1);
	VT_EQ_INT(inv_poll(&f, 5000), -1);
	c = counters(&f);
	VT_EQ_U64(c.invalidates_completed, 9);
	/* released: the busy reads it was started with, then done */
	vmmfs_sim_set_faults(f.sim, 0);
	VT_EQ_INT(inv_poll(&f, 100), 3);
	VT_EQ_U64(counters(&f).invalidates_completed, 10);
	fx_close(&f);
}

/* Builds a 4 KiB mapping va -> pa in a fresh tree at pdb (PT pages from
 * *next), with raw pokes; returns the PTE's address. */
static uint64_t mini_tree(struct tt *t, uint64_t pdb, uint64_t va, uint64_t pa)
{
	uint64_t save = t->pdb, pte;

	t->pdb = pdb;
	tt_map4k(t, va, pa, false);
	pte = tt_spt(t, va) + 8 * tidx(t, va, t->pt);
	t->pdb = save;
	return pte;
}

static void test_tlb_per_pdb(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = 0x200000, pdb_b = tt_zalloc(&t, 4096);
		uint64_t pte_a = mini_tree(&t, t.pdb, va, TT_DATA), pte_b = mini_tree(&t, pdb_b, va, TT_DATA + 0x1000);
		struct vmmfs_sim_xlate x;
		uint64_t entries;

		expect_ok(xl(&t, va, 'r'), TT_DATA, 4096, false);
		vmmfs_sim_translate(t.f.sim, pdb_b, va, 'r', &x);
		expect_ok(x, TT_DATA + 0x1000, 4096, false);
		poke64(&t.f, pte_a, enc_pte(t.ver, TT_DATA + 0x2000, false));
		poke64(&t.f, pte_b, enc_pte(t.ver, TT_DATA + 0x3000, false));
		/* both stale */
		x = xl(&t, va, 'r');
		expect_ok(x, TT_DATA, 4096, false);
		VT_EQ_INT(x.from_tlb, true);
		/* an invalidate for a PDB nobody uses drops nothing */
		entries = vmmfs_sim_tlb_entries(t.f.sim);
		CU_ASSERT(entries >= 2);
		inv_trigger(&t.f, 0x7000000, 1);
		VT_EQ_INT(inv_poll(&t.f, 10), 2);
		VT_EQ_U64(vmmfs_sim_tlb_entries(t.f.sim), entries);
		/* nor one with a system-memory PDB */
		wr32(&t.f, 0xb830a0, (uint32_t)(t.pdb >> 12) << 4 | 2);
		wr32(&t.f, 0xb830b0, 1u << 31 | 1);
		VT_EQ_INT(inv_poll(&t.f, 10), 2);
		VT_EQ_U64(vmmfs_sim_tlb_entries(t.f.sim), entries);
		/* invalidate A: A fresh, B still stale */
		inv_trigger(&t.f, t.pdb, 1);
		/* not before the invalidate completes */
		VT_EQ_U64(rd32(&t.f, 0xb830b0) >> 31, 1);
		x = xl(&t, va, 'r');
		expect_ok(x, TT_DATA, 4096, false);
		VT_EQ_INT(inv_poll(&t.f, 10), 1); /* one busy read left */
		x = xl(&t, va, 'r');
		expect_ok(x, TT_DATA + 0x2000, 4096, false);
		VT_EQ_INT(x.from_tlb, false);
		vmmfs_sim_translate(t.f.sim, pdb_b, va, 'r', &x);
		expect_ok(x, TT_DATA + 0x1000, 4096, false);
		VT_EQ_INT(x.from_tlb, true);
		/* ALL_PDB drops B too, whatever PDB is named */
		inv_trigger(&t.f, t.pdb, 3);
		inv_poll(&t.f, 10);
		vmmfs_sim_translate(t.f.sim, pdb_b, va, 'r', &x);
		expect_ok(x, TT_DATA + 0x3000, 4096, false);
		fx_close(&t.f);
	}
}

/* CACHE_LEVEL: 1 drops leaves only; k >= 2 also PD0 .. PD(k-2). */
static void test_tlb_cache_level(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t), pa2 = TT_DATA + 0x7000, s;
		struct vmmfs_sim_xlate x;

		/* negative caching of an empty PD0 slot */
		tt_slot(&t, va, t.pd0);
		expect_fault(xl(&t, va, 'r'), VMMFS_SIM_FAULT_PDE_NOT_PRESENT, (int)t.pd0,
			     tidx(&t, va, t.pd0), NULL);
		tt_map4k(&t, va, TT_DATA, false);
		x = xl(&t, va, 'r');
		VT_EQ_INT(x.result, VMMFS_SIM_XLATE_FAULT);
		VT_EQ_INT(x.from_tlb, true);
		inv_trigger(&t.f, t.pdb, 1 | 1u << 24); /* PTE_ONLY */
		inv_poll(&t.f, 10);
		x = xl(&t, va, 'r');
		VT_EQ_INT(x.result, VMMFS_SIM_XLATE_FAULT); /* PD0 still cached empty */
		VT_EQ_INT(x.from_tlb, false);
		inv_trigger(&t.f, t.pdb, 1 | 2u << 24); /* UP_TO_PDE0 */
		inv_poll(&t.f, 10);
		expect_ok(xl(&t, va, 'r'), TT_DATA, 4096, false);
		/* move the PT: rewrite the PD1 entry to a copy of the tree below */
		s = tt_slot(&t, va, t.pd1);
		{
			uint64_t pd0 = tt_zalloc(&t, 4096), pt = tt_zalloc(&t, 4096);

			poke64(&t.f, pd0 + 16 * tidx(&t, va, t.pd0) + 8, enc_dual_hi(t.ver, pt));
			poke64(&t.f, pt + 8 * tidx(&t, va, t.pt), enc_pte(t.ver, pa2, false));
			poke64(&t.f, s, enc_pde(t.ver, pd0));
		}
		for (unsigned int k = 1; k <= 3; k++) {
			inv_trigger(&t.f, t.pdb, 1 | k << 24);
			inv_poll(&t.f, 10);
			/* PD1 is dropped from level 3 (UP_TO_PDE1) on */
			expect_ok(xl(&t, va, 'r'), k < 3 ? TT_DATA : pa2, 4096, false);
		}
		/* level 0: everything */
		poke64(&t.f, tt_slot(&t, va, 0), 0);
		inv_trigger(&t.f, t.pdb, 1);
		inv_poll(&t.f, 10);
		expect_fault(xl(&t, va, 'r'), VMMFS_SIM_FAULT_PDE_NOT_PRESENT, 0, tidx(&t, va, 0), NULL);
		fx_close(&t.f);
	}
}

/* A missing flush shows as a stale translation until an invalidate for
 * that PDB completes; 2 MiB entries need PDE0 coverage. */
static void test_tlb_stale(void)
{
	struct tt t;

	FOR_MMU_CHIPS(t) {
		uint64_t va = tt_va(&t), s2m;
		struct vmmfs_sim_xlate x;

		tt_map4k(&t, va, TT_DATA, false);
		expect_ok(xl(&t, va, 'w'), TT_DATA, 4096, false);
		/* unmap without flush: still translates */
		tt_spte(&t, va, 0);
		x = xl(&t, va, 'w');
		expect_ok(x, TT_DATA, 4096, false);
		VT_EQ_INT(x.from_tlb, true);
		/* the invalidate must be polled to completion to take effect */
		inv_trigger(&t.f, t.pdb, 1);
		expect_ok(xl(&t, va, 'w'), TT_DATA, 4096, false);
		inv_poll(&t.f, 10);
		expect_fault(xl(&t, va, 'w'), VMMFS_SIM_FAULT_PTE_INVALID, (int)t.pt, 17, NULL);
		/* downgrade to read-only without flush: writes still allowed */
		tt_map4k(&t, va + 0x1000, TT_DATA, false);
		expect_ok(xl(&t, va + 0x1000, 'w'), TT_DATA, 4096, false);
		tt_map4k(&t, va + 0x1000, TT_DATA, true);
		expect_ok(xl(&t, va + 0x1000, 'w'), TT_DATA, 4096, false);
		inv_trigger(&t.f, t.pdb, 1);
		inv_poll(&t.f, 10);
		expect_fault(xl(&t, va + 0x1000, 'w'), VMMFS_SIM_FAULT_READ_ONLY, (int)t.pt, 18, NULL);
		/* 2 MiB replaced by a PT: PTE_ONLY is not enough */
		s2m = tt_slot(&t, va + 2 * MiB, t.pd0);
		poke64(&t.f, s2m, enc_pte(t.ver, 0x40000000, false));
		expect_ok(xl(&t, va + 2 * MiB, 'r'), 0x40000000 + 0x11000, 2 * MiB, false);
		poke64(&t.f, s2m, 0);
		tt_map4k(&t, va + 2 * MiB, TT_DATA + 0x5000, false);
		inv_trigger(&t.f, t.pdb, 1 | 1u << 24);
		inv_poll(&t.f, 10);
		expect_ok(xl(&t, va + 2 * MiB, 'r'), 0x40000000 + 0x11000, 2 * MiB, false);
		inv_trigger(&t.f, t.pdb, 1 | 2u << 24);
		inv_poll(&t.f, 10);
		expect_ok(xl(&t, va + 2 * MiB, 'r'), TT_DATA + 0x5000, 4096, false);
		/* stuck invalidate: the stale entry survives */
		vmmfs_sim_set_faults(t.f.sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
		tt_spte(&t, va + 2 * MiB, 0);
		inv_trigger(&t.f, t.pdb, 1);
		VT_EQ_INT(inv_poll(&t.f, 50), -1);
		expect_ok(xl(&t, va + 2 * MiB, 'r'), TT_DATA + 0x5000, 4096, false);
		vmmfs_sim_set_faults(t.f.sim, 0);
		fx_close(&t.f);
	}
}

static void test_tlb_disabled_and_bounded(void)
{
	struct tt t;

	if (!tt_open(&t, "ga102"))
		return;
	{
		uint64_t va = 0x40000000;
		struct vmmfs_sim_xlate x;
		unsigned int bad = 0;

		vmmfs_sim_tlb_set_enabled(t.f.sim, false);
		tt_map4k(&t, va, TT_DATA, false);
		expect_ok(xl(&t, va, 'r'), TT_DATA, 4096, false);
		tt_map4k(&t, va, TT_DATA + 0x1000, false);
		x = xl(&t, va, 'r');
		expect_ok(x, TT_DATA + 0x1000, 4096, false);
		VT_EQ_INT(x.from_tlb, false);
		VT_EQ_U64(vmmfs_sim_tlb_entries(t.f.sim), 0);
		vmmfs_sim_tlb_set_enabled(t.f.sim, true);
		/* 20000 distinct pages: the TLB stays bounded, and evictions never
		 * give a wrong answer */
		for (uint64_t i = 0; i < 512; i++)
			tt_map4k(&t, va + i * 4096, TT_DATA + i * 4096, false);
		vmmfs_sim_tlb_flush_all(t.f.sim);
		for (uint64_t i = 0; i < 20000; i++) {
			uint64_t r = i / 512, p = i % 512;

			vmmfs_sim_translate(t.f.sim, t.pdb, va + r * 2 * MiB + p * 4096, 'r', &x);
			if (r == 0)
				bad += x.result != VMMFS_SIM_XLATE_OK || x.pa != TT_DATA + p * 4096;
			else
				bad += x.result != VMMFS_SIM_XLATE_FAULT;
		}
		for (uint64_t p = 0; p < 512; p++) {
			vmmfs_sim_translate(t.f.sim, t.pdb, va + p * 4096, 'r', &x);
			bad += x.result != VMMFS_SIM_XLATE_OK || x.pa != TT_DATA + p * 4096;
		}
		VT_EQ_INT(bad, 0);
		CU_ASSERT(vmmfs_sim_tlb_entries(t.f.sim) <= 2 * 1024 * 4);
		CU_ASSERT(vmmfs_sim_tlb_entries(t.f.sim) >= 1024);
		vmmfs_sim_tlb_flush_all(t.f.sim);
		VT_EQ_U64(vmmfs_sim_tlb_entries(t.f.sim), 0);
	}
	fx_close(&t.f);
}

/* ---- unclaimed registers, vanished device, counters ---------------------------- */

static void test_regs_unclaimed(void)
{
	static const uint32_t offs[] = { 0x4, 0x1704, 0x100e68, 0x6ffffc, 0x800000, 0xb830a8,
					 0xfffffc };
	struct vmmfs_sim_counters c;
	struct fx f;

	if (!fx_open(&f, "tu102", 64 * MiB))
		return;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		wr32(&f, offs[i], 0x12345678);
		VT_EQ_U64(rd32(&f, offs[i]), VMMFS_SIM_BAD_REG);
	}
	VT_EQ_U64(rd64(&f, 0x2000), BAD64);
	c = counters(&f);
	VT_EQ_U64(c.unclaimed_reads, 7 + 1); /* a 64-bit access counts once */
	VT_EQ_U64(c.unclaimed_writes, 7);
	VT_EQ_U64(c.reads, 8);
	VT_EQ_U64(c.writes, 7);
	/* a 64-bit read of BOOT_0: BOOT_0 and the unclaimed word above it */
	VT_EQ_U64(rd64(&f, 0x0), (uint64_t)VMMFS_SIM_BAD_REG << 32 | rd32(&f, 0x0));
	fx_close(&f);
}

static void test_regs_vanished(void)
{
	struct vmmfs_sim_counters c;
	struct fx f;
	uint64_t w[3];

	if (!fx_open(&f, "gh100", 64 * MiB))
		return;
	poke64(&f, 0, 0x77);
	vmmfs_sim_set_faults(f.sim, VMMFS_SIM_FAULT_VANISHED);
	VT_EQ_U64(rd32(&f, 0x0), 0xffffffffu);
	VT_EQ_U64(rd32(&f, 0xa00), 0xffffffffu);
	VT_EQ_U64(rd32(&f, 0x4), 0xffffffffu);
	VT_EQ_U64(rd64(&f, 0x700000), ~0ull);
	VT_EQ_U64(rd32(&f, 0xb830b0), 0xffffffffu);
	f.be.ops->rd64_block(f.be.priv, 0x700000, w, 3);
	VT_EQ_U64(w[0] & w[1] & w[2], ~0ull);
	wr64(&f, 0x700000, 0x99);
	f.be.ops->wr64_block(f.be.priv, 0x700000, w, 3);
	wr32(&f, 0x10fd40, 1);
	inv_trigger(&f, 0x1000, 1);
	c = counters(&f);
	VT_EQ_U64(c.reads, 5 + 3);
	VT_EQ_U64(c.writes, 1 + 3 + 1 + 3);
	VT_EQ_U64(c.invalidates_started, 0);
	VT_EQ_U64(c.window_writes, 0);
	VT_EQ_U64(c.unclaimed_reads, 0);
	vmmfs_sim_set_faults(f.sim, 0);
	VT_EQ_U64(rd64(&f, 0x700000), 0x77); /* writes were dropped, window unmoved */
	VT_EQ_U64(rd32(&f, 0x10fd40), 0);
	fx_close(&f);
}

static void test_regs_counters(void)
{
	struct vmmfs_sim_counters c;
	struct fx f;
	uint64_t w[5] = { 0 };

	if (!fx_open(&f, "ga102", 64 * MiB))
		return;
	rd32(&f, 0x0);
	rd32(&f, 0x700000);
	rd64(&f, 0x700008);
	wr32(&f, 0x700010, 1);
	wr64(&f, 0x700018, 2);
	wr32(&f, 0x1700, 0);
	f.be.ops->rd64_block(f.be.priv, 0x700000, w, 5);
	f.be.ops->wr64_block(f.be.priv, 0x700100, w, 5);
	c = counters(&f);
	VT_EQ_U64(c.reads, 3 + 5);
	VT_EQ_U64(c.read_bytes, 4 + 4 + 8 + 40);
	VT_EQ_U64(c.writes, 3 + 5);
	VT_EQ_U64(c.write_bytes, 4 + 8 + 4 + 40);
	VT_EQ_U64(c.pramin_reads, 2 + 5);
	VT_EQ_U64(c.pramin_writes, 2 + 5);
	VT_EQ_U64(c.window_writes, 1);
	VT_EQ_U64(c.unclaimed_reads + c.unclaimed_writes, 0);
	vmmfs_sim_reset_counters(f.sim);
	c = counters(&f);
	VT_EQ_U64(c.reads + c.writes + c.read_bytes + c.write_bytes + c.pramin_reads +
		  c.pramin_writes + c.window_writes, 0);
	fx_close(&f);
}

static void register_tests(void)
{
	static const struct vt_test chips[] = {
		{ "table", test_chip_table },
		{ "boot registers", test_chip_registers },
		{ "window registers", test_chip_window_registers },
		{ "vram sizes", test_chip_sizes },
		{ "backend", test_chip_backend },
		{ NULL, NULL },
	};
	static const struct vt_test pramin[] = {
		{ "window moves", test_pramin_window_moves },
		{ "across the window end", test_pramin_across_window_end },
		{ "ends of vram", test_pramin_vram_ends },
		{ "target sysmem", test_pramin_target_sysmem },
		{ "misaligned", test_pramin_misaligned },
		{ "blocks", test_pramin_blocks },
		{ NULL, NULL },
	};
	static const struct vt_test vram[] = {
		{ "poison", test_vram_poison },
		{ "concurrent first writes", test_vram_concurrent_first_writes },
		{ "80 GiB board", test_vram_big_board },
		{ "file backed", test_vram_file },
		{ NULL, NULL },
	};
	static const struct vt_test mmu[] = {
		{ "known encodings", test_mmu_known_encodings },
		{ "4k", test_mmu_4k },
		{ "64k", test_mmu_64k },
		{ "no 4k", test_mmu_no4k },
		{ "2m", test_mmu_2m },
		{ "512m", test_mmu_512m },
		{ "sparse", test_mmu_sparse },
		{ "faults per level", test_mmu_faults_per_level },
		{ NULL, NULL },
	};
	static const struct vt_test tlb[] = {
		{ "protocol", test_tlb_protocol },
		{ "per pdb", test_tlb_per_pdb },
		{ "cache level", test_tlb_cache_level },
		{ "stale", test_tlb_stale },
		{ "disabled and bounded", test_tlb_disabled_and_bounded },
		{ NULL, NULL },
	};
	static const struct vt_test regs[] = {
		{ "unclaimed", test_regs_unclaimed },
		{ "vanished", test_regs_vanished },
		{ "counters", test_regs_counters },
		{ NULL, NULL },
	};

	vt_add_suite("sim_chips", chips);
	vt_add_suite("sim_pramin", pramin);
	vt_add_suite("sim_vram", vram);
	vt_add_suite("sim_mmu", mmu);
	vt_add_suite("sim_tlb", tlb);
	vt_add_suite("sim_regs", regs);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
