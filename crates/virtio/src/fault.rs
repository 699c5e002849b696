//! The ways a driver can break the virtio protocol, each counted under its own name. Any of
//! them puts the device in `DEVICE_NEEDS_RESET` (virtio 1.2 §2.1.2) until the driver resets it;
//! the table of causes is in `docs/virtio.md`.

/// One cause of `DEVICE_NEEDS_RESET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A chain's head index (from the available ring) is not below the queue size (§2.7.6).
    #[error("descriptor chain head index beyond the queue size")]
    HeadOutOfRange,
    /// A descriptor's `next` is not below the size of its table (§2.7.5).
    #[error("descriptor next index beyond its table")]
    NextOutOfRange,
    /// Following `next` comes back to a descriptor already in the chain.
    #[error("descriptor chain loops")]
    DescriptorLoop,
    /// More descriptors than the queue's maximum size, counting indirect ones (§2.7.5.3.1).
    #[error("descriptor chain longer than the queue allows")]
    ChainTooLong,
    /// A buffer or an indirect table is not entirely inside guest memory.
    #[error("buffer outside guest memory")]
    AddressOutOfRange,
    /// `addr + len` wraps, or the chain's lengths add up to 2^32 bytes or more (§2.7.5.2).
    #[error("descriptor length overflow")]
    LengthOverflow,
    /// `VIRTQ_DESC_F_INDIRECT` without `VIRTIO_F_RING_INDIRECT_DESC` negotiated (§2.7.5.3.1).
    #[error("indirect descriptor without the feature negotiated")]
    IndirectNotNegotiated,
    /// `VIRTQ_DESC_F_INDIRECT` inside an indirect table (§2.7.5.3.1).
    #[error("indirect descriptor inside an indirect table")]
    IndirectNested,
    /// An indirect table's length is zero or not a multiple of 16 (§2.7.5.3.1).
    #[error("indirect table length not a non-zero multiple of 16")]
    IndirectBadLength,
    /// Both `VIRTQ_DESC_F_INDIRECT` and `VIRTQ_DESC_F_NEXT` set (§2.7.5.3.1).
    #[error("indirect descriptor with the next flag")]
    IndirectWithNext,
    /// A device-readable descriptor after a device-writable one (§2.7.5).
    #[error("device-readable descriptor after a device-writable one")]
    ReadableAfterWritable,
    /// A buffer the request needs device-readable is device-writable, or the reverse.
    #[error("buffer in the wrong direction for the request")]
    WrongDirection,
    /// A request too short to hold its fixed fields (a block header, a status byte).
    #[error("request shorter than its fixed fields")]
    MalformedRequest,
    /// The available ring's index ran more than the queue size ahead of the device (§2.7.6).
    #[error("available ring index more than the queue size ahead")]
    AvailIndex,
    /// At `DRIVER_OK`, an enabled queue had an invalid size or rings outside guest memory or
    /// misaligned (§2.7, §4.2.2).
    #[error("invalid queue configuration")]
    QueueConfig,
    /// Activation or a ring access failed on a queue that had passed validation.
    #[error("device error")]
    DeviceError,
}

impl Fault {
    /// Every cause, in counter order.
    pub const ALL: [Fault; 16] = [
        Fault::HeadOutOfRange,
        Fault::NextOutOfRange,
        Fault::DescriptorLoop,
        Fault::ChainTooLong,
        Fault::AddressOutOfRange,
        Fault::LengthOverflow,
        Fault::IndirectNotNegotiated,
        Fault::IndirectNested,
        Fault::IndirectBadLength,
        Fault::IndirectWithNext,
        Fault::ReadableAfterWritable,
        Fault::WrongDirection,
        Fault::MalformedRequest,
        Fault::AvailIndex,
        Fault::QueueConfig,
        Fault::DeviceError,
    ];

    /// Position in [`Fault::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The counter's name in the transport's metrics.
    pub const fn metric_name(self) -> &'static str {
        match self {
            Fault::HeadOutOfRange => "fault_head_out_of_range",
            Fault::NextOutOfRange => "fault_next_out_of_range",
            Fault::DescriptorLoop => "fault_descriptor_loop",
            Fault::ChainTooLong => "fault_chain_too_long",
            Fault::AddressOutOfRange => "fault_address_out_of_range",
            Fault::LengthOverflow => "fault_length_overflow",
            Fault::IndirectNotNegotiated => "fault_indirect_not_negotiated",
            Fault::IndirectNested => "fault_indirect_nested",
            Fault::IndirectBadLength => "fault_indirect_bad_length",
            Fault::IndirectWithNext => "fault_indirect_with_next",
            Fault::ReadableAfterWritable => "fault_readable_after_writable",
            Fault::WrongDirection => "fault_wrong_direction",
            Fault::MalformedRequest => "fault_malformed_request",
            Fault::AvailIndex => "fault_avail_index",
            Fault::QueueConfig => "fault_queue_config",
            Fault::DeviceError => "fault_device_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_sits_at_its_own_index() {
        let indices: Vec<usize> = Fault::ALL.iter().map(|f| f.index()).collect();

        assert_eq!(indices, (0..Fault::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn every_fault_has_a_distinct_counter_name() {
        let mut names: Vec<&str> = Fault::ALL.iter().map(|f| f.metric_name()).collect();
        names.sort_unstable();
        names.dedup();

        assert_eq!(names.len(), Fault::ALL.len());
    }
}
