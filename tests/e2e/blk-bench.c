// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * blk-bench: disk throughput inside a guest, for scripts/bench-block.
 *
 *   blk-bench DEVICE MIB
 *
 * With O_DIRECT on DEVICE, over its first MIB MiB: sequential writes and
 * reads in 1 MiB requests, then 4 KiB writes and reads at random aligned
 * offsets (MIB * 16 requests each: a sixteenth of the area), each pass
 * once.  Prints one line a pass, "PASS MiB/s", e.g.
 * "seq-read 123.4", and the data read back is checked against what was
 * written.  Exit status 0, or 1 with the reason on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BLOCK	(1UL << 20)
#define RAND_BLOCK	4096UL

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The word at @off of the pattern: a function of the offset. */
static uint64_t pattern(uint64_t off)
{
	return off * 0x9e3779b97f4a7c15ULL;
}

static void fill(uint64_t *buf, size_t len, uint64_t off)
{
	size_t i;

	for (i = 0; i < len / 8; i++)
		buf[i] = pattern(off + i * 8);
}

static int check(const uint64_t *buf, size_t len, uint64_t off)
{
	size_t i;

	for (i = 0; i < len / 8; i++) {
		if (buf[i] != pattern(off + i * 8)) {
			fprintf(stderr, "blk-bench: wrong data at offset %llu\n",
				(unsigned long long)(off + i * 8));
			return -1;
		}
	}
	return 0;
}

/* One request of @len at @off; the data checked when reading. */
static int transfer(int fd, uint64_t *buf, size_t len, uint64_t off, int write)
{
	ssize_t n;

	if (write)
		fill(buf, len, off);
	n = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
	if (n != (ssize_t)len) {
		fprintf(stderr, "blk-bench: %s at %llu: %s\n",
			write ? "pwrite" : "pread", (unsigned long long)off,
			n < 0 ? strerror(errno) : "short transfer");
		return -1;
	}
	return write ? 0 : check(buf, len, off);
}

/*
 * A pass of @count requests of @len, sequential or at random offsets
 * below @size; prints its throughput.  The pattern cost is in the time,
 * the same for every backend.
 */
static int run_pass(const char *name, int fd, uint64_t *buf, size_t len,
		    uint64_t size, unsigned long count, int write, int at_random)
{
	double start = now();
	unsigned long i;
	uint64_t off;

	srandom(1);
	for (i = 0; i < count; i++) {
		off = at_random ? (uint64_t)(random() % (size / len)) * len :
				  i * len;
		if (transfer(fd, buf, len, off, write))
			return -1;
	}
	if (write && fdatasync(fd)) {
		fprintf(stderr, "blk-bench: fdatasync: %s\n", strerror(errno));
		return -1;
	}
	printf("%s %.1f\n", name, count * len / (now() - start) / (1 << 20));
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long mib;
	uint64_t *buf;
	uint64_t size;
	int fd, ret;

	if (argc != 3 || !(mib = strtoul(argv[2], NULL, 0))) {
		fprintf(stderr, "usage: blk-bench DEVICE MIB\n");
		return 1;
	}
	size = (uint64_t)mib << 20;
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "blk-bench: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	buf = aligned_alloc(RAND_BLOCK, SEQ_BLOCK);
	if (!buf) {
		fprintf(stderr, "blk-bench: out of memory\n");
		close(fd);
		return 1;
	}
	/* Random writes keep the pattern: every offset holds its own words. */
	ret = run_pass("seq-write", fd, buf, SEQ_BLOCK, size, mib, 1, 0) ||
	      run_pass("seq-read", fd, buf, SEQ_BLOCK, size, mib, 0, 0) ||
	      run_pass("rand-write", fd, buf, RAND_BLOCK, size,
		       size / RAND_BLOCK / 16, 1, 1) ||
	      run_pass("rand-read", fd, buf, RAND_BLOCK, size,
		       size / RAND_BLOCK / 16, 0, 1);
	free(buf);
	close(fd);
	return ret ? 1 : 0;
}
