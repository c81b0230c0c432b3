/* SPDX-License-Identifier: MIT */
/*
 * Permissions of a mount (issue 7), checked as a real unprivileged user.
 *
 * The test creates a system user of its own (vmmfs-t<pid>: useradd
 * --system, no home, nologin shell), removes it on the way out (userdel,
 * failure or not), and runs every operation of that user in a forked child
 * that drops to it with setgroups(0)/setresgid/setresuid.
 *
 *  - Mounted by root with -o allow_other: the user reads gpu/, README,
 *    vram/usage, stats, log, vas/N/stats, pagetable, pdb, translate/ and
 *    mapping descriptions (the same bytes root reads), lists the
 *    directories; and cannot map (create in maps/), write to a mapping,
 *    truncate, rename or remove one, mkdir/rmdir/rename an address space,
 *    or open vram/raw or vas/N/mem in any mode: exact errno each time.
 *    Each refusal adds exactly one line to the log, naming the path, the
 *    action, the uid and the errno; reads add none. Afterwards nothing
 *    else changed: stats, usage, pagetable, listings, descriptions,
 *    translations.
 *  - access(2), which the kernel forwards to the daemon: R_OK, W_OK, X_OK
 *    as the user and as root, by the modes (root: any read or write, and
 *    execute only where an x bit is set or on a directory); never logged.
 *  - Group bits: a mapping file root made 0640 is refused to the user,
 *    and readable once the user has root's group as a supplementary one.
 *  - Without allow_other the user sees nothing: stat of the mountpoint,
 *    readdir, open of any file fail with EACCES, while the folder around
 *    the mountpoint stays reachable (so the refusal is the mount's).
 *
 * Who refuses: with allow_other, the daemon (it mounts without
 * default_permissions and checks the modes itself: maps/ and vas/ are
 * 0755 and root's, mapping files 0644, mem and vram/raw 0600), so it logs
 * each refusal (vmmfs(8), PERMISSIONS); without allow_other, the kernel
 * refuses every request of another user, which never reaches the daemon:
 * the log does not change at all.
 *
 * Needs root (to mount, to create the user and to change to it), /dev/fuse
 * and fusermount3; without them the test FAILS with the reason, unless
 * VMMFS_ALLOW_SKIP_FS=1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "helper.h"
#include "fs_helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VMMFS_BIN
#error "VMMFS_BIN must name the daemon binary"
#endif

static char user[32];      /* the test's own user, "" when not made */
static uid_t user_uid;
static gid_t user_gid;
static struct mnt amnt;    /* mounted with -o allow_other */
static struct mnt pmnt;    /* mounted without */
static int user_in_root_group; /* the child also has group 0 as a supplementary group */

/* ---- the user -------------------------------------------------------- */

static void user_remove(void)
{
	char cmd[128];

	if (!user[0])
		return;
	snprintf(cmd, sizeof(cmd), "userdel '%s' >/dev/null 2>&1", user);
	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove the user %s (userdel %s)\n", user, user);
	user[0] = '\0';
}

/* Creates the user; 0, or -1 with the reason printed. */
static int user_create(void)
{
	char cmd[256];
	struct passwd *pw;

	snprintf(user, sizeof(user), "vmmfs-t%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "useradd --system --no-create-home --shell /usr/sbin/nologin "
		 "'%s'", user);
	if (system(cmd) != 0) {
		fprintf(stderr, "FAIL: perm_test could not create the user %s (%s)\n", user, cmd);
		user[0] = '\0';
		return -1;
	}
	pw = getpwnam(user);
	if (!pw || pw->pw_uid == 0) {
		fprintf(stderr, "FAIL: perm_test: the user %s has no usable uid\n", user);
		user_remove();
		return -1;
	}
	user_uid = pw->pw_uid;
	user_gid = pw->pw_gid;
	return 0;
}

/* ---- operations as that user ----------------------------------------- */

enum uop_kind {
	U_READ,      /* open O_RDONLY and read all: data */
	U_OPEN,      /* open(flags, 0644) then close */
	U_WRITE,     /* open(flags, 0644), write text, close */
	U_PREAD,     /* open(flags), pread 16 bytes at off */
	U_STAT,
	U_READDIR,   /* names, space-separated: data */
	U_UNLINK,
	U_MKDIR,
	U_RMDIR,
	U_RENAME,    /* path -> path2 */
	U_TRUNCATE,
	U_CHMOD,     /* mode */
	U_LINK,      /* path -> path2 */
	U_SYMLINK,   /* path2 -> "target" */
	U_MKNOD,
	U_ACCESS,    /* access(path, mode) */
};

struct uop {
	enum uop_kind kind;
	const char *path, *path2, *text;
	int flags;
	mode_t mode;
	off_t off;
};

struct ures {
	long ret;          /* 0 or bytes: success; -1: failed with err */
	int err;
	char stage[8];     /* U_WRITE: "open", "write", "close" */
	size_t len;
	char data[8192];
};

static void uop_run(const struct uop *op, struct ures *r)
{
	char buf[64];
	struct stat st;
	ssize_t n;
	int fd;

	r->ret = 0;
	switch (op->kind) {
	case U_READ:
		fd = open(op->path, O_RDONLY);
		if (fd < 0)
			goto fail;
		while ((n = read(fd, r->data + r->len, sizeof(r->data) - 1 - r->len)) > 0)
			r->len += (size_t)n;
		if (n < 0) {
			r->err = errno;
			close(fd);
			r->ret = -1;
			return;
		}
		close(fd);
		r->ret = (long)r->len;
		return;
	case U_OPEN:
		fd = open(op->path, op->flags, 0644);
		if (fd < 0)
			goto fail;
		close(fd);
		return;
	case U_WRITE:
		strcpy(r->stage, "open");
		fd = open(op->path, op->flags, 0644);
		if (fd < 0)
			goto fail;
		strcpy(r->stage, "write");
		if (write(fd, op->text, strlen(op->text)) < 0) {
			r->err = errno;
			close(fd);
			r->ret = -1;
			return;
		}
		strcpy(r->stage, "close");
		if (close(fd))
			goto fail;
		return;
	case U_PREAD:
		fd = open(op->path, op->flags);
		if (fd < 0)
			goto fail;
		n = pread(fd, buf, 16, op->off);
		if (n < 0) {
			r->err = errno;
			close(fd);
			r->ret = -1;
			return;
		}
		close(fd);
		r->ret = n;
		return;
	case U_STAT:
		if (stat(op->path, &st))
			goto fail;
		return;
	case U_READDIR: {
		DIR *d = opendir(op->path);
		struct dirent *de;

		if (!d)
			goto fail;
		errno = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r->len += (size_t)snprintf(r->data + r->len, sizeof(r->data) - r->len,
						   "%s ", de->d_name);
			if (r->len >= sizeof(r->data))
				r->len = sizeof(r->data) - 1;
		}
		r->err = errno;
		r->ret = r->err ? -1 : 0;
		closedir(d);
		return;
	}
	case U_UNLINK:
		if (unlink(op->path))
			goto fail;
		return;
	case U_MKDIR:
		if (mkdir(op->path, 0755))
			goto fail;
		return;
	case U_RMDIR:
		if (rmdir(op->path))
			goto fail;
		return;
	case U_RENAME:
		if (rename(op->path, op->path2))
			goto fail;
		return;
	case U_TRUNCATE:
		if (truncate(op->path, 0))
			goto fail;
		return;
	case U_CHMOD:
		if (chmod(op->path, op->mode))
			goto fail;
		return;
	case U_LINK:
		if (link(op->path, op->path2))
			goto fail;
		return;
	case U_SYMLINK:
		if (symlink("target", op->path2))
			goto fail;
		return;
	case U_MKNOD:
		if (mknod(op->path, S_IFREG | 0644, 0))
			goto fail;
		return;
	case U_ACCESS:
		if (access(op->path, (int)op->mode))
			goto fail;
		return;
	}
	r->ret = -1;
	r->err = ENOSYS; /* an unknown kind is a bug of the test */
	return;
fail:
	r->err = errno;
	r->ret = -1;
}

/* Runs op in a child that is the test's user. Returns false (the reason
 * printed) if the child could not become the user or report. */
static bool as_user(const struct uop *op, struct ures *r)
{
	int pfd[2], st;
	pid_t pid;
	size_t got = 0;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if (pipe(pfd))
		return false;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return false;
	}
	if (pid == 0) {
		struct ures res;
		size_t off = 0;

		close(pfd[0]);
		memset(&res, 0, sizeof(res));
		gid_t root_group = 0;

		if (setgroups(user_in_root_group ? 1 : 0, &root_group) ||
		    setresgid(user_gid, user_gid, user_gid) ||
		    setresuid(user_uid, user_uid, user_uid) || geteuid() != user_uid ||
		    getegid() != user_gid)
			_exit(3);
		uop_run(op, &res);
		while (off < sizeof(res)) {
			n = write(pfd[1], (char *)&res + off, sizeof(res) - off);
			if (n <= 0)
				_exit(4);
			off += (size_t)n;
		}
		_exit(0);
	}
	close(pfd[1]);
	while (got < sizeof(*r) && (n = read(pfd[0], (char *)r + got, sizeof(*r) - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got != sizeof(*r)) {
		fprintf(stderr, "  the child as %s (uid %d) failed: status 0x%x\n", user,
			(int)user_uid, st);
		return false;
	}
	r->data[sizeof(r->data) - 1] = '\0';
	return true;
}

/* op as the user fails with err. */
static void user_fails(const struct uop *op, int err)
{
	struct ures r;

	CU_ASSERT_TRUE_FATAL(as_user(op, &r));
	if (r.ret != -1 || r.err != err)
		fprintf(stderr, "  as %s, op %d on %s: ret %ld, %s; expected %s\n", user,
			(int)op->kind, op->path ? op->path : op->path2, r.ret,
			r.ret < 0 ? strerror(r.err) : "success", strerror(err));
	VT_EQ_INT(r.ret, -1);
	VT_EQ_INT(r.err, err);
}

static const char *errno_word(int err)
{
	return err == EACCES ? "(EACCES)" : err == EPERM ? "(EPERM)" : "(?)";
}

/* op as the user fails with err, and the daemon logs exactly one line for
 * it: "REL: WHAT refused for uid UID: ... (ERRNO)", REL the path in the
 * mount. */
static void user_refused(const char *mnt, const struct uop *op, int err, const char *rel,
			 const char *what)
{
	char p[512], want[256];
	char *log0 = slurp(pathf(p, sizeof(p), "%s/log", mnt), NULL), *log1, *line;
	size_t len0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(log0);
	user_fails(op, err);
	log1 = slurp(p, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log1);
	len0 = strlen(log0);
	CU_ASSERT_FATAL(strlen(log1) >= len0 && !strncmp(log1, log0, len0));
	line = log1 + len0;
	snprintf(want, sizeof(want), " %s: %s refused for uid %d: ", rel, what, (int)user_uid);
	if (!strstr(line, want) || !strstr(line, errno_word(err)) || !strchr(line, '\n') ||
	    strchr(line, '\n')[1])
		fprintf(stderr, "  expected one log line with '%s' and %s; got:\n%s", want,
			errno_word(err), line);
	CU_ASSERT_PTR_NOT_NULL(strstr(line, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, errno_word(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, " error "));
	/* exactly one line */
	CU_ASSERT_FATAL(strchr(line, '\n') != NULL);
	CU_ASSERT_EQUAL(strchr(line, '\n')[1], '\0');
	free(log0);
	free(log1);
}

/* access(path, mode) as the user gives err (0: allowed). */
static void user_access(const char *path, int mode, int err)
{
	struct uop op = { .kind = U_ACCESS, .path = path, .mode = (mode_t)mode };
	struct ures r;

	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	if (r.ret != (err ? -1 : 0) || (err && r.err != err))
		fprintf(stderr, "  as %s, access(%s, %d): %s; expected %s\n", user, path, mode,
			r.ret ? strerror(r.err) : "allowed", err ? strerror(err) : "allowed");
	VT_EQ_INT(r.ret, err ? -1 : 0);
	if (err)
		VT_EQ_INT(r.err, err);
}

/* access(path, mode) as root gives err (0: allowed). */
static void root_access(const char *path, int mode, int err)
{
	int r = access(path, mode);

	if ((r ? errno : 0) != err)
		fprintf(stderr, "  as root, access(%s, %d): %s; expected %s\n", path, mode,
			r ? strerror(errno) : "allowed", err ? strerror(err) : "allowed");
	VT_EQ_INT(r ? errno : 0, err);
}

/* Takes the line "KEY ..." out of t: translate/'s hw_tlb says whether the
 * GPU's TLB held the translation, which the previous read of it changes. */
static void drop_line(char *t, const char *key)
{
	size_t klen = strlen(key);
	char *l = t, *end;

	while (l && *l) {
		end = strchr(l, '\n');
		if (!strncmp(l, key, klen) && l[klen] == ' ') {
			if (end)
				memmove(l, end + 1, strlen(end + 1) + 1);
			else
				*l = '\0';
			return;
		}
		l = end ? end + 1 : NULL;
	}
}

/* The user reads path and gets what root gets. */
static void user_reads_same(const char *path)
{
	struct uop op = { .kind = U_READ, .path = path };
	struct ures r;
	char *t = slurp(path, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	drop_line(t, "hw_tlb");
	drop_line(r.data, "hw_tlb");
	if (r.ret < 0)
		fprintf(stderr, "  as %s, read %s: %s\n", user, path, strerror(r.err));
	CU_ASSERT(r.ret >= 0);
	if (strcmp(r.data, t))
		fprintf(stderr, "  %s: %s read\n%s\nroot read\n%s\n", path, user, r.data, t);
	CU_ASSERT_STRING_EQUAL(r.data, t);
	free(t);
}

/* ---- state snapshots ------------------------------------------------- */

/* What must not change: every information file whose content depends only
 * on the mappings and address spaces (not the counters of register reads
 * that reading translate/ adds), and the log. */
struct snap {
	char *vstats, *usage, *pagetable, *desc, *ro_desc, *xlate, *log, *maps_ls, *vas_ls;
	uint64_t tlb_flushes, mapped_pages;
};

static char *listing(const char *path)
{
	char *out = calloc(1, 4096);
	struct dirent *de;
	size_t len = 0;
	DIR *d = opendir(path);

	if (!d || !out) {
		if (d)
			closedir(d);
		return out;
	}
	while ((de = readdir(d)))
		len += (size_t)snprintf(out + len, len < 4000 ? 4000 - len : 0, "%s ", de->d_name);
	closedir(d);
	return out;
}

static void snap_take(const char *mnt, uint64_t va, struct snap *s)
{
	char p[512];

	s->vstats = slurp(pathf(p, sizeof(p), "%s/vas/0/stats", mnt), NULL);
	s->usage = slurp(pathf(p, sizeof(p), "%s/vram/usage", mnt), NULL);
	s->pagetable = slurp(pathf(p, sizeof(p), "%s/vas/0/pagetable", mnt), NULL);
	s->desc = slurp(pathf(p, sizeof(p), "%s/vas/0/maps/buf", mnt), NULL);
	s->ro_desc = slurp(pathf(p, sizeof(p), "%s/vas/0/maps/ro", mnt), NULL);
	s->xlate = slurp(pathf(p, sizeof(p), "%s/vas/0/translate/0x%llx", mnt,
			       (unsigned long long)va), NULL);
	if (s->xlate)
		drop_line(s->xlate, "hw_tlb");
	s->log = slurp(pathf(p, sizeof(p), "%s/log", mnt), NULL);
	s->maps_ls = listing(pathf(p, sizeof(p), "%s/vas/0/maps", mnt));
	s->vas_ls = listing(pathf(p, sizeof(p), "%s/vas", mnt));
	s->tlb_flushes = file_u64(pathf(p, sizeof(p), "%s/stats", mnt), "tlb_flushes");
	s->mapped_pages = file_u64(pathf(p, sizeof(p), "%s/vram/usage", mnt), "mapped_pages");
}

static void snap_free(struct snap *s)
{
	free(s->vstats);
	free(s->usage);
	free(s->pagetable);
	free(s->desc);
	free(s->ro_desc);
	free(s->xlate);
	free(s->log);
	free(s->maps_ls);
	free(s->vas_ls);
}

#define SNAP_EQ(field) do { \
	const char *__a = a->field ? a->field : "(unreadable)", *__b = b->field ? b->field : "(none)"; \
	if (strcmp(__a, __b)) \
		fprintf(stderr, "  %s changed:\n--- before\n%s\n--- after\n%s\n", #field, __a, __b); \
	CU_ASSERT_STRING_EQUAL(__a, __b); } while (0)

static void snap_same(const struct snap *a, const struct snap *b)
{
	SNAP_EQ(vstats);
	SNAP_EQ(usage);
	SNAP_EQ(pagetable);
	SNAP_EQ(desc);
	SNAP_EQ(ro_desc);
	SNAP_EQ(xlate);
	SNAP_EQ(maps_ls);
	SNAP_EQ(vas_ls);
	VT_EQ_U64(b->tlb_flushes, a->tlb_flushes);
	VT_EQ_U64(b->mapped_pages, a->mapped_pages);
}

/* ---- tests: with allow_other ----------------------------------------- */

#define A(...) pathf((char[512]){ 0 }, 512, "%s/" __VA_ARGS__)

static uint64_t buf_va; /* vas/0/maps/buf */

static void test_user_reads(void)
{
	static const char *const files[] = {
		"README", "gpu/chipset", "gpu/arch", "gpu/mmu_version", "gpu/va_bits",
		"gpu/vram_size", "gpu/backend", "vram/usage", "vas/0/pdb", "vas/0/stats",
		"vas/0/pagetable", "vas/0/maps/buf", "vas/0/maps/ro", "vas/spare/stats", NULL,
	};
	const char *M = amnt.path;
	const char *const *f;
	struct uop op = { .kind = U_READ };
	struct ures r;
	char want[64];
	char *log0 = slurp(A("log", M), NULL), *log1;

	for (f = files; *f; f++)
		user_reads_same(A("%s", M, *f));

	/* the content is right, not only readable */
	op.path = A("gpu/chipset", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT_STRING_EQUAL(r.data, "GA102\n");
	op.path = A("vas/0/maps/buf", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	snprintf(want, sizeof(want), "va     0x%016llx\n", (unsigned long long)buf_va);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "\nsize   0x10000\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "\npages  16\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "\naccess rw\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "\npfns   0x100-0x10f\n"));
	op.path = A("vas/0/pagetable", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT(r.len > 0);
	/* the 16 pages are one 64 KiB PTE at 0x100000 */
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "pa 0x0000000000100000-0x000000000010ffff"));

	/* translate/: the walker's and the GPU's answer for the mapping */
	user_reads_same(A("vas/0/translate/0x%llx", M, (unsigned long long)(buf_va + 0x3004)));
	op.path = A("vas/0/translate/0x%llx", M, (unsigned long long)(buf_va + 0x3004));
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	{
		char state[32] = "", hw[32] = "";
		uint64_t pa = 0, hw_pa = 0;

		CU_ASSERT_TRUE(kv_str(r.data, "state", state, sizeof(state)));
		CU_ASSERT_TRUE(kv_u64(r.data, "pa", &pa));
		CU_ASSERT_TRUE(kv_str(r.data, "hw", hw, sizeof(hw)));
		CU_ASSERT_TRUE(kv_u64(r.data, "hw_pa", &hw_pa));
		CU_ASSERT_STRING_EQUAL(state, "mapped");
		CU_ASSERT_STRING_EQUAL(hw, "mapped");
		VT_EQ_U64(pa, 0x103004);
		VT_EQ_U64(hw_pa, 0x103004);
	}

	/* stats and log: readable, the expected keys (their counters move) */
	op.path = A("stats", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	{
		uint64_t v = UINT64_MAX;

		CU_ASSERT_TRUE(kv_u64(r.data, "mmio_writes", &v));
		CU_ASSERT(v > 0 && v != UINT64_MAX);
		CU_ASSERT_TRUE(kv_u64(r.data, "tlb_flushes", &v));
		VT_EQ_U64(v, file_u64(A("stats", M), "tlb_flushes"));
	}
	op.path = A("log", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "vas/0/maps/buf: mapped 16 pages"));

	/* listings */
	op.kind = U_READDIR;
	op.path = A("vas/0/maps", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT_STRING_EQUAL(r.data, "buf ro ");
	op.path = A("vas", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT_STRING_EQUAL(r.data, "0 spare ");
	op.path = A("gpu", M);
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "chipset"));

	/* reading and listing log nothing */
	log1 = slurp(A("log", M), NULL);
	CU_ASSERT_STRING_EQUAL(log1 ? log1 : "(unreadable)", log0 ? log0 : "(none)");
	free(log0);
	free(log1);
}

static void test_user_refused(void)
{
	const char *M = amnt.path;
	static const int modes[] = { O_RDONLY, O_WRONLY, O_RDWR };
	static const char *const opens[] = { "open for reading", "open for writing",
					     "open for reading and writing" };
	char x[512], xrel[64];
	struct snap before, after;
	struct uop op;
	size_t i, lines0, lines1;

	snprintf(x, sizeof(x), "%s/vas/0/translate/0x%llx", M, (unsigned long long)buf_va);
	snprintf(xrel, sizeof(xrel), "vas/0/translate/0x%llx", (unsigned long long)buf_va);
	snap_take(M, buf_va, &before);

	/* map: no file can be made in maps/, whatever the way */
	op = (struct uop){ .kind = U_WRITE, .path = A("vas/0/maps/mine", M),
			   .flags = O_WRONLY | O_CREAT | O_EXCL, .text = "0x200-0x20f\n" };
	user_refused(M, &op, EACCES, "vas/0/maps/mine", "map");
	op.flags = O_WRONLY | O_CREAT | O_TRUNC;
	user_refused(M, &op, EACCES, "vas/0/maps/mine", "map");
	op.text = "alloc=64K\n";
	user_refused(M, &op, EACCES, "vas/0/maps/mine", "map");
	op = (struct uop){ .kind = U_MKNOD, .path = A("vas/0/maps/node", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/node", "mknod");
	/* without default_permissions the kernel's protected_hardlinks check
	 * passes (it asks the daemon nothing), and the daemon refuses the name
	 * in maps/ */
	op = (struct uop){ .kind = U_LINK, .path = A("vas/0/maps/buf", M),
			   .path2 = A("vas/0/maps/hard", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/hard", "link");
	op = (struct uop){ .kind = U_SYMLINK, .path2 = A("vas/0/maps/soft", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/soft", "symlink");
	/* an existing mapping: not written, truncated, renamed, removed, chmod'ed */
	op = (struct uop){ .kind = U_WRITE, .path = A("vas/0/maps/buf", M), .flags = O_WRONLY,
			   .text = "0x300\n" };
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "open for writing");
	op.flags = O_WRONLY | O_APPEND;
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "open for writing");
	op.flags = O_RDWR;
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "open for reading and writing");
	op = (struct uop){ .kind = U_TRUNCATE, .path = A("vas/0/maps/buf", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "truncate");
	/* O_TRUNC needs write permission, even with O_RDONLY */
	op = (struct uop){ .kind = U_OPEN, .path = A("vas/0/maps/buf", M),
			   .flags = O_RDONLY | O_TRUNC };
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "open with O_TRUNC");
	op = (struct uop){ .kind = U_RENAME, .path = A("vas/0/maps/buf", M),
			   .path2 = A("vas/0/maps/moved", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "rename");
	op = (struct uop){ .kind = U_UNLINK, .path = A("vas/0/maps/buf", M) };
	user_refused(M, &op, EACCES, "vas/0/maps/buf", "unmap");
	op.path = A("vas/0/maps/ro", M);
	user_refused(M, &op, EACCES, "vas/0/maps/ro", "unmap");
	op = (struct uop){ .kind = U_CHMOD, .path = A("vas/0/maps/buf", M), .mode = 0666 };
	user_refused(M, &op, EPERM, "vas/0/maps/buf", "chmod"); /* not the owner */
	/* address spaces: not made, removed or renamed */
	op = (struct uop){ .kind = U_MKDIR, .path = A("vas/mine", M) };
	user_refused(M, &op, EACCES, "vas/mine", "mkdir");
	op = (struct uop){ .kind = U_RMDIR, .path = A("vas/spare", M) };
	user_refused(M, &op, EACCES, "vas/spare", "rmdir");
	op = (struct uop){ .kind = U_RENAME, .path = A("vas/spare", M), .path2 = A("vas/moved", M) };
	user_refused(M, &op, EACCES, "vas/spare", "rename");
	/* memory: vram/raw and mem, in any mode */
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		op = (struct uop){ .kind = U_PREAD, .path = A("vram/raw", M), .flags = modes[i],
				   .off = 0x100000 };
		user_refused(M, &op, EACCES, "vram/raw", opens[i]);
		op.path = A("vas/0/mem", M);
		op.off = (off_t)buf_va;
		user_refused(M, &op, EACCES, "vas/0/mem", opens[i]);
		op.path = A("vas/spare/mem", M);
		user_refused(M, &op, EACCES, "vas/spare/mem", opens[i]);
	}
	/* information files stay read-only for the user too */
	op = (struct uop){ .kind = U_OPEN, .path = A("gpu/chipset", M), .flags = O_WRONLY };
	user_refused(M, &op, EACCES, "gpu/chipset", "open for writing");
	op.path = A("stats", M);
	user_refused(M, &op, EACCES, "stats", "open for writing");
	op.path = x;
	user_refused(M, &op, EACCES, xrel, "open for writing");
	op = (struct uop){ .kind = U_OPEN, .path = A("newfile", M), .flags = O_WRONLY | O_CREAT };
	user_refused(M, &op, EACCES, "newfile", "create");

	snap_take(M, buf_va, &after);
	snap_same(&before, &after);
	/* the log only grew by the refusals: 31 lines */
	lines0 = lines1 = 0;
	for (i = 0; before.log && before.log[i]; i++)
		lines0 += before.log[i] == '\n';
	for (i = 0; after.log && after.log[i]; i++)
		lines1 += after.log[i] == '\n';
	VT_EQ_U64(lines1 - lines0, 31);
	CU_ASSERT_FALSE(exists(A("vas/0/maps/mine", M)));
	CU_ASSERT_FALSE(exists(A("vas/mine", M)));
	CU_ASSERT_TRUE(exists(A("vas/spare/pdb", M)));
	snap_free(&before);
	snap_free(&after);

	/* root still can: the refusals were the user's, not the mount's */
	VT_EQ_INT(map_text(A("vas/0/maps/roots", M), "0x200\n"), 0);
	VT_EQ_INT(unlink(A("vas/0/maps/roots", M)), 0);
}

/* access(2): the daemon answers it by the modes, for the user and for
 * root, and logs nothing (a question, not an action). */
static void test_access(void)
{
	const char *M = amnt.path;
	char *log0 = slurp(A("log", M), NULL), *log1;

	/* the user: information files readable, nothing writable or
	 * executable, directories searchable but not writable, memory closed */
	user_access(A("gpu/chipset", M), F_OK, 0);
	user_access(A("gpu/chipset", M), R_OK, 0);
	user_access(A("gpu/chipset", M), W_OK, EACCES);
	user_access(A("gpu/chipset", M), X_OK, EACCES);
	user_access(A("vas/0/maps/buf", M), R_OK, 0);
	user_access(A("vas/0/maps/buf", M), R_OK | W_OK, EACCES);
	user_access(A("vas/0/maps", M), R_OK | X_OK, 0);
	user_access(A("vas/0/maps", M), W_OK, EACCES);
	user_access(A("vas", M), W_OK, EACCES);
	user_access(A("vas/0/mem", M), F_OK, 0);
	user_access(A("vas/0/mem", M), R_OK, EACCES);
	user_access(A("vas/0/mem", M), W_OK, EACCES);
	user_access(A("vram/raw", M), R_OK, EACCES);
	user_access(M, X_OK, 0);
	/* root: any read and write; execute only with an x bit, or a directory */
	root_access(A("vas/0/mem", M), R_OK | W_OK, 0);
	root_access(A("vram/raw", M), R_OK | W_OK, 0);
	root_access(A("gpu/chipset", M), R_OK | W_OK, 0);
	root_access(A("gpu/chipset", M), X_OK, EACCES);
	root_access(A("vas/0/maps", M), W_OK | X_OK, 0);
	root_access(A("gpu", M), X_OK, 0); /* 0555 */
	root_access(A("vas/0/maps/nosuch", M), F_OK, ENOENT);

	log1 = slurp(A("log", M), NULL);
	CU_ASSERT_STRING_EQUAL(log1 ? log1 : "(unreadable)", log0 ? log0 : "(none)");
	free(log0);
	free(log1);
}

/* The group bits count for the file's group among the caller's
 * supplementary groups (which the daemon asks the kernel for). */
static void test_group_bits(void)
{
	const char *M = amnt.path;
	struct uop op = { .kind = U_READ, .path = A("vas/0/maps/ro", M) };
	char *want = slurp(op.path, NULL);
	struct ures r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	VT_EQ_INT(chmod(op.path, 0640), 0); /* root's, group 0 */
	user_refused(M, &op, EACCES, "vas/0/maps/ro", "open for reading");
	user_access(op.path, R_OK, EACCES);
	user_in_root_group = 1;
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	VT_EQ_INT(r.ret, (long)strlen(want));
	CU_ASSERT_STRING_EQUAL(r.data, want);
	user_access(op.path, R_OK, 0);
	user_access(op.path, W_OK, EACCES);
	user_in_root_group = 0;
	VT_EQ_INT(chmod(op.path, 0644), 0);
	free(want);
}

/* The user's data writes never reached VRAM: what root wrote is there. */
static void test_user_memory_untouched(void)
{
	const char *M = amnt.path;
	char buf[16];
	int fd;
	struct uop op = { .kind = U_WRITE, .path = A("vram/raw", M), .flags = O_WRONLY,
			  .text = "user-bytes" };

	user_refused(M, &op, EACCES, "vram/raw", "open for writing");
	op.path = A("vas/0/mem", M);
	user_refused(M, &op, EACCES, "vas/0/mem", "open for writing");
	fd = open(A("vram/raw", M), O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	VT_EQ_INT(pread(fd, buf, 16, 0x100000), 16);
	CU_ASSERT_EQUAL(memcmp(buf, "root-wrote-this!", 16), 0);
	close(fd);
}

/* ---- tests: without allow_other -------------------------------------- */

static void test_private_mount(void)
{
	static const char *const files[] = { "README", "gpu/chipset", "stats", "log",
		"vas/0/stats", "vas/0/pagetable", "vas/0/maps/buf", "vram/raw", "vas/0/mem", NULL };
	const char *M = pmnt.path;
	const char *const *f;
	struct uop op;
	struct ures r;
	char *log0, *log1;

	log0 = slurp(A("log", M), NULL);
	/* the folder around the mountpoint is open to the user: the refusals
	 * below are the mount's own */
	op = (struct uop){ .kind = U_STAT, .path = pmnt.dir };
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	VT_EQ_INT(r.ret, 0);
	op = (struct uop){ .kind = U_READDIR, .path = pmnt.dir };
	CU_ASSERT_TRUE_FATAL(as_user(&op, &r));
	VT_EQ_INT(r.ret, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.data, "mnt "));

	op = (struct uop){ .kind = U_STAT, .path = M };
	user_fails(&op, EACCES);
	op.kind = U_READDIR;
	user_fails(&op, EACCES);
	op.path = A("vas/0/maps", M);
	user_fails(&op, EACCES);
	op.kind = U_STAT;
	user_fails(&op, EACCES);
	for (f = files; *f; f++) {
		op = (struct uop){ .kind = U_READ, .path = A("%s", M, *f) };
		user_fails(&op, EACCES);
		op.kind = U_STAT;
		user_fails(&op, EACCES);
	}
	op = (struct uop){ .kind = U_WRITE, .path = A("vas/0/maps/mine", M),
			   .flags = O_WRONLY | O_CREAT | O_EXCL, .text = "0x200\n" };
	user_fails(&op, EACCES);
	op = (struct uop){ .kind = U_MKDIR, .path = A("vas/mine", M) };
	user_fails(&op, EACCES);
	op = (struct uop){ .kind = U_UNLINK, .path = A("vas/0/maps/buf", M) };
	user_fails(&op, EACCES);

	/* nothing reached the daemon; root sees everything as it was */
	log1 = slurp(A("log", M), NULL);
	CU_ASSERT_STRING_EQUAL(log1 ? log1 : "", log0 ? log0 : "(unreadable)");
	free(log0);
	free(log1);
	CU_ASSERT_TRUE(exists(A("vas/0/maps/buf", M)));
	CU_ASSERT_FALSE(exists(A("vas/0/maps/mine", M)));
	CU_ASSERT_FALSE(exists(A("vas/mine", M)));
}

/* ---- setup ----------------------------------------------------------- */

static void cleanup(void)
{
	mnt_cleanup_all();
	mnt_cleanup(&amnt);
	mnt_cleanup(&pmnt);
	user_remove();
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Mounts m (args) with vas/0/maps/buf, vas/0/maps/ro and vas/spare made by
 * root, and its folder open to others. */
static int mount_with_state(struct mnt *m, const char *const *args)
{
	char p[512];
	int fd;

	if (mnt_start(m, args))
		return -1;
	if (chmod(m->dir, 0755) ||
	    map_text(pathf(p, sizeof(p), "%s/vas/0/maps/buf", m->path), "0x100-0x10f\n") ||
	    map_text(pathf(p, sizeof(p), "%s/vas/0/maps/ro", m->path), "ro 0x120\n") ||
	    mkdir(pathf(p, sizeof(p), "%s/vas/spare", m->path), 0755)) {
		fprintf(stderr, "  setting up %s failed: %s\n", m->path, strerror(errno));
		return -1;
	}
	fd = open(pathf(p, sizeof(p), "%s/vram/raw", m->path), O_WRONLY);
	if (fd < 0 || pwrite(fd, "root-wrote-this!", 16, 0x100000) != 16) {
		fprintf(stderr, "  writing vram/raw failed: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Stops a mount: its exit status must be 0 and its stderr clean. */
static int stop_checked(struct mnt *m)
{
	int st = mnt_stop(m), r = 0;

	if (st != 0) {
		char *t = slurp(m->err, NULL);
		fprintf(stderr, "FAIL: vmmfs exited with status %d after unmount; its stderr:\n%s\n",
			st, t ? t : "");
		free(t);
		r = 1;
	}
	if (!mnt_stderr_clean(m))
		r = 1;
	return r;
}

static void register_tests(void)
{
	static const struct vt_test tests[] = {
		{ "user_reads", test_user_reads },
		{ "user_refused", test_user_refused },
		{ "access", test_access },
		{ "group_bits", test_group_bits },
		{ "user_memory_untouched", test_user_memory_untouched },
		{ "private_mount", test_private_mount },
		{ NULL, NULL },
	};

	vt_add_suite("perm", tests);
}

int main(int argc, char **argv)
{
	int r = fsh_preflight("perm_test");

	if (r)
		return r;
	if (system("command -v useradd >/dev/null 2>&1 && command -v userdel >/dev/null 2>&1")) {
		fprintf(stderr, "FAIL: perm_test needs useradd and userdel (apt-get install passwd)\n");
		return 1;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (user_create())
		return 1;
	{
		static const char *const args_other[] = { "--vram-size=256M", "-o", "allow_other",
							  NULL };
		static const char *const args_private[] = { "--vram-size=256M", NULL };
		char p[512];

		if (mount_with_state(&amnt, args_other) || mount_with_state(&pmnt, args_private)) {
			fprintf(stderr, "FAIL: perm_test cannot mount vmmfs\n");
			return 1; /* cleanup() unmounts and removes the user */
		}
		buf_va = file_u64(pathf(p, sizeof(p), "%s/vas/0/maps/buf", amnt.path), "va");
	}
	r = vt_main(argc, argv, register_tests);
	r |= stop_checked(&amnt);
	r |= stop_checked(&pmnt);
	cleanup();
	return r;
}
