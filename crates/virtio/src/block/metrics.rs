//! Counters of one block device.

/// Block device counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct BlockMetrics {
    /// `requests_in`: read requests (`VIRTIO_BLK_T_IN`).
    pub requests_in: u64,
    /// `requests_out`: write requests (`VIRTIO_BLK_T_OUT`).
    pub requests_out: u64,
    /// `requests_flush`: flush requests (`VIRTIO_BLK_T_FLUSH`), each an `fdatasync(2)`.
    pub requests_flush: u64,
    /// `requests_get_id`: `VIRTIO_BLK_T_GET_ID` requests.
    pub requests_get_id: u64,
    /// `requests_discard`: `VIRTIO_BLK_T_DISCARD` requests.
    pub requests_discard: u64,
    /// `requests_write_zeroes`: `VIRTIO_BLK_T_WRITE_ZEROES` requests.
    pub requests_write_zeroes: u64,
    /// `requests_unsupported`: requests of any other type, answered `VIRTIO_BLK_S_UNSUPP`.
    pub requests_unsupported: u64,
    /// `bytes_read`: bytes read from the image into guest memory.
    pub bytes_read: u64,
    /// `bytes_written`: bytes written from guest memory to the image.
    pub bytes_written: u64,
    /// `status_ioerr`: requests answered `VIRTIO_BLK_S_IOERR`.
    pub status_ioerr: u64,
    /// `status_unsupp`: requests answered `VIRTIO_BLK_S_UNSUPP`.
    pub status_unsupp: u64,
    /// `out_of_range`: requests beyond the capacity, overflowing sector arithmetic, not a
    /// multiple of 512 bytes, or over a discard/write-zeroes limit (answered IOERR).
    pub out_of_range: u64,
    /// `read_only_refused`: writes, discards and write-zeroes refused on a read-only disk.
    pub read_only_refused: u64,
    /// `host_io_errors`: host I/O calls on the image that failed (answered IOERR).
    pub host_io_errors: u64,
}

impl BlockMetrics {
    /// Adds `other`'s counts (a pool worker's, for the requests it ran).
    pub fn add(&mut self, other: &BlockMetrics) {
        self.requests_in += other.requests_in;
        self.requests_out += other.requests_out;
        self.requests_flush += other.requests_flush;
        self.requests_get_id += other.requests_get_id;
        self.requests_discard += other.requests_discard;
        self.requests_write_zeroes += other.requests_write_zeroes;
        self.requests_unsupported += other.requests_unsupported;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.status_ioerr += other.status_ioerr;
        self.status_unsupp += other.status_unsupp;
        self.out_of_range += other.out_of_range;
        self.read_only_refused += other.read_only_refused;
        self.host_io_errors += other.host_io_errors;
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests_in", self.requests_in),
            ("requests_out", self.requests_out),
            ("requests_flush", self.requests_flush),
            ("requests_get_id", self.requests_get_id),
            ("requests_discard", self.requests_discard),
            ("requests_write_zeroes", self.requests_write_zeroes),
            ("requests_unsupported", self.requests_unsupported),
            ("bytes_read", self.bytes_read),
            ("bytes_written", self.bytes_written),
            ("status_ioerr", self.status_ioerr),
            ("status_unsupp", self.status_unsupp),
            ("out_of_range", self.out_of_range),
            ("read_only_refused", self.read_only_refused),
            ("host_io_errors", self.host_io_errors),
        ]
    }
}
