/* SPDX-License-Identifier: MIT */
/*
 * dump_pt — the page-table tree of an address space, level by level.
 *
 * Maps a few things on a simulated GPU — a scattered handful of 4 KiB pages,
 * a 2 MiB-aligned contiguous run (one 2 MiB page), a run that becomes 64 KiB
 * pages plus a 4 KiB tail, and a read-only page — then prints the tree as
 * vmmfs_vmm_dump reads it back from VRAM: one line per directory entry, one
 * line per run of consecutive leaves, indented by depth.
 *
 * Build: make examples/dump_pt      Run: ./examples/dump_pt [CHIP]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <vmmfs/vmmfs.h>

static int print_entry(void *ctx, const struct vmmfs_pt_entry *e)
{
	int *lines = ctx;
	char idx[32];

	if (e->first == e->last)
		snprintf(idx, sizeof(idx), "[%u]", e->first);
	else
		snprintf(idx, sizeof(idx), "[%u-%u]", e->first, e->last);
	printf("%*s%s%s%s%s  VA 0x%" PRIx64 "-0x%" PRIx64 "  ", e->depth * 2, "", e->level, idx,
	       e->half ? " " : "", e->half ? e->half : "", e->va_first, e->va_last);
	switch (e->kind) {
	case VMMFS_PT_TABLE:
		printf("-> table at %s 0x%" PRIx64 "\n", e->aperture, e->addr);
		break;
	case VMMFS_PT_PAGE:
		printf("%" PRIu64 " KiB page%s at %s 0x%" PRIx64 "%s\n", e->page_size >> 10,
		       e->first == e->last ? "" : "s", e->aperture, e->addr, e->read_only ? " ro" : "");
		break;
	case VMMFS_PT_SPARSE:
		printf("sparse (%" PRIu64 " KiB)\n", e->page_size >> 10);
		break;
	}
	++*lines;
	return 0;
}

static int map(struct vmmfs_vmm *vmm, const uint64_t *pfns, uint64_t n, unsigned int flags,
	       struct vmmfs_mapping **m, const char *what)
{
	struct vmmfs_mapping_info info;
	int r = vmmfs_vmm_map_pages(vmm, pfns, n, NULL, flags, m);

	if (r) {
		fprintf(stderr, "dump_pt: mapping %s failed: %s\n", what, strerror(-r));
		return r;
	}
	vmmfs_mapping_get_info(*m, &info);
	printf("# %-34s VA 0x%-10" PRIx64 " %4" PRIu64 " pages: %" PRIu64 " x 4K, %" PRIu64 " x 64K, %"
	       PRIu64 " x 2M\n", what, info.va, info.npages, info.pages_4k, info.pages_64k, info.pages_2m);
	return 0;
}

int main(int argc, char **argv)
{
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM,
					.chip = argc > 1 ? argv[1] : "ga102",
					.vram_size = 256ull << 20 };
	uint64_t scattered[4] = { 0x300, 0x307, 0x308, 0x1234 }, run2m[512], run64k[16 * 3 + 2];
	struct vmmfs_mapping *m[4];
	struct vmmfs_gpu *gpu;
	struct vmmfs_vmm *vmm;
	char err[256];
	int r, lines = 0;

	vmmfs_log_set_stderr_level(VMMFS_LOG_WARN);
	r = vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err));
	if (r) {
		fprintf(stderr, "dump_pt: %s\n", err);
		return 1;
	}
	r = vmmfs_vmm_create(gpu, &vmm);
	if (r) {
		fprintf(stderr, "dump_pt: vmmfs_vmm_create: %s\n", strerror(-r));
		return 1;
	}
	for (int i = 0; i < 512; i++)
		run2m[i] = 0x4000 + (uint64_t)i;          /* PA 64 MiB: 2 MiB aligned */
	for (int i = 0; i < 16 * 3 + 2; i++)
		run64k[i] = 0x5010 + (uint64_t)i;         /* 64 KiB aligned */
	if (map(vmm, scattered, 4, 0, &m[0], "scattered 4 KiB pages") ||
	    map(vmm, run2m, 512, 0, &m[1], "a 2 MiB-aligned run") ||
	    map(vmm, run64k, 16 * 3 + 2, 0, &m[2], "64 KiB-aligned run + tail") ||
	    map(vmm, (uint64_t[]){ 0x9999 }, 1, VMMFS_MAP_READ_ONLY, &m[3], "one read-only page"))
		return 1;

	printf("\n%s page tables of address space 0x%" PRIx64 " (root %s):\n",
	       vmmfs_gpu_get_info(gpu)->chipset, vmmfs_vmm_pdb(vmm),
	       vmmfs_gpu_get_info(gpu)->mmu_version == 3 ? "PD4" : "PD3");
	r = vmmfs_vmm_dump(vmm, print_entry, &lines);
	if (r) {
		fprintf(stderr, "dump_pt: vmmfs_vmm_dump: %s\n", strerror(-r));
		return 1;
	}
	printf("(%d lines)\n", lines);

	for (int i = 0; i < 4; i++)
		vmmfs_vmm_unmap(vmm, m[i]);
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
	return 0;
}
