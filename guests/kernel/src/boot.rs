//! The image's ELF notes and its two entry points (`docs/pv-abi.md`, "Boot").
//!
//! * `_start64` (`e_entry`): the bulkhead monitor enters here in 64-bit mode, paging on with
//!   the first 4 GiB identity-mapped, interrupts off, RBX = RSI = the `hvm_start_info`
//!   address, RSP = 0.
//! * `_start32` (named by the Xen PVH note): QEMU and other PVH loaders enter here in 32-bit
//!   protected mode, paging off, EBX = the `hvm_start_info` address. It switches to long mode
//!   with a far jump (this machine's software KVM cannot emulate a 32-bit `iret`) and joins
//!   the 64-bit path.
//!
//! Both paths then load the image's own page tables (identity map of 4 GiB in 2 MiB pages,
//! user-accessible, the top GiB — MMIO, including the LAPIC — uncached) and GDT
//! ([`cpu::GDT`]), so that after entry nothing the loader built is used any more; zero
//! `.bss`; switch to the kernel stack; enable SSE (the image is built without SSE
//! instructions, see `guests/.cargo/config.toml`, but precompiled `core` code may carry some
//! and the x87/SSE state should be sane); and call `kernel_main` (the crate root) with the start-info address.

use core::arch::global_asm;

use bulkhead_guest_sdk::abi;

use crate::cpu;

/// Size of the kernel stack: the boot code runs on it, then every interrupt and exception
/// (through TSS.RSP0 once the task runs in ring 3).
const STACK_SIZE: usize = 16 * 1024;
/// Size of the task's stack (ring 3): the task and whatever it keeps on it (`rt-demo`: its
/// two latency histograms) live there.
const USER_STACK_SIZE: usize = 64 * 1024;

// The bulkhead note's name is written out in the assembly below; keep it the ABI's.
const _: () = {
    let name = abi::ELF_NOTE_NAME;
    let expected = b"bulkhead";
    assert!(name.len() == expected.len());
    let mut i = 0;
    while i < name.len() {
        assert!(name[i] == expected[i]);
        i += 1;
    }
};

global_asm!(
    // --- ELF notes (4-byte aligned: loaders walk them with the PT_NOTE alignment) ---
    // Xen PVH entry: XEN_ELFNOTE_PHYS32_ENTRY (18), a 32-bit physical entry address.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 4",
    ".long 18",
    ".asciz \"Xen\"",
    ".balign 4",
    ".long _start32",
    ".popsection",
    // bulkhead native guest: the ABI version this image was built against.
    ".pushsection .note.bulkhead, \"a\", @note",
    ".balign 4",
    ".long 9",
    ".long 4",
    ".long {note_type}",
    ".asciz \"bulkhead\"",
    ".balign 4",
    ".long {abi_version}",
    ".popsection",
    // --- Entry code ---
    ".pushsection .text.boot, \"ax\"",
    ".code32",
    ".globl _start32",
    "_start32:",
    "    cli",
    "    cld",
    "    movl $boot_pml4, %eax",
    "    movl %eax, %cr3",
    "    movl %cr4, %eax",
    "    orl $0x20, %eax", // CR4.PAE
    "    movl %eax, %cr4",
    "    movl $0xc0000080, %ecx", // IA32_EFER
    "    rdmsr",
    "    orl $0x100, %eax", // EFER.LME
    "    wrmsr",
    "    movl %cr0, %eax",
    "    orl $0x80000001, %eax", // CR0.PG | CR0.PE
    "    movl %eax, %cr0",
    "    lgdt boot_gdt_ptr",
    "    ljmp ${cs}, $start64_from32",
    ".code64",
    "start64_from32:",
    "    movl %ebx, %ebx", // the start-info address is 32-bit; clear the upper half
    "    jmp start64_common",
    ".globl _start64",
    "_start64:",
    "    cli",
    "    cld",
    "    leaq boot_stack_top(%rip), %rsp",
    "    leaq boot_pml4(%rip), %rax",
    "    movq %rax, %cr3",
    "    lgdt boot_gdt_ptr(%rip)",
    "    pushq ${cs}",
    "    leaq start64_common(%rip), %rax",
    "    pushq %rax",
    "    lretq",
    "start64_common:",
    "    movl $0x10, %eax",
    "    movl %eax, %ds",
    "    movl %eax, %es",
    "    movl %eax, %ss",
    "    xorl %eax, %eax",
    "    movl %eax, %fs",
    "    movl %eax, %gs",
    "    leaq __bss_start(%rip), %rdi",
    "    leaq __bss_end(%rip), %rcx",
    "    subq %rdi, %rcx",
    "    rep stosb",
    "    leaq boot_stack_top(%rip), %rsp",
    "    movq %cr0, %rax",
    "    andq $-5, %rax", // clear CR0.EM
    "    orq $0x2, %rax", // set CR0.MP
    "    movq %rax, %cr0",
    "    movq %cr4, %rax",
    "    orq $0x600, %rax", // CR4.OSFXSR | CR4.OSXMMEXCPT
    "    movq %rax, %cr4",
    "    fninit",
    "    movq %rbx, %rdi",
    "    xorl %ebp, %ebp",
    "    call {main}",
    "    ud2",
    ".popsection",
    // --- GDT pointer (the GDT itself is `cpu::GDT`). 2-byte limit and 8-byte base; a
    // 32-bit lgdt reads the low 4 bytes of the base. ---
    ".pushsection .data.boot_gdt_ptr, \"aw\"",
    ".balign 16",
    "boot_gdt_ptr:",
    "    .word {gdt_limit}",
    "    .quad {gdt}",
    ".popsection",
    // --- Identity page tables, built at link time: PML4 -> PDPT -> 4 page directories of
    // 2 MiB pages, present, writable and user-accessible (the task runs in ring 3 on the
    // same mappings); the fourth GiB is cache-disabled (PCD | PWT). ---
    ".pushsection .data.page_tables, \"aw\"",
    ".balign 4096",
    "boot_pml4:",
    "    .quad boot_pdpt + 0x7",
    "    .fill 511, 8, 0",
    "boot_pdpt:",
    "    .quad boot_pd + 0x0007",
    "    .quad boot_pd + 0x1007",
    "    .quad boot_pd + 0x2007",
    "    .quad boot_pd + 0x3007",
    "    .fill 508, 8, 0",
    "boot_pd:",
    ".set boot_pd_addr, 0",
    ".rept 1536",
    "    .quad boot_pd_addr + 0x87",
    ".set boot_pd_addr, boot_pd_addr + 0x200000",
    ".endr",
    ".rept 512",
    "    .quad boot_pd_addr + 0x9f",
    ".set boot_pd_addr, boot_pd_addr + 0x200000",
    ".endr",
    ".popsection",
    // --- Kernel stack: boot code, then interrupts and exceptions (TSS.RSP0) ---
    ".pushsection .bss.boot_stack, \"aw\", @nobits",
    ".balign 16",
    ".globl boot_stack_top",
    "boot_stack:",
    "    .skip {stack_size}",
    "boot_stack_top:",
    ".popsection",
    // --- The task's stack (ring 3) ---
    ".pushsection .bss.user_stack, \"aw\", @nobits",
    ".balign 16",
    ".globl user_stack_top",
    "user_stack:",
    "    .skip {user_stack_size}",
    "user_stack_top:",
    ".popsection",
    note_type = const abi::ELF_NOTE_TYPE_NATIVE,
    abi_version = const abi::ABI_VERSION,
    cs = const cpu::KERNEL_CS,
    gdt = sym cpu::GDT,
    gdt_limit = const cpu::GDT_LIMIT,
    stack_size = const STACK_SIZE,
    user_stack_size = const USER_STACK_SIZE,
    main = sym crate::kernel_main,
    options(att_syntax),
);
