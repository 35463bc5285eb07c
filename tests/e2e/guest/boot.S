/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Multiboot v1 entry: QEMU's -kernel loader jumps here in 32-bit protected
 * mode, paging off, interrupts off.  Set up a stack, run guest_main(), and
 * then halt forever.  pic_irq_entry and exception_entries are power.c's
 * interrupt and exception handlers.
 */

#define MULTIBOOT_MAGIC	0x1badb002
#define MULTIBOOT_FLAGS	0x0

	.section .multiboot, "a"
	.align 4
	.long MULTIBOOT_MAGIC
	.long MULTIBOOT_FLAGS
	.long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

	.text
	.globl _start
_start:
	cli
	mov	$stack_top, %esp
	call	guest_main
	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp	halt_forever

/*
 * An 8259 IRQ: a non-specific EOI to both PICs, then back to the
 * interrupted code with IF clear in the EFLAGS that iret restores, so
 * that a level-triggered IRQ still raised cannot fire again before the
 * code looks at its cause.
 */
	.globl pic_irq_entry
pic_irq_entry:
	push	%eax
	mov	$0x20, %al
	out	%al, $0xa0
	out	%al, $0x20
	andl	$~0x200, 12(%esp)
	pop	%eax
	iret

/* Exception N: guest_exception(N), then halt forever. */
	.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
exception_\vector:
	push	$\vector
	call	guest_exception
	jmp	halt_forever
	.endr

	.section .rodata
	.align 4
	.globl exception_entries
exception_entries:
	.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.long	exception_\vector
	.endr

	.bss
	.align 16
	.space 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
