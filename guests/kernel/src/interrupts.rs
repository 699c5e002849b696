//! The IDT and the interrupt entry stubs.
//!
//! * Vectors 0–31 (exceptions) go to [`fault`], which reports the exception and powers the
//!   partition off: this guest has no exception it expects.
//! * [`TIMER_VECTOR`] is the hot path: a dozen instructions that store the TSC at wake-up in
//!   [`WAKE_TSC`], signal EOI and return. It runs emulated on software KVM, so it stays tiny.
//! * [`DOORBELL_VECTOR`] (0x50) is the vector the task attaches to its incoming doorbells (ABI
//!   0.3 `DoorbellAttach`: the monitor raises it on vCPU 0's local APIC, fixed delivery, edge,
//!   at every ring). Its handler is as tiny as the timer's: it counts the interrupt in
//!   [`DOORBELL_INTERRUPTS`], signals EOI and returns; the task notices the count grow and
//!   takes the rings itself (`DoorbellWait`) in ring 3. It never touches [`WAKE_TSC`], so a
//!   ring that wakes the wait system call's `hlt` before the timer fires finds `WAKE_TSC` still
//!   0 there and the wait halts again (`syscall`): the periodic task still wakes at its
//!   deadline, late only by the few instructions of this handler when both coincide.
//! * [`SPURIOUS_VECTOR`] returns without EOI (SDM vol. 3A §11.9).
//! * #UD (6) is also the task's system-call gate, and #GP (13) performs the task's port I/O
//!   where the hypervisor ignores IOPL (`syscall`).
//! * Any other vector is counted in [`UNEXPECTED_INTERRUPTS`] and acknowledged.
//!
//! Handlers run in ring 0 on the kernel stack (through TSS.RSP0 when they interrupt the task
//! in ring 3). The timer and doorbell handlers may nest inside the wait system call's
//! `sti; hlt`, nothing else nests (every gate is an interrupt gate: IF is clear in a handler).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bulkhead_guest_sdk::abi;
use bulkhead_guest_sdk::arch::x86::descriptor::interrupt_gate;
use bulkhead_guest_sdk::line::Line;

use crate::cpu::KERNEL_CS;
use crate::syscall::{kernel_isr_gp, kernel_isr_ud};

/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x40;
/// Vector for incoming doorbells (ABI 0.3 `DoorbellAttach`), in a higher priority class than
/// the timer's (SDM vol. 3A §11.8.3.1); at least `abi::MIN_DOORBELL_VECTOR`.
pub const DOORBELL_VECTOR: u8 = 0x50;
const _: () = assert!(DOORBELL_VECTOR as u64 >= abi::MIN_DOORBELL_VECTOR);
/// Invalid opcode: also the task's system-call gate (`syscall`).
const UD_VECTOR: u8 = 6;
/// General protection: also the task's port I/O on software KVM (`syscall`).
const GP_VECTOR: u8 = 13;
/// Spurious-interrupt vector programmed into the LAPIC's SVR.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// TSC read by the timer handler at the last timer interrupt; 0 until one arrives.
pub static WAKE_TSC: AtomicU64 = AtomicU64::new(0);
/// Whether the handlers signal EOI through the x2APIC MSR (else the xAPIC page).
pub static EOI_X2APIC: AtomicBool = AtomicBool::new(false);
/// Interrupts on [`DOORBELL_VECTOR`] since boot.
pub static DOORBELL_INTERRUPTS: AtomicU64 = AtomicU64::new(0);
/// Interrupts on vectors nobody programmed.
pub static UNEXPECTED_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

global_asm!(
    // EOI through x2APIC MSR 0x80b or the xAPIC page at 0xfee000b0. Clobbers rax, rcx, rdx.
    ".macro kernel_eoi",
    "    cmpb $0, {x2apic}(%rip)",
    "    je 7f",
    "    movl $0x80b, %ecx",
    "    xorl %eax, %eax",
    "    xorl %edx, %edx",
    "    wrmsr",
    "    jmp 8f",
    "7:",
    "    movl $0xfee000b0, %eax",
    "    movl $0, (%rax)",
    "8:",
    ".endm",
    ".pushsection .text.kernel_isr, \"ax\"",
    // One 16-byte stub per vector: push a zero error code where the CPU pushes none, push
    // the vector, jump to the common code.
    ".balign 16",
    ".globl kernel_isr_table",
    "kernel_isr_table:",
    ".set kernel_vec, 0",
    ".rept 256",
    "    .balign 16",
    "    .if (kernel_vec == 8) || ((kernel_vec >= 10) && (kernel_vec <= 14)) || (kernel_vec == 17) || (kernel_vec == 21) || (kernel_vec == 29) || (kernel_vec == 30)",
    "    .else",
    "    pushq $0",
    "    .endif",
    "    pushq $kernel_vec",
    "    .if kernel_vec < 32",
    "    jmp kernel_isr_fault",
    "    .else",
    "    jmp kernel_isr_unexpected",
    "    .endif",
    "    .set kernel_vec, kernel_vec + 1",
    ".endr",
    // Exceptions: the frame is [vector, error, rip, cs, rflags, rsp, ss]; never returns.
    "kernel_isr_fault:",
    "    movq %rsp, %rdi",
    "    andq $-16, %rsp",
    "    call {fault}",
    "    ud2",
    "kernel_isr_unexpected:",
    "    pushq %rax",
    "    pushq %rcx",
    "    pushq %rdx",
    "    incq {unexpected}(%rip)",
    "    kernel_eoi",
    "    popq %rdx",
    "    popq %rcx",
    "    popq %rax",
    "    addq $16, %rsp",
    "    iretq",
    ".globl kernel_isr_timer",
    "kernel_isr_timer:",
    "    pushq %rax",
    "    pushq %rcx",
    "    pushq %rdx",
    "    rdtsc",
    "    shlq $32, %rdx",
    "    orq %rdx, %rax",
    "    movq %rax, {wake}(%rip)",
    "    kernel_eoi",
    "    popq %rdx",
    "    popq %rcx",
    "    popq %rax",
    "    iretq",
    // Doorbell: count, EOI. Leaves WAKE_TSC alone (see the module docs).
    ".globl kernel_isr_doorbell",
    "kernel_isr_doorbell:",
    "    pushq %rax",
    "    pushq %rcx",
    "    pushq %rdx",
    "    incq {doorbells}(%rip)",
    "    kernel_eoi",
    "    popq %rdx",
    "    popq %rcx",
    "    popq %rax",
    "    iretq",
    ".globl kernel_isr_spurious",
    "kernel_isr_spurious:",
    "    iretq",
    ".popsection",
    x2apic = sym EOI_X2APIC,
    unexpected = sym UNEXPECTED_INTERRUPTS,
    wake = sym WAKE_TSC,
    doorbells = sym DOORBELL_INTERRUPTS,
    fault = sym fault,
    options(att_syntax),
);

extern "C" {
    fn kernel_isr_table();
    fn kernel_isr_timer();
    fn kernel_isr_doorbell();
    fn kernel_isr_spurious();
}

/// Size of one stub in `kernel_isr_table`.
const STUB_SIZE: u64 = 16;

/// The IDT: 256 gates of two quadwords. Atomics only so that a shared static can be filled
/// without `unsafe`; the CPU reads it as plain memory.
#[repr(C, align(16))]
struct Idt([AtomicU64; 512]);

static IDT: Idt = Idt([const { AtomicU64::new(0) }; 512]);

/// The operand of `lidt` (SDM vol. 3A §6.10).
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// Fills the IDT and loads it. Interrupts must be disabled (they are, from entry on).
pub fn install() {
    let table = kernel_isr_table as *const () as u64;
    for vector in 0..=255u8 {
        let handler = match vector {
            TIMER_VECTOR => kernel_isr_timer as *const () as u64,
            DOORBELL_VECTOR => kernel_isr_doorbell as *const () as u64,
            SPURIOUS_VECTOR => kernel_isr_spurious as *const () as u64,
            UD_VECTOR => kernel_isr_ud as *const () as u64,
            GP_VECTOR => kernel_isr_gp as *const () as u64,
            v => table + u64::from(v) * STUB_SIZE,
        };
        let [low, high] = interrupt_gate(handler, KERNEL_CS);
        let i = usize::from(vector) * 2;
        IDT.0[i].store(low, Ordering::Relaxed);
        IDT.0[i + 1].store(high, Ordering::Relaxed);
    }
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: &IDT as *const Idt as u64,
    };
    // SAFETY: the IDT is a static (it outlives the image) and every gate points to a stub
    // above, each of which preserves the interrupted context or never returns.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

/// What an exception stub leaves on the stack.
#[repr(C)]
struct FaultFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
}

/// Reports an exception and powers the partition off with [`crate::EXIT_FAULT`].
extern "C" fn fault(frame: *const FaultFrame) -> ! {
    // SAFETY: the stub passes the address of the frame the CPU and the stub just pushed.
    let frame = unsafe { &*frame };
    let cr2: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    let mut line = Line::new();
    line.str(crate::image().name)
        .str(b": exception vector=")
        .u64(frame.vector)
        .str(b" error=")
        .hex(frame.error)
        .str(b" rip=")
        .hex(frame.rip)
        .str(b" cs=")
        .hex(frame.cs)
        .str(b" rflags=")
        .hex(frame.rflags)
        .str(b" rsp=")
        .hex(frame.rsp)
        .str(b" cr2=")
        .hex(cr2);
    crate::console::println(&mut line);
    crate::shutdown(crate::EXIT_FAULT)
}
