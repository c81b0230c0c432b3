/* SPDX-License-Identifier: MIT */
/*
 * Text of the generated files: key value lines, translations, mapping
 * descriptions and the page-table dump, and the streams that deliver the
 * last two as they are read.
 *
 * Small files are generated whole at open (a few hundred bytes, printf is
 * fine there). Mapping descriptions and pagetable can be hundreds of
 * megabytes: their lines are formatted straight into the chunks of a
 * stream with table-free SWAR hex conversion (16 digits in a handful of
 * 64-bit operations; on x86, the two addresses of a range at once in SSE2
 * registers), never through printf, and never all at once.
 */
#include "vmmfs_fs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

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
 * cannot destroy it underneath, and announced so no stream producer holds
 * its lock meanwhile. */
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
	case N_AS_XLATE:
		fs_gate_enter(fs);
		r = text_translate(t, fs, as->vmm, n->va);
		fs_gate_leave(fs);
		break;
	case N_AS_STATS:
		fs_gate_enter(fs);
		text_vas_stats(t, as->vmm);
		fs_gate_leave(fs);
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
	case N_AS_XLATE:
	case N_AS_STATS:
		return generate_as(fs, n, t);
	default:
		return -EINVAL;
	}
	return t->err;
}

/* ---- fast formatting ------------------------------------------------- *
 *
 * Writers into a buffer with room: each returns the end of what it wrote.
 * put_hex() stores 8 bytes at a time and may write up to 8 bytes past its
 * end, which the next writer overwrites; callers keep REC_SLACK bytes
 * spare. (Pagetable lines copy bigger fixed-size pieces: see there.) */

#define REC_SLACK 16

/* "0x" and 16 digits */
static inline char *put_hex16(char *p, uint64_t v)
{
	p[0] = '0';
	p[1] = 'x';
	hex16(p + 2, v);
	return p + 18;
}

static inline unsigned int hex_len(uint64_t v)
{
	return v ? (unsigned int)(67 - __builtin_clzll(v)) / 4 : 1;
}

/* "0x" and v without leading zeros */
static inline char *put_hex(char *p, uint64_t v)
{
	unsigned int n = hex_len(v);

	p[0] = '0';
	p[1] = 'x';
	p += 2;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	{
		/* the digits as they lie in memory, most significant first */
		uint64_t lo = __builtin_bswap64(nibbles_ascii(spread_nibbles(v & 0xffffffffull)));

		if (n <= 8) {
			lo >>= 64 - 8 * n;
			memcpy(p, &lo, 8);
		} else {
			uint64_t hi = __builtin_bswap64(nibbles_ascii(spread_nibbles(v >> 32)));

			hi >>= 128 - 8 * n;
			memcpy(p, &hi, 8);
			memcpy(p + n - 8, &lo, 8);
		}
	}
#else
	{
		char digits[16];

		hex16(digits, v);
		memcpy(p, digits + 16 - n, n);
	}
#endif
	return p + n;
}

static inline char *put_dec(char *p, uint64_t v)
{
	char tmp[20];
	unsigned int n = 0;

	if (v < 10) { /* entry indices mostly: no loop, no call */
		*p = (char)('0' + v);
		return p + 1;
	}
	if (v < 100) {
		p[0] = (char)('0' + v / 10);
		p[1] = (char)('0' + v % 10);
		return p + 2;
	}
	if (v < 1000) {
		p[0] = (char)('0' + v / 100);
		p[1] = (char)('0' + v / 10 % 10);
		p[2] = (char)('0' + v % 10);
		return p + 3;
	}
	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(p, tmp + sizeof(tmp) - n, n);
	return p + n;
}

/* ---- mapping descriptions -------------------------------------------- *
 *
 *   va     0x0000000000200000
 *   size   0x100000
 *   pages  256
 *   access rw
 *   pfns   0x100-0x1ff 0x300
 *   ptes   4K:256
 *   alloc  no
 *
 * As a stream: the lines up to "pfns  " are one record, each run " A-B"
 * one, and the rest one. Its size is counted from the runs without
 * formatting them. */

struct fs_frozen {
	struct vmmfs_mapping_info info;
	size_t nruns;
	struct vmmfs_vmm_run runs[];
};

/* Bytes of " 0xA-0xB" (" 0xA" for one page). */
static inline uint64_t run_len(uint64_t first, uint64_t count)
{
	return 3 + hex_len(first) + (count > 1 ? 3 + hex_len(first + count - 1) : 0);
}

static inline char *put_run(char *p, uint64_t first, uint64_t count)
{
	*p++ = ' ';
	p = put_hex(p, first);
	if (count > 1) {
		*p++ = '-';
		p = put_hex(p, first + count - 1);
	}
	return p;
}

static void desc_head(struct text *t, const struct vmmfs_mapping_info *mi)
{
	text_kv_hex(t, "va", 6, mi->va, 16);
	text_kv_hex(t, "size", 6, mi->size, 0);
	text_kv_u64(t, "pages", 6, mi->npages);
	text_kv_str(t, "access", 6, mi->read_only ? "ro" : "rw");
	text_put(t, "pfns  ", 6);
}

static void desc_tail(struct text *t, const struct vmmfs_mapping_info *mi)
{
	static const struct { const char *name; size_t off; } sizes[] = {
		{ "512M", offsetof(struct vmmfs_mapping_info, pages_512m) },
		{ "2M", offsetof(struct vmmfs_mapping_info, pages_2m) },
		{ "64K", offsetof(struct vmmfs_mapping_info, pages_64k) },
		{ "4K", offsetof(struct vmmfs_mapping_info, pages_4k) },
	};
	size_t i;

	text_put(t, "\n", 1);
	/* PTEs by page size, largest first, those in use */
	text_put(t, "ptes  ", 6);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t n;
		memcpy(&n, (const char *)mi + sizes[i].off, sizeof(n));
		if (!n)
			continue;
		text_put(t, " ", 1);
		text_puts(t, sizes[i].name);
		text_put(t, ":", 1);
		text_dec(t, n);
	}
	text_put(t, "\n", 1);
	text_kv_str(t, "alloc", 6, mi->allocated ? "yes" : "no");
}

static int count_run(void *ctx, uint64_t first, uint64_t count)
{
	*(uint64_t *)ctx += run_len(first, count);
	return 0;
}

static uint64_t desc_size(const struct vmmfs_mapping_info *mi, uint64_t runs_bytes)
{
	struct text t;
	uint64_t size;

	text_init(&t);
	desc_head(&t, mi);
	desc_tail(&t, mi);
	size = t.err ? 0 : t.len + runs_bytes;
	text_free(&t);
	return size;
}

int fs_mapping_size_locked(struct fs_node *n, uint64_t *size)
{
	struct vmmfs_mapping_info mi;
	uint64_t runs = 0;

	if (!n->desc_size) {
		if (n->state != MAP_LIVE || !n->mapping)
			return -ENOENT;
		vmmfs_mapping_get_info(n->mapping, &mi);
		vmmfs_mapping_for_each_run(n->mapping, count_run, &runs);
		n->desc_size = desc_size(&mi, runs);
		if (!n->desc_size)
			return -ENOMEM;
	}
	*size = n->desc_size;
	return 0;
}

struct freeze_ctx {
	struct fs_frozen *f;
};

static int freeze_run(void *ctx, uint64_t first, uint64_t count)
{
	struct fs_frozen *f = ((struct freeze_ctx *)ctx)->f;

	f->runs[f->nruns].first = first;
	f->runs[f->nruns++].count = count;
	return 0;
}

int fs_mapping_freeze_locked(struct fs_node *n, const struct vmmfs_mapping *m)
{
	struct vmmfs_mapping_info mi;
	struct freeze_ctx c;
	uint64_t size;

	if (n->frozen)
		return 0;
	if (fs_mapping_size_locked(n, &size))
		return -ENOMEM;
	vmmfs_mapping_get_info(m, &mi);
	c.f = malloc(sizeof(*c.f) + mi.nruns * sizeof(c.f->runs[0]));
	if (!c.f)
		return -ENOMEM;
	c.f->info = mi;
	c.f->nruns = 0;
	vmmfs_mapping_for_each_run(m, freeze_run, &c);
	n->frozen = c.f;
	return 0;
}

void fs_frozen_free(struct fs_frozen *f)
{
	free(f);
}

/* ---- pagetable lines ------------------------------------------------- *
 *
 *   INDENT LEVEL[ HALF] FIRST[-LAST] va 0xVA-0xVA TAIL
 *
 * TAIL is " table 0xPA", " pa 0xPA-0xPA APERTURE rw|ro SIZE" or
 * " sparse SIZE", then a newline. What comes before the index and the end
 * of a page or sparse line after its addresses are the same line after
 * line (the entries of one table): each is kept whole, made again only
 * when what it is made of changes, and copied with a few fixed-size
 * stores. Names are at most 15 bytes (longer ones are cut there). */

struct pt_piece {
	bool set;
	int depth;                   /* prefix: depth, level, half */
	const char *a, *b;           /* prefix: level, half; tail: aperture */
	bool read_only;              /* tail */
	uint64_t page_size;          /* tail */
	size_t len;
	char buf[64];
};

struct pt_names {
	struct pt_piece prefix, page, sparse;
};

static inline size_t name_len(const char *s)
{
	size_t n = strlen(s);

	return n > 15 ? 15 : n;
}

static void pt_piece_add(struct pt_piece *c, const char *s, size_t n)
{
	memcpy(c->buf + c->len, s, n);
	c->len += n;
}

/* INDENT LEVEL[ HALF] and a space: at most 32 + 15 + 1 + 15 + 1 = 64. */
static void pt_prefix_make(struct pt_piece *c, int depth, const char *level, const char *half)
{
	memset(c, 0, sizeof(*c));
	c->set = true;
	c->depth = depth;
	c->a = level;
	c->b = half;
	memset(c->buf, ' ', 2 * (size_t)depth);
	c->len = 2 * (size_t)depth;
	pt_piece_add(c, level, name_len(level));
	if (half) {
		pt_piece_add(c, " ", 1);
		pt_piece_add(c, half, name_len(half));
	}
	pt_piece_add(c, " ", 1);
}

/* " APERTURE rw|ro SIZE\n" (at most 36), or " sparse SIZE\n" (aper NULL). */
static void pt_tail_make(struct pt_piece *c, const char *aper, bool read_only,
			 uint64_t page_size)
{
	const char *size = text_page_size(page_size);

	memset(c, 0, sizeof(*c));
	c->set = true;
	c->a = aper;
	c->read_only = read_only;
	c->page_size = page_size;
	if (aper) {
		pt_piece_add(c, " ", 1);
		pt_piece_add(c, aper, name_len(aper));
		pt_piece_add(c, read_only ? " ro " : " rw ", 4);
	} else {
		pt_piece_add(c, " sparse ", 8);
	}
	pt_piece_add(c, size, name_len(size));
	pt_piece_add(c, "\n", 1);
}

static inline char *pt_piece_put(char *p, const struct pt_piece *c)
{
	memcpy(p, c->buf, sizeof(c->buf));
	return p + c->len;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* 16 nibbles (one a byte, most significant first) to hex digits. */
static inline __m128i nibbles_hex_sse2(__m128i n)
{
	__m128i letter = _mm_and_si128(_mm_cmpgt_epi8(n, _mm_set1_epi8(9)),
				       _mm_set1_epi8('a' - '0' - 10));

	return _mm_add_epi8(n, _mm_add_epi8(_mm_set1_epi8('0'), letter));
}

/* "0x" 16 digits of a "-0x" 16 digits of b: both numbers at once. */
static inline char *put_hex16_pair(char *p, uint64_t a, uint64_t b)
{
	const __m128i lowmask = _mm_set1_epi8(0x0f);
	__m128i v = _mm_set_epi64x((long long)__builtin_bswap64(b),
				   (long long)__builtin_bswap64(a));
	__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), lowmask);
	__m128i lo = _mm_and_si128(v, lowmask);

	memcpy(p, "0x", 2);
	_mm_storeu_si128((__m128i *)(void *)(p + 2), nibbles_hex_sse2(_mm_unpacklo_epi8(hi, lo)));
	memcpy(p + 18, "-0x", 3);
	_mm_storeu_si128((__m128i *)(void *)(p + 21), nibbles_hex_sse2(_mm_unpackhi_epi8(hi, lo)));
	return p + 37;
}
#else
static inline char *put_hex16_pair(char *p, uint64_t a, uint64_t b)
{
	p = put_hex16(p, a);
	*p++ = '-';
	return put_hex16(p, b);
}
#endif

/* One pagetable line: at most 64 + 21 + 41 + 41 + 36 = 203 bytes. The
 * 64-byte copy of a tail may write past the line's end, at most up to byte
 * 64 + 21 + 41 + 41 + 64 = 231: within REC_MAX. */
static char *put_pt_entry(char *p, const struct vmmfs_pt_entry *e, struct pt_names *nc)
{
	int depth = e->depth < 0 ? 0 : e->depth > 16 ? 16 : e->depth;
	const char *level = e->level ? e->level : "?";
	struct pt_piece *c = &nc->prefix;

	if (!c->set || c->depth != depth || c->a != level || c->b != e->half)
		pt_prefix_make(c, depth, level, e->half);
	p = pt_piece_put(p, c);
	p = put_dec(p, e->first);
	if (e->last != e->first) {
		*p++ = '-';
		p = put_dec(p, e->last);
	}
	memcpy(p, " va ", 4);
	p = put_hex16_pair(p + 4, e->va_first, e->va_last);
	switch (e->kind) {
	case VMMFS_PT_TABLE:
		memcpy(p, " table ", 7);
		p = put_hex16(p + 7, e->addr);
		*p++ = '\n';
		break;
	case VMMFS_PT_PAGE: {
		const char *aper = e->aperture ? e->aperture : "vid";

		memcpy(p, " pa ", 4);
		p = put_hex16_pair(p + 4, e->addr, e->addr + (e->va_last - e->va_first));
		c = &nc->page;
		if (!c->set || c->a != aper || c->read_only != e->read_only ||
		    c->page_size != e->page_size)
			pt_tail_make(c, aper, e->read_only, e->page_size);
		p = pt_piece_put(p, c);
		break;
	}
	case VMMFS_PT_SPARSE:
		c = &nc->sparse;
		if (!c->set || c->page_size != e->page_size)
			pt_tail_make(c, NULL, false, e->page_size);
		p = pt_piece_put(p, c);
		break;
	default:
		*p++ = '\n';
		break;
	}
	return p;
}

/* ---- streams --------------------------------------------------------- *
 *
 * A stream keeps the text of one open file in chunks: the ones the reader
 * may still want (KEEP_BEHIND bytes behind its latest read), and at most
 * AHEAD bytes ahead of it. Memory per open file: MAX_CHUNKS chunks.
 *
 * The text is made in passes over the source (vmmfs_vmm_dump, or the
 * mapping's runs), one record at a time (a line, a run), each formatted
 * straight into a chunk. The first pass runs in the reader's thread and
 * stops when it is AHEAD of the read; later passes run in a thread of the
 * stream that waits for the reader when it is AHEAD. A pass that stops
 * early (the reader is gone for IDLE_PAUSE_MS, or someone else needs the
 * VMM or the mapping) is *paused*: the next pass skips as many records as
 * were made and goes on from there. So a sequential reader costs one pass
 * over the source, plus a skip of what the first pass made.
 *
 * A read before what is kept, or far beyond what is made, starts a new
 * pass that formats and discards everything up to that offset (the text is
 * then made afresh: a pagetable may have changed meanwhile). A read at or
 * after the end of a complete pass is the end of the file.
 *
 * Between passes the source may change (pagetable only: a mapping's
 * description never does); the text then goes on from the same record
 * number, so lines are never torn, as with /proc files.
 */

#define CHUNK_SIZE (64u << 10)
#define AHEAD (1u << 20)
#define KEEP_BEHIND (256u << 10)
#define MAX_READ (1u << 20)      /* FUSE's largest read */
#define MAX_CHUNKS ((KEEP_BEHIND + MAX_READ + AHEAD) / CHUNK_SIZE + 4)
#define SEEK_AHEAD (8ull << 20)  /* a read further past what is made starts afresh */
#define IDLE_PAUSE_MS 100
#define REC_MAX 256              /* longest record, REC_SLACK included */
#define PASS_STOP 1              /* a record callback's "end this pass" */
#define NO_SIZE UINT64_MAX

struct fs_chunk {
	struct fs_chunk *next;
	uint64_t off;                /* file offset of data[0] */
	size_t len;
	char data[CHUNK_SIZE];
};

enum stream_state {
	ST_IDLE = 0,                 /* no pass yet, or reset */
	ST_RUNNING,
	ST_PAUSED,                   /* a pass stopped early: resume after `records` */
	ST_DONE,                     /* the last pass made everything: `total` bytes */
	ST_FAILED,                   /* the last pass failed with err */
};

struct fs_stream {
	struct vmmfs_fs *fs;
	struct fs_node *node;
	struct fs_as *as;            /* pagetable: a use of the VMM */
	struct fs_stream *prev, *next; /* fs->streams, under fs->gate_lock */

	pthread_mutex_t read_lock;   /* one read at a time: it owns the kept chunks */
	pthread_mutex_t lock;        /* the rest */
	pthread_cond_t cond;         /* producer <-> reader */

	struct fs_chunk *head, *tail; /* made, in file order */
	struct fs_chunk *spare;
	unsigned int nchunks;        /* allocated: made, spare and the producer's */
	uint64_t hi;                 /* end of what is made */
	uint64_t keep;               /* chunks that end at or before it go */
	uint64_t want;               /* end of the latest read */
	uint64_t wait_hi;            /* a reader waits for the text up to there (0: none) */
	enum stream_state state;
	int err;
	bool stop;                   /* the pass must end (restart, close); atomic reads */
	bool thread_live;            /* a thread to join */
	pthread_t thread;
	uint64_t records;            /* records of the pass so far, skipped included */
	uint64_t total;              /* size found by the last complete pass */

	/* the pass's own */
	bool in_reader;              /* run by a reader: never waits */
	struct fs_chunk *cur;        /* being filled */
	uint64_t pos;                /* offset of the next byte made */
	uint64_t skip_records;       /* resume: records to pass over */
	uint64_t skip_bytes;         /* seek: bytes to discard first */
	struct pt_names names;
};

void fs_gate_enter(struct vmmfs_fs *fs)
{
	struct fs_stream *s;

	pthread_mutex_lock(&fs->gate_lock);
	fs->gate_waiters++;
	/* a producer waiting for its reader looks again, and pauses */
	for (s = fs->streams; s; s = s->next) {
		pthread_mutex_lock(&s->lock);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&fs->gate_lock);
}

void fs_gate_leave(struct vmmfs_fs *fs)
{
	pthread_mutex_lock(&fs->gate_lock);
	fs->gate_waiters--;
	pthread_mutex_unlock(&fs->gate_lock);
}

static bool gate_busy(struct vmmfs_fs *fs)
{
	return __atomic_load_n(&fs->gate_waiters, __ATOMIC_ACQUIRE) != 0;
}

/* Under s->lock. */
static void chunk_put_locked(struct fs_stream *s, struct fs_chunk *c)
{
	c->next = s->spare;
	s->spare = c;
}

static struct fs_chunk *chunk_get_locked(struct fs_stream *s)
{
	struct fs_chunk *c = s->spare;

	if (c) {
		s->spare = c->next;
	} else {
		if (s->nchunks >= MAX_CHUNKS)
			return NULL;
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		s->nchunks++;
	}
	c->next = NULL;
	c->len = 0;
	return c;
}

/* Drops made chunks that end at or before s->keep. */
static void chunks_trim_locked(struct fs_stream *s)
{
	while (s->head && s->head->off + s->head->len <= s->keep) {
		struct fs_chunk *c = s->head;

		s->head = c->next;
		if (!s->head)
			s->tail = NULL;
		chunk_put_locked(s, c);
	}
}

/* Drops everything made, for a fresh pass. */
static void chunks_reset_locked(struct fs_stream *s)
{
	while (s->head) {
		struct fs_chunk *c = s->head;

		s->head = c->next;
		chunk_put_locked(s, c);
	}
	s->tail = NULL;
}

static void chunks_free(struct fs_stream *s)
{
	chunks_reset_locked(s);
	if (s->cur)
		chunk_put_locked(s, s->cur);
	s->cur = NULL;
	while (s->spare) {
		struct fs_chunk *c = s->spare;

		s->spare = c->next;
		free(c);
	}
	s->nchunks = 0;
}

/* Hands the pass's chunk to readers. Under s->lock. */
static void publish_locked(struct fs_stream *s)
{
	struct fs_chunk *c = s->cur;

	if (!c || !c->len)
		return;
	s->cur = NULL;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->hi = c->off + c->len;
	/* the reader, once what it waits for is there (not at every chunk) */
	if (s->wait_hi && s->hi >= s->wait_hi)
		pthread_cond_broadcast(&s->cond);
}

/* The pass needs a chunk with room for a record: publishes the full one,
 * then waits until the reader is less than AHEAD bytes behind. Returns 0,
 * or PASS_STOP when the pass must end (stopped, or paused: the reader is
 * gone, or someone needs what the pass holds), or -ENOMEM. */
static int pass_next_chunk(struct fs_stream *s)
{
	struct timespec until;
	bool timed = false;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	publish_locked(s);
	chunks_trim_locked(s);
	for (;;) {
		if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
			r = PASS_STOP;
			break;
		}
		if (s->pos < s->want + AHEAD) {
			if (!s->cur)
				s->cur = chunk_get_locked(s);
			if (s->cur) {
				s->cur->off = s->pos;
				break;
			}
			if (s->nchunks < MAX_CHUNKS) {
				r = -ENOMEM;
				break;
			}
		}
		/* ahead of the reader (or out of chunks): wait for it, unless
		 * waiting would keep others waiting */
		if (s->in_reader || gate_busy(s->fs)) {
			s->state = ST_PAUSED;
			r = PASS_STOP;
			break;
		}
		if (!timed) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += IDLE_PAUSE_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			timed = true;
		}
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT &&
		    s->pos >= s->want + AHEAD) {
			s->state = ST_PAUSED;
			r = PASS_STOP;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Room for one record, or NULL with *r set when the pass must end. */
static inline char *rec_begin(struct fs_stream *s, int *r)
{
	if (!s->cur || CHUNK_SIZE - s->cur->len < REC_MAX) {
		*r = pass_next_chunk(s);
		if (*r)
			return NULL;
	}
	return s->cur->data + s->cur->len;
}

/* The record is [start, end). */
static inline void rec_end(struct fs_stream *s, char *start, char *end)
{
	size_t n = (size_t)(end - start);

	s->records++;
	s->pos += n;
	if (!s->skip_bytes) {
		s->cur->len += n;
		return;
	}
	/* a fresh pass for a read further on: drop what comes before it */
	if (n <= s->skip_bytes) {
		s->skip_bytes -= n;
		s->cur->off = s->pos;
		return;
	}
	memmove(start, start + s->skip_bytes, n - s->skip_bytes);
	s->cur->off = s->pos - (n - s->skip_bytes);
	s->cur->len += n - s->skip_bytes;
	s->skip_bytes = 0;
}

/* A resumed pass passes over the records made before. Returns 1 for a
 * record to pass over, 0 for one to make, PASS_STOP when the pass must end
 * (looked at now and then while nothing is kept). */
static inline int rec_skip(struct fs_stream *s)
{
	if (!s->skip_records && !s->skip_bytes)
		return 0;
	if (!(s->records & 1023) && __atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		return PASS_STOP;
	if (!s->skip_records)
		return 0;
	s->skip_records--;
	s->records++;
	return 1;
}

/* One record from a small text. */
static int rec_text(struct fs_stream *s, const struct text *t)
{
	char *p;
	int r = 0;

	r = rec_skip(s);
	if (r)
		return r == 1 ? 0 : r;
	if (t->err)
		return t->err;
	if (t->len > REC_MAX - REC_SLACK)
		return -EOVERFLOW;
	p = rec_begin(s, &r);
	if (!p)
		return r;
	memcpy(p, t->buf, t->len);
	rec_end(s, p, p + t->len);
	return 0;
}

static int pt_record(void *ctx, const struct vmmfs_pt_entry *e)
{
	struct fs_stream *s = ctx;
	char *p;
	int r = rec_skip(s);

	if (r)
		return r == 1 ? 0 : r;
	p = rec_begin(s, &r);
	if (!p)
		return r;
	rec_end(s, p, put_pt_entry(p, e, &s->names));
	return 0;
}

static int run_record(void *ctx, uint64_t first, uint64_t count)
{
	struct fs_stream *s = ctx;
	char *p;
	int r = rec_skip(s);

	if (r)
		return r == 1 ? 0 : r;
	p = rec_begin(s, &r);
	if (!p)
		return r;
	rec_end(s, p, put_run(p, first, count));
	return 0;
}

static int gen_pagetable(struct fs_stream *s)
{
	return vmmfs_vmm_dump(s->as->vmm, pt_record, s);
}

/* The description, from the live mapping (holding a reader reference that
 * rm waits for) or from what rm froze for open files. */
static int gen_mapping(struct fs_stream *s)
{
	struct fs_node *n = s->node;
	struct vmmfs_mapping_info mi;
	const struct vmmfs_mapping *m = NULL;
	const struct fs_frozen *f = NULL;
	struct text t;
	int r = 0;

	pthread_mutex_lock(&n->map_lock);
	while (n->unlinking)
		pthread_cond_wait(&n->map_cond, &n->map_lock);
	if (n->state == MAP_LIVE && n->mapping) {
		m = n->mapping;
		n->map_readers++;
	} else if (n->frozen) {
		f = n->frozen;
	} else {
		r = -EIO; /* removed, and rm could not keep the text */
	}
	pthread_mutex_unlock(&n->map_lock);
	if (r)
		return r;

	if (m)
		vmmfs_mapping_get_info(m, &mi);
	else
		mi = f->info;
	text_init(&t);
	desc_head(&t, &mi);
	r = rec_text(s, &t);
	if (!r) {
		if (m) {
			r = vmmfs_mapping_for_each_run(m, run_record, s);
		} else {
			size_t i;
			for (i = 0; i < f->nruns && !r; i++)
				r = run_record(s, f->runs[i].first, f->runs[i].count);
		}
	}
	if (!r) {
		t.len = 0;
		desc_tail(&t, &mi);
		r = rec_text(s, &t);
	}
	text_free(&t);

	if (m) {
		pthread_mutex_lock(&n->map_lock);
		if (--n->map_readers == 0)
			pthread_cond_broadcast(&n->map_cond);
		pthread_mutex_unlock(&n->map_lock);
	}
	return r;
}

/* Runs one pass (in the reader's thread or the stream's) and records how
 * it ended. */
static void pass_run(struct fs_stream *s)
{
	int r = s->node->kind == N_AS_PAGETABLE ? gen_pagetable(s) : gen_mapping(s);

	pthread_mutex_lock(&s->lock);
	publish_locked(s);
	if (s->cur) {
		chunk_put_locked(s, s->cur);
		s->cur = NULL;
	}
	if (r == PASS_STOP) {
		if (s->state == ST_RUNNING)
			s->state = ST_PAUSED; /* stopped */
	} else if (r) {
		s->state = ST_FAILED;
		s->err = r;
	} else {
		s->state = ST_DONE;
		s->total = s->pos;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *pass_thread(void *arg)
{
	pass_run(arg);
	return NULL;
}

/* Sets up a pass: resume after the records made (resume), or from the
 * start, discarding up to off. Under s->lock, no pass running. */
static void pass_setup_locked(struct fs_stream *s, bool resume, uint64_t off)
{
	__atomic_store_n(&s->stop, false, __ATOMIC_RELAXED);
	s->state = ST_RUNNING;
	s->err = 0;
	s->cur = NULL;
	if (resume) {
		s->skip_records = s->records;
		s->skip_bytes = 0;
		s->pos = s->hi;
	} else {
		chunks_reset_locked(s);
		s->skip_records = 0;
		s->skip_bytes = off;
		s->pos = 0;
		s->hi = off;
		s->total = NO_SIZE;
	}
	s->records = 0;
}

/* Ends the running pass, if any, and joins its thread. Called with
 * read_lock and s->lock held; drops s->lock meanwhile. */
static void pass_end_locked(struct fs_stream *s)
{
	if (s->state == ST_RUNNING)
		__atomic_store_n(&s->stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->cond);
	if (s->thread_live) {
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		pthread_mutex_lock(&s->lock);
		s->thread_live = false;
	}
	if (s->state == ST_RUNNING)
		s->state = ST_PAUSED;
	__atomic_store_n(&s->stop, false, __ATOMIC_RELAXED);
}

static void reply_chunks_locked(struct fs_stream *s, fuse_req_t req, uint64_t off, uint64_t end)
{
	struct iovec iov[MAX_CHUNKS];
	struct fs_chunk *c;
	int n = 0;

	for (c = s->head; c && c->off < end; c = c->next) {
		uint64_t a = off > c->off ? off : c->off;
		uint64_t b = end < c->off + c->len ? end : c->off + c->len;

		if (b <= a)
			continue;
		iov[n].iov_base = c->data + (a - c->off);
		iov[n].iov_len = (size_t)(b - a);
		n++;
	}
	/* the chunks stay: only this reader drops them, and it holds read_lock */
	pthread_mutex_unlock(&s->lock);
	fuse_reply_iov(req, iov, n);
	pthread_mutex_lock(&s->lock);
}

void fs_stream_read(struct fs_stream *s, fuse_req_t req, size_t size, off_t off_)
{
	uint64_t off = (uint64_t)off_, end;
	bool set_up = false, resume;

	if (size > MAX_READ)
		size = MAX_READ;
	pthread_mutex_lock(&s->read_lock);
	pthread_mutex_lock(&s->lock);
	if (off_ < 0 || size == 0 || (s->total != NO_SIZE && off >= s->total)) {
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_unlock(&s->read_lock);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	end = off + size;
	/* before what is kept, or far beyond what is made: afresh */
	if ((s->state != ST_IDLE && off < (s->head ? s->head->off : s->hi)) ||
	    off > s->hi + SEEK_AHEAD) {
		pass_end_locked(s);
		pass_setup_locked(s, false, off);
		s->state = ST_IDLE;
		set_up = true;
	}
	s->keep = off > KEEP_BEHIND ? off - KEEP_BEHIND : 0;
	chunks_trim_locked(s);
	s->want = end;
	pthread_cond_broadcast(&s->cond); /* a producer waiting for its reader */

	for (;;) {
		if (s->hi >= end || (s->hi > off && (s->state == ST_DONE || s->state == ST_FAILED))) {
			reply_chunks_locked(s, req, off, s->hi < end ? s->hi : end);
			break;
		}
		if (s->state == ST_DONE) {
			pthread_mutex_unlock(&s->lock);
			fuse_reply_buf(req, NULL, 0);
			pthread_mutex_unlock(&s->read_lock);
			return;
		}
		if (s->state == ST_FAILED) {
			int err = s->err == -ENOMEM ? ENOMEM : EIO;

			s->state = ST_PAUSED; /* a later read tries again */
			pthread_mutex_unlock(&s->lock);
			fuse_reply_err(req, err);
			pthread_mutex_unlock(&s->read_lock);
			return;
		}
		if (s->state == ST_RUNNING) {
			s->wait_hi = end;
			pthread_cond_wait(&s->cond, &s->lock);
			s->wait_hi = 0;
			continue;
		}
		/* idle or paused: another pass, here first, then in a thread */
		if (s->thread_live) {
			pthread_mutex_unlock(&s->lock);
			pthread_join(s->thread, NULL);
			pthread_mutex_lock(&s->lock);
			s->thread_live = false;
		}
		resume = !set_up && s->state == ST_PAUSED;
		if (!set_up)
			pass_setup_locked(s, resume, 0);
		set_up = false;
		s->state = ST_RUNNING;
		if (resume) {
			s->in_reader = false;
			if (!pthread_create(&s->thread, NULL, pass_thread, s)) {
				s->thread_live = true;
				continue;
			}
		}
		/* a fresh pass (or no thread to be had): here, up to AHEAD */
		s->in_reader = true;
		pthread_mutex_unlock(&s->lock);
		pass_run(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->read_lock);
}

int fs_stream_open(struct vmmfs_fs *fs, struct fs_node *n, struct fs_stream **out)
{
	struct fs_stream *s = calloc(1, sizeof(*s));
	int r = 0;

	if (!s)
		return -ENOMEM;
	s->fs = fs;
	s->node = n;
	s->total = NO_SIZE;
	if (n->kind == N_AS_PAGETABLE) {
		pthread_mutex_lock(&fs->lock);
		if (fs_as_get_locked(n->as))
			s->as = n->as;
		else
			r = -ENOENT;
		pthread_mutex_unlock(&fs->lock);
	} else {
		pthread_mutex_lock(&n->map_lock);
		if (n->state == MAP_LIVE)
			n->map_opens++;
		else
			r = n->state == MAP_WRITING ? -EBUSY : -ENOENT;
		pthread_mutex_unlock(&n->map_lock);
	}
	if (r) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->read_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_lock(&fs->gate_lock);
	s->next = fs->streams;
	if (fs->streams)
		fs->streams->prev = s;
	fs->streams = s;
	pthread_mutex_unlock(&fs->gate_lock);
	*out = s;
	return 0;
}

void fs_stream_close(struct fs_stream *s)
{
	struct vmmfs_fs *fs = s->fs;
	struct fs_node *n = s->node;

	pthread_mutex_lock(&s->read_lock);
	pthread_mutex_lock(&s->lock);
	pass_end_locked(s);
	chunks_free(s);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->read_lock);

	pthread_mutex_lock(&fs->gate_lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		fs->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&fs->gate_lock);

	if (s->as) {
		fs_as_put(fs, s->as);
	} else {
		pthread_mutex_lock(&n->map_lock);
		if (--n->map_opens == 0 && n->state != MAP_LIVE && n->frozen) {
			fs_frozen_free(n->frozen);
			n->frozen = NULL;
		}
		pthread_mutex_unlock(&n->map_lock);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->read_lock);
	free(s);
}
