/* SPDX-License-Identifier: MIT */
/*
 * --state=PATH: the daemon's side of the state journal (journal.h).
 *
 * At mount, fs_state_restore rebuilds what the journal holds. It trusts
 * nothing of the old page tables (their pages in the VRAM file are just
 * unowned VRAM now): it takes every page the mappings used out of reach of
 * page-table allocation first (alloc= pages claimed from the VRAM
 * allocator, other pages pinned with one reference each), then creates
 * fresh address spaces and maps every mapping at its recorded VA with its
 * recorded PFNs and access, alloc= pages handed over with VMMFS_MAP_CLAIM
 * (not zeroed: their data is in the VRAM file), and drops the pins.
 *
 * While serving, every change is recorded by the operation that makes it,
 * under fs->lock at the moment the tree changes, so records are in the
 * order the tree saw the changes; the fdatasync follows without the lock
 * (fs_state_sync) and the operation answers only after it:
 *   mkdir      the address space is made, then VAS_CREATE, sync, reply
 *   rmdir      VAS_REMOVE, then the address space goes, sync, reply
 *   rename     the record, then the new name, sync, reply
 *   close      prepare + execute, then MAP_ADD (the file turns live), sync,
 *              and close returns 0
 *   rm         MAP_REMOVE (the file goes), sync, then the unmap, reply
 * A record is written before anything it frees can be used again (VA,
 * alloc= pages, names), so no prefix of the journal holds two owners of
 * one page or one VA.
 */
#include "vmmfs_fs.h"
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fs_state_ident(const struct vmmfs_gpu_info *info, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s, VRAM 0x%llx (managed 0x%llx-0x%llx)", info->backend,
		 info->chip, (unsigned long long)info->vram_size,
		 (unsigned long long)info->vram_start, (unsigned long long)info->vram_end);
}

/* ---- restore ----------------------------------------------------------- */

enum { R_CLAIMED = 0x1, R_PINNED = 0x2, R_MAPPED = 0x4 };

struct restore {
	struct vmmfs_fs *fs;
	unsigned char *done;      /* per mapping, R_* */
	uint64_t i;               /* index of the mapping being handled */
	uint64_t maps, alloc_pages, pinned;
	uint64_t *pfns;
	uint64_t pfns_cap;
	char *err;
	size_t errlen;
};

/* Takes (or gives back) the runs of one mapping: claims for alloc=, pins
 * for the others. On failure, what this mapping took is given back. */
static int hold_runs(struct restore *rs, const struct vmmfs_journal_map *m, bool take)
{
	struct vmmfs_gpu *gpu = rs->fs->gpu;
	bool alloc = m->flags & VMMFS_JOURNAL_ALLOC;
	uint64_t k;
	int r = 0;

	for (k = 0; k < m->nruns; k++) {
		const struct vmmfs_journal_run *run = &m->runs[k];

		if (!take)
			alloc ? vmmfs_gpu_vram_unclaim(gpu, run->first, run->count) :
				vmmfs_gpu_vram_unpin(gpu, run->first, run->count);
		else if (alloc)
			r = vmmfs_gpu_vram_claim(gpu, run->first, run->count);
		else
			r = vmmfs_gpu_vram_pin(gpu, run->first, run->count);
		if (r)
			break;
	}
	if (!r)
		return 0;
	snprintf(rs->err, rs->errlen, "cannot restore vas/%s/maps/%s: %s PFNs 0x%llx-0x%llx "
		 "failed: %s", m->vas, m->name, alloc ? "claiming its alloc= pages" :
		 "reserving its pages", (unsigned long long)m->runs[k].first,
		 (unsigned long long)(m->runs[k].first + m->runs[k].count - 1),
		 r == -EBUSY ? "they are not free (the VRAM file does not match the state)" :
		 r == -EACCES ? "a page holds a page table" : strerror(-r));
	while (k--)
		alloc ? vmmfs_gpu_vram_unclaim(gpu, m->runs[k].first, m->runs[k].count) :
			vmmfs_gpu_vram_unpin(gpu, m->runs[k].first, m->runs[k].count);
	return r;
}

static int hold_cb(void *ctx, const struct vmmfs_journal_map *m)
{
	struct restore *rs = ctx;
	int r = hold_runs(rs, m, true);

	if (!r)
		rs->done[rs->i] |= m->flags & VMMFS_JOURNAL_ALLOC ? R_CLAIMED : R_PINNED;
	rs->i++;
	return r;
}

/* Gives back claims no mapping took over and every pin. */
static int release_cb(void *ctx, const struct vmmfs_journal_map *m)
{
	struct restore *rs = ctx;
	unsigned char d = rs->done[rs->i++];

	if ((d & R_PINNED) || ((d & R_CLAIMED) && !(d & R_MAPPED)))
		hold_runs(rs, m, false);
	return 0;
}

static int vas_cb(void *ctx, const char *vas)
{
	struct restore *rs = ctx;
	int r = fs_as_create(rs->fs, vas, rs->fs->uid, rs->fs->gid, NULL);

	if (r)
		snprintf(rs->err, rs->errlen, "cannot restore the address space vas/%s: %s", vas,
			 strerror(-r));
	return r;
}

static struct fs_as *find_as(struct vmmfs_fs *fs, const char *name)
{
	struct fs_node *dir;

	pthread_mutex_lock(&fs->lock);
	dir = fs_child(fs, fs->vas_dir, name);
	pthread_mutex_unlock(&fs->lock);
	return dir ? dir->as : NULL;
}

static int map_cb(void *ctx, const struct vmmfs_journal_map *jm)
{
	struct restore *rs = ctx;
	struct vmmfs_fs *fs = rs->fs;
	struct vmmfs_va_placement pl = {
		.kind = VMMFS_VA_EXACT, .start = jm->va, .pa_hint = VMMFS_NO_PA_HINT,
	};
	unsigned int flags = (jm->flags & VMMFS_JOURNAL_RO ? VMMFS_MAP_READ_ONLY : 0) |
			     (jm->flags & VMMFS_JOURNAL_ALLOC ? VMMFS_MAP_CLAIM : 0);
	struct vmmfs_mapping_info mi;
	struct vmmfs_mapping *m = NULL;
	struct fs_as *as = find_as(fs, jm->vas);
	struct fs_node *n = NULL;
	uint64_t i = rs->i++, at = 0;
	const char *why = NULL;
	int r;

	if (!as) {
		snprintf(rs->err, rs->errlen, "cannot restore vas/%s/maps/%s: no such address space",
			 jm->vas, jm->name);
		return -ENOENT;
	}
	if (jm->npages > rs->pfns_cap) {
		uint64_t *p = realloc(rs->pfns, jm->npages * sizeof(*p));

		if (!p) {
			snprintf(rs->err, rs->errlen, "out of memory restoring vas/%s/maps/%s", jm->vas,
				 jm->name);
			return -ENOMEM;
		}
		rs->pfns = p;
		rs->pfns_cap = jm->npages;
	}
	for (uint64_t k = 0; k < jm->nruns; k++)
		for (uint64_t p = 0; p < jm->runs[k].count; p++)
			rs->pfns[at++] = jm->runs[k].first + p;
	r = vmmfs_vmm_map_pages(as->vmm, rs->pfns, jm->npages, &pl, flags, &m);
	if (r) {
		why = r == -EEXIST ? "its VA overlaps another mapping" :
		      r == -ERANGE ? "its VA or PFNs are beyond this GPU" :
		      r == -EACCES ? "a PFN holds a page table" : strerror(-r);
		goto err;
	}
	rs->done[i] |= R_MAPPED;
	vmmfs_mapping_get_info(m, &mi);
	if (mi.va != jm->va || mi.npages != jm->npages) {
		why = "the VMM placed it elsewhere";
		r = -EINVAL;
		goto err_unmap;
	}
	pthread_mutex_lock(&fs->lock);
	if (as->maps && !fs_child(fs, as->maps, jm->name))
		n = fs_node_new(fs, as->maps, jm->name, N_MAPFILE, S_IFREG | 0644, true);
	if (n) {
		n->state = MAP_LIVE;
		n->mapping = m;
		as->nmaps++;
	}
	pthread_mutex_unlock(&fs->lock);
	if (!n) {
		why = "cannot create its file";
		r = -ENOMEM;
		goto err_unmap;
	}
	rs->maps++;
	if (jm->flags & VMMFS_JOURNAL_ALLOC)
		rs->alloc_pages += jm->npages;
	return 0;

err_unmap:
	vmmfs_vmm_unmap(as->vmm, m);
	rs->done[i] &= (unsigned char)~R_MAPPED;
	rs->done[i] &= (unsigned char)~R_CLAIMED; /* unmap gave the pages back */
err:
	snprintf(rs->err, rs->errlen, "cannot restore vas/%s/maps/%s at VA 0x%llx: %s (%s)",
		 jm->vas, jm->name, (unsigned long long)jm->va, why, fs_errno_name(r));
	return r;
}

int fs_state_restore(struct vmmfs_fs *fs, struct vmmfs_journal *j, char *err, size_t errlen)
{
	struct vmmfs_journal_stats st;
	struct restore rs = { .fs = fs, .err = err, .errlen = errlen };
	int r;

	vmmfs_journal_get_stats(j, &st);
	rs.done = calloc(st.maps ? st.maps : 1, 1);
	if (!rs.done) {
		snprintf(err, errlen, "out of memory restoring the state");
		return -ENOMEM;
	}
	/* 1. Every page the mappings use, out of reach of the page tables the
	 *    rebuild allocates (roots included). */
	r = vmmfs_journal_for_each_map(j, hold_cb, &rs);
	/* 2. Fresh address spaces, 3. every mapping at its VA. */
	if (!r)
		r = vmmfs_journal_for_each_vas(j, vas_cb, &rs);
	rs.i = 0;
	if (!r)
		r = vmmfs_journal_for_each_map(j, map_cb, &rs);
	/* 4. The pins go (the mappings hold their own references now), and
	 *    on failure the claims no mapping took. */
	rs.i = 0;
	vmmfs_journal_for_each_map(j, release_cb, &rs);
	free(rs.pfns);
	free(rs.done);
	if (r)
		return r;
	if (st.vas || st.maps)
		vmmfs_log(VMMFS_LOG_INFO, "state: restored %llu address spaces and %llu mappings "
			  "(%llu alloc= pages with their data)", (unsigned long long)st.vas,
			  (unsigned long long)rs.maps, (unsigned long long)rs.alloc_pages);
	return 0;
}

/* ---- recording changes ------------------------------------------------- */

/* A journal error as the operation reports it: -EIO, after a log line. */
static int state_err(struct vmmfs_fs *fs, int r, const char *path, const char *what)
{
	vmmfs_log(VMMFS_LOG_ERROR, "%s: %s: the state journal could not record it (%s)", path,
		  what, fs_errno_name(r));
	return -EIO;
}

int fs_state_vas_create_locked(struct vmmfs_fs *fs, const char *vas, uint64_t *seq)
{
	char path[FS_MAX_NAME + 8];
	int r;

	*seq = 0;
	if (!fs->jnl)
		return 0;
	r = vmmfs_journal_vas_create(fs->jnl, vas, seq);
	if (!r)
		return 0;
	snprintf(path, sizeof(path), "vas/%s", vas);
	return state_err(fs, r, path, "not created");
}

int fs_state_vas_remove_locked(struct vmmfs_fs *fs, const char *vas, uint64_t *seq)
{
	char path[FS_MAX_NAME + 8];
	int r;

	*seq = 0;
	if (!fs->jnl)
		return 0;
	r = vmmfs_journal_vas_remove(fs->jnl, vas, seq);
	if (!r)
		return 0;
	snprintf(path, sizeof(path), "vas/%s", vas);
	return state_err(fs, r, path, "not removed");
}

/* The address space a mapping file belongs to: maps/'s parent. */
static const char *vas_name(const struct fs_node *n)
{
	return n->parent && n->parent->parent ? n->parent->parent->name : "";
}

int fs_state_rename_locked(struct vmmfs_fs *fs, struct fs_node *n, const char *newname,
			   uint64_t *seq)
{
	char path[512];
	bool live;
	int r;

	*seq = 0;
	if (!fs->jnl)
		return 0;
	if (n->kind == N_AS_DIR) {
		r = vmmfs_journal_vas_rename(fs->jnl, n->name, newname, seq);
	} else {
		/* a file still being written is recorded under the name it has
		 * when its writer closes it */
		pthread_mutex_lock(&n->map_lock);
		live = n->state == MAP_LIVE;
		pthread_mutex_unlock(&n->map_lock);
		if (!live)
			return 0;
		r = vmmfs_journal_map_rename(fs->jnl, vas_name(n), n->name, newname, seq);
	}
	if (!r)
		return 0;
	fs_node_path(n, path, sizeof(path));
	return state_err(fs, r, path, "not renamed");
}

int fs_state_map_remove_locked(struct vmmfs_fs *fs, struct fs_node *n, uint64_t *seq)
{
	char path[512];
	int r;

	*seq = 0;
	if (!fs->jnl)
		return 0;
	r = vmmfs_journal_map_remove(fs->jnl, vas_name(n), n->name, seq);
	if (!r)
		return 0;
	fs_node_path(n, path, sizeof(path));
	return state_err(fs, r, path, "not removed");
}

struct runs_buf {
	struct vmmfs_journal_run *runs;
	uint64_t n, cap;
};

static int collect_run(void *ctx, uint64_t first, uint64_t count)
{
	struct runs_buf *b = ctx;

	if (b->n && b->runs[b->n - 1].first + b->runs[b->n - 1].count == first) {
		b->runs[b->n - 1].count += count;
		return 0;
	}
	if (b->n == b->cap) {
		uint64_t cap = b->cap ? b->cap * 2 : 16;
		struct vmmfs_journal_run *r = realloc(b->runs, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		b->runs = r;
		b->cap = cap;
	}
	b->runs[b->n++] = (struct vmmfs_journal_run){ first, count };
	return 0;
}

int fs_state_map_describe(struct vmmfs_fs *fs, const struct vmmfs_mapping *m,
			  struct vmmfs_journal_map *jm)
{
	struct vmmfs_mapping_info mi;
	struct runs_buf b = { 0 };
	int r;

	memset(jm, 0, sizeof(*jm));
	if (!fs->jnl)
		return 0;
	vmmfs_mapping_get_info(m, &mi);
	b.cap = mi.nruns ? mi.nruns : 1;
	b.runs = malloc(b.cap * sizeof(*b.runs));
	if (!b.runs)
		return -ENOMEM;
	r = vmmfs_mapping_for_each_run(m, collect_run, &b);
	if (r) {
		free(b.runs);
		return r;
	}
	jm->va = mi.va;
	jm->npages = mi.npages;
	jm->flags = (mi.read_only ? VMMFS_JOURNAL_RO : 0) | (mi.allocated ? VMMFS_JOURNAL_ALLOC : 0);
	jm->nruns = b.n;
	jm->runs = b.runs;
	return 0;
}

void fs_state_map_describe_free(struct vmmfs_journal_map *jm)
{
	free((void *)jm->runs);
	memset(jm, 0, sizeof(*jm));
}

int fs_state_map_add_locked(struct vmmfs_fs *fs, struct fs_node *n, struct vmmfs_journal_map *jm,
			    uint64_t *seq)
{
	char path[512];
	int r;

	*seq = 0;
	if (!fs->jnl)
		return 0;
	jm->vas = vas_name(n);
	jm->name = n->name;
	r = vmmfs_journal_map_add(fs->jnl, jm, seq);
	jm->vas = jm->name = NULL;
	if (!r)
		return 0;
	fs_node_path(n, path, sizeof(path));
	return state_err(fs, r, path, "not mapped");
}

int fs_state_sync(struct vmmfs_fs *fs, uint64_t seq, const char *path, const char *what)
{
	int r;

	if (!fs->jnl || !seq)
		return 0;
	r = vmmfs_journal_sync(fs->jnl, seq);
	if (!r)
		return 0;
	return state_err(fs, r, path, what);
}
