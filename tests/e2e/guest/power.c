// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sleep until the ACPI power button is pressed, then power off through
 * PM1a_CNT as an ACPI OS would for S5: what lets "virsh shutdown" (QMP
 * system_powerdown) end the guest cleanly.
 *
 * QEMU's PIIX4 and ICH9 power management, set up by SeaBIOS: the PM1
 * registers at I/O port 0x600, the SCI on IRQ 9, and S5 = SLP_TYP 0 (the
 * DSDT's \_S5).  The press sets PM1_STS.PWRBTN_STS and, with PWRBTN_EN,
 * raises the SCI, a level-triggered PCI-style interrupt: the vCPU halts
 * with only that IRQ unmasked in the PICs, so it costs nothing while it
 * waits.  Before powering off it says "POWEROFF" on COM1, which the tests
 * require, so that a guest that ended some other way (a fault resets it)
 * does not pass for one that shut down.  A CPU exception says
 * "GUEST-EXCEPTION <vector>" and halts.
 */
#include <stdint.h>
#include "io.h"
#include "power.h"
#include "serial.h"

#define PM_BASE			0x600
#define PM1_STS			(PM_BASE + 0)
#define PM1_EN			(PM_BASE + 2)
#define PM1_CNT			(PM_BASE + 4)
#define PM1_PWRBTN		(1u << 8)	/* in PM1_STS and PM1_EN */
#define PM1_CNT_SLP_TYP(t)	((t) << 10)
#define PM1_CNT_SLP_TYP_MASK	PM1_CNT_SLP_TYP(7u)
#define PM1_CNT_SLP_EN		(1u << 13)
#define SLP_TYP_S5		0
#define SCI_IRQ			9

#define PIC1_CMD		0x20
#define PIC1_DATA		0x21
#define PIC2_CMD		0xa0
#define PIC2_DATA		0xa1
#define PIC_ICW1_INIT_ICW4	0x11
#define PIC_ICW4_8086		0x01
#define PIC1_VECTOR		0x20
#define PIC2_VECTOR		0x28
#define PIC_CASCADE_IRQ		2
#define PIC_IRQS		16
#define ELCR1			0x4d0	/* edge/level control, IRQs 0-7 */
#define ELCR2			0x4d1	/* IRQs 8-15 */
#define EXCEPTIONS		32

#define IDT_INTERRUPT_GATE	0x8e		/* present, DPL 0, 32-bit */

struct idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t zero;
	uint8_t type;
	uint16_t offset_high;
} __attribute__((packed));

struct idt_pointer {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

/* boot.S: acknowledges the PICs and returns with interrupts off. */
void pic_irq_entry(void);
/* boot.S: one entry per exception vector, each calling guest_exception. */
extern const uint32_t exception_entries[EXCEPTIONS];

static struct idt_gate idt[PIC2_VECTOR + 8];

static void idt_set(int vector, uint32_t entry, uint16_t cs)
{
	idt[vector].offset_low = entry & 0xffff;
	idt[vector].selector = cs;
	idt[vector].type = IDT_INTERRUPT_GATE;
	idt[vector].offset_high = entry >> 16;
}

static void idt_init(void)
{
	struct idt_pointer pointer = { sizeof(idt) - 1, (uint32_t)idt };
	uint16_t cs;
	int v;

	asm volatile("mov %%cs, %0" : "=r"(cs));
	for (v = 0; v < EXCEPTIONS; v++)
		idt_set(v, exception_entries[v], cs);
	for (v = PIC1_VECTOR; v < PIC1_VECTOR + PIC_IRQS; v++)
		idt_set(v, (uint32_t)pic_irq_entry, cs);
	asm volatile("lidt %0" : : "m"(pointer));
}

/* Called by boot.S's exception entries; boot.S halts when it returns. */
void guest_exception(uint32_t vector)
{
	serial_puts("GUEST-EXCEPTION ");
	serial_put_uint(vector);
	serial_puts("\n");
}

/* Both 8259s on PIC1_VECTOR/PIC2_VECTOR, every IRQ masked but @irq. */
static void pic_init_only(unsigned int irq)
{
	uint16_t unmasked = 1u << irq | 1u << PIC_CASCADE_IRQ;

	outb(PIC1_CMD, PIC_ICW1_INIT_ICW4);
	outb(PIC2_CMD, PIC_ICW1_INIT_ICW4);
	outb(PIC1_DATA, PIC1_VECTOR);
	outb(PIC2_DATA, PIC2_VECTOR);
	outb(PIC1_DATA, 1u << PIC_CASCADE_IRQ);	/* slave on IRQ 2 */
	outb(PIC2_DATA, PIC_CASCADE_IRQ);	/* its cascade identity */
	outb(PIC1_DATA, PIC_ICW4_8086);
	outb(PIC2_DATA, PIC_ICW4_8086);
	outb(PIC1_DATA, ~unmasked & 0xff);
	outb(PIC2_DATA, ~unmasked >> 8);
}

/* @irq level-triggered, as its ACPI tables say of the SCI. */
static void pic_level_triggered(unsigned int irq)
{
	uint16_t port = irq < 8 ? ELCR1 : ELCR2;

	outb(port, inb(port) | 1u << (irq % 8));
}

void power_off_on_button(void)
{
	idt_init();
	pic_init_only(SCI_IRQ);
	pic_level_triggered(SCI_IRQ);
	outw(PM1_STS, PM1_PWRBTN);		/* write 1 to clear */
	outw(PM1_EN, inw(PM1_EN) | PM1_PWRBTN);
	/* sti's one-instruction shadow: the SCI cannot slip in before hlt. */
	while (!(inw(PM1_STS) & PM1_PWRBTN))
		asm volatile("sti; hlt" : : : "memory");
	serial_puts("POWEROFF\n");
	outw(PM1_CNT, (inw(PM1_CNT) & ~PM1_CNT_SLP_TYP_MASK) |
		      PM1_CNT_SLP_TYP(SLP_TYP_S5) | PM1_CNT_SLP_EN);
}
