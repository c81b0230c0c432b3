/* SPDX-License-Identifier: MIT */
/*
 * Real-GPU discovery and the BAR0 backend, without hardware.
 *
 * Every test names its libpci access explicitly: a fake sysfs tree built
 * here in a temporary directory (fake_tree_build, from the fake_machine
 * table), or the lspci -x dumps in tests/data. Nothing here opens a real
 * device or reads the real /sys/bus/pci.
 *
 * The fake tree looks like the kernel's: sys/devices/pci0000:NN/.../BDF
 * directories with vendor, device, class, revision, subsystem_*, irq,
 * enable, numa_node, config (256 bytes), resource (13 lines) and, for
 * GPUs, a 16 MiB sparse resource0 holding BOOT_0 (0x0), BOOT_42 (0xa00)
 * and NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE (0x100ce0); sys/bus/pci/devices/BDF
 * symlinks to them; bound devices have a driver symlink into
 * sys/bus/pci/drivers/NAME. libpci 3.9's linux-sysfs method reads
 * vendor/device/class (IDENT, CLASS), resource (BASES, SIZES), the driver
 * link (DRIVER) and config (pci_read_word).
 *
 * `tests/test_pci --make-tree DIR` builds the tree and exits; the dump in
 * tests/data/nvidia-gpus.lspci was made from it with
 * `lspci -A linux-sysfs -O sysfs.path=DIR/sys/bus/pci -D -x`.
 *
 * A plain-file resource0 that passes every check is opened and read, and
 * written only in a private copy of the tree; the VMM never runs on it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper.h"
#include "internal.h"
#include "mem.h"
#include "gpu.h"
#include "pci.h"

#ifndef TESTS_SRCDIR
#define TESTS_SRCDIR "tests"
#endif
#ifndef VMMFS_BIN
#define VMMFS_BIN "./vmmfs"
#endif

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* snprintf for test paths and messages: truncation is a test bug. */
__attribute__((format(printf, 3, 4)))
static int xsnprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "test buffer too small for '%s'\n", fmt);
		abort();
	}
	return n;
}

/* ---- the fake machine ----------------------------------------------------- */

enum bar_kind { BAR_NONE = 0, BAR_MEM32, BAR_MEM64, BAR_MEM64_PREF, BAR_IO };
enum r0_kind { R0_NONE = 0, R0_BOOT, R0_ALL_ONES };

struct fake_bar {
	uint64_t addr, size;
	enum bar_kind kind;
};

struct fake_dev {
	const char *bdf;
	const char *parent;        /* under sys/devices */
	uint16_t vendor, device;
	uint32_t cls;              /* class, subclass, prog-if */
	uint16_t command;
	struct fake_bar bars[4];   /* in BAR order; 64-bit ones take two slots */
	const char *driver;        /* bound kernel driver, or NULL */
	enum r0_kind r0;
	unsigned int chipset;      /* R0_BOOT: (arch << 4) | impl */
	uint64_t vram_mib;
};

#define M32(a, s)  { (a), (s), BAR_MEM32 }
#define M64(a, s)  { (a), (s), BAR_MEM64 }
#define M64P(a, s) { (a), (s), BAR_MEM64_PREF }
#define IO(a, s)   { (a), (s), BAR_IO }

static const struct fake_dev fake_machine[] = {
	/* not NVIDIA: skipped by --list (one of them is even a VGA controller) */
	{ "0000:00:00.0", "pci0000:00", 0x8086, 0x3e30, 0x060000, 0x0006, { { 0 } }, NULL, R0_NONE, 0, 0 },
	{ "0000:00:02.0", "pci0000:00", 0x8086, 0x3e92, 0x030000, 0x0007,
	  { M64(0xa0000000, 16 * MiB), M64P(0xb0000000, 256 * MiB), IO(0xf000, 64) }, "i915", R0_NONE, 0, 0 },
	{ "0000:00:1f.3", "pci0000:00", 0x8086, 0xa348, 0x040300, 0x0006,
	  { M64(0xa1100000, 16384) }, "snd_hda_intel", R0_NONE, 0, 0 },
	/* Turing, drivable; its HDA function is not a GPU */
	{ "0000:01:00.0", "pci0000:00/0000:00:01.0", 0x10de, 0x1e04, 0x030000, 0x0007,
	  { M32(0xf6000000, 16 * MiB), M64P(0xe0000000, 256 * MiB), M64P(0xf0000000, 32 * MiB), IO(0xe000, 128) },
	  NULL, R0_BOOT, 0x162, 11 * 1024 },
	{ "0000:01:00.1", "pci0000:00/0000:00:01.0", 0x10de, 0x10f7, 0x040300, 0x0006,
	  { M32(0xf7080000, 16384) }, "snd_hda_intel", R0_NONE, 0, 0 },
	/* Ampere, Ada, Hopper (3D controller), Blackwell: drivable */
	{ "0000:02:00.0", "pci0000:00/0000:00:01.1", 0x10de, 0x2204, 0x030000, 0x0007,
	  { M32(0xf4000000, 16 * MiB), M64P(0x4000000000, 32 * GiB), M64P(0xf2000000, 32 * MiB), IO(0xd000, 128) },
	  NULL, R0_BOOT, 0x172, 24 * 1024 },
	{ "0000:03:00.0", "pci0000:00/0000:00:01.2", 0x10de, 0x2684, 0x030000, 0x0007,
	  { M32(0xf8000000, 16 * MiB), M64P(0xc0000000, 256 * MiB), M64P(0xd0000000, 32 * MiB), IO(0xc000, 128) },
	  NULL, R0_BOOT, 0x192, 24 * 1024 },
	{ "0000:04:00.0", "pci0000:00/0000:00:03.0", 0x10de, 0x2331, 0x030200, 0x0006,
	  { M32(0xfa000000, 16 * MiB), M64P(0x20000000000, 128 * GiB), M64P(0x22000000000, 32 * MiB) },
	  NULL, R0_BOOT, 0x180, 80 * 1024 },
	{ "0000:05:00.0", "pci0000:00/0000:00:03.1", 0x10de, 0x2b85, 0x030000, 0x0007,
	  { M32(0xfc000000, 16 * MiB), M64P(0x6000000000, 32 * GiB), M64P(0xfd000000, 32 * MiB), IO(0xb000, 128) },
	  NULL, R0_BOOT, 0x1b2, 32 * 1024 },
	/* refused: bound to a driver, BAR0 all ones, memory decoding off */
	{ "0000:21:00.0", "pci0000:20/0000:20:01.0", 0x10de, 0x2484, 0x030000, 0x0007,
	  { M32(0xa2000000, 16 * MiB), M64P(0xa800000000, 256 * MiB), M64P(0xa3000000, 32 * MiB), IO(0x9000, 128) },
	  "nvidia", R0_BOOT, 0x174, 8 * 1024 },
	{ "0000:22:00.0", "pci0000:20/0000:20:01.1", 0x10de, 0x2782, 0x030000, 0x0007,
	  { M32(0xa4000000, 16 * MiB), M64P(0xa810000000, 256 * MiB), M64P(0xa5000000, 32 * MiB), IO(0x8000, 128) },
	  NULL, R0_ALL_ONES, 0, 0 },
	{ "0000:23:00.0", "pci0000:20/0000:20:01.2", 0x10de, 0x1eb8, 0x030200, 0x0000,
	  { M32(0xa6000000, 16 * MiB), M64P(0xa820000000, 256 * MiB), M64P(0xa7000000, 32 * MiB) },
	  NULL, R0_BOOT, 0x164, 16 * 1024 },
	/* BAR0 readable but refused by the chip check: Volta, a future chip
	 * (whose BAR0 is 64-bit, so BAR1 is the third slot) */
	{ "0000:24:00.0", "pci0000:20/0000:20:03.0", 0x10de, 0x1db4, 0x030200, 0x0006,
	  { M32(0xa9000000, 16 * MiB), M64P(0xa830000000, 16 * GiB), M64P(0xaa000000, 32 * MiB) },
	  NULL, R0_BOOT, 0x140, 16 * 1024 },
	{ "0000:25:00.0", "pci0000:20/0000:20:03.1", 0x10de, 0x3000, 0x030000, 0x0007,
	  { M64(0xab000000, 16 * MiB), M64P(0xb000000000, 64 * GiB), M64P(0xac000000, 32 * MiB) },
	  NULL, R0_BOOT, 0x1c0, 32 * 1024 },
};

#define BDF_GOOD     "0000:01:00.0"
#define BDF_HDA      "0000:01:00.1"
#define BDF_AMPERE   "0000:02:00.0"
#define BDF_HOPPER   "0000:04:00.0"
#define BDF_BOUND    "0000:21:00.0"
#define BDF_ONES     "0000:22:00.0"
#define BDF_NODECODE "0000:23:00.0"
#define BDF_VOLTA    "0000:24:00.0"
#define BDF_FUTURE   "0000:25:00.0"
#define BDF_INTEL    "0000:00:02.0"

/* BOOT_0/BOOT_42 for a chipset code, from the register layout in
 * nvidia-mmu.md §2.1 (independent of the driver's chips.c). */
static void fake_boot_regs(unsigned int chipset, uint32_t *boot0, uint32_t *boot42)
{
	uint32_t arch = chipset >> 4, impl = chipset & 0xf;

	*boot42 = arch << 24 | impl << 20 | 0xa << 16 | 1 << 12;
	*boot0 = (arch & 0x1f) << 24 | impl << 20 | (arch >> 5) << 8 | 0xa1;
}

/* NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE: size = (mag 9:4 << scale 3:0) MiB. */
static uint32_t fake_fb_reg(uint64_t mib)
{
	uint32_t scale = 0;

	while (mib > 63) {
		mib >>= 1;
		scale++;
	}
	return (uint32_t)(mib << 4 | scale);
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	xsnprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
	char path[PATH_MAX];
	int fd;
	ssize_t n;

	xsnprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);   /* it may be read-only (a rewrite in a test) */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	chmod(path, mode);
	return n == (ssize_t)len ? 0 : -EIO;
}

__attribute__((format(printf, 3, 4)))
static int write_text(const char *dir, const char *name, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return write_file(dir, name, buf, (size_t)n, 0644);
}

static int pwrite32(int fd, uint64_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	return pwrite(fd, b, 4, (off_t)off) == 4 ? 0 : -EIO;
}

/* resource0: a sparse 16 MiB file with the identification registers. */
static int fake_resource0(const char *path, const struct fake_dev *f)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 16 * MiB))
		r = -errno;
	if (!r && f->r0 == R0_ALL_ONES) {
		uint8_t ones[4096];
		memset(ones, 0xff, sizeof(ones));
		r = pwrite(fd, ones, sizeof(ones), 0) == sizeof(ones) ? 0 : -EIO;
	} else if (!r) {
		uint32_t boot0, boot42;
		fake_boot_regs(f->chipset, &boot0, &boot42);
		r = pwrite32(fd, 0x0, boot0) ?: pwrite32(fd, 0xa00, boot42) ?:
		    pwrite32(fd, 0x100ce0, fake_fb_reg(f->vram_mib));
	}
	close(fd);
	chmod(path, 0600);
	return r;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

/* The device's directory, its config space and its resource file. */
static int fake_device(const char *sys, const struct fake_dev *f, bool multifunction)
{
	static const uint64_t res_flags[] = {
		[BAR_MEM32] = 0x40200, [BAR_MEM64] = 0x140204, [BAR_MEM64_PREF] = 0x14220c, [BAR_IO] = 0x40101,
	};
	char dir[PATH_MAX], link[PATH_MAX], target[PATH_MAX], res[2048];
	uint8_t cfg[256];
	size_t rl = 0;
	int slot = 0, depth = 3, r;

	xsnprintf(dir, sizeof(dir), "%s/devices/%s/%s", sys, f->parent, f->bdf);
	r = mkdir_p(dir);
	if (r)
		return r;
	for (const char *p = f->parent; *p; p++)
		depth += *p == '/';

	memset(cfg, 0, sizeof(cfg));
	put16(cfg + 0x00, f->vendor);
	put16(cfg + 0x02, f->device);
	put16(cfg + 0x04, f->command);
	cfg[0x08] = 0xa1;
	cfg[0x09] = (uint8_t)f->cls;
	cfg[0x0a] = (uint8_t)(f->cls >> 8);
	cfg[0x0b] = (uint8_t)(f->cls >> 16);
	cfg[0x0e] = multifunction ? 0x80 : 0x00;
	for (int i = 0; i < 4 && f->bars[i].kind; i++) {
		const struct fake_bar *b = &f->bars[i];
		bool is64 = b->kind == BAR_MEM64 || b->kind == BAR_MEM64_PREF;
		uint32_t low = b->kind == BAR_IO ? 0x1 : b->kind == BAR_MEM64 ? 0x4 :
			       b->kind == BAR_MEM64_PREF ? 0xc : 0x0;

		put32(cfg + 0x10 + 4 * slot, (uint32_t)b->addr | low);
		rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016llx 0x%016llx 0x%016llx\n",
				       (unsigned long long)b->addr,
				       (unsigned long long)(b->addr + b->size - 1),
				       (unsigned long long)res_flags[b->kind]);
		slot++;
		if (is64) {
			put32(cfg + 0x10 + 4 * slot, (uint32_t)(b->addr >> 32));
			rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016x 0x%016x 0x%016x\n", 0, 0, 0);
			slot++;
		}
	}
	/* the rest of the 6 BARs, the ROM and the 6 SR-IOV lines */
	for (; slot < 13; slot++)
		rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016x 0x%016x 0x%016x\n", 0, 0, 0);
	put16(cfg + 0x2c, f->vendor);
	put16(cfg + 0x2e, 0x1234);
	cfg[0x3c] = 0x0b;
	cfg[0x3d] = 0x01;

	r = write_file(dir, "config", cfg, sizeof(cfg), 0644) ?:
	    write_file(dir, "resource", res, rl, 0444) ?:
	    write_text(dir, "vendor", "0x%04x\n", f->vendor) ?:
	    write_text(dir, "device", "0x%04x\n", f->device) ?:
	    write_text(dir, "class", "0x%06x\n", f->cls) ?:
	    write_text(dir, "revision", "0xa1\n") ?:
	    write_text(dir, "subsystem_vendor", "0x%04x\n", f->vendor) ?:
	    write_text(dir, "subsystem_device", "0x1234\n") ?:
	    write_text(dir, "irq", "%d\n", 16) ?:
	    write_text(dir, "enable", "%d\n", f->command & 0x3 ? 1 : 0) ?:
	    write_text(dir, "numa_node", "-1\n");
	if (r)
		return r;
	if (f->r0 != R0_NONE) {
		xsnprintf(link, sizeof(link), "%s/resource0", dir);
		r = fake_resource0(link, f);
		if (r)
			return r;
	}
	if (f->driver) {
		char drv[PATH_MAX];

		xsnprintf(drv, sizeof(drv), "%s/bus/pci/drivers/%s", sys, f->driver);
		r = mkdir_p(drv) ?: write_text(drv, "bind", "%s", "") ?: write_text(drv, "unbind", "%s", "");
		if (r)
			return r;
		/* relative, as the kernel makes it: up to sys/, then bus/pci/drivers/NAME */
		target[0] = '\0';
		for (int i = 0; i < depth; i++)
			strcat(target, "../");
		strcat(target, "bus/pci/drivers/");
		strcat(target, f->driver);
		xsnprintf(link, sizeof(link), "%s/driver", dir);
		if (symlink(target, link))
			return -errno;
	}
	xsnprintf(link, sizeof(link), "%s/bus/pci/devices/%s", sys, f->bdf);
	xsnprintf(target, sizeof(target), "../../../devices/%s/%s", f->parent, f->bdf);
	return symlink(target, link) ? -errno : 0;
}

/* Builds ROOT/sys/{devices,bus/pci} for fake_machine. 0 or -errno. */
static int fake_tree_build(const char *root)
{
	char sys[PATH_MAX], p[PATH_MAX];
	int r;

	xsnprintf(sys, sizeof(sys), "%s/sys", root);
	xsnprintf(p, sizeof(p), "%s/bus/pci/devices", sys);
	r = mkdir_p(p);
	if (r)
		return r;
	xsnprintf(p, sizeof(p), "%s/bus/pci", sys);
	r = write_text(p, "rescan", "%s", "");
	for (size_t i = 0; !r && i < ARRAY_SIZE(fake_machine); i++) {
		const struct fake_dev *f = &fake_machine[i];
		bool mf = false;

		/* function 0 of a multi-function device says so in its header type */
		for (size_t j = 0; j < ARRAY_SIZE(fake_machine); j++)
			mf |= j != i && !strncmp(fake_machine[j].bdf, f->bdf, 10) && f->bdf[11] == '0';
		r = fake_device(sys, f, mf);
	}
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void tree_remove(const char *root)
{
	if (root[0])
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh tree in its own temporary directory; *root gets the directory,
 * *access the --pci-access value. Fails the test if it cannot. */
static bool tree_new(char root[PATH_MAX], char access[PATH_MAX + 32])
{
	const char *tmp = getenv("TMPDIR");
	int r;

	xsnprintf(root, PATH_MAX, "%s/vmmfs-pci-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root)) {
		root[0] = '\0';
		CU_FAIL_FATAL("mkdtemp");
		return false;
	}
	chmod(root, 0755);   /* traversable, like /sys, for the unprivileged tests */
	r = fake_tree_build(root);
	if (r) {
		fprintf(stderr, "  cannot build the fake sysfs tree in %s: %s\n", root, strerror(-r));
		tree_remove(root);
		CU_FAIL_FATAL("fake_tree_build");
		return false;
	}
	xsnprintf(access, PATH_MAX + 32, "linux-sysfs:%s/sys/bus/pci", root);
	return true;
}

/* The shared, never modified tree (suite setup builds it). */
static char g_root[PATH_MAX];
static char g_access[PATH_MAX + 32];
static char g_sysfs[PATH_MAX + 16];

static int suite_init(void)
{
	const char *tmp = getenv("TMPDIR");

	xsnprintf(g_root, sizeof(g_root), "%s/vmmfs-pci-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(g_root))
		return -1;
	chmod(g_root, 0755);
	if (fake_tree_build(g_root)) {
		tree_remove(g_root);
		return -1;
	}
	xsnprintf(g_access, sizeof(g_access), "linux-sysfs:%s/sys/bus/pci", g_root);
	xsnprintf(g_sysfs, sizeof(g_sysfs), "%s/sys/bus/pci", g_root);
	return 0;
}

static int suite_fini(void)
{
	tree_remove(g_root);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* Splits text into lines (modifies it). Returns the count. */
static int split_lines(char *text, char **lines, int max)
{
	int n = 0;

	for (char *p = text; *p && n < max;) {
		char *nl = strchr(p, '\n');
		lines[n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/* Asserts text equals the expected lines, one by one. */
static void assert_lines(const char *text, const char *const *expected, int n)
{
	char *copy = strdup(text ? text : "");
	char *lines[64];
	int got;

	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	got = split_lines(copy, lines, 64);
	VT_EQ_INT(got, n);
	for (int i = 0; i < MIN(got, n); i++) {
		if (strcmp(lines[i], expected[i]))
			fprintf(stderr, "  line %d is\n    '%s'\n  expected\n    '%s'\n", i + 1, lines[i],
				expected[i]);
		CU_ASSERT_STRING_EQUAL(lines[i], expected[i]);
	}
	if (got != n)
		fprintf(stderr, "  whole text:\n%s\n", text ? text : "(null)");
	free(copy);
}

static void assert_str(const char *actual, const char *expected)
{
	if (strcmp(actual, expected))
		fprintf(stderr, "  got      '%s'\n  expected '%s'\n", actual, expected);
	CU_ASSERT_STRING_EQUAL(actual, expected);
}

/* vmmfs_pci_open that must fail with want and exactly message why. */
static void expect_open_refused(const char *bdf, const char *access, int want, const char *why)
{
	struct vmmfs_backend be = { 0 };
	char err[1024] = "";
	int64_t live = vmmfs_mem_live();
	int r = vmmfs_pci_open(bdf, access, &be, err, sizeof(err));

	VT_EQ_INT(r, want);
	CU_ASSERT_PTR_NULL(be.ops);
	CU_ASSERT_PTR_NULL(strchr(err, '\n'));   /* one line */
	if (why)
		assert_str(err, why);
	if (!r && be.ops)
		be.ops->close(be.priv);
	VT_EQ_INT(vmmfs_mem_live(), live);
}

/* Opens bdf, which must succeed. */
static bool open_ok(const char *bdf, const char *access, struct vmmfs_backend *be)
{
	char err[1024] = "";
	int r = vmmfs_pci_open(bdf, access, be, err, sizeof(err));

	if (r)
		fprintf(stderr, "  vmmfs_pci_open(%s): %d: %s\n", bdf, r, err);
	VT_EQ_INT(r, 0);
	return r == 0 && be->ops;
}

static bool log_contains(const char *needle)
{
	char *text = NULL;
	bool found;

	if (vmmfs_log_snapshot(&text) < 0)
		return false;
	found = strstr(text, needle) != NULL;
	free(text);
	return found;
}

/* ---- --list --------------------------------------------------------------- */

static void test_list_sysfs(void)
{
	char bound[512], ones[512];
	char *text = NULL;
	int64_t live = vmmfs_mem_live();
	int n = vmmfs_pci_list(g_access, &text);

	xsnprintf(bound, sizeof(bound),
		 "0000:21:00.0  10de:2484  GA104?  ampere     2    nvidia  16M@0xa2000000  256M@0xa800000000   "
		 "no: 0000:21:00.0 is bound to the kernel driver nvidia; unbind it first: "
		 "echo 0000:21:00.0 > %s/drivers/nvidia/unbind", g_sysfs);
	xsnprintf(ones, sizeof(ones),
		 "0000:22:00.0  10de:2782  AD104?  ada        2    -       16M@0xa4000000  256M@0xa810000000   "
		 "no: BAR0 of 0000:22:00.0 reads all ones (BOOT_0 = 0xffffffff): the device is gone or powered off; "
		 "power it on (echo on > %s/devices/0000:22:00.0/power/control) or rescan (echo 1 > %s/rescan)",
		 g_sysfs, g_sysfs);
	const char *const expected[] = {
		"ADDRESS       ID         CHIP    ARCH       MMU  DRIVER  BAR0            BAR1                DRIVABLE",
		"0000:01:00.0  10de:1e04  TU102   turing     2    -       16M@0xf6000000  256M@0xe0000000     yes",
		"0000:02:00.0  10de:2204  GA102   ampere     2    -       16M@0xf4000000  32G@0x4000000000    yes",
		"0000:03:00.0  10de:2684  AD102   ada        2    -       16M@0xf8000000  256M@0xc0000000     yes",
		"0000:04:00.0  10de:2331  GH100   hopper     3    -       16M@0xfa000000  128G@0x20000000000  yes",
		"0000:05:00.0  10de:2b85  GB202   blackwell  3    -       16M@0xfc000000  32G@0x6000000000    yes",
		bound,
		ones,
		"0000:23:00.0  10de:1eb8  TU104?  turing     2    -       16M@0xa6000000  256M@0xa820000000   "
		"no: memory decoding is disabled on 0000:23:00.0 (PCI command register 0x0000), so BAR0 does not answer; "
		"vmmfs does not enable it itself: setpci -s 0000:23:00.0 COMMAND=0x02:0x02",
		"0000:24:00.0  10de:1db4  ?       ?          ?    -       16M@0xa9000000  16G@0xa830000000    "
		"no: chipset 0x140 (BOOT_42 = 0x140a1000) is older than Turing; vmmfs drives Turing and later",
		"0000:25:00.0  10de:3000  ?       ?          ?    -       16M@0xab000000  64G@0xb000000000    "
		"no: unknown chipset 0x1c0 (BOOT_0 = 0x1c0000a1, BOOT_42 = 0x1c0a1000); vmmfs knows Turing, Ampere, Ada, Hopper and Blackwell chips",
		"?: not read from the chip (BAR0 not read); guessed from the PCI device ID",
	};

	VT_EQ_INT(n, 10);
	assert_lines(text, expected, (int)ARRAY_SIZE(expected));
	free(text);
	VT_EQ_INT(vmmfs_mem_live(), live);
}

/* The same machine as an lspci -x dump: no driver, no sizes, no BAR0. */
static void test_list_dump(void)
{
	const char *nobar = "no: BAR0 is not reachable with the libpci access method dump; "
			    "use --pci-access=linux-sysfs (the default)";
	char lines[12][512];
	const char *expected[12];
	const char *rows[][2] = {
		{ "0000:01:00.0  10de:1e04  TU102?  turing  2    ?       ?@0xf6000000  ?@0xe0000000     ", nobar },
		{ "0000:02:00.0  10de:2204  GA102?  ampere  2    ?       ?@0xf4000000  ?@0x4000000000   ", nobar },
		{ "0000:03:00.0  10de:2684  AD102?  ada     2    ?       ?@0xf8000000  ?@0xc0000000     ", nobar },
		{ "0000:04:00.0  10de:2331  GH100?  hopper  3    ?       ?@0xfa000000  ?@0x20000000000  ", nobar },
		{ "0000:05:00.0  10de:2b85  ?       ?       ?    ?       ?@0xfc000000  ?@0x6000000000   ", nobar },
		{ "0000:21:00.0  10de:2484  GA104?  ampere  2    ?       ?@0xa2000000  ?@0xa800000000   ", nobar },
		{ "0000:22:00.0  10de:2782  AD104?  ada     2    ?       ?@0xa4000000  ?@0xa810000000   ", nobar },
		{ "0000:23:00.0  10de:1eb8  TU104?  turing  2    ?       ?@0xa6000000  ?@0xa820000000   ",
		  "no: memory decoding is disabled on 0000:23:00.0 (PCI command register 0x0000), so BAR0 does not answer; "
		  "vmmfs does not enable it itself: setpci -s 0000:23:00.0 COMMAND=0x02:0x02" },
		{ "0000:24:00.0  10de:1db4  ?       ?       ?    ?       ?@0xa9000000  ?@0xa830000000   ", nobar },
		{ "0000:25:00.0  10de:3000  ?       ?       ?    ?       ?@0xab000000  ?@0xb000000000   ", nobar },
	};
	char *text = NULL;
	int n;

	expected[0] = "ADDRESS       ID         CHIP    ARCH    MMU  DRIVER  BAR0          BAR1             DRIVABLE";
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		xsnprintf(lines[i], sizeof(lines[i]), "%s%s", rows[i][0], rows[i][1]);
		expected[i + 1] = lines[i];
	}
	expected[11] = "?: not read from the chip (BAR0 not read); guessed from the PCI device ID";
	n = vmmfs_pci_list("dump:" TESTS_SRCDIR "/data/nvidia-gpus.lspci", &text);
	VT_EQ_INT(n, 10);
	assert_lines(text, expected, 12);
	free(text);
}

/* The dump was made from the fake tree: every GPU agrees on ID, BARs and
 * memory decoding (compares the two listings column by column). */
static void test_dump_matches_tree(void)
{
	char *a = NULL, *b = NULL, *la[64], *lb[64];
	int na, nb;

	VT_EQ_INT(vmmfs_pci_list(g_access, &a), 10);
	VT_EQ_INT(vmmfs_pci_list("dump:" TESTS_SRCDIR "/data/nvidia-gpus.lspci", &b), 10);
	CU_ASSERT_FATAL(a && b);
	na = split_lines(a, la, 64);
	nb = split_lines(b, lb, 64);
	VT_EQ_INT(na, nb);
	for (int i = 1; i < MIN(na, nb) - 1; i++) {
		char addr_a[20], id_a[16], bar0_a[40], bar1_a[40], addr_b[20], id_b[16], bar0_b[40], bar1_b[40];
		char skip[64];

		CU_ASSERT_EQUAL_FATAL(sscanf(la[i], "%19s %15s %63s %63s %63s %63s %39s %39s", addr_a, id_a, skip,
					     skip, skip, skip, bar0_a, bar1_a), 8);
		CU_ASSERT_EQUAL_FATAL(sscanf(lb[i], "%19s %15s %63s %63s %63s %63s %39s %39s", addr_b, id_b, skip,
					     skip, skip, skip, bar0_b, bar1_b), 8);
		assert_str(addr_b, addr_a);
		assert_str(id_b, id_a);
		/* sizes differ (the dump has none): compare the addresses */
		assert_str(strchr(bar0_b, '@') ? strchr(bar0_b, '@') : bar0_b, strchr(bar0_a, '@') ? strchr(bar0_a, '@') : bar0_a);
		assert_str(strchr(bar1_b, '@') ? strchr(bar1_b, '@') : bar1_b, strchr(bar1_a, '@') ? strchr(bar1_a, '@') : bar1_a);
		CU_ASSERT_EQUAL(strstr(la[i], "memory decoding") != NULL, strstr(lb[i], "memory decoding") != NULL);
	}
	free(a);
	free(b);
}

static void test_list_no_nvidia(void)
{
	char *text = NULL;

	VT_EQ_INT(vmmfs_pci_list("dump:" TESTS_SRCDIR "/data/no-nvidia.lspci", &text), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, "no NVIDIA GPU found (libpci method dump, 3 PCI devices)\n");
	free(text);
}

/* libpci's fatal errors come back as -EIO with its message; we are still here. */
static void test_list_libpci_errors(void)
{
	char *text = NULL;
	int64_t live = vmmfs_mem_live();

	VT_EQ_INT(vmmfs_pci_list("linux-sysfs:/nonexistent/vmmfs-test", &text), -EIO);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, "libpci (linux-sysfs): Cannot open /nonexistent/vmmfs-test/devices\n");
	free(text);

	VT_EQ_INT(vmmfs_pci_list("dump:/nonexistent/vmmfs-test.lspci", &text), -EIO);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, "libpci (dump): dump: Cannot open /nonexistent/vmmfs-test.lspci: No such file or directory\n");
	free(text);

	VT_EQ_INT(vmmfs_pci_list("dump:" TESTS_SRCDIR "/data/malformed.lspci", &text), -EIO);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, "libpci (dump): dump: Malformed line\n");
	free(text);

	VT_EQ_INT(vmmfs_pci_list("no-such-method", &text), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "unknown libpci access method 'no-such-method' in --pci-access; known: "
					    "linux-sysfs, linux-proc, "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, ", dump"));
	free(text);

	VT_EQ_INT(vmmfs_pci_list("intel-conf1:/x", &text), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, "libpci access method 'intel-conf1' takes no path (--pci-access=intel-conf1:/x)\n");
	free(text);

	VT_EQ_INT(vmmfs_pci_list(":/x", &text), -EINVAL);
	free(text);
	VT_EQ_INT(vmmfs_mem_live(), live);
}

/* A device directory without its resource file: libpci gives up (fatal). */
static void test_list_broken_tree(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], path[PATH_MAX + 64], want[PATH_MAX + 128];
	char *text = NULL;

	if (!tree_new(root, access))
		return;
	xsnprintf(path, sizeof(path), "%s/sys/bus/pci/devices/" BDF_AMPERE "/resource", root);
	CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
	VT_EQ_INT(vmmfs_pci_list(access, &text), -EIO);
	xsnprintf(want, sizeof(want), "libpci (linux-sysfs): Cannot open %s: No such file or directory\n", path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	assert_str(text, want);
	free(text);
	/* libpci reads a device's files only when asked about it: the others
	 * still open; this one fails the same way, and we are still here */
	{
		struct vmmfs_backend be = { 0 };
		if (open_ok(BDF_GOOD, access, &be))
			be.ops->close(be.priv);
	}
	want[strlen(want) - 1] = '\0';
	expect_open_refused(BDF_AMPERE, access, -EIO, want);
	tree_remove(root);
}

/* The libpci guard is per thread: concurrent listings, half of which fail
 * inside libpci, each get their own result. */
static void *list_worker(void *arg)
{
	long bad = 0;

	for (int i = 0; i < 10; i++) {
		char *text = NULL;
		int r;

		if ((i + (int)(intptr_t)arg) % 2) {
			r = vmmfs_pci_list("dump:" TESTS_SRCDIR "/data/malformed.lspci", &text);
			bad += r != -EIO || !text || strcmp(text, "libpci (dump): dump: Malformed line\n");
		} else {
			r = vmmfs_pci_list(g_access, &text);
			bad += r != 10 || !text || !strstr(text, "\n0000:05:00.0  10de:2b85  GB202 ");
		}
		free(text);
	}
	return (void *)bad;
}

static void test_list_threads(void)
{
	pthread_t th[4];
	int64_t live = vmmfs_mem_live();

	for (intptr_t i = 0; i < 4; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, list_worker, (void *)i), 0);
	for (int i = 0; i < 4; i++) {
		void *bad = NULL;

		pthread_join(th[i], &bad);
		VT_EQ_INT((intptr_t)bad, 0);
	}
	VT_EQ_INT(vmmfs_mem_live(), live);
}

/* Every allocation of a listing fails in turn: -ENOMEM or success, never a leak. */
static void test_list_failmalloc(void)
{
	uint64_t count;
	int64_t live = vmmfs_mem_live();
	char *text = NULL;

	vmmfs_fault_reset();
	VT_EQ_INT(vmmfs_pci_list(g_access, &text), 10);
	count = vmmfs_fault_count();
	free(text);
	CU_ASSERT(count >= 4);
	for (uint64_t i = 0; i < count; i++) {
		int r;

		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		text = NULL;
		r = vmmfs_pci_list(g_access, &text);
		vmmfs_fault_reset();
		if (r != -ENOMEM)
			fprintf(stderr, "  allocation %llu failed: vmmfs_pci_list returned %d\n",
				(unsigned long long)i, r);
		VT_EQ_INT(r, -ENOMEM);
		free(text);
		VT_EQ_INT(vmmfs_mem_live(), live);
	}
}

/* ---- vmmfs_pci_open: refusals --------------------------------------------- */

static void test_open_refusals(void)
{
	char why[1024];

	xsnprintf(why, sizeof(why),
		 "0000:21:00.0 is bound to the kernel driver nvidia; unbind it first: echo 0000:21:00.0 > %s/drivers/nvidia/unbind",
		 g_sysfs);
	expect_open_refused(BDF_BOUND, g_access, -EBUSY, why);

	expect_open_refused(BDF_NODECODE, g_access, -EIO,
			    "memory decoding is disabled on 0000:23:00.0 (PCI command register 0x0000), so BAR0 does not answer; "
			    "vmmfs does not enable it itself: setpci -s 0000:23:00.0 COMMAND=0x02:0x02");

	xsnprintf(why, sizeof(why),
		 "BAR0 of 0000:22:00.0 reads all ones (BOOT_0 = 0xffffffff): the device is gone or powered off; "
		 "power it on (echo on > %s/devices/0000:22:00.0/power/control) or rescan (echo 1 > %s/rescan)",
		 g_sysfs, g_sysfs);
	expect_open_refused(BDF_ONES, g_access, -ENODEV, why);

	expect_open_refused(BDF_HDA, g_access, -ENODEV,
			    "0000:01:00.1 is not an NVIDIA GPU function (class 0x0403; vmmfs drives class 0x0300/0x0302, usually function .0)");
	expect_open_refused(BDF_INTEL, g_access, -ENODEV,
			    "0000:00:02.0 is not an NVIDIA device (vendor 0x8086); vmmfs --list shows the NVIDIA GPUs");
	expect_open_refused("0000:77:00.0", g_access, -ENODEV,
			    "no PCI device 0000:77:00.0 (libpci method linux-sysfs sees 14 devices); vmmfs --list shows the NVIDIA GPUs");
	expect_open_refused("65:zz", g_access, -EINVAL,
			    "'65:zz' is not a PCI address: give DOMAIN:BUS:DEVICE.FUNCTION as vmmfs --list prints it, e.g. 0000:65:00.0");
	expect_open_refused("01:00", g_access, -EINVAL, NULL);   /* no function */
	expect_open_refused("", g_access, -EINVAL, "no PCI device given: --device=DOMAIN:BUS:DEVICE.FUNCTION");
	expect_open_refused(BDF_GOOD, "dump:" TESTS_SRCDIR "/data/nvidia-gpus.lspci", -EINVAL,
			    "BAR0 is not reachable with the libpci access method dump; use --pci-access=linux-sysfs (the default)");
	expect_open_refused(BDF_NODECODE, "dump:" TESTS_SRCDIR "/data/nvidia-gpus.lspci", -EIO, NULL);
	expect_open_refused(BDF_GOOD, "linux-sysfs:/nonexistent/vmmfs-test", -EIO,
			    "libpci (linux-sysfs): Cannot open /nonexistent/vmmfs-test/devices");
	expect_open_refused(BDF_GOOD, "bogus", -EINVAL, NULL);
	/* err may be NULL */
	{
		struct vmmfs_backend be = { 0 };
		VT_EQ_INT(vmmfs_pci_open(BDF_BOUND, g_access, &be, NULL, 0), -EBUSY);
	}
}

/* What the kernel does to a BAR it will not map, reproduced without
 * privileges: a write-sealed memfd refuses a shared writable mapping with
 * EPERM, exactly as lockdown does for resource0. */
static void test_open_mmap_refused(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], r0[PATH_MAX + 64], target[64];
	uint32_t boot0, boot42;
	int fd;

	if (!tree_new(root, access))
		return;
	fd = memfd_create("vmmfs-test-bar0", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	fake_boot_regs(0x162, &boot0, &boot42);
	CU_ASSERT_EQUAL_FATAL(ftruncate(fd, 16 * MiB), 0);
	CU_ASSERT_EQUAL_FATAL(pwrite32(fd, 0, boot0), 0);
	CU_ASSERT_EQUAL_FATAL(pwrite32(fd, 0xa00, boot42), 0);
	CU_ASSERT_EQUAL_FATAL(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0);
	xsnprintf(r0, sizeof(r0), "%s/sys/bus/pci/devices/" BDF_GOOD "/resource0", root);
	xsnprintf(target, sizeof(target), "/proc/%d/fd/%d", (int)getpid(), fd);
	CU_ASSERT_EQUAL_FATAL(unlink(r0), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(target, r0), 0);

	expect_open_refused(BDF_GOOD, access, -EPERM,
			    "the kernel refused to map BAR0 of 0000:01:00.0 (Operation not permitted): kernel lockdown forbids it, "
			    "see /sys/kernel/security/lockdown (boot with lockdown=none or Secure Boot off); "
			    "with iomem=strict, boot with iomem=relaxed");
	/* --list only ever maps BAR0 read-only, which the seal allows: the chip
	 * is read from BOOT_0/BOOT_42, not guessed */
	{
		char *text = NULL;

		VT_EQ_INT(vmmfs_pci_list(access, &text), 10);
		if (!text || !strstr(text, "\n0000:01:00.0  10de:1e04  TU102   turing     2    -  "))
			fprintf(stderr, "  list:\n%s\n", text ? text : "(null)");
		CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "\n0000:01:00.0  10de:1e04  TU102   turing     2    -  "));
		free(text);
	}
	close(fd);
	tree_remove(root);
}

/* resource0 is root's (mode 0600, as in sysfs): an unprivileged user gets
 * EACCES and is told to run as root. As root, the check runs in a child
 * that drops to nobody. */
static void test_open_not_root(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], r0[PATH_MAX + 64], want[PATH_MAX + 256];
	char row[PATH_MAX + 512], got[4096], expect[PATH_MAX + 300];
	char *nl;
	int pfd[2], status, r;
	pid_t pid;
	ssize_t n;

	if (!tree_new(root, access))
		return;
	xsnprintf(r0, sizeof(r0), "%s/sys/bus/pci/devices/" BDF_GOOD "/resource0", root);
	xsnprintf(want, sizeof(want),
		  "cannot open %s read-write (Permission denied): BAR0 access needs root: run vmmfs as root", r0);
	xsnprintf(row, sizeof(row),
		  "0000:01:00.0  10de:1e04  TU102?  turing  2    -       16M@0xf6000000  256M@0xe0000000     "
		  "no: cannot open %s read-only (Permission denied): BAR0 access needs root: run vmmfs as root", r0);
	if (geteuid() != 0) {
		/* we own the tree: take every BAR away from ourselves, as sysfs does */
		for (size_t i = 0; i < ARRAY_SIZE(fake_machine); i++) {
			char p[PATH_MAX + 64];

			if (fake_machine[i].r0 == R0_NONE)
				continue;
			xsnprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s/resource0", root, fake_machine[i].bdf);
			CU_ASSERT_EQUAL(chmod(p, 0), 0);
		}
	}
	CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* the unprivileged user: open, then the list's row for the device */
		struct vmmfs_backend be = { 0 };
		char err[1024] = "", *text = NULL, *line;

		close(pfd[0]);
		if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(3);
		r = vmmfs_pci_open(BDF_GOOD, access, &be, err, sizeof(err));
		n = xsnprintf(got, sizeof(got), "%d %s\n", r, err);
		vmmfs_pci_list(access, &text);
		line = text ? strstr(text, "\n0000:01:00.0 ") : NULL;
		if (line) {
			char *end = strchr(line + 1, '\n');
			n += xsnprintf(got + n, sizeof(got) - (size_t)n, "%.*s", (int)(end ? end - line - 1 : 0), line + 1);
		}
		if (write(pfd[1], got, (size_t)n) != n)
			_exit(4);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], got, sizeof(got) - 1);
	close(pfd[0]);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	got[n > 0 ? n : 0] = '\0';
	nl = strchr(got, '\n');
	CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
	*nl = '\0';
	xsnprintf(expect, sizeof(expect), "%d %s", -EACCES, want);
	assert_str(got, expect);
	assert_str(nl + 1, row);
	tree_remove(root);
}

/* BAR0 too small, resource0 too small, BAR0 unassigned. */
static void test_open_bad_bar0(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], dir[PATH_MAX + 64], want[PATH_MAX + 256];
	char res[1024];
	size_t rl = 0;

	if (!tree_new(root, access))
		return;
	xsnprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices/" BDF_AMPERE, root);

	/* the kernel says BAR0 is 8 MiB */
	rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016llx 0x%016llx 0x%016llx\n", 0xf4000000ull,
				0xf47fffffull, 0x40200ull);
	for (int i = 1; i < 13; i++)
		rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016x 0x%016x 0x%016x\n", 0, 0, 0);
	CU_ASSERT_EQUAL_FATAL(write_file(dir, "resource", res, rl, 0444), 0);
	expect_open_refused(BDF_AMPERE, access, -ENODEV,
			    "BAR0 of 0000:02:00.0 is 8192 KiB; Turing and later GPUs have a 16 MiB BAR0: this is not a GPU vmmfs can drive");

	/* the kernel says nothing is assigned */
	rl = 0;
	for (int i = 0; i < 13; i++)
		rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016x 0x%016x 0x%016x\n", 0, 0, 0);
	CU_ASSERT_EQUAL_FATAL(write_file(dir, "resource", res, rl, 0444), 0);
	expect_open_refused(BDF_AMPERE, access, -ENODEV,
			    "0000:02:00.0 has no memory BAR0 assigned; check the kernel log (dmesg) for PCI resource assignment errors");

	/* sizes unknown to libpci, but resource0 itself is short */
	rl = 0;
	rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016llx 0x%016llx 0x%016llx\n", 0xf4000000ull,
				0xf4000000ull, 0x40200ull);
	for (int i = 1; i < 13; i++)
		rl += (size_t)xsnprintf(res + rl, sizeof(res) - rl, "0x%016x 0x%016x 0x%016x\n", 0, 0, 0);
	CU_ASSERT_EQUAL_FATAL(write_file(dir, "resource", res, rl, 0444), 0);
	xsnprintf(res, sizeof(res), "%s/resource0", dir);
	CU_ASSERT_EQUAL_FATAL(truncate(res, 8 * MiB), 0);
	xsnprintf(want, sizeof(want),
		  "%s is 8388608 bytes; Turing and later GPUs have a 16 MiB BAR0: this is not a GPU vmmfs can drive", res);
	expect_open_refused(BDF_AMPERE, access, -ENODEV, want);

	/* no resource0 at all */
	CU_ASSERT_EQUAL_FATAL(unlink(res), 0);
	xsnprintf(want, sizeof(want), "%s does not exist: the device is gone, or BAR0 is not a memory BAR", res);
	expect_open_refused(BDF_AMPERE, access, -ENODEV, want);
	tree_remove(root);
}

/* A tree whose config file is missing: command reads all ones. */
static void test_open_config_unreadable(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], path[PATH_MAX + 64], want[PATH_MAX + 256];

	if (!tree_new(root, access))
		return;
	xsnprintf(path, sizeof(path), "%s/sys/bus/pci/devices/" BDF_AMPERE "/config", root);
	CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
	xsnprintf(want, sizeof(want),
		 "the config space of 0000:02:00.0 reads all ones: the device is gone or powered off; rescan the bus: echo 1 > %s/sys/bus/pci/rescan",
		 root);
	expect_open_refused(BDF_AMPERE, access, -ENODEV, want);
	tree_remove(root);
}

/* ---- vmmfs_pci_open: the backend ------------------------------------------- */

/* Opening a good device reads through the real mmap of resource0. */
static void test_open_reads(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fake_machine); i++) {
		const struct fake_dev *f = &fake_machine[i];
		struct vmmfs_backend be = { 0 };
		uint32_t boot0, boot42;
		char desc[64];

		if (f->r0 != R0_BOOT || f->driver || !(f->command & 2))
			continue;
		if (!open_ok(f->bdf, g_access, &be))
			continue;
		fake_boot_regs(f->chipset, &boot0, &boot42);
		assert_str(be.ops->name, "pci");
		VT_EQ_U64(be.ops->rd32(be.priv, NV_PMC_BOOT_0), boot0);
		VT_EQ_U64(be.ops->rd32(be.priv, NV_PMC_BOOT_42), boot42);
		VT_EQ_U64(be.ops->rd32(be.priv, NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE), fake_fb_reg(f->vram_mib));
		VT_EQ_U64(be.ops->rd64(be.priv, NV_PMC_BOOT_0), boot0);
		VT_EQ_U64(be.ops->rd64(be.priv, 0xa00), boot42);
		be.ops->describe(be.priv, desc, sizeof(desc));
		{
			char want[64];
			xsnprintf(want, sizeof(want), "pci %s", f->bdf);
			assert_str(desc, want);
		}
		be.ops->close(be.priv);
	}
}

/* The short form without domain finds the same device. */
static void test_open_short_bdf(void)
{
	struct vmmfs_backend be = { 0 };
	char desc[64];

	if (!open_ok("1:0.0", g_access, &be))
		return;
	be.ops->describe(be.priv, desc, sizeof(desc));
	assert_str(desc, "pci 0000:01:00.0");
	be.ops->close(be.priv);
}

/* In a private tree: stores reach the file (MAP_SHARED), loads see it,
 * block variants move n words at consecutive offsets. */
static void test_open_rw_private(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], r0[PATH_MAX + 64];
	struct vmmfs_backend be = { 0 };
	uint64_t in[37], out[37], back[37];
	uint8_t raw[8];
	int fd;

	if (!tree_new(root, access))
		return;
	if (!open_ok(BDF_AMPERE, access, &be))
		goto out;
	xsnprintf(r0, sizeof(r0), "%s/sys/bus/pci/devices/" BDF_AMPERE "/resource0", root);
	fd = open(r0, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);

	be.ops->wr32(be.priv, 0x1700, 0x0001abcd);
	CU_ASSERT_EQUAL(pread(fd, raw, 4, 0x1700), 4);
	VT_EQ_U64(raw[0] | raw[1] << 8 | raw[2] << 16 | (uint32_t)raw[3] << 24, 0x0001abcd);
	be.ops->wr64(be.priv, 0x700008, 0x1122334455667788ull);
	CU_ASSERT_EQUAL(pread(fd, raw, 8, 0x700008), 8);
	VT_EQ_U64(raw[0], 0x88);
	VT_EQ_U64(raw[7], 0x11);
	VT_EQ_U64(be.ops->rd32(be.priv, 0x70000c), 0x11223344);

	CU_ASSERT_EQUAL(pwrite32(fd, 0x2000, 0xcafef00d), 0);
	VT_EQ_U64(be.ops->rd32(be.priv, 0x2000), 0xcafef00d);

	for (size_t i = 0; i < ARRAY_SIZE(in); i++)
		in[i] = 0x0123456789abcdefull * (i + 1);
	be.ops->wr64_block(be.priv, 0x7ffed8, in, ARRAY_SIZE(in));   /* ends at 0x800000 */
	be.ops->rd64_block(be.priv, 0x7ffed8, out, ARRAY_SIZE(out));
	CU_ASSERT_EQUAL(pread(fd, back, sizeof(back), 0x7ffed8), (ssize_t)sizeof(back));
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(in)), 0);
	CU_ASSERT_EQUAL(memcmp(in, back, sizeof(in)), 0);
	VT_EQ_U64(be.ops->rd64(be.priv, 0x7ffff8), in[36]);
	be.ops->rd64_block(be.priv, 0x7ffed8, out, 0);               /* n = 0 does nothing */
	/* the last word of the 16 MiB BAR */
	be.ops->wr32(be.priv, 16 * MiB - 4, 0x5a5a5a5a);
	VT_EQ_U64(be.ops->rd32(be.priv, 16 * MiB - 4), 0x5a5a5a5a);
	close(fd);
	be.ops->close(be.priv);
out:
	tree_remove(root);
}

/* The kernel revokes the mapping (here: resource0 shrinks under it, which
 * makes the next access fault with SIGBUS). The backend survives, reads all
 * ones from then on, and logs it once. */
static void test_open_bar_vanishes(void)
{
	char root[PATH_MAX], access[PATH_MAX + 32], r0[PATH_MAX + 64];
	struct vmmfs_backend be = { 0 };
	uint64_t vals[4];
	uint32_t boot0, boot42;

	if (!tree_new(root, access))
		return;
	if (!open_ok(BDF_GOOD, access, &be))
		goto out;
	fake_boot_regs(0x162, &boot0, &boot42);
	VT_EQ_U64(be.ops->rd32(be.priv, 0), boot0);
	xsnprintf(r0, sizeof(r0), "%s/sys/bus/pci/devices/" BDF_GOOD "/resource0", root);
	CU_ASSERT_EQUAL_FATAL(truncate(r0, 0), 0);
	vmmfs_log_clear();
	VT_EQ_U64(be.ops->rd32(be.priv, 0), 0xffffffffu);
	VT_EQ_U64(be.ops->rd32(be.priv, 0xa00), 0xffffffffu);
	VT_EQ_U64(be.ops->rd64(be.priv, 0x700000), ~0ull);
	be.ops->wr32(be.priv, 0x1700, 0);                 /* dropped, no fault */
	be.ops->rd64_block(be.priv, 0x700000, vals, 4);
	VT_EQ_U64(vals[3], ~0ull);
	CU_ASSERT(log_contains("pci 0000:01:00.0: BAR0 vanished"));
	{
		char *text = NULL;
		const char *p;
		int count = 0;

		CU_ASSERT_FATAL(vmmfs_log_snapshot(&text) >= 0);
		for (p = text; (p = strstr(p, "BAR0 vanished")); p++)
			count++;
		VT_EQ_INT(count, 1);
		free(text);
	}
	be.ops->close(be.priv);
out:
	tree_remove(root);
}

/* Two devices open at once are independent mappings. */
static void test_open_two(void)
{
	struct vmmfs_backend a = { 0 }, b = { 0 };
	uint32_t boot0a, boot0b, boot42;

	if (!open_ok(BDF_GOOD, g_access, &a))
		return;
	if (open_ok(BDF_HOPPER, g_access, &b)) {
		fake_boot_regs(0x162, &boot0a, &boot42);
		fake_boot_regs(0x180, &boot0b, &boot42);
		VT_EQ_U64(a.ops->rd32(a.priv, 0), boot0a);
		VT_EQ_U64(b.ops->rd32(b.priv, 0), boot0b);
		b.ops->close(b.priv);
	}
	a.ops->close(a.priv);
}

static void test_open_failmalloc(void)
{
	struct vmmfs_backend be = { 0 };
	char err[1024];
	uint64_t count;
	int64_t live = vmmfs_mem_live();

	vmmfs_fault_reset();
	CU_ASSERT_EQUAL_FATAL(vmmfs_pci_open(BDF_GOOD, g_access, &be, err, sizeof(err)), 0);
	count = vmmfs_fault_count();
	be.ops->close(be.priv);
	CU_ASSERT(count >= 3);
	for (uint64_t i = 0; i < count; i++) {
		int r;

		memset(&be, 0, sizeof(be));
		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(i);
		r = vmmfs_pci_open(BDF_GOOD, g_access, &be, err, sizeof(err));
		vmmfs_fault_reset();
		VT_EQ_INT(r, -ENOMEM);
		CU_ASSERT_PTR_NULL(be.ops);
		VT_EQ_INT(vmmfs_mem_live(), live);
	}
}

/* ---- through the GPU layer ------------------------------------------------- */

static int gpu_open_pci(const char *bdf, const char *access, struct vmmfs_gpu **gpu, char *err, size_t len)
{
	struct vmmfs_gpu_config cfg = {
		.backend = VMMFS_BACKEND_PCI, .device = bdf, .pci_access = access,
		.vram_start = 16 * MiB, .vram_end = 32 * MiB,
	};

	*gpu = NULL;
	err[0] = '\0';
	return vmmfs_gpu_open(&cfg, gpu, err, len);
}

/* Nothing but the three identification registers is non-zero in a fake
 * resource0: proof that opening wrote nothing to the BAR. */
static void assert_bar_untouched(const char *root, const char *bdf)
{
	char path[PATH_MAX + 64];
	uint8_t *buf = malloc(16 * MiB);
	int fd;

	xsnprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/resource0", root, bdf);
	fd = open(path, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0 && buf);
	CU_ASSERT_EQUAL(pread(fd, buf, 16 * MiB, 0), (ssize_t)(16 * MiB));
	close(fd);
	for (uint64_t off = 0; off < 16 * MiB; off += 4) {
		bool ident = off == NV_PMC_BOOT_0 || off == NV_PMC_BOOT_42 ||
			     off == NV_PFB_PRI_MMU_LOCAL_MEMORY_RANGE;
		uint32_t v = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;

		if (!ident && v) {
			fprintf(stderr, "  %s: BAR0 offset 0x%llx was written (0x%08x)\n", bdf,
				(unsigned long long)off, v);
			CU_FAIL("BAR0 written during identification");
			break;
		}
	}
	free(buf);
}

/* vmmfs_gpu_open identifies the chip from our BAR0 and refuses the others
 * with the backend's or the chip check's reason. Identification only: no
 * VMM runs on a fake BAR, and the BAR stays as it was. */
static void test_gpu_open(void)
{
	static const struct { const char *bdf, *chipset, *arch; int mmu; uint64_t vram; } good[] = {
		{ "0000:01:00.0", "TU102", "turing", 2, 11 * GiB },
		{ "0000:02:00.0", "GA102", "ampere", 2, 24 * GiB },
		{ "0000:03:00.0", "AD102", "ada", 2, 24 * GiB },
		{ "0000:04:00.0", "GH100", "hopper", 3, 80 * GiB },
		{ "0000:05:00.0", "GB202", "blackwell", 3, 32 * GiB },
	};
	char root[PATH_MAX], access[PATH_MAX + 32];
	struct vmmfs_gpu *gpu;
	char err[1024];
	int r;

	if (!tree_new(root, access))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char want[64];

		r = gpu_open_pci(good[i].bdf, access, &gpu, err, sizeof(err));
		if (r)
			fprintf(stderr, "  vmmfs_gpu_open(%s): %d: %s\n", good[i].bdf, r, err);
		VT_EQ_INT(r, 0);
		if (r)
			continue;
		const struct vmmfs_gpu_info *info = vmmfs_gpu_get_info(gpu);
		assert_str(info->chipset, good[i].chipset);
		assert_str(info->arch, good[i].arch);
		VT_EQ_INT(info->mmu_version, good[i].mmu);
		VT_EQ_U64(info->vram_size, good[i].vram);
		xsnprintf(want, sizeof(want), "pci %s", good[i].bdf);
		assert_str(info->backend, want);
		vmmfs_gpu_close(gpu);
		assert_bar_untouched(root, good[i].bdf);
	}

	VT_EQ_INT(gpu_open_pci(BDF_BOUND, access, &gpu, err, sizeof(err)), -EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bound to the kernel driver nvidia; unbind it first: echo 0000:21:00.0 > "));
	VT_EQ_INT(gpu_open_pci(BDF_ONES, access, &gpu, err, sizeof(err)), -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "reads all ones"));
	VT_EQ_INT(gpu_open_pci(BDF_NODECODE, access, &gpu, err, sizeof(err)), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "setpci -s 0000:23:00.0 COMMAND=0x02:0x02"));
	VT_EQ_INT(gpu_open_pci(BDF_VOLTA, access, &gpu, err, sizeof(err)), -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "chipset 0x140 (BOOT_42 = 0x140a1000) is older than Turing"));
	VT_EQ_INT(gpu_open_pci(BDF_FUTURE, access, &gpu, err, sizeof(err)), -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown chipset 0x1c0"));
	CU_ASSERT_PTR_NULL(strchr(err, '\n'));
	assert_bar_untouched(root, BDF_VOLTA);
	tree_remove(root);
}

/* ---- the daemon, end to end ------------------------------------------------ */

struct run {
	int status;          /* wait status; -1 if it timed out */
	char out[16384], err[8192];
};

static void read_all(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Runs argv with stdout/stderr captured, at most timeout_s seconds. */
static void run_cmd(const char *dir, char *const argv[], struct run *res, int timeout_s)
{
	char outp[PATH_MAX + 8], errp[PATH_MAX + 8];
	pid_t pid;
	int status = 0;

	xsnprintf(outp, sizeof(outp), "%s/out", dir);
	xsnprintf(errp, sizeof(errp), "%s/err", dir);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (o < 0 || e < 0)
			_exit(126);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	res->status = -1;
	for (int i = 0; pid > 0 && i < timeout_s * 100; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			res->status = status;
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (pid > 0 && res->status == -1) {
		kill(pid, SIGTERM);
		sleep(1);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	read_all(outp, res->out, sizeof(res->out));
	read_all(errp, res->err, sizeof(res->err));
}

static bool have_daemon(void)
{
	if (access(VMMFS_BIN, X_OK) == 0)
		return true;
	fprintf(stderr, "\n  %s is not built: the daemon checks cannot run (make builds it)\n", VMMFS_BIN);
	CU_FAIL("the vmmfs binary is missing");
	return false;
}

static void test_daemon_list(void)
{
	char dir[PATH_MAX], opt[PATH_MAX + 64], *text = NULL;
	char *argv[] = { VMMFS_BIN, "--list", opt, NULL };
	struct run *res;

	if (!have_daemon())
		return;
	res = calloc(1, sizeof(*res));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	xsnprintf(dir, sizeof(dir), "%s", g_root);
	xsnprintf(opt, sizeof(opt), "--pci-access=%s", g_access);
	run_cmd(dir, argv, res, 30);
	CU_ASSERT(res->status != -1 && WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0);
	VT_EQ_INT(vmmfs_pci_list(g_access, &text), 10);
	if (text) {
		if (!strstr(res->out, text))
			fprintf(stderr, "  vmmfs --list printed:\n%s\n  stderr:\n%s\n", res->out, res->err);
		CU_ASSERT_PTR_NOT_NULL(strstr(res->out, text));
	}
	free(text);
	free(res);
}

/* libpci's fatal errors end the listing with a message, not the process
 * with libpci's own exit(). */
static void test_daemon_list_errors(void)
{
	static const struct { const char *access, *needle; } cases[] = {
		{ "--pci-access=dump:" TESTS_SRCDIR "/data/malformed.lspci", "libpci (dump): dump: Malformed line" },
		{ "--pci-access=linux-sysfs:/nonexistent/vmmfs-test",
		  "libpci (linux-sysfs): Cannot open /nonexistent/vmmfs-test/devices" },
		{ "--pci-access=no-such-method", "unknown libpci access method 'no-such-method'" },
	};
	struct run *res;

	if (!have_daemon())
		return;
	res = calloc(1, sizeof(*res));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[] = { VMMFS_BIN, "--list", (char *)cases[i].access, NULL };

		run_cmd(g_root, argv, res, 30);
		CU_ASSERT(res->status != -1 && WIFEXITED(res->status) && WEXITSTATUS(res->status) != 0);
		if (!strstr(res->err, cases[i].needle))
			fprintf(stderr, "  vmmfs --list %s said:\n%s\n", cases[i].access, res->err);
		CU_ASSERT_PTR_NOT_NULL(strstr(res->err, cases[i].needle));
	}
	free(res);
}

/* --device refuses each bad device with its one-line reason, and never mounts. */
static void test_daemon_refusals(void)
{
	static const struct { const char *bdf, *needle; } cases[] = {
		{ BDF_BOUND, "0000:21:00.0 is bound to the kernel driver nvidia; unbind it first: echo 0000:21:00.0 > " },
		{ BDF_ONES, "BAR0 of 0000:22:00.0 reads all ones (BOOT_0 = 0xffffffff): the device is gone or powered off" },
		{ BDF_NODECODE, "memory decoding is disabled on 0000:23:00.0 (PCI command register 0x0000), so BAR0 does not "
				"answer; vmmfs does not enable it itself: setpci -s 0000:23:00.0 COMMAND=0x02:0x02" },
		{ BDF_VOLTA, "chipset 0x140 (BOOT_42 = 0x140a1000) is older than Turing; vmmfs drives Turing and later" },
		{ BDF_HDA, "0000:01:00.1 is not an NVIDIA GPU function" },
	};
	char mnt[PATH_MAX + 8], opt[PATH_MAX + 64], dev[64];
	struct run *res;

	if (!have_daemon())
		return;
	res = calloc(1, sizeof(*res));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	xsnprintf(mnt, sizeof(mnt), "%s/mnt", g_root);
	CU_ASSERT_FATAL(mkdir(mnt, 0755) == 0 || errno == EEXIST);
	xsnprintf(opt, sizeof(opt), "--pci-access=%s", g_access);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *argv[] = { VMMFS_BIN, dev, "--vram-range=0x1000000-0x2000000", opt, "-f", mnt, NULL };

		xsnprintf(dev, sizeof(dev), "--device=%s", cases[i].bdf);
		run_cmd(g_root, argv, res, 20);
		if (res->status == -1)
			fprintf(stderr, "  vmmfs --device=%s did not exit: it must refuse before mounting\n", cases[i].bdf);
		CU_ASSERT(res->status != -1 && WIFEXITED(res->status) && WEXITSTATUS(res->status) != 0);
		if (!strstr(res->err, cases[i].needle))
			fprintf(stderr, "  vmmfs --device=%s said:\n%s\n  expected it to contain:\n  %s\n", cases[i].bdf,
				res->err, cases[i].needle);
		CU_ASSERT_PTR_NOT_NULL(strstr(res->err, cases[i].needle));
	}
	rmdir(mnt);
	free(res);
}

static void register_tests(void)
{
	static const struct vt_test list_tests[] = {
		{ "list_sysfs", test_list_sysfs },
		{ "list_dump", test_list_dump },
		{ "dump_matches_tree", test_dump_matches_tree },
		{ "list_no_nvidia", test_list_no_nvidia },
		{ "list_libpci_errors", test_list_libpci_errors },
		{ "list_broken_tree", test_list_broken_tree },
		{ "list_threads", test_list_threads },
		{ "list_failmalloc", test_list_failmalloc },
		{ NULL, NULL },
	};
	static const struct vt_test open_tests[] = {
		{ "open_refusals", test_open_refusals },
		{ "open_mmap_refused", test_open_mmap_refused },
		{ "open_not_root", test_open_not_root },
		{ "open_config_unreadable", test_open_config_unreadable },
		{ "open_bad_bar0", test_open_bad_bar0 },
		{ "open_reads", test_open_reads },
		{ "open_short_bdf", test_open_short_bdf },
		{ "open_rw_private", test_open_rw_private },
		{ "open_bar_vanishes", test_open_bar_vanishes },
		{ "open_two", test_open_two },
		{ "open_failmalloc", test_open_failmalloc },
		{ "gpu_open", test_gpu_open },
		{ NULL, NULL },
	};
	static const struct vt_test daemon_tests[] = {
		{ "daemon_list", test_daemon_list },
		{ "daemon_list_errors", test_daemon_list_errors },
		{ "daemon_refusals", test_daemon_refusals },
		{ NULL, NULL },
	};
	static const struct { const char *name; const struct vt_test *tests; } suites[] = {
		{ "pci_list", list_tests }, { "pci_open", open_tests }, { "pci_daemon", daemon_tests },
	};

	/* like vt_add_suite, with the fake tree built once per suite */
	for (size_t i = 0; i < ARRAY_SIZE(suites); i++) {
		CU_pSuite s = CU_add_suite(suites[i].name, suite_init, suite_fini);

		if (!s) {
			fprintf(stderr, "CU_add_suite(%s) failed\n", suites[i].name);
			exit(2);
		}
		for (const struct vt_test *t = suites[i].tests; t->name; t++)
			if (!CU_add_test(s, t->name, t->fn)) {
				fprintf(stderr, "CU_add_test(%s) failed\n", t->name);
				exit(2);
			}
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--make-tree")) {
		int r = mkdir_p(argv[2]) ?: fake_tree_build(argv[2]);

		if (r)
			fprintf(stderr, "%s: %s\n", argv[2], strerror(-r));
		else
			printf("lspci -A linux-sysfs -O sysfs.path=%s/sys/bus/pci -D -x\n", argv[2]);
		return r ? 1 : 0;
	}
	return vt_main(argc, argv, register_tests);
}
