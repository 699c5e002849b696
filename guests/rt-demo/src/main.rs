//! `rt-demo`, bulkhead's real-time partition guest.
//!
//! A freestanding 64-bit image on the tiny ring-0 kernel `bulkhead-guest-kernel` (boot,
//! interrupts, system calls, console) that runs one periodic task in ring 3 on the local
//! APIC's TSC-deadline timer and reports, once a second, the distribution of its wake-up
//! latency:
//!
//! ```text
//! rt-demo: abi=0.2 partition=0 vcpu=0 name=control tsc_khz=2599998
//! rt-demo: lapic=x2apic timer=tsc-deadline task=ring3 period_us=1000 duration_s=3
//! rt-stats period_us=1000 samples=1000 min_ns=16415 p50_ns=21000 p99_ns=27000 max_ns=59487 missed=0
//! rt-total period_us=1000 samples=3000 min_ns=16415 p50_ns=21000 p99_ns=28000 max_ns=61220 missed=0
//! rt-demo: done
//! ```
//!
//! With `ports=1` it also exercises the ports and doorbells of ABI 0.3 beside the periodic
//! task ([`ports_mode`]); with `ports=peer` it is the other end of them ([`peer_mode`]). With `probe=windows` it runs the window probe ([`window_probe`])
//! instead. Command line, statistics and formatting live in the `rt_demo` library, unit-tested
//! on the host. See `guests/README.md` for building and running.
#![no_std]
#![no_main]

mod peer_mode;
mod periodic;
mod ports_mode;
mod window_probe;

use bulkhead_guest_kernel::{self as kernel, console, start_info};
use bulkhead_guest_sdk as sdk;
use bulkhead_guest_sdk::abi::{self, Call};
use bulkhead_guest_sdk::arch::x86::lapic::Mode;
use bulkhead_guest_sdk::arch::x86::tsc::TscScale;
use bulkhead_guest_sdk::line::Line;
use rt_demo::cmdline::{self, PortsMode};

bulkhead_guest_kernel::image!(name: b"rt-demo", task: task_main);

/// An address no partition has memory at, for the self-test's fault cases.
const OUTSIDE_MEMORY: u64 = 0xffff_ffff_0000;
/// A call number ABI v0 does not define.
const UNDEFINED_CALL: u64 = u64::MAX;

/// The task, in ring 3 with IOPL 3: console, options, calibration, the periodic loop.
extern "C" fn task_main(start_info_addr: u64) -> ! {
    let mut cmdline_buf = [0u8; start_info::CMDLINE_MAX];
    let cmdline = match start_info::cmdline(start_info_addr, &mut cmdline_buf) {
        Ok(cmdline) => cmdline,
        Err(missing) => {
            let mut line = Line::new();
            line.str(b"rt-demo: no usable start info at ")
                .hex(start_info_addr)
                .str(match missing {
                    start_info::Missing::NoStartInfo => b" (bad address)",
                    start_info::Missing::BadMagic => b" (bad magic)",
                });
            line.str(b"; using defaults");
            console::println(&mut line);
            &[]
        }
    };
    let parsed = cmdline::parse(cmdline);
    let options = parsed.options;

    let scale = TscScale::from_khz(kernel::tsc_khz()).unwrap_or_else(|| {
        console::print_str(b"rt-demo: cannot determine the TSC frequency");
        kernel::shutdown(kernel::EXIT_UNSUPPORTED)
    });
    kernel::print_banner(scale.khz());
    if let Some(word) = parsed.rejected {
        let mut line = Line::new();
        line.str(b"rt-demo: ignoring invalid option ")
            .printable(word);
        console::println(&mut line);
    }
    if options.selftest {
        selftest();
    }

    if options.probe_windows {
        let mut line = Line::new();
        line.str(b"rt-demo: probe=windows task=ring3 gap_us=")
            .u64(options.gap_us)
            .str(b" duration_s=")
            .u64(options.duration_s);
        console::println(&mut line);
        window_probe::run(&scale, &options, kernel::monitor());
    } else {
        let lapic: &[u8] = match kernel::lapic_timer() {
            Some(Mode::X2Apic) => b"x2apic",
            Some(Mode::XApic) => b"xapic",
            None => {
                console::print_str(b"rt-demo: this CPU has no TSC-deadline local APIC timer");
                kernel::shutdown(kernel::EXIT_UNSUPPORTED)
            }
        };
        let mut line = Line::new();
        line.str(b"rt-demo: lapic=")
            .str(lapic)
            .str(b" timer=tsc-deadline task=ring3 period_us=")
            .u64(options.period_us)
            .str(b" duration_s=")
            .u64(options.duration_s);
        console::println(&mut line);

        // The ports first: their opening may wait 50 ms, and the first watchdog kick (in
        // `Health::from_options`) arms the watchdog.
        let mut control;
        let mut peer;
        let ports: Option<&mut dyn periodic::PortWork> = match options.ports {
            PortsMode::Off => None,
            PortsMode::Control => {
                control = ports_mode::Ports::open(options.period_us, options.ports_stop_s);
                Some(&mut control)
            }
            PortsMode::Peer => {
                peer = peer_mode::Peer::open(options.period_us);
                Some(&mut peer)
            }
        };
        let health = periodic::Health::from_options(&options, kernel::monitor());
        periodic::run(&scale, &options, &health, ports);
    }

    let unexpected = kernel::unexpected_interrupts();
    if unexpected != 0 {
        let mut line = Line::new();
        line.str(b"rt-demo: unexpected_interrupts=").u64(unexpected);
        console::println(&mut line);
    }
    console::print_str(b"rt-demo: done");
    kernel::shutdown(kernel::EXIT_DONE)
}

/// Makes the calls ABI v0 must refuse and prints one line with their statuses:
/// `abi-selftest unknown=-1 fault=-2 too_big=-3 invalid=-4 name_fault=-2 result=pass`.
fn selftest() {
    if !kernel::monitor() {
        console::print_str(b"abi-selftest skipped: no bulkhead monitor");
        return;
    }
    let buffer = b"abi-selftest";
    let cases: [(&[u8], u64, [u64; abi::CALL_ARGS], abi::Error); 5] = [
        (b"unknown", UNDEFINED_CALL, [0; 6], abi::Error::UnknownCall),
        (
            b"fault",
            Call::ConsoleWrite as u64,
            [OUTSIDE_MEMORY, 16, 0, 0, 0, 0],
            abi::Error::Fault,
        ),
        (
            b"too_big",
            Call::ConsoleWrite as u64,
            [buffer.as_ptr() as u64, 1 << 20, 0, 0, 0, 0],
            abi::Error::TooBig,
        ),
        (
            b"invalid",
            Call::WaitNextPeriod as u64,
            [0; 6],
            abi::Error::Invalid,
        ),
        (
            b"name_fault",
            Call::PartitionId as u64,
            [OUTSIDE_MEMORY, abi::NAME_MAX, 0, 0, 0, 0],
            abi::Error::Fault,
        ),
    ];
    let mut line = Line::new();
    line.str(b"abi-selftest");
    let mut pass = true;
    for (name, nr, args, expected) in cases {
        let (status, _) = sdk::raw_call(nr, args);
        pass &= status == expected as i64;
        line.str(b" ").str(name).str(b"=");
        if status == abi::STATUS_UNANSWERED {
            line.str(b"unanswered");
        } else {
            line.i64(status);
        }
    }
    line.str(if pass {
        b" result=pass"
    } else {
        b" result=fail"
    });
    console::println(&mut line);
}
