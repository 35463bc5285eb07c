// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kcore-scan: count the copies of a 32-byte marker in the kernel's direct
 * map, i.e. the RAM segments of /proc/kcore, as a Spectre-class gadget in
 * the kernel would see them, and check the count against an expectation.
 *
 *   kcore-scan --expect found|absent MARKER_HEX
 *
 * Prints one TAP test, described as one of
 *
 *   /proc/kcore: found (N copies)
 *   /proc/kcore: not found (M MiB of direct map)
 *   /proc/kcore # SKIP open: ENOENT, needs root and CONFIG_PROC_KCORE
 *
 * "absent" also needs a non-empty direct map to have been read.  Pages
 * taken out of the direct map (memfd_secret) read back as zeros.  The
 * marker must be 8-byte aligned in memory (the marker guest puts it at the
 * start of pages).  This process keeps it only complemented, so it never
 * holds a copy that the scan would find.  Exit status 0 when the test
 * passed, 1 when it failed, 2 on bad usage, 4 when skipped (no
 * /proc/kcore, or not root).
 */
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARKER_QWORDS	4
#define CHUNK_SIZE	(1UL << 20)
#define KERNEL_TEXT	0xffffffff80000000ULL
#define EXIT_USAGE	2
#define EXIT_SKIP	4

/* Parse 64 hex digits into the complemented marker. */
static int parse_marker_inverted(const char *hex, uint64_t *inv)
{
	unsigned char byte;
	int i;

	if (strlen(hex) != 16 * MARKER_QWORDS)
		return -EINVAL;
	memset(inv, 0, MARKER_QWORDS * sizeof(*inv));
	for (i = 0; i < 8 * MARKER_QWORDS; i++) {
		if (!isxdigit(hex[2 * i]) || !isxdigit(hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2hhx", &byte) != 1)
			return -EINVAL;
		/* little endian: byte i of the marker is byte i % 8 of qword i / 8 */
		inv[i / 8] |= (uint64_t)(unsigned char)~byte << (8 * (i % 8));
	}
	return 0;
}

static int is_marker(const uint64_t *q, const uint64_t *inv)
{
	int i;

	for (i = 0; i < MARKER_QWORDS; i++)
		if (~q[i] != inv[i])
			return 0;
	return 1;
}

/* Direct map RAM: has a physical address and is not the kernel image. */
static int is_direct_map(const Elf64_Phdr *ph)
{
	return ph->p_type == PT_LOAD && ph->p_paddr != (Elf64_Addr)-1 &&
	       ph->p_vaddr < KERNEL_TEXT;
}

/*
 * Count markers in one segment, in chunks that overlap by the marker's
 * length less one qword.  Adds the bytes read to *@scanned.
 */
static long scan_segment(int fd, const Elf64_Phdr *ph, const uint64_t *inv,
			 uint64_t *buf, uint64_t *scanned)
{
	const size_t overlap = (MARKER_QWORDS - 1) * sizeof(*buf);
	uint64_t off = 0;
	long hits = 0;
	size_t j, len;
	ssize_t n;

	while (off < ph->p_memsz) {
		len = ph->p_memsz - off < CHUNK_SIZE ? ph->p_memsz - off : CHUNK_SIZE;
		n = pread(fd, buf, len, ph->p_offset + off);
		if (n < 0)
			return -errno;
		if (n < (ssize_t)(MARKER_QWORDS * sizeof(*buf)))
			break;
		for (j = 0; j + MARKER_QWORDS <= n / sizeof(*buf); j++)
			hits += is_marker(buf + j, inv);
		*scanned += n;
		if ((size_t)n < len || off + n >= ph->p_memsz)
			break;
		off += n - overlap;
	}
	return hits;
}

static long scan_kcore(int fd, const uint64_t *inv, uint64_t *scanned)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint64_t *buf;
	long hits = 0, ret;
	int i;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64)
		return -ENOEXEC;
	buf = malloc(CHUNK_SIZE);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) != sizeof(ph)) {
			hits = -EIO;
			goto out;
		}
		if (!is_direct_map(&ph))
			continue;
		ret = scan_segment(fd, &ph, inv, buf, scanned);
		if (ret < 0) {
			hits = ret;
			goto out;
		}
		hits += ret;
	}
out:
	memset(buf, 0, CHUNK_SIZE);
	free(buf);
	return hits;
}

int main(int argc, char **argv)
{
	uint64_t inv[MARKER_QWORDS], scanned = 0;
	int fd, expect_found, ok;
	long hits;

	if (argc != 4 || strcmp(argv[1], "--expect") ||
	    (strcmp(argv[2], "found") && strcmp(argv[2], "absent")) ||
	    parse_marker_inverted(argv[3], inv)) {
		fprintf(stderr, "usage: %s --expect found|absent MARKER_HEX   (64 hex digits)\n",
			argv[0]);
		return EXIT_USAGE;
	}
	expect_found = !strcmp(argv[2], "found");
	printf("TAP version 13\n1..1\n");
	fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("ok 1 - /proc/kcore # SKIP open: %s, needs root and CONFIG_PROC_KCORE\n",
		       strerrorname_np(errno));
		return EXIT_SKIP;
	}
	hits = scan_kcore(fd, inv, &scanned);
	close(fd);
	if (hits < 0) {
		printf("not ok 1 - /proc/kcore: error %s\n", strerrorname_np(-hits));
		return EXIT_FAILURE;
	}
	ok = expect_found ? hits > 0 : !hits && scanned;
	if (hits)
		printf("%s 1 - /proc/kcore: found (%ld copies)\n", ok ? "ok" : "not ok", hits);
	else
		printf("%s 1 - /proc/kcore: not found (%llu MiB of direct map)\n",
		       ok ? "ok" : "not ok", (unsigned long long)(scanned >> 20));
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
