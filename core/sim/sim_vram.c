/* SPDX-License-Identifier: MIT */
/*
 * Simulated VRAM: host memory only for what was written.
 *
 * The whole VRAM is one mapping with MAP_NORESERVE, so an 80 GiB board costs
 * address space, not memory. A bitmap records which 64 KiB blocks hold data.
 * Reading a block that was never written returns the poison pattern
 * (VMMFS_SIM_POISON64 per 8 bytes) without touching the mapping; the first
 * write to a block fills it with poison and only then marks it written, so a
 * reader racing with that fill sees poison either way.
 *
 * With a VRAM file the mapping is MAP_SHARED over a sparse file laid out as
 *
 *   [0, size)                      VRAM bytes
 *   [size, size + bitmap_len)      written-block bitmap (bit per 64 KiB)
 *   [size + bitmap_len, + 4 KiB)   header: magic, VRAM size, block size
 *
 * so contents and poison semantics survive destroy + create with the same
 * file. A file made for another VRAM size is refused, and so is a non-empty
 * file without the header (it is not ours to overwrite).
 */
#include "sim_priv.h"
#include "internal.h"
#include "mem.h"
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_VRAM_MAGIC "vmmfs-vram-v1"
#define SIM_VRAM_HDR_SIZE 4096u

struct sim_vram_hdr {
	char magic[16];
	uint64_t vram_size;
	uint64_t block_size;
	uint64_t bitmap_off;
};

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define sim_le32(x) (x)
#define sim_le64(x) (x)
#else
#define sim_le32(x) __builtin_bswap32(x)
#define sim_le64(x) __builtin_bswap64(x)
#endif

static uint64_t bitmap_bytes(uint64_t nblocks)
{
	return ALIGN_UP((nblocks + 63) / 64 * 8, 4096);
}

static bool block_written(const struct sim_vram *v, uint64_t blk)
{
	return __atomic_load_n(&v->written[blk >> 6], __ATOMIC_ACQUIRE) & (1ull << (blk & 63));
}

/* Poison bytes as VRAM would hold them at pa .. pa+len. */
static void poison_fill(void *buf, uint64_t pa, size_t len)
{
	uint8_t pat[64 + 8];
	uint8_t *p = buf;
	uint64_t w = sim_le64(VMMFS_SIM_POISON64);
	size_t i;

	for (i = 0; i < sizeof(pat); i++)
		pat[i] = ((const uint8_t *)&w)[(pa + i) & 7];
	/* pat[k] is the byte at pa + k; it repeats every 8 bytes, so copying
	 * 64-byte slices keeps the phase. */
	while (len >= 64) {
		memcpy(p, pat, 64);
		p += 64;
		len -= 64;
	}
	memcpy(p, pat, len);
}

static void block_materialise(struct sim_vram *v, uint64_t blk)
{
	uint64_t *q, w = sim_le64(VMMFS_SIM_POISON64);
	size_t i;

	pthread_mutex_lock(&v->lock);
	if (!block_written(v, blk)) {
		q = (uint64_t *)(void *)(v->mem + (blk << SIM_BLOCK_SHIFT));
		for (i = 0; i < SIM_BLOCK_SIZE / 8; i++)
			q[i] = w;
		__atomic_fetch_or(&v->written[blk >> 6], 1ull << (blk & 63), __ATOMIC_RELEASE);
		atomic_fetch_add_explicit(&v->touched, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&v->lock);
}

static inline void block_need(struct sim_vram *v, uint64_t blk)
{
	if (!block_written(v, blk))
		block_materialise(v, blk);
}

void sim_vram_read(struct sim_vram *v, uint64_t pa, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t blk = pa >> SIM_BLOCK_SHIFT;
		size_t chunk = (size_t)MIN((uint64_t)len, ((blk + 1) << SIM_BLOCK_SHIFT) - pa);

		if (block_written(v, blk))
			memcpy(p, v->mem + pa, chunk);
		else
			poison_fill(p, pa, chunk);
		p += chunk;
		pa += chunk;
		len -= chunk;
	}
}

void sim_vram_write(struct sim_vram *v, uint64_t pa, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		uint64_t blk = pa >> SIM_BLOCK_SHIFT;
		size_t chunk = (size_t)MIN((uint64_t)len, ((blk + 1) << SIM_BLOCK_SHIFT) - pa);

		block_need(v, blk);
		memcpy(v->mem + pa, p, chunk);
		p += chunk;
		pa += chunk;
		len -= chunk;
	}
}

uint32_t sim_vram_rd32(struct sim_vram *v, uint64_t pa)
{
	if (!block_written(v, pa >> SIM_BLOCK_SHIFT))
		return VMMFS_SIM_POISON32; /* the pattern repeats every 4 bytes */
	return sim_le32(__atomic_load_n((uint32_t *)(void *)(v->mem + pa), __ATOMIC_RELAXED));
}

void sim_vram_wr32(struct sim_vram *v, uint64_t pa, uint32_t val)
{
	block_need(v, pa >> SIM_BLOCK_SHIFT);
	__atomic_store_n((uint32_t *)(void *)(v->mem + pa), sim_le32(val), __ATOMIC_RELAXED);
}

uint64_t sim_vram_rd64(struct sim_vram *v, uint64_t pa)
{
	if (!block_written(v, pa >> SIM_BLOCK_SHIFT))
		return VMMFS_SIM_POISON64;
	return sim_le64(__atomic_load_n((uint64_t *)(void *)(v->mem + pa), __ATOMIC_RELAXED));
}

void sim_vram_wr64(struct sim_vram *v, uint64_t pa, uint64_t val)
{
	block_need(v, pa >> SIM_BLOCK_SHIFT);
	__atomic_store_n((uint64_t *)(void *)(v->mem + pa), sim_le64(val), __ATOMIC_RELAXED);
}

uint64_t sim_vram_resident(const struct sim_vram *v)
{
	return (uint64_t)atomic_load_explicit(&v->touched, memory_order_relaxed) << SIM_BLOCK_SHIFT;
}

void sim_fmt_size(char *buf, size_t len, uint64_t b)
{
	if (b && !(b & ((1ull << 30) - 1)))
		snprintf(buf, len, "%" PRIu64 " GiB", b >> 30);
	else if (b && !(b & ((1ull << 20) - 1)))
		snprintf(buf, len, "%" PRIu64 " MiB", b >> 20);
	else
		snprintf(buf, len, "%" PRIu64 " bytes", b);
}

static int vram_open_anon(struct sim_vram *v, char *err, size_t errlen)
{
	void *m;

	v->written = vmmfs_calloc(v->nblocks / 64 + 1, sizeof(uint64_t));
	if (!v->written) {
		snprintf(err, errlen, "out of memory for the VRAM block bitmap");
		return -ENOMEM;
	}
	m = mmap(NULL, v->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		char sz[32];

		sim_fmt_size(sz, sizeof(sz), v->size);
		snprintf(err, errlen, "cannot reserve %s of address space for simulated VRAM: %s",
			 sz, strerror(errno));
		vmmfs_free(v->written);
		v->written = NULL;
		return -ENOMEM;
	}
	v->mem = m;
	v->map_len = v->size;
	return 0;
}

static int vram_open_file(struct sim_vram *v, const char *path, char *err, size_t errlen)
{
	uint64_t bm_off = v->size, bm_len = bitmap_bytes(v->nblocks);
	uint64_t hdr_off = bm_off + bm_len, total = hdr_off + SIM_VRAM_HDR_SIZE;
	struct sim_vram_hdr hdr;
	struct stat st;
	char want[32], have[32];
	uint64_t i, n;
	void *m;
	int fd, r;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open VRAM file %s: %s", path, strerror(errno));
		return -EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "VRAM file %s is in use by another simulated GPU", path);
		r = -EIO;
		goto err_close;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "VRAM file %s is not a regular file", path);
		r = -EIO;
		goto err_close;
	}
	sim_fmt_size(want, sizeof(want), v->size);
	if (st.st_size == 0) {
		/* A new file: sparse, with the header at its end. */
		if (ftruncate(fd, (off_t)total) < 0) {
			snprintf(err, errlen, "cannot size VRAM file %s to %s: %s", path, want,
				 strerror(errno));
			r = -EIO;
			goto err_close;
		}
		memset(&hdr, 0, sizeof(hdr));
		memcpy(hdr.magic, SIM_VRAM_MAGIC, sizeof(SIM_VRAM_MAGIC));
		hdr.vram_size = v->size;
		hdr.block_size = SIM_BLOCK_SIZE;
		hdr.bitmap_off = bm_off;
		if (pwrite(fd, &hdr, sizeof(hdr), (off_t)hdr_off) != (ssize_t)sizeof(hdr)) {
			snprintf(err, errlen, "cannot write the header of VRAM file %s: %s", path,
				 strerror(errno));
			r = -EIO;
			goto err_close;
		}
	} else {
		memset(&hdr, 0, sizeof(hdr));
		if ((uint64_t)st.st_size < SIM_VRAM_HDR_SIZE ||
		    pread(fd, &hdr, sizeof(hdr), st.st_size - SIM_VRAM_HDR_SIZE) != (ssize_t)sizeof(hdr) ||
		    memcmp(hdr.magic, SIM_VRAM_MAGIC, sizeof(SIM_VRAM_MAGIC)) != 0) {
			snprintf(err, errlen, "%s is not a vmmfs VRAM file (no header); refusing to use it "
				 "(remove it or name another file)", path);
			r = -EIO;
			goto err_close;
		}
		if (hdr.vram_size != v->size || hdr.block_size != SIM_BLOCK_SIZE ||
		    (uint64_t)st.st_size != total) {
			sim_fmt_size(have, sizeof(have), hdr.vram_size);
			snprintf(err, errlen, "VRAM file %s holds %s of VRAM, but this GPU has %s "
				 "(use a VRAM size of %s, or another file)", path, have, want, have);
			r = -EIO;
			goto err_close;
		}
	}
	m = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "cannot map VRAM file %s: %s", path, strerror(errno));
		r = -EIO;
		goto err_close;
	}
	v->mem = m;
	v->map_len = (size_t)total;
	v->written = (uint64_t *)(void *)(v->mem + bm_off);
	v->written_in_map = true;
	v->fd = fd;
	for (i = 0, n = 0; i < (v->nblocks + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(v->written[i]);
	atomic_store(&v->touched, n);
	return 0;

err_close:
	close(fd);
	return r;
}

int sim_vram_open(struct sim_vram *v, uint64_t size, const char *path,
		  char *err, size_t errlen)
{
	int r;

	memset(v, 0, sizeof(*v));
	v->size = size;
	v->nblocks = (size + SIM_BLOCK_SIZE - 1) >> SIM_BLOCK_SHIFT;
	v->fd = -1;
	atomic_init(&v->touched, 0);
	if (pthread_mutex_init(&v->lock, NULL)) {
		snprintf(err, errlen, "cannot initialise the VRAM lock");
		return -ENOMEM;
	}
	r = path ? vram_open_file(v, path, err, errlen) : vram_open_anon(v, err, errlen);
	if (r)
		pthread_mutex_destroy(&v->lock);
	return r;
}

void sim_vram_close(struct sim_vram *v)
{
	if (v->fd >= 0) {
		if (msync(v->mem, v->map_len, MS_SYNC) < 0)
			log_warn("simulated VRAM: flushing the VRAM file failed: %s", strerror(errno));
		munmap(v->mem, v->map_len);
		close(v->fd);
	} else {
		munmap(v->mem, v->map_len);
		vmmfs_free(v->written);
	}
	pthread_mutex_destroy(&v->lock);
	memset(v, 0, sizeof(*v));
	v->fd = -1;
}
