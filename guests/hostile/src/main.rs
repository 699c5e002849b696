//! `hostile`, bulkhead's hostile-neighbour guest: it runs beside a real-time partition and
//! does its worst — hogs its CPU, the memory bandwidth, the monitor (VM exits, console
//! output, refused calls) — and, when asked, triple-faults so that a supervisor set to
//! restart it keeps restarting it.
//!
//! On the tiny ring-0 kernel `bulkhead-guest-kernel`, like `rt-demo`; every attack runs in
//! ring 3, natively on software KVM. Once a second it says what it did:
//!
//! ```text
//! hostile: abi=0.2 partition=1 vcpu=0 name=hostile tsc_khz=2596122
//! hostile: attack=cpu,membw crash_after_ms=none duration_s=0 exit_kind=mmio membw_mib=64 at 0x400000
//! hostile: t_s=1 attack=cpu,membw spins=1700000 bytes_copied=5100000000 exits=0 console_bytes=0 bad_calls=0
//! ```
//!
//! Under QEMU (no bulkhead monitor) the console is COM1 and the calls go unanswered, as for
//! `rt-demo`. Options, the attack schedule and the report line are in the `hostile` library.
//! See `guests/README.md`.
#![no_std]
#![no_main]

mod attacks;

use bulkhead_guest_kernel::{self as kernel, console, start_info, syscall};
use bulkhead_guest_sdk::arch::x86::{self, tsc::TscScale};
use bulkhead_guest_sdk::line::Line;
use hostile::attack::{Attack, SLICE_US};
use hostile::cmdline::{self, Options};
use hostile::membw;
use hostile::report::{self, Counters};

bulkhead_guest_kernel::image!(name: b"hostile", task: task_main);

/// Most RAM ranges read from the memory map.
const RAM_RANGES: usize = 16;

/// The task, in ring 3 with IOPL 3: options, the set-up line, then the attacks for ever (or
/// `duration_s`), until the crash if one is asked for.
extern "C" fn task_main(start_info_addr: u64) -> ! {
    let mut cmdline_buf = [0u8; start_info::CMDLINE_MAX];
    let cmdline = start_info::cmdline(start_info_addr, &mut cmdline_buf).unwrap_or(&[]);
    let parsed = cmdline::parse(cmdline);
    let options = parsed.options;

    let scale = TscScale::from_khz(kernel::tsc_khz()).unwrap_or_else(|| {
        console::print_str(b"hostile: cannot determine the TSC frequency");
        kernel::shutdown(kernel::EXIT_UNSUPPORTED)
    });
    kernel::print_banner(scale.khz());
    if let Some(word) = parsed.rejected {
        let mut line = Line::new();
        line.str(b"hostile: ignoring invalid option ")
            .printable(word);
        console::println(&mut line);
    }

    let mut ram_buf = [(0u64, 0u64); RAM_RANGES];
    let ram = start_info::ram(start_info_addr, &mut ram_buf).unwrap_or(&[]);
    let image_end = kernel::image_end();
    let ram_end = ram
        .iter()
        .find(|&&(start, end)| (start..end).contains(&image_end))
        .map_or(image_end, |&(_, end)| end);
    let buffer = if options.attacks.contains(Attack::Membw) {
        membw::place(ram, image_end, options.membw_mib << 20)
    } else {
        None
    };
    print_setup(&options, buffer);

    let mut attacks =
        attacks::Attacks::new(options.exit_kind, buffer, ram_end, options.console_newline);
    run(&scale, &options, &mut attacks)
}

/// `hostile: attack=… crash_after_ms=… duration_s=… exit_kind=… membw_mib=N at 0x…`.
fn print_setup(options: &Options, buffer: Option<(u64, u64)>) {
    let mut line = Line::new();
    line.str(b"hostile: attack=");
    report::write_attacks(&mut line, options.attacks);
    line.str(b" crash_after_ms=");
    match options.crash_at_ms() {
        Some(ms) => line.u64(ms),
        None => line.str(b"none"),
    };
    line.str(b" duration_s=")
        .u64(options.duration_s)
        .str(b" exit_kind=")
        .str(options.exit_kind.name());
    if let Some((start, len)) = buffer {
        line.str(b" membw_mib=")
            .u64(len >> 20)
            .str(b" at ")
            .hex(start);
    } else if options.attacks.contains(Attack::Membw) {
        line.str(b" membw_mib=0 (no room)");
    }
    console::println(&mut line);
}

/// Gives each attack its slices in turn; reports once a second; crashes or powers off when
/// it is time.
fn run(scale: &TscScale, options: &Options, attacks: &mut attacks::Attacks) -> ! {
    let start = x86::rdtsc();
    let slice = scale.ns_to_ticks(SLICE_US * 1000).max(1);
    let second = scale.ns_to_ticks(1_000_000_000);
    let crash_at = options
        .crash_at_ms()
        .map_or(u64::MAX, |ms| start + scale.ms_to_ticks(ms));
    let mut next_report = start + second;
    let mut seconds = 0u64;
    let mut reported = Counters::default();
    let mut turn = None;
    loop {
        let now = x86::rdtsc();
        if now >= crash_at {
            attacks.end_flood_line();
            let mut line = Line::new();
            line.str(b"hostile: triple fault ")
                .u64(scale.ticks_to_ns(now - start) / 1_000_000)
                .str(b" ms after the start");
            console::println(&mut line);
            syscall::triple_fault();
        }
        if now >= next_report {
            seconds += 1;
            if options.console_newline {
                attacks.end_flood_line();
                let mut line = Line::new();
                let counters = attacks.counters;
                report::write_report(
                    &mut line,
                    seconds,
                    options.attacks,
                    &counters.since(&reported),
                );
                console::println(&mut line);
                reported = counters;
            }
            if options.duration_s != 0 && seconds >= options.duration_s {
                console::print_str(b"hostile: done");
                kernel::shutdown(kernel::EXIT_DONE);
            }
            next_report += second;
            if next_report <= now {
                next_report = now + second;
            }
        }
        let until = now.saturating_add(slice).min(next_report).min(crash_at);
        turn = options.attacks.next_after(turn);
        match turn {
            Some(attack) => attacks.run(attack, until),
            None => attacks::idle(until),
        }
    }
}
