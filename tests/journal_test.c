/* SPDX-License-Identifier: MIT */
/*
 * The state journal (fs/journal.c): records round trip through a reopen;
 * a write cut at any byte of the last record is ignored; a flipped bit in
 * any record drops that record and everything after it; a compaction
 * stopped after any of its steps leaves a complete journal; checks refuse
 * nonsense and leave file and state unchanged; every allocation may fail.
 *
 * The expected state is kept by the test itself (struct model) and compared
 * with what the journal replays, as text.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "mem.h"
#include "vmm_priv.h"

/* ---- a scratch directory ----------------------------------------------- */

static char dir[128];
static char jpath[192], tmppath[200], dmgpath[208];

/* On tmpfs when there is one: the test is about what the journal writes,
 * and thousands of fsyncs on a disk would take most of its time. */
static int suite_init(void)
{
	const char *base = getenv("VMMFS_TEST_TMPDIR");

	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/vmmfs_journal_test.XXXXXX", base);
	if (!mkdtemp(dir))
		return -1;
	snprintf(jpath, sizeof(jpath), "%s/state", dir);
	snprintf(tmppath, sizeof(tmppath), "%s/state.tmp", dir);
	snprintf(dmgpath, sizeof(dmgpath), "%s/state.damaged", dir);
	return 0;
}

static int suite_fini(void)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void reset_files(void)
{
	unlink(jpath);
	unlink(tmppath);
	unlink(dmgpath);
}

static bool file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

static uint64_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) ? UINT64_MAX : (uint64_t)st.st_size;
}

static unsigned char *read_file(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *p, const void *buf, size_t len)
{
	FILE *f = fopen(p, "wb");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(buf, 1, len, f), len);
	fclose(f);
}

static const char *IDENT = "sim ga102, 1073741824 bytes of VRAM";

static struct vmmfs_journal *jopen(void)
{
	struct vmmfs_journal *j = NULL;
	char err[512] = "";
	int r = vmmfs_journal_open(jpath, IDENT, &j, err, sizeof(err));

	if (r)
		fprintf(stderr, "  open: %d: %s\n", r, err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	return j;
}

/* ---- the model ----------------------------------------------------------- */

#define MAX_VAS 16
#define MAX_MAPS 256
#define MAX_RUNS 4096

struct mmap_ {
	int vas;                  /* index into vas[], -1: gone */
	char name[64];
	uint64_t va, npages;
	unsigned int flags;
	uint64_t nruns;
	struct vmmfs_journal_run runs[8];
	struct vmmfs_journal_run *big; /* many runs (owned) */
	uint64_t order;           /* insertion order within its vas */
};

struct model {
	char vas[MAX_VAS][64];
	bool vas_live[MAX_VAS];
	uint64_t vas_order[MAX_VAS];
	int nvas;
	struct mmap_ maps[MAX_MAPS];
	int nmaps;
	uint64_t clock;
};

static void model_free(struct model *m)
{
	for (int i = 0; i < m->nmaps; i++)
		free(m->maps[i].big);
	memset(m, 0, sizeof(*m));
}

static void model_copy(struct model *dst, const struct model *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (int i = 0; i < dst->nmaps; i++)
		if (src->maps[i].big) {
			dst->maps[i].big = malloc(src->maps[i].nruns * sizeof(*src->maps[i].big));
			memcpy(dst->maps[i].big, src->maps[i].big,
			       src->maps[i].nruns * sizeof(*src->maps[i].big));
		}
}

static const struct vmmfs_journal_run *mruns(const struct mmap_ *mp)
{
	return mp->big ? mp->big : mp->runs;
}

struct text {
	char *buf;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void tprintf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (t->len + (size_t)n + 1 > t->cap) {
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->buf = realloc(t->buf, t->cap);
	}
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void dump_map(struct text *t, const char *vas, const char *name, uint64_t va,
		     uint64_t npages, unsigned int flags, uint64_t nruns,
		     const struct vmmfs_journal_run *runs)
{
	tprintf(t, "  map %s/%s va 0x%llx pages %llu flags %u runs", vas, name,
		(unsigned long long)va, (unsigned long long)npages, flags);
	for (uint64_t i = 0; i < nruns; i++)
		tprintf(t, " %llx+%llu", (unsigned long long)runs[i].first,
			(unsigned long long)runs[i].count);
	tprintf(t, "\n");
}

/* The model as text: address spaces in creation order, each followed by
 * its mappings in insertion order (the journal's for_each order). */
static char *model_dump(const struct model *m)
{
	struct text t = { 0 };
	int order[MAX_VAS], n = 0;

	tprintf(&t, "state\n");
	for (int i = 0; i < m->nvas; i++)
		if (m->vas_live[i])
			order[n++] = i;
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++)
			if (m->vas_order[order[b]] < m->vas_order[order[a]]) {
				int x = order[a];
				order[a] = order[b];
				order[b] = x;
			}
	for (int a = 0; a < n; a++)
		tprintf(&t, "vas %s\n", m->vas[order[a]]);
	for (int a = 0; a < n; a++) {
		int v = order[a];
		uint64_t last = 0;

		for (;;) {
			const struct mmap_ *best = NULL;

			for (int i = 0; i < m->nmaps; i++) {
				const struct mmap_ *mp = &m->maps[i];
				if (mp->vas == v && mp->order > last && (!best || mp->order < best->order))
					best = mp;
			}
			if (!best)
				break;
			dump_map(&t, m->vas[v], best->name, best->va, best->npages, best->flags,
				 best->nruns, mruns(best));
			last = best->order;
		}
	}
	return t.buf;
}

static int dump_vas_cb(void *ctx, const char *vas)
{
	tprintf(ctx, "vas %s\n", vas);
	return 0;
}

static int dump_map_cb(void *ctx, const struct vmmfs_journal_map *mp)
{
	dump_map(ctx, mp->vas, mp->name, mp->va, mp->npages, mp->flags, mp->nruns, mp->runs);
	return 0;
}

static char *journal_dump(struct vmmfs_journal *j)
{
	struct text t = { 0 };

	tprintf(&t, "state\n");
	vmmfs_journal_for_each_vas(j, dump_vas_cb, &t);
	vmmfs_journal_for_each_map(j, dump_map_cb, &t);
	return t.buf;
}

static bool same_state(struct vmmfs_journal *j, const struct model *m)
{
	char *a = journal_dump(j), *b = model_dump(m);
	bool same = !strcmp(a, b);

	if (!same)
		fprintf(stderr, "  journal state:\n%s  expected:\n%s", a, b);
	free(a);
	free(b);
	return same;
}

static int model_vas(const struct model *m, const char *name)
{
	for (int i = 0; i < m->nvas; i++)
		if (m->vas_live[i] && !strcmp(m->vas[i], name))
			return i;
	return -1;
}

static struct mmap_ *model_map(struct model *m, const char *vas, const char *name)
{
	int v = model_vas(m, vas);

	for (int i = 0; v >= 0 && i < m->nmaps; i++)
		if (m->maps[i].vas == v && !strcmp(m->maps[i].name, name))
			return &m->maps[i];
	return NULL;
}

/* Each operation: on the journal (must succeed) and on the model. */
static uint64_t op_vas_create(struct vmmfs_journal *j, struct model *m, const char *name)
{
	uint64_t seq = 0;

	CU_ASSERT_EQUAL(vmmfs_journal_vas_create(j, name, &seq), 0);
	snprintf(m->vas[m->nvas], sizeof(m->vas[0]), "%s", name);
	m->vas_live[m->nvas] = true;
	m->vas_order[m->nvas++] = ++m->clock;
	return seq;
}

static uint64_t op_vas_remove(struct vmmfs_journal *j, struct model *m, const char *name)
{
	uint64_t seq = 0;

	CU_ASSERT_EQUAL(vmmfs_journal_vas_remove(j, name, &seq), 0);
	m->vas_live[model_vas(m, name)] = false;
	return seq;
}

static uint64_t op_vas_rename(struct vmmfs_journal *j, struct model *m, const char *name,
			      const char *to)
{
	uint64_t seq = 0;

	CU_ASSERT_EQUAL(vmmfs_journal_vas_rename(j, name, to, &seq), 0);
	snprintf(m->vas[model_vas(m, name)], sizeof(m->vas[0]), "%s", to);
	return seq;
}

static uint64_t op_map_add_runs(struct vmmfs_journal *j, struct model *m, const char *vas,
				const char *name, uint64_t va, unsigned int flags,
				const struct vmmfs_journal_run *runs, uint64_t nruns)
{
	struct mmap_ *mp = NULL;
	struct vmmfs_journal_map jm;
	uint64_t seq = 0, npages = 0;

	for (uint64_t i = 0; i < nruns; i++)
		npages += runs[i].count;
	jm = (struct vmmfs_journal_map){ .vas = vas, .name = name, .va = va, .npages = npages,
					 .flags = flags, .nruns = nruns, .runs = runs };
	CU_ASSERT_EQUAL(vmmfs_journal_map_add(j, &jm, &seq), 0);
	for (int i = 0; i < m->nmaps && !mp; i++)
		if (m->maps[i].vas < 0)
			mp = &m->maps[i]; /* a removed one's slot */
	if (!mp) {
		CU_ASSERT_FATAL(m->nmaps < MAX_MAPS);
		mp = &m->maps[m->nmaps++];
	}
	free(mp->big);
	memset(mp, 0, sizeof(*mp));
	mp->vas = model_vas(m, vas);
	snprintf(mp->name, sizeof(mp->name), "%s", name);
	mp->va = va;
	mp->npages = npages;
	mp->flags = flags;
	mp->nruns = nruns;
	if (nruns <= 8) {
		memcpy(mp->runs, runs, nruns * sizeof(*runs));
	} else {
		mp->big = malloc(nruns * sizeof(*runs));
		memcpy(mp->big, runs, nruns * sizeof(*runs));
	}
	mp->order = ++m->clock;
	return seq;
}

static uint64_t op_map_add(struct vmmfs_journal *j, struct model *m, const char *vas,
			   const char *name, uint64_t va, unsigned int flags, uint64_t first,
			   uint64_t count)
{
	struct vmmfs_journal_run runs[2] = { { first, count }, { first + count + 7, 3 } };

	/* odd PFNs get a second run */
	return op_map_add_runs(j, m, vas, name, va, flags, runs, (first & 1) ? 2 : 1);
}

static uint64_t op_map_remove(struct vmmfs_journal *j, struct model *m, const char *vas,
			      const char *name)
{
	struct mmap_ *mp = model_map(m, vas, name);
	uint64_t seq = 0;

	CU_ASSERT_EQUAL(vmmfs_journal_map_remove(j, vas, name, &seq), 0);
	mp->vas = -1;
	return seq;
}

static uint64_t op_map_rename(struct vmmfs_journal *j, struct model *m, const char *vas,
			      const char *name, const char *to)
{
	struct mmap_ *mp = model_map(m, vas, name);
	uint64_t seq = 0;

	CU_ASSERT_EQUAL(vmmfs_journal_map_rename(j, vas, name, to, &seq), 0);
	snprintf(mp->name, sizeof(mp->name), "%s", to);
	return seq;
}

/* A scenario with every record type. Returns the file offsets where each
 * record starts (offs[0..n)) and the model after each prefix (after[i]:
 * records [0, i) applied), when asked. */
#define SCEN_MAX 32

struct scenario {
	int n;
	uint64_t offs[SCEN_MAX + 1];       /* offs[n] = end of the file */
	struct model after[SCEN_MAX + 1];
};

static void scen_note(struct vmmfs_journal *j, struct model *m, struct scenario *s)
{
	struct vmmfs_journal_stats st;

	vmmfs_journal_get_stats(j, &st);
	if (s) {
		s->n++;
		s->offs[s->n] = st.file_bytes;
		model_free(&s->after[s->n]);
		model_copy(&s->after[s->n], m);
	}
}

static void run_scenario(struct vmmfs_journal *j, struct model *m, struct scenario *s)
{
	uint64_t seq;
	struct vmmfs_journal_stats st;

	vmmfs_journal_get_stats(j, &st);
	if (s) {
		s->n = 0;
		s->offs[0] = st.file_bytes;
		model_copy(&s->after[0], m);
	}
	op_vas_create(j, m, "0"); scen_note(j, m, s);
	op_vas_create(j, m, "gfx"); scen_note(j, m, s);
	op_map_add(j, m, "0", "buf", 0x200000, 0, 0x100, 0x100); scen_note(j, m, s);
	op_map_add(j, m, "0", "ro2", 0x7f0000000ull, VMMFS_JOURNAL_RO, 0x401, 2); scen_note(j, m, s);
	op_map_add(j, m, "gfx", "scratch", 0x400000, VMMFS_JOURNAL_ALLOC, 0x20000, 512); scen_note(j, m, s);
	op_map_rename(j, m, "0", "buf", "buffer"); scen_note(j, m, s);
	op_vas_rename(j, m, "gfx", "compute"); scen_note(j, m, s);
	op_map_add(j, m, "compute", "x", 0x1000000, VMMFS_JOURNAL_RO | VMMFS_JOURNAL_ALLOC, 0x3, 1);
	scen_note(j, m, s);
	op_map_remove(j, m, "0", "ro2"); scen_note(j, m, s);
	op_vas_create(j, m, "tmp"); scen_note(j, m, s);
	op_vas_remove(j, m, "tmp"); scen_note(j, m, s);
	seq = op_map_add(j, m, "0", "ro2", 0x7f0000000ull, 0, 0x9000, 16); scen_note(j, m, s);
	CU_ASSERT_EQUAL(vmmfs_journal_sync(j, seq), 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_crc32(void)
{
	static const char v[] = "123456789";
	uint32_t c;

	VT_EQ_U64(vmmfs_journal_crc32(0, v, 9), 0xcbf43926u);
	VT_EQ_U64(vmmfs_journal_crc32(0, "", 0), 0);
	VT_EQ_U64(vmmfs_journal_crc32(0, "a", 1), 0xe8b7be43u);
	c = vmmfs_journal_crc32(0, v, 4);
	c = vmmfs_journal_crc32(c, v + 4, 5);
	VT_EQ_U64(c, 0xcbf43926u);
}

static void test_round_trip(void)
{
	struct vmmfs_journal_stats st;
	struct vmmfs_journal *j;
	struct model m = { 0 };

	reset_files();
	j = jopen();
	CU_ASSERT_TRUE(vmmfs_journal_fresh(j));
	CU_ASSERT_TRUE(file_exists(jpath));
	CU_ASSERT_TRUE(same_state(j, &m));
	run_scenario(j, &m, NULL);
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.records, 12);
	VT_EQ_U64(st.vas, 2);
	VT_EQ_U64(st.maps, 4);
	VT_EQ_U64(st.file_bytes, file_size(jpath));
	vmmfs_journal_close(j);

	j = jopen();
	CU_ASSERT_FALSE(vmmfs_journal_fresh(j));
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.replayed, 12);
	VT_EQ_U64(st.dropped_bytes, 0);
	VT_EQ_U64(st.skipped, 0);
	CU_ASSERT_FALSE(file_exists(dmgpath));
	/* compacted at open: 2 address spaces + 4 mappings */
	vmmfs_journal_close(j);
	j = jopen();
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.replayed, 6);
	CU_ASSERT_TRUE(same_state(j, &m));
	/* the state keeps changing after replays */
	op_map_remove(j, &m, "compute", "scratch");
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* A mapping of many runs: bigger than the I/O buffer, so records cross
 * buffer boundaries both ways. */
static void test_big_mapping(void)
{
	static struct vmmfs_journal_run runs[MAX_RUNS];
	struct vmmfs_journal *j;
	struct model m = { 0 };

	reset_files();
	j = jopen();
	op_vas_create(j, &m, "0");
	for (int i = 0; i < MAX_RUNS; i++)
		runs[i] = (struct vmmfs_journal_run){ (uint64_t)i * 3 + 0x10, 1 + (uint64_t)(i % 5) };
	op_map_add_runs(j, &m, "0", "scattered", 0x10000000, 0, runs, MAX_RUNS);
	op_map_add(j, &m, "0", "after", 0x20000000, 0, 0x10, 1);
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* A journal stays new until something is recorded in it, whatever
 * crashes in between; once something was, an empty state is not new. */
static void test_fresh(void)
{
	struct vmmfs_journal *j;
	struct model m = { 0 };

	reset_files();
	j = jopen();
	CU_ASSERT_TRUE(vmmfs_journal_fresh(j));
	vmmfs_journal_test_crash(j);
	j = jopen();
	CU_ASSERT_TRUE(vmmfs_journal_fresh(j));
	CU_ASSERT_EQUAL(vmmfs_journal_compact(j), 0);
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(vmmfs_journal_fresh(j));
	op_vas_create(j, &m, "0");
	vmmfs_journal_test_crash(j);
	j = jopen();
	CU_ASSERT_FALSE(vmmfs_journal_fresh(j));
	CU_ASSERT_TRUE(same_state(j, &m));
	op_vas_remove(j, &m, "0");
	CU_ASSERT_EQUAL(vmmfs_journal_compact(j), 0);
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_FALSE(vmmfs_journal_fresh(j));
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* A relative name keeps naming the same file after a chdir (the daemon
 * chdirs to / when it goes to the background). */
static void test_relative_path(void)
{
	struct vmmfs_journal *j = NULL;
	struct model m = { 0 };
	char cwd[512], err[256];

	reset_files();
	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
	VT_EQ_INT(vmmfs_journal_open("state", IDENT, &j, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(chdir("/"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	op_vas_create(j, &m, "0");
	CU_ASSERT_EQUAL(vmmfs_journal_compact(j), 0);
	op_map_add(j, &m, "0", "a", 0x1000, 0, 0x10, 4);
	vmmfs_journal_close(j);
	CU_ASSERT_FALSE(file_exists("/state"));
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	CU_ASSERT_EQUAL(chdir(cwd), 0);
	model_free(&m);
}

/* Checks refuse nonsense; file and state stay as they were. */
static void test_checks(void)
{
	static const struct vmmfs_journal_run one = { 0x10, 4 }, zero = { 0x10, 0 };
	static const struct vmmfs_journal_run wrap = { UINT64_MAX - 1, 4 };
	struct vmmfs_journal *j;
	struct model m = { 0 };
	char longname[300];
	uint64_t size;
	struct {
		struct vmmfs_journal_map m;
		int err;
	} bad[] = {
		{ { "0", "a", 0x1000, 4, 0, 1, &one }, -EEXIST },
		{ { "nope", "b", 0x1000, 4, 0, 1, &one }, -ENOENT },
		{ { "0", "b", 0x1001, 4, 0, 1, &one }, -EINVAL },      /* unaligned va */
		{ { "0", "b", 0x1000, 5, 0, 1, &one }, -EINVAL },      /* runs do not add up */
		{ { "0", "b", 0x1000, 0, 0, 1, &zero }, -EINVAL },     /* empty run */
		{ { "0", "b", 0x1000, 4, 0, 0, &one }, -EINVAL },      /* no runs */
		{ { "0", "b", 0x1000, 4, 0x8, 1, &one }, -EINVAL },    /* unknown flag */
		{ { "0", "b", 0x1000, 4, 0, 1, &wrap }, -EINVAL },     /* PFN overflow */
		{ { "0", "", 0x1000, 4, 0, 1, &one }, -EINVAL },       /* empty name */
		{ { "0", longname, 0x1000, 4, 0, 1, &one }, -EINVAL }, /* long name */
		{ { "0", "b", UINT64_MAX & ~0xfffull, 4, 0, 1, &one }, -EINVAL }, /* VA wraps */
	};

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	reset_files();
	j = jopen();
	op_vas_create(j, &m, "0");
	op_vas_create(j, &m, "1");
	op_map_add(j, &m, "0", "a", 0x1000, 0, 0x10, 4);
	size = file_size(jpath);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = vmmfs_journal_map_add(j, &bad[i].m, NULL);

		if (r != bad[i].err)
			fprintf(stderr, "  case %zu: %d, expected %d\n", i, r, bad[i].err);
		VT_EQ_INT(r, bad[i].err);
	}
	VT_EQ_INT(vmmfs_journal_vas_create(j, "0", NULL), -EEXIST);
	VT_EQ_INT(vmmfs_journal_vas_create(j, "", NULL), -EINVAL);
	VT_EQ_INT(vmmfs_journal_vas_create(j, longname, NULL), -EINVAL);
	VT_EQ_INT(vmmfs_journal_vas_remove(j, "0", NULL), -ENOTEMPTY);
	VT_EQ_INT(vmmfs_journal_vas_remove(j, "7", NULL), -ENOENT);
	VT_EQ_INT(vmmfs_journal_vas_rename(j, "0", "1", NULL), -EEXIST);
	VT_EQ_INT(vmmfs_journal_vas_rename(j, "7", "8", NULL), -ENOENT);
	VT_EQ_INT(vmmfs_journal_map_remove(j, "0", "b", NULL), -ENOENT);
	VT_EQ_INT(vmmfs_journal_map_remove(j, "1", "a", NULL), -ENOENT);
	VT_EQ_INT(vmmfs_journal_map_rename(j, "0", "b", "c", NULL), -ENOENT);
	VT_EQ_INT(vmmfs_journal_map_rename(j, "0", "a", "", NULL), -EINVAL);
	VT_EQ_U64(file_size(jpath), size);
	CU_ASSERT_TRUE(same_state(j, &m));
	/* renaming to the same name is allowed and harmless */
	op_map_rename(j, &m, "0", "a", "a");
	op_vas_rename(j, &m, "1", "1");
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* The journal ends at the last whole record: cutting the file anywhere in
 * the last record gives the state without it, and appending goes on from
 * there. */
static void test_torn_last_record(void)
{
	static struct scenario s;
	struct vmmfs_journal_stats st;
	struct vmmfs_journal *j;
	struct model m = { 0 };
	unsigned char *full;
	size_t len;
	uint64_t start, end;

	reset_files();
	j = jopen();
	run_scenario(j, &m, &s);
	vmmfs_journal_close(j);
	full = read_file(jpath, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	start = s.offs[s.n - 1];
	end = s.offs[s.n];
	VT_EQ_U64(end, len);
	for (uint64_t cut = start; cut < end; cut++) {
		struct model mm;

		reset_files();
		write_file(jpath, full, (size_t)cut);
		j = jopen();
		if (!same_state(j, &s.after[s.n - 1])) {
			fprintf(stderr, "  cut at %llu of [%llu, %llu)\n", (unsigned long long)cut,
				(unsigned long long)start, (unsigned long long)end);
			CU_FAIL("state after a torn last record");
			vmmfs_journal_close(j);
			break;
		}
		vmmfs_journal_get_stats(j, &st);
		VT_EQ_U64(st.dropped_bytes, cut - start);
		CU_ASSERT_EQUAL(file_exists(dmgpath), cut > start);
		if (cut > start) {
			VT_EQ_U64(st.dropped_at, start);
			VT_EQ_U64(file_size(dmgpath), cut);
		}
		/* appends after the cut are found again */
		model_copy(&mm, &s.after[s.n - 1]);
		op_map_add(j, &mm, "0", "new", 0x90000000, 0, 0x77, 2);
		vmmfs_journal_close(j);
		j = jopen();
		CU_ASSERT_TRUE(same_state(j, &mm));
		vmmfs_journal_get_stats(j, &st);
		VT_EQ_U64(st.dropped_bytes, 0);
		vmmfs_journal_close(j);
		model_free(&mm);
	}
	free(full);
	for (int i = 0; i <= s.n; i++)
		model_free(&s.after[i]);
	model_free(&m);
}

/* A flipped bit anywhere in record i: records [0, i) survive, the rest is
 * dropped. Every byte of every record, a different bit each time. */
static void test_bit_flips(void)
{
	static struct scenario s;
	struct vmmfs_journal_stats st;
	struct vmmfs_journal *j;
	struct model m = { 0 };
	unsigned char *full;
	size_t len;
	int failures = 0;

	reset_files();
	j = jopen();
	run_scenario(j, &m, &s);
	vmmfs_journal_close(j);
	full = read_file(jpath, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	for (int rec = 0; rec < s.n && failures < 3; rec++) {
		for (uint64_t off = s.offs[rec]; off < s.offs[rec + 1] && failures < 3; off++) {
			full[off] ^= (unsigned char)(1u << (off % 8));
			reset_files();
			write_file(jpath, full, len);
			full[off] ^= (unsigned char)(1u << (off % 8));
			j = jopen();
			if (!same_state(j, &s.after[rec])) {
				fprintf(stderr, "  bit %llu of byte %llu (record %d) flipped\n",
					(unsigned long long)(off % 8), (unsigned long long)off, rec);
				CU_FAIL("state after a flipped bit");
				failures++;
			}
			vmmfs_journal_get_stats(j, &st);
			VT_EQ_U64(st.dropped_at, s.offs[rec]);
			VT_EQ_U64(st.dropped_bytes, len - s.offs[rec]);
			CU_ASSERT_TRUE(file_exists(dmgpath));
			vmmfs_journal_close(j);
		}
	}
	free(full);
	for (int i = 0; i <= s.n; i++)
		model_free(&s.after[i]);
	model_free(&m);
}

/* A damaged header is refused, not read as an empty state; the file stays. */
static void test_header(void)
{
	struct vmmfs_journal *j = NULL;
	struct model m = { 0 };
	unsigned char *full;
	char err[512];
	size_t len;

	reset_files();
	j = jopen();
	run_scenario(j, &m, NULL);
	vmmfs_journal_close(j);
	full = read_file(jpath, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	for (size_t off = 0; off < 128; off++) {
		full[off] ^= 0x10;
		write_file(jpath, full, len);
		full[off] ^= 0x10;
		err[0] = '\0';
		VT_EQ_INT(vmmfs_journal_open(jpath, IDENT, &j, err, sizeof(err)), -EINVAL);
		CU_ASSERT_TRUE(err[0] != '\0');
		VT_EQ_U64(file_size(jpath), len);
	}
	write_file(jpath, full, len);
	/* another GPU */
	VT_EQ_INT(vmmfs_journal_open(jpath, "sim tu102, 1073741824 bytes of VRAM", &j, err,
				     sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "another GPU"));
	/* not a journal, or too short */
	write_file(jpath, "hello, world\n", 13);
	VT_EQ_INT(vmmfs_journal_open(jpath, IDENT, &j, err, sizeof(err)), -EINVAL);
	VT_EQ_U64(file_size(jpath), 13);
	write_file(jpath, full, 100);
	VT_EQ_INT(vmmfs_journal_open(jpath, IDENT, &j, err, sizeof(err)), -EINVAL);
	/* an empty file is a fresh start */
	write_file(jpath, "", 0);
	j = jopen();
	CU_ASSERT_TRUE(vmmfs_journal_fresh(j));
	vmmfs_journal_close(j);
	free(full);
	model_free(&m);
}

/* A second opener is refused while the first holds the journal. */
static void test_exclusive(void)
{
	struct vmmfs_journal *j, *k = NULL;
	struct model m = { 0 };
	char err[256];

	reset_files();
	j = jopen();
	op_vas_create(j, &m, "0");
	VT_EQ_INT(vmmfs_journal_open(jpath, IDENT, &k, err, sizeof(err)), -EBUSY);
	CU_ASSERT_PTR_NULL(k);
	/* still exclusive after a compaction changed the file under PATH */
	CU_ASSERT_EQUAL(vmmfs_journal_compact(j), 0);
	VT_EQ_INT(vmmfs_journal_open(jpath, IDENT, &k, err, sizeof(err)), -EBUSY);
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* Intact records that make no sense are skipped; those after them count. */
static size_t raw_record(unsigned char *out, unsigned int type, uint64_t seq,
			 const char *const *strs, unsigned int nstr)
{
	size_t len = 0, at = 16;
	uint32_t crc;

	for (unsigned int i = 0; i < nstr; i++)
		len += 2 + strlen(strs[i]);
	for (unsigned int i = 0; i < 4; i++)
		out[i] = (unsigned char)(len >> (8 * i));
	out[4] = (unsigned char)type;
	out[5] = 0;
	out[6] = out[7] = 0;
	for (unsigned int i = 0; i < 8; i++)
		out[8 + i] = (unsigned char)(seq >> (8 * i));
	for (unsigned int i = 0; i < nstr; i++) {
		size_t l = strlen(strs[i]);
		out[at] = (unsigned char)l;
		out[at + 1] = (unsigned char)(l >> 8);
		memcpy(out + at + 2, strs[i], l);
		at += 2 + l;
	}
	crc = vmmfs_journal_crc32(0, out, at);
	for (unsigned int i = 0; i < 4; i++)
		out[at + i] = (unsigned char)(crc >> (8 * i));
	return at + 4;
}

static void test_skip_nonsense(void)
{
	static const char *const rm_unknown[] = { "0", "ghost" };
	static const char *const mk1[] = { "1" };
	static const char *const mk0[] = { "0" };
	struct vmmfs_journal_stats st;
	struct vmmfs_journal *j;
	struct model m = { 0 };
	unsigned char *full, rec[600];
	size_t len, n;
	uint64_t seq;

	reset_files();
	j = jopen();
	seq = op_vas_create(j, &m, "0");
	vmmfs_journal_close(j);
	full = read_file(jpath, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	full = realloc(full, len + 3 * sizeof(rec));
	/* the record numbers go on from the compacted file's last one */
	seq = 0;
	for (unsigned int i = 0; i < 8; i++)
		seq |= (uint64_t)full[16 + i] << (8 * i);
	seq += 1; /* one record (VAS_CREATE 0) in the compacted file */
	n = raw_record(full + len, 5, seq++, rm_unknown, 2);   /* MAP_REMOVE of nothing */
	len += n;
	n = raw_record(full + len, 1, seq++, mk0, 1);          /* VAS_CREATE of an existing one */
	len += n;
	n = raw_record(full + len, 1, seq++, mk1, 1);          /* a good one */
	len += n;
	write_file(jpath, full, len);
	j = jopen();
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.skipped, 2);
	VT_EQ_U64(st.replayed, 2);
	VT_EQ_U64(st.dropped_bytes, 0);
	snprintf(m.vas[m.nvas], sizeof(m.vas[0]), "1");
	m.vas_live[m.nvas] = true;
	m.vas_order[m.nvas++] = ++m.clock;
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);

	/* a wrong sequence number ends the journal */
	full = realloc(full, len + sizeof(rec));
	n = raw_record(full + len, 1, seq + 5, (const char *const[]){ "2" }, 1);
	reset_files();
	write_file(jpath, full, len + n);
	j = jopen();
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.dropped_bytes, n);
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	free(full);
	model_free(&m);
}

/* A compaction stopped after any of its steps, as a kill would stop it,
 * leaves PATH holding the whole state; the next open removes PATH.tmp. */
static void test_compaction_steps(void)
{
	static const enum vmmfs_journal_step steps[] = {
		VMMFS_JOURNAL_STEP_TMP_PARTIAL, VMMFS_JOURNAL_STEP_TMP_WRITTEN,
		VMMFS_JOURNAL_STEP_TMP_SYNCED, VMMFS_JOURNAL_STEP_RENAMED,
		VMMFS_JOURNAL_STEP_DIR_SYNCED,
	};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct vmmfs_journal_stats st;
		struct vmmfs_journal *j;
		struct model m = { 0 };
		char name[32];
		uint64_t seq = 0;

		reset_files();
		j = jopen();
		run_scenario(j, &m, NULL);
		for (int k = 0; k < 40; k++) {
			snprintf(name, sizeof(name), "m%d", k);
			seq = op_map_add(j, &m, k % 2 ? "0" : "compute", name,
					 0x100000000ull + (uint64_t)k * 0x100000, 0,
					 0x1000 + (uint64_t)k * 64, 16);
		}
		CU_ASSERT_EQUAL(vmmfs_journal_sync(j, seq), 0);
		vmmfs_journal_test_stop_after(j, steps[i]);
		VT_EQ_INT(vmmfs_journal_compact(j), -EINTR);
		CU_ASSERT_EQUAL(file_exists(tmppath), steps[i] < VMMFS_JOURNAL_STEP_RENAMED);
		vmmfs_journal_test_crash(j);

		j = jopen();
		CU_ASSERT_FALSE(file_exists(tmppath));
		if (!same_state(j, &m))
			fprintf(stderr, "  after a stop after step %d\n", (int)steps[i]);
		CU_ASSERT_TRUE(same_state(j, &m));
		vmmfs_journal_get_stats(j, &st);
		VT_EQ_U64(st.dropped_bytes, 0);
		/* and it goes on */
		op_map_remove(j, &m, "0", "m1");
		vmmfs_journal_test_crash(j); /* no close: the removal was written */
		j = jopen();
		CU_ASSERT_TRUE(same_state(j, &m));
		vmmfs_journal_close(j);
		model_free(&m);
	}
}

/* The log is compacted when it grows: its size stays bounded by the state. */
static void test_auto_compaction(void)
{
	struct vmmfs_journal_stats st;
	struct vmmfs_journal *j;
	struct model m = { 0 };
	uint64_t seq, maxsize = 0;

	reset_files();
	j = jopen();
	vmmfs_journal_set_compact_min(j, 4096);
	op_vas_create(j, &m, "0");
	for (int k = 0; k < 1000; k++) {
		char name[32];

		snprintf(name, sizeof(name), "m%d", k % 7);
		if (model_map(&m, "0", name))
			seq = op_map_remove(j, &m, "0", name);
		else
			seq = op_map_add(j, &m, "0", name, 0x100000 * (uint64_t)(k % 7 + 1), 0,
					 (uint64_t)k, 3);
		CU_ASSERT_EQUAL(vmmfs_journal_sync(j, seq), 0);
		if (file_size(jpath) > maxsize)
			maxsize = file_size(jpath);
	}
	vmmfs_journal_get_stats(j, &st);
	CU_ASSERT_TRUE(st.compactions > 10);
	CU_ASSERT_TRUE(maxsize < 4096 + 200);
	CU_ASSERT_TRUE(st.syncs >= 1);
	vmmfs_journal_close(j);
	j = jopen();
	CU_ASSERT_TRUE(same_state(j, &m));
	vmmfs_journal_close(j);
	model_free(&m);
}

/* Many threads append and sync at once: every synced record is there. */
struct worker {
	struct vmmfs_journal *j;
	int id;
	int adds;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	char vas[16], name[32];
	int fails = 0;

	snprintf(vas, sizeof(vas), "w%d", w->id);
	for (int k = 0; k < 300; k++) {
		struct vmmfs_journal_run run = { (uint64_t)w->id << 20 | (uint64_t)k, 1 };
		struct vmmfs_journal_map jm = { vas, name, (uint64_t)k << 12, 1, 0, 1, &run };
		uint64_t seq;

		snprintf(name, sizeof(name), "m%d", k);
		if (vmmfs_journal_map_add(w->j, &jm, &seq) || vmmfs_journal_sync(w->j, seq))
			fails++;
		if (k % 3 == 0) {
			if (vmmfs_journal_map_remove(w->j, vas, name, &seq) ||
			    vmmfs_journal_sync(w->j, seq))
				fails++;
		} else {
			w->adds++;
		}
	}
	return (void *)(intptr_t)fails;
}

static void test_threads(void)
{
	struct vmmfs_journal_stats st;
	struct worker w[4];
	pthread_t t[4];
	struct vmmfs_journal *j;
	int total = 0;

	reset_files();
	j = jopen();
	vmmfs_journal_set_compact_min(j, 16384);
	for (int i = 0; i < 4; i++) {
		char vas[16];

		snprintf(vas, sizeof(vas), "w%d", i);
		CU_ASSERT_EQUAL(vmmfs_journal_vas_create(j, vas, NULL), 0);
		w[i] = (struct worker){ j, i, 0 };
		pthread_create(&t[i], NULL, worker_fn, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		VT_EQ_INT((intptr_t)ret, 0);
		total += w[i].adds;
	}
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.maps, total);
	vmmfs_journal_test_crash(j);
	j = jopen();
	vmmfs_journal_get_stats(j, &st);
	VT_EQ_U64(st.maps, total);
	VT_EQ_U64(st.vas, 4);
	vmmfs_journal_close(j);
}

/* Fail each allocation of an open (replay + compaction), then of appends:
 * a clean -ENOMEM, nothing leaked, state and file unchanged. */
static void test_failing_allocations(void)
{
	struct vmmfs_journal *j;
	struct model m = { 0 };
	long n, count;
	char *before;

	reset_files();
	j = jopen();
	run_scenario(j, &m, NULL);
	vmmfs_journal_close(j);

	vmmfs_journal_test_fail_alloc(-1);
	j = jopen();
	vmmfs_journal_close(j);
	count = vmmfs_journal_test_fail_alloc(-1);
	CU_ASSERT_TRUE(count > 10);
	for (n = 0; n < count; n++) {
		char err[256];
		int r;

		j = NULL;
		vmmfs_journal_test_fail_alloc(n);
		r = vmmfs_journal_open(jpath, IDENT, &j, err, sizeof(err));
		vmmfs_journal_test_fail_alloc(-1);
		if (r) {
			VT_EQ_INT(r, -ENOMEM);
			CU_ASSERT_PTR_NULL(j);
			continue;
		}
		/* a hash table that could not grow: still correct */
		CU_ASSERT_TRUE(same_state(j, &m));
		vmmfs_journal_close(j);
	}

	j = jopen();
	before = journal_dump(j);
	for (int op = 0; op < 3; op++) {
		for (n = 0; n < 8; n++) {
			static const struct vmmfs_journal_run run = { 0x500, 2 };
			struct vmmfs_journal_map jm = { "0", "fresh", 0x50000000, 2, 0, 1, &run };
			uint64_t size = file_size(jpath);
			char *now;
			int r;

			vmmfs_journal_test_fail_alloc(n);
			r = op == 0 ? vmmfs_journal_map_add(j, &jm, NULL) :
			    op == 1 ? vmmfs_journal_vas_create(j, "fresh", NULL) :
				      vmmfs_journal_map_rename(j, "0", "buffer", "buf2", NULL);
			vmmfs_journal_test_fail_alloc(-1);
			if (!r) {
				/* undo it, so that the next op starts alike */
				r = op == 0 ? vmmfs_journal_map_remove(j, "0", "fresh", NULL) :
				    op == 1 ? vmmfs_journal_vas_remove(j, "fresh", NULL) :
					      vmmfs_journal_map_rename(j, "0", "buf2", "buffer", NULL);
				CU_ASSERT_EQUAL(r, 0);
				break;
			}
			VT_EQ_INT(r, -ENOMEM);
			VT_EQ_U64(file_size(jpath), size);
			now = journal_dump(j);
			CU_ASSERT_STRING_EQUAL(now, before);
			free(now);
		}
		CU_ASSERT_TRUE(n > 0 && n < 8);
	}
	free(before);
	vmmfs_journal_close(j);
	model_free(&m);
}

/* ---- the library's side of a restore ----------------------------------
 *
 * vmmfs_gpu_vram_claim / unclaim / pin / unpin and VMMFS_MAP_CLAIM: what
 * the daemon uses to rebuild mappings with their own pages.
 */

#define R_VRAM (256ull << 20)
#define R_PAGES (R_VRAM >> 12)

static void usage_now(struct vmmfs_gpu *gpu, struct vmmfs_vram_usage *u)
{
	vmmfs_gpu_get_vram_usage(gpu, u);
}

static void check_vmm(struct vmmfs_vmm *vmm)
{
	char err[256] = "";
	int r = vmmfs_vmm_check(vmm, err, sizeof(err));

	if (r)
		fprintf(stderr, "  vmm check: %s\n", err);
	VT_EQ_INT(r, 0);
}

/* Claimed pages keep their data, become the mapping's, go back at unmap. */
static void test_claim_map(void)
{
	for (const char *const *chip = vt_chips; *chip; chip++) {
		int64_t live0 = vmmfs_mem_live();
		struct vmmfs_gpu *gpu = vt_open_sim(*chip, R_VRAM);
		struct vmmfs_va_placement pl = { VMMFS_VA_EXACT, 0x200000, 0, VMMFS_NO_PA_HINT };
		struct vmmfs_vram_usage u0, u;
		struct vmmfs_mapping_info mi;
		struct vmmfs_hw_translation hw;
		struct vmmfs_mapping *m = NULL, *other = NULL;
		struct vmmfs_vmm *vmm = NULL;
		unsigned char data[16 * 4096], back[sizeof(data)];
		uint64_t pfns[16];

		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (unsigned char)(i * 7 + 3);
		CU_ASSERT_EQUAL_FATAL(vmmfs_gpu_vram_write(gpu, 0x100ull << 12, data, sizeof(data)), 0);
		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm), 0);
		usage_now(gpu, &u0);

		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x100, 16), 0);
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages + 16);
		VT_EQ_U64(u.free_pages, u0.free_pages - 16);
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x108, 1), -EBUSY);   /* claimed already */
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x10, 0), -EINVAL);
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, R_PAGES - 1, 2), -ERANGE);
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, vmmfs_vmm_pdb(vmm) >> 12, 1), -EBUSY);

		for (int i = 0; i < 16; i++)
			pfns[i] = 0x100 + (uint64_t)i;
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pfns, 16, &pl, VMMFS_MAP_CLAIM, &m), 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		vmmfs_mapping_get_info(m, &mi);
		CU_ASSERT_TRUE(mi.allocated);
		VT_EQ_U64(mi.va, 0x200000);
		/* not zeroed: the data is what was there */
		VT_EQ_INT(vmmfs_vmm_mem_read(vmm, 0x200000, back, sizeof(back)), sizeof(back));
		CU_ASSERT_EQUAL(memcmp(back, data, sizeof(data)), 0);
		CU_ASSERT_EQUAL(vmmfs_gpu_hw_translate(gpu, vmmfs_vmm_pdb(vmm), 0x205000, &hw), 0);
		VT_EQ_INT(hw.result, VMMFS_HW_OK);
		VT_EQ_U64(hw.pa, 0x105000);
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages + 16);
		check_vmm(vmm);

		/* a claim that no map takes stays the caller's */
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x400, 4), 0);
		for (int i = 0; i < 4; i++)
			pfns[i] = 0x400 + (uint64_t)i;
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pfns, 4, &pl, VMMFS_MAP_CLAIM, &other), -EEXIST);
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages + 20);
		vmmfs_gpu_vram_unclaim(gpu, 0x400, 4);

		/* unmap gives the claimed pages back to the allocator */
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages);
		VT_EQ_U64(u.free_pages, u0.free_pages);
		VT_EQ_U64(u.mapped_pages, u0.mapped_pages);
		check_vmm(vmm);

		/* a page someone maps can be claimed (a share); an alloc= page
		 * cannot */
		pfns[0] = 0x300;
		pl.start = 0x400000;
		VT_EQ_INT(vmmfs_vmm_map_pages(vmm, pfns, 1, &pl, 0, &other), 0);
		VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, 0x300, 1), 0);
		vmmfs_gpu_vram_unclaim(gpu, 0x300, 1);
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, other), 0);
		pl.start = 0x800000;
		VT_EQ_INT(vmmfs_vmm_map_alloc(vmm, 4096, &pl, 0, &other), 0);
		{
			struct vmmfs_lookup lk;

			CU_ASSERT_EQUAL(vmmfs_vmm_lookup(vmm, 0x800000, &lk), 0);
			VT_EQ_INT(vmmfs_gpu_vram_claim(gpu, lk.pa >> 12, 1), -EBUSY);
		}
		VT_EQ_INT(vmmfs_vmm_unmap(vmm, other), 0);
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages);
		VT_EQ_U64(u.free_pages, u0.free_pages);

		vmmfs_vmm_destroy(vmm);
		vmmfs_gpu_close(gpu);
		VT_EQ_U64(vmmfs_mem_live(), live0);
	}
}

/* Pinned pages are never given to page tables: every table of address
 * spaces made afterwards lands elsewhere. */
static void test_pin(void)
{
	for (const char *const *chip = vt_chips; *chip; chip++) {
		int64_t live0 = vmmfs_mem_live();
		struct vmmfs_gpu *gpu = vt_open_sim(*chip, R_VRAM);
		struct vmmfs_va_placement pl = { VMMFS_VA_EXACT, 0, 0, VMMFS_NO_PA_HINT };
		struct vmmfs_vram_usage u0, u;
		struct vmmfs_vmm *vmm[4] = { 0 }, *first = NULL;
		struct vmmfs_mapping *m[4] = { 0 };
		uint64_t pinned = 0, pfn;

		CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &first), 0);
		VT_EQ_INT(vmmfs_gpu_vram_pin(gpu, vmmfs_vmm_pdb(first) >> 12, 1), -EACCES);
		VT_EQ_INT(vmmfs_gpu_vram_pin(gpu, R_PAGES, 1), -ERANGE);
		VT_EQ_INT(vmmfs_gpu_vram_pin(gpu, 5, 0), -EINVAL);
		usage_now(gpu, &u0);
		/* page tables come from the top: pin the 256 pages there */
		for (pfn = R_PAGES - 256; pfn < R_PAGES; pfn++)
			if (vmmfs_gpu_vram_pin(gpu, pfn, 1) == 0)
				pinned++;
		CU_ASSERT_TRUE(pinned >= 250);
		usage_now(gpu, &u);
		VT_EQ_U64(u.mapped_pages, u0.mapped_pages + pinned);
		for (int i = 0; i < 4; i++) {
			uint64_t pfns[1] = { 0x1000 + (uint64_t)i };

			CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm[i]), 0);
			CU_ASSERT_TRUE(vmmfs_vmm_pdb(vmm[i]) >> 12 < R_PAGES - 256);
			pl.start = (uint64_t)(i + 1) << 30;
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm[i], pfns, 1, &pl, 0, &m[i]), 0);
			check_vmm(vmm[i]);
		}
		/* no page table among the pinned pages: each is still mappable */
		for (pfn = R_PAGES - 256; pfn < R_PAGES; pfn++) {
			struct vmmfs_mapping *x = NULL;
			uint64_t p[1] = { pfn };

			if (vmmfs_gpu_vram_pin(gpu, pfn, 1))
				continue; /* a table from before the pins */
			vmmfs_gpu_vram_unpin(gpu, pfn, 1);
			pl.start = 0x100000000000ull;
			VT_EQ_INT(vmmfs_vmm_map_pages(vmm[0], p, 1, &pl, 0, &x), 0);
			if (x)
				vmmfs_vmm_unmap(vmm[0], x);
		}
		for (pfn = R_PAGES - 256; pfn < R_PAGES; pfn++)
			if (vmmfs_gpu_vram_pin(gpu, pfn, 1) == 0) {
				vmmfs_gpu_vram_unpin(gpu, pfn, 1);
				vmmfs_gpu_vram_unpin(gpu, pfn, 1);
			}
		for (int i = 0; i < 4; i++)
			vmmfs_vmm_destroy(vmm[i]);
		usage_now(gpu, &u);
		VT_EQ_U64(u.mapped_pages, u0.mapped_pages);
		VT_EQ_U64(u.pt_pages, u0.pt_pages);
		/* parked pages went back with their last reference */
		VT_EQ_U64(u.free_pages, u0.free_pages);
		vmmfs_vmm_destroy(first);
		vmmfs_gpu_close(gpu);
		VT_EQ_U64(vmmfs_mem_live(), live0);
	}
}

/* Every allocation of a claim and of a CLAIM map fails in turn: a clean
 * error, the pages and usage exactly as before. */
static void test_claim_failing_allocations(void)
{
	struct vmmfs_gpu *gpu = vt_open_sim("ga102", R_VRAM);
	struct vmmfs_va_placement pl = { VMMFS_VA_EXACT, 0x40000000, 0, VMMFS_NO_PA_HINT };
	struct vmmfs_vram_usage u0, u;
	struct vmmfs_vmm *vmm = NULL;
	uint64_t pfns[600];
	int done = 0;

	CU_ASSERT_EQUAL_FATAL(vmmfs_vmm_create(gpu, &vmm), 0);
	for (int i = 0; i < 600; i++)
		pfns[i] = 0x2000 + (uint64_t)i; /* crosses a 2 MiB boundary */
	usage_now(gpu, &u0);
	for (uint64_t n = 0; n < 200 && !done; n++) {
		struct vmmfs_mapping *m = NULL;
		int r;

		vmmfs_fault_reset();
		vmmfs_fault_fail_nth(n);
		r = vmmfs_gpu_vram_claim(gpu, 0x2000, 600);
		if (!r) {
			r = vmmfs_vmm_map_pages(vmm, pfns, 600, &pl, VMMFS_MAP_CLAIM, &m);
			if (r)
				vmmfs_gpu_vram_unclaim(gpu, 0x2000, 600);
		}
		vmmfs_fault_reset();
		if (!r) {
			struct vmmfs_mapping_info mi;

			vmmfs_mapping_get_info(m, &mi);
			CU_ASSERT_TRUE(mi.allocated);
			VT_EQ_INT(vmmfs_vmm_unmap(vmm, m), 0);
			done = 1;
		} else {
			VT_EQ_INT(r, -ENOMEM);
		}
		usage_now(gpu, &u);
		VT_EQ_U64(u.alloc_pages, u0.alloc_pages);
		VT_EQ_U64(u.free_pages, u0.free_pages);
		VT_EQ_U64(u.mapped_pages, u0.mapped_pages);
		check_vmm(vmm);
	}
	CU_ASSERT_TRUE(done);
	vmmfs_vmm_destroy(vmm);
	vmmfs_gpu_close(gpu);
}

static void register_tests(void)
{
	static const struct vt_test recovery_tests[] = {
		{ "claim_map", test_claim_map },
		{ "pin", test_pin },
		{ "claim_failing_allocations", test_claim_failing_allocations },
		{ NULL, NULL },
	};
	static const struct vt_test tests[] = {
		{ "crc32", test_crc32 },
		{ "round_trip", test_round_trip },
		{ "big_mapping", test_big_mapping },
		{ "checks", test_checks },
		{ "relative_path", test_relative_path },
		{ "fresh", test_fresh },
		{ "torn_last_record", test_torn_last_record },
		{ "bit_flips", test_bit_flips },
		{ "header", test_header },
		{ "exclusive", test_exclusive },
		{ "skip_nonsense", test_skip_nonsense },
		{ "compaction_steps", test_compaction_steps },
		{ "auto_compaction", test_auto_compaction },
		{ "threads", test_threads },
		{ "failing_allocations", test_failing_allocations },
		{ NULL, NULL },
	};
	CU_pSuite s = CU_add_suite("journal", suite_init, suite_fini);

	if (!s) {
		fprintf(stderr, "CU_add_suite(journal) failed\n");
		exit(2);
	}
	for (const struct vt_test *t = tests; t->name; t++)
		if (!CU_add_test(s, t->name, t->fn)) {
			fprintf(stderr, "CU_add_test(%s) failed\n", t->name);
			exit(2);
		}
	vt_add_suite("recovery_api", recovery_tests);
}

int main(int argc, char **argv)
{
	return vt_main(argc, argv, register_tests);
}
