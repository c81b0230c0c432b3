/* SPDX-License-Identifier: MIT */
/*
 * The driver's chip table and identification from BOOT_0/BOOT_42
 * (nvidia-mmu.md §2). Per-chip differences are rows here, not code.
 */
#include <stdio.h>
#include <string.h>
#include "gpu.h"
#include "internal.h"

#define GiB (1ull << 30)

#define TURING(n, cs, c, mem, lo, hi) \
	{ n, cs, c, "turing", 2, 49, VMMFS_WINDOW_PBUS, 24, false, mem, {0}, lo, hi }
#define AMPERE(n, cs, c, mem, lo, hi) \
	{ n, cs, c, "ampere", 2, 49, VMMFS_WINDOW_PBUS, 24, true, mem, {0}, lo, hi }
#define ADA(n, cs, c, mem, lo, hi) \
	{ n, cs, c, "ada", 2, 49, VMMFS_WINDOW_PBUS, 24, true, mem, {0}, lo, hi }
#define HOPPER(n, cs, c, mem, lo, hi) \
	{ n, cs, c, "hopper", 3, 57, VMMFS_WINDOW_XAL_EP, 22, true, mem, {0}, lo, hi }
#define BLACKWELL(n, cs, c, mem, lo, hi) \
	{ n, cs, c, "blackwell", 3, 57, VMMFS_WINDOW_XAL_EP, 23, true, mem, {0}, lo, hi }

const struct vmmfs_chip vmmfs_chips[] = {
	TURING("tu102", "TU102", 0x162, 24 * GiB, 0x1e02, 0x1e78),
	TURING("tu104", "TU104", 0x164, 16 * GiB, 0x1e81, 0x1ef5),
	TURING("tu106", "TU106", 0x166, 8 * GiB, 0x1f02, 0x1f76),
	TURING("tu117", "TU117", 0x167, 4 * GiB, 0x1f82, 0x1ff9),
	TURING("tu116", "TU116", 0x168, 6 * GiB, 0x2182, 0x21d1),
	AMPERE("ga100", "GA100", 0x170, 80 * GiB, 0x20b0, 0x20fd),
	AMPERE("ga102", "GA102", 0x172, 24 * GiB, 0x2203, 0x2238),
	AMPERE("ga103", "GA103", 0x173, 8 * GiB, 0x2414, 0x2460),
	AMPERE("ga104", "GA104", 0x174, 8 * GiB, 0x2482, 0x24fa),
	AMPERE("ga106", "GA106", 0x176, 12 * GiB, 0x2501, 0x2571),
	AMPERE("ga107", "GA107", 0x177, 4 * GiB, 0x2582, 0x25fb),
	HOPPER("gh100", "GH100", 0x180, 80 * GiB, 0x2313, 0x2339),
	ADA("ad102", "AD102", 0x192, 24 * GiB, 0x2681, 0x26f5),
	ADA("ad103", "AD103", 0x193, 16 * GiB, 0x2704, 0x2730),
	ADA("ad104", "AD104", 0x194, 12 * GiB, 0x2782, 0x27e0),
	ADA("ad106", "AD106", 0x196, 8 * GiB, 0x2803, 0x2860),
	ADA("ad107", "AD107", 0x197, 8 * GiB, 0x28a0, 0x28e1),
	BLACKWELL("gb100", "GB100", 0x1a0, 192 * GiB, 0, 0),
	BLACKWELL("gb102", "GB102", 0x1a2, 192 * GiB, 0, 0),
	BLACKWELL("gb202", "GB202", 0x1b2, 32 * GiB, 0, 0),
	BLACKWELL("gb203", "GB203", 0x1b3, 16 * GiB, 0, 0),
	BLACKWELL("gb205", "GB205", 0x1b5, 12 * GiB, 0, 0),
	BLACKWELL("gb206", "GB206", 0x1b6, 8 * GiB, 0, 0),
	BLACKWELL("gb207", "GB207", 0x1b7, 8 * GiB, 0, 0),
	{ NULL },
};

const struct vmmfs_chip *vmmfs_chip_by_name(const char *name)
{
	for (const struct vmmfs_chip *c = vmmfs_chips; c->name; c++)
		if (!strcasecmp(c->name, name))
			return c;
	return NULL;
}

const struct vmmfs_chip *vmmfs_chip_by_code(unsigned int code)
{
	for (const struct vmmfs_chip *c = vmmfs_chips; c->name; c++)
		if (c->code == code)
			return c;
	return NULL;
}

const struct vmmfs_chip *vmmfs_chip_by_pci_id(uint16_t device_id)
{
	for (const struct vmmfs_chip *c = vmmfs_chips; c->name; c++)
		if (c->pci_id_lo && device_id >= c->pci_id_lo && device_id <= c->pci_id_hi)
			return c;
	return NULL;
}

/* BOOT_0: arch_0 28:24, impl 23:20, arch_1 8, major 7:4, minor 3:0.
 * BOOT_42: arch 29:24, impl 23:20, major 19:16, minor 15:12. */
#define BOOT0_ARCH0   GENMASK(28, 24)
#define BOOT0_IMPL    GENMASK(23, 20)
#define BOOT0_ARCH1   GENMASK(8, 8)
#define BOOT0_MAJOR   GENMASK(7, 4)
#define BOOT0_MINOR   GENMASK(3, 0)
#define BOOT42_ARCH   GENMASK(29, 24)
#define BOOT42_IMPL   GENMASK(23, 20)
#define BOOT42_MAJOR  GENMASK(19, 16)
#define BOOT42_MINOR  GENMASK(15, 12)

int vmmfs_chip_identify(uint32_t boot0, uint32_t boot42, const struct vmmfs_chip **chip,
			char *why, size_t whylen)
{
	unsigned int arch0 = FIELD_GET(BOOT0_ARCH0, boot0);
	unsigned int arch1 = FIELD_GET(BOOT0_ARCH1, boot0);
	unsigned int arch, code;
	const struct vmmfs_chip *c;

	if (boot0 == 0xffffffffu) {
		snprintf(why, whylen, "BAR0 reads all ones (BOOT_0 = 0xffffffff): the device is gone or powered off");
		return -ENODEV;
	}
	if (arch1 == 0 && arch0 < 0xc) {
		snprintf(why, whylen, "BOOT_0 = 0x%08x: a GPU older than Fermi, which vmmfs cannot drive", boot0);
		return -ENODEV;
	}
	arch = FIELD_GET(BOOT42_ARCH, boot42);
	code = (arch << 4) | (unsigned int)FIELD_GET(BOOT42_IMPL, boot42);
	c = vmmfs_chip_by_code(code);
	if (!c) {
		if (arch && arch < 0x16)
			snprintf(why, whylen, "chipset 0x%x (BOOT_42 = 0x%08x) is older than Turing; vmmfs drives Turing and later",
				 code, boot42);
		else
			snprintf(why, whylen, "unknown chipset 0x%x (BOOT_0 = 0x%08x, BOOT_42 = 0x%08x); vmmfs knows %s",
				 code, boot0, boot42, "Turing, Ampere, Ada, Hopper and Blackwell chips");
		return -ENODEV;
	}
	*chip = c;
	return 0;
}

void vmmfs_chip_boot_regs(const struct vmmfs_chip *chip, uint32_t *boot0, uint32_t *boot42)
{
	unsigned int arch = chip->code >> 4, impl = chip->code & 0xf;

	*boot42 = (uint32_t)(FIELD_PREP(BOOT42_ARCH, arch) | FIELD_PREP(BOOT42_IMPL, impl) |
			     FIELD_PREP(BOOT42_MAJOR, 0xa) | FIELD_PREP(BOOT42_MINOR, 1));
	*boot0 = (uint32_t)(FIELD_PREP(BOOT0_ARCH0, arch & 0x1f) | FIELD_PREP(BOOT0_IMPL, impl) |
			    FIELD_PREP(BOOT0_ARCH1, arch >> 5) | FIELD_PREP(BOOT0_MAJOR, 0xa) |
			    FIELD_PREP(BOOT0_MINOR, 1));
}

/* NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE: lower_scale 3:0, lower_mag 9:4,
 * size = (mag << scale) MiB. */
#define FB_SCALE GENMASK(3, 0)
#define FB_MAG   GENMASK(9, 4)

int vmmfs_fb_size_encode(uint64_t bytes, uint32_t *reg)
{
	uint64_t mib;

	if (!bytes || !IS_ALIGNED(bytes, 1ull << 20))
		return -EINVAL;
	mib = bytes >> 20;
	for (unsigned int scale = 0; scale <= 15; scale++) {
		if ((mib >> scale) <= 63 && ((mib >> scale) << scale) == mib) {
			*reg = (uint32_t)(FIELD_PREP(FB_SCALE, scale) | FIELD_PREP(FB_MAG, mib >> scale));
			return 0;
		}
	}
	return -EINVAL;
}

#define FB_ECC   GENMASK(30, 30)

uint64_t vmmfs_fb_size_decode(uint32_t reg)
{
	uint64_t bytes = (FIELD_GET(FB_MAG, reg) << FIELD_GET(FB_SCALE, reg)) << 20;

	/* With ECC on, 1/16 of the memory holds check bits. */
	return FIELD_GET(FB_ECC, reg) ? bytes / 16 * 15 : bytes;
}
