//! The hardware-free part of `hostile`: command-line options, the attacks and their turns,
//! where the bandwidth hog's buffer goes, the bad paravirtual calls, and the report line.
//! Plain arithmetic on values the image hands in, unit-tested on the host; the image
//! (`main.rs`) does the hardware, on `bulkhead-guest-kernel`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod attack;
pub mod cmdline;
pub mod membw;
pub mod pvcalls;
pub mod report;
