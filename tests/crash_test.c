/* SPDX-License-Identifier: MIT */
/*
 * Crash consistency of `vmmfs --vram-file=PATH --state=PATH`: rounds of a
 * storm of maps (explicit PFNs and alloc=), unmaps, renames, mkdir, rmdir
 * and data writes from several processes, ended by `kill -9` of the daemon
 * at a random moment; then a restart with the same files and a check of
 * everything against the test's own record of what was acknowledged:
 *
 *   - every mapping whose close returned 0 (and that no acknowledged rm
 *     removed) is there, under its name, at its VA, with its PFNs and
 *     access, as the mapping file, vmmfs's walker (translate/) and the
 *     simulated GPU's own MMU (the hw lines of translate/) all say;
 *   - a mapping whose close had not returned is either all there or not at
 *     all: every page of its VA is translated;
 *   - a map that failed while the daemon was alive left nothing;
 *   - alloc= data written through mem (the write returned) is intact;
 *   - renames, mkdir and rmdir: acknowledged ones hold, one in flight
 *     shows either the old or the new state; nothing unknown appears;
 *   - vram/usage matches the mappings (alloc pages, mapped pages, page
 *     tables = the address spaces' own count) and every pagetable maps
 *     exactly the pages of the live mappings, with no table on a mapped
 *     page.
 * What a check finds becomes the record for the next round, which goes on
 * with the state the restart restored.
 *
 * Short by default (for make check); VMMFS_CRASH_ROUNDS=N runs N rounds
 * per chip. Seeds are printed per round (VMMFS_TEST_SEED reruns a series;
 * the kill moment makes each run differ anyway).
 *
 * Needs root, /dev/fuse and fusermount3, like fs_test. Every mount is
 * unmounted on the way out.
 */
#include "helper.h"
#include "fs_helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef VMMFS_BIN
#error "VMMFS_BIN must name the daemon binary"
#endif

#define VRAM_SIZE (256ull << 20)
#define VRAM_PAGES (VRAM_SIZE >> 12)
#define EXPLICIT_PAGES (VRAM_PAGES - 8192) /* page tables come from the top */
#define NW 3                 /* worker processes */
#define VAS_PER_W 5
#define MAXV (1 + NW * VAS_PER_W) /* [0] is "0", made by the daemon */
#define MAPS_PER_W 128
#define MAXM (NW * MAPS_PER_W)
#define MAXRUNS 64
#define LIVE_PER_W 24
#define NAMELEN 32

/* ---- small helpers (the shared ones are in fs_helper.h) --------------- */

/* A tiny PRNG per process (workers are forked from one state). */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

/* ---- the daemon (fs_helper.c does the process and mount work) -------- */

struct daemon {
	char dir[128];        /* holds mnt/, vram, state, stderr files */
	char mnt[160], vram[160], state[160];
	char err[192];
	const char *chip;
	pid_t pid;
	int runs;
};

static struct daemon *live_daemon;

static bool stderr_clean(const struct daemon *d)
{
	return fsh_stderr_clean(d->err);
}

/* Starts the daemon on d's files. compact: a small compaction threshold,
 * so that kills also meet compactions. */
static int daemon_spawn(struct daemon *d, bool compact)
{
	char sim[48], vs[48], vf[200], st[200];
	const char *argv[] = { VMMFS_BIN, "-f", sim, vs, vf, st, d->mnt, NULL };
	const char *const env[] = {
		compact ? "VMMFS_STATE_COMPACT_BYTES=8192" : "VMMFS_STATE_COMPACT_BYTES", NULL
	};

	snprintf(sim, sizeof(sim), "--sim=%s", d->chip);
	snprintf(vs, sizeof(vs), "--vram-size=%llu", (unsigned long long)VRAM_SIZE);
	snprintf(vf, sizeof(vf), "--vram-file=%s", d->vram);
	snprintf(st, sizeof(st), "--state=%s", d->state);
	snprintf(d->err, sizeof(d->err), "%s/stderr.%d", d->dir, d->runs++);
	d->pid = fsh_spawn(argv, d->err, env);
	if (d->pid < 0)
		return -1;
	live_daemon = d;
	return 0;
}

/* Starts the daemon and waits for the mount. */
static int daemon_start(struct daemon *d, bool compact)
{
	if (daemon_spawn(d, compact))
		return -1;
	return fsh_wait_mount(d->mnt, &d->pid, d->err, 60);
}

/* kill -9, then the dead mount goes. */
static void daemon_kill(struct daemon *d)
{
	int status;

	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
		d->pid = 0;
	}
	fsh_unmount(d->mnt);
}

/* Clean unmount; returns the exit status (-1: did not exit, or a signal). */
static int daemon_stop(struct daemon *d)
{
	int st;

	fsh_unmount(d->mnt);
	st = fsh_wait_exit(&d->pid, 60);
	if (st < 0)
		fsh_unmount(d->mnt);
	return st;
}

static void cleanup(void)
{
	if (live_daemon) {
		daemon_kill(live_daemon);
		live_daemon = NULL;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- the record of what was acknowledged ----------------------------- */

enum tstate {
	S_FREE = 0,   /* nothing (gone, or never made) */
	S_NEW,        /* being made: the call had not returned at the kill */
	S_LIVE,       /* made and acknowledged */
	S_FAILED,     /* refused while the daemon was alive: must not exist */
	S_RM,         /* being removed */
	S_MV,         /* being renamed to newname */
};

struct tvas {
	int state;
	int owner;    /* worker, -1 for "0" */
	char name[NAMELEN], newname[NAMELEN];
};

struct trun {
	uint64_t first, count;
};

struct tmap {
	int state, vas, owner;
	char name[NAMELEN], newname[NAMELEN];
	bool ro, alloc;
	bool va_known, pfns_known;
	bool overlap;           /* made on purpose over a live mapping's VA */
	int expect_err;         /* failure it must meet, 0 none */
	uint64_t va, npages;
	uint32_t nruns;
	struct trun runs[MAXRUNS];
	uint32_t pattern;       /* alloc data seed, 0 none */
	int data;               /* enum data */
};

enum data {
	D_ZERO = 0,   /* alloc=, never written: zero */
	D_PENDING,    /* a write was in flight at the kill: not checked */
	D_WRITTEN,    /* the write returned: the pattern */
	D_UNKNOWN,    /* after a D_PENDING: not checked any more */
};

struct shared {
	volatile int killed;
	struct tvas vas[MAXV];
	struct tmap maps[MAXM];
	uint64_t next_id[NW];
	uint64_t ops[NW], acks[NW];
	char error[NW][320];
};

static struct shared *sh;

static const char *vas_name(int v)
{
	return sh->vas[v].name;
}

static void map_path(char *buf, size_t len, const char *mnt, const struct tmap *m,
		     const char *name)
{
	snprintf(buf, len, "%s/vas/%s/maps/%s", mnt, vas_name(m->vas), name ? name : m->name);
}

static uint64_t run_pages(const struct tmap *m)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < m->nruns; i++)
		n += m->runs[i].count;
	return n;
}

/* PFN of page i of the mapping. */
static uint64_t map_pfn(const struct tmap *m, uint64_t i)
{
	for (uint32_t k = 0; k < m->nruns; k++) {
		if (i < m->runs[k].count)
			return m->runs[k].first + i;
		i -= m->runs[k].count;
	}
	return UINT64_MAX;
}

static unsigned char pattern_byte(uint32_t seed, uint64_t off)
{
	uint64_t x = (seed + off / 8) * 0x9e3779b97f4a7c15ull;

	return (unsigned char)(x >> (8 * (off % 8)));
}

/* "0x100-0x1ff 0x300" into runs; false if it does not fit. */
static bool parse_pfns(const char *s, struct trun *runs, uint32_t *nruns)
{
	char *end;

	*nruns = 0;
	while (*s) {
		uint64_t a, b;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		a = b = strtoull(s, &end, 0);
		if (end == s)
			return false;
		s = end;
		if (*s == '-') {
			b = strtoull(s + 1, &end, 0);
			s = end;
		}
		if (*nruns && runs[*nruns - 1].first + runs[*nruns - 1].count == a) {
			runs[*nruns - 1].count += b - a + 1;
			continue;
		}
		if (*nruns == MAXRUNS)
			return false;
		runs[(*nruns)++] = (struct trun){ a, b - a + 1 };
	}
	return true;
}

struct desc {
	uint64_t va, size, pages;
	char access[8], alloc[8];
	struct trun runs[MAXRUNS];
	uint32_t nruns;
	bool runs_ok;
};

static bool describe(const char *path, struct desc *d)
{
	char *t = slurp(path, NULL), pfns[8192];
	bool ok;

	memset(d, 0, sizeof(*d));
	if (!t)
		return false;
	ok = kv_u64(t, "va", &d->va) && kv_u64(t, "size", &d->size) &&
	     kv_u64(t, "pages", &d->pages) && kv_str(t, "access", d->access, sizeof(d->access)) &&
	     kv_str(t, "alloc", d->alloc, sizeof(d->alloc)) &&
	     kv_str(t, "pfns", pfns, sizeof(pfns));
	if (ok)
		d->runs_ok = parse_pfns(pfns, d->runs, &d->nruns);
	free(t);
	return ok;
}

/* ---- a worker ---------------------------------------------------------- */

struct worker {
	int w;
	uint64_t rng;
	const char *mnt;
};

__attribute__((format(printf, 2, 3)))
static void werr(struct worker *wk, const char *fmt, ...)
{
	va_list ap;

	if (sh->killed || sh->error[wk->w][0])
		return;
	va_start(ap, fmt);
	vsnprintf(sh->error[wk->w], sizeof(sh->error[0]), fmt, ap);
	va_end(ap);
}

/* Creates path, writes text, closes. 0 or the first errno. */
static int write_map(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644), e = 0;
	size_t len = strlen(text);

	if (fd < 0)
		return errno;
	if (write(fd, text, len) != (ssize_t)len)
		e = errno ? errno : EIO;
	if (close(fd) && !e)
		e = errno;
	return e;
}

static int pick_vas(struct worker *wk)
{
	int cand[VAS_PER_W + 1], n = 0;

	cand[n++] = 0;
	for (int v = 1 + wk->w * VAS_PER_W; v < 1 + (wk->w + 1) * VAS_PER_W; v++)
		if (sh->vas[v].state == S_LIVE)
			cand[n++] = v;
	return cand[rng_below(&wk->rng, (uint64_t)n)];
}

static struct tmap *pick_map(struct worker *wk, int state)
{
	int base = wk->w * MAPS_PER_W, n = 0, pick;

	for (int i = base; i < base + MAPS_PER_W; i++)
		n += sh->maps[i].state == state;
	if (!n)
		return NULL;
	pick = (int)rng_below(&wk->rng, (uint64_t)n);
	for (int i = base; i < base + MAPS_PER_W; i++)
		if (sh->maps[i].state == state && pick-- == 0)
			return &sh->maps[i];
	return NULL;
}

static int count_maps(struct worker *wk, int state)
{
	int base = wk->w * MAPS_PER_W, n = 0;

	for (int i = base; i < base + MAPS_PER_W; i++)
		n += sh->maps[i].state == state;
	return n;
}

/* VA slots: exact mappings of worker w at 16 GiB + w TiB + id * 4 MiB;
 * va=START-END placements in the upper half of that TiB, never met by an
 * exact one. */
static uint64_t exact_va(int w, uint64_t id)
{
	return (16ull << 30) + ((uint64_t)w << 40) + (id % (1ull << 17)) * (4ull << 20);
}

static uint64_t range_va(int w)
{
	return (16ull << 30) + ((uint64_t)w << 40) + (1ull << 39);
}

/* Learns what the VMM chose (VA, alloc= PFNs) from the description. */
static void learn(struct tmap *m, const char *path)
{
	struct desc d;

	if (!describe(path, &d))
		return;
	m->va = d.va;
	m->va_known = true;
	if (d.runs_ok && d.nruns) {
		memcpy(m->runs, d.runs, sizeof(d.runs));
		m->nruns = d.nruns;
		m->pfns_known = true;
	}
}

static void op_map(struct worker *wk)
{
	int base = wk->w * MAPS_PER_W, kind = (int)rng_below(&wk->rng, 100), r;
	struct tmap *m = NULL, *victim;
	char path[300], text[1024];
	size_t off = 0;
	uint64_t id;

	for (int i = base; i < base + MAPS_PER_W && !m; i++)
		if (sh->maps[i].state == S_FREE)
			m = &sh->maps[i];
	if (!m)
		return;
	memset(m, 0, sizeof(*m));
	id = sh->next_id[wk->w]++;
	m->owner = wk->w;
	m->vas = pick_vas(wk);
	snprintf(m->name, sizeof(m->name), "w%d_%llu", wk->w, (unsigned long long)id);
	m->va = exact_va(wk->w, id);
	m->va_known = true;
	m->ro = rng_below(&wk->rng, 4) == 0;

	if (kind < 35) {
		/* explicit PFNs, one run */
		uint64_t n = 1 + rng_below(&wk->rng, 32);

		m->runs[0] = (struct trun){ rng_below(&wk->rng, EXPLICIT_PAGES - n), n };
		m->nruns = 1;
	} else if (kind < 50) {
		/* explicit, scattered */
		m->nruns = 2 + (uint32_t)rng_below(&wk->rng, 3);
		for (uint32_t k = 0; k < m->nruns; k++)
			m->runs[k] = (struct trun){ rng_below(&wk->rng, EXPLICIT_PAGES - 8),
						    1 + rng_below(&wk->rng, 8) };
	} else if (kind < 56) {
		/* a 2 MiB page: 512 aligned PFNs at an aligned VA */
		m->runs[0] = (struct trun){ rng_below(&wk->rng, EXPLICIT_PAGES / 512) * 512, 512 };
		m->nruns = 1;
	} else if (kind < 62) {
		/* explicit, placed by the VMM inside a range */
		uint64_t n = 1 + rng_below(&wk->rng, 16);

		m->runs[0] = (struct trun){ rng_below(&wk->rng, EXPLICIT_PAGES - n), n };
		m->nruns = 1;
		m->va_known = false;
	} else if (kind < 92) {
		/* alloc= */
		m->alloc = true;
		m->npages = 1 + rng_below(&wk->rng, 64);
		m->pattern = rng_below(&wk->rng, 3) ? (uint32_t)rng_next(&wk->rng) | 1 : 0;
		if (m->ro)
			m->pattern = 0; /* nothing can be written through it */
	} else if (kind < 95 && (victim = pick_map(wk, S_LIVE)) && victim->va_known) {
		/* over a live mapping's VA: EEXIST */
		m->runs[0] = (struct trun){ 0x10, 1 };
		m->nruns = 1;
		m->va = victim->va;
		m->vas = victim->vas;
		m->overlap = true;
		m->expect_err = EEXIST;
	} else if (kind < 97) {
		/* a PFN beyond VRAM: ERANGE at the write */
		m->runs[0] = (struct trun){ VRAM_PAGES + rng_below(&wk->rng, 100), 1 };
		m->nruns = 1;
		m->expect_err = ERANGE;
	} else {
		/* the root page directory's page: EACCES at the close */
		char pdbp[300], *t;

		snprintf(pdbp, sizeof(pdbp), "%s/vas/%s/pdb", wk->mnt, vas_name(m->vas));
		t = slurp(pdbp, NULL);
		if (!t)
			return;
		m->runs[0] = (struct trun){ strtoull(t, NULL, 0) >> 12, 1 };
		m->nruns = 1;
		m->expect_err = EACCES;
		free(t);
	}
	if (!m->alloc) {
		/* as the description will show them: adjacent runs are one */
		uint32_t n = 0;

		for (uint32_t k = 0; k < m->nruns; k++) {
			if (n && m->runs[n - 1].first + m->runs[n - 1].count == m->runs[k].first)
				m->runs[n - 1].count += m->runs[k].count;
			else
				m->runs[n++] = m->runs[k];
		}
		m->nruns = n;
		m->npages = run_pages(m);
		m->pfns_known = true;
	}

	if (m->alloc)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "alloc=%lluK ",
					(unsigned long long)m->npages * 4);
	if (m->va_known)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "va=0x%llx ",
					(unsigned long long)m->va);
	else
		off += (size_t)snprintf(text + off, sizeof(text) - off, "va=0x%llx-0x%llx ",
					(unsigned long long)range_va(wk->w),
					(unsigned long long)(range_va(wk->w) + (1ull << 38)));
	if (m->ro)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "ro ");
	for (uint32_t k = 0; k < m->nruns && !m->alloc; k++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "0x%llx-0x%llx\n",
					(unsigned long long)m->runs[k].first,
					(unsigned long long)(m->runs[k].first + m->runs[k].count - 1));
	map_path(path, sizeof(path), wk->mnt, m, NULL);

	__atomic_store_n(&m->state, S_NEW, __ATOMIC_SEQ_CST);
	sh->ops[wk->w]++;
	r = write_map(path, text);
	if (r == 0 && !m->expect_err) {
		m->state = S_LIVE;
		sh->acks[wk->w]++;
	} else if (sh->killed) {
		return; /* unknown: the kill may have stopped it anywhere */
	} else if (r == m->expect_err || (r == EACCES && !m->alloc)) {
		/* refused (explicit PFNs may meet a page table): nothing made */
		m->state = S_FAILED;
		return;
	} else {
		m->state = r ? S_FAILED : S_LIVE;
		werr(wk, "%s: map '%s' returned %s, expected %s", path, text, strerror(r),
		     m->expect_err ? strerror(m->expect_err) : "success");
		return;
	}
	if (m->alloc || !m->va_known)
		learn(m, path);
	if (m->alloc && m->pattern && m->va_known) {
		char mem[300];
		size_t len = (size_t)m->npages * 4096;
		unsigned char *buf = malloc(len);
		int fd;

		for (size_t i = 0; i < len; i++)
			buf[i] = pattern_byte(m->pattern, i);
		snprintf(mem, sizeof(mem), "%s/vas/%s/mem", wk->mnt, vas_name(m->vas));
		m->data = D_PENDING;
		fd = open(mem, O_WRONLY);
		if (fd >= 0 && pwrite(fd, buf, len, (off_t)m->va) == (ssize_t)len)
			m->data = D_WRITTEN;
		else if (!sh->killed)
			werr(wk, "%s: writing %zu bytes at 0x%llx: %s", mem, len,
			     (unsigned long long)m->va, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(buf);
	}
}

static void op_rm(struct worker *wk)
{
	struct tmap *m = pick_map(wk, S_LIVE);
	char path[300];

	if (!m)
		return;
	map_path(path, sizeof(path), wk->mnt, m, NULL);
	m->state = S_RM;
	sh->ops[wk->w]++;
	if (unlink(path) == 0) {
		m->state = S_FREE;
		sh->acks[wk->w]++;
	} else if (!sh->killed) {
		m->state = S_LIVE;
		werr(wk, "rm %s: %s", path, strerror(errno));
	}
}

static void op_mv(struct worker *wk)
{
	struct tmap *m = pick_map(wk, S_LIVE);
	char from[300], to[300];

	if (!m)
		return;
	snprintf(m->newname, sizeof(m->newname), "w%d_%llu", wk->w,
		 (unsigned long long)sh->next_id[wk->w]++);
	map_path(from, sizeof(from), wk->mnt, m, NULL);
	map_path(to, sizeof(to), wk->mnt, m, m->newname);
	m->state = S_MV;
	sh->ops[wk->w]++;
	if (rename(from, to) == 0) {
		memcpy(m->name, m->newname, sizeof(m->name));
		m->state = S_LIVE;
		sh->acks[wk->w]++;
	} else if (!sh->killed) {
		m->state = S_LIVE;
		werr(wk, "mv %s %s: %s", from, to, strerror(errno));
	}
}

static bool vas_empty(int v)
{
	for (int i = 0; i < MAXM; i++)
		if (sh->maps[i].vas == v && sh->maps[i].state != S_FREE &&
		    sh->maps[i].state != S_FAILED)
			return false;
	return true;
}

static void op_vas(struct worker *wk)
{
	int base = 1 + wk->w * VAS_PER_W, v, what = (int)rng_below(&wk->rng, 3);
	char path[300], to[300];
	struct tvas *t;

	v = base + (int)rng_below(&wk->rng, VAS_PER_W);
	t = &sh->vas[v];
	snprintf(path, sizeof(path), "%s/vas/%s", wk->mnt, t->name);
	sh->ops[wk->w]++;
	if (t->state == S_FREE) {
		t->owner = wk->w;
		snprintf(t->name, sizeof(t->name), "w%dv%llu", wk->w,
			 (unsigned long long)sh->next_id[wk->w]++);
		snprintf(path, sizeof(path), "%s/vas/%s", wk->mnt, t->name);
		t->state = S_NEW;
		if (mkdir(path, 0755) == 0) {
			t->state = S_LIVE;
			sh->acks[wk->w]++;
		} else if (!sh->killed) {
			t->state = S_FREE;
			werr(wk, "mkdir %s: %s", path, strerror(errno));
		}
	} else if (t->state == S_LIVE && what == 0 && vas_empty(v)) {
		t->state = S_RM;
		if (rmdir(path) == 0) {
			t->state = S_FREE;
			sh->acks[wk->w]++;
			/* refused maps in it are nothing to check any more */
			for (int i = 0; i < MAXM; i++)
				if (sh->maps[i].vas == v && sh->maps[i].state == S_FAILED)
					sh->maps[i].state = S_FREE;
		} else if (!sh->killed) {
			t->state = S_LIVE;
			werr(wk, "rmdir %s: %s", path, strerror(errno));
		}
	} else if (t->state == S_LIVE && what == 1) {
		snprintf(t->newname, sizeof(t->newname), "w%dv%llu", wk->w,
			 (unsigned long long)sh->next_id[wk->w]++);
		snprintf(to, sizeof(to), "%s/vas/%s", wk->mnt, t->newname);
		t->state = S_MV;
		if (rename(path, to) == 0) {
			memcpy(t->name, t->newname, sizeof(t->name));
			t->state = S_LIVE;
			sh->acks[wk->w]++;
		} else if (!sh->killed) {
			t->state = S_LIVE;
			werr(wk, "mv %s %s: %s", path, to, strerror(errno));
		}
	} else if (t->state == S_LIVE && !vas_empty(v)) {
		/* not empty: ENOTEMPTY, and nothing changes */
		if (rmdir(path) == 0)
			werr(wk, "rmdir %s with mappings succeeded", path);
		else if (errno != ENOTEMPTY && !sh->killed)
			werr(wk, "rmdir %s with mappings: %s, expected ENOTEMPTY", path,
			     strerror(errno));
	}
}

static void worker_main(int w, uint64_t seed, const char *mnt)
{
	struct worker wk = { .w = w, .rng = seed ? seed : 1, .mnt = mnt };

	while (!sh->killed && !sh->error[w][0]) {
		unsigned int op = (unsigned int)rng_below(&wk.rng, 100);
		int live = count_maps(&wk, S_LIVE);

		if (op < 45 && live < LIVE_PER_W)
			op_map(&wk);
		else if (op < 75 || live >= LIVE_PER_W)
			op_rm(&wk);
		else if (op < 88)
			op_mv(&wk);
		else
			op_vas(&wk);
	}
	_exit(0);
}

/* ---- checking after a restart ---------------------------------------- */

struct checker {
	const char *mnt;
	int failures;
	uint64_t mapped_checked, absent_checked;
};

__attribute__((format(printf, 2, 3)))
static void fail(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failures++ >= 12)
		return;
	fprintf(stderr, "  FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

struct xlate {
	char state[32], access[8], hw[16], hw_access[8];
	uint64_t pa, hw_pa;
};

static bool translate(struct checker *c, const char *vas, uint64_t va, struct xlate *x)
{
	char path[300], *t;

	memset(x, 0, sizeof(*x));
	snprintf(path, sizeof(path), "%s/vas/%s/translate/0x%llx", c->mnt, vas,
		 (unsigned long long)va);
	t = slurp(path, NULL);
	if (!t) {
		fail(c, "%s: %s", path, strerror(errno));
		return false;
	}
	kv_str(t, "state", x->state, sizeof(x->state));
	kv_u64(t, "pa", &x->pa);
	kv_str(t, "access", x->access, sizeof(x->access));
	kv_str(t, "hw", x->hw, sizeof(x->hw));
	kv_u64(t, "hw_pa", &x->hw_pa);
	kv_str(t, "hw_access", x->hw_access, sizeof(x->hw_access));
	free(t);
	return true;
}

/* Every page of m (or a sample of big ones unless all) maps where m says,
 * for the walker and for the GPU's MMU. */
static void check_translation(struct checker *c, const struct tmap *m, bool all)
{
	const char *acc = m->ro ? "ro" : "rw";
	uint64_t step = !all && m->npages > 64 ? m->npages / 32 : 1;

	for (uint64_t i = 0; i < m->npages; i += step) {
		uint64_t va = m->va + i * 4096, pa = map_pfn(m, i) << 12;
		struct xlate x;

		if (!translate(c, vas_name(m->vas), va, &x))
			return;
		c->mapped_checked++;
		if (strcmp(x.state, "mapped") || x.pa != pa || strcmp(x.access, acc) ||
		    strcmp(x.hw, "mapped") || x.hw_pa != pa || strcmp(x.hw_access, acc)) {
			fail(c, "vas/%s/maps/%s page %llu (va 0x%llx): walker %s 0x%llx %s, gpu %s "
			     "0x%llx %s; expected 0x%llx %s", vas_name(m->vas), m->name,
			     (unsigned long long)i, (unsigned long long)va, x.state,
			     (unsigned long long)x.pa, x.access, x.hw, (unsigned long long)x.hw_pa,
			     x.hw_access, (unsigned long long)pa, acc);
			return;
		}
	}
}

/* Nothing of m's VA range is mapped: every page. */
static void check_absent(struct checker *c, const struct tmap *m)
{
	if (!m->va_known || m->overlap || !m->npages)
		return;
	for (uint64_t i = 0; i < m->npages; i++) {
		uint64_t va = m->va + i * 4096;
		struct xlate x;

		if (!translate(c, vas_name(m->vas), va, &x))
			return;
		c->absent_checked++;
		if (!strcmp(x.state, "mapped") || strcmp(x.hw, "fault")) {
			fail(c, "vas/%s: %s (not made or removed) left page %llu of %llu mapped at "
			     "va 0x%llx: walker %s, gpu %s", vas_name(m->vas), m->name,
			     (unsigned long long)i, (unsigned long long)m->npages,
			     (unsigned long long)va, x.state, x.hw);
			return;
		}
	}
}

static void check_data(struct checker *c, const struct tmap *m)
{
	size_t len = (size_t)m->npages * 4096;
	unsigned char *buf;
	char mem[300];
	int fd;

	if (!m->alloc || m->data == D_PENDING || m->data == D_UNKNOWN)
		return; /* a write in flight may have landed in part */
	buf = malloc(len);
	snprintf(mem, sizeof(mem), "%s/vas/%s/mem", c->mnt, vas_name(m->vas));
	fd = open(mem, O_RDONLY);
	if (fd < 0 || pread(fd, buf, len, (off_t)m->va) != (ssize_t)len) {
		fail(c, "%s: reading %zu bytes at 0x%llx: %s", mem, len, (unsigned long long)m->va,
		     strerror(errno));
	} else {
		for (size_t i = 0; i < len; i++) {
			unsigned char want = m->data == D_WRITTEN ? pattern_byte(m->pattern, i) : 0;

			if (buf[i] != want) {
				fail(c, "vas/%s/maps/%s: alloc= data at byte %zu is 0x%02x, expected "
				     "0x%02x (%s)", vas_name(m->vas), m->name, i, buf[i], want,
				     m->data == D_WRITTEN ? "written before the kill" : "never written: zero");
				break;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
}

/* m's file exists under name: compare its description with the record
 * (learning what the record did not know) and check the translation. */
static void check_present(struct checker *c, struct tmap *m, const char *name, bool all)
{
	char path[300];
	struct desc d;

	map_path(path, sizeof(path), c->mnt, m, name);
	if (!describe(path, &d)) {
		fail(c, "%s: no description: %s", path, strerror(errno));
		return;
	}
	if (m->va_known && d.va != m->va)
		fail(c, "%s: va 0x%llx, expected 0x%llx", path, (unsigned long long)d.va,
		     (unsigned long long)m->va);
	if (d.pages != m->npages || d.size != m->npages * 4096)
		fail(c, "%s: %llu pages (size 0x%llx), expected %llu", path,
		     (unsigned long long)d.pages, (unsigned long long)d.size,
		     (unsigned long long)m->npages);
	if (strcmp(d.access, m->ro ? "ro" : "rw"))
		fail(c, "%s: access %s, expected %s", path, d.access, m->ro ? "ro" : "rw");
	if (strcmp(d.alloc, m->alloc ? "yes" : "no"))
		fail(c, "%s: alloc %s, expected %s", path, d.alloc, m->alloc ? "yes" : "no");
	if (!d.runs_ok) {
		fail(c, "%s: pfns not readable", path);
		return;
	}
	if (m->pfns_known && (d.nruns != m->nruns || memcmp(d.runs, m->runs, d.nruns * sizeof(d.runs[0]))))
		fail(c, "%s: pfns start 0x%llx (%u runs), expected 0x%llx (%u runs)", path,
		     (unsigned long long)d.runs[0].first, d.nruns,
		     (unsigned long long)m->runs[0].first, m->nruns);
	m->va = d.va;
	m->va_known = true;
	memcpy(m->runs, d.runs, sizeof(d.runs));
	m->nruns = d.nruns;
	m->pfns_known = true;
	if (name != m->name)
		memcpy(m->name, name, NAMELEN);
	check_translation(c, m, all);
	check_data(c, m);
}

static bool in_list(char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], name)) {
			free(names[i]);
			names[i] = NULL;
			return true;
		}
	return false;
}

static size_t list_dir(const char *path, char ***out)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0, cap = 64;
	char **names = malloc(cap * sizeof(*names));

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap)
			names = realloc(names, (cap *= 2) * sizeof(*names));
		names[n++] = strdup(e->d_name);
	}
	if (d)
		closedir(d);
	*out = names;
	return n;
}

/* Address spaces: resolves what was in flight, reports the unexpected. */
static void check_vas(struct checker *c)
{
	char path[300], **names;
	size_t n;

	snprintf(path, sizeof(path), "%s/vas", c->mnt);
	n = list_dir(path, &names);
	for (int v = 0; v < MAXV; v++) {
		struct tvas *t = &sh->vas[v];
		bool a = t->state != S_FREE && in_list(names, n, t->name);
		bool b = t->state == S_MV && in_list(names, n, t->newname);

		switch (t->state) {
		case S_FREE:
			break;
		case S_LIVE:
			if (!a)
				fail(c, "vas/%s (acknowledged) is missing", t->name);
			break;
		case S_NEW:
		case S_RM:
			t->state = a ? S_LIVE : S_FREE;
			break;
		case S_MV:
			if (a == b)
				fail(c, "vas/%s being renamed to %s: %s", t->name, t->newname,
				     a ? "both names exist" : "neither name exists");
			if (b)
				memcpy(t->name, t->newname, NAMELEN);
			t->state = S_LIVE;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (names[i]) {
			fail(c, "vas/%s exists, but no one made it", names[i]);
			free(names[i]);
		}
	free(names);
}

static void check_maps(struct checker *c)
{
	char **names[MAXV] = { 0 };
	size_t counts[MAXV] = { 0 };

	for (int v = 0; v < MAXV; v++) {
		char path[300];

		if (sh->vas[v].state != S_LIVE)
			continue;
		snprintf(path, sizeof(path), "%s/vas/%s/maps", c->mnt, sh->vas[v].name);
		counts[v] = list_dir(path, &names[v]);
	}
	for (int i = 0; i < MAXM; i++) {
		struct tmap *m = &sh->maps[i];
		int v = m->vas;
		bool a, b;

		if (m->state == S_FREE)
			continue;
		if (m->state == S_FAILED && sh->vas[v].state != S_LIVE) {
			/* refused in an address space that went since */
			m->state = S_FREE;
			continue;
		}
		if (sh->vas[v].state != S_LIVE) {
			fail(c, "%s: its address space vas/%s is gone", m->name, sh->vas[v].name);
			m->state = S_FREE;
			continue;
		}
		a = in_list(names[v], counts[v], m->name);
		b = m->state == S_MV && in_list(names[v], counts[v], m->newname);
		switch (m->state) {
		case S_LIVE:
			if (!a) {
				fail(c, "vas/%s/maps/%s (acknowledged) is missing", vas_name(v), m->name);
				m->state = S_FREE;
			} else {
				check_present(c, m, m->name, false);
			}
			break;
		case S_FAILED:
			if (a)
				fail(c, "vas/%s/maps/%s was refused, yet it exists", vas_name(v), m->name);
			check_absent(c, m);
			m->state = S_FREE;
			break;
		case S_NEW:
		case S_RM:
			if (a) {
				check_present(c, m, m->name, true);
				m->state = S_LIVE;
			} else {
				check_absent(c, m);
				m->state = S_FREE;
			}
			break;
		case S_MV:
			if (a == b) {
				fail(c, "vas/%s/maps/%s being renamed to %s: %s", vas_name(v), m->name,
				     m->newname, a ? "both exist" : "neither exists");
				m->state = S_FREE;
				break;
			}
			check_present(c, m, b ? m->newname : m->name, false);
			m->state = S_LIVE;
			break;
		}
		if (m->data == D_PENDING)
			m->data = D_UNKNOWN;
	}
	for (int v = 0; v < MAXV; v++) {
		for (size_t k = 0; k < counts[v]; k++)
			if (names[v][k]) {
				fail(c, "vas/%s/maps/%s exists, but no one made it", vas_name(v),
				     names[v][k]);
				free(names[v][k]);
			}
		free(names[v]);
	}
}

/* ---- page tables and VRAM ------------------------------------------------ */

struct pagebit {
	uint64_t *words;   /* one bit per VRAM page */
};

static void bit_set(uint64_t *w, uint64_t i)
{
	w[i / 64] |= 1ull << (i % 64);
}

static bool bit_get(const uint64_t *w, uint64_t i)
{
	return w[i / 64] >> (i % 64) & 1;
}

/* The live mappings of one address space by VA, to look pages up. */
static const struct tmap *find_va(int v, uint64_t va, uint64_t *index)
{
	for (int i = 0; i < MAXM; i++) {
		const struct tmap *m = &sh->maps[i];

		if (m->state == S_LIVE && m->vas == v && va >= m->va && va < m->va + m->npages * 4096) {
			*index = (va - m->va) / 4096;
			return m;
		}
	}
	return NULL;
}

/* Every PTE line of the address space's pagetable maps pages of live
 * mappings, where they say; together they cover every page of them once;
 * no table sits on a mapped page. */
static void check_pagetable(struct checker *c, int v, const uint64_t *mapped, uint64_t *tables)
{
	char path[300], *t, *line;
	uint64_t covered = 0, expected = 0;

	for (int i = 0; i < MAXM; i++)
		if (sh->maps[i].state == S_LIVE && sh->maps[i].vas == v)
			expected += sh->maps[i].npages;
	snprintf(path, sizeof(path), "%s/vas/%s/pagetable", c->mnt, vas_name(v));
	t = slurp(path, NULL);
	if (!t) {
		fail(c, "%s: %s", path, strerror(errno));
		return;
	}
	for (line = t; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long long vf, vl, pf, pl, addr;
		char acc[8];
		const char *p = strstr(line, " va ");

		if (!p)
			continue;
		if (sscanf(p, " va %llx-%llx pa %llx-%llx %*s %7s", &vf, &vl, &pf, &pl, acc) == 5) {
			for (uint64_t va = vf; va <= vl && va >= vf; va += 4096) {
				uint64_t idx, pa = pf + (va - vf);
				const struct tmap *m = find_va(v, va, &idx);

				covered++;
				if (!m || map_pfn(m, idx) << 12 != pa || strcmp(acc, m->ro ? "ro" : "rw")) {
					fail(c, "%s: va 0x%llx -> 0x%llx %s, but %s", path,
					     (unsigned long long)va, (unsigned long long)pa, acc,
					     m ? "its mapping says otherwise" : "no live mapping has it");
					break;
				}
			}
		} else if (sscanf(p, " va %llx-%llx table %llx", &vf, &vl, &addr) == 3) {
			if (addr >> 12 < VRAM_PAGES) {
				if (bit_get(mapped, addr >> 12))
					fail(c, "%s: a table at 0x%llx, a mapped page", path, addr);
				bit_set(tables, addr >> 12);
			} else {
				fail(c, "%s: a table at 0x%llx, beyond VRAM", path, addr);
			}
		}
	}
	if (covered != expected)
		fail(c, "%s: PTEs map %llu pages, the live mappings have %llu", path,
		     (unsigned long long)covered, (unsigned long long)expected);
	free(t);
}

static void check_vram(struct checker *c)
{
	uint64_t words = (VRAM_PAGES + 63) / 64, distinct = 0, alloc = 0, vas_pt = 0, tables = 0;
	uint64_t *mapped = calloc(words, 8), *pt = calloc(words, 8), total = 0, freep = 0, ptp = 0;
	uint64_t mp = 0, ap = 0;
	char path[300], *t;

	for (int i = 0; i < MAXM; i++) {
		const struct tmap *m = &sh->maps[i];

		if (m->state != S_LIVE)
			continue;
		for (uint64_t k = 0; k < m->npages; k++) {
			uint64_t pfn = map_pfn(m, k);

			if (pfn < VRAM_PAGES && !bit_get(mapped, pfn)) {
				bit_set(mapped, pfn);
				distinct++;
			}
		}
		if (m->alloc)
			alloc += m->npages;
	}
	for (int v = 0; v < MAXV; v++) {
		uint64_t n = 0;

		if (sh->vas[v].state != S_LIVE)
			continue;
		check_pagetable(c, v, mapped, pt);
		snprintf(path, sizeof(path), "%s/vas/%s/stats", c->mnt, vas_name(v));
		t = slurp(path, NULL);
		if (t && kv_u64(t, "pt_pages", &n))
			vas_pt += n;
		free(t);
		snprintf(path, sizeof(path), "%s/vas/%s/pdb", c->mnt, vas_name(v));
		t = slurp(path, NULL);
		if (t) {
			uint64_t pdb = strtoull(t, NULL, 0);

			if (pdb >> 12 < VRAM_PAGES && bit_get(mapped, pdb >> 12))
				fail(c, "vas/%s: its root table 0x%llx is a mapped page", vas_name(v),
				     (unsigned long long)pdb);
			if (pdb >> 12 < VRAM_PAGES)
				bit_set(pt, pdb >> 12);
		}
		free(t);
	}
	for (uint64_t i = 0; i < words; i++)
		tables += (uint64_t)__builtin_popcountll(pt[i]);
	snprintf(path, sizeof(path), "%s/vram/usage", c->mnt);
	t = slurp(path, NULL);
	if (!t || !kv_u64(t, "total_pages", &total) || !kv_u64(t, "free_pages", &freep) ||
	    !kv_u64(t, "pt_pages", &ptp) || !kv_u64(t, "mapped_pages", &mp) ||
	    !kv_u64(t, "alloc_pages", &ap)) {
		fail(c, "%s: unreadable", path);
	} else {
		if (ap != alloc)
			fail(c, "vram/usage: alloc_pages %llu, the alloc= mappings have %llu",
			     (unsigned long long)ap, (unsigned long long)alloc);
		if (mp != distinct)
			fail(c, "vram/usage: mapped_pages %llu, the mappings use %llu distinct pages",
			     (unsigned long long)mp, (unsigned long long)distinct);
		if (ptp != vas_pt)
			fail(c, "vram/usage: pt_pages %llu, the address spaces hold %llu",
			     (unsigned long long)ptp, (unsigned long long)vas_pt);
		if (tables > ptp)
			fail(c, "vram/usage: %llu pages hold the tables the pagetables show, only %llu "
			     "are page tables", (unsigned long long)tables, (unsigned long long)ptp);
		/* what is neither free, nor a table, nor alloc= is parked:
		 * mapped pages kept out of the allocator */
		if (freep + ptp + ap > total || total - freep - ptp - ap > distinct)
			fail(c, "vram/usage: free %llu + page tables %llu + alloc %llu of %llu pages "
			     "leaves more than the %llu mapped pages parked", (unsigned long long)freep,
			     (unsigned long long)ptp, (unsigned long long)ap, (unsigned long long)total,
			     (unsigned long long)distinct);
	}
	free(t);
	free(mapped);
	free(pt);
}

static void check_all(struct checker *c)
{
	check_vas(c);
	check_maps(c);
	check_vram(c);
}

/* ---- the storm ---------------------------------------------------------- */

static unsigned int rounds_per_chip(void)
{
	const char *e = getenv("VMMFS_CRASH_ROUNDS");
	unsigned long n = e && *e ? strtoul(e, NULL, 10) : 0;

	return n ? (unsigned int)n : 5;
}

static void storm(const char *chip)
{
	struct daemon d = { .chip = chip };
	unsigned int rounds = rounds_per_chip();
	struct checker c = { 0 };
	uint64_t ops = 0, acks = 0;
	char cmd[300];
	int st;

	memset(sh, 0, sizeof(*sh));
	sh->vas[0] = (struct tvas){ .state = S_LIVE, .owner = -1, .name = "0" };
	snprintf(d.dir, sizeof(d.dir), "/tmp/vmmfs_crash_test.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(d.dir));
	snprintf(d.mnt, sizeof(d.mnt), "%s/mnt", d.dir);
	snprintf(d.vram, sizeof(d.vram), "%s/vram", d.dir);
	snprintf(d.state, sizeof(d.state), "%s/state", d.dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(d.mnt, 0755), 0);
	vt_seed(chip);

	for (unsigned int round = 0; round <= rounds && !c.failures; round++) {
		uint64_t seed = vt_rand();
		unsigned int kill_ms = 100 + (unsigned int)(seed % 1400);
		bool compact = seed >> 32 & 1;
		pid_t pids[NW];

		if (round > 0 && (seed >> 40) % 4 == 0) {
			/* killed while it restores (and compacts at open) */
			unsigned int early = (unsigned int)(seed >> 48) % 120;

			printf("  round %u: killed %u ms into a restart\n", round, early);
			if (!daemon_spawn(&d, compact)) {
				sleep_ms(early);
				daemon_kill(&d);
				if (!stderr_clean(&d))
					c.failures++;
			}
		}
		if (daemon_start(&d, compact)) {
			CU_FAIL("the daemon did not start on the files of the round before");
			break;
		}
		c.mnt = d.mnt;
		if (round > 0) {
			check_all(&c);
			if (c.failures) {
				fprintf(stderr, "  after the kill of round %u (seed %llu above)\n", round - 1,
					(unsigned long long)seed);
				break;
			}
		}
		if (round == rounds)
			break;
		printf("  round %u: seed %llu, kill after %u ms%s\n", round, (unsigned long long)seed,
		       kill_ms, compact ? ", compacting often" : "");
		fflush(stdout);
		sh->killed = 0;
		for (int w = 0; w < NW; w++) {
			pids[w] = fork();
			if (pids[w] == 0)
				worker_main(w, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(w + 1)), d.mnt);
		}
		sleep_ms(kill_ms);
		__atomic_store_n(&sh->killed, 1, __ATOMIC_SEQ_CST);
		daemon_kill(&d);
		for (int w = 0; w < NW; w++) {
			double end = now() + 30;

			while (waitpid(pids[w], &st, WNOHANG) == 0) {
				if (now() > end) {
					fprintf(stderr, "  worker %d hangs: killing it\n", w);
					kill(pids[w], SIGKILL);
				}
				sleep_ms(5);
			}
			if (sh->error[w][0]) {
				fprintf(stderr, "  FAIL: worker %d: %s\n", w, sh->error[w]);
				c.failures++;
			}
		}
		if (!stderr_clean(&d))
			c.failures++;
	}
	for (int w = 0; w < NW; w++) {
		ops += sh->ops[w];
		acks += sh->acks[w];
	}
	printf("  %s: %llu operations, %llu acknowledged; checked %llu mapped and %llu "
	       "unmapped pages\n", chip, (unsigned long long)ops, (unsigned long long)acks,
	       (unsigned long long)c.mapped_checked, (unsigned long long)c.absent_checked);
	if (!c.failures && d.pid > 0) {
		/* a clean unmount keeps the state too */
		st = daemon_stop(&d);
		if (st != 0)
			fprintf(stderr, "  vmmfs exited with %d after unmount\n", st);
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_TRUE(stderr_clean(&d));
		if (!daemon_start(&d, false)) {
			check_all(&c);
			CU_ASSERT_EQUAL(daemon_stop(&d), 0);
			CU_ASSERT_TRUE(stderr_clean(&d));
		} else {
			c.failures++;
		}
	}
	daemon_kill(&d);
	live_daemon = NULL;
	VT_EQ_INT(c.failures, 0);
	CU_ASSERT_TRUE(acks > 0);
	if (!c.failures) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "  could not remove %s\n", d.dir);
	} else {
		fprintf(stderr, "  files kept in %s\n", d.dir);
	}
}

static void test_storm_v2(void)
{
	storm("ga102");
}

static void test_storm_v3(void)
{
	storm("gh100");
}

/* Runs the daemon to completion; its exit status and output. */
static int run_daemon(const char *args, char *out, size_t outlen)
{
	return fsh_run_daemon(args, out, outlen);
}

/* What the daemon refuses, with a message that says why. */
static void test_refusals(void)
{
	struct daemon d = { .chip = "ga102" };
	char out[4096], args[1024], cmd[300];
	FILE *f;

	snprintf(d.dir, sizeof(d.dir), "/tmp/vmmfs_crash_test.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(d.dir));
	snprintf(d.mnt, sizeof(d.mnt), "%s/mnt", d.dir);
	snprintf(d.vram, sizeof(d.vram), "%s/vram", d.dir);
	snprintf(d.state, sizeof(d.state), "%s/state", d.dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(d.mnt, 0755), 0);

	/* --state without --vram-file */
	snprintf(args, sizeof(args), "-f --state=%s %s", d.state, d.mnt);
	CU_ASSERT_NOT_EQUAL(run_daemon(args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--vram-file"));
	CU_ASSERT_FALSE(exists(d.state));
	CU_ASSERT_FALSE(is_mounted(d.mnt));

	/* a state made on one chip, mounted with another */
	CU_ASSERT_EQUAL_FATAL(daemon_start(&d, false), 0);
	{
		char p[300];
		snprintf(p, sizeof(p), "%s/vas/0/maps/buf", d.mnt);
		f = fopen(p, "w");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("0x100-0x1ff\n", f);
		CU_ASSERT_EQUAL(fclose(f), 0);
	}
	CU_ASSERT_EQUAL(daemon_stop(&d), 0);
	snprintf(args, sizeof(args), "-f --sim=tu102 --vram-size=%llu --vram-file=%s --state=%s %s",
		 (unsigned long long)VRAM_SIZE, d.vram, d.state, d.mnt);
	CU_ASSERT_NOT_EQUAL(run_daemon(args, out, sizeof(out)), 0);
	if (!strstr(out, "another GPU"))
		fprintf(stderr, "  output: %s\n", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "another GPU"));
	CU_ASSERT_FALSE(is_mounted(d.mnt));

	/* garbage at the end (a torn write): mounts, drops it, keeps a copy */
	f = fopen(d.state, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("\x20\x00\x00\x00\x04\x00torn", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(daemon_start(&d, false), 0);
	{
		char p[300], *t;

		snprintf(p, sizeof(p), "%s/vas/0/maps/buf", d.mnt);
		CU_ASSERT_TRUE(exists(p));
		snprintf(p, sizeof(p), "%s/log", d.mnt);
		t = slurp(p, NULL);
		CU_ASSERT_PTR_NOT_NULL(t && strstr(t, "were dropped"));
		free(t);
		snprintf(p, sizeof(p), "%s.damaged", d.state);
		CU_ASSERT_TRUE(exists(p));
	}
	CU_ASSERT_EQUAL(daemon_stop(&d), 0);
	CU_ASSERT_TRUE(stderr_clean(&d));

	/* not a journal at all: refused, left alone */
	f = fopen(d.state, "w");
	fputs("my notes\n", f);
	fclose(f);
	snprintf(args, sizeof(args), "-f --sim=ga102 --vram-size=%llu --vram-file=%s --state=%s %s",
		 (unsigned long long)VRAM_SIZE, d.vram, d.state, d.mnt);
	CU_ASSERT_NOT_EQUAL(run_daemon(args, out, sizeof(out)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "vmmfs state journal"));
	f = fopen(d.state, "r");
	CU_ASSERT_PTR_NOT_NULL(f && fgets(out, sizeof(out), f) && !strcmp(out, "my notes\n"));
	if (f)
		fclose(f);

	daemon_kill(&d);
	live_daemon = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", d.dir);
}

static void register_tests(void)
{
	static const struct vt_test tests[] = {
		{ "refusals", test_refusals },
		{ "storm_mmu_v2", test_storm_v2 },
		{ "storm_mmu_v3", test_storm_v3 },
		{ NULL, NULL },
	};

	vt_add_suite("crash", tests);
}

int main(int argc, char **argv)
{
	int r = fsh_preflight("crash_test");

	if (r)
		return r;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	return vt_main(argc, argv, register_tests);
}
