//! What the ring-0 kernel does for the ring-3 task: three system calls (wait for the timer,
//! halt, triple-fault) and port I/O on its behalf.
//!
//! # System calls
//!
//! The gate is `ud2`, not `int` or `syscall`: software KVM turns `int $n` from ring 3 into a
//! #UD even through a DPL-3 gate (`reference/build-machine-kvm.md`), while a #UD reaches the
//! guest's IDT reliably everywhere (real CPUs, KVM, QEMU TCG). The #UD handler treats the
//! exception as a call only when it comes from the one `ud2` in [`kernel_syscall`]; any other
//! #UD is a fault. Calling convention: `kernel_syscall(nr, arg) -> value`, the C ABI, so the
//! handler may clobber the caller-saved registers.
//!
//! # Port I/O
//!
//! The task runs with IOPL 3, so on a real CPU (and under QEMU) its `in`/`out` instructions
//! — the ABI doorbell, COM1, the PIT — execute directly. Software KVM ignores a guest's user
//! IOPL and raises #GP instead; the #GP handler then performs the instruction itself when it
//! is one of the forms the image uses (`in`/`out` through DX, byte, word or dword: `ec`,
//! `ed`, `66 ed`, `ee`, `ef`, `66 ef`) and returns past it. Any other #GP is a fault.

use core::arch::global_asm;

use bulkhead_guest_sdk::arch::x86::msr::IA32_TSC_DEADLINE;

use crate::interrupts::WAKE_TSC;

/// Arm the TSC deadline at `arg`, halt until the timer interrupt, return its TSC.
const SYS_WAIT_UNTIL: u64 = 0;
/// Halt for good with interrupts disabled.
const SYS_HALT: u64 = 1;
/// Load an empty IDT and raise an exception: a triple fault (SDM vol. 3A §6.15, "Interrupt
/// 8—Double Fault Exception": a fault while delivering #DF shuts the processor down).
const SYS_TRIPLE_FAULT: u64 = 2;
/// The #UD vector.
const UD_VECTOR: u64 = 6;
/// The #GP vector.
const GP_VECTOR: u64 = 13;

global_asm!(
    ".pushsection .text.kernel_syscall, \"ax\"",
    ".globl kernel_syscall",
    "kernel_syscall:",
    "    ud2",
    "    ret",
    // #UD: frame [rip, cs, rflags, rsp, ss], interrupts disabled (interrupt gate).
    ".globl kernel_isr_ud",
    "kernel_isr_ud:",
    "    pushq %rax",
    "    leaq kernel_syscall(%rip), %rax",
    "    cmpq %rax, 8(%rsp)",
    "    popq %rax",
    "    jne kernel_isr_table + 16 * {ud}", // not ours: the ordinary #UD stub, a fault
    "    addq $2, (%rsp)", // return past the ud2
    "    cmpq ${wait}, %rdi",
    "    je 1f",
    "    cmpq ${halt}, %rdi",
    "    je 3f",
    "    cmpq ${triple_fault}, %rdi",
    "    je 4f",
    "    movq $-1, %rax",
    "    iretq",
    // Wait: clear the wake-up TSC, arm the deadline, halt until the timer handler sets it.
    // Any other interrupt (a doorbell) also ends the hlt but leaves the TSC at 0: halt again.
    "1:",
    "    movq $0, {wake}(%rip)",
    "    movl ${deadline_msr}, %ecx",
    "    movq %rsi, %rax",
    "    movq %rsi, %rdx",
    "    shrq $32, %rdx",
    "    wrmsr",
    "2:",
    "    sti",
    "    hlt",
    "    cli",
    "    movq {wake}(%rip), %rax",
    "    testq %rax, %rax",
    "    jz 2b",
    "    iretq",
    "3:",
    "    cli",
    "    hlt",
    "    jmp 3b",
    // Triple fault: with an IDT of limit 0 the #UD below finds no gate (#GP), nor does the
    // #GP (#DF), nor the #DF: the processor shuts down.
    "4:",
    "    lidt kernel_null_idt(%rip)",
    "    ud2",
    // #GP: frame [error, rip, cs, rflags, rsp, ss]. Only from ring 3, only port I/O.
    ".globl kernel_isr_gp",
    "kernel_isr_gp:",
    "    testb $3, 16(%rsp)",
    "    jz kernel_isr_table + 16 * {gp}", // from ring 0: a fault
    "    pushq %rcx", // [rcx, error, rip, cs, ...]
    "    movq 16(%rsp), %rcx",
    "    cmpb $0xee, (%rcx)",
    "    je 10f",
    "    cmpb $0xef, (%rcx)",
    "    je 11f",
    "    cmpb $0xec, (%rcx)",
    "    je 12f",
    "    cmpb $0xed, (%rcx)",
    "    je 13f",
    "    cmpb $0x66, (%rcx)",
    "    jne 19f",
    "    cmpb $0xef, 1(%rcx)",
    "    je 14f",
    "    cmpb $0xed, 1(%rcx)",
    "    je 15f",
    "19:",
    "    popq %rcx",
    "    jmp kernel_isr_table + 16 * {gp}",
    "10:",
    "    outb %al, %dx",
    "    movl $1, %ecx",
    "    jmp 18f",
    "11:",
    "    outl %eax, %dx",
    "    movl $1, %ecx",
    "    jmp 18f",
    "12:",
    "    inb %dx, %al",
    "    movl $1, %ecx",
    "    jmp 18f",
    "13:",
    "    inl %dx, %eax",
    "    movl $1, %ecx",
    "    jmp 18f",
    "14:",
    "    outw %ax, %dx",
    "    movl $2, %ecx",
    "    jmp 18f",
    "15:",
    "    inw %dx, %ax",
    "    movl $2, %ecx",
    "18:",
    "    addq %rcx, 16(%rsp)", // return past the instruction
    "    popq %rcx",
    "    addq $8, %rsp", // drop the error code
    "    iretq",
    ".popsection",
    ".pushsection .rodata.kernel_null_idt, \"a\"",
    ".balign 16",
    "kernel_null_idt:",
    "    .word 0",
    "    .quad 0",
    ".popsection",
    ud = const UD_VECTOR,
    gp = const GP_VECTOR,
    wait = const SYS_WAIT_UNTIL,
    halt = const SYS_HALT,
    triple_fault = const SYS_TRIPLE_FAULT,
    deadline_msr = const IA32_TSC_DEADLINE,
    wake = sym WAKE_TSC,
    options(att_syntax),
);

extern "C" {
    fn kernel_syscall(nr: u64, arg: u64) -> u64;
    /// The #UD entry point, for the IDT.
    pub fn kernel_isr_ud();
    /// The #GP entry point, for the IDT.
    pub fn kernel_isr_gp();
}

/// Arms the LAPIC timer for TSC value `deadline`, sleeps (`sti; hlt`) until its interrupt,
/// and returns the TSC the timer handler read on wake-up. A deadline already past fires at
/// once. The LAPIC timer must be in TSC-deadline mode, as the kernel sets it up at boot when
/// the CPU has one ([`crate::lapic_timer`]).
pub fn wait_until(deadline: u64) -> u64 {
    // SAFETY: the kernel side arms the timer, whose vector has a handler, and halts; it
    // clobbers only caller-saved registers, as a C call may.
    unsafe { kernel_syscall(SYS_WAIT_UNTIL, deadline) }
}

/// Makes the vCPU triple-fault on purpose, to exercise the partition's fault handling (bulkhead
/// reports a guest fault and applies `on_guest_fault`; QEMU resets or, with `-no-reboot`,
/// exits). Never returns.
pub fn triple_fault() -> ! {
    // SAFETY: the kernel side never returns; it destroys nothing but this vCPU's state.
    unsafe { kernel_syscall(SYS_TRIPLE_FAULT, 0) };
    loop {
        core::hint::spin_loop();
    }
}

/// Stops this vCPU for good (interrupts disabled, `hlt`).
pub fn halt() -> ! {
    // SAFETY: as `wait_until`; the kernel side never returns.
    unsafe { kernel_syscall(SYS_HALT, 0) };
    // Unreachable: the kernel loops on `hlt`.
    loop {
        core::hint::spin_loop();
    }
}
