// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * host-read-probe: try to read a 32-byte marker out of another process's
 * memory through each path a host process has, and say what each found.
 *
 *   host-read-probe PID MARKER_HEX [START-END]
 *
 * The memory searched is START-END (hex, page aligned) or, by default, the
 * mappings that hold guest RAM in QEMU: /memfd:... and /secretmem
 * mappings, or when there are none every rw mapping of 32 MiB or more.
 * Output, one line per mapping and then one per path:
 *
 *   ram: START-END NAME VmFlags: ...
 *   /proc/PID/mem: found at 0xADDR | not found | not found (EIO) | error ...
 *   process_vm_readv: ...
 *   ptrace PEEKDATA: ...
 *   core dump: ...          (a core from gdb's gcore, searched whole)
 *
 * Each line may end with a note in parentheses, e.g. the core's size.
 *
 * "not found (ERRNO)" means the kernel refused every read that did not
 * succeed with ERRNO; "error" means the path could not be tried at all.
 * Exit status 0 when the probe ran, whatever it found.
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
	char note[64];		/* printed in parentheses when set */
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
	char perms[5], name[256] = "";

	if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255[^\n]",
		   &r->start, &r->end, perms, name) < 3)
		return 0;
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

static void print_ranges(struct target *t)
{
	char flags[128];
	int i;

	for (i = 0; i < t->nr_ranges; i++) {
		read_vmflags(t->pid, t->ranges[i].start, flags, sizeof(flags));
		printf("ram: %lx-%lx %s VmFlags: %s\n", t->ranges[i].start,
		       t->ranges[i].end, t->ranges[i].name, flags);
	}
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
			res->last_errno = n ? -n : EIO;
			addr = (addr & ~(PAGE_SIZE - 1)) + PAGE_SIZE;
			continue;
		}
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

static void print_result(const char *path, int ret, const struct result *res)
{
	if (ret < 0)
		printf("%s: error %s", path, strerrorname_np(-ret));
	else if (res->found)
		printf("%s: found at 0x%lx", path, res->found_at);
	else if (res->last_errno)
		printf("%s: not found (%s)", path, strerrorname_np(res->last_errno));
	else
		printf("%s: not found", path);
	printf(res->note[0] ? " (%s)\n" : "\n", res->note);
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
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(res->note, sizeof(res->note), "gcore is missing: apt-get install gdb");
		return -ENOENT;
	}
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

static void probe_all(struct target *t)
{
	struct result res;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "/proc/%d/mem", t->pid);
	memset(&res, 0, sizeof(res));
	ret = probe_proc_mem(t, &res);
	print_result(name, ret, &res);

	memset(&res, 0, sizeof(res));
	ret = probe_vm_readv(t, &res);
	print_result("process_vm_readv", ret, &res);

	memset(&res, 0, sizeof(res));
	ret = probe_ptrace(t, &res);
	print_result("ptrace PEEKDATA", ret, &res);

	memset(&res, 0, sizeof(res));
	ret = probe_core_dump(t, &res);
	print_result("core dump", ret, &res);
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s PID MARKER_HEX [START-END]\n"
		"  MARKER_HEX: 64 hex digits; START-END: hex, page aligned\n", prog);
	return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	struct target t = { 0 };
	int ret;

	if (argc < 3 || argc > 4)
		return usage(argv[0]);
	t.pid = atoi(argv[1]);
	if (t.pid <= 0 || parse_marker(argv[2], t.marker))
		return usage(argv[0]);
	if (argc == 4) {
		if (parse_range(argv[3], &t.ranges[0]))
			return usage(argv[0]);
		t.nr_ranges = 1;
	} else {
		ret = find_ram_ranges(&t, 1);
		if (!ret && !t.nr_ranges)
			ret = find_ram_ranges(&t, 0);
		if (ret) {
			fprintf(stderr, "%s: cannot read /proc/%d/maps: %s (is the PID right and are you root?)\n",
				argv[0], t.pid, strerror(-ret));
			return EXIT_FAILURE;
		}
		if (!t.nr_ranges) {
			fprintf(stderr, "%s: PID %d has no /memfd:, /secretmem or rw mapping of 32 MiB or more; give START-END\n",
				argv[0], t.pid);
			return EXIT_FAILURE;
		}
	}
	print_ranges(&t);
	probe_all(&t);
	return EXIT_SUCCESS;
}
