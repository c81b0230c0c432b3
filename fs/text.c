/* SPDX-License-Identifier: MIT */
/*
 * Text of the generated files: key value lines, mapping descriptions, the
 * page-table dump, translations. Hot formatters (hex numbers in pagetable
 * and pfns lines) are written by hand; printf is kept for rare lines.
 */
#include "vmmfs_fs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void text_init(struct text *t)
{
	memset(t, 0, sizeof(*t));
}

void text_free(struct text *t)
{
	free(t->buf);
	text_init(t);
}

char *text_take(struct text *t, size_t *len)
{
	char *b;

	text_put(t, "", 0); /* makes sure there is a buffer and a NUL */
	b = t->buf;
	*len = t->len;
	text_init(t);
	return b;
}

static bool text_room(struct text *t, size_t n)
{
	size_t cap;
	char *b;

	if (t->err)
		return false;
	if (t->len + n + 1 <= t->cap)
		return true;
	cap = t->cap ? t->cap : 4096;
	while (cap < t->len + n + 1)
		cap *= 2;
	b = realloc(t->buf, cap);
	if (!b) {
		t->err = -ENOMEM;
		return false;
	}
	t->buf = b;
	t->cap = cap;
	return true;
}

void text_put(struct text *t, const char *s, size_t n)
{
	if (!text_room(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void text_puts(struct text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !text_room(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* 8 nibbles of x (32 bits) into 8 bytes, least significant first. */
static inline uint64_t spread_nibbles(uint64_t x)
{
	x = (x | (x << 16)) & 0x0000ffff0000ffffull;
	x = (x | (x << 8)) & 0x00ff00ff00ff00ffull;
	return (x | (x << 4)) & 0x0f0f0f0f0f0f0f0full;
}

/* Bytes 0..15 to '0'..'9', 'a'..'f'. */
static inline uint64_t nibbles_ascii(uint64_t x)
{
	uint64_t letter = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;

	return x + 0x3030303030303030ull + letter * ('a' - '0' - 10);
}

/* v as 16 hex digits, most significant first, without a loop. */
static inline void hex16(char out[16], uint64_t v)
{
	uint64_t hi = nibbles_ascii(spread_nibbles(v >> 32));
	uint64_t lo = nibbles_ascii(spread_nibbles(v & 0xffffffffull));

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	hi = __builtin_bswap64(hi);
	lo = __builtin_bswap64(lo);
#endif
	memcpy(out, &hi, 8);
	memcpy(out + 8, &lo, 8);
}

void text_hex(struct text *t, uint64_t v, unsigned int width)
{
	unsigned int n = v ? (unsigned int)(67 - __builtin_clzll(v)) / 4 : 1;
	char digits[16], *p;

	if (n < width)
		n = width < 16 ? width : 16;
	if (!text_room(t, n + 2))
		return;
	hex16(digits, v);
	p = t->buf + t->len;
	p[0] = '0';
	p[1] = 'x';
	memcpy(p + 2, digits + 16 - n, n);
	t->len += n + 2;
	t->buf[t->len] = '\0';
}

void text_dec(struct text *t, uint64_t v)
{
	char tmp[20];
	unsigned int n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (!text_room(t, n))
		return;
	for (i = 0; i < n; i++)
		t->buf[t->len++] = tmp[n - 1 - i];
	t->buf[t->len] = '\0';
}

/* "key" padded to width, a space, the value, a newline */
static void text_key(struct text *t, const char *key, unsigned int width)
{
	size_t n = strlen(key);

	text_put(t, key, n);
	while (n++ < width)
		text_put(t, " ", 1);
	text_put(t, " ", 1);
}

void text_kv_u64(struct text *t, const char *key, unsigned int width, uint64_t v)
{
	text_key(t, key, width);
	text_dec(t, v);
	text_put(t, "\n", 1);
}

static void text_kv_hex(struct text *t, const char *key, unsigned int width, uint64_t v,
			unsigned int digits)
{
	text_key(t, key, width);
	text_hex(t, v, digits);
	text_put(t, "\n", 1);
}

static void text_kv_str(struct text *t, const char *key, unsigned int width, const char *v)
{
	text_key(t, key, width);
	text_puts(t, v);
	text_put(t, "\n", 1);
}

const char *text_page_size(uint64_t bytes)
{
	switch (bytes) {
	case 4ull << 10: return "4K";
	case 64ull << 10: return "64K";
	case 128ull << 10: return "128K";
	case 2ull << 20: return "2M";
	case 512ull << 20: return "512M";
	case 1ull << 30: return "1G";
	default: return "?";
	}
}

/* ---- mapping files --------------------------------------------------- */

static int put_run(void *ctx, uint64_t first, uint64_t count)
{
	struct text *t = ctx;

	text_put(t, " ", 1);
	text_hex(t, first, 0);
	if (count > 1) {
		text_put(t, "-", 1);
		text_hex(t, first + count - 1, 0);
	}
	return t->err;
}

int text_mapping(struct text *t, const struct vmmfs_mapping *m)
{
	static const struct { const char *name; size_t off; } sizes[] = {
		{ "512M", offsetof(struct vmmfs_mapping_info, pages_512m) },
		{ "2M", offsetof(struct vmmfs_mapping_info, pages_2m) },
		{ "64K", offsetof(struct vmmfs_mapping_info, pages_64k) },
		{ "4K", offsetof(struct vmmfs_mapping_info, pages_4k) },
	};
	struct vmmfs_mapping_info mi;
	size_t i;

	vmmfs_mapping_get_info(m, &mi);
	text_kv_hex(t, "va", 6, mi.va, 16);
	text_kv_hex(t, "size", 6, mi.size, 0);
	text_kv_u64(t, "pages", 6, mi.npages);
	text_kv_str(t, "access", 6, mi.read_only ? "ro" : "rw");
	text_put(t, "pfns  ", 6);
	vmmfs_mapping_for_each_run(m, put_run, t);
	text_put(t, "\n", 1);
	/* PTEs by page size, largest first, those in use */
	text_put(t, "ptes  ", 6);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t n;
		memcpy(&n, (const char *)&mi + sizes[i].off, sizeof(n));
		if (!n)
			continue;
		text_put(t, " ", 1);
		text_puts(t, sizes[i].name);
		text_put(t, ":", 1);
		text_dec(t, n);
	}
	text_put(t, "\n", 1);
	text_kv_str(t, "alloc", 6, mi.allocated ? "yes" : "no");
	return t->err;
}

/* ---- pagetable ------------------------------------------------------- */

static int put_pt_entry(void *ctx, const struct vmmfs_pt_entry *e)
{
	static const char spaces[] = "                                ";
	struct text *t = ctx;
	int indent = 2 * e->depth;

	if (indent > (int)sizeof(spaces) - 1)
		indent = (int)sizeof(spaces) - 1;
	text_put(t, spaces, (size_t)indent);
	text_puts(t, e->level ? e->level : "?");
	if (e->half) {
		text_put(t, " ", 1);
		text_puts(t, e->half);
	}
	text_put(t, " ", 1);
	text_dec(t, e->first);
	if (e->last != e->first) {
		text_put(t, "-", 1);
		text_dec(t, e->last);
	}
	text_put(t, " va ", 4);
	text_hex(t, e->va_first, 16);
	text_put(t, "-", 1);
	text_hex(t, e->va_last, 16);
	switch (e->kind) {
	case VMMFS_PT_TABLE:
		text_put(t, " table ", 7);
		text_hex(t, e->addr, 16);
		break;
	case VMMFS_PT_PAGE:
		text_put(t, " pa ", 4);
		text_hex(t, e->addr, 16);
		text_put(t, "-", 1);
		text_hex(t, e->addr + (e->va_last - e->va_first), 16);
		text_put(t, " ", 1);
		text_puts(t, e->aperture ? e->aperture : "vid");
		text_puts(t, e->read_only ? " ro " : " rw ");
		text_puts(t, text_page_size(e->page_size));
		break;
	case VMMFS_PT_SPARSE:
		text_put(t, " sparse ", 8);
		text_puts(t, text_page_size(e->page_size));
		break;
	}
	text_put(t, "\n", 1);
	return t->err;
}

int text_pagetable(struct text *t, struct vmmfs_vmm *vmm)
{
	int r = vmmfs_vmm_dump(vmm, put_pt_entry, t);

	return r ? r : t->err;
}

/* ---- translate/0xVA -------------------------------------------------- */

int text_translate(struct text *t, struct vmmfs_fs *fs, struct vmmfs_vmm *vmm, uint64_t va)
{
	static const char *const states[] = {
		[VMMFS_LOOKUP_MAPPED] = "mapped",
		[VMMFS_LOOKUP_UNMAPPED] = "unmapped",
		[VMMFS_LOOKUP_NO_TABLE] = "no_table",
		[VMMFS_LOOKUP_SPARSE] = "sparse",
	};
	const unsigned int w = 12;
	struct vmmfs_hw_translation hw;
	struct vmmfs_lookup lk;
	int r;

	r = vmmfs_vmm_lookup(vmm, va, &lk);
	if (r)
		return r;
	text_kv_hex(t, "va", w, va, 16);
	text_kv_str(t, "state", w, (unsigned int)lk.state < 4 ? states[lk.state] : "?");
	if (lk.state == VMMFS_LOOKUP_MAPPED) {
		text_kv_hex(t, "pa", w, lk.pa, 16);
		text_kv_str(t, "page_size", w, text_page_size(lk.page_size));
		text_kv_str(t, "access", w, lk.read_only ? "ro" : "rw");
	} else if (lk.state == VMMFS_LOOKUP_SPARSE) {
		text_kv_str(t, "page_size", w, text_page_size(lk.page_size));
	}
	/* where the walk ended: the leaf, or the entry that stopped it */
	text_kv_str(t, "level", w, lk.level ? lk.level : "?");
	text_kv_u64(t, "depth", w, (uint64_t)lk.depth);
	text_kv_u64(t, "index", w, lk.index);
	text_kv_hex(t, "entry_addr", w, lk.entry_addr, 16);
	text_kv_hex(t, "entry", w, lk.entry, 16);

	/* what the GPU's own MMU makes of it (the simulated GPU only) */
	r = vmmfs_gpu_hw_translate(fs->gpu, vmmfs_vmm_pdb(vmm), va, &hw);
	if (r == -EOPNOTSUPP)
		return t->err;
	if (r)
		return r;
	switch (hw.result) {
	case VMMFS_HW_OK:
		text_kv_str(t, "hw", w, "mapped");
		text_kv_hex(t, "hw_pa", w, hw.pa, 16);
		text_kv_str(t, "hw_page_size", w, text_page_size(hw.page_size));
		text_kv_str(t, "hw_access", w, hw.read_only ? "ro" : "rw");
		text_kv_str(t, "hw_tlb", w, hw.from_tlb ? "hit" : "miss");
		break;
	case VMMFS_HW_SPARSE:
		text_kv_str(t, "hw", w, "sparse");
		text_kv_str(t, "hw_page_size", w, text_page_size(hw.page_size));
		break;
	case VMMFS_HW_FAULT:
	default:
		text_kv_str(t, "hw", w, "fault");
		text_key(t, "hw_fault", w);
		text_printf(t, "depth %d index %u: %s\n", hw.level, hw.index, hw.reason);
		break;
	}
	return t->err;
}

/* ---- the rest -------------------------------------------------------- */

void text_readme(struct text *t, const struct vmmfs_fs *fs)
{
	text_printf(t,
		"vmmfs %s: the virtual-memory manager of the GPU %s (%s, %s, MMU v%d)\n"
		"\n"
		"gpu/            chip identity, one value per file\n"
		"vram/raw        the VRAM: pread/pwrite at a physical address\n"
		"vram/usage      VRAM pages: total, free, page tables, mapped\n"
		"vas/NAME/       one directory per GPU address space (mkdir / rmdir)\n"
		"  pdb           physical address of its root page directory\n"
		"  maps/FILE     one file per mapping\n"
		"  pagetable     the page-table tree in VRAM\n"
		"  translate/0xVA  what the tables (and the GPU's MMU) make of a VA\n"
		"  mem           the address space as a file: offset = GPU VA\n"
		"  stats         maps, unmaps, TLB flushes, page-table pages\n"
		"stats           register accesses and TLB flushes\n"
		"log             recent events and errors\n"
		"\n"
		"Map 256 VRAM pages, look, unmap:\n"
		"  echo 0x100-0x1ff > vas/0/maps/buf\n"
		"  cat vas/0/maps/buf vas/0/pagetable\n"
		"  rm vas/0/maps/buf\n"
		"Other mapping words: va=ADDR, va=START-END, ro, rw, alloc=SIZE, # comments.\n"
		"See vmmfs(8).\n",
		VMMFS_VERSION_STRING, fs->info->chipset, fs->info->arch, fs->info->backend,
		fs->info->mmu_version);
}

static void text_gpu_attr(struct text *t, const struct vmmfs_gpu_info *info, unsigned int attr)
{
	switch (attr) {
	case GPU_CHIPSET: text_puts(t, info->chipset); break;
	case GPU_ARCH: text_puts(t, info->arch); break;
	case GPU_MMU_VERSION: text_dec(t, (uint64_t)info->mmu_version); break;
	case GPU_VA_BITS: text_dec(t, (uint64_t)info->va_bits); break;
	case GPU_VRAM_SIZE: text_dec(t, info->vram_size); break;
	case GPU_BACKEND: text_puts(t, info->backend); break;
	default: break;
	}
	text_put(t, "\n", 1);
}

static void text_gpu_stats(struct text *t, struct vmmfs_gpu *gpu)
{
	struct vmmfs_gpu_stats st;

	vmmfs_gpu_get_stats(gpu, &st);
	text_kv_u64(t, "mmio_reads", 16, st.mmio_reads);
	text_kv_u64(t, "mmio_writes", 16, st.mmio_writes);
	text_kv_u64(t, "mmio_read_bytes", 16, st.mmio_read_bytes);
	text_kv_u64(t, "mmio_write_bytes", 16, st.mmio_write_bytes);
	text_kv_u64(t, "window_moves", 16, st.window_moves);
	text_kv_u64(t, "tlb_flushes", 16, st.tlb_flushes);
}

static void text_vram_usage(struct text *t, struct vmmfs_gpu *gpu)
{
	struct vmmfs_vram_usage u;

	vmmfs_gpu_get_vram_usage(gpu, &u);
	text_kv_u64(t, "total_pages", 12, u.total_pages);
	text_kv_u64(t, "free_pages", 12, u.free_pages);
	text_kv_u64(t, "pt_pages", 12, u.pt_pages);
	text_kv_u64(t, "mapped_pages", 12, u.mapped_pages);
	text_kv_u64(t, "alloc_pages", 12, u.alloc_pages);
}

static void text_vas_stats(struct text *t, struct vmmfs_vmm *vmm)
{
	struct vmmfs_vmm_stats st;

	vmmfs_vmm_get_stats(vmm, &st);
	text_kv_u64(t, "maps", 17, st.maps);
	text_kv_u64(t, "unmaps", 17, st.unmaps);
	text_kv_u64(t, "tlb_flushes", 17, st.tlb_flushes);
	text_kv_u64(t, "pt_pages", 17, st.pt_pages);
	text_kv_u64(t, "mapped_pages", 17, st.mapped_pages);
	text_kv_u64(t, "mappings", 17, st.mappings);
	text_kv_u64(t, "pending", 17, st.pending);
	text_kv_u64(t, "va_size", 17, st.va_size);
	text_kv_u64(t, "va_free", 17, st.va_free);
	text_kv_u64(t, "quarantined_pages", 17, st.quarantined_pages);
}

/* Content that needs the address space's VMM: taken as a use so rmdir
 * cannot destroy it underneath. */
static int generate_as(struct vmmfs_fs *fs, struct fs_node *n, struct text *t)
{
	struct fs_as *as = n->as;
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	if (!fs_as_get_locked(as)) {
		pthread_mutex_unlock(&fs->lock);
		return -ENOENT;
	}
	pthread_mutex_unlock(&fs->lock);

	switch (n->kind) {
	case N_AS_PDB:
		text_hex(t, vmmfs_vmm_pdb(as->vmm), 16);
		text_put(t, "\n", 1);
		break;
	case N_AS_PAGETABLE:
		r = text_pagetable(t, as->vmm);
		break;
	case N_AS_XLATE:
		r = text_translate(t, fs, as->vmm, n->va);
		break;
	case N_AS_STATS:
		text_vas_stats(t, as->vmm);
		break;
	default:
		r = -EINVAL;
		break;
	}
	fs_as_put(fs, as);
	return r ? r : t->err;
}

int fs_generate(struct vmmfs_fs *fs, struct fs_node *n, struct text *t)
{
	int r = 0;

	switch (n->kind) {
	case N_README:
		text_readme(t, fs);
		break;
	case N_GPU_ATTR:
		text_gpu_attr(t, fs->info, n->attr);
		break;
	case N_VRAM_USAGE:
		text_vram_usage(t, fs->gpu);
		break;
	case N_STATS:
		text_gpu_stats(t, fs->gpu);
		break;
	case N_LOG: {
		char *log = NULL;
		long len = vmmfs_log_snapshot(&log);
		if (len < 0)
			return (int)len;
		text_put(t, log, (size_t)len);
		free(log);
		break;
	}
	case N_AS_PDB:
	case N_AS_PAGETABLE:
	case N_AS_XLATE:
	case N_AS_STATS:
		return generate_as(fs, n, t);
	case N_MAPFILE:
		pthread_mutex_lock(&n->map_lock);
		if (n->state == MAP_LIVE)
			r = text_mapping(t, n->mapping);
		else
			r = n->state == MAP_WRITING ? -EBUSY : -ENOENT;
		pthread_mutex_unlock(&n->map_lock);
		return r;
	default:
		return -EINVAL;
	}
	return t->err;
}
