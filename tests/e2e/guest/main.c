// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest side of the demo: make a random marker, copy it to the start of
 * every page of MARKER_REGION, check the copies, and tell the host on COM1:
 *
 *   MARKER-SOURCE rdrand|rdtsc
 *   MARKER <64 hex digits>
 *   GUEST-READBACK ok|FAIL <bad pages>
 *   READY
 *
 * then wait for the ACPI power button and power off (power.c).
 */
#include <stdint.h>
#include "power.h"
#include "random.h"
#include "serial.h"

#define MARKER_WORDS		8		/* 32 bytes */
#define MARKER_REGION_START	0x200000u	/* 2 MiB */
#define MARKER_REGION_SIZE	0x200000u	/* 2 MiB */
#define PAGE_SIZE		4096u

static void write_marker_copies(const uint32_t *marker)
{
	uint32_t addr;
	int i;

	for (addr = MARKER_REGION_START;
	     addr < MARKER_REGION_START + MARKER_REGION_SIZE; addr += PAGE_SIZE) {
		uint32_t *page = (uint32_t *)addr;

		for (i = 0; i < MARKER_WORDS; i++)
			page[i] = marker[i];
	}
}

/* The read-back must load from RAM, not reuse what the compiler knows. */
static inline void barrier(void)
{
	asm volatile("" : : : "memory");
}

/* Returns the number of pages whose copy does not match. */
static uint32_t count_bad_copies(const uint32_t *marker)
{
	uint32_t addr, bad = 0;
	int i;

	for (addr = MARKER_REGION_START;
	     addr < MARKER_REGION_START + MARKER_REGION_SIZE; addr += PAGE_SIZE) {
		const uint32_t *page = (const uint32_t *)addr;

		for (i = 0; i < MARKER_WORDS; i++) {
			if (page[i] != marker[i]) {
				bad++;
				break;
			}
		}
	}
	return bad;
}

void guest_main(void)
{
	uint32_t marker[MARKER_WORDS];
	const char *source;
	uint32_t bad;

	serial_init();
	source = random_fill(marker, MARKER_WORDS);
	write_marker_copies(marker);
	barrier();
	bad = count_bad_copies(marker);

	serial_puts("MARKER-SOURCE ");
	serial_puts(source);
	serial_puts("\nMARKER ");
	serial_put_hex((const uint8_t *)marker, sizeof(marker));
	if (bad) {
		serial_puts("\nGUEST-READBACK FAIL ");
		serial_put_uint(bad);
	} else {
		serial_puts("\nGUEST-READBACK ok");
	}
	serial_puts("\nREADY\n");
	power_off_on_button();
}
