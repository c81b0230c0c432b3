/* SPDX-License-Identifier: MIT */
/*
 * map_basic — the two-phase map through the public API, and what the GPU
 * then sees.
 *
 * Opens a simulated GPU, creates an address space, prepares a map of a few
 * VRAM pages (this is where everything that can fail happens: VA, page-table
 * pages), executes it (entry writes and one TLB invalidate, no allocation),
 * looks a VA up with vmmfs's walker and asks the GPU's own MMU about it,
 * unmaps, and destroys the address space. Every step prints a short
 * commented line.
 *
 * Build: make examples/map_basic      Run: ./examples/map_basic [CHIP]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <vmmfs/vmmfs.h>

static int die(const char *what, int r)
{
	fprintf(stderr, "map_basic: %s failed: %s\n", what, strerror(-r));
	return 1;
}

static void ask_gpu(struct vmmfs_gpu *gpu, struct vmmfs_vmm *vmm, uint64_t va)
{
	struct vmmfs_hw_translation t;

	if (vmmfs_gpu_hw_translate(gpu, vmmfs_vmm_pdb(vmm), va, &t)) {
		printf("   # the GPU's MMU cannot be asked on this backend\n");
		return;
	}
	if (t.result == VMMFS_HW_OK)
		printf("   GPU MMU   VA 0x%-12" PRIx64 " -> PA 0x%" PRIx64 " (%" PRIu64 " KiB page, %s%s)\n",
		       va, t.pa, t.page_size >> 10, t.read_only ? "read-only" : "read-write",
		       t.from_tlb ? ", from its TLB" : "");
	else
		printf("   GPU MMU   VA 0x%-12" PRIx64 " -> %s: %s\n", va,
		       t.result == VMMFS_HW_SPARSE ? "sparse" : "fault", t.reason);
}

static void show_lookup(struct vmmfs_vmm *vmm, uint64_t va)
{
	static const char *const states[] = { "mapped", "unmapped", "no table", "sparse" };
	struct vmmfs_lookup lk;
	int r = vmmfs_vmm_lookup(vmm, va, &lk);

	if (r) {
		printf("   lookup    VA 0x%" PRIx64 ": error %d\n", va, r);
		return;
	}
	printf("   lookup    VA 0x%-12" PRIx64 " -> %s", va, states[lk.state]);
	if (lk.state == VMMFS_LOOKUP_MAPPED)
		printf(" at PA 0x%" PRIx64 " (%" PRIu64 " KiB page)", lk.pa, lk.page_size >> 10);
	printf(", walk ended at %s[%u] (VRAM 0x%" PRIx64 " = 0x%" PRIx64 ")\n", lk.level, lk.index,
	       lk.entry_addr, lk.entry);
}

int main(int argc, char **argv)
{
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM,
					.chip = argc > 1 ? argv[1] : "ga102",
					.vram_size = 256ull << 20 };
	uint64_t pfns[5] = { 0x100, 0x101, 0x102, 0x103, 0x2000 };
	struct vmmfs_va_placement anywhere = { .kind = VMMFS_VA_ANY, .pa_hint = VMMFS_NO_PA_HINT };
	struct vmmfs_gpu_stats s0, s1;
	struct vmmfs_vmm_stats st;
	struct vmmfs_mapping_info info;
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	struct vmmfs_map_op *op;
	struct vmmfs_mapping *m;
	char err[256];
	uint64_t va;
	int r;

	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
	r = vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err));
	if (r) {
		fprintf(stderr, "map_basic: %s\n", err);
		return 1;
	}
	printf("# a simulated %s: MMU v%d, %d-bit virtual addresses\n", vmmfs_gpu_get_info(gpu)->chipset,
	       vmmfs_gpu_get_info(gpu)->mmu_version, vmmfs_gpu_get_info(gpu)->va_bits);

	r = vmmfs_vmm_create(gpu, &vmm);
	if (r)
		return die("vmmfs_vmm_create", r);
	printf("create      root directory at VRAM 0x%" PRIx64 "   # allocated and zeroed, nothing mapped\n",
	       vmmfs_vmm_pdb(vmm));

	/* Phase 1: may fail; allocates VA and page tables, writes nothing. */
	r = vmmfs_vmm_prepare_map(vmm, 5, &anywhere, &op);
	if (r)
		return die("vmmfs_vmm_prepare_map", r);
	va = vmmfs_map_op_va(op);
	vmmfs_vmm_get_stats(vmm, &st);
	printf("prepare     5 pages at VA 0x%" PRIx64 "   # %" PRIu64 " page-table pages held, no GPU writes yet\n",
	       va, st.pt_pages);

	/* Phase 2: cannot run out of anything; PFN errors leave the op prepared. */
	vmmfs_gpu_get_stats(gpu, &s0);
	r = vmmfs_vmm_execute_map(vmm, op, pfns, 0, &m);
	if (r) {
		vmmfs_vmm_abort_map(vmm, op);
		return die("vmmfs_vmm_execute_map", r);
	}
	vmmfs_gpu_get_stats(gpu, &s1);
	vmmfs_mapping_get_info(m, &info);
	printf("execute     PFNs 0x100-0x103, 0x2000 (%" PRIu64 " runs)   # %" PRIu64 " register writes, "
	       "%" PRIu64 " TLB invalidate (new tables are written whole, once)\n", info.nruns, s1.mmio_writes - s0.mmio_writes,
	       s1.tlb_flushes - s0.tlb_flushes);

	show_lookup(vmm, va + 0x2345);
	ask_gpu(gpu, vmm, va + 0x2345);
	show_lookup(vmm, va + 4 * 0x1000 + 8);
	ask_gpu(gpu, vmm, va + 4 * 0x1000 + 8);
	show_lookup(vmm, va + 5 * 0x1000);
	ask_gpu(gpu, vmm, va + 5 * 0x1000);
	printf("   # vmmfs's walker read the tables from VRAM; the GPU's MMU walked them too\n");

	r = vmmfs_vmm_unmap(vmm, m);
	if (r)
		return die("vmmfs_vmm_unmap", r);
	vmmfs_vmm_get_stats(vmm, &st);
	printf("unmap       # invalid entries, emptied tables unhooked, one invalidate, then freed: "
	       "%" PRIu64 " page-table page left (the root)\n", st.pt_pages);
	ask_gpu(gpu, vmm, va + 0x2345);
	printf("   # the TLB was invalidated: no stale translation survives\n");

	vmmfs_vmm_destroy(vmm);
	printf("destroy     # root freed\n");
	vmmfs_gpu_close(gpu);
	return 0;
}
