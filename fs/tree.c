/* SPDX-License-Identifier: MIT */
/*
 * The node table: inode numbers (never reused), names, the fixed part of
 * the tree and the address-space directories. See vmmfs_fs.h for locking
 * and lifetimes.
 */
#include "vmmfs_fs.h"
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const gpu_attr_names[GPU_NR_ATTRS] = {
	[GPU_CHIPSET] = "chipset",
	[GPU_ARCH] = "arch",
	[GPU_MMU_VERSION] = "mmu_version",
	[GPU_VA_BITS] = "va_bits",
	[GPU_VRAM_SIZE] = "vram_size",
	[GPU_BACKEND] = "backend",
};

/* ---- hashing --------------------------------------------------------- */

static size_t ino_slot(const struct vmmfs_fs *fs, fuse_ino_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (fs->ino_cap - 1);
}

static size_t name_slot(const struct vmmfs_fs *fs, fuse_ino_t parent, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (parent * 0x9e3779b97f4a7c15ull);

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return (size_t)(h ^ (h >> 29)) & (fs->name_cap - 1);
}

/* Doubles a table; on allocation failure the table stays as it is (longer
 * chains, still correct). */
static void ino_grow(struct vmmfs_fs *fs)
{
	struct fs_node **old = fs->ino_tab, **tab;
	size_t oldcap = fs->ino_cap, i;

	tab = calloc(oldcap * 2, sizeof(*tab));
	if (!tab)
		return;
	fs->ino_tab = tab;
	fs->ino_cap = oldcap * 2;
	for (i = 0; i < oldcap; i++) {
		struct fs_node *n = old[i], *next;
		for (; n; n = next) {
			size_t s = ino_slot(fs, n->ino);
			next = n->ino_next;
			n->ino_next = tab[s];
			tab[s] = n;
		}
	}
	free(old);
}

static void name_grow(struct vmmfs_fs *fs)
{
	struct fs_node **old = fs->name_tab, **tab;
	size_t oldcap = fs->name_cap, i;

	tab = calloc(oldcap * 2, sizeof(*tab));
	if (!tab)
		return;
	fs->name_tab = tab;
	fs->name_cap = oldcap * 2;
	for (i = 0; i < oldcap; i++) {
		struct fs_node *n = old[i], *next;
		for (; n; n = next) {
			size_t s = name_slot(fs, n->parent->ino, n->name);
			next = n->name_next;
			n->name_next = tab[s];
			tab[s] = n;
		}
	}
	free(old);
}

static void name_insert(struct vmmfs_fs *fs, struct fs_node *n)
{
	size_t s;

	if (fs->nnames >= fs->name_cap)
		name_grow(fs);
	s = name_slot(fs, n->parent->ino, n->name);
	n->name_next = fs->name_tab[s];
	fs->name_tab[s] = n;
	fs->nnames++;
	n->hashed = true;
}

static void name_remove(struct vmmfs_fs *fs, struct fs_node *n)
{
	struct fs_node **pp = &fs->name_tab[name_slot(fs, n->parent->ino, n->name)];

	for (; *pp; pp = &(*pp)->name_next)
		if (*pp == n) {
			*pp = n->name_next;
			fs->nnames--;
			break;
		}
	n->hashed = false;
}

struct fs_node *fs_node_by_ino(struct vmmfs_fs *fs, fuse_ino_t ino)
{
	struct fs_node *n = fs->ino_tab[ino_slot(fs, ino)];

	while (n && n->ino != ino)
		n = n->ino_next;
	return n;
}

struct fs_node *fs_child(struct vmmfs_fs *fs, struct fs_node *dir, const char *name)
{
	struct fs_node *n = fs->name_tab[name_slot(fs, dir->ino, name)];

	for (; n; n = n->name_next)
		if (n->parent == dir && !strcmp(n->name, name))
			return n;
	return NULL;
}

bool fs_node_is_dir(const struct fs_node *n)
{
	switch (n->kind) {
	case N_ROOT: case N_GPU_DIR: case N_VRAM_DIR: case N_VAS_DIR:
	case N_AS_DIR: case N_AS_MAPS: case N_AS_TRANSLATE:
		return true;
	default:
		return false;
	}
}

int fs_name_check(const char *name)
{
	size_t len = strlen(name), i;

	if (len > FS_MAX_NAME)
		return -ENAMETOOLONG;
	if (!len || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return -EINVAL; /* would break log and listing lines */
	return 0;
}

/* ---- nodes ----------------------------------------------------------- */

struct fs_node *fs_node_new(struct vmmfs_fs *fs, struct fs_node *parent, const char *name,
			    enum fs_kind kind, mode_t mode, bool listed)
{
	struct fs_node *n = calloc(1, sizeof(*n));
	size_t s;

	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->ino = fs->next_ino++;
	n->kind = kind;
	n->mode = mode;
	n->uid = parent ? parent->uid : fs->uid;
	n->gid = parent ? parent->gid : fs->gid;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
	if (kind == N_MAPFILE) {
		pthread_mutex_init(&n->map_lock, NULL);
		pthread_cond_init(&n->map_cond, NULL);
	}

	if (fs->nnodes >= fs->ino_cap)
		ino_grow(fs);
	s = ino_slot(fs, n->ino);
	n->ino_next = fs->ino_tab[s];
	fs->ino_tab[s] = n;
	fs->nnodes++;

	if (parent) {
		n->parent = parent;
		parent->refs++; /* a child keeps its parent's memory */
		n->as = parent->as;
		if (n->as)
			n->as->node_refs++;
		name_insert(fs, n);
		if (listed) {
			n->prev_sib = parent->last_child;
			if (parent->last_child)
				parent->last_child->next_sib = n;
			else
				parent->first_child = n;
			parent->last_child = n;
			n->listed = true;
		}
	}
	return n;
}

static void unlist(struct fs_node *n)
{
	struct fs_node *p = n->parent;

	if (!n->listed)
		return;
	if (n->prev_sib)
		n->prev_sib->next_sib = n->next_sib;
	else
		p->first_child = n->next_sib;
	if (n->next_sib)
		n->next_sib->prev_sib = n->prev_sib;
	else
		p->last_child = n->prev_sib;
	n->prev_sib = n->next_sib = NULL;
	n->listed = false;
}

void fs_node_unlink(struct vmmfs_fs *fs, struct fs_node *n)
{
	if (n->hashed)
		name_remove(fs, n);
	unlist(n);
	clock_gettime(CLOCK_REALTIME, &n->ctime);
	fs_node_maybe_free(fs, n);
}

int fs_node_rename(struct vmmfs_fs *fs, struct fs_node *n, struct fs_node *newparent,
		   const char *newname)
{
	char *name = strdup(newname);

	if (!name)
		return -ENOMEM;
	if (newparent != n->parent)
		return free(name), -EXDEV;
	fs_node_rename_take(fs, n, name);
	return 0;
}

void fs_node_rename_take(struct vmmfs_fs *fs, struct fs_node *n, char *name)
{
	name_remove(fs, n);
	free(n->name);
	n->name = name;
	name_insert(fs, n);
	clock_gettime(CLOCK_REALTIME, &n->ctime);
}

static void as_free(struct fs_as *as)
{
	/* the VMM went with its last user; nothing else refers to as */
	free(as);
}

static void node_free(struct vmmfs_fs *fs, struct fs_node *n)
{
	struct fs_node **pp = &fs->ino_tab[ino_slot(fs, n->ino)];
	struct fs_node *parent = n->parent;

	for (; *pp; pp = &(*pp)->ino_next)
		if (*pp == n) {
			*pp = n->ino_next;
			fs->nnodes--;
			break;
		}
	if (n->as && --n->as->node_refs == 0)
		as_free(n->as);
	if (n->kind == N_MAPFILE) {
		fs_frozen_free(n->frozen);
		pthread_cond_destroy(&n->map_cond);
		pthread_mutex_destroy(&n->map_lock);
	}
	free(n->name);
	free(n);
	if (parent) {
		parent->refs--;
		fs_node_maybe_free(fs, parent);
	}
}

void fs_node_maybe_free(struct vmmfs_fs *fs, struct fs_node *n)
{
	if (n->nlookup || n->refs)
		return;
	if (n->kind == N_AS_XLATE && n->hashed)
		name_remove(fs, n); /* made by lookup, forgotten by the kernel */
	if (n->hashed || n->listed || !n->parent)
		return;
	node_free(fs, n);
}

void fs_node_path(const struct fs_node *n, char *buf, size_t len)
{
	const struct fs_node *parts[16];
	size_t depth = 0, off = 0;

	for (; n && n->parent && depth < 16; n = n->parent)
		parts[depth++] = n;
	buf[0] = '\0';
	while (depth--) {
		int w = snprintf(buf + off, len - off, "%s%s", off ? "/" : "", parts[depth]->name);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
}

/* ---- address spaces -------------------------------------------------- */

bool fs_as_get_locked(struct fs_as *as)
{
	if (!as || as->removed || !as->vmm)
		return false;
	as->users++;
	return true;
}

void fs_as_put(struct vmmfs_fs *fs, struct fs_as *as)
{
	struct vmmfs_vmm *dead = NULL;

	pthread_mutex_lock(&fs->lock);
	if (--as->users == 0 && as->removed) {
		dead = as->vmm;
		as->vmm = NULL;
	}
	pthread_mutex_unlock(&fs->lock);
	if (dead)
		vmmfs_vmm_destroy(dead);
}

/* The address-space cap's log line (mkdir in vas/ refused with ENOSPC). */
static void log_vas_cap(const char *name)
{
	vmmfs_log(VMMFS_LOG_ERROR, "vas/%s: cannot create: already %d address spaces "
		  "(the limit); remove one with rmdir first (ENOSPC)", name, FS_MAX_VAS);
}

int fs_as_create(struct vmmfs_fs *fs, const char *name, uid_t uid, gid_t gid,
		 struct fs_node **dirp)
{
	static const struct { const char *name; enum fs_kind kind; mode_t mode; } files[] = {
		{ "pdb", N_AS_PDB, S_IFREG | 0444 },
		{ "maps", N_AS_MAPS, S_IFDIR | 0755 },
		{ "pagetable", N_AS_PAGETABLE, S_IFREG | 0444 },
		{ "translate", N_AS_TRANSLATE, S_IFDIR | 0555 },
		{ "mem", N_AS_MEM, S_IFREG | 0600 },
		{ "stats", N_AS_STATS, S_IFREG | 0444 },
	};
	struct vmmfs_vmm *vmm = NULL, *dead = NULL;
	struct fs_node *dir, *n;
	struct fs_as *as;
	uint64_t seq = 0, pdb;
	size_t i;
	int r;

	r = fs_name_check(name);
	if (r)
		return r;
	pthread_mutex_lock(&fs->lock);
	if (fs_child(fs, fs->vas_dir, name))
		r = -EEXIST;
	else if (fs->nvas >= FS_MAX_VAS)
		r = -ENOSPC;
	pthread_mutex_unlock(&fs->lock);
	if (r == -ENOSPC)
		log_vas_cap(name);
	if (r)
		return r;

	as = calloc(1, sizeof(*as));
	if (!as) {
		vmmfs_log(VMMFS_LOG_ERROR, "vas/%s: cannot create the address space: out of "
			  "memory (ENOMEM)", name);
		return -ENOMEM;
	}
	r = vmmfs_vmm_create(fs->gpu, &vmm);
	if (r) {
		vmmfs_log(VMMFS_LOG_ERROR, "vas/%s: cannot create the address space: %s",
			  name, strerror(-r));
		goto err_free_as;
	}
	as->vmm = vmm;

	pthread_mutex_lock(&fs->lock);
	if (fs_child(fs, fs->vas_dir, name)) {
		r = -EEXIST; /* made by someone else meanwhile */
		goto err_unlock;
	}
	if (fs->nvas >= FS_MAX_VAS) {
		r = -ENOSPC; /* made by others meanwhile */
		goto err_unlock;
	}
	dir = fs_node_new(fs, fs->vas_dir, name, N_AS_DIR, S_IFDIR | 0555, true);
	if (!dir) {
		r = -ENOMEM;
		goto err_unlock;
	}
	dir->uid = uid;
	dir->gid = gid;
	dir->as = as;
	as->node_refs++;
	as->dir = dir;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		n = fs_node_new(fs, dir, files[i].name, files[i].kind, files[i].mode, true);
		if (!n) {
			r = -ENOMEM;
			goto err_remove;
		}
		if (files[i].kind == N_AS_MAPS)
			as->maps = n;
	}
	/* recorded once nothing can fail any more */
	r = fs_state_vas_create_locked(fs, name, &seq);
	if (r)
		goto err_remove;
	fs->nvas++;
	pdb = vmmfs_vmm_pdb(vmm);
	dir->refs++; /* keeps dir, and as, while we wait for the journal */
	pthread_mutex_unlock(&fs->lock);
	vmmfs_log(VMMFS_LOG_INFO, "vas/%s: address space created, root page directory at 0x%llx",
		  name, (unsigned long long)pdb);
	if (seq) {
		char path[FS_MAX_NAME + 8];

		snprintf(path, sizeof(path), "vas/%s", name);
		r = fs_state_sync(fs, seq, path, "not created");
	}
	pthread_mutex_lock(&fs->lock);
	if (r && !as->removed && !as->nmaps) {
		/* The journal broke and refuses every change from now on. An
		 * empty address space goes again; one that already got a
		 * mapping file (which cannot be mapped now) stays. */
		dead = fs_as_remove_locked(fs, as);
	}
	if (r || !dirp) {
		dir->refs--;
		fs_node_maybe_free(fs, dir); /* if it went meanwhile */
	}
	pthread_mutex_unlock(&fs->lock);
	if (dead)
		vmmfs_vmm_destroy(dead);
	if (r)
		return r;
	if (dirp)
		*dirp = dir; /* with the reference taken above */
	return 0;

err_remove:
	/* the nodes made so far go with the directory; as goes with them */
	fs->nvas++;
	fs_as_remove_locked(fs, as);
	pthread_mutex_unlock(&fs->lock);
	vmmfs_vmm_destroy(vmm);
	return r;
err_unlock:
	pthread_mutex_unlock(&fs->lock);
	if (r == -ENOSPC)
		log_vas_cap(name);
	vmmfs_vmm_destroy(vmm);
err_free_as:
	free(as);
	return r;
}

struct vmmfs_vmm *fs_as_remove_locked(struct vmmfs_fs *fs, struct fs_as *as)
{
	struct vmmfs_vmm *vmm = NULL;
	struct fs_node *dir = as->dir, *c, *next;

	as->removed = true;
	if (as->users == 0) {
		vmm = as->vmm;
		as->vmm = NULL;
	}
	fs->nvas--;
	as->dir = NULL;
	as->maps = NULL;
	/* Children first: each may free itself, and the directory last, which
	 * may free as. */
	dir->refs++;
	for (c = dir->first_child; c; c = next) {
		next = c->next_sib;
		fs_node_unlink(fs, c);
	}
	dir->refs--;
	fs_node_unlink(fs, dir);
	return vmm;
}

/* ---- the fixed tree -------------------------------------------------- */

int fs_init(struct vmmfs_fs *fs, struct vmmfs_gpu *gpu, struct vmmfs_journal *jnl,
	    char *err, size_t errlen)
{
	struct fs_node *root, *gpud, *vram, *n;
	unsigned int i;
	int r;

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->gate_lock, NULL);
	fs->gpu = gpu;
	fs->info = vmmfs_gpu_get_info(gpu);
	fs->vram_pages = fs->info->vram_size / VMMFS_PAGE_SIZE;
	fs->va_size = 1ull << fs->info->va_bits;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->next_ino = FUSE_ROOT_ID;
	fs->ino_cap = fs->name_cap = 256;
	fs->ino_tab = calloc(fs->ino_cap, sizeof(*fs->ino_tab));
	fs->name_tab = calloc(fs->name_cap, sizeof(*fs->name_tab));
	if (!fs->ino_tab || !fs->name_tab)
		goto err_nomem;

	pthread_mutex_lock(&fs->lock);
	root = fs->root = fs_node_new(fs, NULL, "", N_ROOT, S_IFDIR | 0755, false);
	if (!root)
		goto err_unlock;
	if (!fs_node_new(fs, root, "README", N_README, S_IFREG | 0444, true))
		goto err_unlock;
	gpud = fs_node_new(fs, root, "gpu", N_GPU_DIR, S_IFDIR | 0555, true);
	if (!gpud)
		goto err_unlock;
	for (i = 0; i < GPU_NR_ATTRS; i++) {
		n = fs_node_new(fs, gpud, gpu_attr_names[i], N_GPU_ATTR, S_IFREG | 0444, true);
		if (!n)
			goto err_unlock;
		n->attr = i;
	}
	vram = fs_node_new(fs, root, "vram", N_VRAM_DIR, S_IFDIR | 0555, true);
	if (!vram || !fs_node_new(fs, vram, "raw", N_VRAM_RAW, S_IFREG | 0600, true) ||
	    !fs_node_new(fs, vram, "usage", N_VRAM_USAGE, S_IFREG | 0444, true))
		goto err_unlock;
	fs->vas_dir = fs_node_new(fs, root, "vas", N_VAS_DIR, S_IFDIR | 0755, true);
	if (!fs->vas_dir || !fs_node_new(fs, root, "stats", N_STATS, S_IFREG | 0444, true) ||
	    !fs_node_new(fs, root, "log", N_LOG, S_IFREG | 0444, true))
		goto err_unlock;
	pthread_mutex_unlock(&fs->lock);

	if (jnl) {
		/* rebuilt without recording it again; then recording starts */
		r = fs_state_restore(fs, jnl, err, errlen);
		if (r) {
			fs_fini(fs);
			return r;
		}
		fs->jnl = jnl;
		if (!vmmfs_journal_fresh(jnl))
			return 0;
	}
	r = fs_as_create(fs, "0", fs->uid, fs->gid, NULL);
	if (r) {
		snprintf(err, errlen, "cannot create the address space vas/0: %s", strerror(-r));
		fs_fini(fs);
		return r;
	}
	return 0;

err_unlock:
	pthread_mutex_unlock(&fs->lock);
err_nomem:
	snprintf(err, errlen, "out of memory");
	fs_fini(fs);
	return -ENOMEM;
}

void fs_fini(struct vmmfs_fs *fs)
{
	uint64_t nmaps = 0, nvas = 0;
	size_t i;

	if (!fs->ino_tab)
		goto out;
	/* Every address space still alive: its VMM unmaps what is mapped. */
	for (i = 0; i < fs->ino_cap; i++) {
		struct fs_node *n;
		for (n = fs->ino_tab[i]; n; n = n->ino_next) {
			if (n->kind == N_MAPFILE) {
				if (n->state == MAP_LIVE)
					nmaps++;
				n->mapping = NULL;
				n->state = MAP_GONE;
			}
			if (n->kind == N_AS_DIR && n->as && n->as->vmm) {
				vmmfs_vmm_destroy(n->as->vmm);
				n->as->vmm = NULL;
				nvas++;
			}
		}
	}
	if (nvas)
		vmmfs_log(VMMFS_LOG_INFO, "unmount: %llu mappings unmapped, %llu address spaces "
			  "destroyed", (unsigned long long)nmaps, (unsigned long long)nvas);
	/* Free every node, whatever holds it: the kernel is gone. */
	for (i = 0; i < fs->ino_cap; i++) {
		struct fs_node *n = fs->ino_tab[i], *next;
		for (; n; n = next) {
			next = n->ino_next;
			if (n->as && --n->as->node_refs == 0)
				as_free(n->as);
			if (n->kind == N_MAPFILE) {
				fs_frozen_free(n->frozen);
				pthread_cond_destroy(&n->map_cond);
				pthread_mutex_destroy(&n->map_lock);
			}
			free(n->name);
			free(n);
		}
	}
out:
	free(fs->ino_tab);
	free(fs->name_tab);
	fs->ino_tab = fs->name_tab = NULL;
	pthread_mutex_destroy(&fs->gate_lock);
	pthread_mutex_destroy(&fs->lock);
}
