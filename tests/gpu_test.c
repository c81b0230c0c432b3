/* SPDX-License-Identifier: MIT */
/*
 * GPU access layer: chip identification, the VRAM size register, PRAMIN
 * window policy, the TLB invalidate sequence — against a recording mock
 * backend (exact register traffic) and against the simulated GPU.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "helper.h"
#include "internal.h"
#include "gpu.h"
#include "pramin.h"
#include "tlb.h"
#include "sim/sim.h"

/* ---- chip table -------------------------------------------------------- */

static void test_identify_every_chip(void)
{
	for (const struct vmmfs_chip *c = vmmfs_chips; c->name; c++) {
		uint32_t b0, b42;
		const struct vmmfs_chip *got = NULL;
		char why[256];

		vmmfs_chip_boot_regs(c, &b0, &b42);
		VT_EQ_INT(vmmfs_chip_identify(b0, b42, &got, why, sizeof(why)), 0);
		CU_ASSERT_PTR_EQUAL(got, c);
		/* BOOT_0's legacy decode agrees with BOOT_42 for these chips. */
		VT_EQ_U64(((b0 >> 24) & 0x1f) | (((b0 >> 8) & 1) << 5), c->code >> 4);
		VT_EQ_U64((b0 >> 20) & 0xf, c->code & 0xf);
		CU_ASSERT(c->mmu_version == (c->code >= 0x180 && c->code < 0x190 ? 3 : c->code >= 0x1a0 ? 3 : 2));
		CU_ASSERT(c->va_bits == (c->mmu_version == 3 ? 57 : 49));
	}
}

static void test_identify_refusals(void)
{
	const struct vmmfs_chip *got = NULL;
	char why[256];

	VT_EQ_INT(vmmfs_chip_identify(0xffffffffu, 0xffffffffu, &got, why, sizeof(why)), -ENODEV);
	CU_ASSERT(strstr(why, "all ones") != NULL);
	/* NV50-era BOOT_0: architecture 0x5 < 0xc. */
	VT_EQ_INT(vmmfs_chip_identify(0x050000a2u, 0, &got, why, sizeof(why)), -ENODEV);
	CU_ASSERT(strstr(why, "older than Fermi") != NULL);
	/* GP102 (Pascal, 0x132): known format, too old. */
	VT_EQ_INT(vmmfs_chip_identify(0x132000a1u, 0x13200000u, &got, why, sizeof(why)), -ENODEV);
	CU_ASSERT(strstr(why, "older than Turing") != NULL);
	/* An architecture vmmfs has never heard of. */
	VT_EQ_INT(vmmfs_chip_identify(0x1f2000a1u, 0x1f200000u, &got, why, sizeof(why)), -ENODEV);
	CU_ASSERT(strstr(why, "unknown chipset 0x1f2") != NULL);
	CU_ASSERT_PTR_NULL(got);
}

static void test_fb_size_register(void)
{
	uint32_t reg;

	VT_EQ_INT(vmmfs_fb_size_encode(24ull << 30, &reg), 0);
	VT_EQ_U64(vmmfs_fb_size_decode(reg), 24ull << 30);
	VT_EQ_INT(vmmfs_fb_size_encode(80ull << 30, &reg), 0);
	VT_EQ_U64(vmmfs_fb_size_decode(reg), 80ull << 30);
	VT_EQ_INT(vmmfs_fb_size_encode(256ull << 20, &reg), 0);
	VT_EQ_U64(vmmfs_fb_size_decode(reg), 256ull << 20);
	VT_EQ_INT(vmmfs_fb_size_encode(0, &reg), -EINVAL);
	VT_EQ_INT(vmmfs_fb_size_encode(1000, &reg), -EINVAL);          /* not MiB */
	VT_EQ_INT(vmmfs_fb_size_encode(127ull << 20, &reg), -EINVAL);  /* 127 > 63, odd */
	/* ECC bit: 15/16 of the raw size. */
	VT_EQ_U64(vmmfs_fb_size_decode((1u << 30) | (1u << 4) | 14u), (16ull << 30) / 16 * 15);
}

/* ---- a recording mock backend --------------------------------------------- */

struct mock {
	uint32_t boot0, boot42, fb;
	uint32_t window;
	uint64_t vram[1u << 19]; /* the first 4 MiB of VRAM */
	unsigned int busy_reads, busy_left;
	bool stuck, gone;
	uint32_t inv_pdb, inv_upper, inv_ctrl;
	unsigned int writes, reads, window_writes;
	uint32_t log_off[64];
	uint32_t log_val[64];
	unsigned int nlog;
};

static uint64_t *mock_word(struct mock *m, uint32_t off)
{
	uint64_t pa = (((uint64_t)m->window & 0xffffff) << 16) + (off - NV_PRAMIN_BASE);

	return pa / 8 < ARRAY_SIZE(m->vram) ? &m->vram[pa / 8] : NULL;
}

static uint32_t mock_rd32(void *p, uint32_t off)
{
	struct mock *m = p;

	m->reads++;
	if (m->gone)
		return 0xffffffffu;
	switch (off) {
	case NV_PMC_BOOT_0: return m->boot0;
	case NV_PMC_BOOT_42: return m->boot42;
	case NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE: return m->fb;
	case NV_PBUS_BAR0_WINDOW: return m->window;
	case NV_VF_PRIV_MMU_INVALIDATE:
		if (m->stuck)
			return m->inv_ctrl;
		if (m->busy_left) {
			m->busy_left--;
			return m->inv_ctrl;
		}
		return m->inv_ctrl & ~0x80000000u;
	}
	return 0xbadf5040u;
}

static void mock_log(struct mock *m, uint32_t off, uint32_t val)
{
	if (m->nlog < ARRAY_SIZE(m->log_off)) {
		m->log_off[m->nlog] = off;
		m->log_val[m->nlog] = val;
		m->nlog++;
	}
}

static void mock_wr32(void *p, uint32_t off, uint32_t val)
{
	struct mock *m = p;

	m->writes++;
	mock_log(m, off, val);
	switch (off) {
	case NV_PBUS_BAR0_WINDOW: m->window = val; m->window_writes++; break;
	case NV_VF_PRIV_MMU_INVALIDATE_PDB: m->inv_pdb = val; break;
	case NV_VF_PRIV_MMU_INVALIDATE_UPPER_PDB: m->inv_upper = val; break;
	case NV_VF_PRIV_MMU_INVALIDATE: m->inv_ctrl = val; m->busy_left = m->busy_reads; break;
	}
}

static uint64_t mock_rd64(void *p, uint32_t off)
{
	struct mock *m = p;
	uint64_t *w = mock_word(m, off);

	m->reads++;
	return m->gone ? UINT64_MAX : w ? *w : 0xbadf5040badf5040ull;
}

static void mock_wr64(void *p, uint32_t off, uint64_t v)
{
	struct mock *m = p;
	uint64_t *w = mock_word(m, off);

	m->writes++;
	if (w)
		*w = v;
}

static void mock_rd64_block(void *p, uint32_t off, uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = mock_rd64(p, off + (uint32_t)(8 * i));
}

static void mock_wr64_block(void *p, uint32_t off, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mock_wr64(p, off + (uint32_t)(8 * i), v[i]);
}

static void mock_describe(void *p, char *buf, size_t len)
{
	snprintf(buf, len, "mock");
}

static void mock_close(void *p)
{
	free(p);
}

static const struct vmmfs_backend_ops mock_ops = {
	.name = "mock", .rd32 = mock_rd32, .wr32 = mock_wr32, .rd64 = mock_rd64, .wr64 = mock_wr64,
	.rd64_block = mock_rd64_block, .wr64_block = mock_wr64_block,
	.describe = mock_describe, .close = mock_close,
};

static struct vmmfs_gpu *open_mock(const char *chip, struct mock **mp)
{
	struct mock *m = calloc(1, sizeof(*m));
	struct vmmfs_backend be = { &mock_ops, m };
	struct vmmfs_gpu *gpu = NULL;
	char err[256];

	vmmfs_chip_boot_regs(vmmfs_chip_by_name(chip), &m->boot0, &m->boot42);
	CU_ASSERT_FATAL(vmmfs_fb_size_encode(1ull << 30, &m->fb) == 0);
	m->busy_reads = 3;
	if (vmmfs_gpu_open_backend(&be, 0, 0, &gpu, err, sizeof(err))) {
		fprintf(stderr, "open_mock: %s\n", err);
		free(m);
		CU_FAIL_FATAL("open mock");
	}
	*mp = m;
	return gpu;
}

static void test_open_identity(void)
{
	struct mock *m;
	struct vmmfs_gpu *gpu = open_mock("ad102", &m);
	const struct vmmfs_gpu_info *info = vmmfs_gpu_get_info(gpu);

	CU_ASSERT_STRING_EQUAL(info->chipset, "AD102");
	CU_ASSERT_STRING_EQUAL(info->arch, "ada");
	VT_EQ_INT(info->mmu_version, 2);
	VT_EQ_INT(info->va_bits, 49);
	VT_EQ_U64(info->vram_size, 1ull << 30);
	VT_EQ_U64(info->vram_end, 1ull << 30);
	CU_ASSERT_STRING_EQUAL(info->backend, "mock");
	vmmfs_gpu_close(gpu);
}

static void test_pramin_window_policy(void)
{
	struct mock *m;
	struct vmmfs_gpu *gpu = open_mock("ga102", &m);
	struct vmmfs_gpu_stats st;
	uint64_t v = 0, words[4];

	m->window_writes = 0;
	/* First access at 0x10008: window starts unknown-but-read (0) and covers it: no move. */
	VT_EQ_INT(pramin_wr64(gpu, 0x10008, 0x1122334455667788ull), 0);
	VT_EQ_INT(m->window_writes, 0);
	VT_EQ_INT(pramin_rd64(gpu, 0x10008, &v), 0);
	VT_EQ_U64(v, 0x1122334455667788ull);
	/* Still inside [0, 1 MiB): no move. */
	VT_EQ_INT(pramin_wr64(gpu, 0xffff8, 1), 0);
	VT_EQ_INT(m->window_writes, 0);
	/* Just past the window: one move, to the address aligned down to 64 KiB. */
	VT_EQ_INT(pramin_wr64(gpu, 0x100000, 2), 0);
	VT_EQ_INT(m->window_writes, 1);
	VT_EQ_U64(m->window, 0x10);
	/* Back below the new base: moves again. */
	VT_EQ_INT(pramin_rd64(gpu, 0xffff8, &v), 0);
	VT_EQ_U64(v, 1);
	VT_EQ_INT(m->window_writes, 2);
	VT_EQ_U64(m->window, 0xf);
	/* A batch that crosses the window's end moves once more, mid-batch. */
	words[0] = 10; words[1] = 11; words[2] = 12; words[3] = 13;
	pramin_lock(gpu);
	VT_EQ_INT(pramin_wr64_n_locked(gpu, 0x1efff0, words, 4), 0);
	pramin_unlock(gpu);
	VT_EQ_INT(m->window_writes, 3);
	VT_EQ_U64(m->window, 0x1f);
	VT_EQ_U64(m->vram[0x1efff0 / 8], 10);
	VT_EQ_U64(m->vram[0x1f0008 / 8], 13);
	vmmfs_gpu_get_stats(gpu, &st);
	VT_EQ_U64(st.window_moves, 3);
	/* Misaligned, beyond VRAM, overflowing: errors, never truncation. */
	VT_EQ_INT(pramin_rd64(gpu, 0x1004, &v), -EINVAL);
	VT_EQ_INT(pramin_rd64(gpu, (1ull << 30) - 4, &v), -ERANGE);
	VT_EQ_INT(pramin_rd64(gpu, 1ull << 30, &v), -ERANGE);
	VT_EQ_INT(pramin_rd64(gpu, UINT64_MAX - 3, &v), -ERANGE);
	VT_EQ_INT(m->window_writes, 3);
	vmmfs_gpu_close(gpu);
}

static void test_pramin_bytes(void)
{
	struct mock *m;
	struct vmmfs_gpu *gpu = open_mock("tu102", &m);
	uint8_t buf[3000], back[3000];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	memset(m->vram, 0xee, sizeof(m->vram));
	/* Unaligned start and length: neighbours of the range stay untouched. */
	VT_EQ_INT(vmmfs_gpu_vram_write(gpu, 0x2003, buf, sizeof(buf)), 0);
	VT_EQ_INT(vmmfs_gpu_vram_read(gpu, 0x2003, back, sizeof(back)), 0);
	CU_ASSERT(memcmp(buf, back, sizeof(buf)) == 0);
	VT_EQ_U64(((uint8_t *)m->vram)[0x2002], 0xee);
	VT_EQ_U64(((uint8_t *)m->vram)[0x2003 + sizeof(buf)], 0xee);
	VT_EQ_INT(vmmfs_gpu_vram_read(gpu, (1ull << 30) - 2, back, 4), -ERANGE);
	vmmfs_gpu_close(gpu);
}

static void test_tlb_sequence(void)
{
	struct mock *m;
	struct vmmfs_gpu *gpu = open_mock("ga102", &m);
	struct vmmfs_gpu_stats st;
	uint64_t pdb = 0x123456789000ull;
	unsigned int reads;

	m->nlog = 0;
	reads = m->reads;
	VT_EQ_INT(tlb_invalidate(gpu, pdb, false), 0);
	VT_EQ_INT(m->nlog, 3);
	VT_EQ_U64(m->log_off[0], NV_VF_PRIV_MMU_INVALIDATE_PDB);
	VT_EQ_U64(m->log_val[0], (uint32_t)(pdb >> 8)); /* ADDR 31:4 = PDB >> 12, aperture VID */
	VT_EQ_U64(m->log_off[1], NV_VF_PRIV_MMU_INVALIDATE_UPPER_PDB);
	VT_EQ_U64(m->log_val[1], pdb >> 40);
	VT_EQ_U64(m->log_off[2], NV_VF_PRIV_MMU_INVALIDATE);
	VT_EQ_U64(m->log_val[2], 0x80000001u);
	/* Three busy reads, then the one that sees TRIGGER clear. */
	VT_EQ_INT(m->reads - reads, 4);
	VT_EQ_INT(tlb_invalidate(gpu, pdb, true), 0);
	VT_EQ_U64(m->log_val[5], 0x80000081u); /* ACK = GLOBALLY when access is removed */
	vmmfs_gpu_get_stats(gpu, &st);
	VT_EQ_U64(st.tlb_flushes, 2);

	m->stuck = true;
	gpu->tlb.timeout_us = 20000;
	VT_EQ_INT(tlb_invalidate(gpu, pdb, false), -ETIMEDOUT);
	vmmfs_gpu_get_stats(gpu, &st);
	VT_EQ_U64(st.tlb_flushes, 2);
	m->stuck = false;
	m->gone = true;
	VT_EQ_INT(tlb_invalidate(gpu, pdb, false), -ENODEV);
	uint64_t v;
	VT_EQ_INT(pramin_rd64(gpu, 0, &v), -ENODEV);
	vmmfs_gpu_close(gpu);
}

static void test_open_errors(void)
{
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM, .chip = "nv50" };
	struct vmmfs_gpu *gpu = NULL;
	char err[256] = "";

	CU_ASSERT(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) == -EINVAL);
	CU_ASSERT(err[0] != '\0');
	cfg.chip = "ga102";
	cfg.vram_size = 1000;
	err[0] = '\0';
	CU_ASSERT(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) == -EINVAL);
	CU_ASSERT(err[0] != '\0');
	cfg.vram_size = 256ull << 20;
	cfg.vram_start = 0x1000;
	cfg.vram_end = 512ull << 20; /* past the end */
	CU_ASSERT(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) == -EINVAL);
	CU_ASSERT(strstr(err, "VRAM range") != NULL);
	cfg.backend = VMMFS_BACKEND_PCI;
	cfg.device = NULL;
	CU_ASSERT(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NULL(gpu);
}

/* ---- on the simulated GPU ---------------------------------------------- */

static void test_sim_every_chip(void)
{
	for (const char *const *n = vt_chips; *n; n++) {
		struct vmmfs_gpu *gpu = vt_open_sim(*n, 64ull << 20);
		const struct vmmfs_gpu_info *info = vmmfs_gpu_get_info(gpu);
		const struct vmmfs_chip *c = vmmfs_chip_by_name(*n);

		CU_ASSERT_STRING_EQUAL(info->chip, *n);
		VT_EQ_U64(info->chipset_code, c->code);
		VT_EQ_U64(info->vram_size, 64ull << 20);
		CU_ASSERT_STRING_EQUAL(info->backend, "sim");
		vmmfs_gpu_close(gpu);
	}
}

static void test_sim_pramin(void)
{
	for (const char *const *n = vt_chips; *n; n++) {
		struct vmmfs_gpu *gpu = vt_open_sim(*n, 64ull << 20);
		uint64_t top = (64ull << 20) - 8, v = 0;
		struct vmmfs_gpu_stats st0, st1;
		uint32_t w;

		/* Untouched VRAM reads as poison. */
		VT_EQ_INT(pramin_rd64(gpu, 0x300000, &v), 0);
		VT_EQ_U64(v, VMMFS_SIM_POISON64);
		/* Ends of VRAM and across a window boundary. */
		VT_EQ_INT(pramin_wr64(gpu, 0, 0xaaaa), 0);
		VT_EQ_INT(pramin_wr64(gpu, top, 0xbbbb), 0);
		VT_EQ_INT(pramin_rd64(gpu, 0, &v), 0);
		VT_EQ_U64(v, 0xaaaa);
		VT_EQ_INT(pramin_rd64(gpu, top, &v), 0);
		VT_EQ_U64(v, 0xbbbb);
		VT_EQ_INT(pramin_wr32(gpu, 0x1ffffc, 0x12345678), 0);
		VT_EQ_INT(pramin_wr32(gpu, 0x200000, 0x9abcdef0), 0);
		VT_EQ_INT(pramin_rd64(gpu, 0x1ffff8, &v), 0);
		VT_EQ_U64(v >> 32, 0x12345678);
		VT_EQ_INT(pramin_rd32(gpu, 0x200000, &w), 0);
		VT_EQ_U64(w, 0x9abcdef0);
		VT_EQ_INT(pramin_rd64(gpu, top + 8, &v), -ERANGE);
		/* Each access counted once, any width. */
		vmmfs_gpu_get_stats(gpu, &st0);
		VT_EQ_INT(pramin_rd32(gpu, 0x200000, &w), 0);
		vmmfs_gpu_get_stats(gpu, &st1);
		VT_EQ_U64(st1.mmio_reads - st0.mmio_reads, 1);
		VT_EQ_U64(st1.mmio_read_bytes - st0.mmio_read_bytes, 4);
		vmmfs_gpu_close(gpu);
	}
}

static void test_sim_tlb(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("gh100", 64ull << 20);
	struct vmmfs_sim *sim = vt_sim(gpu);
	struct vmmfs_sim_counters c;

	VT_EQ_INT(tlb_invalidate(gpu, 0x200000, false), 0);
	vmmfs_sim_get_counters(sim, &c);
	VT_EQ_U64(c.invalidates_completed, 1);
	VT_EQ_U64(c.last_invalidate_pdb, 0x200000);
	VT_EQ_U64(c.last_invalidate, 0x80000001u);
	vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_STUCK_INVALIDATE);
	gpu->tlb.timeout_us = 20000;
	VT_EQ_INT(tlb_invalidate(gpu, 0x200000, false), -ETIMEDOUT);
	vmmfs_sim_set_faults(sim, VMMFS_SIM_FAULT_VANISHED);
	VT_EQ_INT(tlb_invalidate(gpu, 0x200000, false), -ENODEV);
	vmmfs_gpu_close(gpu);
}

static void test_sim_vram_file(void)
{
	char path[] = "/tmp/vmmfs-gpu-test-XXXXXX";
	int fd = mkstemp(path);
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM, .chip = "ga102",
					.vram_size = 64ull << 20, .vram_file = path };
	struct vmmfs_gpu *gpu = NULL;
	char err[256];
	uint64_t v = 0;

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	unlink(path);
	CU_ASSERT_FATAL(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) == 0);
	VT_EQ_INT(vmmfs_gpu_vram_write(gpu, 0x123450, "persist", 8), 0);
	vmmfs_gpu_close(gpu);
	gpu = NULL;
	CU_ASSERT_FATAL(vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err)) == 0);
	char back[8] = "";
	VT_EQ_INT(vmmfs_gpu_vram_read(gpu, 0x123450, back, 8), 0);
	CU_ASSERT_STRING_EQUAL(back, "persist");
	VT_EQ_INT(pramin_rd64(gpu, 0x400000, &v), 0);
	VT_EQ_U64(v, VMMFS_SIM_POISON64);
	vmmfs_gpu_close(gpu);
	unlink(path);
}

static void register_tests(void)
{
	static const struct vt_test chips[] = {
		{ "identify_every_chip", test_identify_every_chip },
		{ "identify_refusals", test_identify_refusals },
		{ "fb_size_register", test_fb_size_register },
		{ NULL, NULL } };
	static const struct vt_test mock[] = {
		{ "open_identity", test_open_identity },
		{ "pramin_window_policy", test_pramin_window_policy },
		{ "pramin_bytes", test_pramin_bytes },
		{ "tlb_sequence", test_tlb_sequence },
		{ "open_errors", test_open_errors },
		{ NULL, NULL } };
	static const struct vt_test sim[] = {
		{ "every_chip", test_sim_every_chip },
		{ "pramin", test_sim_pramin },
		{ "tlb", test_sim_tlb },
		{ "vram_file", test_sim_vram_file },
		{ NULL, NULL } };

	vt_add_suite("chips", chips);
	vt_add_suite("gpu_mock", mock);
	vt_add_suite("gpu_sim", sim);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
