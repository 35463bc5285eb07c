// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * secretmem-allows-kvm: does this kernel let KVM map secret memory, i.e.
 * does memfd_secret(2) accept the SECRETMEM_ALLOW_KVM flag of the series
 * in kernel/?
 *
 *   secretmem-allows-kvm
 *
 * Exit status 0: yes.  1: no, memfd_secret refuses the flag (EINVAL: a
 * kernel without the series).  4: memfd_secret itself is missing
 * (ENOSYS).  2: any other error.  The reason goes to stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* From the series' include/uapi/linux/secretmem.h. */
#define SECRETMEM_ALLOW_KVM	0x1U

#define EXIT_NO		1
#define EXIT_ERROR	2
#define EXIT_SKIP	4

int main(void)
{
	int fd = syscall(SYS_memfd_secret, SECRETMEM_ALLOW_KVM);

	if (fd >= 0) {
		printf("memfd_secret accepts SECRETMEM_ALLOW_KVM\n");
		close(fd);
		return 0;
	}
	switch (errno) {
	case EINVAL:
		printf("memfd_secret refuses SECRETMEM_ALLOW_KVM (EINVAL): the kernel lacks the series in kernel/\n");
		return EXIT_NO;
	case ENOSYS:
		printf("memfd_secret is missing (ENOSYS): the kernel lacks CONFIG_SECRETMEM or was booted without secretmem.enable=1\n");
		return EXIT_SKIP;
	default:
		printf("memfd_secret(SECRETMEM_ALLOW_KVM) failed: %s\n", strerrorname_np(errno));
		return EXIT_ERROR;
	}
}
