//! The inter-partition network bridge (`bulkhead bridge FILE NAME`): a host process of its own
//! that switches Ethernet frames between its ports — partitions' virtio-net devices and other
//! vhost-user frontends — and encrypted uplinks to other bulkhead hosts, through a policy
//! pipeline declared in the system description (`[[bridge]]`).
//!
//! - [`frame`]: a checked, zero-copy view of an Ethernet frame's headers (VLAN, ARP, IPv4,
//!   IPv6, TCP, UDP, ICMP).
//! - [`policy`]: the pipeline a frame passes from its source to its destinations: malformed
//!   and spoofed frames, quarantine, rate limits (token buckets), flood and scan detection,
//!   MAC switching within a VLAN, and the firewall (default deny between ports).
//! - [`tunnel`]: the uplinks: frames sealed with ChaCha20-Poly1305 in UDP datagrams, with
//!   replay protection and fresh keys per session.
//! - [`hub`]: what the bridge's threads share (the pipeline, an inbox per port and uplink).
//! - [`port`]: a port as a vhost-user backend; [`relay`]: an external port's front door,
//!   which puts a foreign frontend's requests into the protocol's order; [`uplink`]: an
//!   uplink's I/O thread, which cuts TCP super-frames with [`segment`]; [`run`]: the process.
//!
//! Unsafe code: only [`relay`]'s receiving of file descriptors (`recvmsg`).
#![deny(unsafe_code)]

pub mod frame;
pub mod hub;
pub mod policy;
pub mod port;
pub mod relay;
pub mod run;
pub mod segment;
pub mod tunnel;
pub mod uplink;

pub use run::{partition_socket, run_bridge, stats_path, BridgeError};
