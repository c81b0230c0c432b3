/* SPDX-License-Identifier: MIT */
/*
 * vmmfs daemon: private state of one mount.
 *
 * The tree (DESIGN.md, "The mount") is a table of nodes of our own, found
 * by inode number and by (parent, name) through two hash tables.
 *
 * Locking:
 *   fs->lock     the tree: names, hashes, lists, lookup counts, open-file
 *                handles and their reference counts, address-space use
 *                counts. Never held across a VMM call.
 *   node->map_lock  a mapping file's state, its struct vmmfs_mapping, its
 *                readers and its frozen description. Taken after fs->lock
 *                when both are needed.
 *   handle->lock a writer's parser (writes, flush and release of one open
 *                file may arrive on different threads).
 *   fs->gate_lock, then a stream's lock: see "Streams" below.
 * VMM calls run without fs->lock; the VMM has its own locking.
 * With --state, a change is appended to the journal (a write(2), never an
 * fsync) under fs->lock, at the moment the tree changes, so records follow
 * the tree's order; the fdatasync follows without any fs lock (state.c).
 *
 * Streams (text.c): pagetable and mapping files are not built whole. A
 * producer (the reader's own thread for the first piece, then a thread of
 * the open file) generates their text into a few chunks just ahead of the
 * reader and waits for it; a pagetable producer waits holding the VMM's
 * lock (inside vmmfs_vmm_dump), a mapping-file producer holding a reader
 * reference on the mapping (node->map_readers). So that nobody waits for a
 * slow reader, every other use of a VMM or a mapping is announced first
 * (fs_gate_enter): a producer that would wait then pauses instead, letting
 * go of everything, and a later read resumes it where it stopped.
 *
 * Lifetimes:
 *   A node lives while it is in the tree, the kernel holds a lookup on it,
 *   or an open handle / an operation in flight holds a reference.
 *   An address space (struct fs_as) lives while a node points at it; its
 *   VMM lives until rmdir (or unmount) and the last user (open handle,
 *   operation in flight) is gone.
 *   An open file (struct fs_handle, found by the id in fi->fh) lives until
 *   release and until the last operation using it returns.
 *   A mapping (struct vmmfs_mapping) is only touched under its node's
 *   map_lock; rm takes it out under that lock before unmapping, so a reader
 *   never sees a freed one.
 */
#ifndef VMMFS_FS_H
#define VMMFS_FS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <vmmfs/vmmfs.h>

#include "mapfile.h"

/* Limits, documented in vmmfs(8). */
#define FS_MAX_NAME 128          /* bytes in an address-space or mapping name */
#define FS_MAX_VAS 256           /* address spaces per mount */
#define FS_MAX_MAPS 65536        /* mapping files per address space */

enum fs_kind {
	N_ROOT = 0,
	N_README,
	N_GPU_DIR,
	N_GPU_ATTR,       /* gpu/<attr>, attr = enum fs_gpu_attr */
	N_VRAM_DIR,
	N_VRAM_RAW,
	N_VRAM_USAGE,
	N_VAS_DIR,
	N_AS_DIR,         /* vas/NAME */
	N_AS_PDB,
	N_AS_MAPS,
	N_AS_PAGETABLE,
	N_AS_TRANSLATE,
	N_AS_XLATE,       /* translate/0xVA: made by lookup, gone at forget */
	N_AS_MEM,
	N_AS_STATS,
	N_STATS,
	N_LOG,
	N_MAPFILE,        /* maps/FILE */
};

enum fs_gpu_attr {
	GPU_CHIPSET = 0,
	GPU_ARCH,
	GPU_MMU_VERSION,
	GPU_VA_BITS,
	GPU_VRAM_SIZE,
	GPU_BACKEND,
	GPU_NR_ATTRS,
};

enum fs_map_state {
	MAP_WRITING = 0,  /* created, its writer has not closed it yet */
	MAP_LIVE,         /* mapped */
	MAP_GONE,         /* unmapped, or the map failed */
};

struct fs_as {
	struct vmmfs_vmm *vmm;   /* NULL once destroyed */
	struct fs_node *dir;     /* vas/NAME while it exists */
	struct fs_node *maps;    /* its maps/ */
	unsigned int node_refs;  /* nodes pointing here */
	unsigned int users;      /* open handles and operations using vmm */
	bool removed;            /* rmdir'ed or unmounting */
	uint64_t nmaps;          /* mapping files, being written or live */
};

struct fs_node {
	fuse_ino_t ino;
	enum fs_kind kind;
	char *name;
	struct fs_node *parent;

	/* listing: children in creation order */
	struct fs_node *first_child, *last_child, *prev_sib, *next_sib;
	/* hash chains */
	struct fs_node *ino_next, *name_next;

	uint64_t nlookup;        /* the kernel's references */
	unsigned int refs;       /* open handles and operations in flight */
	bool hashed;             /* found by (parent, name) */
	bool listed;             /* shown by readdir */

	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime, ctime;

	struct fs_as *as;        /* nodes below vas/NAME */
	unsigned int attr;       /* N_GPU_ATTR */
	uint64_t va;             /* N_AS_XLATE */

	/* N_MAPFILE */
	pthread_mutex_t map_lock;
	pthread_cond_t map_cond;  /* rm waits for readers; readers for rm */
	enum fs_map_state state;
	struct vmmfs_mapping *mapping;
	uint64_t written;        /* MAP_WRITING: bytes so far (st_size) */
	uint64_t desc_size;      /* MAP_LIVE: bytes of the description, 0 = not known yet */
	unsigned int map_readers; /* producers walking mapping's runs */
	unsigned int map_opens;  /* open read handles */
	bool unlinking;          /* rm is taking the mapping away */
	struct fs_frozen *frozen; /* the description kept for open readers after rm */
};

/* A growable text buffer. Appends never fail: on allocation failure the
 * buffer is marked (err = -ENOMEM) and further appends are dropped. */
struct text {
	char *buf;
	size_t len, cap;
	int err;
};

struct fs_handle;
struct vmmfs_journal;
struct vmmfs_journal_map;

struct vmmfs_fs {
	pthread_mutex_t lock;
	struct vmmfs_gpu *gpu;
	const struct vmmfs_gpu_info *info;
	uint64_t vram_pages;
	uint64_t va_size;
	uid_t uid;
	gid_t gid;
	struct fuse_session *se;
	struct fuse_conn_info_opts *conn_opts; /* -o max_write=... */

	fuse_ino_t next_ino;
	struct fs_node **ino_tab;
	size_t ino_cap, nnodes;
	struct fs_node **name_tab;
	size_t name_cap, nnames;

	struct fs_node *root, *vas_dir;
	unsigned int nvas;
	struct fs_handle *handles; /* open files, freed at unmount if the kernel did not */
	struct fs_handle **fh_tab; /* open files by id (fi->fh) */
	size_t fh_cap, nfh;
	uint64_t next_fh;

	/* streams and the operations that must not wait for them */
	pthread_mutex_t gate_lock;
	unsigned int gate_waiters; /* operations about to use a VMM or a mapping */
	struct fs_stream *streams; /* every open stream */

	struct vmmfs_journal *jnl; /* --state, else NULL; not owned */
};

/* ---- tree.c ---------------------------------------------------------- */
/* Builds the tree. With a journal (--state), restores what it holds (err
 * says why not) and records changes in it from then on; a fresh journal,
 * like no journal, starts with the address space "0". */
int fs_init(struct vmmfs_fs *fs, struct vmmfs_gpu *gpu, struct vmmfs_journal *jnl,
	    char *err, size_t errlen);
/* Destroys every address space (unmapping what is mapped) and frees the
 * tree. The GPU stays open. */
void fs_fini(struct vmmfs_fs *fs);

/* Under fs->lock. */
struct fs_node *fs_node_by_ino(struct vmmfs_fs *fs, fuse_ino_t ino);
struct fs_node *fs_child(struct vmmfs_fs *fs, struct fs_node *dir, const char *name);
struct fs_node *fs_node_new(struct vmmfs_fs *fs, struct fs_node *parent, const char *name,
			    enum fs_kind kind, mode_t mode, bool listed);
void fs_node_unlink(struct vmmfs_fs *fs, struct fs_node *n);
int fs_node_rename(struct vmmfs_fs *fs, struct fs_node *n, struct fs_node *newparent,
		   const char *newname);
/* Same parent, name already allocated (taken over): cannot fail. */
void fs_node_rename_take(struct vmmfs_fs *fs, struct fs_node *n, char *name);
/* Frees n if nothing holds it any more. */
void fs_node_maybe_free(struct vmmfs_fs *fs, struct fs_node *n);
/* "vas/NAME/maps/FILE" into buf. */
void fs_node_path(const struct fs_node *n, char *buf, size_t len);
bool fs_node_is_dir(const struct fs_node *n);

/* Address spaces. fs_as_create takes fs->lock itself; *dir (if asked)
 * comes with a reference (refs) for the caller to drop. */
int fs_as_create(struct vmmfs_fs *fs, const char *name, uid_t uid, gid_t gid,
		 struct fs_node **dir);
/* Under fs->lock: marks it removed and takes its nodes out of the tree.
 * Returns the VMM to destroy after unlocking, or NULL if users remain. */
struct vmmfs_vmm *fs_as_remove_locked(struct vmmfs_fs *fs, struct fs_as *as);
/* A use of as->vmm: _get under fs->lock (fails if removed), _put takes
 * fs->lock itself and destroys the VMM when the last user of a removed
 * address space leaves. */
bool fs_as_get_locked(struct fs_as *as);
void fs_as_put(struct vmmfs_fs *fs, struct fs_as *as);

int fs_name_check(const char *name);

/* ---- text.c ---------------------------------------------------------- */
/*
 * Sizes that stat reports (the policy):
 *   small generated files (README, gpu/, vram/usage, stats, log, pdb,
 *     vas/NAME/stats, translate/): the exact size of what a read gives now,
 *     made by generating the text (a few hundred bytes; the log at most
 *     its ring). The kernel keeps the attributes of those that never
 *     change (README, gpu/, pdb), never those of the others.
 *   mapping files: the exact size of the description, counted from the
 *     mapping's runs without formatting them, once, at the first getattr:
 *     a description never changes while the file exists.
 *   pagetable: 0, like /proc files. Its text is produced as it is read, at
 *     any size; reads return everything up to the end whatever st_size says
 *     (direct I/O), and cat, cp, grep, wc, less and Python read to the end.
 */
struct fs_stream;
struct fs_frozen;

/* Announces a use of a VMM or of a mapping's runs (map, unmap, lookup,
 * mem, stats, rm): a stream producer that would wait for its reader lets
 * go of the VMM's lock or the mapping instead. Pair with fs_gate_leave. */
void fs_gate_enter(struct vmmfs_fs *fs);
void fs_gate_leave(struct vmmfs_fs *fs);

/* A stream of n's text (N_AS_PAGETABLE or a live N_MAPFILE). Takes what it
 * needs (an address-space use, a mapping-file open count). Returns 0,
 * -ENOENT (gone), -ENOMEM. */
int fs_stream_open(struct vmmfs_fs *fs, struct fs_node *n, struct fs_stream **out);
/* Stops its producer and frees it. */
void fs_stream_close(struct fs_stream *s);
/* Replies to a read of size bytes at off: the text there, generated as
 * needed (a sequential reader costs one pass over the source in all). */
void fs_stream_read(struct fs_stream *s, fuse_req_t req, size_t size, off_t off);

/* The size of a mapping file's description (n->desc_size, computed once).
 * Under n->map_lock. Returns 0 or -ENOENT (no longer mapped and no frozen
 * description). */
int fs_mapping_size_locked(struct fs_node *n, uint64_t *size);
/* rm with readers: keeps the description of m for the open files. Under
 * n->map_lock. Returns 0 or -ENOMEM (their reads then fail with EIO). */
int fs_mapping_freeze_locked(struct fs_node *n, const struct vmmfs_mapping *m);
void fs_frozen_free(struct fs_frozen *f);

void text_init(struct text *t);
void text_free(struct text *t);
/* Hands the buffer over (NUL-terminated); the text is empty afterwards. */
char *text_take(struct text *t, size_t *len);
void text_put(struct text *t, const char *s, size_t n);
void text_puts(struct text *t, const char *s);
void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void text_hex(struct text *t, uint64_t v, unsigned int width); /* 0x, zero-padded to width digits */
void text_dec(struct text *t, uint64_t v);
void text_kv_u64(struct text *t, const char *key, unsigned int width, uint64_t v);
const char *text_page_size(uint64_t bytes); /* "4K", "64K", "2M", "512M", ... */

/* Generates the content of a small text node (README, gpu/, vram/usage,
 * stats, log, pdb, vas stats, translate/). Returns 0 or a negative errno. */
int fs_generate(struct vmmfs_fs *fs, struct fs_node *n, struct text *t);
int text_translate(struct text *t, struct vmmfs_fs *fs, struct vmmfs_vmm *vmm, uint64_t va);
void text_readme(struct text *t, const struct vmmfs_fs *fs);

/* ---- state.c --------------------------------------------------------- *
 * The state journal (--state). Each _locked function runs under fs->lock
 * at the moment the tree changes, records the change (nothing without a
 * journal: *seq = 0) and returns 0 or -EIO with a log line; fs_state_sync
 * then makes it durable (without fs->lock) before the operation answers. */
void fs_state_ident(const struct vmmfs_gpu_info *info, char *buf, size_t len);
int fs_state_restore(struct vmmfs_fs *fs, struct vmmfs_journal *j, char *err, size_t errlen);
int fs_state_vas_create_locked(struct vmmfs_fs *fs, const char *vas, uint64_t *seq);
int fs_state_vas_remove_locked(struct vmmfs_fs *fs, const char *vas, uint64_t *seq);
/* An address space or a live mapping file (one being written: nothing). */
int fs_state_rename_locked(struct vmmfs_fs *fs, struct fs_node *n, const char *newname,
			   uint64_t *seq);
/* n live, its map_lock held. */
int fs_state_map_remove_locked(struct vmmfs_fs *fs, struct fs_node *n, uint64_t *seq);
/* The journal's view of m (runs allocated; nothing without a journal):
 * 0 or -ENOMEM. Without locks, before fs_state_map_add_locked. */
int fs_state_map_describe(struct vmmfs_fs *fs, const struct vmmfs_mapping *m,
			  struct vmmfs_journal_map *jm);
void fs_state_map_describe_free(struct vmmfs_journal_map *jm);
int fs_state_map_add_locked(struct vmmfs_fs *fs, struct fs_node *n, struct vmmfs_journal_map *jm,
			    uint64_t *seq);
/* 0, or -EIO with a log line "PATH: WHAT: the state journal ...". */
int fs_state_sync(struct vmmfs_fs *fs, uint64_t seq, const char *path, const char *what);

/* ---- main.c ---------------------------------------------------------- */

/* ---- ops.c ----------------------------------------------------------- */
extern const struct fuse_lowlevel_ops vmmfs_oper;

/* Frees the handles the kernel left open (a writer's parser, a use of an
 * address space). Call after the session ended, before fs_fini. */
void fs_handles_free(struct vmmfs_fs *fs);

/* Whether a raw request (len bytes from /dev/fuse) may take long or wait:
 * reads of streams, mem and vram/raw, writes to the last two, the commit of
 * a big mapping, rmdir. The request loop hands those to worker threads. */
bool fs_request_is_slow(struct vmmfs_fs *fs, const void *req, size_t len);

/* errno names for log lines ("ENOSPC") */
const char *fs_errno_name(int err);

#endif
