// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * host-read-probe: try to read a 32-byte marker out of another process's
 * memory through each path a host process has, and check the outcome
 * against an expectation, as TAP.
 *
 *   host-read-probe --expect found|absent PID MARKER_HEX [START-END]
 *
 * The memory searched is START-END (hex, page aligned) or, by default, the
 * mappings that hold guest RAM in QEMU: /memfd:... and /secretmem
 * mappings, or when there are none every rw mapping of 32 MiB or more.
 *
 *   found   every path reads the marker (the positive control, e.g. memfd);
 *   absent  the RAM is /secretmem with VmFlags lo (locked) and dd (not
 *           dumped), every read of it is refused with the errno the kernel
 *           gives for secret memory (/proc/PID/mem and PEEKDATA: EIO,
 *           process_vm_readv: EFAULT), and gcore's core lacks the marker.
 *
 * One TAP test per check; the description is "PATH: OUTCOME", e.g.
 * "process_vm_readv: not found (EFAULT)" or "core dump: found at 0x1000
 * (221 MiB core by gcore)".  Exit status 0 when every test passed, 1 when
 * one failed, 2 on bad usage or when the target cannot be examined.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARKER_LEN	32
#define PAGE_SIZE	4096UL
#define CHUNK_SIZE	(1UL << 20)
#define MAX_RANGES	16
#define BIG_MAPPING	(32UL << 20)
#define GCORE_TIMEOUT	"300"
#define EXIT_USAGE	2
#define READ_EOF	(-1)	/* last_errno of a read that returned 0 bytes */

struct range {
	unsigned long start, end;
	char name[256];
};

struct target {
	pid_t pid;
	unsigned char marker[MARKER_LEN];
	struct range ranges[MAX_RANGES];
	int nr_ranges;
};

/* What one path saw: where the marker was, else the last refusal. */
struct result {
	int found;
	unsigned long found_at;
	int last_errno;
	unsigned long bytes_read;	/* bytes the kernel handed over */
	char note[64];		/* printed in parentheses when set */
};

/*
 * One host read path, the errno it gets on secret memory (0: none), and
 * the program it needs (its probe returns -ENOPKG without it: a skip).
 */
struct read_path {
	const char *name;
	int (*probe)(struct target *t, struct result *res);
	int secret_errno;
	const char *needs;
};

/* Reads up to @len bytes at @addr of the target; bytes read or -errno. */
typedef ssize_t (*read_fn)(struct target *t, void *ctx, unsigned long addr,
			   unsigned char *buf, size_t len);

static int parse_marker(const char *hex, unsigned char *marker)
{
	int i;

	if (strlen(hex) != 2 * MARKER_LEN)
		return -EINVAL;
	for (i = 0; i < MARKER_LEN; i++) {
		if (!isxdigit(hex[2 * i]) || !isxdigit(hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2hhx", &marker[i]) != 1)
			return -EINVAL;
	}
	return 0;
}

static int parse_range(const char *arg, struct range *r)
{
	char end;

	if (sscanf(arg, "%lx-%lx%c", &r->start, &r->end, &end) != 2 ||
	    r->start >= r->end || (r->start | r->end) % PAGE_SIZE)
		return -EINVAL;
	snprintf(r->name, sizeof(r->name), "(given on the command line)");
	return 0;
}

static int is_ram_name(const char *name)
{
	return !strncmp(name, "/memfd:", 7) || !strncmp(name, "/secretmem", 10);
}

/* Parse one /proc/PID/maps line; 1 if it is kept under @by_name. */
static int pick_mapping(const char *line, int by_name, struct range *r)
{
	static const char deleted[] = " (deleted)";
	char perms[5], name[256] = "";
	size_t len;

	if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255[^\n]",
		   &r->start, &r->end, perms, name) < 3)
		return 0;
	/* memfd and secretmem files have no name in any directory */
	len = strlen(name);
	if (len >= sizeof(deleted) && !strcmp(name + len - sizeof(deleted) + 1, deleted))
		name[len - sizeof(deleted) + 1] = '\0';
	snprintf(r->name, sizeof(r->name), "%s", name[0] ? name : "[anon]");
	if (perms[0] != 'r')
		return 0;
	if (by_name)
		return is_ram_name(name);
	return perms[1] == 'w' && r->end - r->start >= BIG_MAPPING;
}

static int find_ram_ranges(struct target *t, int by_name)
{
	char path[64], line[512];
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", t->pid);
	maps = fopen(path, "re");
	if (!maps)
		return -errno;
	t->nr_ranges = 0;
	while (fgets(line, sizeof(line), maps)) {
		if (!pick_mapping(line, by_name, &t->ranges[t->nr_ranges]))
			continue;
		if (++t->nr_ranges == MAX_RANGES) {
			fprintf(stderr, "warning: only the first %d RAM mappings are searched; give START-END for others\n",
				MAX_RANGES);
			break;
		}
	}
	fclose(maps);
	return 0;
}

/* The VmFlags line of the smaps entry starting at @start, or "?". */
static void read_vmflags(pid_t pid, unsigned long start, char *flags, size_t size)
{
	char path[64], line[512];
	unsigned long s, e;
	int in_entry = 0;
	FILE *smaps;
	size_t len;

	snprintf(flags, size, "?");
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	smaps = fopen(path, "re");
	if (!smaps)
		return;
	while (fgets(line, sizeof(line), smaps)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
			in_entry = s == start;
		else if (in_entry && !strncmp(line, "VmFlags:", 8)) {
			len = strcspn(line + 9, "\n");
			while (len && line[9 + len - 1] == ' ')
				len--;
			len = len < size ? len : size - 1;
			memcpy(flags, line + 9, len);
			flags[len] = '\0';
			break;
		}
	}
	fclose(smaps);
}

/* 1 when the space-separated VmFlags list @flags holds @flag. */
static int has_vmflag(const char *flags, const char *flag)
{
	size_t len = strlen(flag);
	const char *p;

	for (p = strstr(flags, flag); p; p = strstr(p + 1, flag))
		if ((p == flags || p[-1] == ' ') && (p[len] == ' ' || !p[len]))
			return 1;
	return 0;
}

/*
 * TAP test "RAM mapping: NAME FLAGS" for each range searched.  Secret RAM
 * is /secretmem, locked (lo) and not dumped (dd); the positive control's
 * RAM must not be secret, or the control proves nothing.
 */
static int check_ram_mappings(struct target *t, int expect_found, int *testno)
{
	int i, secret, ok, failed = 0;
	char flags[128];

	for (i = 0; i < t->nr_ranges; i++) {
		read_vmflags(t->pid, t->ranges[i].start, flags, sizeof(flags));
		printf("# ram: %lx-%lx %s VmFlags: %s\n", t->ranges[i].start,
		       t->ranges[i].end, t->ranges[i].name, flags);
		secret = !strncmp(t->ranges[i].name, "/secretmem", 10);
		if (expect_found)
			ok = !secret;
		else
			ok = secret && has_vmflag(flags, "lo") && has_vmflag(flags, "dd");
		printf("%s %d - RAM mapping: %s%s%s\n", ok ? "ok" : "not ok",
		       ++*testno, t->ranges[i].name,
		       has_vmflag(flags, "lo") ? " lo" : "",
		       has_vmflag(flags, "dd") ? " dd" : "");
		failed += !ok;
	}
	return failed;
}

/*
 * Search one range in chunks that overlap by MARKER_LEN bytes.  A refused
 * read skips to the next page; a short read means the next page is
 * refused.  Returns 1 when found.
 */
static int scan_range(struct target *t, const struct range *r, read_fn read_at,
		      void *ctx, unsigned char *buf, struct result *res)
{
	unsigned long addr = r->start;
	unsigned char *hit;
	ssize_t n;
	size_t len;

	while (addr < r->end) {
		len = r->end - addr < CHUNK_SIZE + MARKER_LEN ?
		      r->end - addr : CHUNK_SIZE + MARKER_LEN;
		n = read_at(t, ctx, addr, buf, len);
		if (n <= 0) {
			res->last_errno = n ? -n : READ_EOF;
			addr = (addr & ~(PAGE_SIZE - 1)) + PAGE_SIZE;
			continue;
		}
		res->bytes_read += n;
		hit = memmem(buf, n, t->marker, MARKER_LEN);
		if (hit) {
			res->found = 1;
			res->found_at = addr + (hit - buf);
			return 1;
		}
		if ((size_t)n < len || addr + n == r->end)
			addr += n;
		else
			addr += n - MARKER_LEN;
	}
	return 0;
}

static int scan_target(struct target *t, read_fn read_at, void *ctx,
		       struct result *res)
{
	unsigned char *buf;
	int i;

	buf = malloc(CHUNK_SIZE + MARKER_LEN);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < t->nr_ranges; i++)
		if (scan_range(t, &t->ranges[i], read_at, ctx, buf, res))
			break;
	free(buf);
	return 0;
}

/*
 * One TAP test for one path.  Found: the marker was read.  Absent: not
 * found, nothing at all was read, and every read was refused with
 * @secret_errno (0: the path has no errno, only its output to search).
 */
static int report_path(const struct read_path *path, int ret,
		       const struct result *res, int expect_found, int testno)
{
	char outcome[128];
	int ok;

	if (ret == -ENOPKG && path->needs) {
		printf("ok %d - %s # SKIP %s\n", testno, path->name, path->needs);
		return 0;
	}
	if (ret < 0)
		snprintf(outcome, sizeof(outcome), "error %s", strerrorname_np(-ret));
	else if (res->found)
		snprintf(outcome, sizeof(outcome), "found at 0x%lx", res->found_at);
	else if (res->last_errno)
		snprintf(outcome, sizeof(outcome), "not found (%s)",
			 res->last_errno == READ_EOF ? "EOF" :
			 strerrorname_np(res->last_errno));
	else
		snprintf(outcome, sizeof(outcome), "not found");
	if (ret < 0)
		ok = 0;
	else if (expect_found)
		ok = res->found;
	else if (path->secret_errno)
		ok = !res->found && !res->bytes_read &&
		     res->last_errno == path->secret_errno;
	else
		ok = !res->found;
	printf("%s %d - %s: %s", ok ? "ok" : "not ok", testno, path->name, outcome);
	printf(res->note[0] ? " (%s)\n" : "\n", res->note);
	if (!ok && !expect_found && path->secret_errno && !ret && !res->found)
		printf("# expected every read refused with %s; %lu bytes were read\n",
		       strerrorname_np(path->secret_errno), res->bytes_read);
	return !ok;
}

static ssize_t read_proc_mem(struct target *t, void *ctx, unsigned long addr,
			     unsigned char *buf, size_t len)
{
	ssize_t n = pread(*(int *)ctx, buf, len, addr);

	(void)t;
	return n < 0 ? -errno : n;
}

static int probe_proc_mem(struct target *t, struct result *res)
{
	char path[64];
	int fd, ret;

	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = scan_target(t, read_proc_mem, &fd, res);
	close(fd);
	return ret;
}

static ssize_t read_vm_readv(struct target *t, void *ctx, unsigned long addr,
			     unsigned char *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };
	ssize_t n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);

	(void)ctx;
	return n < 0 ? -errno : n;
}

static int probe_vm_readv(struct target *t, struct result *res)
{
	return scan_target(t, read_vm_readv, NULL, res);
}

/* PEEKDATA word by word; a refused word ends the read early. */
static ssize_t read_peekdata(struct target *t, void *ctx, unsigned long addr,
			     unsigned char *buf, size_t len)
{
	size_t off;
	long word;

	(void)ctx;
	for (off = 0; off + sizeof(word) <= len; off += sizeof(word)) {
		errno = 0;
		word = ptrace(PTRACE_PEEKDATA, t->pid, addr + off, NULL);
		if (errno)
			return off ? (ssize_t)off : -errno;
		memcpy(buf + off, &word, sizeof(word));
	}
	return off;
}

/* As tools/testing/selftests/mm/memfd_secret.c: seize, stop, peek, detach. */
static int probe_ptrace(struct target *t, struct result *res)
{
	int status, ret;

	if (ptrace(PTRACE_SEIZE, t->pid, NULL, NULL))
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, t->pid, NULL, NULL)) {
		ret = -errno;
		goto detach;
	}
	if (waitpid(t->pid, &status, __WALL) < 0) {
		ret = -errno;
		goto detach;
	}
	ret = scan_target(t, read_peekdata, NULL, res);
detach:
	ptrace(PTRACE_DETACH, t->pid, NULL, NULL);
	return ret;
}

/* Run "timeout GCORE_TIMEOUT gcore -o PREFIX PID", quietly. */
static int run_gcore(pid_t pid, const char *prefix, struct result *res)
{
	char pidstr[16];
	int status, devnull;
	pid_t child;

	snprintf(pidstr, sizeof(pidstr), "%d", pid);
	child = fork();
	if (child < 0)
		return -errno;
	if (!child) {
		devnull = open("/dev/null", O_RDWR);
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		execlp("timeout", "timeout", GCORE_TIMEOUT, "gcore", "-o", prefix,
		       pidstr, (char *)NULL);
		_exit(127);
	}
	if (waitpid(child, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOPKG;		/* no gcore: a skip, not a failure */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 124) {
		snprintf(res->note, sizeof(res->note), "gcore took over %s s", GCORE_TIMEOUT);
		return -ETIMEDOUT;
	}
	snprintf(res->note, sizeof(res->note), "gcore failed; run it by hand to see why");
	return -EIO;
}

/* Search the whole core file at @path. */
static int search_core(struct target *t, const char *path, struct result *res)
{
	unsigned char *core, *hit;
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out_close;
	}
	core = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (core == MAP_FAILED) {
		ret = -errno;
		goto out_close;
	}
	hit = memmem(core, st.st_size, t->marker, MARKER_LEN);
	if (hit) {
		res->found = 1;
		res->found_at = hit - core;
	}
	snprintf(res->note, sizeof(res->note), "%lld MiB core by gcore",
		 ((long long)st.st_size + (1 << 20) - 1) >> 20);
	munmap(core, st.st_size);
out_close:
	close(fd);
	return ret;
}

static int probe_core_dump(struct target *t, struct result *res)
{
	char dir[PATH_MAX], prefix[PATH_MAX + 8], core[PATH_MAX + 24];
	const char *tmpdir = getenv("TMPDIR");
	int ret;

	snprintf(dir, sizeof(dir), "%s/host-read-probe.XXXXXX", tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(prefix, sizeof(prefix), "%s/core", dir);
	snprintf(core, sizeof(core), "%s.%d", prefix, t->pid);
	ret = run_gcore(t->pid, prefix, res);
	if (ret)
		goto out;
	ret = search_core(t, core, res);
out:
	unlink(core);
	rmdir(dir);
	return ret;
}

static const struct read_path read_paths[] = {
	{ "/proc/PID/mem", probe_proc_mem, EIO, NULL },
	{ "process_vm_readv", probe_vm_readv, EFAULT, NULL },
	{ "ptrace PEEKDATA", probe_ptrace, EIO, NULL },
	{ "core dump", probe_core_dump, 0, "gcore is missing: apt-get install gdb" },
};
#define NR_READ_PATHS	(sizeof(read_paths) / sizeof(read_paths[0]))

/* Returns the number of failed tests. */
static int probe_all(struct target *t, int expect_found, int *testno)
{
	struct result res;
	int failed = 0, ret;
	size_t i;

	for (i = 0; i < NR_READ_PATHS; i++) {
		memset(&res, 0, sizeof(res));
		ret = read_paths[i].probe(t, &res);
		failed += report_path(&read_paths[i], ret, &res, expect_found, ++*testno);
		fflush(stdout);
	}
	return failed;
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s --expect found|absent PID MARKER_HEX [START-END]\n"
		"  MARKER_HEX: 64 hex digits; START-END: hex, page aligned\n", prog);
	return EXIT_USAGE;
}

/* Fill @t's ranges from the command line or from the target's maps. */
static int find_ranges(struct target *t, const char *range, const char *prog)
{
	int ret;

	if (range) {
		if (parse_range(range, &t->ranges[0]))
			return usage(prog);
		t->nr_ranges = 1;
		return 0;
	}
	ret = find_ram_ranges(t, 1);
	if (!ret && !t->nr_ranges)
		ret = find_ram_ranges(t, 0);
	if (ret) {
		fprintf(stderr, "%s: cannot read /proc/%d/maps: %s (is the PID right and are you root?)\n",
			prog, t->pid, strerror(-ret));
		return EXIT_USAGE;
	}
	if (!t->nr_ranges) {
		fprintf(stderr, "%s: PID %d has no /memfd:, /secretmem or rw mapping of 32 MiB or more; give START-END\n",
			prog, t->pid);
		return EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct target t = { 0 };
	int expect_found, failed, testno = 0, ret;

	if (argc < 5 || argc > 6 || strcmp(argv[1], "--expect"))
		return usage(argv[0]);
	if (!strcmp(argv[2], "found"))
		expect_found = 1;
	else if (!strcmp(argv[2], "absent"))
		expect_found = 0;
	else
		return usage(argv[0]);
	t.pid = atoi(argv[3]);
	if (t.pid <= 0 || parse_marker(argv[4], t.marker))
		return usage(argv[0]);
	ret = find_ranges(&t, argc == 6 ? argv[5] : NULL, argv[0]);
	if (ret)
		return ret;
	printf("TAP version 13\n1..%zu\n", t.nr_ranges + NR_READ_PATHS);
	failed = check_ram_mappings(&t, expect_found, &testno);
	failed += probe_all(&t, expect_found, &testno);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
