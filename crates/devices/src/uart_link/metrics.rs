//! The counters of one end of a uart link, printed with the partition's counters when it
//! stops (`counters: uart-link ttyS1 <-> PEER: …`).

/// Counters of one end of a uart link, since the partition started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UartLinkMetrics {
    /// Bytes the guest wrote that went out to the peer.
    pub tx_bytes: u64,
    /// Bytes the guest wrote that were dropped because the bytes in flight had reached the
    /// link's bound (the peer's guest did not read fast enough, or the peer was down).
    pub tx_dropped: u64,
    /// Bytes received from the peer into this end's receive buffer.
    pub rx_bytes: u64,
    /// Bytes moved from the receive buffer into the UART's receive FIFO.
    pub rx_delivered: u64,
    /// Bytes a peer sent beyond the credit it was given, dropped. Never non-zero with a
    /// correct peer: the receiver does not lose bytes to flow control.
    pub rx_overrun: u64,
    /// Credits and data meant for an earlier session of either end (sent across a
    /// restart), discarded.
    pub stale: u64,
    /// Datagrams that are no message, or that came from another socket than the peer's.
    pub malformed: u64,
    /// Times this end started counting afresh with its peer: the peer came back with a new
    /// session (it restarted), or a send to it was refused (it stopped or restarted).
    pub peer_resets: u64,
}

impl UartLinkMetrics {
    /// Every counter with its name, in a fixed order.
    pub fn pairs(&self) -> [(&'static str, u64); 8] {
        [
            ("tx_bytes", self.tx_bytes),
            ("tx_dropped", self.tx_dropped),
            ("rx_bytes", self.rx_bytes),
            ("rx_delivered", self.rx_delivered),
            ("rx_overrun", self.rx_overrun),
            ("stale", self.stale),
            ("malformed", self.malformed),
            ("peer_resets", self.peer_resets),
        ]
    }

    /// `name=value` for every counter, zeros included, separated by spaces.
    pub fn line(&self) -> String {
        let pairs: Vec<String> = self
            .pairs()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        pairs.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_every_counter_zeros_included() {
        let metrics = UartLinkMetrics {
            tx_bytes: 5,
            tx_dropped: 2,
            ..UartLinkMetrics::default()
        };

        assert_eq!(
            metrics.line(),
            "tx_bytes=5 tx_dropped=2 rx_bytes=0 rx_delivered=0 rx_overrun=0 stale=0 \
             malformed=0 peer_resets=0"
        );
    }
}
