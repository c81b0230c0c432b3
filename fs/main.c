/* SPDX-License-Identifier: MIT */
/*
 * vmmfs: mounts a GPU's virtual address spaces as files.
 *
 *   vmmfs [--sim[=CHIP]] [--vram-size=SIZE] [--vram-file=PATH [--state=PATH]] [FUSE options] MOUNTPOINT
 *   vmmfs --device=BDF --vram-range=START-END [--pci-access=METHOD[:PATH]] MOUNTPOINT
 *   vmmfs --list [--pci-access=METHOD[:PATH]]
 *
 * Every option also works as -o key=value (sim=, vram_size=, vram_file=,
 * state=, device=, vram_range=, pci_access=), so `mount -t fuse.vmmfs SOURCE DIR`
 * and fstab work; SOURCE is vmmfs, sim, sim:CHIP or none.
 */
#include "vmmfs_fs.h"
#include "journal.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct options {
	char *sim;          /* --sim=CHIP */
	int sim_flag;       /* --sim */
	char *vram_size;
	char *vram_file;
	char *state;
	char *device;
	char *vram_range;
	char *pci_access;
	int list;
	char *nonopt[3];    /* SOURCE and MOUNTPOINT */
	int nnonopt;
};

#define OPT(t, field) { t, offsetof(struct options, field), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("--sim=%s", sim), OPT("sim=%s", sim),
	OPT("--sim", sim_flag), OPT("sim", sim_flag),
	OPT("--vram-size=%s", vram_size), OPT("vram_size=%s", vram_size),
	OPT("--vram-file=%s", vram_file), OPT("vram_file=%s", vram_file),
	OPT("--state=%s", state), OPT("state=%s", state),
	OPT("--device=%s", device), OPT("device=%s", device),
	OPT("--vram-range=%s", vram_range), OPT("vram_range=%s", vram_range),
	OPT("--pci-access=%s", pci_access), OPT("pci_access=%s", pci_access),
	OPT("--list", list),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1; /* FUSE's own options */
	if (o->nnonopt == 2) {
		fprintf(stderr, "vmmfs: too many arguments ('%s'): give [SOURCE] MOUNTPOINT\n", arg);
		return -1;
	}
	o->nonopt[o->nnonopt] = strdup(arg);
	if (!o->nonopt[o->nnonopt])
		return -1;
	o->nnonopt++;
	return 0;
}

static void usage(const char *prog)
{
	const char *const *chip;

	printf("usage: %s [options] MOUNTPOINT\n"
	       "       %s --list [--pci-access=METHOD[:PATH]]\n"
	       "\n"
	       "Mounts a GPU's virtual address spaces as files (see vmmfs(8)).\n"
	       "\n"
	       "vmmfs options (each also as -o key=value, e.g. -o sim=tu102,vram_size=1G):\n"
	       "    --sim[=CHIP]           the simulated GPU (default); CHIP among:", prog, prog);
	for (chip = vmmfs_sim_chip_names(); chip && *chip; chip++)
		printf(" %s", *chip);
	printf("\n"
	       "    --vram-size=SIZE       simulated VRAM size, K/M/G suffixes (default: the board's)\n"
	       "    --vram-file=PATH       keep the simulated VRAM in this file\n"
	       "    --state=PATH           keep address spaces and mappings in this journal:\n"
	       "                           a restart (even after a crash) brings them back\n"
	       "                           (needs --vram-file)\n"
	       "    --device=BDF           a real GPU at this PCI address (e.g. 0000:65:00.0)\n"
	       "    --vram-range=START-END the VRAM vmmfs may use for page tables and alloc=\n"
	       "                           (required with --device), e.g. 1G-2G\n"
	       "    --pci-access=METHOD[:PATH]  libpci access method (e.g. linux-sysfs)\n"
	       "    --list                 list the NVIDIA GPUs libpci finds, then exit\n"
	       "    -h, --help             this help\n"
	       "    -V, --version          versions\n"
	       "\n"
	       "Request sizes (libfuse's connection options, e.g. -o max_write=N):\n"
	       "    -o max_write=N         largest write request in bytes (default 1048576,\n"
	       "                           which also lets reads of pagetable be 1 MiB)\n"
	       "    -o max_readahead=N     largest readahead of mapping files\n"
	       "One thread receives the requests and hands those that may take long to up\n"
	       "to 16 worker threads (-s: one thread for all); -o clone_fd and\n"
	       "-o max_idle_threads have no effect.\n"
	       "\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* "START-END", END exclusive, or inclusive when END+1 is page-aligned. */
static int parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	const char *dash = strchr(s, '-');
	int r;

	if (!dash)
		return -EINVAL;
	r = vmmfs_parse_size(s, (size_t)(dash - s), start);
	if (!r)
		r = vmmfs_parse_size(dash + 1, strlen(dash + 1), end);
	if (r)
		return r;
	if (*end % VMMFS_PAGE_SIZE && (*end + 1) % VMMFS_PAGE_SIZE == 0)
		(*end)++;
	if (*start % VMMFS_PAGE_SIZE || *end % VMMFS_PAGE_SIZE || *end <= *start)
		return -EINVAL;
	return 0;
}

/* SOURCE from mount(8): vmmfs, none, sim or sim:CHIP. */
static int apply_source(struct options *o, const char *src)
{
	if (!strcmp(src, "vmmfs") || !strcmp(src, "none") || !strcmp(src, "sim"))
		return 0;
	if (!strncmp(src, "sim:", 4) && src[4]) {
		if (!o->sim) {
			o->sim = strdup(src + 4);
			if (!o->sim)
				return -ENOMEM;
		}
		return 0;
	}
	fprintf(stderr, "vmmfs: unknown source '%s': use vmmfs, sim or sim:CHIP "
		"(a real GPU is -o device=BDF,vram_range=START-END)\n", src);
	return -EINVAL;
}

static int build_config(const struct options *o, struct vmmfs_gpu_config *cfg)
{
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (o->state && (o->device || !o->vram_file)) {
		fprintf(stderr, "vmmfs: --state=%s needs the simulated GPU with --vram-file=PATH: "
			"the mappings it records point into VRAM, which must survive a restart "
			"too\n", o->state);
		return -EINVAL;
	}
	if (o->vram_range) {
		r = parse_range(o->vram_range, &cfg->vram_start, &cfg->vram_end);
		if (r) {
			fprintf(stderr, "vmmfs: --vram-range=%s: expected START-END, 4 KiB-aligned, "
				"START below END (e.g. 1G-2G)\n", o->vram_range);
			return r;
		}
	}
	if (o->device) {
		if (o->sim || o->sim_flag || o->vram_size || o->vram_file) {
			fprintf(stderr, "vmmfs: --device drives a real GPU: --sim, --vram-size and "
				"--vram-file do not apply\n");
			return -EINVAL;
		}
		if (!o->vram_range) {
			fprintf(stderr, "vmmfs: --device=%s needs --vram-range=START-END: the part "
				"of VRAM vmmfs may use for page tables and alloc= (keep it clear of "
				"what the GPU's firmware and display use)\n", o->device);
			return -EINVAL;
		}
		cfg->backend = VMMFS_BACKEND_PCI;
		cfg->device = o->device;
		cfg->pci_access = o->pci_access;
		return 0;
	}
	cfg->backend = VMMFS_BACKEND_SIM;
	cfg->chip = o->sim;
	cfg->vram_file = o->vram_file;
	if (o->vram_size) {
		r = vmmfs_parse_size(o->vram_size, strlen(o->vram_size), &cfg->vram_size);
		if (r || !cfg->vram_size) {
			fprintf(stderr, "vmmfs: --vram-size=%s: expected a size such as 4G, 512M "
				"or 0x40000000\n", o->vram_size);
			return -EINVAL;
		}
	}
	return 0;
}

static int do_list(const struct options *o)
{
	char *text = NULL;
	int r = vmmfs_pci_list(o->pci_access, &text);

	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "vmmfs: --list needs libpci; this vmmfs was built without it\n");
		free(text);
		return 1;
	}
	if (text)
		fputs(text, r < 0 ? stderr : stdout);
	free(text);
	if (r < 0) {
		fprintf(stderr, "vmmfs: --list failed: %s\n", strerror(-r));
		return 1;
	}
	if (r == 0 && (!text || !text[0]))
		printf("no NVIDIA GPU found\n");
	return 0;
}

static void free_options(struct options *o)
{
	int i;

	free(o->sim);
	free(o->vram_size);
	free(o->vram_file);
	free(o->state);
	free(o->device);
	free(o->vram_range);
	free(o->pci_access);
	for (i = 0; i < o->nnonopt; i++)
		free(o->nonopt[i]);
}

/* ---- the request loop ------------------------------------------------
 *
 * One thread receives every request and handles it at once unless it may
 * take long or wait (reads of streams, mem and vram/raw, writes to those,
 * commits and removals of big mappings, rmdir: fs_request_is_slow): those
 * go to a pool of worker threads, copied, or when big (a write of up to
 * 1 MiB to mem or vram/raw) in the receive buffer itself, the loop going
 * on in a spare buffer (or a new one from libfuse). Small operations, a
 * few requests each, so never wake a second thread: on a loaded machine a
 * wake-up per request costs more than the request. Nothing a worker waits
 * for needs the receiving thread to be free: stream producers let go of
 * what they hold when anyone else needs it (fs_gate_enter).
 */

#define LOOP_MAX_WORKERS 16
#define LOOP_HANDOVER_MIN (64u << 10) /* requests handed over without a copy */
#define LOOP_MAX_SPARES 4            /* receive buffers kept for reuse */

struct loop_job {
	struct loop_job *next;
	struct fuse_buf buf;
	bool handed_over;            /* buf.mem is a receive buffer */
};

struct loop {
	struct fuse_session *se;
	struct vmmfs_fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct loop_job *head, *tail;
	unsigned int queued;         /* jobs not taken yet */
	unsigned int idle;           /* workers waiting for one */
	bool exiting;
	pthread_t threads[LOOP_MAX_WORKERS];
	unsigned int nthreads;
	void *spares[LOOP_MAX_SPARES]; /* receive buffers handed back by workers */
	unsigned int nspares;
};

static void *loop_worker(void *arg)
{
	struct loop *l = arg;
	struct loop_job *j;

	for (;;) {
		pthread_mutex_lock(&l->lock);
		while (!l->head && !l->exiting) {
			l->idle++;
			pthread_cond_wait(&l->cond, &l->lock);
			l->idle--;
		}
		j = l->head;
		if (j) {
			l->head = j->next;
			if (!l->head)
				l->tail = NULL;
			l->queued--;
		}
		pthread_mutex_unlock(&l->lock);
		if (!j)
			return NULL;
		fuse_session_process_buf(l->se, &j->buf);
		if (j->handed_over) {
			pthread_mutex_lock(&l->lock);
			if (l->nspares < LOOP_MAX_SPARES) {
				l->spares[l->nspares++] = j->buf.mem;
				j->buf.mem = NULL;
			}
			pthread_mutex_unlock(&l->lock);
		}
		free(j->buf.mem);
		free(j);
	}
}

/* Hands the request to a worker: a copy, or buf->mem itself when big (buf
 * then gets a spare buffer, or NULL for libfuse to allocate one). False if
 * that cannot be done (no memory, no thread): the caller handles it itself,
 * in buf as it was. */
static bool loop_dispatch(struct loop *l, struct fuse_buf *buf, size_t size)
{
	struct loop_job *j = malloc(sizeof(*j));
	bool ok = true;

	if (!j)
		return false;
	memset(j, 0, sizeof(*j));
	j->buf.size = size;
	if (size >= LOOP_HANDOVER_MIN) {
		j->buf.mem = buf->mem;
		j->handed_over = true;
	} else {
		j->buf.mem = malloc(size);
		if (!j->buf.mem) {
			free(j);
			return false;
		}
		memcpy(j->buf.mem, buf->mem, size);
	}
	pthread_mutex_lock(&l->lock);
	/* a worker for every job waiting, up to the limit */
	if (l->queued + 1 > l->idle) {
		if (l->nthreads < LOOP_MAX_WORKERS &&
		    !pthread_create(&l->threads[l->nthreads], NULL, loop_worker, l))
			l->nthreads++;
		else if (!l->nthreads)
			ok = false;
	}
	if (ok) {
		if (l->tail)
			l->tail->next = j;
		else
			l->head = j;
		l->tail = j;
		l->queued++;
		if (j->handed_over)
			buf->mem = l->nspares ? l->spares[--l->nspares] : NULL;
		pthread_cond_signal(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
	if (!ok) {
		if (!j->handed_over)
			free(j->buf.mem);
		free(j);
	}
	return ok;
}

/* Runs until unmount or a signal. Returns 0, or a positive errno. */
static int loop_run(struct fuse_session *se, struct vmmfs_fs *fs)
{
	struct loop l;
	struct fuse_buf fbuf = { .mem = NULL };
	unsigned int i;
	int res = 0;

	memset(&l, 0, sizeof(l));
	l.se = se;
	l.fs = fs;
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	while (!fuse_session_exited(se)) {
		res = fuse_session_receive_buf(se, &fbuf);
		if (res == -EINTR)
			continue;
		if (res <= 0)
			break; /* 0: unmounted */
		if (!(fbuf.flags & FUSE_BUF_IS_FD) &&
		    fs_request_is_slow(fs, fbuf.mem, (size_t)res) &&
		    loop_dispatch(&l, &fbuf, (size_t)res))
			continue;
		fuse_session_process_buf(se, &fbuf);
	}
	free(fbuf.mem);
	pthread_mutex_lock(&l.lock);
	l.exiting = true;
	pthread_cond_broadcast(&l.cond);
	pthread_mutex_unlock(&l.lock);
	for (i = 0; i < l.nthreads; i++)
		pthread_join(l.threads[i], NULL);
	for (i = 0; i < l.nspares; i++)
		free(l.spares[i]);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
	fuse_session_reset(se);
	return res < 0 ? -res : 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct options o = { 0 };
	struct vmmfs_gpu_config cfg;
	struct vmmfs_gpu *gpu = NULL;
	struct vmmfs_journal *jnl = NULL;
	struct fuse_session *se;
	struct vmmfs_fs fs;
	char err[1024] = "";
	int ret = 1, r;

#ifdef M_MMAP_THRESHOLD
	/* Big buffers (a mapping's PFN array, the parser's runs) go back to
	 * the system when freed, rather than staying in the heap: the
	 * daemon's memory does not keep what a large map needed once. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
	if (fuse_opt_parse(&args, &o, option_spec, opt_proc) == -1)
		goto out_args;
	if (o.nnonopt == 2 && apply_source(&o, o.nonopt[0]))
		goto out_args;
	if (o.nnonopt && fuse_opt_add_arg(&args, o.nonopt[o.nnonopt - 1]))
		goto out_args;
	if (fuse_parse_cmdline(&args, &cmd))
		goto out_args;
	if (cmd.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_cmd;
	}
	if (cmd.show_version) {
		printf("vmmfs %s\nFUSE library %s (API %d)\n", VMMFS_VERSION_STRING,
		       fuse_pkgversion(), fuse_version());
		fuse_lowlevel_version();
		ret = 0;
		goto out_cmd;
	}
	if (o.list) {
		ret = do_list(&o);
		goto out_cmd;
	}
	if (!cmd.mountpoint) {
		fprintf(stderr, "usage: %s [options] MOUNTPOINT (try --help)\n", argv[0]);
		goto out_cmd;
	}
	if (build_config(&o, &cfg))
		goto out_cmd;

	if (cmd.debug)
		vmmfs_log_set_stderr_level(VMMFS_LOG_DEBUG);
	r = vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err));
	if (r) {
		fprintf(stderr, "vmmfs: cannot open the GPU: %s\n", err[0] ? err : strerror(-r));
		goto out_cmd;
	}
	if (o.state) {
		char ident[VMMFS_JOURNAL_MAX_IDENT + 1];
		const char *min = getenv("VMMFS_STATE_COMPACT_BYTES");

		fs_state_ident(vmmfs_gpu_get_info(gpu), ident, sizeof(ident));
		r = vmmfs_journal_open(o.state, ident, &jnl, err, sizeof(err));
		if (r) {
			fprintf(stderr, "vmmfs: --state=%s: %s\n", o.state, err);
			goto out_gpu;
		}
		if (min && *min)
			vmmfs_journal_set_compact_min(jnl, strtoull(min, NULL, 0));
	}
	r = fs_init(&fs, gpu, jnl, err, sizeof(err));
	if (r) {
		if (jnl)
			fprintf(stderr, "vmmfs: --state=%s: %s; the journal is left as it was (move "
				"it away to start with an empty state)\n", o.state, err);
		else
			fprintf(stderr, "vmmfs: cannot set up the file tree: %s\n", err);
		goto out_journal;
	}

	/* -o max_write=N, -o max_readahead=N and the other connection
	 * options of libfuse (applied in init) */
	fs.conn_opts = fuse_parse_conn_info_opts(&args);
	if (!fs.conn_opts)
		goto out_fs;
	/* Permissions are checked by the daemon (ops.c), which can then log
	 * every refusal: no default_permissions, which would have the kernel
	 * refuse silently (and ask for a directory's attributes before each
	 * create and unlink). allow_other only when asked (-o allow_other). */
	if (fuse_opt_insert_arg(&args, 1, "-ofsname=vmmfs"))
		goto out_fs;
	se = fuse_session_new(&args, &vmmfs_oper, sizeof(vmmfs_oper), &fs);
	if (!se)
		goto out_fs;
	fs.se = se;
	if (fuse_set_signal_handlers(se))
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint))
		goto out_signals;
	vmmfs_log(VMMFS_LOG_INFO, "mounted %s (%s, %s) on %s", fs.info->chipset, fs.info->arch,
		  fs.info->backend, cmd.mountpoint);
	fuse_daemonize(cmd.foreground);

	if (cmd.singlethread)
		r = fuse_session_loop(se); /* -s: everything in one thread */
	else
		r = loop_run(se, &fs);
	/* unmounted (0), or stopped by SIGTERM, SIGINT or SIGHUP: both clean */
	ret = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? 0 : 1;
	if (ret)
		fprintf(stderr, "vmmfs: the FUSE loop failed: %s\n", strerror(r < 0 ? -r : r));
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	free(fs.conn_opts);
	fs_handles_free(&fs);
	fs_fini(&fs);
out_journal:
	vmmfs_journal_close(jnl);
out_gpu:
	vmmfs_gpu_close(gpu);
out_cmd:
	free(cmd.mountpoint);
out_args:
	fuse_opt_free_args(&args);
	free_options(&o);
	return ret;
}
