// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * marker-holder: hold a random 32-byte marker in memfd or memfd_secret
 * memory, for probe-selftest to look for with host-read-probe.
 *
 *   marker-holder memfd|secret
 *
 * Maps 1 MiB (MAP_SHARED), has the kernel write random bytes straight into
 * the mapping, copies them to the start of every page, prints
 * "MARKER <64 hex digits>" and "READY" on stdout, and then sleeps until
 * stdin reaches end of file or a signal ends it.  Exit status 4 (kselftest's skip) when
 * memfd_secret(2) is not available (ENOSYS).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MARKER_LEN	32
#define REGION_SIZE	(1 << 20)
#define EXIT_SKIP	4

static int create_memory_fd(const char *kind)
{
	int fd;

	if (!strcmp(kind, "memfd"))
		fd = memfd_create("marker-holder", MFD_CLOEXEC);
	else if (!strcmp(kind, "secret"))
		fd = syscall(SYS_memfd_secret, O_CLOEXEC);
	else
		return -EINVAL;
	return fd < 0 ? -errno : fd;
}

/* Returns the mapping or MAP_FAILED with errno set. */
static unsigned char *map_region(int fd)
{
	if (ftruncate(fd, REGION_SIZE))
		return MAP_FAILED;
	return mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

/* The marker's only copies are in @region: getrandom() writes it there. */
static int fill_region(unsigned char *region)
{
	size_t off;

	if (getrandom(region, MARKER_LEN, 0) != MARKER_LEN)
		return -errno;
	for (off = sysconf(_SC_PAGESIZE); off < REGION_SIZE; off += sysconf(_SC_PAGESIZE))
		memcpy(region + off, region, MARKER_LEN);
	return 0;
}

static void print_marker(const unsigned char *region)
{
	int i;

	printf("MARKER ");
	for (i = 0; i < MARKER_LEN; i++)
		printf("%02x", region[i]);
	printf("\nREADY\n");
	fflush(stdout);
}

static void wait_for_eof(void)
{
	char c;

	while (read(STDIN_FILENO, &c, 1) > 0)
		;
}

int main(int argc, char **argv)
{
	unsigned char *region;
	int fd, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s memfd|secret\n", argv[0]);
		return EXIT_FAILURE;
	}
	fd = create_memory_fd(argv[1]);
	if (fd == -ENOSYS) {
		fprintf(stderr, "memfd_secret: ENOSYS: the kernel lacks CONFIG_SECRETMEM or was booted without secretmem.enable=1\n");
		return EXIT_SKIP;
	}
	if (fd < 0) {
		fprintf(stderr, "%s: cannot create the memory fd: %s\n", argv[1],
			fd == -EINVAL ? "unknown kind (use memfd or secret)" : strerror(-fd));
		return EXIT_FAILURE;
	}
	region = map_region(fd);
	if (region == MAP_FAILED) {
		fprintf(stderr, "%s: cannot map %d bytes: %s (for memfd_secret as non-root, raise RLIMIT_MEMLOCK)\n",
			argv[1], REGION_SIZE, strerror(errno));
		return EXIT_FAILURE;
	}
	ret = fill_region(region);
	if (ret) {
		fprintf(stderr, "getrandom: %s\n", strerror(-ret));
		return EXIT_FAILURE;
	}
	print_marker(region);
	wait_for_eof();
	return EXIT_SUCCESS;
}
