//! Segmentation and privilege: the GDT, the TSS, and the drop from the boot code in ring 0 to
//! the task in ring 3 (Intel SDM vol. 3A ch. 3, §7.7, §6.14).
//!
//! Why ring 3: on software KVM (this project's build and CI machines) ring-0 guest code is
//! emulated instruction by instruction, about a microsecond each, while ring-3 code runs
//! natively. So the image keeps a tiny ring-0 kernel — boot, the interrupt and exception
//! stubs, and three system calls (wait for the timer, halt, triple-fault; see `syscall`) — and
//! runs the task itself, whatever it computes and reports, in ring 3. The task runs with
//! IOPL 3 so that it reaches the ABI doorbell and the PC's I/O ports directly, and on the same
//! identity mapping (all pages user-accessible: the image trusts itself; the partition
//! boundary is the monitor's business).

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bulkhead_guest_sdk::arch::x86::descriptor::{tss_descriptor, TSS_SIZE};

/// Selector of the 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Selector of the user data (stack) segment, RPL 3.
pub const USER_SS: u16 = 0x18 | 3;
/// Selector of the 64-bit user code segment, RPL 3.
pub const USER_CS: u16 = 0x20 | 3;
/// Selector of the TSS.
const TSS_SELECTOR: u16 = 0x28;
/// Number of GDT slots (the TSS descriptor takes two).
const GDT_ENTRIES: usize = 7;
/// The GDT's limit, for `lgdt`.
pub const GDT_LIMIT: u16 = (GDT_ENTRIES * 8 - 1) as u16;

/// RFLAGS for the task: IF (interrupts on) and IOPL 3 (port I/O allowed), bit 1 reserved-1.
const USER_RFLAGS: u64 = (1 << 9) | (3 << 12) | (1 << 1);

/// The GDT, loaded by the boot code: null; kernel code 64 (0x08); kernel data (0x10); user
/// data (0x18, DPL 3); user code 64 (0x20, DPL 3); the TSS (0x28, filled by [`load_tss`]).
/// Accessed bits are preset so the CPU never writes the descriptors. Atomics only so the TSS
/// slots can be filled without `unsafe`; the CPU reads the table as plain memory.
#[repr(C, align(16))]
pub struct Gdt([AtomicU64; GDT_ENTRIES]);

/// See [`Gdt`].
pub static GDT: Gdt = Gdt([
    AtomicU64::new(0),
    AtomicU64::new(0x00af_9b00_0000_ffff),
    AtomicU64::new(0x00cf_9300_0000_ffff),
    AtomicU64::new(0x00cf_f300_0000_ffff),
    AtomicU64::new(0x00af_fb00_0000_ffff),
    AtomicU64::new(0),
    AtomicU64::new(0),
]);

/// The 64-bit TSS (SDM §7.7): only RSP0 matters — the stack interrupts and exceptions from
/// ring 3 switch to — and the I/O-map base, set past the end (no bitmap; IOPL decides).
#[repr(C, align(16))]
struct Tss([AtomicU32; TSS_SIZE / 4]);

static TSS: Tss = Tss([const { AtomicU32::new(0) }; TSS_SIZE / 4]);

extern "C" {
    /// Top of the kernel stack (`boot`).
    fn boot_stack_top();
    /// Top of the task's stack (`boot`).
    fn user_stack_top();
}

/// Fills the TSS and its descriptor and loads the task register.
pub fn load_tss() {
    let rsp0 = boot_stack_top as *const () as u64;
    TSS.0[1].store(rsp0 as u32, Ordering::Relaxed);
    TSS.0[2].store((rsp0 >> 32) as u32, Ordering::Relaxed);
    // I/O-map base (offset 102, the upper half of the last word) = the TSS size: no bitmap.
    TSS.0[TSS_SIZE / 4 - 1].store((TSS_SIZE as u32) << 16, Ordering::Relaxed);
    let [low, high] = tss_descriptor(&TSS as *const Tss as u64);
    let slot = usize::from(TSS_SELECTOR / 8);
    GDT.0[slot].store(low, Ordering::Relaxed);
    GDT.0[slot + 1].store(high, Ordering::Relaxed);
    // SAFETY: the descriptor just written describes the static TSS, whose RSP0 is the kernel
    // stack; loading TR only marks it busy in the GDT.
    unsafe { asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags)) };
}

/// Drops to ring 3 and calls `entry(arg)` there, on the task stack, with interrupts enabled
/// and IOPL 3. Never returns; the kernel stack is reused from the top for interrupts.
pub fn enter_user(entry: extern "C" fn(u64) -> !, arg: u64) -> ! {
    // Entered as if called: RSP + 8 is 16-byte aligned.
    let stack_top = user_stack_top as *const () as u64 - 8;
    // SAFETY: builds an interrupt-return frame to a ring-3 code segment whose mapping is
    // user-accessible; the target is a Rust function that never returns; the TSS is loaded,
    // so interrupts from ring 3 find the kernel stack.
    unsafe {
        asm!(
            "push {ss}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            "iretq",
            ss = in(reg) u64::from(USER_SS),
            rsp = in(reg) stack_top,
            rflags = in(reg) USER_RFLAGS,
            cs = in(reg) u64::from(USER_CS),
            rip = in(reg) entry as *const () as u64,
            in("rdi") arg,
            options(noreturn),
        )
    }
}
