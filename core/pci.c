/* SPDX-License-Identifier: MIT */
/*
 * Real NVIDIA GPUs: discovery through libpci and a BAR0 backend through the
 * sysfs resource0 file (nvidia-mmu.md §2).
 *
 * Access method. "--pci-access=METHOD[:PATH]" picks libpci's method by its
 * libpci name (linux-sysfs, linux-proc, dump, ...) and PATH becomes that
 * method's parameter (sysfs.path, proc.path, dump.name). BAR0 is reachable
 * only with linux-sysfs (libpci's default on Linux): resource0 and the
 * driver link are then taken from the same tree as libpci's view, so a
 * fake tree in a temporary directory behaves like /sys/bus/pci.
 *
 * libpci errors. libpci reports fatal problems through acc->error, which
 * must not return; its default prints and calls exit(). Ours records the
 * message and longjmp()s back to the public function that made the libpci
 * call (one guard per call, thread-local), which cleans up and returns
 * -EIO (-ENOMEM for libpci's out-of-memory message) with the message.
 * Memory or a FILE that libpci held at that moment may leak; the daemon
 * keeps running. libpci warnings go to the log.
 *
 * Safety. Listing maps BAR0 read-only and reads only BOOT_0/BOOT_42, and
 * only on a device that no kernel driver owns and whose memory decoding is
 * on. Opening refuses (one line: what and how to fix it) a device owned by
 * a kernel driver (-EBUSY), with memory decoding off (-EIO), whose BAR0
 * reads all ones (-ENODEV), or whose BAR0 the kernel will not map
 * (-EPERM/-EACCES). Nothing here ever writes PCI config space.
 *
 * A vanished BAR. The kernel may revoke a resource0 mapping (device
 * removed, or region claimed by a driver); touching it then raises SIGBUS.
 * A SIGBUS handler (installed once, chained to the previous one) replaces
 * such a mapping in place with anonymous memory reading all ones, so the
 * GPU layer sees "device gone" instead of the daemon dying; the next
 * access logs it once.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pci/pci.h>

#include "internal.h"
#include "mem.h"
#include "gpu.h"
#include "pci.h"
#include <vmmfs/gpu.h>

#define NVIDIA_VENDOR_ID 0x10de
#define PCI_MSG_MAX 512

/* ---- libpci error guard --------------------------------------------------- */

struct pci_guard {
	jmp_buf jb;
	int fired;                 /* errors seen (a second one during cleanup) */
	char msg[PCI_MSG_MAX - 64]; /* libpci's message */
	struct pci_guard *prev;
};

static _Thread_local struct pci_guard *pci_cur_guard;

static void pci_guard_enter(struct pci_guard *g)
{
	g->fired = 0;
	g->msg[0] = '\0';
	g->prev = pci_cur_guard;
	pci_cur_guard = g;
}

static void pci_guard_leave(struct pci_guard *g)
{
	pci_cur_guard = g->prev;
}

__attribute__((format(printf, 1, 2), noreturn))
static void pci_on_error(char *fmt, ...)
{
	struct pci_guard *g = pci_cur_guard;
	va_list ap;

	if (!g) {
		/* Every libpci call below runs inside a guard; reaching this is a bug. */
		log_err("libpci: fatal error outside any vmmfs guard (internal error): %s", fmt);
		abort();
	}
	g->fired++;
	if (g->fired == 1) {
		va_start(ap, fmt);
		vsnprintf(g->msg, sizeof(g->msg), fmt, ap);
		va_end(ap);
	}
	longjmp(g->jb, g->fired);
}

__attribute__((format(printf, 1, 2)))
static void pci_on_warning(char *fmt, ...)
{
	char msg[PCI_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("libpci: %s", msg);
}

__attribute__((format(printf, 1, 2)))
static void pci_on_debug(char *fmt, ...)
{
	char msg[PCI_MSG_MAX];
	va_list ap;

	if (!vmmfs_log_spam_enabled)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_spam("libpci: %s", msg);
}

/* ---- access method ------------------------------------------------------ */

/* libpci methods that take a path, and the parameter it goes to. */
static const struct pci_method_path {
	const char *method;
	const char *param;
} pci_method_paths[] = {
	{ "linux-sysfs", "sysfs.path" },
	{ "linux-proc", "proc.path" },
	{ "dump", "dump.name" },
};

/* One use of libpci: the access, where BAR0 files live, the guard. */
struct pci_session {
	struct pci_access *acc;
	int method;                /* libpci index, 0 = auto */
	char method_name[32];      /* as resolved by pci_init */
	char param[32];            /* parameter PATH goes to, "" if none */
	char *path;                /* PATH, owned */
	char sysfs_root[PATH_MAX]; /* "" unless linux-sysfs: resource0/driver live here */
	struct pci_bar0 *bar;      /* mapped by vmmfs_pci_open (here: valid after a longjmp) */
	struct pci_guard guard;
};

/* Parses "METHOD[:PATH]". Returns 0 or -EINVAL/-ENOMEM with why. */
static int pci_session_parse(struct pci_session *s, const char *spec, char *why, size_t whylen)
{
	char name[sizeof(s->method_name)];
	const char *colon;
	size_t n;

	s->method = PCI_ACCESS_AUTO;
	snprintf(s->method_name, sizeof(s->method_name), "auto");
	if (!spec || !*spec)
		return 0;
	colon = strchr(spec, ':');
	n = colon ? (size_t)(colon - spec) : strlen(spec);
	if (n == 0 || n >= sizeof(name)) {
		snprintf(why, whylen, "bad --pci-access '%s': give METHOD[:PATH], e.g. linux-sysfs:/sys/bus/pci or dump:FILE",
			 spec);
		return -EINVAL;
	}
	memcpy(name, spec, n);
	name[n] = '\0';
	if (strcmp(name, "auto")) {
		int m = pci_lookup_method(name);

		if (m <= 0) {
			char known[256] = "";
			size_t len = 0;

			for (int i = 1;; i++) {
				const char *mn = pci_get_method_name(i);
				if (!mn)
					break;
				if (*mn && len < sizeof(known))
					len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s",
								len ? ", " : "", mn);
			}
			snprintf(why, whylen, "unknown libpci access method '%s' in --pci-access; known: %s",
				 name, known);
			return -EINVAL;
		}
		s->method = m;
	}
	snprintf(s->method_name, sizeof(s->method_name), "%s", name);
	if (!colon || !colon[1])
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(pci_method_paths); i++)
		if (!strcmp(pci_method_paths[i].method, name))
			snprintf(s->param, sizeof(s->param), "%s", pci_method_paths[i].param);
	if (!s->param[0]) {
		snprintf(why, whylen, "libpci access method '%s' takes no path (--pci-access=%s)", name, spec);
		return -EINVAL;
	}
	s->path = vmmfs_malloc(strlen(colon + 1) + 1);
	if (!s->path) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	strcpy(s->path, colon + 1);
	return 0;
}

/* Allocates, configures and scans. Runs inside the session's guard. */
static void pci_session_scan(struct pci_session *s)
{
	const char *name;

	s->acc = pci_alloc();
	s->acc->error = pci_on_error;
	s->acc->warning = pci_on_warning;
	s->acc->debug = pci_on_debug;
	s->acc->debugging = 0;
	s->acc->method = (unsigned int)s->method;
	if (s->param[0] && pci_set_param(s->acc, s->param, s->path))
		pci_on_error("no parameter %s in this libpci", s->param);
	pci_init(s->acc);
	name = pci_get_method_name((int)s->acc->method);
	if (name && *name)
		snprintf(s->method_name, sizeof(s->method_name), "%s", name);
	if (s->acc->method == PCI_ACCESS_SYS_BUS_PCI) {
		const char *root = pci_get_param(s->acc, "sysfs.path");
		size_t n;

		snprintf(s->sysfs_root, sizeof(s->sysfs_root), "%s", root ? root : "/sys/bus/pci");
		n = strlen(s->sysfs_root);
		while (n > 1 && s->sysfs_root[n - 1] == '/')
			s->sysfs_root[--n] = '\0';
	}
	pci_scan_bus(s->acc);
}

/* Releases libpci. Must run inside the guard: a second libpci error here
 * lands in the caller's setjmp with fired > 1, which skips this. */
static void pci_session_cleanup(struct pci_session *s)
{
	struct pci_access *acc = s->acc;

	s->acc = NULL;
	if (acc)
		pci_cleanup(acc);
}

static void pci_session_free(struct pci_session *s)
{
	if (!s)
		return;
	vmmfs_free(s->path);
	vmmfs_free(s);
}

/* libpci's message as an errno: its allocator reports "Out of memory". */
static int pci_guard_errno(const struct pci_guard *g)
{
	return strncmp(g->msg, "Out of memory", 13) ? -EIO : -ENOMEM;
}

/* ---- one GPU function ---------------------------------------------------- */

struct pci_gpu {
	char bdf[16];              /* "0000:65:00.0" */
	int domain;
	unsigned int bus, dev, func;
	uint16_t vendor, device, cls;
	bool driver_known;         /* the access method can tell */
	char driver[64];           /* "" when none */
	uint16_t command;
	uint64_t bar0, bar0_size;  /* size 0: unknown */
	uint64_t bar1, bar1_size;
	bool bar0_mem;
	/* identity: from BOOT_0/BOOT_42, or guessed from the device ID */
	const struct vmmfs_chip *chip;
	bool chip_guessed;
	/* 0: vmmfs can drive it; else the refusal and its reason */
	int err;
	char reason[PCI_MSG_MAX];
};

__attribute__((format(printf, 3, 4)))
static int pci_refuse(struct pci_gpu *g, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->reason, sizeof(g->reason), fmt, ap);
	va_end(ap);
	g->err = err;
	return err;
}

static bool pci_is_nvidia_gpu(const struct pci_dev *d)
{
	return d->vendor_id == NVIDIA_VENDOR_ID &&
	       (d->device_class == PCI_CLASS_DISPLAY_VGA || d->device_class == PCI_CLASS_DISPLAY_3D);
}

static void pci_bar(const struct pci_dev *d, int i, uint64_t *addr, uint64_t *size)
{
	uint64_t b = (uint64_t)d->base_addr[i];

	if (b & PCI_BASE_ADDRESS_SPACE)
		*addr = b & (uint64_t)PCI_ADDR_IO_MASK;
	else
		*addr = b & (uint64_t)PCI_ADDR_MEM_MASK;
	*size = (uint64_t)d->size[i];
}

/* Reads what libpci knows about d into g. Inside the guard. */
static void pci_gpu_read(const struct pci_session *s, struct pci_dev *d, struct pci_gpu *g)
{
	int bar1;

	memset(g, 0, sizeof(*g));
	pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_BASES | PCI_FILL_SIZES |
			 PCI_FILL_DRIVER);
	g->domain = d->domain;
	g->bus = d->bus;
	g->dev = d->dev;
	g->func = d->func;
	snprintf(g->bdf, sizeof(g->bdf), "%04x:%02x:%02x.%u", (unsigned int)d->domain, d->bus,
		 d->dev, d->func);
	g->vendor = d->vendor_id;
	g->device = d->device_id;
	g->cls = d->device_class;
	/* Only sysfs knows bindings; elsewhere the driver is unknown. */
	g->driver_known = s->sysfs_root[0] != '\0';
	if (g->driver_known) {
		const char *drv = pci_get_string_property(d, PCI_FILL_DRIVER);
		snprintf(g->driver, sizeof(g->driver), "%s", drv ? drv : "");
	}
	g->command = pci_read_word(d, PCI_COMMAND);
	g->bar0_mem = d->base_addr[0] && !(d->base_addr[0] & PCI_BASE_ADDRESS_SPACE);
	pci_bar(d, 0, &g->bar0, &g->bar0_size);
	/* BAR1 (the VRAM aperture) follows BAR0, one slot further when BAR0 is 64-bit. */
	bar1 = g->bar0_mem && (d->base_addr[0] & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
		PCI_BASE_ADDRESS_MEM_TYPE_64 ? 2 : 1;
	pci_bar(d, bar1, &g->bar1, &g->bar1_size);
}

/* Everything that can be refused without touching BAR0, in the order a
 * person fixes them. Returns 0 or the refusal (g->reason says why). */
static int pci_gpu_precheck(const struct pci_session *s, struct pci_gpu *g)
{
	if (g->driver[0])
		return pci_refuse(g, -EBUSY,
				  "%s is bound to the kernel driver %s; unbind it first: echo %s > %s/drivers/%s/unbind",
				  g->bdf, g->driver, g->bdf, s->sysfs_root, g->driver);
	if (g->command == 0xffff)
		return pci_refuse(g, -ENODEV,
				  "the config space of %s reads all ones: the device is gone or powered off; rescan the bus: echo 1 > %s/rescan",
				  g->bdf, s->sysfs_root[0] ? s->sysfs_root : "/sys/bus/pci");
	if (!(g->command & PCI_COMMAND_MEMORY))
		return pci_refuse(g, -EIO,
				  "memory decoding is disabled on %s (PCI command register 0x%04x), so BAR0 does not answer; vmmfs does not enable it itself: setpci -s %s COMMAND=0x02:0x02",
				  g->bdf, g->command, g->bdf);
	if (!g->bar0_mem || !g->bar0)
		return pci_refuse(g, -ENODEV,
				  "%s has no memory BAR0 assigned; check the kernel log (dmesg) for PCI resource assignment errors",
				  g->bdf);
	if (g->bar0_size && g->bar0_size < VMMFS_BAR0_SIZE)
		return pci_refuse(g, -ENODEV,
				  "BAR0 of %s is %llu KiB; Turing and later GPUs have a 16 MiB BAR0: this is not a GPU vmmfs can drive",
				  g->bdf, (unsigned long long)(g->bar0_size >> 10));
	if (!s->sysfs_root[0])
		return pci_refuse(g, -EINVAL,
				  "BAR0 is not reachable with the libpci access method %s; use --pci-access=linux-sysfs (the default)",
				  s->method_name);
	return 0;
}

/* ---- the BAR0 mapping ---------------------------------------------------- */

/* Mappings the SIGBUS handler may repair, published by base address. */
#define PCI_MAX_MAPS 16
struct pci_map_slot {
	atomic_bool used;
	_Atomic uintptr_t base;    /* 0 while not published */
	size_t size;
	atomic_bool revoked;       /* set by the handler */
};
static struct pci_map_slot pci_maps[PCI_MAX_MAPS];
static struct sigaction pci_sigbus_prev;
static pthread_once_t pci_sigbus_once = PTHREAD_ONCE_INIT;
static int pci_sigbus_err;

struct pci_bar0 {
	volatile uint8_t *regs;
	size_t size;
	int slot;
	atomic_bool revoke_logged; /* the vanishing was logged (any thread) */
	char bdf[16];
	char path[PATH_MAX];
};

static void pci_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	for (int i = 0; i < PCI_MAX_MAPS; i++) {
		struct pci_map_slot *m = &pci_maps[i];
		uintptr_t base = atomic_load(&m->base);
		void *p;

		if (!base || a < base || a - base >= m->size)
			continue;
		/* The kernel took the BAR away: put all-ones memory in its place. */
		p = mmap((void *)base, m->size, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			break;
		memset(p, 0xff, m->size);
		atomic_store(&m->revoked, true);
		return;
	}
	if (pci_sigbus_prev.sa_flags & SA_SIGINFO) {
		pci_sigbus_prev.sa_sigaction(sig, si, uc);
	} else if (pci_sigbus_prev.sa_handler != SIG_DFL && pci_sigbus_prev.sa_handler != SIG_IGN) {
		pci_sigbus_prev.sa_handler(sig);
	} else {
		/* Not ours: die as if we had never been here. */
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

static void pci_sigbus_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = pci_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &pci_sigbus_prev))
		pci_sigbus_err = -errno;
}

static int pci_map_publish(volatile uint8_t *regs, size_t size)
{
	pthread_once(&pci_sigbus_once, pci_sigbus_install);
	if (pci_sigbus_err)
		return pci_sigbus_err;
	for (int i = 0; i < PCI_MAX_MAPS; i++) {
		bool expect = false;

		if (!atomic_compare_exchange_strong(&pci_maps[i].used, &expect, true))
			continue;
		pci_maps[i].size = size;
		atomic_store(&pci_maps[i].revoked, false);
		atomic_store(&pci_maps[i].base, (uintptr_t)regs);
		return i;
	}
	return -EMFILE;
}

static void pci_map_unpublish(int slot)
{
	atomic_store(&pci_maps[slot].base, 0);
	atomic_store(&pci_maps[slot].used, false);
}

static void pci_bar0_unmap(struct pci_bar0 *b)
{
	if (!b)
		return;
	pci_map_unpublish(b->slot);
	munmap((void *)b->regs, b->size);
	vmmfs_free(b);
}

/* Maps resource0 of g (read-only for listing, read-write for driving).
 * Returns 0, or a refusal in g: -ENODEV (missing, too small), -EACCES/-EPERM
 * (open or mmap refused), -EMFILE, -ENOMEM. */
static int pci_bar0_map(const struct pci_session *s, struct pci_gpu *g, bool writable,
			struct pci_bar0 **out)
{
	struct pci_bar0 *b;
	struct stat st;
	void *regs;
	int fd, r, e;

	b = vmmfs_calloc(1, sizeof(*b));
	if (!b)
		return pci_refuse(g, -ENOMEM, "out of memory");
	snprintf(b->bdf, sizeof(b->bdf), "%s", g->bdf);
	if ((size_t)snprintf(b->path, sizeof(b->path), "%s/devices/%s/resource0", s->sysfs_root,
			     g->bdf) >= sizeof(b->path)) {
		r = pci_refuse(g, -EINVAL, "the sysfs path %s is too long", s->sysfs_root);
		goto out_free;
	}

	fd = open(b->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		if (e == EACCES || e == EPERM)
			r = pci_refuse(g, -e, "cannot open %s %s (%s): BAR0 access needs root: run vmmfs as root",
				       b->path, writable ? "read-write" : "read-only", strerror(e));
		else if (e == ENOENT)
			r = pci_refuse(g, -ENODEV, "%s does not exist: the device is gone, or BAR0 is not a memory BAR",
				       b->path);
		else
			r = pci_refuse(g, -e, "cannot open %s: %s", b->path, strerror(e));
		goto out_free;
	}
	if (fstat(fd, &st)) {
		e = errno;
		r = pci_refuse(g, -e, "cannot stat %s: %s", b->path, strerror(e));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)VMMFS_BAR0_SIZE) {
		r = pci_refuse(g, -ENODEV,
			       "%s is %lld bytes; Turing and later GPUs have a 16 MiB BAR0: this is not a GPU vmmfs can drive",
			       b->path, (long long)st.st_size);
		goto out_close;
	}
	regs = mmap(NULL, VMMFS_BAR0_SIZE, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		    fd, 0);
	if (regs == MAP_FAILED) {
		e = errno;
		if (e == EPERM || e == EACCES)
			r = pci_refuse(g, -e,
				       "the kernel refused to map BAR0 of %s (%s): kernel lockdown forbids it, see /sys/kernel/security/lockdown (boot with lockdown=none or Secure Boot off); with iomem=strict, boot with iomem=relaxed",
				       g->bdf, strerror(e));
		else if (e == EINVAL)
			r = pci_refuse(g, -EACCES,
				       "the kernel refused to map BAR0 of %s (%s): the region is claimed inside the kernel; boot with iomem=relaxed, and make sure no driver owns the GPU",
				       g->bdf, strerror(e));
		else
			r = pci_refuse(g, -e, "cannot map BAR0 of %s (%s): %s", g->bdf, b->path, strerror(e));
		goto out_close;
	}
	close(fd);
	b->regs = regs;
	b->size = VMMFS_BAR0_SIZE;
	b->slot = pci_map_publish(b->regs, b->size);
	if (b->slot < 0) {
		r = pci_refuse(g, b->slot, "cannot watch the BAR0 mapping of %s: %s", g->bdf,
			       b->slot == -EMFILE ? "too many GPUs open" : strerror(-b->slot));
		munmap(regs, VMMFS_BAR0_SIZE);
		goto out_free;
	}
	*out = b;
	return 0;

out_close:
	close(fd);
out_free:
	vmmfs_free(b);
	return r;
}

static void pci_bar0_check_revoked(struct pci_bar0 *b)
{
	if (atomic_load_explicit(&pci_maps[b->slot].revoked, memory_order_relaxed) &&
	    !atomic_exchange(&b->revoke_logged, true)) {
		log_err("pci %s: BAR0 vanished (the kernel revoked %s: device removed or claimed by a driver); every access now reads all ones",
			b->bdf, b->path);
	}
}

static inline bool pci_off_ok(const struct pci_bar0 *b, uint32_t off, size_t width)
{
	return !VMMFS_WARN_ON(off % width || (size_t)off + width > b->size);
}

static uint32_t pci_rd32(void *priv, uint32_t off)
{
	struct pci_bar0 *b = priv;
	uint32_t v;

	if (!pci_off_ok(b, off, 4))
		return ~0u;
	v = le32toh(*(volatile uint32_t *)(b->regs + off));
	pci_bar0_check_revoked(b);
	return v;
}

static void pci_wr32(void *priv, uint32_t off, uint32_t val)
{
	struct pci_bar0 *b = priv;

	if (!pci_off_ok(b, off, 4))
		return;
	*(volatile uint32_t *)(b->regs + off) = htole32(val);
	pci_bar0_check_revoked(b);
}

static uint64_t pci_rd64(void *priv, uint32_t off)
{
	struct pci_bar0 *b = priv;
	uint64_t v;

	if (!pci_off_ok(b, off, 8))
		return ~0ull;
	v = le64toh(*(volatile uint64_t *)(b->regs + off));
	pci_bar0_check_revoked(b);
	return v;
}

static void pci_wr64(void *priv, uint32_t off, uint64_t val)
{
	struct pci_bar0 *b = priv;

	if (!pci_off_ok(b, off, 8))
		return;
	*(volatile uint64_t *)(b->regs + off) = htole64(val);
	pci_bar0_check_revoked(b);
}

static void pci_rd64_block(void *priv, uint32_t off, uint64_t *vals, size_t n)
{
	struct pci_bar0 *b = priv;

	if (!n)
		return;
	if (VMMFS_WARN_ON(n > b->size / 8) || !pci_off_ok(b, off, 8) ||
	    !pci_off_ok(b, off + (uint32_t)(n - 1) * 8, 8)) {
		memset(vals, 0xff, n * sizeof(*vals));
		return;
	}
	for (size_t i = 0; i < n; i++)
		vals[i] = le64toh(*(volatile uint64_t *)(b->regs + off + i * 8));
	pci_bar0_check_revoked(b);
}

static void pci_wr64_block(void *priv, uint32_t off, const uint64_t *vals, size_t n)
{
	struct pci_bar0 *b = priv;

	if (!n)
		return;
	if (VMMFS_WARN_ON(n > b->size / 8) || !pci_off_ok(b, off, 8) ||
	    !pci_off_ok(b, off + (uint32_t)(n - 1) * 8, 8))
		return;
	for (size_t i = 0; i < n; i++)
		*(volatile uint64_t *)(b->regs + off + i * 8) = htole64(vals[i]);
	pci_bar0_check_revoked(b);
}

static void pci_describe(void *priv, char *buf, size_t len)
{
	struct pci_bar0 *b = priv;

	snprintf(buf, len, "pci %s", b->bdf);
}

static void pci_close(void *priv)
{
	struct pci_bar0 *b = priv;

	log_info("pci %s: BAR0 unmapped", b->bdf);
	pci_bar0_unmap(b);
}

static const struct vmmfs_backend_ops pci_backend_ops = {
	.name = "pci",
	.rd32 = pci_rd32,
	.wr32 = pci_wr32,
	.rd64 = pci_rd64,
	.wr64 = pci_wr64,
	.rd64_block = pci_rd64_block,
	.wr64_block = pci_wr64_block,
	.describe = pci_describe,
	.close = pci_close,
};

/* BAR0 reads all ones: the device is gone or powered off. */
static int pci_refuse_all_ones(const struct pci_session *s, struct pci_gpu *g)
{
	return pci_refuse(g, -ENODEV,
			  "BAR0 of %s reads all ones (BOOT_0 = 0xffffffff): the device is gone or powered off; power it on (echo on > %s/devices/%s/power/control) or rescan (echo 1 > %s/rescan)",
			  g->bdf, s->sysfs_root, g->bdf, s->sysfs_root);
}

/* ---- vmmfs_pci_open ------------------------------------------------------- */

/* Finds the device bdf names. Inside the guard. Returns it, or NULL with
 * the refusal in g. */
static struct pci_dev *pci_find(struct pci_session *s, const char *bdf, struct pci_gpu *g)
{
	struct pci_filter f;
	struct pci_dev *found = NULL;
	char buf[64];
	const char *perr;
	int n = 0, matches = 0;

	snprintf(buf, sizeof(buf), "%s", bdf);
	pci_filter_init(s->acc, &f);
	perr = strlen(bdf) < sizeof(buf) ? pci_filter_parse_slot(&f, buf) : "too long";
	if (perr || f.bus < 0 || f.slot < 0 || f.func < 0) {
		pci_refuse(g, -EINVAL,
			   "'%s' is not a PCI address: give DOMAIN:BUS:DEVICE.FUNCTION as vmmfs --list prints it, e.g. 0000:65:00.0",
			   bdf);
		return NULL;
	}
	for (struct pci_dev *d = s->acc->devices; d; d = d->next) {
		n++;
		if (pci_filter_match(&f, d)) {
			if (!found || d->domain < found->domain)
				found = d;
			matches++;
		}
	}
	if (!found) {
		pci_refuse(g, -ENODEV,
			   "no PCI device %s (libpci method %s sees %d devices); vmmfs --list shows the NVIDIA GPUs",
			   bdf, s->method_name, n);
		return NULL;
	}
	if (matches > 1) {
		pci_refuse(g, -EINVAL, "%s matches devices in %d PCI domains; give the domain too, e.g. 0000:%s",
			   bdf, matches, bdf);
		return NULL;
	}
	return found;
}

/* Everything vmmfs_pci_open does with libpci, under the guard. All state
 * lives in *s and *g (heap), so it is valid after a longjmp; nothing local
 * changes after setjmp. Returns g->err; on success s->bar is mapped. */
static int pci_open_guarded(struct pci_session *s, struct pci_gpu *g, const char *bdf)
{
	struct pci_dev *d;
	int jumped;

	pci_guard_enter(&s->guard);
	jumped = setjmp(s->guard.jb);
	if (jumped) {
		if (!g->err)
			pci_refuse(g, pci_guard_errno(&s->guard), "libpci (%s): %s", s->method_name,
				   s->guard.msg);
		if (jumped == 1)
			pci_session_cleanup(s);
		goto out_guard;
	}
	pci_session_scan(s);
	d = pci_find(s, bdf, g);
	if (!d)
		goto out_cleanup;
	pci_gpu_read(s, d, g);
	if (g->vendor != NVIDIA_VENDOR_ID) {
		pci_refuse(g, -ENODEV, "%s is not an NVIDIA device (vendor 0x%04x); vmmfs --list shows the NVIDIA GPUs",
			   g->bdf, g->vendor);
		goto out_cleanup;
	}
	if (g->cls != PCI_CLASS_DISPLAY_VGA && g->cls != PCI_CLASS_DISPLAY_3D) {
		pci_refuse(g, -ENODEV,
			   "%s is not an NVIDIA GPU function (class 0x%04x; vmmfs drives class 0x0300/0x0302, usually function .0)",
			   g->bdf, g->cls);
		goto out_cleanup;
	}
	if (pci_gpu_precheck(s, g))
		goto out_cleanup;
	if (pci_bar0_map(s, g, true, &s->bar))
		goto out_cleanup;
	if (pci_rd32(s->bar, NV_PMC_BOOT_0) == 0xffffffffu)
		pci_refuse_all_ones(s, g);
out_cleanup:
	pci_session_cleanup(s);
out_guard:
	pci_guard_leave(&s->guard);
	if (g->err) {
		pci_bar0_unmap(s->bar);
		s->bar = NULL;
	}
	return g->err;
}

int vmmfs_pci_open(const char *bdf, const char *pci_access, struct vmmfs_backend *be,
		   char *err, size_t errlen)
{
	struct pci_session *s;
	struct pci_gpu *g;
	char tmp[8];
	int r;

	if (!err || !errlen) {
		err = tmp;
		errlen = sizeof(tmp);
	}
	err[0] = '\0';
	if (!bdf || !*bdf || !be) {
		snprintf(err, errlen, "no PCI device given: --device=DOMAIN:BUS:DEVICE.FUNCTION");
		return -EINVAL;
	}
	s = vmmfs_calloc(1, sizeof(*s));
	g = vmmfs_calloc(1, sizeof(*g));
	if (!s || !g) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	r = pci_session_parse(s, pci_access, err, errlen);
	if (r)
		goto out_free;
	r = pci_open_guarded(s, g, bdf);
	if (r) {
		snprintf(err, errlen, "%s", g->reason);
		log_info("pci: cannot open %s: %s", bdf, g->reason);
		goto out_free;
	}
	log_info("pci %s: BAR0 (%#llx, 16 MiB) mapped read-write from %s", g->bdf,
		 (unsigned long long)g->bar0, s->bar->path);
	be->ops = &pci_backend_ops;
	be->priv = s->bar;
out_free:
	vmmfs_free(g);
	pci_session_free(s);
	return r;
}

/* ---- vmmfs_pci_list ------------------------------------------------------- */

/* A growing text buffer; the result is plain malloc'ed (the caller frees). */
struct pci_text {
	char *p;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3)))
static void text_printf(struct pci_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;

		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if (t->p && (size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = MAX(t->cap * 2, t->len + (size_t)n + 256);
		char *np = vmmfs_fault_point() ? NULL : realloc(t->p, cap);
		if (!np) {
			t->oom = true;
			return;
		}
		t->p = np;
		t->cap = cap;
	}
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (u + 1 < (int)sizeof(units) - 1 && bytes >= 1024 && !(bytes % 1024)) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, units[u]);
}

/* "16M@0xf6000000", "?@0xf6000000" (size unknown), "-" (none). */
static void fmt_bar(char *buf, size_t len, uint64_t addr, uint64_t size)
{
	char sz[24];

	if (!addr) {
		snprintf(buf, len, "-");
		return;
	}
	if (size)
		fmt_size(sz, sizeof(sz), size);
	else
		snprintf(sz, sizeof(sz), "?");
	snprintf(buf, len, "%s@%#llx", sz, (unsigned long long)addr);
}

/* Identifies a listed GPU: BOOT_0/BOOT_42 through a read-only mapping when
 * nothing forbids reading BAR0, else a guess from the device ID.
 * Returns 0 or -ENOMEM (the listing fails: no half-made rows). */
static int pci_list_identify(const struct pci_session *s, struct pci_gpu *g)
{
	struct pci_bar0 *b = NULL;
	char why[256];

	if (!pci_gpu_precheck(s, g)) {
		if (pci_bar0_map(s, g, false, &b) == -ENOMEM)
			return -ENOMEM;
	}
	if (b) {
		uint32_t boot0 = pci_rd32(b, NV_PMC_BOOT_0);
		uint32_t boot42 = pci_rd32(b, NV_PMC_BOOT_42);

		pci_bar0_unmap(b);
		if (boot0 == 0xffffffffu) {
			pci_refuse_all_ones(s, g);
		} else if (vmmfs_chip_identify(boot0, boot42, &g->chip, why, sizeof(why))) {
			g->chip = NULL;
			pci_refuse(g, -ENODEV, "%s", why);
		} else {
			return 0;
		}
	}
	g->chip = vmmfs_chip_by_pci_id(g->device);
	g->chip_guessed = true;
	return 0;
}

static int pci_gpu_cmp(const void *a, const void *b)
{
	const struct pci_gpu *x = a, *y = b;

	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	if (x->bus != y->bus)
		return x->bus < y->bus ? -1 : 1;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->func < y->func ? -1 : x->func > y->func;
}

enum { COL_ADDR, COL_ID, COL_CHIP, COL_ARCH, COL_MMU, COL_DRIVER, COL_BAR0, COL_BAR1,
       COL_DRIVABLE, NCOLS };
static const char *const pci_list_header[NCOLS] = {
	"ADDRESS", "ID", "CHIP", "ARCH", "MMU", "DRIVER", "BAR0", "BAR1", "DRIVABLE",
};
#define CELL_MAX 80

static void pci_list_cells(const struct pci_gpu *g, char cells[NCOLS][CELL_MAX])
{
	snprintf(cells[COL_ADDR], CELL_MAX, "%s", g->bdf);
	snprintf(cells[COL_ID], CELL_MAX, "%04x:%04x", g->vendor, g->device);
	if (g->chip) {
		snprintf(cells[COL_CHIP], CELL_MAX, "%s%s", g->chip->chipset, g->chip_guessed ? "?" : "");
		snprintf(cells[COL_ARCH], CELL_MAX, "%s", g->chip->arch);
		snprintf(cells[COL_MMU], CELL_MAX, "%d", g->chip->mmu_version);
	} else {
		snprintf(cells[COL_CHIP], CELL_MAX, "?");
		snprintf(cells[COL_ARCH], CELL_MAX, "?");
		snprintf(cells[COL_MMU], CELL_MAX, "?");
	}
	if (!g->driver_known)
		snprintf(cells[COL_DRIVER], CELL_MAX, "?");
	else
		snprintf(cells[COL_DRIVER], CELL_MAX, "%s", g->driver[0] ? g->driver : "-");
	fmt_bar(cells[COL_BAR0], CELL_MAX, g->bar0, g->bar0_size);
	fmt_bar(cells[COL_BAR1], CELL_MAX, g->bar1, g->bar1_size);
	cells[COL_DRIVABLE][0] = '\0';   /* printed from g->reason, unbounded */
}

static void pci_list_format(const struct pci_session *s, const struct pci_gpu *gpus, int n,
			    int scanned, struct pci_text *t)
{
	char (*cells)[NCOLS][CELL_MAX];
	size_t width[NCOLS];
	bool guessed = false;

	if (!n) {
		text_printf(t, "no NVIDIA GPU found (libpci method %s, %d PCI devices)\n", s->method_name,
			    scanned);
		return;
	}
	cells = vmmfs_calloc((size_t)n, sizeof(*cells));
	if (!cells) {
		t->oom = true;
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		width[c] = strlen(pci_list_header[c]);
	for (int i = 0; i < n; i++) {
		pci_list_cells(&gpus[i], cells[i]);
		for (int c = 0; c < NCOLS; c++)
			width[c] = MAX(width[c], strlen(cells[i][c]));
		guessed |= gpus[i].chip_guessed;
	}
	for (int c = 0; c < NCOLS - 1; c++)
		text_printf(t, "%-*s  ", (int)width[c], pci_list_header[c]);
	text_printf(t, "%s\n", pci_list_header[NCOLS - 1]);
	for (int i = 0; i < n; i++) {
		for (int c = 0; c < NCOLS - 1; c++)
			text_printf(t, "%-*s  ", (int)width[c], cells[i][c]);
		if (gpus[i].err)
			text_printf(t, "no: %s\n", gpus[i].reason);
		else
			text_printf(t, "yes\n");
	}
	if (guessed)
		text_printf(t, "?: not read from the chip (BAR0 not read); guessed from the PCI device ID\n");
	vmmfs_free(cells);
}

/* Heap state of one listing (valid across a libpci longjmp). */
struct pci_list {
	struct pci_session *s;
	struct pci_gpu *gpus;
	int n, cap, scanned;
	struct pci_text text;
	int err;
	char reason[PCI_MSG_MAX];
};

/* Collects, identifies and formats the GPUs. Inside the guard. */
static void pci_list_scan(struct pci_list *l)
{
	struct pci_session *s = l->s;

	pci_session_scan(s);
	for (struct pci_dev *d = s->acc->devices; d; d = d->next) {
		l->scanned++;
		pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS);
		if (!pci_is_nvidia_gpu(d))
			continue;
		if (l->n == l->cap) {
			int cap = l->cap ? l->cap * 2 : 8;
			struct pci_gpu *ng = vmmfs_realloc(l->gpus, (size_t)cap * sizeof(*ng));
			if (!ng) {
				l->err = -ENOMEM;
				snprintf(l->reason, sizeof(l->reason), "out of memory");
				return;
			}
			l->gpus = ng;
			l->cap = cap;
		}
		pci_gpu_read(s, d, &l->gpus[l->n]);
		l->n++;
	}
	if (l->n)
		qsort(l->gpus, (size_t)l->n, sizeof(*l->gpus), pci_gpu_cmp);
	for (int i = 0; i < l->n; i++) {
		if (pci_list_identify(s, &l->gpus[i])) {
			l->err = -ENOMEM;
			snprintf(l->reason, sizeof(l->reason), "out of memory");
			return;
		}
	}
	pci_list_format(s, l->gpus, l->n, l->scanned, &l->text);
	if (l->text.oom) {
		l->err = -ENOMEM;
		snprintf(l->reason, sizeof(l->reason), "out of memory");
	}
}

/* Puts a one-line message in *text (NULL if even that fails). */
static void pci_list_message(char **text, const char *msg)
{
	size_t n = strlen(msg);
	char *p = vmmfs_fault_point() ? NULL : malloc(n + 2);

	if (p) {
		memcpy(p, msg, n);
		p[n] = '\n';
		p[n + 1] = '\0';
	}
	*text = p;
}

/* The listing's libpci part, under the guard (see pci_open_guarded). */
static int pci_list_guarded(struct pci_list *l)
{
	int jumped;

	pci_guard_enter(&l->s->guard);
	jumped = setjmp(l->s->guard.jb);
	if (jumped) {
		l->err = pci_guard_errno(&l->s->guard);
		snprintf(l->reason, sizeof(l->reason), "libpci (%s): %s", l->s->method_name,
			 l->s->guard.msg);
		if (jumped == 1)
			pci_session_cleanup(l->s);
		goto out_guard;
	}
	pci_list_scan(l);
	pci_session_cleanup(l->s);
out_guard:
	pci_guard_leave(&l->s->guard);
	return l->err;
}

int vmmfs_pci_list(const char *pci_access, char **text)
{
	struct pci_list *l;
	int r;

	if (!text)
		return -EINVAL;
	*text = NULL;
	l = vmmfs_calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->s = vmmfs_calloc(1, sizeof(*l->s));
	if (!l->s) {
		r = -ENOMEM;
		goto out_free;
	}
	r = pci_session_parse(l->s, pci_access, l->reason, sizeof(l->reason));
	if (r) {
		if (r != -ENOMEM)
			pci_list_message(text, l->reason);
		goto out_free;
	}
	r = pci_list_guarded(l);
	if (r) {
		log_info("pci: listing failed: %s", l->reason);
		free(l->text.p);
		if (r != -ENOMEM)
			pci_list_message(text, l->reason);
		goto out_free;
	}
	*text = l->text.p;
	r = l->n;
out_free:
	vmmfs_free(l->gpus);
	pci_session_free(l->s);
	vmmfs_free(l);
	return r;
}
