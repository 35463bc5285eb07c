/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Random bytes made inside the guest at run time: RDRAND when CPUID has
 * it, else a mix of RDTSC samples.
 */
#ifndef RANDOM_H
#define RANDOM_H

#include <stdint.h>

/* Fill @words 32-bit words of @buf; returns the source's name. */
const char *random_fill(uint32_t *buf, unsigned int words);

#endif
