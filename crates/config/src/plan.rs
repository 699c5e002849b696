//! The validated plan: what the rest of bulkhead builds partitions from.
//!
//! The structs are `#[non_exhaustive]`, so outside this crate they can be read but not built:
//! the only way to hold a [`SystemPlan`] is to have passed [`crate::parse`] or [`crate::load`].
//! Every invariant listed on a field holds for every plan.

use std::fmt;
use std::path::PathBuf;

/// A whole machine, validated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SystemPlan {
    /// `[system].name`; a valid name (see [`crate::rules::is_valid_name`]).
    pub name: String,
    /// The description file, as given to [`crate::load`] or [`crate::parse`].
    pub source: PathBuf,
    /// At least one partition, in file order; `partitions[i].index == i`; names are unique;
    /// a high-criticality partition shares none of its host CPUs with any other partition;
    /// the memory of all partitions fits the host (see [`crate::rules::HOST_RESERVE_MIB`]).
    /// Host CPUs shared by a high-criticality partition and another are declared in
    /// `schedules` (time windows, or priority with distinct real-time priorities).
    pub partitions: Vec<PartitionPlan>,
    /// The `[[schedule]]` tables, in file order: each host CPU in at most one.
    pub schedules: Vec<SchedulePlan>,
    /// Host CPUs for everything that is not a vCPU (the supervisor, device and watchdog
    /// threads, bridges): `[system].housekeeping_cpus`, or by default every online CPU that
    /// no high-criticality partition uses and no schedule divides into windows (if that
    /// leaves none, every online CPU no high-criticality partition uses; if still none, every
    /// online CPU). Never empty; never a CPU of a high-criticality partition when declared.
    pub housekeeping_cpus: Vec<usize>,
    /// The `[[bridge]]` tables, in file order; names unique. Every net device with
    /// `bridge = NAME` is a port of the bridge of that name.
    pub bridges: Vec<BridgePlan>,
    /// The `[[uart_link]]` tables, in file order: each joins two distinct partitions of the
    /// system, and no partition is an end of two links.
    pub uart_links: Vec<UartLinkPlan>,
    /// The `[[channel]]` tables, in file order: names unique among channels. Every port of
    /// every partition is in exactly one channel (as its source or one of its destinations).
    pub channels: Vec<ChannelPlan>,
    /// The `[[doorbell]]` tables, in file order: names unique among doorbells.
    pub doorbells: Vec<DoorbellPlan>,
}

/// An ARINC 653 channel (`[[channel]]`): one source port and the destination ports that
/// receive what it sends. All its ports have its kind and its `max_message_bytes` (and, for
/// queuing, its `depth`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelPlan {
    /// Valid by [`crate::rules::is_valid_name`], unique among channels (it names the
    /// channel's shared-memory file in the run directory).
    pub name: String,
    pub kind: PortKind,
    /// In [`crate::rules::PORT_MESSAGE_BYTES_RANGE`]; the same on every port of the channel.
    pub max_message_bytes: u32,
    /// Queuing: the messages the channel holds, in [`crate::rules::PORT_DEPTH_RANGE`], the
    /// same on both ports. Sampling: 1.
    pub depth: u32,
    /// The source port: a port with direction source.
    pub source: PortRef,
    /// At least one; destination ports, each in no other channel, in file order. Exactly one
    /// for a queuing channel.
    pub destinations: Vec<PortRef>,
}

/// A port of a partition, named in a channel as `"PARTITION.PORT"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortRef {
    /// A partition of the system.
    pub partition: String,
    /// One of its ports.
    pub port: String,
}

/// The two kinds of ARINC 653 port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// The latest message, overwritten by each write; a reader sees its age and validity.
    Sampling,
    /// A FIFO of bounded depth; every message is received once.
    Queuing,
}

impl PortKind {
    /// The spelling of `kind` in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Sampling => "sampling",
            PortKind::Queuing => "queuing",
        }
    }
}

/// Which way a port carries messages, seen from its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortDirection {
    /// The partition writes (sends).
    Source,
    /// The partition reads (receives).
    Destination,
}

/// One `[[partition.port]]` of a partition, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortPlan {
    /// Valid by [`crate::rules::is_valid_name`], unique among the partition's ports and
    /// doorbells; at most 32 bytes (the ABI's `PORT_NAME_MAX`).
    pub name: String,
    pub kind: PortKind,
    pub direction: PortDirection,
    /// In [`crate::rules::PORT_MESSAGE_BYTES_RANGE`].
    pub max_message_bytes: u32,
    /// Sampling destinations: a message older than this is invalid, in
    /// [`crate::rules::REFRESH_PERIOD_US_RANGE`]. `None` for every other port.
    pub refresh_period_us: Option<u64>,
    /// Queuing ports: in [`crate::rules::PORT_DEPTH_RANGE`]. 1 for sampling ports.
    pub depth: u32,
    /// The channel the port is in: a channel of [`SystemPlan::channels`].
    pub channel: String,
}

/// A doorbell (`[[doorbell]]`): partition `from` rings it, partition `to` counts the rings
/// and may take an interrupt for each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoorbellPlan {
    /// Valid by [`crate::rules::is_valid_name`], unique among doorbells, at most 32 bytes,
    /// and no port of `from` or `to` has it as its name.
    pub name: String,
    /// A partition of the system.
    pub from: String,
    /// A partition of the system other than `from`.
    pub to: String,
}

/// A virtual serial line (`[[uart_link]]`): partition `a`'s second UART (COM2, the guest's
/// `ttyS1`) joined to partition `b`'s, a byte stream in each direction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UartLinkPlan {
    /// A partition of the system, in no other link.
    pub a: String,
    /// A partition of the system other than `a`, in no other link.
    pub b: String,
    /// Most bytes in flight per direction (written by one guest, not yet taken into the
    /// other's receive FIFO), in [`crate::rules::UART_LINK_BUFFER_BYTES_RANGE`]; default
    /// [`crate::rules::DEFAULT_UART_LINK_BUFFER_BYTES`]. A sender beyond it loses its own
    /// bytes.
    pub buffer_bytes: u32,
}

/// A partition's end of its uart link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UartPeer {
    /// The partition at the other end: another partition of the system, whose own plan
    /// names this one.
    pub peer: String,
    /// [`UartLinkPlan::buffer_bytes`] of the link.
    pub buffer_bytes: u32,
}

/// A network bridge: a host process of its own that switches frames between its ports
/// (partitions' net devices, external vhost-user frontends, encrypted uplinks) through a
/// policy pipeline. Frames between ports pass only if a rule allows them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgePlan {
    /// Valid by [`crate::rules::is_valid_name`], unique among bridges.
    pub name: String,
    /// Host CPUs of the bridge process's threads: online, none of a high-criticality partition
    /// nor time-partitioned; default the housekeeping CPUs.
    pub cpus: Vec<usize>,
    /// SCHED_FIFO priority of the bridge's threads (1..=99); `None`: SCHED_OTHER.
    pub rt_priority: Option<u8>,
    /// The ports, partitions' first (in partition order), then external ones in file order;
    /// names unique within the bridge; MACs unique in the system. At least one.
    pub ports: Vec<BridgePortPlan>,
    /// Firewall rules in file order; the first that matches a frame decides. A frame between
    /// two ports (or a port and an uplink) that no rule allows is dropped.
    pub rules: Vec<RulePlan>,
    /// Intrusion detection: thresholds and what each alert class does.
    pub ids: IdsPlan,
    /// Encrypted UDP tunnels to other bulkhead hosts' bridges, in file order; names unique
    /// within the bridge and distinct from its ports' names.
    pub uplinks: Vec<UplinkPlan>,
}

/// One port of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgePortPlan {
    /// The port's name: the partition's name, or the external port's `name`.
    pub name: String,
    pub kind: BridgePortKind,
    /// The only source MAC the port may send from (the net device's `mac`, or the external
    /// port's): frames from another are spoofed.
    pub mac: [u8; 6],
    /// Source addresses the port may send from (`ips`); empty: IP sources are not checked.
    pub ips: Vec<Cidr>,
    /// Access VLAN (1..=4094): the port's frames are switched only to ports of the same VLAN
    /// (and carried tagged over uplinks); `None`: the untagged LAN.
    pub vlan: Option<u16>,
    /// Limits on what the port may send; `None`: unlimited.
    pub rate: Option<RatePlan>,
}

/// What stands behind a bridge port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgePortKind {
    /// The net device of partition `partition` (its index in [`SystemPlan::partitions`]) with
    /// `bridge = NAME`; its vhost-user socket is `bridge-<bridge>-<partition>.sock` in the run
    /// directory.
    Partition { partition: usize },
    /// Any vhost-user frontend (e.g. QEMU's `-netdev vhost-user`) that connects to `socket`
    /// (absolute; its folder existed when validated; unique in the system).
    External { socket: PathBuf },
}

/// Token buckets on what a port sends (ARINC-style "rate limiting" of a channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RatePlan {
    /// Sustained bytes per second (frame lengths without the virtio header); `None`: no byte
    /// limit.
    pub bytes_per_s: Option<u64>,
    /// Bucket size in bytes (at least one maximum frame).
    pub burst_bytes: u64,
    /// Sustained frames per second; `None`: no frame limit.
    pub packets_per_s: Option<u64>,
    /// Bucket size in frames (at least 1).
    pub burst_packets: u64,
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6; the host bits of `addr` are zero.
    pub prefix: u8,
}

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RulePlan {
    /// Where the frame comes from: a port or uplink of the bridge, or any.
    pub from: Endpoint,
    /// Where it goes.
    pub to: Endpoint,
    /// The rule also matches the reverse direction, with sources and destinations (addresses
    /// and ports) swapped: replies to allowed traffic pass. Default true.
    pub both_ways: bool,
    /// EtherType (after any VLAN tag); `None`: any. Given `protocol` or ports it is IPv4 or
    /// IPv6.
    pub ethertype: Option<u16>,
    /// IP protocol number (`icmp` 1, `tcp` 6, `udp` 17, `icmpv6` 58); `None`: any.
    pub protocol: Option<u8>,
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    /// Inclusive port ranges; only with protocol tcp or udp.
    pub src_ports: Option<(u16, u16)>,
    pub dst_ports: Option<(u16, u16)>,
    pub action: RuleAction,
}

/// A rule's end: a port or uplink (index into [`BridgePlan::ports`], then into
/// [`BridgePlan::uplinks`]), or any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Any,
    Port(usize),
    Uplink(usize),
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// Intrusion detection of a bridge, per port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdsPlan {
    /// A port sending more frames than this in one second raises a flood alert; `None`: no
    /// flood detection.
    pub flood_pps: Option<u32>,
    /// A port reaching this many distinct (destination address, destination port) pairs
    /// within `scan_window_ms` raises a scan alert; `None`: no scan detection.
    pub scan_ports: Option<u32>,
    pub scan_window_ms: u32,
    /// A frame whose source MAC (or source IP, when the port has `ips`) is not the port's.
    pub on_spoof: AlertAction,
    /// A frame too short for its headers, or with inconsistent lengths.
    pub on_malformed: AlertAction,
    pub on_flood: AlertAction,
    pub on_scan: AlertAction,
}

/// What an alert does, besides being counted and recorded in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// Record it; the frame goes on through the pipeline.
    Log,
    /// Drop the frame.
    Drop,
    /// Drop the frame and every later frame from the port until its frontend reconnects (the
    /// partition restarts) or the bridge restarts.
    Quarantine,
}

/// An encrypted uplink: frames switched to it are sent, sealed with ChaCha20-Poly1305, in UDP
/// datagrams to the bridge of another bulkhead host, which does the same back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UplinkPlan {
    /// Valid by [`crate::rules::is_valid_name`]; unique among the bridge's ports and uplinks.
    pub name: String,
    /// The local UDP address to bind.
    pub local: std::net::SocketAddr,
    /// The peer bridge's UDP address.
    pub peer: std::net::SocketAddr,
    /// Absolute path of the 32-byte key shared with the peer (64 hexadecimal digits, or 32
    /// raw bytes); readable, neither group- nor world-accessible, when validated.
    pub key: PathBuf,
}

/// How the partitions sharing some host CPUs share them (`[[schedule]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulePlan {
    /// Non-empty, online, no duplicates, in no other schedule.
    pub cpus: Vec<usize>,
    pub policy: SchedulePolicy,
}

/// The scheduling policy of a `[[schedule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// Fixed priorities: a high-criticality partition's vCPUs (SCHED_FIFO at its
    /// `rt_priority`) always preempt a low-criticality one's (SCHED_OTHER); high-criticality
    /// partitions on these CPUs have distinct `rt_priority` values.
    Priority,
    /// ARINC 653 time partitioning: the major frame repeats from the system's start, and
    /// each partition's vCPUs on these CPUs run only inside its windows.
    TimeWindows(Frame),
}

/// A major frame and its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame {
    /// In [`crate::rules::MAJOR_FRAME_US_RANGE`].
    pub major_frame_us: u32,
    /// At least one; sorted by offset; none overlaps another; each ends within the frame and
    /// lasts at least [`crate::rules::MIN_WINDOW_US`] (and 100 host timer ticks).
    pub windows: Vec<WindowPlan>,
}

/// One window of a major frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowPlan {
    /// The partition that runs in it: a partition of the system that uses at least one of
    /// the schedule's CPUs.
    pub partition: String,
    /// Start, from the start of the frame.
    pub offset_us: u32,
    pub duration_us: u32,
}

/// The time windows of one of a partition's host CPUs: its vCPUs on `cpu` run only inside
/// `windows` of each repetition of the major frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuWindows {
    pub cpu: usize,
    pub major_frame_us: u32,
    /// This partition's windows on `cpu` (at least one), as (offset, duration) in µs, sorted.
    pub windows: Vec<(u32, u32)>,
}

/// How an idle vCPU waits (`idle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// The vCPU thread sleeps in KVM when the guest halts (after KVM's halt-polling, tuned by
    /// `halt_poll_us`).
    Halt,
    /// The vCPU never leaves its host CPU: HLT does not exit to the host where KVM allows it,
    /// otherwise KVM polls for the whole of a halt. Only on CPUs the partition has to itself.
    Poll,
}

impl IdlePolicy {
    /// The spelling used in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            IdlePolicy::Halt => "halt",
            IdlePolicy::Poll => "poll",
        }
    }
}

/// One partition, validated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PartitionPlan {
    /// Position of the `[[partition]]` table in the file, from 0.
    pub index: usize,
    /// A valid name (see [`crate::rules::is_valid_name`]), unique in the system.
    pub name: String,
    pub criticality: Criticality,
    /// `1..=`[`crate::rules::MAX_VCPUS`].
    pub vcpus: u32,
    /// Host CPUs the vCPUs run on: non-empty, no duplicates, each online when validated.
    pub cpus: Vec<usize>,
    /// Guest RAM, `MIN_MEMORY_MIB..=MAX_MEMORY_MIB` (see [`crate::rules`]).
    pub memory_mib: u64,
    /// Absolute path; the file was readable and in `kernel_format` when validated.
    pub kernel: PathBuf,
    pub kernel_format: KernelFormat,
    /// Absolute path; the file was readable when validated.
    pub initrd: Option<PathBuf>,
    /// At most [`crate::rules::CMDLINE_MAX_BYTES`] bytes, no NUL, CR or LF; empty by default.
    pub cmdline: String,
    /// SCHED_FIFO priority of the vCPU threads, `1..=99` (default
    /// [`crate::rules::DEFAULT_RT_PRIORITY`]) for a high-criticality partition; 0 for a
    /// low-criticality one, which runs under SCHED_OTHER.
    pub rt_priority: u8,
    /// Absolute path of a file that also receives the console; its folder existed when
    /// validated.
    pub console_log: Option<PathBuf>,
    pub on_reset: OnReset,
    /// Bound on automatic restarts (default [`crate::rules::DEFAULT_MAX_RESTARTS`]), after a
    /// guest reset and after any health-monitor `restart` action; once spent, the partition
    /// halts.
    pub max_restarts: u32,
    /// Back guest memory with 2 MiB pages (host mapping aligned, transparent huge pages
    /// advised, so KVM maps large pages). Default false.
    pub huge_pages: bool,
    /// The health monitor's settings (`[partition.health]`).
    pub health: HealthPlan,
    /// How idle vCPUs wait (default halt).
    pub idle: IdlePolicy,
    /// KVM halt-polling for this partition's vCPUs, in µs (`idle = "halt"` only), in
    /// [`crate::rules::HALT_POLL_US_RANGE`]; `None`: KVM's default.
    pub halt_poll_us: Option<u32>,
    /// Lock the partition process's memory, guest RAM included, and fault it all in before
    /// the guest starts (default: true for high criticality).
    pub lock_memory: bool,
    /// The windows of each of this partition's time-partitioned host CPUs, by CPU; empty
    /// when none of its CPUs is time-partitioned.
    pub windows: Vec<CpuWindows>,
    /// The system's housekeeping CPUs ([`SystemPlan::housekeeping_cpus`]): where the
    /// partition process's threads other than vCPUs run.
    pub housekeeping_cpus: Vec<usize>,
    /// The partition's COM2 peer, when it is an end of a `[[uart_link]]`; `None`: the
    /// partition has no COM2.
    pub uart_link: Option<UartPeer>,
    /// The `[[partition.port]]` tables, in file order: names unique in the partition, each
    /// in one channel. Empty when the partition declares none.
    pub ports: Vec<PortPlan>,
    /// The doorbells this partition rings or is rung by ([`SystemPlan::doorbells`] with
    /// `from` or `to` equal to its name), in file order.
    pub doorbells: Vec<DoorbellPlan>,
    /// The `[[partition.device]]` tables, in file order: `devices[i].index == i`; at most
    /// [`crate::rules::MAX_DEVICES`]; at most one `rng`, one `console` and one `vsock`.
    /// Empty when the partition declares none.
    pub devices: Vec<DevicePlan>,
}

impl PartitionPlan {
    /// The host CPU that vCPU `vcpu` runs on: `cpus[vcpu % cpus.len()]`.
    pub fn host_cpu_for_vcpu(&self, vcpu: u32) -> usize {
        // `cpus` is never empty in a plan; `max(1)` keeps this total anyway.
        let slot = usize::try_from(vcpu).unwrap_or(usize::MAX) % self.cpus.len().max(1);
        self.cpus.get(slot).copied().unwrap_or_default()
    }
}

/// One virtio device of a partition, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevicePlan {
    /// Position of the `[[partition.device]]` table within its partition, from 0.
    pub index: usize,
    pub kind: DeviceKind,
}

/// What a device is, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// virtio-blk backed by a raw image file.
    Block(BlockPlan),
    /// virtio-rng (entropy from the host).
    Rng(RngPlan),
    /// virtio-console, the guest's `hvc0`.
    Console,
    /// virtio-net.
    Net(NetPlan),
    /// virtio-vsock.
    Vsock(VsockPlan),
}

/// A virtio-blk device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockPlan {
    /// Absolute path of the raw image; a regular file, readable (and writable unless
    /// `read_only`) when validated. Any other device of the system with the same image (same
    /// canonical path) is, like this one, read-only.
    pub path: PathBuf,
    pub read_only: bool,
    /// The serial returned to `VIRTIO_BLK_T_GET_ID`; valid by
    /// [`crate::rules::is_valid_block_id`]. Defaults to `<partition>-vd<letter>`.
    pub id: String,
    /// Longest time, in µs, a request notification may be held so that more requests join
    /// its batch (in [`crate::rules::BATCH_US_RANGE`]); `None`: the partition's default
    /// (0 for high criticality, [`crate::rules::DEFAULT_BATCH_US`] otherwise).
    pub batch_us: Option<u32>,
    /// Host threads that run the disk's I/O, so that several requests are in flight at once
    /// (in [`crate::rules::IO_THREADS_RANGE`], default [`crate::rules::DEFAULT_IO_THREADS`]);
    /// 0: all of it on the partition's device thread.
    pub io_threads: u32,
}

/// A virtio-rng device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RngPlan {
    /// Most bytes of entropy given per request; in
    /// [`crate::rules::RNG_MAX_BYTES_PER_REQUEST_RANGE`].
    pub max_bytes_per_request: u32,
}

/// A virtio-net device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetPlan {
    /// A unicast, non-zero address, unique in the system.
    pub mac: [u8; 6],
    pub backend: NetBackend,
}

/// Where the frames of a net device go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetBackend {
    /// A host TAP device; `name` is valid by [`crate::rules::is_valid_tap_name`] and used by
    /// no other device of the system.
    Tap { name: String },
    /// A direct link to another partition of the system, which has exactly one net device
    /// linked back to this partition; this partition has exactly one linked to it.
    Link { partition: String },
    /// A port of the system's bridge named `bridge` (a vhost-user connection to it); at most
    /// one net device of a partition per bridge.
    Bridge { bridge: String },
}

/// A virtio-vsock device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VsockPlan {
    /// The guest's CID; in [`crate::rules::VSOCK_CID_RANGE`], unique in the system.
    pub cid: u32,
    /// Guest ports forwarded to host sockets, in file order; no port twice.
    pub ports: Vec<VsockPort>,
}

/// A guest vsock port and the host Unix socket it is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VsockPort {
    /// In [`crate::rules::VSOCK_PORT_RANGE`].
    pub port: u32,
    /// Absolute path; its folder existed when validated; no other port of the system has the
    /// same socket.
    pub socket: PathBuf,
}

impl DeviceKind {
    /// The spelling of `kind` in the description.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceKind::Block(_) => "block",
            DeviceKind::Rng(_) => "rng",
            DeviceKind::Console => "console",
            DeviceKind::Net(_) => "net",
            DeviceKind::Vsock(_) => "vsock",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a partition's timing matters more than anything else on its CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    /// Runs SCHED_FIFO on host CPUs no other partition uses.
    High,
    /// Best effort; may share host CPUs with other low-criticality partitions.
    Low,
}

/// How the kernel file is to be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// Linux x86 boot protocol image ("HdrS" at offset 0x202).
    BzImage,
    /// 64-bit x86_64 ELF executable.
    Elf64,
}

/// The health monitor of one partition: its watchdog, deadline-miss threshold and the action
/// for each error class.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthPlan {
    /// The guest must kick its watchdog (the ABI call, or the emulated ib700 device) at least
    /// this often once it kicked it first; `None`: no watchdog.
    pub watchdog_ms: Option<u32>,
    /// Deadline misses the guest reports before `on_deadline_miss` applies (default 1).
    pub deadline_miss_threshold: u32,
    /// A triple fault or KVM internal error (the partition has stopped). Default halt.
    pub on_guest_fault: HealthAction,
    /// The partition process died (a signal, a monitor error). Default halt.
    pub on_crash: HealthAction,
    /// The guest reported a panic (pvpanic, or the ABI call). Default halt.
    pub on_panic: HealthAction,
    /// The watchdog expired. Default restart.
    pub on_watchdog: HealthAction,
    /// The deadline-miss threshold was reached. Default ignore (recorded in the event log
    /// only: `rt-stats` already shows misses, and a loaded host makes them routine).
    pub on_deadline_miss: HealthAction,
}

impl Default for HealthPlan {
    fn default() -> Self {
        HealthPlan {
            watchdog_ms: None,
            deadline_miss_threshold: 1,
            on_guest_fault: HealthAction::Halt,
            on_crash: HealthAction::Halt,
            on_panic: HealthAction::Halt,
            on_watchdog: HealthAction::Restart,
            on_deadline_miss: HealthAction::Ignore,
        }
    }
}

/// What the health monitor does about an error. Every error is recorded in the system's
/// event log whatever the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAction {
    /// Nothing more than the event-log line (only for errors that leave the partition
    /// running).
    Ignore,
    /// Report it on the monitor's output too (only for errors that leave it running).
    Log,
    /// Cold restart: a new partition process, memory cleared, the image loaded again; up to
    /// `max_restarts` times, then halt.
    Restart,
    /// Stop the partition; the others go on.
    Halt,
    /// Stop every partition; `bulkhead run` exits with status 1.
    StopSystem,
}

impl HealthAction {
    /// The spelling used in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthAction::Ignore => "ignore",
            HealthAction::Log => "log",
            HealthAction::Restart => "restart",
            HealthAction::Halt => "halt",
            HealthAction::StopSystem => "stop_system",
        }
    }
}

/// What the supervisor does when the guest resets itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReset {
    /// Boot the partition again, up to `max_restarts` times.
    Restart,
    /// Leave the partition stopped.
    Stop,
}

impl Criticality {
    /// The spelling used in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::High => "high",
            Criticality::Low => "low",
        }
    }
}

impl OnReset {
    /// The spelling used in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            OnReset::Restart => "restart",
            OnReset::Stop => "stop",
        }
    }
}

impl KernelFormat {
    /// A short human name.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelFormat::BzImage => "bzImage",
            KernelFormat::Elf64 => "ELF64",
        }
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for OnReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
