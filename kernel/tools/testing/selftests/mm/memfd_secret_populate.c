// SPDX-License-Identifier: GPL-2.0
/*
 * How memfd_secret() memory is populated: a fault populates the aligned
 * 2 MiB block around it, within the VMA and the file, with one kernel TLB
 * flush; MADV_POPULATE_(READ|WRITE) fault it in; the pages are zeroed and
 * out of the direct map (/proc/kcore, with memfd as the control), also
 * while their file dies; a block stops short at the memcg limit and gives
 * back what it did not use; a block is completed around the pages it has,
 * and a fork()ed child's mapping, not charged to RLIMIT_MEMLOCK, fills no
 * block; concurrent faults on one block agree on its pages and build it
 * once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/elf.h>
#include <linux/magic.h>

#include "kselftest_harness.h"

#define BLOCK		(2UL << 20)
#define NR_BLOCKS	4
#define MARKER_QWORDS	4
#define NR_THREADS	4
/* flushes that other activity of an idle machine may add to a count */
#define FLUSH_SLACK	64
/* runs of a count, of which the lowest counts */
#define FLUSH_RUNS	3
#define KCORE_TIMEOUT	300

static unsigned long page_size;

static int memfd_secret(unsigned int flags)
{
	return syscall(__NR_memfd_secret, flags);
}

/*
 * A memfd_secret() file of @size bytes, or -1 after a SKIP where there is
 * none: the caller returns.
 */
static int secret_file(struct __test_metadata *_metadata, size_t size)
{
	int fd = memfd_secret(0);

	page_size = sysconf(_SC_PAGESIZE);
	if (fd < 0)
		SKIP(return -1, "memfd_secret(): %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(fd, size));
	return fd;
}

static void *map_shared(int fd, size_t len, off_t off)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
}

/* Pages of [@addr, @addr + @len) in the page cache; -1 on error. */
static long resident_pages(void *addr, size_t len, long *first)
{
	size_t i, n = len / page_size;
	unsigned char *vec = malloc(n);
	long count = 0;

	*first = -1;
	if (!vec || mincore(addr, len, vec)) {
		free(vec);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!(vec[i] & 1))
			continue;
		if (*first < 0)
			*first = i;
		count++;
	}
	free(vec);
	return count;
}

static bool all_zero(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i += sizeof(long))
		if (*(const long *)(p + i))
			return false;
	return true;
}

/*
 * Kernel TLB flushes each CPU performed, from CONFIG_DEBUG_TLBFLUSH's
 * counters: a page flushed alone counts one nr_tlb_local_flush_one, a
 * whole-TLB flush one of the others.  -1 if the kernel does not count.
 */
static long tlb_flushes(void)
{
	char name[64];
	long val, sum = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &val) == 2)
		if (!strcmp(name, "nr_tlb_local_flush_one") ||
		    !strcmp(name, "nr_tlb_local_flush_all") ||
		    !strcmp(name, "nr_tlb_remote_flush_received"))
			sum = (sum < 0 ? 0 : sum) + val;
	fclose(f);
	return sum;
}

FIXTURE(secret) {
	int fd;
	size_t size;
	char *mem;
};

FIXTURE_SETUP(secret)
{
	self->size = NR_BLOCKS * BLOCK;
	self->mem = MAP_FAILED;
	self->fd = secret_file(_metadata, self->size);
	if (self->fd < 0)
		return;
	self->mem = map_shared(self->fd, self->size, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
}

FIXTURE_TEARDOWN(secret)
{
	if (self->mem != MAP_FAILED)
		munmap(self->mem, self->size);
	if (self->fd >= 0)
		close(self->fd);
}

FIXTURE(populate) {
	int fd;
	char *mem;
};

FIXTURE_VARIANT(populate) {
	int advice;
};

FIXTURE_VARIANT_ADD(populate, write) {
	.advice = MADV_POPULATE_WRITE,
};

FIXTURE_VARIANT_ADD(populate, read) {
	.advice = MADV_POPULATE_READ,
};

FIXTURE_SETUP(populate)
{
	self->mem = MAP_FAILED;
	self->fd = secret_file(_metadata, NR_BLOCKS * BLOCK);
	if (self->fd < 0)
		return;
	self->mem = map_shared(self->fd, NR_BLOCKS * BLOCK, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
}

FIXTURE_TEARDOWN(populate)
{
	if (self->mem != MAP_FAILED)
		munmap(self->mem, NR_BLOCKS * BLOCK);
	if (self->fd >= 0)
		close(self->fd);
}

/* MADV_POPULATE_(READ|WRITE) make every page resident, and zero. */
TEST_F(populate, zeroed)
{
	size_t size = NR_BLOCKS * BLOCK;
	long first;

	ASSERT_EQ(0, madvise(self->mem, size, variant->advice));
	EXPECT_EQ(size / page_size, resident_pages(self->mem, size, &first));
	EXPECT_TRUE(all_zero(self->mem, size));
}

/* One write in the second block brings in that block, and nothing else. */
TEST_F(secret, fault_populates_aligned_block)
{
	long first;

	self->mem[BLOCK + 5 * page_size] = 1;
	EXPECT_EQ(BLOCK / page_size,
		  resident_pages(self->mem, self->size, &first));
	EXPECT_EQ(BLOCK / page_size, first);
	self->mem[BLOCK + 5 * page_size] = 0;
	EXPECT_TRUE(all_zero(self->mem + BLOCK, BLOCK));
}

/* A mapping of 16 pages in the middle of a block populates those only. */
TEST_F(secret, fault_block_stays_in_vma)
{
	off_t off = BLOCK + 16 * page_size;
	size_t len = 16 * page_size;
	char *window = map_shared(self->fd, len, off);
	long first;

	ASSERT_NE(MAP_FAILED, window);
	window[0] = 1;
	EXPECT_EQ(len / page_size,
		  resident_pages(self->mem, self->size, &first));
	EXPECT_EQ(off / page_size, first);
	munmap(window, len);
}

/*
 * A block that is half there is completed by one fault, at its top: the
 * fill goes around the pages the file has.
 */
TEST_F(secret, fault_completes_partial_block)
{
	char *half = map_shared(self->fd, BLOCK / 2, 0);
	long first;

	ASSERT_NE(MAP_FAILED, half);
	half[0] = 1;
	munmap(half, BLOCK / 2);
	EXPECT_EQ(BLOCK / 2 / page_size,
		  resident_pages(self->mem, self->size, &first));
	self->mem[BLOCK - page_size] = 1;
	EXPECT_EQ(BLOCK / page_size,
		  resident_pages(self->mem, self->size, &first));
	EXPECT_EQ(0, first);
}

/*
 * A fork()ed child's copy of a mapping was not charged to RLIMIT_MEMLOCK
 * (it is not VM_LOCKED): a fault through it populates its page alone.
 */
TEST_F(secret, forked_mapping_populates_page_alone)
{
	long first;
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		self->mem[BLOCK + 5 * page_size] = 1;
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(1, resident_pages(self->mem, self->size, &first));
	EXPECT_EQ(BLOCK / page_size + 5, first);
}

/* A block stops at the end of the file. */
TEST(fault_block_stays_in_file)
{
	size_t size = 3 * getpagesize();
	int fd = secret_file(_metadata, size);
	long first;
	char *mem;

	if (fd < 0)
		return;
	mem = map_shared(fd, BLOCK, 0);
	ASSERT_NE(MAP_FAILED, mem);
	mem[0] = 1;
	EXPECT_EQ(3, resident_pages(mem, BLOCK, &first));
	munmap(mem, BLOCK);
	close(fd);
}

/*
 * Why flushes cannot be counted here, or NULL: CONFIG_DEBUG_TLBFLUSH
 * counts them, and x86 counts none that INVLPGB broadcasts.
 */
static const char *flushes_uncounted(void)
{
	char line[4096];
	FILE *f;

	if (tlb_flushes() < 0)
		return "no TLB flush counters (CONFIG_DEBUG_TLBFLUSH)";
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) && strstr(line, " invlpgb")) {
			fclose(f);
			return "INVLPGB: kernel TLB flushes are not counted";
		}
	if (f)
		fclose(f);
	return NULL;
}

/*
 * Kernel TLB flushes while a new secret file of NR_BLOCKS blocks is
 * populated, by MADV_POPULATE_WRITE or by a write to every page: the
 * lowest of FLUSH_RUNS runs, so that another task's flushes do not count.
 */
static long populate_flushes(struct __test_metadata *_metadata, bool touch)
{
	size_t size = NR_BLOCKS * BLOCK, off;
	long before, least = LONG_MAX;
	char *mem;
	int i, fd;

	for (i = 0; i < FLUSH_RUNS; i++) {
		fd = secret_file(_metadata, size);
		if (fd < 0)
			return -1;
		mem = map_shared(fd, size, 0);
		EXPECT_NE(MAP_FAILED, mem);
		if (mem == MAP_FAILED) {
			close(fd);
			return -1;
		}
		before = tlb_flushes();
		if (touch)
			for (off = 0; off < size; off += page_size)
				mem[off] = 1;
		else
			EXPECT_EQ(0, madvise(mem, size, MADV_POPULATE_WRITE));
		before = tlb_flushes() - before;
		if (before < least)
			least = before;
		munmap(mem, size);
		close(fd);
	}
	return least;
}

/* Populating takes one kernel TLB flush per CPU and block, not per page. */
TEST(populate_flushes_per_block)
{
	long bound = NR_BLOCKS * sysconf(_SC_NPROCESSORS_ONLN) + FLUSH_SLACK;
	const char *why = flushes_uncounted();
	long flushes;

	if (why)
		SKIP(return, "%s", why);
	flushes = populate_flushes(_metadata, false);
	TH_LOG("%ld kernel TLB flushes for %lu pages", flushes,
	       NR_BLOCKS * BLOCK / page_size);
	EXPECT_GE(bound, flushes);
}

/* So does writing every page, as a guest or QEMU without it does. */
TEST(touch_flushes_per_block)
{
	long bound = NR_BLOCKS * sysconf(_SC_NPROCESSORS_ONLN) + FLUSH_SLACK;
	const char *why = flushes_uncounted();
	long flushes;

	if (why)
		SKIP(return, "%s", why);
	flushes = populate_flushes(_metadata, true);
	TH_LOG("%ld kernel TLB flushes for %lu pages", flushes,
	       NR_BLOCKS * BLOCK / page_size);
	EXPECT_GE(bound, flushes);
}

struct toucher {
	char *mem;
	size_t size;
	int id;
};

/* Write id + 1 to qword id of every page, starting at a page of our own. */
static void *touch_pages(void *arg)
{
	struct toucher *t = arg;
	size_t pages = t->size / page_size, i, n;

	for (i = 0; i < pages; i++) {
		n = (i + t->id * pages / NR_THREADS) % pages;
		((uint64_t *)(t->mem + n * page_size))[t->id] = t->id + 1;
	}
	return NULL;
}

/* Threads that fault the same blocks at once all land on the same pages. */
TEST_F(secret, concurrent_faults)
{
	struct toucher t[NR_THREADS];
	pthread_t thread[NR_THREADS];
	size_t off;
	int i;

	for (i = 0; i < NR_THREADS; i++) {
		t[i] = (struct toucher){ self->mem, self->size, i };
		ASSERT_EQ(0, pthread_create(&thread[i], NULL, touch_pages, &t[i]));
	}
	for (i = 0; i < NR_THREADS; i++)
		ASSERT_EQ(0, pthread_join(thread[i], NULL));
	for (off = 0; off < self->size; off += page_size) {
		uint64_t *q = (uint64_t *)(self->mem + off);

		for (i = 0; i < NR_THREADS; i++)
			ASSERT_EQ(i + 1, q[i]);
		ASSERT_TRUE(all_zero((char *)&q[NR_THREADS],
				     page_size - NR_THREADS * sizeof(*q)));
	}
}

/* x86's DirectMap4k from /proc/meminfo, in KiB; -1 if there is none. */
static long direct_map_4k(void)
{
	char name[64];
	long val = -1, v;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld kB", name, &v) == 2)
		if (!strcmp(name, "DirectMap4k:"))
			val = v;
	fclose(f);
	return val;
}

#define RACE_BLOCKS	8

struct racer {
	char *mem;
	pthread_barrier_t *go;
	int id;
};

/* Fault the blocks in order, a page of our own in each, with the others. */
static void *race_blocks(void *arg)
{
	struct racer *r = arg;
	int b;

	pthread_barrier_wait(r->go);
	for (b = 0; b < RACE_BLOCKS; b++)
		r->mem[b * BLOCK + (r->id * 7 + 3) * page_size] = 1;
	return NULL;
}

/*
 * Faults racing on the same blocks, one thread per CPU, build each block
 * once: no block is built twice and given back page by page, which
 * splits the direct map's large pages for good (x86's DirectMap4k grows).
 */
TEST(racing_faults_keep_direct_map_whole)
{
	int fd = secret_file(_metadata, RACE_BLOCKS * BLOCK), i, nr;
	struct racer r[NR_THREADS];
	pthread_t thread[NR_THREADS];
	pthread_barrier_t go;
	long before, grown;
	char *mem;

	if (fd < 0)
		return;
	nr = sysconf(_SC_NPROCESSORS_ONLN);
	if (nr > NR_THREADS)
		nr = NR_THREADS;
	before = direct_map_4k();
	if (nr < 2 || before < 0) {
		close(fd);
		SKIP(return, "needs 2 CPUs and DirectMap4k in /proc/meminfo");
	}
	mem = map_shared(fd, RACE_BLOCKS * BLOCK, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, pthread_barrier_init(&go, NULL, nr));
	for (i = 0; i < nr; i++) {
		r[i] = (struct racer){ mem, &go, i };
		ASSERT_EQ(0, pthread_create(&thread[i], NULL, race_blocks, &r[i]));
	}
	for (i = 0; i < nr; i++)
		ASSERT_EQ(0, pthread_join(thread[i], NULL));
	pthread_barrier_destroy(&go);
	munmap(mem, RACE_BLOCKS * BLOCK);
	close(fd);
	grown = direct_map_4k() - before;
	TH_LOG("DirectMap4k grew by %ld kB over %d blocks", grown, RACE_BLOCKS);
	/* one large page of slack for the rest of the machine */
	EXPECT_GE(2048, grown);
}

/*
 * Copies of the marker in the direct map, the RAM segments of /proc/kcore.
 * @inv holds the marker complemented, so that this process never stores
 * it; kcore reads pages missing from the direct map as zeroes.
 */
static int kcore_count(const uint64_t *inv)
{
	const size_t chunk = 1 << 20;
	struct elf64_hdr eh;
	struct elf64_phdr ph;
	uint64_t *buf, off;
	int fd, i, hits = 0;
	ssize_t n, j;

	fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0)
		return -errno;	/* a SKIP: no CONFIG_PROC_KCORE, not root */
	buf = malloc(chunk);
	if (!buf || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh)) {
		hits = -EIO;
		goto out;
	}
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) !=
		    sizeof(ph)) {
			hits = -EIO;
			goto out;
		}
		/* RAM: has a physical address, and is not kernel text */
		if (ph.p_type != PT_LOAD || ph.p_paddr == (uint64_t)-1 ||
		    ph.p_vaddr >= 0xffffffff80000000ull)
			continue;
		for (off = 0; off < ph.p_memsz; off += chunk) {
			n = pread(fd, buf, chunk, ph.p_offset + off);
			if (n <= 0)
				break;
			for (j = 0; j + MARKER_QWORDS <= n / 8; j++)
				if (buf[j] == ~inv[0] && buf[j + 1] == ~inv[1] &&
				    buf[j + 2] == ~inv[2] && buf[j + 3] == ~inv[3])
					hits++;
		}
	}
out:
	free(buf);
	close(fd);
	return hits;
}

/*
 * Populate @mem, write a random marker to the last page of its third
 * block, which the populating fault did not touch itself, scan kcore.
 */
static int populated_marker_hits(struct __test_metadata *_metadata,
				 char *mem, size_t size)
{
	uint64_t inv[MARKER_QWORDS];
	uint64_t *dst = (uint64_t *)(mem + 3 * BLOCK - page_size + 64);
	int i;

	EXPECT_EQ(0, madvise(mem, size, MADV_POPULATE_WRITE));
	EXPECT_EQ(sizeof(inv), getrandom(inv, sizeof(inv), 0));
	for (i = 0; i < MARKER_QWORDS; i++)
		dst[i] = ~inv[i];
	return kcore_count(inv);
}

TEST_F_TIMEOUT(secret, kcore_no_hits, KCORE_TIMEOUT)
{
	int hits = populated_marker_hits(_metadata, self->mem, self->size);

	if (hits < 0 && hits != -EIO)
		SKIP(return, "/proc/kcore: %s", strerror(-hits));
	EXPECT_EQ(0, hits);
}

/* The control: the same on memfd finds the marker. */
TEST_F_TIMEOUT(secret, kcore_memfd_control, KCORE_TIMEOUT)
{
	size_t size = NR_BLOCKS * BLOCK;
	int fd = memfd_create("control", 0), hits;
	char *mem;

	page_size = sysconf(_SC_PAGESIZE);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, size));
	mem = map_shared(fd, size, 0);
	ASSERT_NE(MAP_FAILED, mem);
	hits = populated_marker_hits(_metadata, mem, size);
	if (hits < 0 && hits != -EIO)
		SKIP(return, "/proc/kcore: %s", strerror(-hits));
	EXPECT_LE(1, hits);
	munmap(mem, size);
	close(fd);
}

/* Dying files per test, and how many blocks each has. */
#define DYING_ROUNDS	8
#define DYING_BLOCKS	4

/*
 * A file dying while another CPU reads its pages' places in the direct
 * map through /proc/kcore: the file's pages, by physical address (from
 * /proc/self/pagemap), the marker's offset in each, and what the reader
 * saw once the file started to go.
 */
struct dying_file {
	int kcore;
	size_t nr;
	off_t *kcore_off;	/* the marker's offset in kcore, per page */
	uint64_t inv[MARKER_QWORDS];
	volatile int closing;
	volatile int stop;
	long hits;
	volatile long passes_closing;
};

/* The kcore offset of physical address @phys, or -1 if no RAM segment. */
static off_t kcore_offset(int kcore, uint64_t phys)
{
	struct elf64_hdr eh;
	struct elf64_phdr ph;
	int i;

	if (pread(kcore, &eh, sizeof(eh), 0) != sizeof(eh))
		return -1;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(kcore, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) !=
		    sizeof(ph))
			return -1;
		if (ph.p_type == PT_LOAD && ph.p_paddr != (uint64_t)-1 &&
		    ph.p_vaddr < 0xffffffff80000000ull &&
		    phys >= ph.p_paddr && phys < ph.p_paddr + ph.p_memsz)
			return ph.p_offset + (phys - ph.p_paddr);
	}
	return -1;
}

static void *read_dying_file(void *arg)
{
	struct dying_file *d = arg;
	uint64_t q[MARKER_QWORDS];
	int closing;
	size_t i;

	while (!d->stop) {
		closing = d->closing;
		for (i = 0; i < d->nr; i++) {
			if (pread(d->kcore, q, sizeof(q), d->kcore_off[i]) !=
			    sizeof(q))
				continue;
			if (closing && q[0] == ~d->inv[0] && q[1] == ~d->inv[1] &&
			    q[2] == ~d->inv[2] && q[3] == ~d->inv[3])
				d->hits++;
		}
		d->passes_closing += closing;
	}
	return NULL;
}

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/*
 * One round: a file from @create, populated, the marker in every page,
 * its pages' kcore offsets found; a reader on CPU 1 scans them while this
 * thread, on CPU 0, unmaps and closes the file, and for two passes after.
 * Returns the reader's hits, or -errno for a SKIP.
 */
static long dying_file_hits(struct __test_metadata *_metadata,
			    int (*create)(size_t))
{
	size_t size = DYING_BLOCKS * BLOCK, i, n = size / page_size;
	struct dying_file d = { .nr = n };
	uint64_t entry, *dst;
	pthread_t reader;
	int fd, pagemap;
	long ret = 0;
	char *mem;

	d.kcore = open("/proc/kcore", O_RDONLY);
	if (d.kcore < 0)
		return -errno;
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	d.kcore_off = calloc(n, sizeof(*d.kcore_off));
	fd = create(size);
	if (pagemap < 0 || !d.kcore_off || fd < 0) {
		ret = -errno;
		goto out;
	}
	mem = map_shared(fd, size, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, madvise(mem, size, MADV_POPULATE_WRITE));
	ASSERT_EQ(sizeof(d.inv), getrandom(d.inv, sizeof(d.inv), 0));
	for (i = 0; i < n; i++) {
		dst = (uint64_t *)(mem + i * page_size + 64);
		for (int j = 0; j < MARKER_QWORDS; j++)
			dst[j] = ~d.inv[j];
		ASSERT_EQ(sizeof(entry),
			  pread(pagemap, &entry, sizeof(entry),
				(uintptr_t)(mem + i * page_size) / page_size *
				sizeof(entry)));
		/* PFNs read as 0 without CAP_SYS_ADMIN */
		if (!(entry & (1ULL << 63)) || !(entry & ((1ULL << 55) - 1))) {
			munmap(mem, size);
			close(fd);
			ret = -EPERM;
			goto out;
		}
		d.kcore_off[i] = kcore_offset(d.kcore,
					      (entry & ((1ULL << 55) - 1)) *
					      page_size);
		ASSERT_LE(0, d.kcore_off[i]);
		d.kcore_off[i] += 64;
	}
	pin_to_cpu(1);
	ASSERT_EQ(0, pthread_create(&reader, NULL, read_dying_file, &d));
	pin_to_cpu(0);
	d.closing = 1;
	munmap(mem, size);
	close(fd);
	while (d.passes_closing < 2)
		sched_yield();
	d.stop = 1;
	ASSERT_EQ(0, pthread_join(reader, NULL));
	ret = d.hits;
out:
	if (pagemap >= 0)
		close(pagemap);
	free(d.kcore_off);
	close(d.kcore);
	return ret;
}

static int create_secret(size_t size)
{
	int fd = memfd_secret(0);

	if (fd >= 0 && ftruncate(fd, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int create_memfd(size_t size)
{
	int fd = memfd_create("dying", 0);

	if (fd >= 0 && ftruncate(fd, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Over DYING_ROUNDS files: the marker hits a reader of /proc/kcore finds
 * while each file dies, or a SKIP's -errno.
 */
static long dying_files_hits(struct __test_metadata *_metadata,
			     int (*create)(size_t))
{
	long hits = 0, h;
	int i;

	page_size = sysconf(_SC_PAGESIZE);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return -ERANGE;
	for (i = 0; i < DYING_ROUNDS; i++) {
		h = dying_file_hits(_metadata, create);
		if (h < 0)
			return h;
		hits += h;
	}
	return hits;
}

/*
 * A dying secret file's pages are zeroed before they go back to the
 * direct map: another CPU reading them there never finds the marker.
 */
TEST_F_TIMEOUT(secret, kcore_while_file_dies, KCORE_TIMEOUT)
{
	long hits = dying_files_hits(_metadata, create_secret);

	if (hits == -ERANGE)
		SKIP(return, "needs a second CPU to read while the file dies");
	if (hits < 0)
		SKIP(return, "/proc/kcore or PFNs: %s", strerror(-hits));
	TH_LOG("%ld marker hits over %d dying files", hits, DYING_ROUNDS);
	EXPECT_EQ(0, hits);
}

/* The control: a dying memfd's freed pages keep their data, found there. */
TEST_F_TIMEOUT(secret, kcore_while_memfd_dies, KCORE_TIMEOUT)
{
	long hits = dying_files_hits(_metadata, create_memfd);

	if (hits == -ERANGE)
		SKIP(return, "needs a second CPU to read while the file dies");
	if (hits < 0)
		SKIP(return, "/proc/kcore or PFNs: %s", strerror(-hits));
	TH_LOG("%ld marker hits over %d dying files", hits, DYING_ROUNDS);
	EXPECT_LE(1, hits);
}

/*
 * A process without CAP_IPC_LOCK maps no more than RLIMIT_MEMLOCK, and a
 * fault populates no more than it mapped.
 */
TEST(memlock_bounds_population)
{
	int fd = secret_file(_metadata, BLOCK), status;
	long first;
	char *mem;
	pid_t pid;

	if (fd < 0)
		return;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct rlimit rl = { BLOCK / 2, BLOCK / 2 };

		if (setrlimit(RLIMIT_MEMLOCK, &rl) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		mem = map_shared(fd, BLOCK, 0);
		if (mem != MAP_FAILED || errno != EAGAIN)
			_exit(3);
		mem = map_shared(fd, BLOCK / 2, 0);
		if (mem == MAP_FAILED)
			_exit(4);
		mem[0] = 1;
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		SKIP(return, "cannot set RLIMIT_MEMLOCK or become nobody");
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* mincore() tells unmapped pages of the file only to its owner */
	mem = map_shared(fd, BLOCK, 0);
	ASSERT_NE(MAP_FAILED, mem);
	EXPECT_EQ(BLOCK / 2 / page_size, resident_pages(mem, BLOCK, &first));
	munmap(mem, BLOCK);
	close(fd);
}

/*
 * The cgroup v2 folder of this test, or NULL with a reason in @why.
 * Where /sys/fs/cgroup is not cgroup v2, the test mounts one there in a
 * mount namespace of its own: the machine's mounts stay as they are.
 */
static const char *memcg_dir(char *why, size_t len)
{
	static const char dir[] = "/sys/fs/cgroup/memfd_secret_populate";
	struct statfs sfs;
	int fd;

	if (statfs("/sys/fs/cgroup", &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		if (unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL)) {
			snprintf(why, len, "cannot mount cgroup v2: %s",
				 strerror(errno));
			return NULL;
		}
	}
	fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY);
	if (fd < 0 || write(fd, "+memory", 7) != 7) {
		snprintf(why, len, "no cgroup v2 memory controller: %s",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	rmdir(dir);
	if (mkdir(dir, 0755)) {
		snprintf(why, len, "mkdir %s: %s", dir, strerror(errno));
		return NULL;
	}
	return dir;
}

static long memcg_read(const char *dir, const char *file, const char *key)
{
	char path[128], name[64];
	long val = -1, v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!key) {
		if (fscanf(f, "%ld", &v) == 1)
			val = v;
	} else {
		while (fscanf(f, "%63s %ld", name, &v) == 2)
			if (!strcmp(name, key))
				val = v;
	}
	fclose(f);
	return val;
}

static int memcg_write(const char *dir, const char *file, long val)
{
	char path[128], buf[32];
	int fd, len, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%ld", val);
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * In a memcg that has room for a block and a half, the second block stops
 * short at the limit: no OOM kill, the fault itself succeeds, the pages it
 * did not add go back, and closing the file uncharges the pages.  The
 * child allocates nothing once it has faulted: at the limit, that would
 * be the OOM kill.
 */
TEST(memcg_limit_stops_block)
{
	int fd = secret_file(_metadata, 2 * BLOCK), go[2], status;
	const char *dir;
	long first;
	char why[160], c = 0, *mem;
	pid_t pid;

	if (fd < 0)
		return;
	dir = memcg_dir(why, sizeof(why));
	if (!dir) {
		close(fd);
		SKIP(return, "%s", why);
	}
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(go[1]);
		mem = map_shared(fd, 2 * BLOCK, 0);
		if (mem == MAP_FAILED)
			_exit(2);
		/* the parent moves us into the memcg */
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		mem[0] = 1;
		mem[BLOCK] = 1;
		_exit(0);
	}
	close(go[0]);
	ASSERT_EQ(0, memcg_write(dir, "memory.max", BLOCK + BLOCK / 2));
	ASSERT_EQ(0, memcg_write(dir, "cgroup.procs", pid));
	ASSERT_EQ(1, write(go[1], &c, 1));
	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, memcg_read(dir, "memory.events", "oom_kill"));
	TH_LOG("%ld bytes charged", memcg_read(dir, "memory.current", NULL));
	/* the first block whole, the second one in part */
	mem = map_shared(fd, 2 * BLOCK, 0);
	ASSERT_NE(MAP_FAILED, mem);
	EXPECT_LT(BLOCK / page_size, resident_pages(mem, 2 * BLOCK, &first));
	EXPECT_GT(2 * BLOCK / page_size, resident_pages(mem, 2 * BLOCK, &first));
	munmap(mem, 2 * BLOCK);
	close(fd);
	/* no page of the file is left charged */
	EXPECT_EQ(0, memcg_read(dir, "memory.stat", "file"));
	EXPECT_EQ(0, rmdir(dir));
}

TEST_HARNESS_MAIN
