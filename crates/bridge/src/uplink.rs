//! One uplink's I/O: frames the hub queued for it are sealed and sent to the peer bridge
//! ([`crate::tunnel::Tunnel`]), frames the peer sends are opened and handed to the hub as
//! coming from the uplink. One thread per uplink waits (epoll) on the tunnel's socket and on
//! the uplink's wake eventfd.
//!
//! The peer receives ordinary Ethernet frames (802.1Q-tagged with the source port's VLAN, if
//! it has one): a TCP super-frame a guest handed over for segmentation is cut into wire frames
//! here ([`crate::segment`]), and a partial checksum is completed before sealing.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use bulkhead_config::UplinkPlan;
use bulkhead_virtio::net::{NetHeader, F_NEEDS_CSUM, GSO_NONE, HEADER_LEN};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::hub::Hub;
use crate::policy::{Attachment, DropReason};
use crate::segment::segment;
use crate::tunnel::{Tunnel, MAX_FRAME};

const SOCKET: u64 = 0;
const WAKE: u64 = 1;
/// How often the tunnel's counters go to the hub (for the stats file).
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// An uplink ready to be served.
pub struct Uplink {
    index: usize,
    tunnel: Tunnel,
    hub: Arc<Hub>,
    epoll: Epoll,
}

impl Uplink {
    /// Binds the uplink's socket and loads its key.
    pub fn open(plan: &UplinkPlan, index: usize, hub: Arc<Hub>) -> std::io::Result<Uplink> {
        let tunnel = Tunnel::from_plan(plan).map_err(std::io::Error::other)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            tunnel.as_raw_fd(),
            EpollEvent::new(EventSet::IN, SOCKET),
        )?;
        if let Some(end) = hub.end(Attachment::Uplink(index)) {
            epoll.ctl(
                ControlOperation::Add,
                end.wake.as_raw_fd(),
                EpollEvent::new(EventSet::IN, WAKE),
            )?;
        }
        Ok(Uplink {
            index,
            tunnel,
            hub,
            epoll,
        })
    }

    /// `tunnel NAME records_sent=… … rejected_replayed=… …`.
    fn counters_line(&self) -> String {
        let c = self.tunnel.counters();
        let r = c.rejected;
        format!(
            "tunnel {} records_sent={} bytes_sent={} send_would_block={} send_errors={} \
             records_received={} bytes_received={} sessions_started={} peer_sessions={} \
             rejected_truncated={} rejected_oversize={} rejected_bad_version={} \
             rejected_bad_tag={} rejected_replayed={} rejected_too_old={} \
             rejected_old_session={} rejected_wrong_peer={}",
            self.tunnel.name(),
            c.records_sent,
            c.bytes_sent,
            c.send_would_block,
            c.send_errors,
            c.records_received,
            c.bytes_received,
            c.sessions_started,
            c.peer_sessions,
            r.truncated,
            r.oversize,
            r.bad_version,
            r.bad_tag,
            r.replayed,
            r.too_old,
            r.old_session,
            r.wrong_peer
        )
    }

    /// Moves frames both ways until the process ends.
    pub fn serve(mut self, log: &(dyn Fn(String) + Sync)) {
        let at = Attachment::Uplink(self.index);
        let mut events = [EpollEvent::default(); 4];
        let mut frame = vec![0u8; MAX_FRAME];
        let mut data: Vec<u8> = Vec::with_capacity(HEADER_LEN + MAX_FRAME);
        let mut dests = Vec::new();
        let mut last_report = std::time::Instant::now();
        loop {
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = std::time::Instant::now();
                self.hub.report_tunnel(self.index, self.counters_line());
            }
            let n = match self
                .epoll
                .wait(REPORT_EVERY.as_millis() as i32, &mut events)
            {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log(format!(
                        "uplink {}: waiting failed: {e}",
                        self.tunnel.name()
                    ));
                    return;
                }
            };
            for event in events.iter().take(n) {
                match event.data() {
                    WAKE => {
                        if let Some(end) = self.hub.end(at) {
                            let _ = end.wake.read();
                        }
                        while let Some(mut data) = self.hub.take(at) {
                            let header = NetHeader::parse(&data);
                            let Some(payload) = data.get_mut(HEADER_LEN..) else {
                                continue;
                            };
                            if header.gso_type != GSO_NONE {
                                let (tunnel, hub) = (&mut self.tunnel, &self.hub);
                                let cut = segment(&header, payload, MAX_FRAME, |wire| match tunnel
                                    .send(wire)
                                {
                                    Ok(()) => hub.delivered(at, wire.len()),
                                    Err(_) => hub.dropped_at(at, DropReason::RingFull),
                                });
                                if cut.is_err() {
                                    self.hub.dropped_at(at, DropReason::Malformed);
                                }
                                continue;
                            }
                            if header.flags & F_NEEDS_CSUM != 0 {
                                bulkhead_virtio::net::complete_checksum(&header, payload);
                            }
                            let len = payload.len();
                            match self.tunnel.send(payload) {
                                Ok(()) => self.hub.delivered(at, len),
                                Err(_) => self.hub.dropped_at(at, DropReason::RingFull),
                            }
                        }
                    }
                    _ => loop {
                        match self.tunnel.recv(&mut frame) {
                            Ok(Some(len)) => {
                                data.truncate(HEADER_LEN);
                                data.resize(HEADER_LEN, 0);
                                if let Some(src) = frame.get(..len) {
                                    data.extend_from_slice(src);
                                }
                                self.hub.forward(at, &data, &mut dests);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                log(format!(
                                    "uplink {}: receive failed: {e}",
                                    self.tunnel.name()
                                ));
                                break;
                            }
                        }
                    },
                }
            }
        }
    }
}
