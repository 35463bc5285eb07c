/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Output on COM1 (0x3f8), 115200 8N1. */
#ifndef SERIAL_H
#define SERIAL_H

#include <stdint.h>

void serial_init(void);
void serial_puts(const char *s);
void serial_put_hex(const uint8_t *bytes, unsigned int len);
void serial_put_uint(uint32_t value);

#endif
