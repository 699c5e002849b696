//! The hardware-free part of `rt-demo`: command-line options, the latency statistics and
//! their report lines, and the window probe's bookkeeping. Everything here is plain
//! arithmetic on values the image hands in, so it is unit-tested on the host; the image
//! (`main.rs`) does the hardware, on `bulkhead-guest-kernel`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod probe;
pub mod stats;
