/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ACPI power button: what "virsh shutdown" and QMP system_powerdown send. */
#ifndef POWER_H
#define POWER_H

void power_off_on_button(void);

#endif
