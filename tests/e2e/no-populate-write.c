// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * no-populate-write.so: an LD_PRELOAD shim under which madvise() refuses
 * MADV_POPULATE_WRITE with EINVAL, as a kernel does whose secretmem cannot
 * populate in bulk; every other advice goes to the kernel.  QEMU then
 * preallocates by touching every page (scripts/bench-prealloc's
 * secret-touch rows).
 *
 *   LD_PRELOAD=.../no-populate-write.so qemu-system-x86_64 ...
 */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int madvise(void *addr, size_t len, int advice)
{
	if (advice == MADV_POPULATE_WRITE) {
		errno = EINVAL;
		return -1;
	}
	return syscall(SYS_madvise, addr, len, advice);
}
