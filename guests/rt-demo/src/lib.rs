//! The hardware-free part of `rt-demo`: command-line options, the per-second latency
//! statistics, the report line and a few encodings. Everything here is plain arithmetic on
//! values the image hands in, so it is unit-tested on the host; the image (`main.rs`) does
//! the hardware.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod line;
pub mod stats;
pub mod tsc;
pub mod x86;
