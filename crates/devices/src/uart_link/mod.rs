//! COM2 of a partition that is an end of a `[[uart_link]]`: a 16550A at port 0x2f8, IRQ 3,
//! whose byte stream goes to the other end's COM2 and back, with a bound on the bytes in
//! flight per direction.
//!
//! - [`LinkedUart`] (`device.rs`): the UART, its transmit and receive buffers and the
//!   credit-based flow control that makes a flooding sender lose its own bytes, never the
//!   receiver's.
//! - [`wire`]: the messages the two ends exchange (one per datagram).
//! - [`UartLinkMetrics`] (`metrics.rs`): its counters.
//!
//! No sockets and no threads here: the partition's link thread
//! (`bulkhead-partition/src/uart_link.rs`) carries the datagrams and calls in.

mod device;
mod metrics;
pub mod wire;

pub use device::{LinkedUart, Outgoing};
pub use metrics::UartLinkMetrics;
