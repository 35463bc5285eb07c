// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest memory backed by memfd_secret(2) with SECRETMEM_ALLOW_KVM.
 *
 * The guest reads and writes a secret memslot, also through
 * KVM_SET_USER_MEMORY_REGION2 and read-only; kvm-clock lives in it
 * (gfn_to_pfn_cache, through secretmem's alias of the page), also across
 * the deletion of the slot and the release of its file; steal time too
 * (uaccess); VMSAVE/VMLOAD and nested VMRUN use it (kvm_vcpu_map), with
 * vmcb12, the host save area and L2's code and stack in it, without a vmap
 * or a TLB flush per VMRUN; MMIO is emulated from code fetched from it;
 * dirty logging and the dirty ring track it; a guest's first touch of it
 * flushes the kernel TLB once per 2 MiB block, not per page; and it can
 * be unmapped, closed, deleted from the VM or left by a killed VMM under
 * a running vCPU; a poisoned page that KVM maps stays out of the direct
 * map when its slot and file go.  The same memory stays closed to every other kernel user:
 * O_DIRECT, io_uring fixed buffers, vmsplice, /proc/pid/mem, ptrace and
 * process_vm_readv fail, and /proc/kcore cannot see it, while each of them
 * reaches the same data in anonymous memory (positive controls).
 *
 * Kernels without SECRETMEM_ALLOW_KVM skip every test; a kernel that
 * accepts the flag must run every test that needs KVM to map the memory.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/stddef.h>	/* __DECLARE_FLEX_ARRAY, for io_uring.h */
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/elf.h>
#include <linux/secretmem.h>

#include <asm/kvm_para.h>
#include <asm/pvclock-abi.h>

#include "kvm_util.h"
#include "processor.h"
#include "svm_util.h"
#include "ucall_common.h"
#include "kselftest_harness.h"

#define SLOT		10
#define MEM_GPA		0xc0000000ul
#define NR_PAGES	16
#define MEM_SIZE	(NR_PAGES * PAGE_SIZE)
#define MMIO_GPA	(MEM_GPA + 2 * MEM_SIZE)
#define MMIO_VAL	0x5ec2e7u
#define GUEST_WORD	0x5ec2e7000000ull
#define MARKER_QWORDS	4
#define MARKER_OFFSET	0x100
#define TIMEOUT		300

static int memfd_secret(unsigned int flags)
{
	return syscall(__NR_memfd_secret, flags);
}

/* Map a secretmem file of @size, or return MAP_FAILED with errno. */
static void *secret_map(unsigned int flags, size_t size, int *fdp)
{
	void *mem;
	int fd;

	fd = memfd_secret(flags);
	if (fd < 0)
		return MAP_FAILED;
	if (ftruncate(fd, size)) {
		close(fd);
		return MAP_FAILED;
	}
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		close(fd);
	else
		*fdp = fd;
	return mem;
}

struct secret_vm {
	int fd;
	void *mem;
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
};

FIXTURE(secretmem) {
	struct secret_vm t;
};

/*
 * Fixture setup: map a secret file that allows KVM into @t, or skip the
 * test when memfd_secret(2) refuses (no secretmem at all, or no
 * SECRETMEM_ALLOW_KVM: EINVAL).
 */
static void secret_setup(struct __test_metadata *_metadata, struct secret_vm *t)
{
	int fd = memfd_secret(0);

	t->vm = NULL;
	t->fd = -1;
	t->mem = NULL;
	if (fd < 0)
		SKIP(return, "memfd_secret(2): %s", strerror(errno));
	close(fd);
	t->mem = secret_map(SECRETMEM_ALLOW_KVM, MEM_SIZE, &t->fd);
	if (t->mem == MAP_FAILED && errno == EINVAL)
		SKIP(return, "memfd_secret(SECRETMEM_ALLOW_KVM): EINVAL, no opt-in");
	ASSERT_NE(MAP_FAILED, t->mem) TH_LOG("secretmem: %s", strerror(errno));
}

static void secret_teardown(struct secret_vm *t)
{
	if (t->vm)
		kvm_vm_free(t->vm);
	if (t->mem && t->mem != MAP_FAILED)
		munmap(t->mem, MEM_SIZE);
	if (t->fd >= 0)
		close(t->fd);
}

FIXTURE_SETUP(secretmem)
{
	secret_setup(_metadata, &self->t);
}

FIXTURE_TEARDOWN(secretmem)
{
	secret_teardown(&self->t);
}

/* Add @mem as memslot SLOT at MEM_GPA, mapped at the same GVA. */
static void add_slot(struct secret_vm *self, void *mem, u32 slot_flags)
{
	vm_set_user_memory_region(self->vm, SLOT, slot_flags, MEM_GPA,
				  MEM_SIZE, mem);
	virt_map(self->vm, MEM_GPA, MEM_GPA, NR_PAGES);
}

/* One vCPU running @guest, with @mem as memslot SLOT at MEM_GPA = its GVA. */
static void vm_with_slot(struct secret_vm *self, void *guest, void *mem,
			 u32 slot_flags)
{
	self->vm = vm_create_with_one_vcpu(&self->vcpu, guest);
	add_slot(self, mem, slot_flags);
}

/* The ucall of the exit KVM_RUN returned; fails on a guest assert. */
static u64 ucall_of_exit(struct __test_metadata *_metadata,
			 struct kvm_vcpu *vcpu, struct ucall *uc)
{
	EXPECT_EQ(KVM_EXIT_IO, vcpu->run->exit_reason);
	if (get_ucall(vcpu, uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(*uc);
	return uc->cmd;
}

/* Run until the next ucall; returns its command, fails on a guest assert. */
static u64 run_to_ucall(struct __test_metadata *_metadata,
			struct kvm_vcpu *vcpu, struct ucall *uc)
{
	int rc = _vcpu_run(vcpu);

	EXPECT_EQ(0, rc) TH_LOG("KVM_RUN: %s", strerror(errno));
	if (rc)
		return UCALL_NONE;
	return ucall_of_exit(_metadata, vcpu, uc);
}

/* Writes a word to each page of the slot, then checks the host's answers. */
static void guest_rw(u64 *mem)
{
	int i;

	for (i = 0; i < NR_PAGES; i++)
		mem[i * PAGE_SIZE / 8] = GUEST_WORD | i;
	GUEST_SYNC(1);
	for (i = 0; i < NR_PAGES; i++)
		GUEST_ASSERT_EQ(mem[i * PAGE_SIZE / 8 + 1], ~(u64)i);
	GUEST_DONE();
}

/* Run guest_rw on the slot at MEM_GPA until it has written every page. */
static void guest_rw_to_sync(struct __test_metadata *_metadata,
			     struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_args_set(vcpu, 1, MEM_GPA);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, vcpu, &uc));
}

/* Check guest_rw's words in @mem, answer them, and let it finish. */
static void guest_rw_finish(struct __test_metadata *_metadata,
			    struct kvm_vcpu *vcpu, u64 *mem)
{
	struct ucall uc;
	int i;

	for (i = 0; i < NR_PAGES; i++) {
		ASSERT_EQ(GUEST_WORD | i, mem[i * PAGE_SIZE / 8]);
		mem[i * PAGE_SIZE / 8 + 1] = ~(u64)i;
	}
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, vcpu, &uc));
}

TEST_F_TIMEOUT(secretmem, guest_read_write, TIMEOUT)
{
	vm_with_slot(&self->t, guest_rw, self->t.mem, 0);
	guest_rw_to_sync(_metadata, self->t.vcpu);
	guest_rw_finish(_metadata, self->t.vcpu, self->t.mem);
}

/* Secretmem that did not opt in stays refused to KVM. */
TEST_F_TIMEOUT(secretmem, not_opted_in_efault, TIMEOUT)
{
	void *plain;
	int fd = -1;

	plain = secret_map(0, MEM_SIZE, &fd);
	ASSERT_NE(MAP_FAILED, plain);
	vm_with_slot(&self->t, guest_rw, plain, 0);
	vcpu_args_set(self->t.vcpu, 1, MEM_GPA);
	EXPECT_EQ(-1, _vcpu_run(self->t.vcpu));
	EXPECT_EQ(EFAULT, errno);
	kvm_vm_free(self->t.vm);
	self->t.vm = NULL;
	munmap(plain, MEM_SIZE);
	close(fd);
}

/* A kernel that accepts the flag says so to KVM users. */
TEST_F_TIMEOUT(secretmem, capability, TIMEOUT)
{
	EXPECT_EQ(1, kvm_check_cap(KVM_CAP_SECRETMEM));
}

TEST_F_TIMEOUT(secretmem, user_memory_region2, TIMEOUT)
{
	if (!kvm_has_cap(KVM_CAP_USER_MEMORY2))
		SKIP(return, "no KVM_CAP_USER_MEMORY2");
	self->t.vm = vm_create_with_one_vcpu(&self->t.vcpu, guest_rw);
	vm_set_user_memory_region2(self->t.vm, SLOT, 0, MEM_GPA, MEM_SIZE,
				   self->t.mem, 0, 0);
	virt_map(self->t.vm, MEM_GPA, MEM_GPA, NR_PAGES);
	guest_rw_to_sync(_metadata, self->t.vcpu);
	guest_rw_finish(_metadata, self->t.vcpu, self->t.mem);
}

static void guest_read_then_write(u64 *mem)
{
	GUEST_ASSERT_EQ(READ_ONCE(mem[1]), 0x5ec2e7ull);
	WRITE_ONCE(mem[0], 1);
	GUEST_DONE();
}

/* A read-only slot: the guest reads it, its write exits as MMIO. */
TEST_F_TIMEOUT(secretmem, readonly_slot, TIMEOUT)
{
	u64 *mem = self->t.mem;
	struct kvm_run *run;
	struct ucall uc;

	if (!kvm_has_cap(KVM_CAP_READONLY_MEM))
		SKIP(return, "no KVM_CAP_READONLY_MEM");
	mem[1] = 0x5ec2e7ull;
	vm_with_slot(&self->t, guest_read_then_write, self->t.mem,
		     KVM_MEM_READONLY);
	vcpu_args_set(self->t.vcpu, 1, MEM_GPA);
	run = self->t.vcpu->run;
	ASSERT_EQ(0, _vcpu_run(self->t.vcpu)) TH_LOG("KVM_RUN: %s", strerror(errno));
	ASSERT_EQ(KVM_EXIT_MMIO, run->exit_reason);
	EXPECT_EQ(MEM_GPA, run->mmio.phys_addr);
	EXPECT_TRUE(run->mmio.is_write);
	EXPECT_EQ(0, mem[0]);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
}

/* The pvclock page is written by KVM through a gfn_to_pfn_cache. */
static void guest_kvmclock(gpa_t gpa, struct pvclock_vcpu_time_info *pvti)
{
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, gpa | KVM_MSR_ENABLED);
	GUEST_ASSERT(pvti->version && !(pvti->version & 1));
	GUEST_ASSERT(pvti->tsc_to_system_mul);
	GUEST_DONE();
}

TEST_F_TIMEOUT(secretmem, kvmclock_in_secret_slot, TIMEOUT)
{
	struct pvclock_vcpu_time_info *pvti = self->t.mem + PAGE_SIZE;
	struct ucall uc;

	vm_with_slot(&self->t, guest_kvmclock, self->t.mem, 0);
	vcpu_args_set(self->t.vcpu, 2, MEM_GPA + PAGE_SIZE, MEM_GPA + PAGE_SIZE);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
	EXPECT_NE(0, pvti->version);
	EXPECT_NE(0, pvti->tsc_to_system_mul);
}

/*
 * Steal time is written by KVM through the user mapping (uaccess), and
 * read by the guest from the secret slot.
 */
static void guest_steal_time(gpa_t gpa, struct kvm_steal_time *st)
{
	wrmsr(MSR_KVM_STEAL_TIME, gpa | KVM_MSR_ENABLED);
	GUEST_SYNC(0);
	GUEST_ASSERT(READ_ONCE(st->version) && !(READ_ONCE(st->version) & 1));
	GUEST_DONE();
}

TEST_F_TIMEOUT(secretmem, steal_time_in_secret_slot, TIMEOUT)
{
	struct kvm_steal_time *st = self->t.mem + PAGE_SIZE;
	struct ucall uc;

	vm_with_slot(&self->t, guest_steal_time, self->t.mem, 0);
	if (!kvm_cpu_has(X86_FEATURE_KVM_STEAL_TIME))
		SKIP(return, "no KVM_FEATURE_STEAL_TIME in the guest's CPUID");
	vcpu_args_set(self->t.vcpu, 2, MEM_GPA + PAGE_SIZE, MEM_GPA + PAGE_SIZE);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, self->t.vcpu, &uc));
	EXPECT_NE(0, READ_ONCE(st->version));
	EXPECT_EQ(0, READ_ONCE(st->version) & 1);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
}

/*
 * Lines of /proc/vmallocinfo made by @caller: secretmem's kernel aliases of
 * secret pages when @caller is "secretmem_kvm_map_page", or lazily freed
 * areas waiting for a purge (a global TLB flush) with "unpurged".
 */
static int vmallocinfo_count(const char *what)
{
	char line[512];
	int n = 0;
	FILE *f;

	f = fopen("/proc/vmallocinfo", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, what))
			n++;
	fclose(f);
	return n;
}

/* The CONFIG_DEBUG_TLBFLUSH counters of /proc/vmstat that we read. */
struct tlb_counts {
	/* whole-TLB flushes: what purging lazily freed vmalloc areas costs */
	long all;
	/* single-page flushes: a synchronous vunmap_range() costs one */
	long one;
};

/* The counters so far; -1 in each if the kernel does not count them. */
static struct tlb_counts tlb_flushes(void)
{
	struct tlb_counts c = { -1, -1 };
	char name[64];
	long val;
	FILE *f;

	f = fopen("/proc/vmstat", "r");
	if (!f)
		return c;
	while (fscanf(f, "%63s %ld", name, &val) == 2) {
		if (!strcmp(name, "nr_tlb_remote_flush") ||
		    !strcmp(name, "nr_tlb_remote_flush_received") ||
		    !strcmp(name, "nr_tlb_local_flush_all"))
			c.all = (c.all < 0 ? 0 : c.all) + val;
		if (!strcmp(name, "nr_tlb_local_flush_one"))
			c.one = val;
	}
	fclose(f);
	return c;
}

static void guest_kvmclock_twice(gpa_t gpa, struct pvclock_vcpu_time_info *pvti)
{
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, gpa | KVM_MSR_ENABLED);
	GUEST_ASSERT(pvti->version && !(pvti->version & 1));
	GUEST_SYNC(0);
	/* the slot now has new memory: KVM must write the new page */
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, gpa | KVM_MSR_ENABLED);
	GUEST_ASSERT(pvti->version && !(pvti->version & 1));
	GUEST_DONE();
}

/* Every vCPU updates its kvm-clock page at its next entry. */
static void request_clock_update(struct kvm_vm *vm)
{
	struct kvm_clock_data clock = {};

	vm_ioctl(vm, KVM_GET_CLOCK, &clock);
	clock.flags = 0;
	vm_ioctl(vm, KVM_SET_CLOCK, &clock);
}

/* Delete memslot SLOT and unmap and close its secret file; the VM lives on. */
static void drop_slot_and_file(struct __test_metadata *_metadata,
			       struct secret_vm *t)
{
	ASSERT_EQ(0, __vm_set_user_memory_region(t->vm, SLOT, 0, MEM_GPA, 0,
						 NULL));
	ASSERT_EQ(0, munmap(t->mem, MEM_SIZE));
	t->mem = NULL;
	ASSERT_EQ(0, close(t->fd));
	t->fd = -1;
}

/*
 * Delete memslot SLOT, unmap and close its secret file, and add new secret
 * memory at the same address.
 */
static void replace_slot_memory(struct __test_metadata *_metadata,
				struct secret_vm *t)
{
	drop_slot_and_file(_metadata, t);
	t->mem = secret_map(SECRETMEM_ALLOW_KVM, MEM_SIZE, &t->fd);
	ASSERT_NE(MAP_FAILED, t->mem);
	vm_set_user_memory_region(t->vm, SLOT, 0, MEM_GPA, MEM_SIZE, t->mem);
}

/*
 * The secretmem aliases left once a worker has had up to 10 s to free
 * the last ones.
 */
static int aliases_left(void)
{
	int i, left;

	for (i = 0; i < 100; i++) {
		left = vmallocinfo_count("secretmem_kvm_map_page");
		if (!left)
			break;
		usleep(100 * 1000);
	}
	return left;
}

/* Once the VM and the memory are gone, no kernel alias may be left. */
static void free_all_expect_no_alias(struct __test_metadata *_metadata,
				     struct secret_vm *t)
{
	kvm_vm_free(t->vm);
	t->vm = NULL;
	ASSERT_EQ(0, munmap(t->mem, MEM_SIZE));
	t->mem = NULL;
	ASSERT_EQ(0, close(t->fd));
	t->fd = -1;
	EXPECT_EQ(0, aliases_left())
		TH_LOG("a kernel alias of a secret page outlived its file and VM");
}

/*
 * A VM whose vCPU put its kvm-clock page in the secret slot, which KVM
 * then maps through an alias, and waits: the alias is listed.
 */
static void vm_with_kvmclock_alias(struct __test_metadata *_metadata,
				   struct secret_vm *t)
{
	struct ucall uc;

	vm_with_slot(t, guest_kvmclock_twice, t->mem, 0);
	vcpu_args_set(t->vcpu, 2, MEM_GPA + PAGE_SIZE, MEM_GPA + PAGE_SIZE);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, t->vcpu, &uc));
	EXPECT_LE(1, vmallocinfo_count("secretmem_kvm_map_page"));
}

/*
 * The kvm-clock page's slot is deleted, its file unmapped and closed while
 * KVM's gfn_to_pfn_cache still maps the page, and new secret memory is
 * added at the same address: the old page keeps its alias until KVM drops
 * it, then goes back zeroed, and no alias is left once the VM is gone.
 */
TEST_F_TIMEOUT(secretmem, kvmclock_slot_replaced, TIMEOUT)
{
	struct pvclock_vcpu_time_info *pvti;
	struct ucall uc;

	if (vmallocinfo_count("secretmem_kvm_map_page") < 0)
		SKIP(return, "/proc/vmallocinfo: %s", strerror(errno));
	vm_with_kvmclock_alias(_metadata, &self->t);

	replace_slot_memory(_metadata, &self->t);
	request_clock_update(self->t.vm);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
	pvti = self->t.mem + PAGE_SIZE;
	EXPECT_NE(0, pvti->version);
	free_all_expect_no_alias(_metadata, &self->t);
}

/*
 * The kvm-clock page's slot is deleted and its file unmapped and closed
 * while the vCPU stays idle and the VM lives on: the gfn_to_pfn_cache
 * drops its alias with the slot, so the alias goes with the file instead
 * of staying until the VM is destroyed.  The control: the alias is there
 * while the slot is.
 */
TEST_F_TIMEOUT(secretmem, kvmclock_alias_gone_with_slot, TIMEOUT)
{
	if (vmallocinfo_count("secretmem_kvm_map_page") < 0)
		SKIP(return, "/proc/vmallocinfo: %s", strerror(errno));
	vm_with_kvmclock_alias(_metadata, &self->t);

	drop_slot_and_file(_metadata, &self->t);
	EXPECT_EQ(0, aliases_left())
		TH_LOG("a kernel alias outlived its slot and file in a live VM");
}

#define PTDUMP		"/sys/kernel/debug/page_tables/kernel"
#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"
#define UNPOISON_PFN	"/sys/kernel/debug/hwpoison/unpoison-pfn"
#define KPF_HWPOISON	19

/* The PFN behind @addr in this process (root), or 0. */
static u64 pfn_of(void *addr)
{
	u64 entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry),
		  (unsigned long)addr / PAGE_SIZE * sizeof(entry)) !=
	    sizeof(entry))
		entry = 0;
	close(fd);
	return entry & (1ull << 63) ? entry & ((1ull << 55) - 1) : 0;
}

/*
 * Whether the direct map maps @pfn (1) or not (0), from the kernel's page
 * table dump: its "Low Kernel Mapping" section starts at PAGE_OFFSET, and
 * a present range shows its permission, "RW" or "ro".  -1 if not found.
 * Only for pages of split large pages, as the slot's (less than 2 MiB): a
 * whole 2 MiB block that left the direct map in one change is missing from
 * the dump (x86 leaves a non-present PMD without PSE, which the page walk
 * skips).
 */
static int direct_map_has_pfn(u64 pfn)
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
			addr = start + pfn * PAGE_SIZE;
		if (addr >= start && addr < end) {
			present = strstr(line, " RW ") || strstr(line, " ro ");
			break;
		}
	}
	fclose(f);
	return present;
}

/* Write @pfn to hwpoison-inject's @file: 0 or -errno. */
static int hwpoison_inject(const char *file, u64 pfn)
{
	int fd, len, ret = 0;
	char buf[32];

	fd = open(file, O_WRONLY);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)pfn);
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

static bool pfn_poisoned(u64 pfn)
{
	u64 flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0)
		return false;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) !=
	    sizeof(flags))
		flags = 0;
	close(fd);
	return flags & (1ull << KPF_HWPOISON);
}

/*
 * The kvm-clock page, which KVM maps through an alias, is poisoned
 * (memory_failure(), as for a hardware error: EBUSY, it cannot take a
 * secret page out of its file), then its slot is deleted and its file
 * closed while the VM lives: the page stays out of the direct map, not
 * zeroed and mapped again when its idle alias goes, and is kept, so that
 * unpoisoning it is refused (EBUSY).  The controls: the page table dump
 * shows an anonymous page in the direct map, and the secret page out of
 * it before the poison.
 */
TEST_F_TIMEOUT(secretmem, poisoned_kvmclock_page_stays_unmapped, TIMEOUT)
{
	volatile u64 *pvti = self->t.mem + PAGE_SIZE;
	u64 pfn, anon[512] = { 1 };

	if (access(PTDUMP, R_OK) || access(CORRUPT_PFN, W_OK) ||
	    access(UNPOISON_PFN, W_OK))
		SKIP(return, "%s or hwpoison-inject: %s (no PTDUMP_DEBUGFS, HWPOISON_INJECT or debugfs?)",
		     PTDUMP, strerror(errno));
	ASSERT_NE(0, pfn_of(anon)) TH_LOG("pagemap hides PFNs: not root?");
	ASSERT_EQ(1, direct_map_has_pfn(pfn_of(anon)));
	vm_with_kvmclock_alias(_metadata, &self->t);
	ASSERT_NE(0, *pvti);
	pfn = pfn_of((void *)pvti);
	ASSERT_NE(0, pfn);
	ASSERT_EQ(0, direct_map_has_pfn(pfn));

	ASSERT_EQ(-EBUSY, hwpoison_inject(CORRUPT_PFN, pfn));
	ASSERT_TRUE(pfn_poisoned(pfn));
	drop_slot_and_file(_metadata, &self->t);
	EXPECT_EQ(0, aliases_left());
	EXPECT_EQ(0, direct_map_has_pfn(pfn))
		TH_LOG("a poisoned secret page went back to the direct map");
	EXPECT_EQ(-EBUSY, hwpoison_inject(UNPOISON_PFN, pfn));
	EXPECT_EQ(0, direct_map_has_pfn(pfn));
}

/* Canonical: VMLOAD sign-extends segment bases. */
#define GS_SHADOW_SAVED		0x00005ec2e7001000ull
#define GS_SHADOW_LOADED	0x00005ec2e7002000ull

/*
 * VMSAVE and VMLOAD of a VMCB in the secret slot: KVM emulates both with
 * kvm_vcpu_map() of the guest page, i.e. through vmap().
 */
static void guest_vmsave_vmload(gpa_t vmcb)
{
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
	wrmsr(MSR_KERNEL_GS_BASE, GS_SHADOW_SAVED);
	asm volatile("vmsave %%rax" : : "a"(vmcb) : "memory");
	GUEST_SYNC(0);
	asm volatile("vmload %%rax" : : "a"(vmcb) : "memory");
	GUEST_ASSERT_EQ(rdmsr(MSR_KERNEL_GS_BASE), GS_SHADOW_LOADED);
	GUEST_DONE();
}

/* Y when the CPU does VMLOAD/VMSAVE itself (kvm_amd.vls) and KVM never sees them. */
static bool kvm_amd_vls(void)
{
	char c = 'N';
	FILE *f = fopen("/sys/module/kvm_amd/parameters/vls", "r");

	if (f) {
		if (fscanf(f, "%c", &c) != 1)
			c = 'N';
		fclose(f);
	}
	return c == 'Y' || c == '1';
}

TEST_F_TIMEOUT(secretmem, vmsave_vmload_in_secret_slot, TIMEOUT)
{
	struct vmcb *vmcb = self->t.mem + PAGE_SIZE;
	struct ucall uc;

	if (!kvm_cpu_has(X86_FEATURE_SVM))
		SKIP(return, "no SVM for the guest (kvm_amd nested=0 or not AMD)");
	if (kvm_amd_vls())
		SKIP(return, "kvm_amd.vls=1: VMSAVE/VMLOAD are not intercepted");
	vm_with_slot(&self->t, guest_vmsave_vmload, self->t.mem, 0);
	vcpu_args_set(self->t.vcpu, 1, MEM_GPA + PAGE_SIZE);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, self->t.vcpu, &uc));
	EXPECT_EQ(GS_SHADOW_SAVED, READ_ONCE(vmcb->save.kernel_gs_base));
	WRITE_ONCE(vmcb->save.kernel_gs_base, GS_SHADOW_LOADED);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
}

#define NESTED_RUNS	10000

/* Pages of the slot that the nested tests use. */
#define PG_SVM		0	/* struct svm_test_data */
#define PG_HSAVE	1	/* host save area */
#define PG_MSRPM	2	/* two pages */
#define PG_L2_CODE	4
#define PG_L2_STACK	5
#define PG_VMCB		6	/* vmcb12, or the first of them */
/* More vmcb12s than secretmem keeps idle aliases of (256). */
#define ROTATING_VMCBS	300

/* L2: "vmmcall; jmp .-3", so that every VMRUN exits right away. */
static const u8 l2_code[] = { 0x0f, 0x01, 0xd9, 0xeb, 0xfb };

/* @runs nested VMRUNs, each with the next of @nr_vmcbs vmcb12s in turn. */
static void guest_nested_runs(struct svm_test_data *svm, u64 runs,
			      u64 nr_vmcbs)
{
	gpa_t first = svm->vmcb_gpa;
	struct vmcb *vmcb;
	u64 i;

	for (i = 0; i < nr_vmcbs; i++) {
		svm->vmcb_gpa = first + i * PAGE_SIZE;
		svm->vmcb = (void *)svm->vmcb_gpa;
		generic_svm_setup(svm, (void *)(MEM_GPA + PG_L2_CODE * PAGE_SIZE),
				  (void *)(MEM_GPA + (PG_L2_STACK + 1) * PAGE_SIZE));
	}
	for (i = 0; i < runs; i++) {
		vmcb = (void *)(first + (i % nr_vmcbs) * PAGE_SIZE);
		run_guest(vmcb, (gpa_t)vmcb);
		GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_VMMCALL);
		vmcb->save.rip += 3;
	}
	GUEST_DONE();
}

struct run_costs {
	struct tlb_counts flushes;	/* during the runs, -1 if not counted */
	int unpurged;	/* more vmalloc areas waiting for a purge */
	int aliases;	/* secretmem aliases while the VM lives */
};

/*
 * NESTED_RUNS nested VMRUNs with @nr_vmcbs vmcb12s in turn, the host save
 * area and L2's code and stack in @mem, of PG_VMCB + @nr_vmcbs pages, a
 * memslot at MEM_GPA; returns what the runs themselves cost the kernel.
 */
static struct run_costs nested_runs(struct __test_metadata *_metadata,
				    struct secret_vm *self, void *mem,
				    int nr_vmcbs)
{
	struct svm_test_data *svm = mem + PG_SVM * PAGE_SIZE;
	int nr_pages = PG_VMCB + nr_vmcbs;
	struct tlb_counts before, after;
	struct run_costs c;
	struct ucall uc;
	int unpurged;

	memset(mem, 0, nr_pages * PAGE_SIZE);
	memcpy(mem + PG_L2_CODE * PAGE_SIZE, l2_code, sizeof(l2_code));
	svm->vmcb = (void *)(MEM_GPA + PG_VMCB * PAGE_SIZE);
	svm->vmcb_gpa = MEM_GPA + PG_VMCB * PAGE_SIZE;
	svm->save_area = (void *)(MEM_GPA + PG_HSAVE * PAGE_SIZE);
	svm->save_area_gpa = MEM_GPA + PG_HSAVE * PAGE_SIZE;
	svm->msr = (void *)(MEM_GPA + PG_MSRPM * PAGE_SIZE);
	svm->msr_gpa = MEM_GPA + PG_MSRPM * PAGE_SIZE;
	self->vm = vm_create_with_one_vcpu(&self->vcpu, guest_nested_runs);
	vm_set_user_memory_region(self->vm, SLOT, 0, MEM_GPA,
				  nr_pages * PAGE_SIZE, mem);
	virt_map(self->vm, MEM_GPA, MEM_GPA, nr_pages);
	vcpu_args_set(self->vcpu, 3, MEM_GPA + PG_SVM * PAGE_SIZE, NESTED_RUNS,
		      nr_vmcbs);
	before = tlb_flushes();
	unpurged = vmallocinfo_count("unpurged");
	EXPECT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->vcpu, &uc));
	after = tlb_flushes();
	c.flushes.all = before.all < 0 ? -1 : after.all - before.all;
	c.flushes.one = before.one < 0 ? -1 : after.one - before.one;
	c.unpurged = vmallocinfo_count("unpurged") - unpurged;
	c.aliases = vmallocinfo_count("secretmem_kvm_map_page");
	kvm_vm_free(self->vm);
	self->vm = NULL;
	return c;
}

/* Why the nested cost tests cannot run here, or NULL. */
static const char *nested_costs_unavailable(void)
{
	if (!kvm_cpu_has(X86_FEATURE_SVM))
		return "no SVM for the guest (kvm_amd nested=0 or not AMD)";
	if (vmallocinfo_count("unpurged") < 0)
		return "cannot read /proc/vmallocinfo";
	if (tlb_flushes().all < 0)
		return "no TLB flush counts in /proc/vmstat (CONFIG_DEBUG_TLBFLUSH)";
	return NULL;
}

/* nested_runs() on anonymous memory: the control of the secret runs. */
static struct run_costs anon_nested_runs(struct __test_metadata *_metadata,
					 struct secret_vm *self, int nr_vmcbs)
{
	size_t size = (PG_VMCB + nr_vmcbs) * PAGE_SIZE;
	struct run_costs c;
	void *anon;

	anon = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	c = nested_runs(_metadata, self, anon, nr_vmcbs);
	munmap(anon, size);
	return c;
}

static void print_costs(const char *what, const struct run_costs *c)
{
	ksft_print_msg("%d VMRUNs, %s: TLB flushes %ld all, %ld one, %d unpurged, %d aliases\n",
		       NESTED_RUNS, what, c->flushes.all, c->flushes.one,
		       c->unpurged, c->aliases);
}

/*
 * Nested VMRUN maps vmcb12 with kvm_vcpu_map() at every VMRUN and VM exit.
 * In secret memory that goes through the page's alias, made once: the
 * runs leave no more vmalloc areas to purge, and cause no more whole-TLB
 * flushes, than the same runs in anonymous memory.
 */
TEST_F_TIMEOUT(secretmem, nested_vmrun_in_secret_slot, TIMEOUT)
{
	struct run_costs anon_costs, secret_costs;
	const char *why = nested_costs_unavailable();

	if (why)
		SKIP(return, "%s", why);
	anon_costs = anon_nested_runs(_metadata, &self->t, 1);
	secret_costs = nested_runs(_metadata, &self->t, self->t.mem, 1);

	print_costs("nested, anonymous memory", &anon_costs);
	print_costs("nested, secret memory", &secret_costs);
	/* vmcb12 is mapped through an alias, and only a few pages are */
	EXPECT_LE(1, secret_costs.aliases);
	EXPECT_GE(2, secret_costs.aliases);
	EXPECT_GE(anon_costs.unpurged + 2, secret_costs.unpurged);
	EXPECT_GE(anon_costs.flushes.all + 2, secret_costs.flushes.all);
	EXPECT_GE(anon_costs.flushes.one + NESTED_RUNS / 100,
		  secret_costs.flushes.one);
}

/*
 * A guest that names more vmcb12s than secretmem keeps idle aliases of
 * makes it evict one alias per VMRUN and VM exit: the evictions must not
 * flush the TLB each (a single-page flush, an IPI to every CPU on SMP):
 * they are purged lazily, a few whole flushes per 10,000 runs, and the
 * aliases stay bounded.
 */
TEST_F_TIMEOUT(secretmem, nested_vmrun_rotating_vmcb12s, TIMEOUT)
{
	size_t size = (PG_VMCB + ROTATING_VMCBS) * PAGE_SIZE;
	struct run_costs anon_costs, secret_costs;
	void *secret;
	int fd;
	const char *why = nested_costs_unavailable();

	if (why)
		SKIP(return, "%s", why);
	anon_costs = anon_nested_runs(_metadata, &self->t, ROTATING_VMCBS);
	secret = secret_map(SECRETMEM_ALLOW_KVM, size, &fd);
	ASSERT_NE(MAP_FAILED, secret) TH_LOG("secretmem: %s", strerror(errno));
	secret_costs = nested_runs(_metadata, &self->t, secret, ROTATING_VMCBS);
	munmap(secret, size);
	close(fd);

	print_costs("nested, 300 vmcb12s in turn, anonymous memory", &anon_costs);
	print_costs("nested, 300 vmcb12s in turn, secret memory", &secret_costs);
	EXPECT_LE(256, secret_costs.aliases);
	EXPECT_GE(256 + 4, secret_costs.aliases);
	EXPECT_GE(anon_costs.flushes.all + 16, secret_costs.flushes.all);
	/*
	 * A flush per eviction would be thousands; KFENCE adds a few: each
	 * sampled object (about one per 100 ms of allocations, and the
	 * secret run allocates an alias per eviction) is protected with a
	 * single-page flush when it is freed.
	 */
	EXPECT_GE(anon_costs.flushes.one + NESTED_RUNS / 20,
		  secret_costs.flushes.one);
}

/*
 * A guest touching its memory once, as a guest that is not preallocated
 * does: each fault of KVM's populates the 2 MiB block around it, so the
 * kernel TLB is flushed about once per block and CPU, not once per page.
 */
#define TOUCH_SLOT	(SLOT + 1)
#define TOUCH_GPA	0xd0000000ul
#define TOUCH_SIZE	(8ul << 20)
#define TOUCH_BLOCK	(2ul << 20)
/* flushes that other activity of an idle machine may add to a count */
#define FLUSH_SLACK	64

static void guest_touch_once(u8 *mem)
{
	u64 off;

	for (off = 0; off < TOUCH_SIZE; off += PAGE_SIZE)
		mem[off] = 1;
	GUEST_DONE();
}

/* Kernel TLB flushes while a guest writes every page of @mem once. */
static long first_touch_flushes(struct __test_metadata *_metadata, void *mem)
{
	struct tlb_counts before, after;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;

	vm = vm_create_with_one_vcpu(&vcpu, guest_touch_once);
	vm_set_user_memory_region(vm, TOUCH_SLOT, 0, TOUCH_GPA, TOUCH_SIZE, mem);
	virt_map(vm, TOUCH_GPA, TOUCH_GPA, TOUCH_SIZE / PAGE_SIZE);
	vcpu_args_set(vcpu, 1, TOUCH_GPA);
	before = tlb_flushes();
	EXPECT_EQ(UCALL_DONE, run_to_ucall(_metadata, vcpu, &uc));
	after = tlb_flushes();
	kvm_vm_free(vm);
	return after.all - before.all + after.one - before.one;
}

TEST_F_TIMEOUT(secretmem, guest_first_touch_flushes, TIMEOUT)
{
	long bound = TOUCH_SIZE / TOUCH_BLOCK * sysconf(_SC_NPROCESSORS_ONLN) +
		     FLUSH_SLACK;
	long secret, anon;
	void *mem;
	int fd;

	if (tlb_flushes().all < 0)
		SKIP(return, "no TLB flush counters (CONFIG_DEBUG_TLBFLUSH)");
	mem = secret_map(SECRETMEM_ALLOW_KVM, TOUCH_SIZE, &fd);
	ASSERT_NE(MAP_FAILED, mem) TH_LOG("secretmem: %s", strerror(errno));
	secret = first_touch_flushes(_metadata, mem);
	munmap(mem, TOUCH_SIZE);
	close(fd);
	mem = mmap(NULL, TOUCH_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);
	anon = first_touch_flushes(_metadata, mem);
	munmap(mem, TOUCH_SIZE);
	ksft_print_msg("kernel TLB flushes as a guest first touches %lu pages: secret %ld, anonymous %ld\n",
		       (unsigned long)(TOUCH_SIZE / PAGE_SIZE), secret, anon);
	EXPECT_GE(bound, secret);
}

/*
 * "mov %esi,(%rdi); mov (%rdi),%eax; ret": copied into the secret slot, so
 * that KVM's emulator fetches the MMIO instructions from secret memory.
 */
static const u8 mmio_code[] = { 0x89, 0x37, 0x8b, 0x07, 0xc3 };

static void guest_mmio(u32 (*code)(u32 *, u32), u32 *mmio)
{
	GUEST_ASSERT_EQ(code(mmio, MMIO_VAL), ~MMIO_VAL);
	GUEST_DONE();
}

/*
 * Run @vcpu to the guest's GUEST_DONE, as the device at MMIO_GPA: a write
 * must be MMIO_VAL, a read returns ~MMIO_VAL.  Returns the MMIO exits.
 */
static int run_with_mmio_device(struct __test_metadata *_metadata,
				struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int exits = 0;
	u32 data;

	for (;;) {
		ASSERT_EQ(0, _vcpu_run(vcpu)) TH_LOG("KVM_RUN: %s", strerror(errno));
		if (run->exit_reason != KVM_EXIT_MMIO)
			break;
		ASSERT_EQ(MMIO_GPA, run->mmio.phys_addr);
		ASSERT_EQ(4, run->mmio.len);
		if (run->mmio.is_write) {
			memcpy(&data, run->mmio.data, 4);
			ASSERT_EQ(MMIO_VAL, data);
		} else {
			data = ~MMIO_VAL;
			memcpy(run->mmio.data, &data, 4);
		}
		exits++;
	}
	ASSERT_EQ(UCALL_DONE, ucall_of_exit(_metadata, vcpu, &uc));
	return exits;
}

TEST_F_TIMEOUT(secretmem, mmio_code_in_secret_slot, TIMEOUT)
{
	memcpy(self->t.mem, mmio_code, sizeof(mmio_code));
	vm_with_slot(&self->t, guest_mmio, self->t.mem, 0);
	virt_map(self->t.vm, MMIO_GPA, MMIO_GPA, 1);
	vcpu_args_set(self->t.vcpu, 2, MEM_GPA, MMIO_GPA);
	EXPECT_EQ(2, run_with_mmio_device(_metadata, self->t.vcpu));
}

static void guest_dirty(u64 *mem)
{
	int i;

	for (i = 1; i < NR_PAGES; i += 2)
		mem[i * PAGE_SIZE / 8] = i;
	GUEST_DONE();
}

TEST_F_TIMEOUT(secretmem, dirty_log, TIMEOUT)
{
	unsigned long bitmap[NR_PAGES / 64 + 1] = {};
	struct ucall uc;
	int i;

	vm_with_slot(&self->t, guest_dirty, self->t.mem, KVM_MEM_LOG_DIRTY_PAGES);
	vcpu_args_set(self->t.vcpu, 1, MEM_GPA);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
	kvm_vm_get_dirty_log(self->t.vm, SLOT, bitmap);
	for (i = 0; i < NR_PAGES; i++)
		EXPECT_EQ(i & 1, !!(bitmap[i / 64] & (1ul << (i % 64))))
			TH_LOG("page %d", i);
}

TEST_F_TIMEOUT(secretmem, dirty_ring, TIMEOUT)
{
	unsigned long seen = 0;
	struct kvm_dirty_gfn *gfns;
	struct ucall uc;
	u32 i;

	if (!kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) &&
	    !kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL))
		SKIP(return, "no KVM_CAP_DIRTY_LOG_RING");
	self->t.vm = vm_create(1);
	vm_enable_dirty_ring(self->t.vm, getpagesize());
	self->t.vcpu = vm_vcpu_add(self->t.vm, 0, guest_dirty);
	add_slot(&self->t, self->t.mem, KVM_MEM_LOG_DIRTY_PAGES);
	vcpu_args_set(self->t.vcpu, 1, MEM_GPA);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
	gfns = vcpu_map_dirty_ring(self->t.vcpu);
	for (i = 0; i < self->t.vcpu->dirty_gfns_count; i++) {
		if (!(__atomic_load_n(&gfns[i].flags, __ATOMIC_ACQUIRE) &
		      KVM_DIRTY_GFN_F_DIRTY))
			break;
		if (gfns[i].slot == SLOT) {
			ASSERT_GT(NR_PAGES, gfns[i].offset);
			seen |= 1ul << gfns[i].offset;
		}
	}
	for (i = 0; i < NR_PAGES; i++)
		EXPECT_EQ(i & 1, !!(seen & (1ul << i))) TH_LOG("page %u", i);
}

static void guest_spin(u64 *mem)
{
	u64 n = 1;
	int i;

	for (;; n++) {
		for (i = 0; i < NR_PAGES; i++)
			WRITE_ONCE(mem[i * PAGE_SIZE / 8], n);
		if (n == 1)
			GUEST_SYNC(0);
	}
}

struct run_result {
	struct kvm_vcpu *vcpu;
	int rc;
	int err;
};

static void *vcpu_thread(void *arg)
{
	struct run_result *r = arg;

	r->rc = _vcpu_run(r->vcpu);
	r->err = errno;
	return NULL;
}

/* Start the spinning guest in a thread; returns once it runs on the slot. */
static void start_spinning(struct __test_metadata *_metadata,
			   struct secret_vm *self, struct run_result *r,
			   pthread_t *thread)
{
	u64 *mem = self->mem;
	struct ucall uc;
	int i;

	vm_with_slot(self, guest_spin, self->mem, 0);
	vcpu_args_set(self->vcpu, 1, MEM_GPA);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, self->vcpu, &uc));
	ASSERT_EQ(1, READ_ONCE(*mem));
	r->vcpu = self->vcpu;
	ASSERT_EQ(0, pthread_create(thread, NULL, vcpu_thread, r));
	for (i = 0; i < 600 && READ_ONCE(*mem) < 3; i++)
		usleep(100 * 1000);
	ASSERT_LE(3, READ_ONCE(*mem));
}

/* Wait up to 60 s for the vCPU thread to leave KVM_RUN. */
static void join_vcpu(struct __test_metadata *_metadata, pthread_t thread)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 60;
	ASSERT_EQ(0, pthread_timedjoin_np(thread, NULL, &deadline))
		TH_LOG("vCPU still in KVM_RUN after 60 s");
}

/* munmap() under a running vCPU: the mmu_notifier zaps, KVM_RUN -EFAULTs. */
TEST_F_TIMEOUT(secretmem, munmap_while_running, TIMEOUT)
{
	struct run_result r = {};
	pthread_t thread;

	start_spinning(_metadata, &self->t, &r, &thread);
	ASSERT_EQ(0, munmap(self->t.mem, MEM_SIZE));
	self->t.mem = NULL;
	join_vcpu(_metadata, thread);
	EXPECT_EQ(-1, r.rc);
	EXPECT_EQ(EFAULT, r.err);
	EXPECT_EQ(0, __vm_set_user_memory_region(self->t.vm, SLOT, 0, MEM_GPA, 0,
						 NULL));
}

/* close() of the fd changes nothing: the mapping holds the file. */
TEST_F_TIMEOUT(secretmem, close_fd_while_running, TIMEOUT)
{
	struct run_result r = {};
	u64 *mem = self->t.mem;
	pthread_t thread;
	u64 before;
	int i;

	start_spinning(_metadata, &self->t, &r, &thread);
	ASSERT_EQ(0, close(self->t.fd));
	self->t.fd = -1;
	before = READ_ONCE(*mem);
	for (i = 0; i < 600 && READ_ONCE(*mem) < before + 3; i++)
		usleep(100 * 1000);
	EXPECT_LE(before + 3, READ_ONCE(*mem)) TH_LOG("guest stopped after close()");
	ASSERT_EQ(0, munmap(self->t.mem, MEM_SIZE));
	self->t.mem = NULL;
	join_vcpu(_metadata, thread);
	EXPECT_EQ(-1, r.rc);
	EXPECT_EQ(EFAULT, r.err);
}

/*
 * Deleting the memslot under a running vCPU: the guest's next write has no
 * memory behind it and exits as MMIO; the host's data is intact.
 */
TEST_F_TIMEOUT(secretmem, delete_slot_while_running, TIMEOUT)
{
	struct run_result r = {};
	u64 *mem = self->t.mem;
	struct kvm_run *run;
	pthread_t thread;

	start_spinning(_metadata, &self->t, &r, &thread);
	ASSERT_EQ(0, __vm_set_user_memory_region(self->t.vm, SLOT, 0, MEM_GPA, 0,
						 NULL));
	join_vcpu(_metadata, thread);
	run = self->t.vcpu->run;
	ASSERT_EQ(0, r.rc) TH_LOG("KVM_RUN: %s", strerror(r.err));
	ASSERT_EQ(KVM_EXIT_MMIO, run->exit_reason);
	EXPECT_LE(MEM_GPA, run->mmio.phys_addr);
	EXPECT_GT(MEM_GPA + MEM_SIZE, run->mmio.phys_addr);
	EXPECT_TRUE(run->mmio.is_write);
	EXPECT_LE(3, READ_ONCE(mem[(NR_PAGES - 1) * PAGE_SIZE / 8]));
}

static u64 clock_spin_stop;

/* Spins outside the slot until the host says stop, kvm-clock enabled. */
static void guest_kvmclock_spin(gpa_t gpa, struct pvclock_vcpu_time_info *pvti)
{
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, gpa | KVM_MSR_ENABLED);
	GUEST_SYNC(0);
	while (!READ_ONCE(clock_spin_stop))
		cpu_relax();
	GUEST_ASSERT(READ_ONCE(pvti->version) && !(READ_ONCE(pvti->version) & 1));
	GUEST_DONE();
}

/* Wait up to 60 s for KVM to write a kvm-clock record to @pvti. */
static bool kvmclock_written(struct pvclock_vcpu_time_info *pvti)
{
	int i;

	for (i = 0; i < 600 && !READ_ONCE(pvti->version); i++)
		usleep(100 * 1000);
	return READ_ONCE(pvti->version);
}

#define CLOCK_VCPUS		2
#define CLOCK_REPLACEMENTS	10

/*
 * The same while vCPUs run: two vCPUs keep kvm-clock on the same page,
 * whose slot is replaced under them ten times, every vCPU made to update
 * its clock after each, so that their gfn_to_pfn_caches map, drop and
 * refresh one alias from running vCPUs, and each old page is returned by
 * the last of them; no alias is left at the end.
 */
TEST_F_TIMEOUT(secretmem, kvmclock_slot_replaced_while_running, TIMEOUT)
{
	struct run_result r[CLOCK_VCPUS] = {};
	struct kvm_vcpu *vcpus[CLOCK_VCPUS];
	struct pvclock_vcpu_time_info *pvti;
	pthread_t threads[CLOCK_VCPUS];
	struct ucall uc;
	int i;

	if (vmallocinfo_count("secretmem_kvm_map_page") < 0)
		SKIP(return, "/proc/vmallocinfo: %s", strerror(errno));
	self->t.vm = vm_create_with_vcpus(CLOCK_VCPUS, guest_kvmclock_spin, vcpus);
	add_slot(&self->t, self->t.mem, 0);
	for (i = 0; i < CLOCK_VCPUS; i++) {
		vcpu_args_set(vcpus[i], 2, MEM_GPA + PAGE_SIZE, MEM_GPA + PAGE_SIZE);
		ASSERT_EQ(UCALL_SYNC, run_to_ucall(_metadata, vcpus[i], &uc));
	}
	pvti = self->t.mem + PAGE_SIZE;
	pvti->version = 0;
	for (i = 0; i < CLOCK_VCPUS; i++) {
		r[i].vcpu = vcpus[i];
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, vcpu_thread, &r[i]));
	}
	request_clock_update(self->t.vm);
	EXPECT_TRUE(kvmclock_written(pvti)) TH_LOG("no clock update while running");
	for (i = 0; i < CLOCK_REPLACEMENTS; i++) {
		replace_slot_memory(_metadata, &self->t);
		request_clock_update(self->t.vm);
		EXPECT_TRUE(kvmclock_written(self->t.mem + PAGE_SIZE))
			TH_LOG("replacement %d: no clock written to the new page", i);
	}

	WRITE_ONCE(clock_spin_stop, 1);
	sync_global_to_guest(self->t.vm, clock_spin_stop);
	for (i = 0; i < CLOCK_VCPUS; i++) {
		join_vcpu(_metadata, threads[i]);
		ASSERT_EQ(0, r[i].rc) TH_LOG("KVM_RUN: %s", strerror(r[i].err));
		ASSERT_EQ(UCALL_DONE, ucall_of_exit(_metadata, vcpus[i], &uc));
	}
	free_all_expect_no_alias(_metadata, &self->t);
}

/* A secretmem file's size is set once, guest or not; data survives. */
TEST_F_TIMEOUT(secretmem, ftruncate_and_punch_refused, TIMEOUT)
{
	vm_with_slot(&self->t, guest_rw, self->t.mem, 0);
	guest_rw_to_sync(_metadata, self->t.vcpu);
	EXPECT_EQ(-1, ftruncate(self->t.fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ftruncate(self->t.fd, 2 * MEM_SIZE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(self->t.fd, FALLOC_FL_PUNCH_HOLE |
				FALLOC_FL_KEEP_SIZE, 0, MEM_SIZE));
	EXPECT_EQ(EOPNOTSUPP, errno);
	guest_rw_finish(_metadata, self->t.vcpu, self->t.mem);
}

/*
 * SIGKILL of a VMM whose vCPU runs on secret memory: the VM is destroyed
 * while the vCPU runs, the process dies cleanly, and the memory it shared
 * with us keeps what the guest wrote.
 */
TEST_F_TIMEOUT(secretmem, vmm_killed_while_running, TIMEOUT)
{
	u64 *mem = self->t.mem;
	struct ucall uc;
	int status, i;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		vm_with_slot(&self->t, guest_spin, self->t.mem, 0);
		vcpu_args_set(self->t.vcpu, 1, MEM_GPA);
		if (run_to_ucall(_metadata, self->t.vcpu, &uc) != UCALL_SYNC)
			_exit(1);
		for (;;)
			_vcpu_run(self->t.vcpu);
	}
	for (i = 0; i < 600 && READ_ONCE(*mem) < 3; i++)
		usleep(100 * 1000);
	EXPECT_LE(3, READ_ONCE(*mem)) TH_LOG("the child's guest did not run");
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_LE(3, READ_ONCE(mem[(NR_PAGES - 1) * PAGE_SIZE / 8]));
}

/*
 * Negatives: a guest wrote the memory, other kernel paths still fail with
 * the errno of a refused GUP, while the same path reads the same data that
 * a guest wrote to an anonymous slot (the positive control).
 */

static void fill_by_guest(struct __test_metadata *_metadata,
			  struct secret_vm *self, void *mem)
{
	vm_with_slot(self, guest_rw, mem, 0);
	guest_rw_to_sync(_metadata, self->vcpu);
	ASSERT_EQ(GUEST_WORD, *(u64 *)mem);
}

/* Each returns 0 if it read GUEST_WORD at @mem, else the errno it got. */
static int read_process_vm_readv(void *mem, const char *arg)
{
	u64 word = 0;
	struct iovec local = { &word, sizeof(word) };
	struct iovec remote = { mem, sizeof(word) };

	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0)
		return errno;
	return word == GUEST_WORD ? 0 : EBADMSG;
}

static int read_proc_pid_mem(void *mem, const char *arg)
{
	u64 word = 0;
	int fd, err = 0;

	fd = open("/proc/self/mem", O_RDONLY);
	if (fd < 0)
		return errno;
	if (pread(fd, &word, sizeof(word), (off_t)mem) < 0)
		err = errno;
	else if (word != GUEST_WORD)
		err = EBADMSG;
	close(fd);
	return err;
}

static int read_ptrace(void *mem, const char *arg)
{
	int status, err = 0;
	pid_t pid;
	long val;

	pid = fork();
	if (pid < 0)
		return errno;
	if (!pid) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		err = ECHILD;
		goto out;
	}
	/* PEEKDATA returns the data: only -1 with errno set is a failure. */
	errno = 0;
	val = ptrace(PTRACE_PEEKDATA, pid, mem, NULL);
	if (val == -1 && errno)
		err = errno;
	else if ((u64)val != GUEST_WORD)
		err = EBADMSG;
out:
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return err;
}

/* O_DIRECT write of the page to @arg, a file that supports O_DIRECT. */
static int write_o_direct(void *mem, const char *path)
{
	int fd, err = 0;

	fd = open(path, O_RDWR | O_DIRECT);
	if (fd < 0)
		return errno;
	if (pwrite(fd, mem, PAGE_SIZE, 0) < 0)
		err = errno;
	close(fd);
	return err;
}

/* io_uring fixed buffers are long-term pins. */
static int register_io_uring_buffer(void *mem, const char *arg)
{
	struct io_uring_params params = {};
	struct iovec iov = { mem, PAGE_SIZE };
	int ring, err = 0;

	ring = syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0)
		return errno;
	if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS,
		    &iov, 1) < 0)
		err = errno;
	close(ring);
	return err;
}

static int vmsplice_page(void *mem, const char *arg)
{
	struct iovec iov = { mem, PAGE_SIZE };
	int pipefd[2], err = 0;

	if (pipe(pipefd))
		return errno;
	if (vmsplice(pipefd[1], &iov, 1, 0) < 0)
		err = errno;
	close(pipefd[0]);
	close(pipefd[1]);
	return err;
}

struct attack {
	const char *name;
	int (*run)(void *mem, const char *arg);
	int refused;	/* errno on secret memory */
	const char *env;	/* the argument, from the environment */
	const char *needs;	/* a file there only if the kernel has the path */
};

FIXTURE(secret_attack) {
	struct secret_vm t;
	const char *arg;
};

FIXTURE_VARIANT(secret_attack) {
	const struct attack *attack;
};

FIXTURE_SETUP(secret_attack)
{
	const struct attack *a = variant->attack;

	self->arg = a->env ? getenv(a->env) : NULL;
	if (a->env && !self->arg)
		SKIP(return, "no %s", a->env);
	if (a->needs && access(a->needs, F_OK))
		SKIP(return, "%s: not in this kernel (no %s)", a->name, a->needs);
	secret_setup(_metadata, &self->t);
}

FIXTURE_TEARDOWN(secret_attack)
{
	secret_teardown(&self->t);
}

static const struct attack attacks[] = {
	{ "process_vm_readv", read_process_vm_readv, EFAULT },
	{ "proc_pid_mem", read_proc_pid_mem, EIO },
	{ "ptrace_peekdata", read_ptrace, EIO },
	{ "o_direct", write_o_direct, EFAULT, "SECRETMEM_ODIRECT_PATH" },
	{ "io_uring_fixed_buffer", register_io_uring_buffer, EFAULT, NULL,
	  "/proc/sys/kernel/io_uring_disabled" },
	{ "vmsplice", vmsplice_page, EFAULT },
};

FIXTURE_VARIANT_ADD(secret_attack, process_vm_readv) { .attack = &attacks[0] };
FIXTURE_VARIANT_ADD(secret_attack, proc_pid_mem) { .attack = &attacks[1] };
FIXTURE_VARIANT_ADD(secret_attack, ptrace_peekdata) { .attack = &attacks[2] };
FIXTURE_VARIANT_ADD(secret_attack, o_direct) { .attack = &attacks[3] };
FIXTURE_VARIANT_ADD(secret_attack, io_uring_fixed_buffer) { .attack = &attacks[4] };
FIXTURE_VARIANT_ADD(secret_attack, vmsplice) { .attack = &attacks[5] };

/* The attack fails on the memory a guest wrote to a secret slot... */
TEST_F_TIMEOUT(secret_attack, refused, TIMEOUT)
{
	const struct attack *a = variant->attack;

	fill_by_guest(_metadata, &self->t, self->t.mem);
	EXPECT_EQ(a->refused, a->run(self->t.mem, self->arg))
		TH_LOG("%s on secret memory", a->name);
}

/* ...and works on the memory a guest wrote to an anonymous slot. */
TEST_F_TIMEOUT(secret_attack, anon_control, TIMEOUT)
{
	const struct attack *a = variant->attack;
	void *anon;
	int err;

	anon = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	fill_by_guest(_metadata, &self->t, anon);
	err = a->run(anon, self->arg);
	EXPECT_EQ(0, err) TH_LOG("%s on anonymous memory: %s", a->name,
				 strerror(err));
	kvm_vm_free(self->t.vm);
	self->t.vm = NULL;
	munmap(anon, MEM_SIZE);
}

/*
 * A whole guest in secret memory: memslot 0, with the guest's code, page
 * tables, GDT, IDT and stack, is a secretmem file.  The guest writes fresh
 * pages (page-table walks and accessed/dirty updates, by KVM's shadow MMU
 * with kvm_amd npt=0), takes a #UD (KVM intercepts it and fetches the
 * secret code to emulate it, then injects it, which the CPU delivers
 * through the IDT, the GDT and the stack), and does MMIO (emulated from
 * the secret code).  process_vm_readv() of the word it
 * leaves in memslot 0 shows where that is: EFAULT on secretmem, the word
 * on anonymous memory (the positive control).  Meant to run with
 * kvm_amd npt=1 and npt=0 (tests/e2e/nested/l1-tests.sh runs both).
 */
#define WHOLE_GUEST_PAGES	64

static u64 whole_guest_word;
static int whole_guest_ud;

static void guest_ud_handler(struct ex_regs *regs)
{
	WRITE_ONCE(whole_guest_ud, whole_guest_ud + 1);
	regs->rip += 2;		/* ud2 */
}

static void guest_whole(u64 *fresh, u32 *mmio)
{
	u64 frame[64];
	int i;

	for (i = 0; i < 64; i++)
		WRITE_ONCE(frame[i], GUEST_WORD | i);
	for (i = 0; i < WHOLE_GUEST_PAGES; i++)
		WRITE_ONCE(fresh[i * PAGE_SIZE / 8], GUEST_WORD | i);
	asm volatile("ud2");
	GUEST_ASSERT_EQ(READ_ONCE(whole_guest_ud), 1);
	WRITE_ONCE(*mmio, MMIO_VAL);
	GUEST_ASSERT_EQ(READ_ONCE(*mmio), ~MMIO_VAL);
	for (i = 0; i < 64; i++)
		GUEST_ASSERT_EQ(READ_ONCE(frame[i]), GUEST_WORD | i);
	for (i = 0; i < WHOLE_GUEST_PAGES; i++)
		GUEST_ASSERT_EQ(READ_ONCE(fresh[i * PAGE_SIZE / 8]), GUEST_WORD | i);
	WRITE_ONCE(whole_guest_word, GUEST_WORD);
	GUEST_DONE();
}

FIXTURE(whole_guest) {
	struct secret_vm t;
};

FIXTURE_VARIANT(whole_guest) {
	enum vm_mem_backing_src_type src_type;
	int refused;	/* process_vm_readv()'s errno on memslot 0 */
};

FIXTURE_VARIANT_ADD(whole_guest, secret) {
	.src_type = VM_MEM_SRC_SECRETMEM,
	.refused = EFAULT,
};

FIXTURE_VARIANT_ADD(whole_guest, anon_control) {
	.src_type = VM_MEM_SRC_ANONYMOUS,
	.refused = 0,
};

/* The fixture's secret slot goes unused: it only decides the skip. */
FIXTURE_SETUP(whole_guest)
{
	secret_setup(_metadata, &self->t);
}

FIXTURE_TEARDOWN(whole_guest)
{
	secret_teardown(&self->t);
}

TEST_F_TIMEOUT(whole_guest, runs_from_its_memory, TIMEOUT)
{
	struct vm_shape shape = VM_SHAPE_DEFAULT;
	struct kvm_vm *vm;
	gva_t fresh;
	u64 *word;

	shape.src_type = variant->src_type;
	vm = __vm_create_shape_with_one_vcpu(shape, &self->t.vcpu,
					     WHOLE_GUEST_PAGES, guest_whole);
	self->t.vm = vm;
	vm_install_exception_handler(vm, UD_VECTOR, guest_ud_handler);
	fresh = vm_alloc_pages(vm, WHOLE_GUEST_PAGES);
	virt_map(vm, MMIO_GPA, MMIO_GPA, 1);
	vcpu_args_set(self->t.vcpu, 2, fresh, MMIO_GPA);
	EXPECT_EQ(2, run_with_mmio_device(_metadata, self->t.vcpu));
	word = addr_gva2hva(vm, (gva_t)&whole_guest_word);
	EXPECT_EQ(GUEST_WORD, READ_ONCE(*word));
	EXPECT_EQ(variant->refused, read_process_vm_readv(word, NULL));
}

/*
 * Write MARKER_QWORDS of splitmix64(seed) to @dst.  Only one qword of the
 * marker is ever in a register and none goes to the stack, so no 32-byte
 * copy of it exists outside @dst (e.g. in the vCPU's saved registers).
 */
static void guest_marker(u64 *dst, u64 seed)
{
	asm volatile("mov %[n], %%ecx\n\t"
		     "1: movabs $0x9e3779b97f4a7c15, %%rax\n\t"
		     "add %%rax, %[s]\n\t"
		     "mov %[s], %%rax\n\t"
		     "mov %%rax, %%rdx\n\t"
		     "shr $30, %%rdx\n\t"
		     "xor %%rdx, %%rax\n\t"
		     "movabs $0xbf58476d1ce4e5b9, %%rdx\n\t"
		     "imul %%rdx, %%rax\n\t"
		     "mov %%rax, %%rdx\n\t"
		     "shr $27, %%rdx\n\t"
		     "xor %%rdx, %%rax\n\t"
		     "movabs $0x94d049bb133111eb, %%rdx\n\t"
		     "imul %%rdx, %%rax\n\t"
		     "mov %%rax, %%rdx\n\t"
		     "shr $31, %%rdx\n\t"
		     "xor %%rdx, %%rax\n\t"
		     "mov %%rax, (%[d])\n\t"
		     "add $8, %[d]\n\t"
		     "dec %%ecx\n\t"
		     "jnz 1b\n\t"
		     "xor %%eax, %%eax\n\t"
		     "xor %%edx, %%edx\n\t"
		     : [s] "+r"(seed), [d] "+r"(dst)
		     : [n] "i"(MARKER_QWORDS)
		     : "rax", "rcx", "rdx", "memory", "cc");
	GUEST_DONE();
}

/*
 * Count copies of the marker in the direct map, i.e. the KCORE_RAM segments
 * of /proc/kcore.  @inv holds the marker complemented, so that this process
 * never stores it; kcore reads pages missing from the direct map as zeros.
 */
static int kcore_count(struct __test_metadata *_metadata, const u64 *inv)
{
	const size_t chunk = 1 << 20;
	struct elf64_hdr eh;
	struct elf64_phdr ph;
	u64 *buf, off;
	int fd, i, hits = 0;
	size_t j;

	fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0)
		return -errno;
	buf = malloc(chunk);
	EXPECT_NE(NULL, buf);
	EXPECT_EQ(sizeof(eh), pread(fd, &eh, sizeof(eh), 0));
	for (i = 0; buf && i < eh.e_phnum; i++) {
		EXPECT_EQ(sizeof(ph), pread(fd, &ph, sizeof(ph),
					    eh.e_phoff + i * sizeof(ph)));
		/* RAM: has a physical address, and is not kernel text */
		if (ph.p_type != PT_LOAD || ph.p_paddr == (u64)-1 ||
		    ph.p_vaddr >= 0xffffffff80000000ull)
			continue;
		for (off = 0; off < ph.p_memsz; off += chunk) {
			ssize_t n = pread(fd, buf, chunk, ph.p_offset + off);

			if (n <= 0)
				break;
			for (j = 0; j + MARKER_QWORDS <= n / 8; j++)
				if (buf[j] == ~inv[0] && buf[j + 1] == ~inv[1] &&
				    buf[j + 2] == ~inv[2] && buf[j + 3] == ~inv[3])
					hits++;
		}
	}
	memset(buf, 0, chunk);
	free(buf);
	close(fd);
	return hits;
}

/* Guest writes a random marker to @mem; returns its kcore hit count. */
static int marker_hits(struct __test_metadata *_metadata,
		       struct secret_vm *self, void *mem)
{
	u64 *marker = mem + PAGE_SIZE + MARKER_OFFSET;
	u64 inv[MARKER_QWORDS], seed;
	struct ucall uc;
	int i;

	ASSERT_EQ(sizeof(seed), getrandom(&seed, sizeof(seed), 0));
	vm_with_slot(self, guest_marker, mem, 0);
	vcpu_args_set(self->vcpu, 2, MEM_GPA + PAGE_SIZE + MARKER_OFFSET, seed);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->vcpu, &uc));
	for (i = 0; i < MARKER_QWORDS; i++)
		inv[i] = ~READ_ONCE(marker[i]);
	EXPECT_NE(0, inv[0] ^ ~0ull);
	return kcore_count(_metadata, inv);
}

TEST_F_TIMEOUT(secretmem, kcore_secret_slot_no_hits, TIMEOUT)
{
	int hits = marker_hits(_metadata, &self->t, self->t.mem);

	if (hits < 0)
		SKIP(return, "/proc/kcore: %s", strerror(-hits));
	ksft_print_msg("kcore marker hits, secret memslot: %d\n", hits);
	EXPECT_EQ(0, hits);
}

/*
 * Read the page at kernel address @addr through /proc/kcore into @buf;
 * returns 0 or -errno.
 */
static int kcore_read_page(int fd, u64 addr, void *buf)
{
	struct elf64_hdr eh;
	struct elf64_phdr ph;
	int i;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
		return -EIO;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) !=
		    sizeof(ph))
			return -EIO;
		if (ph.p_type != PT_LOAD || addr < ph.p_vaddr ||
		    addr + PAGE_SIZE > ph.p_vaddr + ph.p_memsz)
			continue;
		if (pread(fd, buf, PAGE_SIZE, ph.p_offset + addr - ph.p_vaddr) !=
		    PAGE_SIZE)
			return -errno;
		return 0;
	}
	return -ENOENT;
}

/*
 * Set kernel.kptr_restrict to @val; returns the old value, or -errno.
 * /proc/vmallocinfo shows root the real addresses only with 1: with 0,
 * %pK hashes them.
 */
static int set_kptr_restrict(int val)
{
	int fd, old = -EIO;
	char c;

	fd = open("/proc/sys/kernel/kptr_restrict", O_RDWR);
	if (fd < 0)
		return -errno;
	if (read(fd, &c, 1) == 1)
		old = c - '0';
	c = '0' + val;
	if (old >= 0 && pwrite(fd, &c, 1, 0) != 1)
		old = -errno;
	close(fd);
	return old;
}

static void guest_kvmclock_marker(gpa_t pvti, u64 *dst, u64 seed)
{
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, pvti | KVM_MSR_ENABLED);
	guest_marker(dst, seed);
}

/*
 * The kvm-clock page, which KVM writes through secretmem's alias, also
 * holds the marker: /proc/kcore reads the alias as zeroes, and returns.
 */
TEST_F_TIMEOUT(secretmem, kcore_alias_reads_zeroes, TIMEOUT)
{
	u64 start, end, *buf, seed = 0x5ec2e7;
	int fd, err, aliases = 0, kptr_restrict;
	char line[512];
	struct ucall uc;
	size_t i;
	FILE *f;

	vm_with_slot(&self->t, guest_kvmclock_marker, self->t.mem, 0);
	vcpu_args_set(self->t.vcpu, 3, MEM_GPA + PAGE_SIZE,
		      MEM_GPA + PAGE_SIZE + MARKER_OFFSET, seed);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(_metadata, self->t.vcpu, &uc));
	ASSERT_NE(0, *(u64 *)(self->t.mem + PAGE_SIZE + MARKER_OFFSET));
	buf = malloc(PAGE_SIZE);
	ASSERT_NE(NULL, buf);

	fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0)
		SKIP(goto free_buf, "/proc/kcore: %s", strerror(errno));
	f = fopen("/proc/vmallocinfo", "r");
	if (!f)
		SKIP(goto close_kcore, "/proc/vmallocinfo: %s", strerror(errno));
	/* vmallocinfo shows addresses to root only with kptr_restrict=1 */
	kptr_restrict = set_kptr_restrict(1);
	if (kptr_restrict < 0)
		SKIP(goto close_info, "kernel.kptr_restrict: %s",
		     strerror(-kptr_restrict));
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "secretmem_kvm_map_page") ||
		    sscanf(line, "0x%lx-0x%lx", &start, &end) != 2)
			continue;
		aliases++;
		memset(buf, 0xff, PAGE_SIZE);
		err = kcore_read_page(fd, start, buf);
		EXPECT_EQ(0, err) TH_LOG("alias %#lx: %s", start, strerror(-err));
		if (err)
			continue;
		for (i = 0; i < PAGE_SIZE / 8; i++)
			EXPECT_EQ(0, buf[i]) TH_LOG("alias %#lx, word %zu", start, i);
	}
	set_kptr_restrict(kptr_restrict);
	ksft_print_msg("secretmem aliases read through /proc/kcore: %d\n", aliases);
	EXPECT_LE(1, aliases);
close_info:
	fclose(f);
close_kcore:
	close(fd);
free_buf:
	free(buf);
}

/* Positive control: the same scan finds the marker in anonymous memory. */
TEST_F_TIMEOUT(secretmem, kcore_anon_slot_control, TIMEOUT)
{
	void *anon;
	int hits;

	anon = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	hits = marker_hits(_metadata, &self->t, anon);
	if (hits < 0)
		SKIP(return, "/proc/kcore: %s", strerror(-hits));
	ksft_print_msg("kcore marker hits, anonymous memslot: %d\n", hits);
	EXPECT_LE(1, hits);
	kvm_vm_free(self->t.vm);
	self->t.vm = NULL;
	munmap(anon, MEM_SIZE);
}

TEST_HARNESS_MAIN
