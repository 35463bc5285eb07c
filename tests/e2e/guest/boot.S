/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Multiboot v1 entry: QEMU's -kernel loader jumps here in 32-bit protected
 * mode, paging off, interrupts off.  Set up a stack, run guest_main(), and
 * then halt forever.
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

	.bss
	.align 16
	.space 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
