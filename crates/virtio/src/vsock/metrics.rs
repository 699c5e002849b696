//! Counters of one virtio-vsock device.

/// virtio-vsock device counters.
#[derive(Debug, Default)]
pub(crate) struct VsockMetrics {
    /// `connections_opened`: guest requests joined to their host socket.
    pub connections_opened: u64,
    /// `connections_refused`: requests answered `RST`: undeclared port, nobody listening on
    /// the socket (or its backlog full), connection table full.
    pub connections_refused: u64,
    /// `connections_closed`: connections ended by the guest or both sides (and by a reset of
    /// the device).
    pub connections_closed: u64,
    /// `connections_reset_misbehaving`: connections reset because the guest broke their
    /// rules (data beyond its credit or after its shutdown, an unexpected operation).
    pub connections_reset_misbehaving: u64,
    /// `connections_reset_host`: connections reset because their host socket failed.
    pub connections_reset_host: u64,
    /// `tx_packets`: packets the guest transmitted.
    pub tx_packets: u64,
    /// `tx_bytes`: payload bytes the guest sent on connections.
    pub tx_bytes: u64,
    /// `rx_packets`: packets delivered to the guest.
    pub rx_packets: u64,
    /// `rx_bytes`: payload bytes delivered to the guest.
    pub rx_bytes: u64,
    /// `spoofed_dropped`: packets whose source CID is not the guest's.
    pub spoofed_dropped: u64,
    /// `unroutable`: packets to a CID other than the host, or of a type other than stream.
    pub unroutable: u64,
    /// `rst_sent`: `RST` packets queued for the guest.
    pub rst_sent: u64,
    /// `control_dropped`: control packets dropped because [`super::MAX_CONTROL`] were waiting
    /// for receive buffers.
    pub control_dropped: u64,
}

impl VsockMetrics {
    /// The counters by name, with the number of open connections.
    pub fn list(&self, open: usize) -> Vec<(&'static str, u64)> {
        vec![
            ("connections_open", open as u64),
            ("connections_opened", self.connections_opened),
            ("connections_refused", self.connections_refused),
            ("connections_closed", self.connections_closed),
            (
                "connections_reset_misbehaving",
                self.connections_reset_misbehaving,
            ),
            ("connections_reset_host", self.connections_reset_host),
            ("tx_packets", self.tx_packets),
            ("tx_bytes", self.tx_bytes),
            ("rx_packets", self.rx_packets),
            ("rx_bytes", self.rx_bytes),
            ("spoofed_dropped", self.spoofed_dropped),
            ("unroutable", self.unroutable),
            ("rst_sent", self.rst_sent),
            ("control_dropped", self.control_dropped),
        ]
    }
}
