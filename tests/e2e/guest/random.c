// SPDX-License-Identifier: GPL-2.0-or-later
#include "io.h"
#include "random.h"

#define CPUID_1_ECX_RDRAND	(1u << 30)
#define RDRAND_RETRIES		10

static int has_rdrand(void)
{
	uint32_t a, b, c, d;

	cpuid(1, &a, &b, &c, &d);
	return !!(c & CPUID_1_ECX_RDRAND);
}

/* Returns 0 on success, -1 when the hardware had no entropy to give. */
static int rdrand32(uint32_t *value)
{
	int i;
	uint8_t ok;

	for (i = 0; i < RDRAND_RETRIES; i++) {
		asm volatile("rdrand %0; setc %1" : "=r"(*value), "=qm"(ok));
		if (ok)
			return 0;
	}
	return -1;
}

/* splitmix64's finalizer: spreads the timing jitter over all bits. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Each word folds in many RDTSC samples taken around port I/O, whose
 * duration varies with the host (VM exits, TCG, interrupts).
 */
static uint32_t rdtsc_word(uint64_t *state)
{
	int i;

	for (i = 0; i < 64; i++) {
		inb(0x80);
		*state = mix64(*state ^ rdtsc());
	}
	return (uint32_t)(*state >> 32);
}

const char *random_fill(uint32_t *buf, unsigned int words)
{
	uint64_t state = rdtsc();
	unsigned int i;

	if (has_rdrand()) {
		for (i = 0; i < words; i++)
			if (rdrand32(&buf[i]))
				break;
		if (i == words)
			return "rdrand";
	}
	for (i = 0; i < words; i++)
		buf[i] = rdtsc_word(&state);
	return "rdtsc";
}
