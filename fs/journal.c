/* SPDX-License-Identifier: MIT */
/*
 * The state journal (journal.h): an append-only log of checksummed records,
 * replayed at open into an in-memory copy of the state, compacted by writing
 * that state to a new file and renaming it over the old one.
 *
 * In memory: address spaces (struct jvas) in a list in creation order and a
 * hash by name; mappings (struct jmap) in a list per address space and one
 * hash keyed by (address space, name). Renaming an address space therefore
 * touches no mapping.
 *
 * An append checks the change, allocates everything that applying it needs,
 * writes the record and only then applies it, so a failed write leaves the
 * state as it was and a successful one cannot fail afterwards.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vmmfs/log.h>

#define HDR_SIZE 128u
#define HDR_MAGIC "VMMFSJNL"
#define HDR_VERSION 1u
#define HDR_CRC_AT (HDR_SIZE - 4u)
#define HDR_IDENT_AT 30u
#define HDR_NEW 0x1u           /* flags: nothing was ever recorded in it */
#define REC_HDR 16u
#define REC_CRC 4u
#define IOBUF (64u << 10)
#define COMPACT_MIN_DEFAULT (1ull << 20)
#define PAGE_MASK 0xfffull

/* Longest payloads: MAP_ADD's fixed part and its runs. */
#define STR_MAX (2u + VMMFS_JOURNAL_MAX_NAME)
#define MAP_FIXED_MAX (2u * STR_MAX + 8u + 8u + 4u + 8u)
#define PAYLOAD_MAX (MAP_FIXED_MAX + 16ull * VMMFS_JOURNAL_MAX_RUNS)

enum rec_type {
	REC_VAS_CREATE = 1,
	REC_VAS_REMOVE,
	REC_VAS_RENAME,
	REC_MAP_ADD,
	REC_MAP_REMOVE,
	REC_MAP_RENAME,
	REC_NR_TYPES,
};

/* What each record carries: names in order (vas, name, newname). */
static const struct {
	const char *name;
	unsigned int nstr;      /* strings in the payload */
	bool map;               /* the mapping fields follow the strings */
} rec_desc[REC_NR_TYPES] = {
	[REC_VAS_CREATE] = { "address space created", 1, false },
	[REC_VAS_REMOVE] = { "address space removed", 1, false },
	[REC_VAS_RENAME] = { "address space renamed", 2, false },
	[REC_MAP_ADD] = { "mapping added", 2, true },
	[REC_MAP_REMOVE] = { "mapping removed", 2, false },
	[REC_MAP_RENAME] = { "mapping renamed", 3, false },
};

/* ---- allocation (with a test hook) ----------------------------------- */

static atomic_long fail_at = -1;
static atomic_long nallocs;

static bool alloc_fails(void)
{
	long n = atomic_fetch_add(&nallocs, 1);
	long at = atomic_load(&fail_at);

	return at >= 0 && n == at;
}

static void *j_malloc(size_t n)
{
	return alloc_fails() ? NULL : malloc(n ? n : 1);
}

static void *j_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

static char *j_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *d = j_malloc(len);

	if (d)
		memcpy(d, s, len);
	return d;
}

long vmmfs_journal_test_fail_alloc(long n)
{
	long done = atomic_exchange(&nallocs, 0);

	atomic_store(&fail_at, n);
	return done;
}

/* ---- CRC32 ------------------------------------------------------------ */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t vmmfs_journal_crc32(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian fields --------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- the state -------------------------------------------------------- */

struct jvas;

struct jmap {
	struct jmap *prev, *next;    /* in its address space, insertion order */
	struct jmap *hnext;          /* hash chain */
	struct jvas *vas;
	char *name;
	uint64_t va, npages, nruns;
	unsigned int flags;
	struct vmmfs_journal_run *runs;
};

struct jvas {
	struct jvas *prev, *next;    /* creation order */
	struct jvas *hnext;          /* hash chain */
	char *name;
	struct jmap *first, *last;
	uint64_t nmaps;
};

struct state {
	struct jvas *first, *last;
	struct jvas **vtab;
	size_t vcap, nvas;
	struct jmap **mtab;
	size_t mcap, nmaps;
};

static uint64_t name_hash(const char *s, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h ^ (h >> 31);
}

static size_t vslot(const struct state *st, const char *name)
{
	return (size_t)name_hash(name, 0) & (st->vcap - 1);
}

static size_t mslot(const struct state *st, const struct jvas *v, const char *name)
{
	return (size_t)name_hash(name, (uint64_t)(uintptr_t)v) & (st->mcap - 1);
}

static int state_init(struct state *st)
{
	memset(st, 0, sizeof(*st));
	st->vcap = 16;
	st->mcap = 256;
	st->vtab = j_calloc(st->vcap, sizeof(*st->vtab));
	st->mtab = j_calloc(st->mcap, sizeof(*st->mtab));
	if (!st->vtab || !st->mtab) {
		free(st->vtab);
		free(st->mtab);
		memset(st, 0, sizeof(*st));
		return -ENOMEM;
	}
	return 0;
}

static void map_free(struct jmap *m)
{
	if (!m)
		return;
	free(m->runs);
	free(m->name);
	free(m);
}

static void vas_free(struct jvas *v)
{
	if (!v)
		return;
	free(v->name);
	free(v);
}

static void state_fini(struct state *st)
{
	struct jvas *v, *vn;
	struct jmap *m, *mn;

	for (v = st->first; v; v = vn) {
		vn = v->next;
		for (m = v->first; m; m = mn) {
			mn = m->next;
			map_free(m);
		}
		vas_free(v);
	}
	free(st->vtab);
	free(st->mtab);
	memset(st, 0, sizeof(*st));
}

static struct jvas *vas_find(const struct state *st, const char *name)
{
	struct jvas *v = st->vtab[vslot(st, name)];

	while (v && strcmp(v->name, name))
		v = v->hnext;
	return v;
}

static struct jmap *map_find(const struct state *st, const struct jvas *v, const char *name)
{
	struct jmap *m = st->mtab[mslot(st, v, name)];

	while (m && (m->vas != v || strcmp(m->name, name)))
		m = m->hnext;
	return m;
}

/* Doubling a hash table may fail: the old one stays (longer chains). */
static void vtab_grow(struct state *st)
{
	size_t oldcap = st->vcap, i;
	struct jvas **old = st->vtab, **tab = j_calloc(oldcap * 2, sizeof(*tab));

	if (!tab)
		return;
	st->vtab = tab;
	st->vcap = oldcap * 2;
	for (i = 0; i < oldcap; i++) {
		struct jvas *v = old[i], *next;

		for (; v; v = next) {
			size_t s = vslot(st, v->name);

			next = v->hnext;
			v->hnext = tab[s];
			tab[s] = v;
		}
	}
	free(old);
}

static void mtab_grow(struct state *st)
{
	size_t oldcap = st->mcap, i;
	struct jmap **old = st->mtab, **tab = j_calloc(oldcap * 2, sizeof(*tab));

	if (!tab)
		return;
	st->mtab = tab;
	st->mcap = oldcap * 2;
	for (i = 0; i < oldcap; i++) {
		struct jmap *m = old[i], *next;

		for (; m; m = next) {
			size_t s = mslot(st, m->vas, m->name);

			next = m->hnext;
			m->hnext = tab[s];
			tab[s] = m;
		}
	}
	free(old);
}

static void vas_hash_add(struct state *st, struct jvas *v)
{
	size_t s = vslot(st, v->name);

	v->hnext = st->vtab[s];
	st->vtab[s] = v;
}

static void vas_hash_del(struct state *st, struct jvas *v)
{
	struct jvas **pp = &st->vtab[vslot(st, v->name)];

	while (*pp != v)
		pp = &(*pp)->hnext;
	*pp = v->hnext;
}

static void map_hash_add(struct state *st, struct jmap *m)
{
	size_t s = mslot(st, m->vas, m->name);

	m->hnext = st->mtab[s];
	st->mtab[s] = m;
}

static void map_hash_del(struct state *st, struct jmap *m)
{
	struct jmap **pp = &st->mtab[mslot(st, m->vas, m->name)];

	while (*pp != m)
		pp = &(*pp)->hnext;
	*pp = m->hnext;
}

/* ---- records ---------------------------------------------------------- */

/* One change, as an append describes it or as replay read it. */
struct rec {
	enum rec_type type;
	const char *str[3];           /* vas, name, newname (as the type has them) */
	uint64_t va, npages, nruns;
	unsigned int flags;
	const struct vmmfs_journal_run *runs;
};

/* What applying a change needs, allocated before its record is written. */
struct prep {
	struct jvas *vas;             /* VAS_CREATE */
	struct jmap *map;             /* MAP_ADD */
	char *newname;                /* renames */
};

static int name_check(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	return len && len <= VMMFS_JOURNAL_MAX_NAME ? 0 : -EINVAL;
}

/* Does the change make sense for the state? 0 or a negative errno. */
static int rec_check(const struct state *st, const struct rec *r)
{
	const struct jvas *v;
	const struct jmap *m;
	uint64_t sum = 0;

	for (unsigned int i = 0; i < rec_desc[r->type].nstr; i++)
		if (name_check(r->str[i]))
			return -EINVAL;
	if (r->type == REC_MAP_ADD) {
		if (!r->nruns || r->nruns > VMMFS_JOURNAL_MAX_RUNS || !r->runs || (r->va & PAGE_MASK) ||
		    (r->flags & ~(VMMFS_JOURNAL_RO | VMMFS_JOURNAL_ALLOC)))
			return -EINVAL;
		for (uint64_t i = 0; i < r->nruns; i++) {
			const struct vmmfs_journal_run *run = &r->runs[i];

			if (!run->count || run->first + run->count < run->first ||
			    sum + run->count < sum)
				return -EINVAL;
			sum += run->count;
		}
		if (sum != r->npages || r->npages > (UINT64_MAX >> 12) ||
		    r->va + (r->npages << 12) < r->va)
			return -EINVAL;
	}
	v = vas_find(st, r->str[0]);
	switch (r->type) {
	case REC_VAS_CREATE:
		return v ? -EEXIST : 0;
	case REC_VAS_REMOVE:
		return !v ? -ENOENT : v->nmaps ? -ENOTEMPTY : 0;
	case REC_VAS_RENAME:
		if (!v)
			return -ENOENT;
		return !strcmp(r->str[0], r->str[1]) ? 0 : vas_find(st, r->str[1]) ? -EEXIST : 0;
	case REC_MAP_ADD:
		if (!v)
			return -ENOENT;
		return map_find(st, v, r->str[1]) ? -EEXIST : 0;
	case REC_MAP_REMOVE:
		return !v || !map_find(st, v, r->str[1]) ? -ENOENT : 0;
	case REC_MAP_RENAME:
		if (!v || !(m = map_find(st, v, r->str[1])))
			return -ENOENT;
		return !strcmp(r->str[1], r->str[2]) ? 0 : map_find(st, v, r->str[2]) ? -EEXIST : 0;
	default:
		return -EINVAL;
	}
}

static void prep_free(struct prep *p)
{
	vas_free(p->vas);
	map_free(p->map);
	free(p->newname);
	memset(p, 0, sizeof(*p));
}

/* owned_runs: replay hands over the runs it read (freed here on failure);
 * appends have them copied. */
static int prep_make(struct prep *p, const struct rec *r, struct vmmfs_journal_run *owned_runs)
{
	memset(p, 0, sizeof(*p));
	switch (r->type) {
	case REC_VAS_CREATE:
		p->vas = j_calloc(1, sizeof(*p->vas));
		if (!p->vas || !(p->vas->name = j_strdup(r->str[0])))
			goto err_nomem;
		return 0;
	case REC_VAS_RENAME:
		p->newname = j_strdup(r->str[1]);
		return p->newname ? 0 : -ENOMEM;
	case REC_MAP_RENAME:
		p->newname = j_strdup(r->str[2]);
		return p->newname ? 0 : -ENOMEM;
	case REC_MAP_ADD:
		p->map = j_calloc(1, sizeof(*p->map));
		if (!p->map)
			goto err_nomem;
		p->map->runs = owned_runs;
		owned_runs = NULL;
		if (!p->map->runs) {
			p->map->runs = j_malloc((size_t)r->nruns * sizeof(*r->runs));
			if (!p->map->runs)
				goto err_nomem;
			memcpy(p->map->runs, r->runs, (size_t)r->nruns * sizeof(*r->runs));
		}
		p->map->name = j_strdup(r->str[1]);
		if (!p->map->name)
			goto err_nomem;
		p->map->va = r->va;
		p->map->npages = r->npages;
		p->map->nruns = r->nruns;
		p->map->flags = r->flags;
		return 0;
	default:
		return 0;
	}

err_nomem:
	free(owned_runs);
	prep_free(p);
	return -ENOMEM;
}

/* Applies a checked change with what prep_make allocated. Cannot fail. */
static void rec_apply(struct state *st, const struct rec *r, struct prep *p)
{
	struct jvas *v = r->type == REC_VAS_CREATE ? NULL : vas_find(st, r->str[0]);
	struct jmap *m;

	switch (r->type) {
	case REC_VAS_CREATE:
		v = p->vas;
		p->vas = NULL;
		v->prev = st->last;
		if (st->last)
			st->last->next = v;
		else
			st->first = v;
		st->last = v;
		if (st->nvas >= st->vcap)
			vtab_grow(st);
		vas_hash_add(st, v);
		st->nvas++;
		break;
	case REC_VAS_REMOVE:
		vas_hash_del(st, v);
		if (v->prev)
			v->prev->next = v->next;
		else
			st->first = v->next;
		if (v->next)
			v->next->prev = v->prev;
		else
			st->last = v->prev;
		st->nvas--;
		vas_free(v);
		break;
	case REC_VAS_RENAME:
		vas_hash_del(st, v);
		free(v->name);
		v->name = p->newname;
		p->newname = NULL;
		vas_hash_add(st, v);
		break;
	case REC_MAP_ADD:
		m = p->map;
		p->map = NULL;
		m->vas = v;
		m->prev = v->last;
		if (v->last)
			v->last->next = m;
		else
			v->first = m;
		v->last = m;
		v->nmaps++;
		if (st->nmaps >= st->mcap)
			mtab_grow(st);
		map_hash_add(st, m);
		st->nmaps++;
		break;
	case REC_MAP_REMOVE:
		m = map_find(st, v, r->str[1]);
		map_hash_del(st, m);
		if (m->prev)
			m->prev->next = m->next;
		else
			v->first = m->next;
		if (m->next)
			m->next->prev = m->prev;
		else
			v->last = m->prev;
		v->nmaps--;
		st->nmaps--;
		map_free(m);
		break;
	case REC_MAP_RENAME:
		m = map_find(st, v, r->str[1]);
		map_hash_del(st, m);
		free(m->name);
		m->name = p->newname;
		p->newname = NULL;
		map_hash_add(st, m);
		break;
	default:
		break;
	}
}

/* ---- the journal object ----------------------------------------------- */

struct vmmfs_journal {
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* a sync finished */
	char *path, *tmp_path, *damaged_path, *dir_path; /* for messages */
	const char *name, *tmp_name, *damaged_name;      /* in dir_fd (a chdir never matters) */
	int fd;                       /* PATH, locked */
	int tmp_fd;                   /* PATH.tmp during a compaction, else -1 */
	int dir_fd;
	char ident[VMMFS_JOURNAL_MAX_IDENT + 1];
	bool fresh, broken, syncing;
	struct state st;

	uint64_t end;                 /* file size: where the next record goes */
	uint64_t next_seq;            /* the next record's sequence number */
	uint64_t written, synced;     /* last sequence written / durable */
	uint64_t snapshot_bytes, compact_min;
	uint64_t records, syncs, compactions, replayed, skipped, dropped_bytes, dropped_at;
	enum vmmfs_journal_step stop_after;

	unsigned char iobuf[IOBUF];   /* the writer's buffer (under lock) */
};

static void j_break(struct vmmfs_journal *j, const char *what, int err)
{
	if (!j->broken)
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: %s: %s; from now on every change is refused "
			  "(EIO) until vmmfs is restarted", j->path, what, strerror(err));
	j->broken = true;
}

/* ---- writing ---------------------------------------------------------- */

struct wr {
	int fd;
	uint64_t off;                 /* file offset of buf[0] */
	size_t len;                   /* bytes in buf */
	uint32_t crc;
	int err;                      /* first error, negative errno */
	unsigned char *buf;
};

static void wr_init(struct wr *w, struct vmmfs_journal *j, int fd, uint64_t off)
{
	w->fd = fd;
	w->off = off;
	w->len = 0;
	w->crc = 0;
	w->err = 0;
	w->buf = j->iobuf;
}

static void wr_flush(struct wr *w)
{
	size_t done = 0;

	while (!w->err && done < w->len) {
		ssize_t n = pwrite(w->fd, w->buf + done, w->len - done, (off_t)(w->off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			w->err = n < 0 ? -errno : -EIO;
		else
			done += (size_t)n;
	}
	w->off += w->len;
	w->len = 0;
}

/* Bytes outside the CRC (the CRC itself). */
static void wr_raw(struct wr *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n) {
		size_t k = IOBUF - w->len < n ? IOBUF - w->len : n;

		memcpy(w->buf + w->len, s, k);
		w->len += k;
		s += k;
		n -= k;
		if (w->len == IOBUF)
			wr_flush(w);
	}
}

static void wr_bytes(struct wr *w, const void *p, size_t n)
{
	w->crc = vmmfs_journal_crc32(w->crc, p, n);
	wr_raw(w, p, n);
}

static void wr_le(struct wr *w, uint64_t v, unsigned int n)
{
	unsigned char b[8];

	put_le(b, v, n);
	wr_bytes(w, b, n);
}

static void wr_str(struct wr *w, const char *s)
{
	size_t len = strlen(s);

	wr_le(w, len, 2);
	wr_bytes(w, s, len);
}

static uint64_t rec_payload_len(const struct rec *r)
{
	uint64_t len = 0;

	for (unsigned int i = 0; i < rec_desc[r->type].nstr; i++)
		len += 2 + strlen(r->str[i]);
	if (rec_desc[r->type].map)
		len += 8 + 8 + 4 + 8 + 16 * r->nruns;
	return len;
}

static void wr_record(struct wr *w, const struct rec *r, uint64_t seq)
{
	unsigned char crc[4];

	w->crc = 0;
	wr_le(w, rec_payload_len(r), 4);
	wr_le(w, r->type, 2);
	wr_le(w, 0, 2);
	wr_le(w, seq, 8);
	for (unsigned int i = 0; i < rec_desc[r->type].nstr; i++)
		wr_str(w, r->str[i]);
	if (rec_desc[r->type].map) {
		wr_le(w, r->va, 8);
		wr_le(w, r->npages, 8);
		wr_le(w, r->flags, 4);
		wr_le(w, r->nruns, 8);
		for (uint64_t i = 0; i < r->nruns; i++) {
			wr_le(w, r->runs[i].first, 8);
			wr_le(w, r->runs[i].count, 8);
		}
	}
	put_le(crc, w->crc, 4);
	wr_raw(w, crc, 4);
}

static void hdr_build(unsigned char *h, uint64_t first_seq, unsigned int flags,
		      const char *ident)
{
	size_t len = strlen(ident);

	memset(h, 0, HDR_SIZE);
	memcpy(h, HDR_MAGIC, 8);
	put_le(h + 8, HDR_VERSION, 4);
	put_le(h + 12, HDR_SIZE, 4);
	put_le(h + 16, first_seq, 8);
	put_le(h + 24, flags, 4);
	put_le(h + 28, len, 2);
	memcpy(h + HDR_IDENT_AT, ident, len);
	put_le(h + HDR_CRC_AT, vmmfs_journal_crc32(0, h, HDR_CRC_AT), 4);
}

static void map_rec(struct rec *r, const struct jvas *v, const struct jmap *m)
{
	memset(r, 0, sizeof(*r));
	r->type = REC_MAP_ADD;
	r->str[0] = v->name;
	r->str[1] = m->name;
	r->va = m->va;
	r->npages = m->npages;
	r->flags = m->flags;
	r->nruns = m->nruns;
	r->runs = m->runs;
}

/* ---- appending -------------------------------------------------------- */

static int append(struct vmmfs_journal *j, const struct rec *r, uint64_t *seq)
{
	struct prep p;
	struct wr w;
	int err;

	pthread_mutex_lock(&j->lock);
	if (j->broken) {
		err = -EIO;
		goto out_unlock;
	}
	err = rec_check(&j->st, r);
	if (err)
		goto out_unlock;
	err = prep_make(&p, r, NULL);
	if (err)
		goto out_unlock;
	wr_init(&w, j, j->fd, j->end);
	wr_record(&w, r, j->next_seq);
	wr_flush(&w);
	if (w.err) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot write a record (%s): %s", j->path,
			  rec_desc[r->type].name, strerror(-w.err));
		/* no partial record may stay in front of the next one */
		if (ftruncate(j->fd, (off_t)j->end))
			j_break(j, "cannot remove a partly written record", errno);
		prep_free(&p);
		err = -EIO;
		goto out_unlock;
	}
	rec_apply(&j->st, r, &p);
	j->end = w.off;
	j->written = j->next_seq++;
	j->records++;
	if (seq)
		*seq = j->written;
out_unlock:
	pthread_mutex_unlock(&j->lock);
	return err;
}

int vmmfs_journal_vas_create(struct vmmfs_journal *j, const char *vas, uint64_t *seq)
{
	struct rec r = { .type = REC_VAS_CREATE, .str = { vas } };

	return append(j, &r, seq);
}

int vmmfs_journal_vas_remove(struct vmmfs_journal *j, const char *vas, uint64_t *seq)
{
	struct rec r = { .type = REC_VAS_REMOVE, .str = { vas } };

	return append(j, &r, seq);
}

int vmmfs_journal_vas_rename(struct vmmfs_journal *j, const char *vas, const char *newname,
			     uint64_t *seq)
{
	struct rec r = { .type = REC_VAS_RENAME, .str = { vas, newname } };

	return append(j, &r, seq);
}

int vmmfs_journal_map_add(struct vmmfs_journal *j, const struct vmmfs_journal_map *m,
			  uint64_t *seq)
{
	struct rec r = {
		.type = REC_MAP_ADD, .str = { m->vas, m->name }, .va = m->va,
		.npages = m->npages, .nruns = m->nruns, .flags = m->flags, .runs = m->runs,
	};

	return append(j, &r, seq);
}

int vmmfs_journal_map_remove(struct vmmfs_journal *j, const char *vas, const char *name,
			     uint64_t *seq)
{
	struct rec r = { .type = REC_MAP_REMOVE, .str = { vas, name } };

	return append(j, &r, seq);
}

int vmmfs_journal_map_rename(struct vmmfs_journal *j, const char *vas, const char *name,
			     const char *newname, uint64_t *seq)
{
	struct rec r = { .type = REC_MAP_RENAME, .str = { vas, name, newname } };

	return append(j, &r, seq);
}

/* ---- compaction ------------------------------------------------------- */

static bool stop_here(struct vmmfs_journal *j, enum vmmfs_journal_step step)
{
	if (j->stop_after != step)
		return false;
	j->stop_after = VMMFS_JOURNAL_STEP_NONE;
	return true;
}

static void tmp_discard(struct vmmfs_journal *j)
{
	unlinkat(j->dir_fd, j->tmp_name, 0);
	close(j->tmp_fd);
	j->tmp_fd = -1;
}

/* Under lock, no sync in flight. Writes the state to PATH.tmp and renames
 * it over PATH. Returns 0, -EIO, -EINTR (test stop). */
static int compact_locked(struct vmmfs_journal *j)
{
	uint64_t total = j->st.nvas + j->st.nmaps, done = 0, seq = j->next_seq;
	unsigned char hdr[HDR_SIZE];
	const struct jvas *v;
	const struct jmap *m;
	struct rec r;
	struct wr w;
	int fd;

	/* Everything written so far is in the old file and durable there
	 * before PATH may name a new one. */
	if (j->synced < j->written) {
		if (fdatasync(j->fd)) {
			j_break(j, "fdatasync failed", errno);
			return -EIO;
		}
		j->syncs++;
		j->synced = j->written;
	}
	fd = openat(j->dir_fd, j->tmp_name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot compact: cannot create %s: %s",
			  j->path, j->tmp_path, strerror(errno));
		return -EIO;
	}
	j->tmp_fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot compact: cannot lock %s: %s",
			  j->path, j->tmp_path, strerror(errno));
		goto err_discard;
	}
	/* A journal nothing was recorded in yet stays "new" for the next
	 * open, so that a crash right after its creation starts afresh. */
	hdr_build(hdr, seq, j->fresh && !j->records ? HDR_NEW : 0, j->ident);
	wr_init(&w, j, fd, 0);
	wr_raw(&w, hdr, HDR_SIZE);
	for (v = j->st.first; v; v = v->next) {
		memset(&r, 0, sizeof(r));
		r.type = REC_VAS_CREATE;
		r.str[0] = v->name;
		wr_record(&w, &r, seq++);
		for (m = v->first; m; m = m->next) {
			if (++done == total / 2 && stop_here(j, VMMFS_JOURNAL_STEP_TMP_PARTIAL)) {
				wr_flush(&w);
				return -EINTR;
			}
			map_rec(&r, v, m);
			wr_record(&w, &r, seq++);
		}
		if (++done == total / 2 && stop_here(j, VMMFS_JOURNAL_STEP_TMP_PARTIAL)) {
			wr_flush(&w);
			return -EINTR;
		}
	}
	wr_flush(&w);
	if (w.err) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot compact: writing %s failed: %s",
			  j->path, j->tmp_path, strerror(-w.err));
		goto err_discard;
	}
	if (stop_here(j, VMMFS_JOURNAL_STEP_TMP_PARTIAL) || stop_here(j, VMMFS_JOURNAL_STEP_TMP_WRITTEN))
		return -EINTR;
	if (fdatasync(fd)) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot compact: fdatasync of %s failed: %s",
			  j->path, j->tmp_path, strerror(errno));
		goto err_discard;
	}
	if (stop_here(j, VMMFS_JOURNAL_STEP_TMP_SYNCED))
		return -EINTR;
	if (renameat(j->dir_fd, j->tmp_name, j->dir_fd, j->name)) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot compact: renaming %s failed: %s",
			  j->path, j->tmp_path, strerror(errno));
		goto err_discard;
	}
	if (stop_here(j, VMMFS_JOURNAL_STEP_RENAMED))
		return -EINTR;
	/* From here on PATH is the new file, whatever happens. */
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->tmp_fd = -1;
	j->end = w.off;
	j->snapshot_bytes = w.off;
	j->next_seq = seq;
	j->written = j->synced = seq - 1;
	j->compactions++;
	if (fsync(j->dir_fd)) {
		/* the rename may not survive a crash, and what follows would go
		 * to a file PATH might not name */
		j_break(j, "fsync of the directory after a compaction failed", errno);
		return -EIO;
	}
	if (stop_here(j, VMMFS_JOURNAL_STEP_DIR_SYNCED))
		return -EINTR;
	return 0;

err_discard:
	tmp_discard(j);
	return -EIO;
}

static bool compact_due(const struct vmmfs_journal *j)
{
	uint64_t limit = j->compact_min;

	if (limit < 4 * j->snapshot_bytes)
		limit = 4 * j->snapshot_bytes;
	return j->end > limit;
}

int vmmfs_journal_sync(struct vmmfs_journal *j, uint64_t seq)
{
	int err = 0;

	pthread_mutex_lock(&j->lock);
	for (;;) {
		if (j->broken) {
			err = -EIO;
			break;
		}
		if (j->synced >= seq)
			break;
		if (j->syncing) {
			pthread_cond_wait(&j->cond, &j->lock);
			continue;
		}
		/* This thread syncs for everyone who wrote so far. */
		uint64_t target = j->written;
		int fd = j->fd, rc;

		j->syncing = true;
		pthread_mutex_unlock(&j->lock);
		rc = fdatasync(fd) ? errno : 0;
		pthread_mutex_lock(&j->lock);
		j->syncing = false;
		j->syncs++;
		if (rc)
			j_break(j, "fdatasync failed", rc);
		else if (target > j->synced)
			j->synced = target;
		pthread_cond_broadcast(&j->cond);
	}
	if (!err && !j->syncing && compact_due(j)) {
		int r = compact_locked(j);

		if (r)
			vmmfs_log(VMMFS_LOG_WARN, "state journal %s: compaction failed; the journal grows on",
				  j->path);
		if (j->broken)
			err = -EIO;
	}
	pthread_mutex_unlock(&j->lock);
	return err;
}

int vmmfs_journal_compact(struct vmmfs_journal *j)
{
	int err;

	pthread_mutex_lock(&j->lock);
	while (j->syncing)
		pthread_cond_wait(&j->cond, &j->lock);
	err = j->broken ? -EIO : compact_locked(j);
	pthread_mutex_unlock(&j->lock);
	return err;
}

void vmmfs_journal_set_compact_min(struct vmmfs_journal *j, uint64_t bytes)
{
	pthread_mutex_lock(&j->lock);
	j->compact_min = bytes ? bytes : COMPACT_MIN_DEFAULT;
	pthread_mutex_unlock(&j->lock);
}

/* ---- replay ----------------------------------------------------------- */

struct rd {
	int fd;
	uint64_t size;                /* of the file */
	uint64_t off;                 /* file offset of the next byte */
	size_t pos, len;              /* buf[pos..len) not yet consumed */
	uint32_t crc;
	int err;                      /* a read error (not the end): -errno */
	unsigned char *buf;
};

/* Reads n bytes into p (CRC'd). Returns false at the end of the file (or
 * on a read error, which sets r->err). */
static bool rd_bytes(struct rd *r, void *p, size_t n)
{
	unsigned char *d = p;

	while (n) {
		size_t k;

		if (r->pos == r->len) {
			ssize_t got;

			do
				got = pread(r->fd, r->buf, IOBUF, (off_t)r->off);
			while (got < 0 && errno == EINTR);
			if (got < 0)
				r->err = -errno;
			if (got <= 0)
				return false;
			r->pos = 0;
			r->len = (size_t)got;
		}
		k = r->len - r->pos < n ? r->len - r->pos : n;
		memcpy(d, r->buf + r->pos, k);
		r->crc = vmmfs_journal_crc32(r->crc, d, k);
		r->pos += k;
		r->off += k;
		d += k;
		n -= k;
	}
	return true;
}

/* A field of the payload; *left counts what the payload still holds. */
static bool rd_le(struct rd *r, uint64_t *left, unsigned int n, uint64_t *v)
{
	unsigned char b[8];

	if (*left < n || !rd_bytes(r, b, n))
		return false;
	*left -= n;
	*v = get_le(b, n);
	return true;
}

static bool rd_str(struct rd *r, uint64_t *left, char *s)
{
	uint64_t len;

	if (!rd_le(r, left, 2, &len) || len > VMMFS_JOURNAL_MAX_NAME || len > *left ||
	    !rd_bytes(r, s, (size_t)len))
		return false;
	*left -= len;
	s[len] = '\0';
	return true;
}

enum rd_result { RD_OK, RD_END, RD_BAD, RD_SKIPPED };

/* Reads and applies one record. RD_END: clean end of the file; RD_BAD: torn
 * or damaged (it and the rest are dropped); RD_SKIPPED: intact but
 * nonsensical; negative: -EIO or -ENOMEM (open fails). */
static int replay_one(struct vmmfs_journal *j, struct rd *r, uint64_t expect_seq)
{
	static const char *const empty = "";
	char names[3][VMMFS_JOURNAL_MAX_NAME + 1];
	unsigned char hdr[REC_HDR], crcb[4];
	struct vmmfs_journal_run *runs = NULL;
	uint64_t len, type, zero, seq, left, flags = 0, nruns = 0;
	uint32_t crc;
	struct prep p;
	struct rec rec;
	int err;

	if (r->off == r->size)
		return RD_END;
	r->crc = 0;
	if (!rd_bytes(r, hdr, REC_HDR))
		return r->err ? r->err : RD_BAD;
	len = get_le(hdr, 4);
	type = get_le(hdr + 4, 2);
	zero = get_le(hdr + 6, 2);
	seq = get_le(hdr + 8, 8);
	if (!type || type >= REC_NR_TYPES || zero || seq != expect_seq || len > PAYLOAD_MAX ||
	    len + REC_CRC > r->size - r->off)
		return RD_BAD;

	memset(&rec, 0, sizeof(rec));
	rec.type = (enum rec_type)type;
	left = len;
	for (unsigned int i = 0; i < 3; i++)
		rec.str[i] = empty;
	for (unsigned int i = 0; i < rec_desc[type].nstr; i++) {
		if (!rd_str(r, &left, names[i]))
			goto bad;
		rec.str[i] = names[i];
	}
	if (rec_desc[type].map) {
		if (!rd_le(r, &left, 8, &rec.va) || !rd_le(r, &left, 8, &rec.npages) ||
		    !rd_le(r, &left, 4, &flags) || !rd_le(r, &left, 8, &nruns) ||
		    nruns > VMMFS_JOURNAL_MAX_RUNS || left != 16 * nruns)
			goto bad;
		rec.flags = (unsigned int)flags;
		rec.nruns = nruns;
		/* the file holds that many bytes (checked above): the
		 * allocation is bounded by the file, not by a wild length */
		runs = j_malloc((size_t)nruns * sizeof(*runs));
		if (!runs)
			return -ENOMEM;
		if (!rd_bytes(r, runs, (size_t)nruns * sizeof(*runs)))
			goto bad;
		for (uint64_t i = 0; i < nruns; i++) {
			runs[i].first = get_le((const unsigned char *)&runs[i].first, 8);
			runs[i].count = get_le((const unsigned char *)&runs[i].count, 8);
		}
		rec.runs = runs;
		left = 0;
	}
	if (left)
		goto bad;
	crc = r->crc;
	if (!rd_bytes(r, crcb, 4) || get_le(crcb, 4) != crc)
		goto bad;

	err = rec_check(&j->st, &rec);
	if (err) {
		vmmfs_log(VMMFS_LOG_WARN, "state journal %s: record %llu (%s: %s%s%s) skipped: it does not fit "
			  "the state (%s)", j->path, (unsigned long long)seq, rec_desc[type].name,
			  rec.str[0], rec_desc[type].nstr > 1 ? "/" : "", rec.str[1], strerror(-err));
		free(runs);
		return RD_SKIPPED;
	}
	err = prep_make(&p, &rec, runs);
	if (err)
		return err;
	rec_apply(&j->st, &rec, &p);
	return RD_OK;

bad:
	free(runs);
	return r->err ? r->err : RD_BAD;
}

/* Reads the header and every record of fd (size bytes). Returns 0, -EINVAL
 * (header: err says why), -EIO, -ENOMEM. */
static int replay(struct vmmfs_journal *j, int fd, uint64_t size, char *err, size_t errlen)
{
	unsigned char hdr[HDR_SIZE];
	uint64_t seq, idlen;
	struct rd r;
	int res;

	memset(&r, 0, sizeof(r));
	r.fd = fd;
	r.size = size;
	r.buf = j->iobuf;
	if (!rd_bytes(&r, hdr, HDR_SIZE)) {
		if (r.err)
			goto err_read;
		snprintf(err, errlen, "%s is too short to be a vmmfs state journal; move it away "
			 "(or remove it) to start with an empty state", j->path);
		return -EINVAL;
	}
	if (memcmp(hdr, HDR_MAGIC, 8)) {
		snprintf(err, errlen, "%s is not a vmmfs state journal; refusing to use it (name "
			 "another file, or remove it to start with an empty state)", j->path);
		return -EINVAL;
	}
	if (get_le(hdr + HDR_CRC_AT, 4) != vmmfs_journal_crc32(0, hdr, HDR_CRC_AT) ||
	    get_le(hdr + 12, 4) != HDR_SIZE || get_le(hdr + 28, 2) > VMMFS_JOURNAL_MAX_IDENT ||
	    (get_le(hdr + 24, 4) & ~(uint64_t)HDR_NEW)) {
		snprintf(err, errlen, "the header of the state journal %s is damaged; vmmfs cannot "
			 "trust anything in it (move it away to start with an empty state)", j->path);
		return -EINVAL;
	}
	if (get_le(hdr + 8, 4) != HDR_VERSION) {
		snprintf(err, errlen, "the state journal %s has version %u, this vmmfs reads version "
			 "%u", j->path, (unsigned int)get_le(hdr + 8, 4), HDR_VERSION);
		return -EINVAL;
	}
	idlen = get_le(hdr + 28, 2);
	if (idlen != strlen(j->ident) || memcmp(hdr + HDR_IDENT_AT, j->ident, (size_t)idlen)) {
		snprintf(err, errlen, "the state journal %s belongs to another GPU (%.*s), not to "
			 "this one (%s); mount with the same GPU options, or name another file",
			 j->path, (int)idlen, (const char *)hdr + HDR_IDENT_AT, j->ident);
		return -EINVAL;
	}
	seq = get_le(hdr + 16, 8);
	for (;;) {
		uint64_t at = r.off;

		res = replay_one(j, &r, seq);
		if (res == RD_END)
			break;
		if (res == RD_BAD) {
			j->dropped_at = at;
			j->dropped_bytes = size - at;
			break;
		}
		if (res < 0) {
			if (res == -ENOMEM) {
				snprintf(err, errlen, "out of memory while reading the state journal %s",
					 j->path);
				return res;
			}
			goto err_read;
		}
		if (res == RD_SKIPPED)
			j->skipped++;
		else
			j->replayed++;
		seq++;
	}
	j->next_seq = seq;
	j->written = j->synced = seq - 1;
	if ((get_le(hdr + 24, 4) & HDR_NEW) && !j->replayed && !j->skipped)
		j->fresh = true;
	return 0;

err_read:
	snprintf(err, errlen, "cannot read the state journal %s: %s", j->path, strerror(-r.err));
	return -EIO;
}

/* ---- open / close ----------------------------------------------------- */

static char *path_with(const char *path, const char *suffix)
{
	size_t a = strlen(path), b = strlen(suffix);
	char *s = j_malloc(a + b + 1);

	if (s) {
		memcpy(s, path, a);
		memcpy(s + a, suffix, b + 1);
	}
	return s;
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 1;
	char *d = j_malloc(len + 1);

	if (!d)
		return NULL;
	if (!slash)
		memcpy(d, ".", 2);
	else if (slash == path)
		memcpy(d, "/", 2);
	else {
		memcpy(d, path, len);
		d[len] = '\0';
	}
	return d;
}

static void j_free(struct vmmfs_journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->tmp_fd >= 0)
		close(j->tmp_fd);
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	state_fini(&j->st);
	free(j->path);
	free(j->tmp_path);
	free(j->damaged_path);
	free(j->dir_path);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/* Keeps the file as it was read before a compaction drops its unreadable
 * tail. */
static void keep_damaged(struct vmmfs_journal *j)
{
	unlinkat(j->dir_fd, j->damaged_name, 0);
	if (linkat(j->dir_fd, j->name, j->dir_fd, j->damaged_name, 0))
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: cannot keep the damaged journal as %s: %s",
			  j->path, j->damaged_path, strerror(errno));
}

int vmmfs_journal_open(const char *path, const char *ident, struct vmmfs_journal **out,
		       char *err, size_t errlen)
{
	struct vmmfs_journal *j;
	struct stat st;
	char dummy[8];
	int r;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!path || !path[0] || !ident || strlen(ident) > VMMFS_JOURNAL_MAX_IDENT) {
		snprintf(err, errlen, "invalid state journal name or identity");
		return -EINVAL;
	}
	j = j_calloc(1, sizeof(*j));
	if (!j)
		goto err_nomem_early;
	j->fd = j->tmp_fd = j->dir_fd = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->compact_min = COMPACT_MIN_DEFAULT;
	j->next_seq = 1;
	memcpy(j->ident, ident, strlen(ident) + 1);
	j->path = path_with(path, "");
	j->tmp_path = path_with(path, ".tmp");
	j->damaged_path = path_with(path, ".damaged");
	j->dir_path = dir_of(path);
	if (!j->path || !j->tmp_path || !j->damaged_path || !j->dir_path ||
	    state_init(&j->st)) {
		j_free(j);
		goto err_nomem_early;
	}
	j->name = base_of(j->path);
	j->tmp_name = base_of(j->tmp_path);
	j->damaged_name = base_of(j->damaged_path);
	if (!j->name[0]) {
		snprintf(err, errlen, "the state journal %s names a directory, not a file", path);
		r = -EINVAL;
		goto err_free;
	}

	j->dir_fd = open(j->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dir_fd < 0) {
		snprintf(err, errlen, "cannot open the directory %s of the state journal: %s",
			 j->dir_path, strerror(errno));
		r = -EIO;
		goto err_free;
	}
	j->fd = openat(j->dir_fd, j->name, O_RDWR | O_CLOEXEC);
	if (j->fd < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot open the state journal %s: %s", path, strerror(errno));
		r = -EIO;
		goto err_free;
	}
	if (j->fd >= 0) {
		if (flock(j->fd, LOCK_EX | LOCK_NB)) {
			snprintf(err, errlen, "the state journal %s is in use by another vmmfs", path);
			r = -EBUSY;
			goto err_free;
		}
		if (fstat(j->fd, &st) || !S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "the state journal %s is not a regular file", path);
			r = -EIO;
			goto err_free;
		}
		/* a compaction that a crash interrupted */
		unlinkat(j->dir_fd, j->tmp_name, 0);
		if (st.st_size == 0) {
			j->fresh = true;
		} else {
			r = replay(j, j->fd, (uint64_t)st.st_size, err, errlen);
			if (r)
				goto err_free;
		}
	} else {
		j->fresh = true;
		unlinkat(j->dir_fd, j->tmp_name, 0);
	}

	if (j->dropped_bytes) {
		vmmfs_log(VMMFS_LOG_ERROR, "state journal %s: %llu bytes from offset %llu on could not be read "
			  "(a write cut short by a crash, or damage) and were dropped; the file as it "
			  "was is kept as %s", path, (unsigned long long)j->dropped_bytes,
			  (unsigned long long)j->dropped_at, j->damaged_path);
		keep_damaged(j);
	}
	if (j->skipped)
		vmmfs_log(VMMFS_LOG_WARN, "state journal %s: %llu records did not fit the state and were "
			  "skipped", path, (unsigned long long)j->skipped);

	/* A fresh start: a new file, with nothing in it. Otherwise the state
	 * replayed, without the dropped tail. The new file is named PATH by a
	 * rename, so PATH is never a half-written file. */
	r = compact_locked(j);
	if (r) {
		snprintf(err, errlen, "cannot write the state journal %s (see the log above): %s",
			 path, strerror(-r == EINTR ? EIO : -r));
		r = -EIO;
		goto err_free;
	}
	j->compactions = 1;
	vmmfs_log(VMMFS_LOG_INFO, "state journal %s: %s, %llu address spaces and %llu mappings",
		  path, j->fresh ? "new" : "replayed", (unsigned long long)j->st.nvas,
		  (unsigned long long)j->st.nmaps);
	*out = j;
	return 0;

err_free:
	j_free(j);
	return r;
err_nomem_early:
	snprintf(err, errlen, "out of memory opening the state journal %s", path);
	return -ENOMEM;
}

void vmmfs_journal_close(struct vmmfs_journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	while (j->syncing)
		pthread_cond_wait(&j->cond, &j->lock);
	pthread_mutex_unlock(&j->lock);
	j_free(j);
}

void vmmfs_journal_test_crash(struct vmmfs_journal *j)
{
	j_free(j);
}

void vmmfs_journal_test_stop_after(struct vmmfs_journal *j, enum vmmfs_journal_step step)
{
	pthread_mutex_lock(&j->lock);
	j->stop_after = step;
	pthread_mutex_unlock(&j->lock);
}

bool vmmfs_journal_fresh(const struct vmmfs_journal *j)
{
	return j->fresh;
}

/* ---- the state, read ---------------------------------------------------- */

int vmmfs_journal_for_each_vas(struct vmmfs_journal *j,
			       int (*fn)(void *ctx, const char *vas), void *ctx)
{
	for (const struct jvas *v = j->st.first; v; v = v->next) {
		int r = fn(ctx, v->name);

		if (r)
			return r;
	}
	return 0;
}

int vmmfs_journal_for_each_map(struct vmmfs_journal *j,
			       int (*fn)(void *ctx, const struct vmmfs_journal_map *m),
			       void *ctx)
{
	for (const struct jvas *v = j->st.first; v; v = v->next) {
		for (const struct jmap *m = v->first; m; m = m->next) {
			struct vmmfs_journal_map jm = {
				.vas = v->name, .name = m->name, .va = m->va, .npages = m->npages,
				.flags = m->flags, .nruns = m->nruns, .runs = m->runs,
			};
			int r = fn(ctx, &jm);

			if (r)
				return r;
		}
	}
	return 0;
}

void vmmfs_journal_get_stats(struct vmmfs_journal *j, struct vmmfs_journal_stats *st)
{
	pthread_mutex_lock(&j->lock);
	memset(st, 0, sizeof(*st));
	st->vas = j->st.nvas;
	st->maps = j->st.nmaps;
	st->file_bytes = j->end;
	st->snapshot_bytes = j->snapshot_bytes;
	st->records = j->records;
	st->syncs = j->syncs;
	st->compactions = j->compactions;
	st->replayed = j->replayed;
	st->skipped = j->skipped;
	st->dropped_bytes = j->dropped_bytes;
	st->dropped_at = j->dropped_at;
	st->broken = j->broken;
	pthread_mutex_unlock(&j->lock);
}
