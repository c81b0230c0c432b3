/* SPDX-License-Identifier: MIT */
/*
 * sim_tour — the simulated GPU and the layers above it, step by step.
 *
 * Opens a simulated GA102 (MMU v2), writes a tiny page-table tree into its
 * VRAM by hand — one 4 KiB page at GPU VA 0x200000 mapped to VRAM PA
 * 0x5000 — and asks the GPU's own MMU to translate it; then does the same
 * with the VMM (prepare, execute, one TLB flush) and removes it again.
 *
 * Build: make examples/sim_tour      Run: ./examples/sim_tour [CHIP]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vmmfs/vmmfs.h>

static int die(const char *what, int r)
{
	fprintf(stderr, "sim_tour: %s failed: %s\n", what, strerror(-r));
	return 1;
}

static void show_translation(struct vmmfs_gpu *gpu, uint64_t pdb, uint64_t va)
{
	struct vmmfs_hw_translation t;

	if (vmmfs_gpu_hw_translate(gpu, pdb, va, &t)) {
		printf("    (the GPU's MMU cannot be asked on this backend)\n");
		return;
	}
	if (t.result == VMMFS_HW_OK)
		printf("    GPU MMU: VA 0x%" PRIx64 " -> PA 0x%" PRIx64 " (%" PRIu64 " KiB page, %s%s)\n", va,
		       t.pa, t.page_size >> 10, t.read_only ? "read-only" : "read-write",
		       t.from_tlb ? ", from its TLB" : "");
	else
		printf("    GPU MMU: VA 0x%" PRIx64 " -> %s: %s\n", va,
		       t.result == VMMFS_HW_SPARSE ? "sparse" : "fault", t.reason);
}

int main(int argc, char **argv)
{
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM,
					.chip = argc > 1 ? argv[1] : "ga102",
					.vram_size = 256ull << 20 };
	const struct vmmfs_gpu_info *info;
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	struct vmmfs_map_op *op;
	struct vmmfs_mapping *m;
	struct vmmfs_gpu_stats st;
	struct vmmfs_lookup lk;
	char err[256];
	uint64_t pfns[4] = { 0x100, 0x101, 0x102, 0x200 };
	int r;

	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
	printf("1. Open a simulated %s. vmmfs reads BOOT_0/BOOT_42 and the VRAM size register\n"
	       "   through the same BAR0 ops a real GPU would get.\n", cfg.chip);
	r = vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err));
	if (r) {
		fprintf(stderr, "sim_tour: %s\n", err);
		return 1;
	}
	info = vmmfs_gpu_get_info(gpu);
	printf("    %s (%s), BOOT_0 0x%08x, BOOT_42 0x%08x, MMU v%d, %d-bit VA, %" PRIu64 " MiB VRAM\n\n",
	       info->chipset, info->arch, info->boot0, info->boot42, info->mmu_version, info->va_bits,
	       info->vram_size >> 20);

	printf("2. VRAM through the PRAMIN window: untouched VRAM reads as poison.\n");
	{
		uint32_t w = 0;
		vmmfs_gpu_vram_read(gpu, 0x7000000, &w, 4);
		printf("    VRAM[0x7000000] = 0x%08x\n\n", w);
	}

	if (info->mmu_version == 2) {
		/* MMU v2 entries, written by hand (see shared hw notes §5.4):
		 *   PDE to a VRAM table at T:  (T >> 4) | 2   (aperture VID = 1 << 1)
		 *   dual PDE at PD0: low word = big half (0: none), high word = small PT PDE
		 *   PTE for VRAM PA P:  (P >> 4) | 1          (VALID, aperture VID = 0) */
		const uint64_t pd3 = 0x10000, pd2 = 0x11000, pd1 = 0x12000, pd0 = 0x13000, pt = 0x14000;
		const uint64_t va = 0x200000, pa = 0x5000;
		uint64_t zero[512] = { 0 }, e;

		printf("3. Build a page-table tree by hand in VRAM (PD3 at 0x%" PRIx64 ") mapping\n"
		       "   VA 0x%" PRIx64 " -> PA 0x%" PRIx64 ", and ask the GPU's MMU.\n", pd3, va, pa);
		for (uint64_t t = pd3; t <= pt; t += 0x1000)
			vmmfs_gpu_vram_write(gpu, t, zero, sizeof(zero));
		e = (pd2 >> 4) | 2; vmmfs_gpu_vram_write(gpu, pd3 + 0 * 8, &e, 8);
		e = (pd1 >> 4) | 2; vmmfs_gpu_vram_write(gpu, pd2 + 0 * 8, &e, 8);
		e = (pd0 >> 4) | 2; vmmfs_gpu_vram_write(gpu, pd1 + 0 * 8, &e, 8);
		e = (pt >> 4) | 2;  vmmfs_gpu_vram_write(gpu, pd0 + 1 * 16 + 8, &e, 8); /* VA[28:21] = 1 */
		e = (pa >> 4) | 1;  vmmfs_gpu_vram_write(gpu, pt + 0 * 8, &e, 8);
		show_translation(gpu, pd3, va);
		show_translation(gpu, pd3, va + 0x1000);
		printf("\n");
	}

	printf("4. Now the VMM does it: prepare (allocates VA and tables), execute (writes\n"
	       "   entries, one TLB invalidate), on a fresh address space.\n");
	r = vmmfs_vmm_create(gpu, &vmm);
	if (r)
		return die("vmmfs_vmm_create", r);
	r = vmmfs_vmm_prepare_map(vmm, 4, NULL, &op);
	if (r)
		return die("vmmfs_vmm_prepare_map", r);
	printf("    prepared 4 pages at VA 0x%" PRIx64 "\n", vmmfs_map_op_va(op));
	r = vmmfs_vmm_execute_map(vmm, op, pfns, 0, &m);
	if (r)
		return die("vmmfs_vmm_execute_map", r);
	for (int i = 0; i < 4; i++) {
		struct vmmfs_mapping_info mi;
		vmmfs_mapping_get_info(m, &mi);
		vmmfs_vmm_lookup(vmm, mi.va + (uint64_t)i * 4096, &lk);
		printf("    walker: VA 0x%" PRIx64 " -> PA 0x%" PRIx64 "\n", mi.va + (uint64_t)i * 4096, lk.pa);
		show_translation(gpu, vmmfs_vmm_pdb(vmm), mi.va + (uint64_t)i * 4096);
	}
	vmmfs_gpu_get_stats(gpu, &st);
	printf("    register traffic so far: %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64
	       " window moves, %" PRIu64 " TLB flushes\n\n", st.mmio_reads, st.mmio_writes, st.window_moves,
	       st.tlb_flushes);

	printf("5. Unmap: invalid PTEs, empty tables freed, one TLB invalidate; the GPU faults.\n");
	{
		struct vmmfs_mapping_info mi;
		vmmfs_mapping_get_info(m, &mi);
		r = vmmfs_vmm_unmap(vmm, m);
		if (r)
			return die("vmmfs_vmm_unmap", r);
		show_translation(gpu, vmmfs_vmm_pdb(vmm), mi.va);
	}
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
	printf("\nDone. The FUSE daemon shows the same through files: see examples/tour.sh.\n");
	return 0;
}
