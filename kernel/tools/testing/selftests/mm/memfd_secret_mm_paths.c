// SPDX-License-Identifier: GPL-2.0
/*
 * The mm paths that take a page away from its owner, on a memfd_secret()
 * page: a poisoned secret page stays out of the direct map for good, also
 * once its file is gone (it is neither zeroed nor mapped again; memfd's
 * page, the control, is in the direct map throughout), and cannot be
 * unpoisoned into the page allocator; userfaultfd and MADV_COLLAPSE,
 * which would let another context fill or copy the pages, are refused
 * (on memfd and anonymous memory, the controls, they work).
 *
 * The direct map's state of a page is read from the kernel's page table
 * dump (PTDUMP_DEBUGFS); poison comes from hwpoison-inject (the secret
 * mapping cannot be poisoned with MADV_HWPOISON: that needs GUP, which
 * secretmem refuses).  Needs root and debugfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mman.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "vm_util.h"

#define PTDUMP		"/sys/kernel/debug/page_tables/kernel"
#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"
#define UNPOISON_PFN	"/sys/kernel/debug/hwpoison/unpoison-pfn"
#define MARKER		0x5ec2e7da7aull
#define BLOCK		(2UL << 20)
/*
 * Less than a 2 MiB block, so that the file's pages leave a split large
 * page of the direct map, one by one in the page table dump: a whole
 * block that left it in one change is missing from the dump (x86 leaves
 * a non-present PMD without PSE, which the page walk skips, so that the
 * range before it seems to go on).
 */
#define FILE_SIZE	(16UL << 12)

static int memfd_secret(unsigned int flags)
{
	return syscall(__NR_memfd_secret, flags);
}

/*
 * Whether the direct map maps @pfn (1) or not (0), from the kernel's page
 * table dump: its "Low Kernel Mapping" section starts at PAGE_OFFSET, and
 * a present range shows its permission, "RW" or "ro".  -1 if not found.
 * Only for pages of split large pages (see FILE_SIZE).
 */
static int direct_map_has_pfn(unsigned long pfn)
{
	unsigned long long start, end, addr = 0;
	bool in_direct_map = false;
	int present = -1;
	char line[256];
	FILE *f;

	f = fopen(PTDUMP, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "---[")) {
			in_direct_map = strstr(line, "Low Kernel Mapping");
			continue;
		}
		if (!in_direct_map ||
		    sscanf(line, "0x%llx-0x%llx", &start, &end) != 2)
			continue;
		if (!addr)
			addr = start + pfn * getpagesize();
		if (addr >= start && addr < end) {
			present = strstr(line, " RW ") || strstr(line, " ro ");
			break;
		}
	}
	fclose(f);
	return present;
}

static bool pfn_poisoned(unsigned long pfn)
{
	uint64_t flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0)
		return false;
	if (pageflags_get(pfn, fd, &flags))
		flags = 0;
	close(fd);
	return flags & KPF_HWPOISON;
}

/* Write @pfn to hwpoison-inject's @file: 0 or -errno */
static int hwpoison_inject(const char *file, unsigned long pfn)
{
	char buf[32];
	int fd, len, ret = 0;

	fd = open(file, O_WRONLY);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%lu\n", pfn);
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

static sigjmp_buf sigbus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(sigbus_jmp, 1);
}

/* Whether reading @p raises SIGBUS, as a poisoned page does. */
static bool read_raises_sigbus(volatile uint64_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	bool raised = false;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(sigbus_jmp, 1))
		raised = true;
	else
		(void)*p;
	sigaction(SIGBUS, &old, NULL);
	return raised;
}

FIXTURE(file) {
	int fd;
	uint64_t *mem;
	int pagemap;
};

FIXTURE_VARIANT(file) {
	bool secret;
	/* the page is populated by a read fault: mainline keeps it clean */
	bool read;
};

FIXTURE_VARIANT_ADD(file, secret) {
	.secret = true,
};

FIXTURE_VARIANT_ADD(file, secret_read) {
	.secret = true,
	.read = true,
};

/* the control: shmem's pages are in the direct map */
FIXTURE_VARIANT_ADD(file, memfd) {
	.secret = false,
};

FIXTURE_SETUP(file)
{
	self->mem = MAP_FAILED;
	self->pagemap = -1;
	self->fd = variant->secret ? memfd_secret(0) :
				     memfd_create("control", MFD_CLOEXEC);
	if (self->fd < 0)
		SKIP(return, "%s: %s",
		     variant->secret ? "memfd_secret()" : "memfd_create()",
		     strerror(errno));
	ASSERT_EQ(0, ftruncate(self->fd, FILE_SIZE));
	self->mem = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
	self->pagemap = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_LE(0, self->pagemap);
}

FIXTURE_TEARDOWN(file)
{
	if (self->mem != MAP_FAILED)
		munmap(self->mem, FILE_SIZE);
	if (self->fd >= 0)
		close(self->fd);
	if (self->pagemap >= 0)
		close(self->pagemap);
}

/*
 * A page of the file is poisoned (memory_failure(), as for a hardware
 * error): the owner's next read raises SIGBUS, and the page's place in
 * the direct map stays as it was: absent for a secret page, before and
 * after the file is gone, so that nothing ever reads or zeroes it
 * through the direct map.  memory_failure() cannot take a secret page
 * out of its file (EBUSY); it does take memfd's.  Once the file is gone,
 * the secret page is kept: unpoisoning it, which would give the page
 * allocator a page missing from the direct map, is refused (EBUSY);
 * memfd's page is unpoisoned.
 */
TEST_F(file, poisoned_page_keeps_direct_map_state)
{
	unsigned long pfn;
	int ret;

	if (access(PTDUMP, R_OK))
		SKIP(return, "%s: %s (no PTDUMP_DEBUGFS or debugfs?)", PTDUMP,
		     strerror(errno));
	if (access(CORRUPT_PFN, W_OK) || access(UNPOISON_PFN, W_OK))
		SKIP(return, "%s: %s (no HWPOISON_INJECT?)", CORRUPT_PFN,
		     strerror(errno));
	if (variant->read) {
		ASSERT_EQ(0, self->mem[0]);
	} else {
		self->mem[0] = MARKER;
	}
	pfn = pagemap_get_pfn(self->pagemap, (char *)self->mem);
	ASSERT_NE(-1UL, pfn);
	ASSERT_NE(0, pfn) TH_LOG("pagemap hides PFNs: not root?");
	ASSERT_EQ(!variant->secret, direct_map_has_pfn(pfn));

	ret = hwpoison_inject(CORRUPT_PFN, pfn);
	ASSERT_EQ(variant->secret ? -EBUSY : 0, ret) TH_LOG("corrupt-pfn: %s",
							    strerror(-ret));
	ASSERT_TRUE(pfn_poisoned(pfn));
	EXPECT_TRUE(read_raises_sigbus(self->mem));
	EXPECT_EQ(!variant->secret, direct_map_has_pfn(pfn));

	ASSERT_EQ(0, munmap(self->mem, FILE_SIZE));
	self->mem = MAP_FAILED;
	ASSERT_EQ(0, close(self->fd));
	self->fd = -1;
	EXPECT_EQ(!variant->secret, direct_map_has_pfn(pfn))
		TH_LOG("the poisoned page of a closed file is %s the direct map",
		       variant->secret ? "back in" : "missing from");
	ret = hwpoison_inject(UNPOISON_PFN, pfn);
	EXPECT_EQ(variant->secret ? -EBUSY : 0, ret) TH_LOG("unpoison-pfn: %s",
							     strerror(-ret));
	EXPECT_EQ(!variant->secret, direct_map_has_pfn(pfn));
}

/*
 * userfaultfd would let a handler decide what a secret page holds before
 * its owner touches it (MISSING, MINOR): registering a secret range is
 * refused with EINVAL; the same on memfd works.
 */
TEST_F(file, userfaultfd_register)
{
	struct uffdio_api api = { .api = UFFD_API };
	int uffd, ret;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(return, "userfaultfd(): %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));

	ret = uffd_register(uffd, self->mem, FILE_SIZE, true, false, false);
	EXPECT_EQ(variant->secret ? -EINVAL : 0, ret) TH_LOG("MISSING: %s",
							     strerror(-ret));
	if (!ret)
		uffd_unregister(uffd, self->mem, FILE_SIZE);
	ret = uffd_register(uffd, self->mem, FILE_SIZE, false, false, true);
	EXPECT_EQ(variant->secret ? -EINVAL : 0, ret) TH_LOG("MINOR: %s",
							     strerror(-ret));
	close(uffd);
}

/*
 * MADV_COLLAPSE copies a range's pages into a new huge page, which the
 * direct map maps: refused with EINVAL on secret memory.  The control
 * collapses anonymous memory faulted in as small pages.
 */
TEST(collapse_refused)
{
	uint64_t *secret, *anon;
	size_t i;
	char *area;
	int fd, ret;

	fd = memfd_secret(0);
	if (fd < 0)
		SKIP(return, "memfd_secret(): %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(fd, BLOCK));
	area = mmap(NULL, 2 * BLOCK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	secret = (uint64_t *)(((unsigned long)area + BLOCK - 1) & ~(BLOCK - 1));
	ASSERT_EQ(secret, mmap(secret, BLOCK, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED, fd, 0));
	for (i = 0; i < BLOCK / sizeof(*secret); i += 512)
		secret[i] = MARKER;
	EXPECT_EQ(-1, madvise(secret, BLOCK, MADV_COLLAPSE));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, munmap(area, 2 * BLOCK));
	close(fd);

	area = mmap(NULL, 2 * BLOCK, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	anon = (uint64_t *)(((unsigned long)area + BLOCK - 1) & ~(BLOCK - 1));
	ASSERT_EQ(0, madvise(anon, BLOCK, MADV_NOHUGEPAGE));
	for (i = 0; i < BLOCK / sizeof(*anon); i += 512)
		anon[i] = MARKER;
	ASSERT_TRUE(check_huge_anon(anon, 0, BLOCK));
	ASSERT_EQ(0, madvise(anon, BLOCK, MADV_HUGEPAGE));
	ret = madvise(anon, BLOCK, MADV_COLLAPSE);
	if (ret && (errno == EAGAIN || errno == ENOMEM)) {
		munmap(area, 2 * BLOCK);
		SKIP(return, "control: MADV_COLLAPSE of anonymous memory: %s",
		     strerror(errno));
	}
	EXPECT_EQ(0, ret) TH_LOG("control: %s", strerror(errno));
	EXPECT_TRUE(check_huge_anon(anon, 1, BLOCK));
	munmap(area, 2 * BLOCK);
}

TEST_HARNESS_MAIN
