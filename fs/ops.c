/* SPDX-License-Identifier: MIT */
/*
 * The FUSE low-level operations. Positive errno values go to the kernel
 * here and only here; everything below returns negative errno.
 *
 * Every operation that works on a node takes a reference on it under
 * fs->lock (node_get) and drops it at the end (node_put), so a node cannot
 * be freed under a running operation whatever rm, rmdir or forget do.
 *
 * Mapping files: create makes the node (state WRITING) and a writer
 * handle with a parser; writes feed the parser where the data lies in
 * libfuse's buffer (malformed text fails the write); the first flush that
 * finds data commits (vmmfs_vmm_map_runs: the VMM plans big pages from
 * the runs, one TLB flush), so close() returns the map's error; release
 * commits if no flush did and removes a file that never got data. A failed
 * map removes the file and logs one line naming it. Once mapped, the file
 * keeps nothing per page: the text and the parsed runs are freed, and its
 * description is made from the VMM's runs when read.
 *
 * What the kernel may cache (the fewer requests, the faster small
 * operations are; but every open shows the current state):
 *   names: every entry, also "no such name", for CACHE_TIMEOUT, except a
 *     mapping file still being written (its map may fail and take the
 *     name away without the kernel knowing): it is looked up again. Every
 *     other name appears and goes only through the kernel (create, mkdir,
 *     rename, unlink, rmdir), which updates its cache itself. (Caching
 *     those names too, with FUSE_NOTIFY_INC_EPOCH to take them back after
 *     a failed map, saved rm its LOOKUP but made readers racing with rm
 *     get EIO in test_fs's concurrency test; not done.)
 *   attributes: for CACHE_TIMEOUT where they never change (directories,
 *     README, gpu/, pdb, mem, vram/raw, pagetable with its size 0, a
 *     mapped mapping file with the exact size of its description); never
 *     for the small files whose size changes (stats, log, vram/usage,
 *     translate/) or a mapping file being written.
 *   content: a mapping file's description never changes while the file
 *     exists (a new file is a new inode), so it goes through the page
 *     cache and stays there (keep_cache); every other generated file is
 *     direct I/O: read from the daemon at every open.
 */
#include "vmmfs_fs.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_TIMEOUT 60.0
#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

enum fh_kind { FH_TEXT, FH_STREAM, FH_WRITER, FH_RAW, FH_MEM, FH_DIR };

struct dent {
	char *name;
	fuse_ino_t ino;
	mode_t mode;
};

struct fs_handle {
	enum fh_kind kind;
	struct fs_node *node;        /* holds a reference */
	struct fs_as *as;            /* FH_WRITER, FH_MEM: holds a use */
	struct fs_handle *prev, *next; /* fs->handles */
	struct fs_handle *hnext;     /* fs->fh_tab chain */
	uint64_t id;                 /* fi->fh */
	unsigned int refs;           /* under fs->lock */
	bool hashed;

	char *buf;                   /* FH_TEXT */
	size_t len;
	struct fs_stream *stream;    /* FH_STREAM */

	pthread_mutex_t lock;        /* FH_WRITER */
	struct vmmfs_mapfile mf;
	bool done;                   /* committed or dropped */
	int result;                  /* of the commit */
	bool error_logged;

	struct dent *ents;           /* FH_DIR */
	size_t nents;
};

static struct vmmfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

const char *fs_errno_name(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case EINVAL: return "EINVAL";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ENODEV: return "ENODEV";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "error";
	}
}

/* ---- references ------------------------------------------------------ */

static struct fs_node *node_get(struct vmmfs_fs *fs, fuse_ino_t ino)
{
	struct fs_node *n;

	pthread_mutex_lock(&fs->lock);
	n = fs_node_by_ino(fs, ino);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static void node_put(struct vmmfs_fs *fs, struct fs_node *n)
{
	pthread_mutex_lock(&fs->lock);
	n->refs--;
	fs_node_maybe_free(fs, n);
	pthread_mutex_unlock(&fs->lock);
}

static void node_path(struct vmmfs_fs *fs, struct fs_node *n, char *buf, size_t len)
{
	pthread_mutex_lock(&fs->lock);
	fs_node_path(n, buf, len);
	pthread_mutex_unlock(&fs->lock);
}

/* ---- permissions ------------------------------------------------------
 *
 * The daemon checks permissions itself (the mount has no
 * default_permissions), with POSIX semantics: the owner's, the group's or
 * the others' bits of the node's mode, for the caller's fsuid, fsgid and
 * supplementary groups as the kernel passes them; uid 0 may always read
 * and write, and search or execute where any x bit is set (a directory:
 * always). So a refusal is the daemon's, and it logs one line saying who
 * was refused what, and why.
 *
 * Which refusals are logged: those of actions, the ones that would change
 * something or reach memory (map = create in maps/, unmap = rm, write,
 * truncate, chmod, chown, utimes, mkdir, rmdir, rename, link, symlink,
 * mknod, and every open, which covers mem and vram/raw; ls opens no
 * file, and with vmmfs's modes only mem and vram/raw, and a mapping file
 * its owner made unreadable, refuse a read). Not those of name lookups,
 * listings or access(2): `ls -R`, shell completion and `test -w` ask
 * about many names and would fill the log (a fixed ring of lines) with
 * questions rather than attempts, and they change nothing. (With the modes
 * vmmfs gives, every directory is searchable and readable by everyone, so
 * those refusals do not happen today anyway.)
 *
 * Without allow_other the kernel alone refuses every request of another
 * user than the mount's owner; those never reach the daemon.
 */

enum { P_X = 1, P_W = 2, P_R = 4 };

/* A node's permission bits and owner, copied under fs->lock. */
struct perm_node {
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

static struct perm_node perm_of(const struct fs_node *n)
{
	return (struct perm_node){ .mode = n->mode, .uid = n->uid, .gid = n->gid };
}

/* Whether the caller is in group gid (its fsgid or a supplementary group;
 * the latter asked of the kernel, which reads /proc, only when the group
 * and other bits differ: never for vmmfs's directories, whose modes are
 * fixed, so never under fs->lock in practice). */
static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	gid_t small[32], *list = small;
	int n, i;
	bool in = false;

	if (c->gid == gid)
		return true;
	n = fuse_req_getgroups(req, 32, small);
	if (n > 32) {
		list = malloc((size_t)n * sizeof(*list));
		if (!list)
			return false;
		n = fuse_req_getgroups(req, n, list);
	}
	for (i = 0; i < n && !in; i++)
		in = list[i] == gid;
	if (list != small)
		free(list);
	return in;
}

/* 0 if the caller may do mask (P_R | P_W | P_X) on a node with pn, else
 * -EACCES. */
static int perm_check(fuse_req_t req, const struct perm_node *pn, int mask)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	unsigned int bits;

	if (c->uid == 0) {
		if (!(mask & P_X) || S_ISDIR(pn->mode) || (pn->mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
			return 0;
		return -EACCES;
	}
	if (c->uid == pn->uid)
		bits = (pn->mode >> 6) & 7;
	else if (((pn->mode >> 3) & 7) != (pn->mode & 7) && caller_in_group(req, pn->gid))
		bits = (pn->mode >> 3) & 7;
	else
		bits = pn->mode & 7;
	return ((unsigned int)mask & ~bits) ? -EACCES : 0;
}

/* Whether the caller owns the node or is root (chmod, explicit times). */
static bool perm_owner(fuse_req_t req, const struct perm_node *pn)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	return c->uid == 0 || c->uid == pn->uid;
}

/* Removing or renaming an entry of a sticky directory: only the entry's
 * owner, the directory's, or root. */
static int perm_sticky(fuse_req_t req, const struct perm_node *dir, const struct perm_node *n)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	if (!(dir->mode & S_ISVTX) || c->uid == 0 || c->uid == dir->uid || c->uid == n->uid)
		return 0;
	return -EACCES;
}

static const char *perm_words(int mask)
{
	switch (mask) {
	case P_R: return "read";
	case P_W: return "write";
	case P_X: return "search";
	case P_R | P_W: return "read and write";
	case P_W | P_X: return "write and search";
	default: return "that";
	}
}

/* "drwxr-xr-x" */
static void perm_mode_string(mode_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	int i;

	out[0] = S_ISDIR(mode) ? 'd' : '-';
	for (i = 0; i < 9; i++)
		out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
	if (mode & S_ISVTX)
		out[9] = (mode & S_IXOTH) ? 't' : 'T';
	out[10] = '\0';
}

/* The log line of a refusal by the modes: "PATH: WHAT refused for uid U:
 * OBJ (MODE, owner uid O, group G) gives uid U no PERM permission (EACCES)".
 * obj: the path of the node whose mode refused (path itself, or its
 * directory). */
static void perm_log(fuse_req_t req, const char *path, const char *what, const char *obj,
		     const struct perm_node *pn, int mask)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	char ms[11];

	perm_mode_string(pn->mode, ms);
	vmmfs_log(VMMFS_LOG_ERROR, "%s: %s refused for uid %u: %s%s (%s, owner uid %u, group %u) "
		  "gives uid %u no %s permission (EACCES)", path, what, (unsigned int)c->uid,
		  obj[0] ? "" : "/", obj, ms, (unsigned int)pn->uid, (unsigned int)pn->gid,
		  (unsigned int)c->uid, perm_words(mask));
}

/* A refusal that is not a mode's (owner only, sticky directory). */
static void perm_log_why(fuse_req_t req, const char *path, const char *what, const char *why,
			 int err)
{
	vmmfs_log(VMMFS_LOG_ERROR, "%s: %s refused for uid %u: %s (%s)", path, what,
		  (unsigned int)fuse_req_ctx(req)->uid, why, fs_errno_name(err));
}

/* Checks mask on the directory dir (under fs->lock) for an action on its
 * entry name; logs a refusal. Returns 0 or -EACCES. */
static int perm_dir_locked(fuse_req_t req, struct fs_node *dir, const char *name,
			   const char *what, int mask)
{
	struct perm_node pn = perm_of(dir);
	char dpath[512], path[700];
	int r = perm_check(req, &pn, mask);

	if (r && what) {
		fs_node_path(dir, dpath, sizeof(dpath));
		snprintf(path, sizeof(path), "%s%s%s", dpath, dpath[0] ? "/" : "", name);
		perm_log(req, path, what, dpath, &pn, mask);
	}
	return r;
}

/* Removing or renaming n, an entry of dir (under fs->lock): write and
 * search on dir, and the sticky rule; logs a refusal. 0 or -EACCES. */
static int perm_remove_locked(fuse_req_t req, struct fs_node *dir, struct fs_node *n,
			      const char *what)
{
	struct perm_node pd = perm_of(dir), pn = perm_of(n);
	char path[512];
	int r = perm_dir_locked(req, dir, n->name, what, P_W | P_X);

	if (r)
		return r;
	r = perm_sticky(req, &pd, &pn);
	if (r) {
		fs_node_path(n, path, sizeof(path));
		perm_log_why(req, path, what, "its directory is sticky and neither it nor the "
			     "directory belongs to the caller", r);
	}
	return r;
}

/* ---- attributes ------------------------------------------------------ */

/* Small generated files: made whole at open. */
static bool is_text(enum fs_kind k)
{
	switch (k) {
	case N_README: case N_GPU_ATTR: case N_VRAM_USAGE: case N_AS_PDB:
	case N_AS_XLATE: case N_AS_STATS: case N_STATS: case N_LOG:
		return true;
	default:
		return false;
	}
}

/* Small generated files whose size changes: attributes never cached. */
static bool size_changes(enum fs_kind k)
{
	switch (k) {
	case N_VRAM_USAGE: case N_AS_XLATE: case N_AS_STATS: case N_STATS: case N_LOG:
		return true;
	default:
		return false;
	}
}

/* Size of a generated file: the open handle's text, or what it would show
 * now. Called without fs->lock. */
static off_t text_size(struct vmmfs_fs *fs, struct fs_node *n, struct fs_handle *h)
{
	struct text t;
	off_t size;

	if (h && h->kind == FH_TEXT)
		return (off_t)h->len;
	text_init(&t);
	size = fs_generate(fs, n, &t) ? 0 : (off_t)t.len;
	text_free(&t);
	return size;
}

/* Fills st (sizes: see text.c's policy in vmmfs_fs.h). with_size: measure
 * the small generated files by generating them (getattr); lookups leave
 * them 0 since their attributes are never cached and the stat that follows
 * asks again. Returns whether the attributes may be cached. */
static bool node_stat(struct vmmfs_fs *fs, struct fs_node *n, struct fs_handle *h,
		      bool with_size, struct stat *st)
{
	bool cache = !size_changes(n->kind);
	uint64_t size;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&fs->lock);
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = fs_node_is_dir(n) ? 2 : 1;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_blksize = 4096;
	st->st_mtim = n->mtime;
	st->st_atim = n->mtime;
	st->st_ctim = n->ctime;
	if (n->kind == N_VRAM_RAW)
		st->st_size = (off_t)fs->info->vram_size;
	else if (n->kind == N_AS_MEM)
		st->st_size = (off_t)fs->va_size;
	pthread_mutex_unlock(&fs->lock);

	if (n->kind == N_MAPFILE) {
		/* being written: what was written; mapped: the description
		 * (counted at the first getattr, not at lookups: rm needs a
		 * lookup, not the size); removed: what it was, for the files
		 * still open */
		pthread_mutex_lock(&n->map_lock);
		if (n->state == MAP_WRITING)
			st->st_size = (off_t)n->written;
		else if ((with_size || n->desc_size) && !fs_mapping_size_locked(n, &size))
			st->st_size = (off_t)size;
		cache = n->state == MAP_LIVE && n->desc_size;
		pthread_mutex_unlock(&n->map_lock);
	} else if (is_text(n->kind) && (with_size || cache)) {
		st->st_size = text_size(fs, n, h);
	}
	/* mem and vram/raw occupy nothing: they are windows */
	if (n->kind != N_AS_MEM && n->kind != N_VRAM_RAW)
		st->st_blocks = (st->st_size + 511) / 512;
	return cache;
}

/* Names that can vanish without the kernel seeing it: a mapping file being
 * written (its map may fail). */
static double entry_timeout(struct fs_node *n)
{
	bool live = true;

	if (n->kind == N_MAPFILE) {
		pthread_mutex_lock(&n->map_lock);
		live = n->state == MAP_LIVE;
		pthread_mutex_unlock(&n->map_lock);
	}
	return live ? CACHE_TIMEOUT : 0.0;
}

/* Replies with an entry for n, on which the caller took a lookup. */
static void reply_entry(fuse_req_t req, struct vmmfs_fs *fs, struct fs_node *n)
{
	struct fuse_entry_param e;
	bool cache;

	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	cache = node_stat(fs, n, NULL, false, &e.attr);
	e.attr_timeout = cache ? CACHE_TIMEOUT : 0.0;
	e.entry_timeout = entry_timeout(n);
	if (fuse_reply_entry(req, &e)) {
		/* the kernel never got it: undo its lookup */
		pthread_mutex_lock(&fs->lock);
		n->nlookup--;
		pthread_mutex_unlock(&fs->lock);
	}
}

/* ---- handles --------------------------------------------------------
 *
 * fi->fh is a handle id, found in fs->fh_tab under fs->lock. Every
 * operation on an open file holds a reference for its duration and release
 * drops the open's own; the last one frees. So a handle outlives any
 * operation that is still using it, whatever order requests run in.
 */

static size_t fh_slot(const struct vmmfs_fs *fs, uint64_t id)
{
	return (size_t)(id * 0x9e3779b97f4a7c15ull >> 24) & (fs->fh_cap - 1);
}

static void fh_tab_grow(struct vmmfs_fs *fs)
{
	size_t cap = fs->fh_cap ? fs->fh_cap * 2 : 64, i;
	struct fs_handle **tab = calloc(cap, sizeof(*tab)), **old = fs->fh_tab;
	size_t oldcap = fs->fh_cap;

	if (!tab)
		return;
	fs->fh_tab = tab;
	fs->fh_cap = cap;
	for (i = 0; i < oldcap; i++) {
		struct fs_handle *h = old[i], *next;
		for (; h; h = next) {
			size_t sl = fh_slot(fs, h->id);
			next = h->hnext;
			h->hnext = tab[sl];
			tab[sl] = h;
		}
	}
	free(old);
}

static struct fs_handle *handle_new(struct vmmfs_fs *fs, enum fh_kind kind, struct fs_node *n)
{
	struct fs_handle *h = calloc(1, sizeof(*h));
	size_t sl;

	if (!h)
		return NULL;
	h->kind = kind;
	h->node = n;
	h->refs = 1; /* the open's own, dropped at release */
	pthread_mutex_lock(&fs->lock);
	if (fs->nfh >= fs->fh_cap)
		fh_tab_grow(fs);
	if (!fs->fh_cap) {
		pthread_mutex_unlock(&fs->lock);
		free(h);
		return NULL;
	}
	h->id = ++fs->next_fh;
	sl = fh_slot(fs, h->id);
	h->hnext = fs->fh_tab[sl];
	fs->fh_tab[sl] = h;
	h->hashed = true;
	fs->nfh++;
	n->refs++;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

static void fh_unhash_locked(struct vmmfs_fs *fs, struct fs_handle *h)
{
	struct fs_handle **pp = &fs->fh_tab[fh_slot(fs, h->id)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == h) {
			*pp = h->hnext;
			fs->nfh--;
			break;
		}
	h->hashed = false;
}

/* The handle behind fi, with a reference; NULL if it was released. */
static struct fs_handle *handle_get(struct vmmfs_fs *fs, struct fuse_file_info *fi)
{
	struct fs_handle *h = NULL;

	if (!fi)
		return NULL;
	pthread_mutex_lock(&fs->lock);
	if (fs->fh_cap)
		for (h = fs->fh_tab[fh_slot(fs, fi->fh)]; h && h->id != fi->fh; h = h->hnext)
			;
	if (h)
		h->refs++;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

static void handle_destroy(struct vmmfs_fs *fs, struct fs_handle *h)
{
	size_t i;

	if (h->kind == FH_WRITER) {
		vmmfs_mapfile_fini(&h->mf);
		pthread_mutex_destroy(&h->lock);
	}
	if (h->stream)
		fs_stream_close(h->stream);
	if (h->as)
		fs_as_put(fs, h->as);
	for (i = 0; i < h->nents; i++)
		free(h->ents[i].name);
	free(h->ents);
	free(h->buf);

	pthread_mutex_lock(&fs->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->node->refs--;
	fs_node_maybe_free(fs, h->node);
	pthread_mutex_unlock(&fs->lock);
	free(h);
}

static void handle_put(struct vmmfs_fs *fs, struct fs_handle *h)
{
	bool last;

	if (!h)
		return;
	pthread_mutex_lock(&fs->lock);
	last = --h->refs == 0;
	if (last && h->hashed)
		fh_unhash_locked(fs, h);
	pthread_mutex_unlock(&fs->lock);
	if (last)
		handle_destroy(fs, h);
}

/* Release: no new operation finds it; it goes with the last reference. */
static void handle_close(struct vmmfs_fs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->lock);
	if (h->hashed)
		fh_unhash_locked(fs, h);
	pthread_mutex_unlock(&fs->lock);
	handle_put(fs, h);
}

static void set_fh(struct fuse_file_info *fi, const struct fs_handle *h)
{
	fi->fh = h->id;
}

/* ---- mapping files --------------------------------------------------- */

/* A person's words for why a map could not be made. */
static const char *map_cause(int r)
{
	switch (-r) {
	case ENOSPC: return "no free virtual address range of that size where asked";
	case ENOMEM: return "no VRAM (or memory) left for page tables or alloc=";
	case EACCES: return "a PFN is a page-table page, which can never be mapped";
	case ERANGE: return "a PFN or the VA range is beyond what the GPU can address";
	case EEXIST: return "va= overlaps an existing mapping";
	case EINVAL: return "invalid request";
	case ENODEV: return "the GPU is gone";
	case ETIMEDOUT: return "the TLB invalidate did not complete";
	default: return strerror(-r);
	}
}

/* Takes a mapping file that will not become a mapping out of the tree. */
static void writer_drop(struct vmmfs_fs *fs, struct fs_handle *h)
{
	struct fs_node *n = h->node;

	pthread_mutex_lock(&fs->lock);
	pthread_mutex_lock(&n->map_lock);
	n->state = MAP_GONE;
	pthread_mutex_unlock(&n->map_lock);
	if (n->hashed) {
		n->as->nmaps--;
		fs_node_unlink(fs, n);
	}
	pthread_mutex_unlock(&fs->lock);
}

/* Makes the mapping the parser describes, from the parser's runs as they
 * are (vmmfs_vmm_map_runs: no array of one PFN per page), which are freed
 * right after: the daemon keeps nothing per page once the VMM has the
 * mapping. */
static int writer_map(struct vmmfs_fs *fs, struct fs_handle *h, struct vmmfs_mapping **m)
{
	struct vmmfs_mapfile *mf = &h->mf;
	struct vmmfs_vmm *vmm = h->as->vmm;
	struct vmmfs_va_placement pl = {
		.kind = mf->va_kind == VMMFS_MAPFILE_VA_EXACT ? VMMFS_VA_EXACT :
			mf->va_kind == VMMFS_MAPFILE_VA_RANGE ? VMMFS_VA_RANGE : VMMFS_VA_ANY,
		.start = mf->va_start,
		.end = mf->va_end,
		.pa_hint = mf->nruns ? mf->runs[0].first * VMMFS_PAGE_SIZE : VMMFS_NO_PA_HINT,
	};
	unsigned int flags = mf->read_only ? VMMFS_MAP_READ_ONLY : 0;
	int r;

	fs_gate_enter(fs);
	if (mf->alloc_bytes)
		r = vmmfs_vmm_map_alloc(vmm, mf->alloc_bytes, &pl, flags, m);
	else
		/* prepare and execute in one: the VMM sees every run when it
		 * plans the page sizes; one TLB flush */
		r = vmmfs_vmm_map_runs(vmm, mf->runs, mf->nruns, &pl, flags, m);
	fs_gate_leave(fs);
	vmmfs_mapfile_fini(mf);
	return r;
}

/* The mapping is made: the file turns live, recorded in the state journal
 * (--state) in the same step, and the record is durable before this
 * returns 0. On failure the mapping is gone again (-ENOMEM, -EIO). */
static int writer_live(struct vmmfs_fs *fs, struct fs_handle *h, struct vmmfs_mapping *m)
{
	struct fs_node *n = h->node;
	struct vmmfs_journal_map jm;
	uint64_t seq = 0;
	char path[512];
	bool mine;
	int r;

	r = fs_state_map_describe(fs, m, &jm);
	pthread_mutex_lock(&fs->lock);
	pthread_mutex_lock(&n->map_lock);
	if (!r)
		r = fs_state_map_add_locked(fs, n, &jm, &seq);
	if (!r) {
		n->mapping = m;
		n->state = MAP_LIVE;
	}
	pthread_mutex_unlock(&n->map_lock);
	fs_node_path(n, path, sizeof(path));
	pthread_mutex_unlock(&fs->lock);
	fs_state_map_describe_free(&jm);
	if (r == -ENOMEM)
		vmmfs_log(VMMFS_LOG_ERROR, "%s: not mapped: no memory to record it in the state "
			  "journal (ENOMEM)", path);
	if (!r)
		r = fs_state_sync(fs, seq, path, "not mapped");
	if (!r)
		return 0;
	/* Not acknowledged: undo it, unless an rm took it meanwhile (as rm
	 * does: no new reader, the readers let go, open files keep a copy). */
	fs_gate_enter(fs);
	pthread_mutex_lock(&n->map_lock);
	mine = n->state == MAP_WRITING; /* never shown */
	if (n->state == MAP_LIVE && n->mapping == m) {
		n->state = MAP_GONE;
		n->unlinking = true;
		while (n->map_readers)
			pthread_cond_wait(&n->map_cond, &n->map_lock);
		if (n->map_opens)
			fs_mapping_freeze_locked(n, m);
		n->mapping = NULL;
		n->unlinking = false;
		pthread_cond_broadcast(&n->map_cond);
		mine = true;
	}
	pthread_mutex_unlock(&n->map_lock);
	if (mine)
		vmmfs_vmm_unmap(h->as->vmm, m);
	fs_gate_leave(fs);
	return r;
}

/* The first flush with data (or the release) makes the mapping. Returns
 * the result every later flush repeats. */
static int writer_commit(struct vmmfs_fs *fs, struct fs_handle *h, bool releasing)
{
	struct fs_node *n = h->node;
	struct vmmfs_mapping *m = NULL;
	struct vmmfs_mapping_info mi;
	char path[512];
	int r;

	pthread_mutex_lock(&h->lock);
	if (h->done) {
		r = h->result;
		goto out;
	}
	r = vmmfs_mapfile_finish(&h->mf);
	if (r == -ENODATA) {
		/* No data yet. A shell's `echo x > f` closes a copy of the
		 * descriptor before it writes: wait. At release, a file that
		 * never got data (touch) leaves nothing. */
		if (!releasing)
			goto out_ok;
		writer_drop(fs, h);
		h->done = true;
		h->result = 0;
		goto out_ok;
	}
	node_path(fs, n, path, sizeof(path));
	if (r) {
		if (!h->error_logged)
			vmmfs_log(VMMFS_LOG_ERROR, "%s: not mapped: %s (%s)", path,
				  vmmfs_mapfile_error(&h->mf), fs_errno_name(r));
		goto fail;
	}
	r = writer_map(fs, h, &m);
	if (r) {
		vmmfs_log(VMMFS_LOG_ERROR, "%s: not mapped: %s (%s)", path, map_cause(r),
			  fs_errno_name(r));
		goto fail;
	}
	/* m is ours until the node shows it: rm may take it right after */
	vmmfs_mapping_get_info(m, &mi);
	r = writer_live(fs, h, m);
	if (r)
		goto fail;
	/* no need to tell the kernel that the size changed: its writes made it
	 * forget the size (op_create) */
	vmmfs_log(VMMFS_LOG_INFO, "%s: mapped %llu pages at 0x%llx-0x%llx %s",
		  path, (unsigned long long)mi.npages, (unsigned long long)mi.va,
		  (unsigned long long)(mi.va + mi.size - 1), mi.read_only ? "ro" : "rw");
	h->done = true;
	h->result = 0;
	vmmfs_mapfile_fini(&h->mf);
	goto out;

fail:
	writer_drop(fs, h);
	h->done = true;
	h->result = r;
	vmmfs_mapfile_fini(&h->mf);
	goto out;
out_ok:
	r = 0;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* ---- operations ------------------------------------------------------ */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vmmfs_fs *fs = userdata;

	/* Big writes and reads: a PFN list arrives, and pagetable leaves, in
	 * requests of 1 MiB (libfuse's largest; the kernel's default is
	 * 128 KiB). max_write also sets the kernel's max_pages, which bounds
	 * reads. -o max_write=N (and libfuse's other -o options) override. */
	if (conn->max_write < (1u << 20))
		conn->max_write = 1u << 20;
	if (fs->conn_opts)
		fuse_apply_conn_info_opts(fs->conn_opts, conn);
	/* writes reach the daemon at write(2): errors go to the writer */
	conn->want &= ~(unsigned int)FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *p, *n;
	uint64_t va = 0;
	int r = 0;

	if (strlen(name) > FS_MAX_NAME) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	if (!p) {
		r = -ENOENT;
		goto out_unlock;
	}
	/* search permission on the directory; not logged (a name lookup) */
	r = perm_dir_locked(req, p, name, NULL, P_X);
	if (r)
		goto out_unlock;
	n = fs_child(fs, p, name);
	if (!n && p->kind == N_AS_TRANSLATE) {
		/* translate/0xVA exists for every VA of the address space */
		r = vmmfs_parse_u64(name, strlen(name), &va);
		if (r == -EINVAL)
			r = -ENOENT;
		else if (!r && va >= fs->va_size)
			r = -ERANGE;
		if (r)
			goto out_unlock;
		n = fs_node_new(fs, p, name, N_AS_XLATE, S_IFREG | 0444, false);
		if (!n) {
			r = -ENOMEM;
			goto out_unlock;
		}
		n->va = va;
	}
	if (!n) {
		r = -ENOENT;
		goto out_unlock;
	}
	n->nlookup++;
	n->refs++;
	pthread_mutex_unlock(&fs->lock);
	reply_entry(req, fs, n);
	node_put(fs, n);
	return;

out_unlock:
	pthread_mutex_unlock(&fs->lock);
	if (r == -ENOENT) {
		/* no such name, cached: names appear only through the kernel */
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		e.entry_timeout = CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	fuse_reply_err(req, -r);
}

static void forget_one(struct vmmfs_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_node *n = fs_node_by_ino(fs, ino);

	if (!n)
		return;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	fs_node_maybe_free(fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct vmmfs_fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vmmfs_fs *fs = fs_of(req);
	size_t i;

	pthread_mutex_lock(&fs->lock);
	for (i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *n = node_get(fs, ino);
	struct fs_handle *h;
	struct stat st;
	bool cache;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	h = handle_get(fs, fi);
	cache = node_stat(fs, n, h, true, &st);
	handle_put(fs, h);
	fuse_reply_attr(req, &st, cache ? CACHE_TIMEOUT : 0.0);
	node_put(fs, n);
}

/* The permission side of setattr (under fs->lock), in the kernel's order:
 * truncate needs write permission (also through an open file: nothing
 * here can be truncated anyway); chown is root's, chmod and explicit
 * times the owner's or root's (EPERM); times set to now need ownership or
 * write permission. What vmmfs then allows at all is op_setattr's
 * business. Logs a refusal. */
static int perm_setattr_locked(fuse_req_t req, struct fs_node *n, int to_set)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct perm_node pn = perm_of(n);
	bool times_now = false, times_set = false;
	char path[512], why[160];
	int r = 0;

	if (to_set & FUSE_SET_ATTR_ATIME)
		*(to_set & FUSE_SET_ATTR_ATIME_NOW ? &times_now : &times_set) = true;
	if (to_set & FUSE_SET_ATTR_MTIME)
		*(to_set & FUSE_SET_ATTR_MTIME_NOW ? &times_now : &times_set) = true;
	fs_node_path(n, path, sizeof(path));
	if ((to_set & FUSE_SET_ATTR_SIZE) && (r = perm_check(req, &pn, P_W))) {
		perm_log(req, path, "truncate", path, &pn, P_W);
	} else if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && c->uid != 0) {
		r = -EPERM;
		perm_log_why(req, path, "chown", "only root may change an owner", r);
	} else if ((to_set & FUSE_SET_ATTR_MODE) && !perm_owner(req, &pn)) {
		r = -EPERM;
		snprintf(why, sizeof(why), "only its owner (uid %u) or root may change its mode",
			 (unsigned int)pn.uid);
		perm_log_why(req, path, "chmod", why, r);
	} else if (times_set && !perm_owner(req, &pn)) {
		r = -EPERM;
		snprintf(why, sizeof(why), "only its owner (uid %u) or root may set its times",
			 (unsigned int)pn.uid);
		perm_log_why(req, path, "setting the times", why, r);
	} else if (times_now && !perm_owner(req, &pn) && (r = perm_check(req, &pn, P_W))) {
		perm_log(req, path, "touch", path, &pn, P_W);
	}
	return r;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *n = node_get(fs, ino);
	struct stat st;
	int r = 0;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	r = perm_setattr_locked(req, n, to_set);
	if (r) {
		;
	} else if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE)) {
		r = -EPERM; /* no chown; nothing here can be truncated */
	} else if (to_set & FUSE_SET_ATTR_MODE) {
		/* mapping files may lose or regain read/write bits; nothing is
		 * executable */
		if (n->kind != N_MAPFILE ||
		    (attr->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH | S_ISUID | S_ISGID | S_ISVTX)))
			r = -EPERM;
		else
			n->mode = S_IFREG | (attr->st_mode & 0666);
	}
	if (!r && n->kind == N_MAPFILE) {
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			clock_gettime(CLOCK_REALTIME, &n->mtime);
		else if (to_set & FUSE_SET_ATTR_MTIME)
			n->mtime = attr->st_mtim;
		clock_gettime(CLOCK_REALTIME, &n->ctime);
	}
	pthread_mutex_unlock(&fs->lock);
	if (r) {
		fuse_reply_err(req, -r);
	} else {
		struct fs_handle *h = handle_get(fs, fi);
		bool cache = node_stat(fs, n, h, true, &st);
		handle_put(fs, h);
		fuse_reply_attr(req, &st, cache ? CACHE_TIMEOUT : 0.0);
	}
	node_put(fs, n);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vmmfs_fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_node *dir = NULL, *p;
	bool ok;
	int r;

	(void)mode;
	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	r = p ? perm_dir_locked(req, p, name, "mkdir", P_W | P_X) : -ENOENT;
	ok = parent == fs->vas_dir->ino;
	pthread_mutex_unlock(&fs->lock);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	if (!ok) {
		fuse_reply_err(req, EPERM); /* directories exist only as vas/NAME */
		return;
	}
	r = fs_as_create(fs, name, ctx->uid, ctx->gid, &dir);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	dir->nlookup++; /* fs_as_create gave a reference: dir is there */
	pthread_mutex_unlock(&fs->lock);
	reply_entry(req, fs, dir);
	node_put(fs, dir);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct vmmfs_vmm *dead = NULL;
	struct fs_node *p, *n;
	uint64_t nmaps = 0, seq = 0;
	char path[FS_MAX_NAME + 8];
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	n = p ? fs_child(fs, p, name) : NULL;
	if (!n)
		r = -ENOENT;
	else if ((r = perm_remove_locked(req, p, n, "rmdir")))
		;
	else if (n->kind != N_AS_DIR)
		r = -EPERM;
	else if ((nmaps = n->as->nmaps))
		r = -ENOTEMPTY;
	else if (!(r = fs_state_vas_remove_locked(fs, name, &seq)))
		dead = fs_as_remove_locked(fs, n->as);
	pthread_mutex_unlock(&fs->lock);
	if (dead)
		vmmfs_vmm_destroy(dead);
	if (!r && seq) {
		snprintf(path, sizeof(path), "vas/%s", name);
		r = fs_state_sync(fs, seq, path, "removed, but may be back after a restart");
	}
	if (r == -ENOTEMPTY)
		vmmfs_log(VMMFS_LOG_ERROR, "vas/%s: not removed: %llu mappings left in maps/ "
			  "(rm them first) (ENOTEMPTY)", name, (unsigned long long)nmaps);
	else if (!r)
		vmmfs_log(VMMFS_LOG_INFO, "vas/%s: address space removed", name);
	fuse_reply_err(req, -r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct vmmfs_mapping *m = NULL;
	struct fs_as *as = NULL;
	struct fs_node *p, *n = NULL;
	char path[512] = "";
	uint64_t seq = 0;
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	n = p ? fs_child(fs, p, name) : NULL;
	if (!n) {
		r = -ENOENT;
		goto out_unlock;
	}
	r = perm_remove_locked(req, p, n, n->kind == N_MAPFILE ? "unmap" : "rm");
	if (r)
		goto out_unlock;
	if (n->kind != N_MAPFILE) {
		r = -EPERM;
		goto out_unlock;
	}
	pthread_mutex_lock(&n->map_lock);
	if (n->state == MAP_WRITING) {
		r = -EBUSY; /* its writer has not closed it */
	} else if (n->state == MAP_LIVE && !(r = fs_state_map_remove_locked(fs, n, &seq))) {
		/* recorded (--state) before the unmap frees anything; no new
		 * reader of the mapping from here on */
		n->state = MAP_GONE;
		n->unlinking = true;
	}
	pthread_mutex_unlock(&n->map_lock);
	if (r)
		goto out_unlock;
	as = n->as;
	as->nmaps--;
	fs_node_path(n, path, sizeof(path));
	if (!fs_as_get_locked(as))
		as = NULL; /* cannot happen: an address space with mappings is never removed */
	n->refs++; /* until the mapping is off it */
	fs_node_unlink(fs, n);
	pthread_mutex_unlock(&fs->lock);

	/* durable before the mapping goes: a crash now finds it gone */
	r = fs_state_sync(fs, seq, path, "removed, but may be back after a restart");

	/* Readers of the description that wait for their reader let go of
	 * the mapping; open files keep a copy of the description (rm of an
	 * open file: it stays readable until closed). */
	fs_gate_enter(fs);
	pthread_mutex_lock(&n->map_lock);
	while (n->map_readers)
		pthread_cond_wait(&n->map_cond, &n->map_lock);
	m = n->mapping;
	if (m && n->map_opens && fs_mapping_freeze_locked(n, m))
		vmmfs_log(VMMFS_LOG_ERROR, "%s: no memory to keep its description for the %u "
			  "open files: their reads fail (EIO)", path, n->map_opens);
	n->mapping = NULL;
	n->unlinking = false;
	pthread_cond_broadcast(&n->map_cond);
	pthread_mutex_unlock(&n->map_lock);
	node_put(fs, n);

	if (m && as) {
		int e = r;

		r = vmmfs_vmm_unmap(as->vmm, m);
		if (r)
			vmmfs_log(VMMFS_LOG_ERROR, "%s: unmapped, but the hardware did not confirm: "
				  "%s (%s); its VA stays reserved", path, strerror(-r),
				  fs_errno_name(r));
		else
			vmmfs_log(VMMFS_LOG_INFO, "%s: unmapped", path);
		r = e; /* the file and the mapping are gone all the same */
	}
	fs_gate_leave(fs);
	if (as)
		fs_as_put(fs, as);
	fuse_reply_err(req, -r);
	return;

out_unlock:
	pthread_mutex_unlock(&fs->lock);
	if (r == -EBUSY) {
		pthread_mutex_lock(&fs->lock);
		fs_node_path(p, path, sizeof(path));
		pthread_mutex_unlock(&fs->lock);
		vmmfs_log(VMMFS_LOG_ERROR, "%s/%s: not removed: still being written (EBUSY)",
			  path, name);
	}
	fuse_reply_err(req, -r);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *p, *np, *n, *dst;
	struct perm_node pd, pn;
	char from[512] = "", to[512] = "";
	uint64_t seq = 0;
	char *dup;
	int r;

	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = fs_name_check(newname);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	np = fs_node_by_ino(fs, newparent);
	n = p ? fs_child(fs, p, name) : NULL;
	if (!n || !np) {
		r = -ENOENT;
	} else if ((r = perm_remove_locked(req, p, n, "rename")) ||
		   (np != p && (r = perm_dir_locked(req, np, newname, "rename", P_W | P_X)))) {
		;
	} else if ((dst = fs_child(fs, np, newname)) && dst != n &&
		   (pd = perm_of(np), pn = perm_of(dst), r = perm_sticky(req, &pd, &pn))) {
		char path[512];

		fs_node_path(dst, path, sizeof(path));
		perm_log_why(req, path, "rename over", "its directory is sticky and neither it nor "
			     "the directory belongs to the caller", r);
	} else if (n->kind == N_MAPFILE) {
		/* within one maps/; another address space's maps/ is another
		 * device as far as mv is concerned */
		r = np == p ? 0 : np->kind == N_AS_MAPS ? -EXDEV : -EPERM;
	} else if (n->kind == N_AS_DIR) {
		r = np == p ? 0 : -EPERM;
	} else {
		r = -EPERM;
	}
	if (!r) {
		dst = fs_child(fs, np, newname);
		if (dst == n)
			goto out_unlock; /* same name */
		if (dst) {
			r = -EEXIST; /* never replaces a mapping: rm it first */
		} else if (!(dup = strdup(newname))) {
			r = -ENOMEM;
		} else {
			/* recorded, then renamed: nothing can fail in between */
			fs_node_path(n, from, sizeof(from));
			r = fs_state_rename_locked(fs, n, newname, &seq);
			if (r) {
				free(dup);
				from[0] = '\0';
			} else {
				fs_node_rename_take(fs, n, dup);
				fs_node_path(n, to, sizeof(to));
			}
		}
	}
out_unlock:
	pthread_mutex_unlock(&fs->lock);
	if (!r && from[0])
		vmmfs_log(VMMFS_LOG_INFO, "%s: renamed to %s", from, to);
	if (!r)
		r = fs_state_sync(fs, seq, to, "renamed, but may have its old name after a restart");
	fuse_reply_err(req, -r);
}

/* Names made some other way than create and mkdir: never, but the
 * permission to make a name in parent is checked first, as it was when
 * the kernel checked it (EACCES before EPERM). */
static void refuse_new_name(fuse_req_t req, fuse_ino_t parent, const char *name, const char *what)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *p;
	int r;

	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	r = p ? perm_dir_locked(req, p, name, what, P_W | P_X) : -ENOENT;
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, r ? -r : EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	refuse_new_name(req, newparent, newname, "link"); /* one name per mapping */
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	refuse_new_name(req, parent, name, "symlink");
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)mode; (void)rdev;
	/* mapping files are made by open(O_CREAT) */
	refuse_new_name(req, parent, name, "mknod");
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_handle *h = NULL;
	struct fs_node *p, *n = NULL;
	struct fuse_entry_param e;
	char path[512] = "";
	int r;

	r = fs_name_check(name);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	p = fs_node_by_ino(fs, parent);
	if (!p) {
		r = -ENOENT;
	} else if ((r = perm_dir_locked(req, p, name, p->kind == N_AS_MAPS ? "map" :
					"create", P_W | P_X))) {
		;
	} else if (p->kind != N_AS_MAPS) {
		r = -EPERM; /* only mapping files can be made */
	} else if (fs_child(fs, p, name)) {
		r = -EEXIST;
	} else if (p->as->nmaps >= FS_MAX_MAPS) {
		r = -ENOSPC;
		fs_node_path(p, path, sizeof(path));
	} else if (!fs_as_get_locked(p->as)) {
		r = -ENOENT;
	} else {
		n = fs_node_new(fs, p, name, N_MAPFILE, S_IFREG | (mode & 0666), true);
		if (!n) {
			p->as->users--; /* just taken, the address space is not removed */
			r = -ENOMEM;
		} else {
			n->uid = ctx->uid;
			n->gid = ctx->gid;
			n->state = MAP_WRITING;
			p->as->nmaps++;
			n->nlookup++;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	if (r == -ENOSPC)
		vmmfs_log(VMMFS_LOG_ERROR, "%s/%s: not created: already %d mapping files (the limit) "
			  "(ENOSPC)", path, name, FS_MAX_MAPS);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}

	h = handle_new(fs, FH_WRITER, n);
	if (!h) {
		struct fs_handle tmp = { .node = n, .as = p->as };
		writer_drop(fs, &tmp);
		fs_as_put(fs, p->as);
		pthread_mutex_lock(&fs->lock);
		n->nlookup--;
		fs_node_maybe_free(fs, n);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->as = n->as;
	pthread_mutex_init(&h->lock, NULL);
	vmmfs_mapfile_init(&h->mf, fs->vram_pages, fs->va_size);

	/* The name is looked up again each time until the map is made (it
	 * goes if the map fails). The attributes are the kernel's to keep while it is written (kept
	 * only here: getattr of a file being written says not to): every write
	 * makes the kernel forget the size it had, so after the first one, which
	 * any commit needs, a stat asks again and gets the description's. */
	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	e.attr_timeout = CACHE_TIMEOUT;
	e.entry_timeout = 0.0;
	node_stat(fs, n, NULL, false, &e.attr);
	set_fh(fi, h);
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi)) {
		/* the kernel never got it: no release will come */
		writer_drop(fs, h);
		pthread_mutex_lock(&fs->lock);
		n->nlookup--;
		pthread_mutex_unlock(&fs->lock);
		handle_close(fs, h);
	}
}

/* open(2) of n with flags: read and/or write by O_ACCMODE, write for
 * O_TRUNC. A refusal is logged. */
static int perm_open(fuse_req_t req, struct vmmfs_fs *fs, struct fs_node *n, int flags)
{
	int acc = flags & O_ACCMODE, mask, r;
	struct perm_node pn;
	char path[512];

	/* O_TRUNC comes with the open (libfuse asks for atomic_o_trunc) and
	 * needs write permission whatever the access mode */
	mask = acc == O_RDONLY ? P_R : acc == O_WRONLY ? P_W : P_R | P_W;
	if (flags & O_TRUNC)
		mask |= P_W;
	pthread_mutex_lock(&fs->lock);
	pn = perm_of(n);
	pthread_mutex_unlock(&fs->lock);
	r = perm_check(req, &pn, mask);
	if (r) {
		node_path(fs, n, path, sizeof(path));
		perm_log(req, path, (flags & O_TRUNC) ? "open with O_TRUNC" : mask == P_R ?
			 "open for reading" : mask == P_W ? "open for writing" :
			 "open for reading and writing", path, &pn, mask);
	}
	return r;
}

/* access(2), and chdir: the same rules as the operations, for the real
 * uid the kernel passes. A question, not an action: never logged. */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *n = node_get(fs, ino);
	struct perm_node pn;
	int want = 0, r;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	pn = perm_of(n);
	pthread_mutex_unlock(&fs->lock);
	node_put(fs, n);
	if (mask & R_OK)
		want |= P_R;
	if (mask & W_OK)
		want |= P_W;
	if (mask & X_OK)
		want |= P_X;
	r = want ? perm_check(req, &pn, want) : 0; /* F_OK: it exists */
	fuse_reply_err(req, -r);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *n = node_get(fs, ino);
	int acc = fi->flags & O_ACCMODE;
	struct fs_handle *h = NULL;
	struct fs_stream *s = NULL;
	bool cached = false;
	struct text t;
	int r = 0;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	r = perm_open(req, fs, n, fi->flags);
	if (r) {
		fuse_reply_err(req, -r);
		node_put(fs, n);
		return;
	}
	text_init(&t);
	if (n->kind == N_MAPFILE && acc != O_RDONLY) {
		r = -EBUSY; /* written once: rm it and write a new one */
	} else if ((is_text(n->kind) || n->kind == N_AS_PAGETABLE) && acc != O_RDONLY) {
		r = -EACCES;
	} else if (is_text(n->kind)) {
		r = fs_generate(fs, n, &t);
		if (!r) {
			h = handle_new(fs, FH_TEXT, n);
			if (h)
				h->buf = text_take(&t, &h->len);
		}
	} else if (n->kind == N_AS_PAGETABLE || n->kind == N_MAPFILE) {
		/* made as it is read; a description never changes: cached */
		r = fs_stream_open(fs, n, &s);
		if (!r) {
			h = handle_new(fs, FH_STREAM, n);
			if (h)
				h->stream = s;
			else
				fs_stream_close(s);
			cached = n->kind == N_MAPFILE;
		}
	} else if (n->kind == N_VRAM_RAW) {
		h = handle_new(fs, FH_RAW, n);
	} else if (n->kind == N_AS_MEM) {
		bool ok;
		pthread_mutex_lock(&fs->lock);
		ok = fs_as_get_locked(n->as);
		pthread_mutex_unlock(&fs->lock);
		if (!ok) {
			r = -ENOENT;
		} else {
			h = handle_new(fs, FH_MEM, n);
			if (h)
				h->as = n->as;
			else
				fs_as_put(fs, n->as);
		}
	} else {
		r = -EISDIR;
	}
	text_free(&t);
	if (!r && !h)
		r = -ENOMEM;
	if (r) {
		if (r == -EBUSY) {
			char path[512];
			node_path(fs, n, path, sizeof(path));
			if (acc != O_RDONLY)
				vmmfs_log(VMMFS_LOG_ERROR, "%s: not opened for writing: a mapping file "
					  "is written once; rm it and write a new one (EBUSY)", path);
			else
				vmmfs_log(VMMFS_LOG_ERROR, "%s: not opened: still being written (EBUSY)",
					  path);
		}
		fuse_reply_err(req, -r);
		node_put(fs, n);
		return;
	}
	set_fh(fi, h);
	/* never cached but a description: every open shows the current state */
	fi->direct_io = !cached;
	fi->keep_cache = cached;
	/* close has nothing to wait for (writes were made at write): no flush
	 * request */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi))
		handle_close(fs, h);
	node_put(fs, n);
}

static void log_io_error(struct vmmfs_fs *fs, struct fs_handle *h, const char *what,
			 off_t off, int r)
{
	char path[512];

	node_path(fs, h->node, path, sizeof(path));
	vmmfs_log(VMMFS_LOG_ERROR, "%s: %s at 0x%llx failed: %s (%s)", path, what,
		  (unsigned long long)off,
		  r == EIO ? "not mapped" : r == EACCES ? "read-only mapping" : strerror(r),
		  fs_errno_name(r));
}

/* Errors of vmmfs_vmm_mem_* as the file sees them. */
static int mem_errno(long r)
{
	switch (-r) {
	case EFAULT: return EIO;     /* not mapped */
	case EACCES: return EACCES;  /* read-only */
	case ENODEV: return EIO;
	default: return (int)-r;
	}
}

static void do_read(fuse_req_t req, struct vmmfs_fs *fs, struct fs_handle *h, size_t size,
		    off_t off);
static void do_write(fuse_req_t req, struct vmmfs_fs *fs, struct fs_handle *h, const char *buf,
		     size_t size, off_t off);

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	do_read(req, fs, h, size, off);
	handle_put(fs, h);
}

/* A read into rbuf or a write from wbuf of mem or vram/raw, size already
 * clipped to the file: the bytes done, or -errno (logged in one line). */
static long mem_rw(struct vmmfs_fs *fs, struct fs_handle *h, off_t off, void *rbuf,
		   const void *wbuf, size_t size)
{
	long r;
	int err;

	if (h->kind == FH_RAW) {
		r = rbuf ? vmmfs_gpu_vram_read(fs->gpu, (uint64_t)off, rbuf, size) :
			   vmmfs_gpu_vram_write(fs->gpu, (uint64_t)off, wbuf, size);
		r = r ? -EIO : (long)size;
	} else {
		fs_gate_enter(fs);
		r = rbuf ? vmmfs_vmm_mem_read(h->as->vmm, (uint64_t)off, rbuf, size) :
			   vmmfs_vmm_mem_write(h->as->vmm, (uint64_t)off, wbuf, size);
		fs_gate_leave(fs);
	}
	if (r >= 0)
		return r;
	err = h->kind == FH_RAW ? EIO : mem_errno(r);
	log_io_error(fs, h, rbuf ? "read" : "write", off, err);
	return -err;
}

static void do_read(fuse_req_t req, struct vmmfs_fs *fs, struct fs_handle *h, size_t size,
		    off_t off)
{
	uint64_t end;
	char *buf;
	long r;

	switch (h->kind) {
	case FH_TEXT:
		if ((uint64_t)off >= h->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->buf + off, MIN_SZ(size, h->len - (size_t)off));
		return;
	case FH_STREAM:
		fs_stream_read(h->stream, req, size, off);
		return;
	case FH_RAW:
	case FH_MEM:
		end = h->kind == FH_RAW ? fs->info->vram_size : fs->va_size;
		if ((uint64_t)off >= end || !size) {
			fuse_reply_buf(req, NULL, 0); /* end of file */
			return;
		}
		if (size > end - (uint64_t)off)
			size = (size_t)(end - (uint64_t)off);
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		r = mem_rw(fs, h, off, buf, NULL, size);
		if (r < 0)
			fuse_reply_err(req, (int)-r);
		else
			fuse_reply_buf(req, buf, (size_t)r);
		free(buf);
		return;
	default:
		fuse_reply_err(req, EBADF);
		return;
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	do_write(req, fs, h, buf, size, off);
	handle_put(fs, h);
}

static void do_write(fuse_req_t req, struct vmmfs_fs *fs, struct fs_handle *h, const char *buf,
		     size_t size, off_t off)
{
	char path[512];
	uint64_t end;
	long r;

	switch (h->kind) {
	case FH_WRITER:
		pthread_mutex_lock(&h->lock);
		if (h->done) {
			r = h->result ? h->result : -EBUSY; /* mapped at the first close */
		} else if ((uint64_t)off != h->mf.bytes && !h->mf.error) {
			r = -EINVAL;
			node_path(fs, h->node, path, sizeof(path));
			vmmfs_log(VMMFS_LOG_ERROR, "%s: write at offset %lld refused: mapping files "
				  "are written from start to end (EINVAL)", path, (long long)off);
		} else {
			r = vmmfs_mapfile_feed(&h->mf, buf, size);
			if (r && !h->error_logged) {
				node_path(fs, h->node, path, sizeof(path));
				vmmfs_log(VMMFS_LOG_ERROR, "%s: write refused: %s (%s)", path,
					  vmmfs_mapfile_error(&h->mf), fs_errno_name((int)r));
				h->error_logged = true;
			}
			if (!r) {
				pthread_mutex_lock(&h->node->map_lock);
				h->node->written = h->mf.bytes;
				pthread_mutex_unlock(&h->node->map_lock);
			}
		}
		pthread_mutex_unlock(&h->lock);
		if (r)
			fuse_reply_err(req, (int)-r);
		else
			fuse_reply_write(req, size);
		return;
	case FH_RAW:
	case FH_MEM:
		end = h->kind == FH_RAW ? fs->info->vram_size : fs->va_size;
		if ((uint64_t)off >= end) {
			if (size) /* beyond the end of the file */
				log_io_error(fs, h, "write", off, EFBIG);
			fuse_reply_err(req, size ? EFBIG : 0);
			return;
		}
		if (size > end - (uint64_t)off)
			size = (size_t)(end - (uint64_t)off);
		r = mem_rw(fs, h, off, NULL, buf, size);
		if (r < 0)
			fuse_reply_err(req, (int)-r);
		else
			fuse_reply_write(req, (size_t)r);
		return;
	default:
		fuse_reply_err(req, EBADF);
		return;
	}
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);

	(void)ino;
	if (h && h->kind == FH_WRITER)
		fuse_reply_err(req, -writer_commit(fs, h, false));
	else
		fuse_reply_err(req, 0);
	handle_put(fs, h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);

	(void)ino;
	if (h) {
		if (h->kind == FH_WRITER)
			writer_commit(fs, h, true); /* no-op if a flush did it */
		handle_close(fs, h);
		handle_put(fs, h);
	}
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino; (void)datasync; (void)fi;
	fuse_reply_err(req, 0); /* the mapping is made at close */
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_node *n = node_get(fs, ino), *c;
	struct perm_node pn;
	struct fs_handle *h;
	size_t count = 2, i = 0;
	int r;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!fs_node_is_dir(n)) {
		node_put(fs, n);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* read permission, checked at opendir as at open (readdir uses the
	 * open directory); a listing: not logged */
	pthread_mutex_lock(&fs->lock);
	pn = perm_of(n);
	pthread_mutex_unlock(&fs->lock);
	r = perm_check(req, &pn, P_R);
	if (r) {
		node_put(fs, n);
		fuse_reply_err(req, -r);
		return;
	}
	h = handle_new(fs, FH_DIR, n);
	node_put(fs, n);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* a snapshot: entries made or removed meanwhile never shift offsets */
	pthread_mutex_lock(&fs->lock);
	for (c = n->first_child; c; c = c->next_sib)
		count++;
	h->ents = calloc(count, sizeof(*h->ents));
	if (h->ents) {
		h->ents[i].name = strdup(".");
		h->ents[i].ino = n->ino;
		h->ents[i++].mode = S_IFDIR;
		h->ents[i].name = strdup("..");
		h->ents[i].ino = n->parent ? n->parent->ino : n->ino;
		h->ents[i++].mode = S_IFDIR;
		for (c = n->first_child; c; c = c->next_sib, i++) {
			h->ents[i].name = strdup(c->name);
			h->ents[i].ino = c->ino;
			h->ents[i].mode = c->mode;
		}
		h->nents = count;
	}
	pthread_mutex_unlock(&fs->lock);
	for (i = 0; i < h->nents; i++)
		if (!h->ents[i].name)
			break;
	if (!h->ents || i < h->nents) {
		handle_close(fs, h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	set_fh(fi, h);
	if (fuse_reply_open(req, fi))
		handle_close(fs, h);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);
	char *buf = malloc(size ? size : 1);
	size_t used = 0, i;

	(void)ino;
	if (!buf || !h) {
		fuse_reply_err(req, buf ? EBADF : ENOMEM);
		free(buf);
		handle_put(fs, h);
		return;
	}
	for (i = (size_t)off; i < h->nents; i++) {
		struct stat st = { .st_ino = h->ents[i].ino, .st_mode = h->ents[i].mode };
		size_t need = fuse_add_direntry(req, buf + used, size - used, h->ents[i].name,
						&st, (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	handle_put(fs, h);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct fs_handle *h = handle_get(fs, fi);

	(void)ino;
	if (h) {
		handle_close(fs, h);
		handle_put(fs, h);
	}
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vmmfs_fs *fs = fs_of(req);
	struct vmmfs_vram_usage u;
	struct statvfs sv;

	(void)ino;
	vmmfs_gpu_get_vram_usage(fs->gpu, &u);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = VMMFS_PAGE_SIZE;
	sv.f_blocks = u.total_pages;
	sv.f_bfree = sv.f_bavail = u.free_pages;
	pthread_mutex_lock(&fs->lock);
	sv.f_files = fs->nnodes;
	pthread_mutex_unlock(&fs->lock);
	sv.f_namemax = FS_MAX_NAME;
	fuse_reply_statfs(req, &sv);
}

/* ---- which requests may take long ------------------------------------ */

/* Pages above which a map or unmap is left to a worker thread. */
#define SLOW_PAGES (1ull << 16)

bool fs_request_is_slow(struct vmmfs_fs *fs, const void *req, size_t len)
{
	const struct fuse_in_header *in = req;
	struct fuse_file_info fi;
	struct fs_handle *h;
	uint64_t fh;
	bool slow = false;

	if (len < sizeof(*in))
		return false;
	switch (in->opcode) {
	case FUSE_RMDIR:
		return true; /* destroys an address space */
	case FUSE_MKDIR:
	case FUSE_UNLINK:
	case FUSE_RENAME:
	case FUSE_RENAME2:
		/* with --state, they wait for the journal's fdatasync, which
		 * the records of others can share */
		return fs->jnl != NULL;
	case FUSE_READ:
	case FUSE_WRITE:
	case FUSE_FLUSH:
	case FUSE_RELEASE:
		break;
	default:
		return false;
	}
	/* their argument starts with the file handle */
	if (len < sizeof(*in) + sizeof(fh))
		return false;
	memcpy(&fh, (const char *)req + sizeof(*in), sizeof(fh));
	memset(&fi, 0, sizeof(fi));
	fi.fh = fh;
	h = handle_get(fs, &fi);
	if (!h)
		return false;
	switch (h->kind) {
	case FH_STREAM:
		/* may wait for its producer */
		slow = in->opcode == FUSE_READ;
		break;
	case FH_RAW:
	case FH_MEM:
		slow = in->opcode == FUSE_READ || in->opcode == FUSE_WRITE;
		break;
	case FH_WRITER:
		if (in->opcode == FUSE_FLUSH || in->opcode == FUSE_RELEASE) {
			pthread_mutex_lock(&h->lock);
			slow = !h->done && (h->mf.npages > SLOW_PAGES ||
					    h->mf.alloc_bytes > SLOW_PAGES * VMMFS_PAGE_SIZE ||
					    fs->jnl); /* the commit waits for a sync */
			pthread_mutex_unlock(&h->lock);
		}
		break;
	default:
		break;
	}
	handle_put(fs, h);
	return slow;
}

void fs_handles_free(struct vmmfs_fs *fs)
{
	while (fs->handles) {
		struct fs_handle *h = fs->handles;
		if (h->kind == FH_WRITER) {
			/* the writer never closed: nothing is mapped for it */
			pthread_mutex_lock(&h->lock);
			if (!h->done) {
				writer_drop(fs, h);
				h->done = true;
			}
			pthread_mutex_unlock(&h->lock);
		}
		if (h->hashed)
			fh_unhash_locked(fs, h);
		handle_destroy(fs, h);
	}
	free(fs->fh_tab);
	fs->fh_tab = NULL;
	fs->fh_cap = 0;
}

const struct fuse_lowlevel_ops vmmfs_oper = {
	.init = op_init,
	.lookup = op_lookup,
	.access = op_access,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.create = op_create,
};
