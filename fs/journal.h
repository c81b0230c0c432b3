/* SPDX-License-Identifier: MIT */
/*
 * The state journal of `vmmfs --state=PATH`: which address spaces and which
 * mappings exist (names, VA, PFN runs, access, alloc=), kept on disk so that
 * a restart after an unmount, a crash or `kill -9` finds every change that
 * was acknowledged to a user. Pure C: no FUSE, no VMM.
 *
 * File (integers little-endian):
 *   header, 128 bytes
 *     0   "VMMFSJNL"
 *     8   u32 version (1)          12  u32 header size (128)
 *     16  u64 sequence number of the first record
 *     24  u32 flags: 1 = new (nothing was ever recorded in this journal)
 *     28  u16 identity length, 30 identity text (which GPU the state is for)
 *     124 u32 CRC32 of bytes 0..123
 *   records, back to back, each
 *     u32 payload length, u16 type, u16 0, u64 sequence (previous + 1),
 *     payload, u32 CRC32 of the record's header and payload
 *   payloads (a string is a u16 length and that many bytes, no NUL)
 *     VAS_CREATE  vas
 *     VAS_REMOVE  vas
 *     VAS_RENAME  vas, new name
 *     MAP_ADD     vas, name, u64 va, u64 npages, u32 flags (1 ro, 2 alloc),
 *                 u64 nruns, nruns x (u64 first PFN, u64 count), VA order
 *     MAP_REMOVE  vas, name
 *     MAP_RENAME  vas, name, new name
 *
 * Durability: an append writes its record at the end of the file;
 *   vmmfs_journal_sync() makes it durable (fdatasync, shared by every
 *   record written before it: group commit). The daemon acknowledges a change
 *   only after the sync of its record returned 0.
 *
 * Replay (vmmfs_journal_open) streams the records through a fixed buffer
 *   into the state below (memory: the state, not the history) and stops at
 *   the first record that is cut short (a torn write), fails its CRC, or has
 *   an unexpected sequence number, type or length: that record and every
 *   byte after it are dropped, the file as it was is kept as PATH.damaged,
 *   and a log line says how many bytes went. A record that is intact but
 *   makes no sense for the state (a second address space of the same name, a
 *   mapping whose PFN runs do not add up) is skipped with a log line.
 *
 * Compaction writes the state as a fresh journal to PATH.tmp (VAS_CREATE of
 *   each address space followed by MAP_ADD of its mappings), fdatasyncs it,
 *   renames it over PATH and fsyncs the directory: a crash at any step
 *   leaves either the old or the new file under PATH, both complete. It
 *   runs at every open (which also cuts a dropped tail off) and from
 *   vmmfs_journal_sync when the file has grown past max(compact_min,
 *   4 x the last snapshot); compact_min is 1 MiB, or
 *   vmmfs_journal_set_compact_min().
 *
 * Errors: an I/O error while appending removes the partial record and
 *   returns -EIO, state unchanged. A failed sync (or a partial record that
 *   cannot be removed, or a compaction whose rename may not be durable)
 *   breaks the journal: from then on every append and sync returns -EIO, and
 *   one log line says so; what the failed operation wrote may or may not be
 *   found at the next open.
 *
 * Exclusion: PATH is locked (flock, LOCK_EX) while open; a second opener
 *   gets -EBUSY.
 *
 * Locking: every function is thread-safe (one mutex; the fdatasync of a
 *   sync runs without it). The for_each functions must not run concurrently
 *   with appends (the daemon calls them at mount, before serving).
 */
#ifndef VMMFS_FS_JOURNAL_H
#define VMMFS_FS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMMFS_JOURNAL_MAX_NAME 255      /* bytes in a name */
#define VMMFS_JOURNAL_MAX_IDENT 94      /* bytes of the identity text */
#define VMMFS_JOURNAL_MAX_RUNS (1ull << 24) /* PFN runs in one mapping */

/* MAP_ADD flags */
#define VMMFS_JOURNAL_RO    0x1u        /* read-only mapping */
#define VMMFS_JOURNAL_ALLOC 0x2u        /* alloc= pages: the mapping owns them */

struct vmmfs_journal;

struct vmmfs_journal_run {
	uint64_t first;   /* first PFN */
	uint64_t count;   /* pages, >= 1 */
};

/* One mapping. Given to map_add (copied), and handed out by for_each_map
 * (valid during the callback). */
struct vmmfs_journal_map {
	const char *vas;
	const char *name;
	uint64_t va;       /* 4 KiB-aligned */
	uint64_t npages;   /* sum of the runs' counts */
	unsigned int flags;
	uint64_t nruns;
	const struct vmmfs_journal_run *runs;
};

/* Opens (or creates) the journal at path, replays it and compacts it.
 * ident: a short text naming the GPU the state belongs to (chip, VRAM size);
 * an existing journal written for another identity is refused.
 * err/errlen: on failure, one line for a person saying what to do.
 * Returns 0, -EINVAL (not a journal, damaged header, other identity, ident
 * too long), -EBUSY (another vmmfs holds it), -EIO (cannot read, create or
 * rename it), -ENOMEM. */
int vmmfs_journal_open(const char *path, const char *ident, struct vmmfs_journal **out,
		       char *err, size_t errlen);

/* Closes it (no write: the file holds the state already). */
void vmmfs_journal_close(struct vmmfs_journal *j);

/* True when open found no journal: no file, an empty one, or one that
 * nothing was ever recorded in (a crash right after it was made). The
 * caller decides what a first mount holds; the journal stays new until
 * the first append. */
bool vmmfs_journal_fresh(const struct vmmfs_journal *j);

/* The state: address spaces in creation order; mappings grouped by address
 * space in that order, each group in the order they were added (renames
 * keep the place). Stops at and returns fn's first non-zero value. */
int vmmfs_journal_for_each_vas(struct vmmfs_journal *j,
			       int (*fn)(void *ctx, const char *vas), void *ctx);
int vmmfs_journal_for_each_map(struct vmmfs_journal *j,
			       int (*fn)(void *ctx, const struct vmmfs_journal_map *m),
			       void *ctx);

/* Appends one change: checks it against the state, writes its record and
 * updates the state. Not durable before vmmfs_journal_sync(*seq).
 * Returns 0, or (nothing changed):
 *   -EINVAL   empty or too long name, MAP_ADD not self-consistent (no runs,
 *             a count of 0, runs not adding up to npages, va not aligned,
 *             unknown flags, more than VMMFS_JOURNAL_MAX_RUNS runs)
 *   -ENOENT   no such address space / mapping
 *   -EEXIST   the (new) name exists
 *   -ENOTEMPTY vas_remove of an address space with mappings
 *   -EIO      the journal is broken, or the write failed
 *   -ENOMEM
 * seq may be NULL (then nothing to sync for). */
int vmmfs_journal_vas_create(struct vmmfs_journal *j, const char *vas, uint64_t *seq);
int vmmfs_journal_vas_remove(struct vmmfs_journal *j, const char *vas, uint64_t *seq);
int vmmfs_journal_vas_rename(struct vmmfs_journal *j, const char *vas, const char *newname,
			     uint64_t *seq);
int vmmfs_journal_map_add(struct vmmfs_journal *j, const struct vmmfs_journal_map *m,
			  uint64_t *seq);
int vmmfs_journal_map_remove(struct vmmfs_journal *j, const char *vas, const char *name,
			     uint64_t *seq);
int vmmfs_journal_map_rename(struct vmmfs_journal *j, const char *vas, const char *name,
			     const char *newname, uint64_t *seq);

/* Makes every record up to seq durable; may compact afterwards. Returns 0,
 * or -EIO (the journal is broken from now on). */
int vmmfs_journal_sync(struct vmmfs_journal *j, uint64_t seq);

/* Syncs, then compacts now. Returns 0, -EIO (the old file stays in use,
 * unless the journal broke), -ENOMEM, -EINTR (a test stop, below). */
int vmmfs_journal_compact(struct vmmfs_journal *j);

/* Compaction threshold: the log is compacted when it grows past
 * max(bytes, 4 x the last snapshot). 0 restores the default (1 MiB). */
void vmmfs_journal_set_compact_min(struct vmmfs_journal *j, uint64_t bytes);

struct vmmfs_journal_stats {
	uint64_t vas, maps;          /* in the state */
	uint64_t file_bytes;         /* the journal's size now */
	uint64_t snapshot_bytes;     /* its size after the last compaction */
	uint64_t records;            /* appended since open */
	uint64_t syncs;              /* fdatasyncs issued for appends */
	uint64_t compactions;        /* since open, the one at open included */
	uint64_t replayed;           /* records replayed at open */
	uint64_t skipped;            /* intact records that made no sense */
	uint64_t dropped_bytes;      /* cut off at open (torn or damaged) */
	uint64_t dropped_at;         /* where the readable part ended */
	bool broken;
};
void vmmfs_journal_get_stats(struct vmmfs_journal *j, struct vmmfs_journal_stats *st);

/* ---- tests only ------------------------------------------------------ */

/* The steps of a compaction. */
enum vmmfs_journal_step {
	VMMFS_JOURNAL_STEP_NONE = 0,
	VMMFS_JOURNAL_STEP_TMP_PARTIAL,  /* half of PATH.tmp written */
	VMMFS_JOURNAL_STEP_TMP_WRITTEN,  /* all of it written */
	VMMFS_JOURNAL_STEP_TMP_SYNCED,   /* fdatasync'ed */
	VMMFS_JOURNAL_STEP_RENAMED,      /* renamed over PATH */
	VMMFS_JOURNAL_STEP_DIR_SYNCED,   /* directory fsync'ed (complete on disk) */
};

/* The next compaction stops right after step, as a killed process would:
 * it returns -EINTR and the journal must then be dropped with
 * vmmfs_journal_test_crash(). */
void vmmfs_journal_test_stop_after(struct vmmfs_journal *j, enum vmmfs_journal_step step);

/* Frees j as a kill would leave things: no write, no rename, no cleanup of
 * PATH.tmp; its descriptors are closed (which drops the lock). */
void vmmfs_journal_test_crash(struct vmmfs_journal *j);

/* The n-th heap allocation of this module from now (0-based) fails; -1 turns
 * it off. Returns the number of allocations since the last call. */
long vmmfs_journal_test_fail_alloc(long n);

/* CRC32 (IEEE 802.3, reflected, as zlib's crc32): crc of the bytes so far
 * (0 to start). */
uint32_t vmmfs_journal_crc32(uint32_t crc, const void *buf, size_t len);

#endif
