//! The hardware-free part of `rt-demo`: command-line options, the latency statistics and
//! their report lines, the window probe's bookkeeping, the ports mode's schedule and lines
//! (`ports=1`) and the script and lines of its peer (`ports=peer`). Everything here is plain
//! arithmetic on values the image hands in, so it is unit-tested on the host; the image
//! (`main.rs`) does the hardware, on `bulkhead-guest-kernel`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod peer;
pub mod ports;
pub mod probe;
pub mod stats;
