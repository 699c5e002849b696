//! The `[[partition.device]]` tables of one partition: each device's kind, the keys that kind
//! accepts, their types and ranges, the files it names, and the rules within one partition (at
//! most [`rules::MAX_DEVICES`] devices; at most one `rng`, one `console` and one `vsock`).
//!
//! The keys a table accepts depend on its `kind`, so `kind` is looked at first: a key that
//! another kind accepts (`mac` on a block device) is an unknown key for this one. When the
//! kind itself is missing or unknown, only keys that no kind accepts are refused.
//!
//! Rules that involve several devices of the system (unique MACs, TAP names, CIDs and sockets,
//! shared images, links between partitions) are in [`crate::system`]; a [`DeviceDraft`]
//! carries the values they look at.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::files;
use crate::partition::read_path;
use crate::plan::{
    BlockPlan, DeviceKind, DevicePlan, NetBackend, NetPlan, RngPlan, VsockPlan, VsockPort,
};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// What a device is, before its other keys are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Block,
    Rng,
    Console,
    Net,
    Vsock,
}

/// Accepted `kind` values.
const KINDS: &[(&str, Kind)] = &[
    ("block", Kind::Block),
    ("rng", Kind::Rng),
    ("console", Kind::Console),
    ("net", Kind::Net),
    ("vsock", Kind::Vsock),
];

const BLOCK_KEYS: &[&str] = &["kind", "path", "read_only", "id", "batch_us", "io_threads"];
const RNG_KEYS: &[&str] = &["kind", "max_bytes_per_request"];
const CONSOLE_KEYS: &[&str] = &["kind"];
const NET_KEYS: &[&str] = &["kind", "mac", "tap", "link", "bridge"];
const VSOCK_KEYS: &[&str] = &["kind", "cid", "ports"];

/// Every key some kind accepts: what a table whose kind is unusable is checked against.
const ANY_KIND_KEYS: &[&str] = &[
    "kind",
    "path",
    "read_only",
    "id",
    "max_bytes_per_request",
    "mac",
    "tap",
    "link",
    "bridge",
    "cid",
    "ports",
];

/// Keys of one element of a vsock device's `ports`.
const PORT_KEYS: &[&str] = &["port", "socket"];

impl Kind {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Block => BLOCK_KEYS,
            Kind::Rng => RNG_KEYS,
            Kind::Console => CONSOLE_KEYS,
            Kind::Net => NET_KEYS,
            Kind::Vsock => VSOCK_KEYS,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Rng => "rng",
            Kind::Console => "console",
            Kind::Net => "net",
            Kind::Vsock => "vsock",
        }
    }

    /// `a block device`, `an rng device`, ... for messages.
    fn described(self) -> String {
        let article = if self == Kind::Rng { "an" } else { "a" };
        format!("{article} {} device", self.as_str())
    }

    /// Whether a partition may have only one device of this kind: the guest sees one entropy
    /// source, one `hvc0` and one CID.
    fn single(self) -> bool {
        matches!(self, Kind::Rng | Kind::Console | Kind::Vsock)
    }
}

/// A device as read: the plan if every key of it passed, and the located values that the
/// system-wide rules look at.
pub(crate) struct DeviceDraft {
    pub(crate) plan: Result<DevicePlan, Reported>,
    /// Dotted key prefix, e.g. `partition[1] ("linux").device[0]`.
    pub(crate) prefix: String,
    pub(crate) kind: Option<Located<Kind>>,
    pub(crate) facts: Facts,
}

/// The values of a device that system-wide rules look at, each only if it passed its own
/// checks.
#[derive(Default)]
pub(crate) struct Facts {
    /// A block device's image.
    pub(crate) image: Option<Image>,
    /// A net device's address.
    pub(crate) mac: Option<Located<[u8; 6]>>,
    /// A net device's TAP name, when that is its only backend.
    pub(crate) tap: Option<Located<String>>,
    /// A net device's linked partition, when that is its only backend.
    pub(crate) link: Option<Located<String>>,
    /// A net device's bridge, when that is its only backend.
    pub(crate) bridge: Option<Located<String>>,
    /// A vsock device's CID.
    pub(crate) cid: Option<Located<u32>>,
    /// A vsock device's sockets.
    pub(crate) sockets: Vec<Socket>,
    /// A vsock device's ports, each listed once.
    pub(crate) vsock_ports: Vec<ListedPort>,
}

/// The image of a block device.
pub(crate) struct Image {
    /// Canonical path: equal for every device that uses the same file.
    pub(crate) canonical: PathBuf,
    pub(crate) writable: bool,
    /// The `path` value.
    pub(crate) span: Range<usize>,
}

/// The host socket of one vsock port.
pub(crate) struct Socket {
    /// The path with its folder canonical: equal for every port that names the same socket.
    pub(crate) canonical: PathBuf,
    /// The `socket` value.
    pub(crate) span: Range<usize>,
    /// Dotted key of the port, e.g. `partition[0] ("a").device[2].ports[1]`.
    pub(crate) port: String,
}

/// The devices of one partition.
pub(crate) struct Devices {
    /// The devices that are tables, in file order.
    pub(crate) drafts: Vec<DeviceDraft>,
    /// `Err` if the list itself, an element of it or a rule within the partition failed.
    list: Result<(), Reported>,
    /// Whether every device of the partition is known, with its kind.
    pub(crate) all_known: bool,
}

impl Devices {
    /// The device plans, if the list and every device in it passed.
    pub(crate) fn plans(&self) -> Result<Vec<DevicePlan>, Reported> {
        self.list?;
        self.drafts.iter().map(|draft| draft.plan.clone()).collect()
    }
}

/// What a device needs from its partition: where relative paths start and the partition's
/// name (for the default block `id`).
pub(crate) struct Owner<'p> {
    pub(crate) base: &'p Path,
    pub(crate) name: Result<&'p str, Reported>,
}

/// Reads the `device` array of the partition whose keys are `fields`.
pub(crate) fn read_all(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    owner: &Owner<'_>,
) -> Devices {
    let list = match fields.array(report, "device") {
        Ok(Some(list)) => list,
        Ok(None) => {
            return Devices {
                drafts: Vec::new(),
                list: Ok(()),
                all_known: true,
            }
        }
        Err(reported) => {
            return Devices {
                drafts: Vec::new(),
                list: Err(reported),
                all_known: false,
            }
        }
    };
    let mut devices = Devices {
        drafts: Vec::with_capacity(list.value.len()),
        list: Ok(()),
        all_known: true,
    };
    let mut blocks_before = 0;
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("device"));
        match element.get_ref() {
            DeValue::Table(table) => {
                let device = Device {
                    index,
                    prefix,
                    table,
                    span: element.span(),
                    blocks_before,
                };
                let draft = read(report, owner, device);
                if draft.kind.as_ref().is_some_and(|k| k.value == Kind::Block) {
                    blocks_before += 1;
                }
                devices.drafts.push(draft);
            }
            other => {
                devices.list = Err(wrong_type(report, element.span(), prefix, "a table", other));
            }
        }
    }
    devices.all_known =
        devices.list.is_ok() && devices.drafts.iter().all(|draft| draft.kind.is_some());
    if let Some(extra) = list.value.get(rules::MAX_DEVICES) {
        devices.list = Err(report.at(
            extra.span(),
            format!("{}[{}]", fields.key("device"), rules::MAX_DEVICES),
            format!(
                "too many devices: {} declared, at most {} accepted (each device needs an \
                 interrupt line of its own)",
                list.value.len(),
                rules::MAX_DEVICES
            ),
        ));
    }
    if let Err(reported) = check_single_kinds(report, &devices.drafts) {
        devices.list = Err(reported);
    }
    devices
}

/// A partition has at most one device of each [`Kind::single`] kind; a repeat is reported at
/// its `kind`, naming the first.
fn check_single_kinds(report: &mut Report<'_>, drafts: &[DeviceDraft]) -> Result<(), Reported> {
    let mut result = Ok(());
    for (i, draft) in drafts.iter().enumerate() {
        let Some(kind) = draft.kind.as_ref().filter(|kind| kind.value.single()) else {
            continue;
        };
        let first = drafts[..i]
            .iter()
            .find(|earlier| earlier.kind.as_ref().is_some_and(|k| k.value == kind.value));
        if let Some(first) = first {
            let first_line = report.line_of(first.kind.as_ref().map_or(0, |k| k.span.start));
            result = Err(report.at(
                kind.span.clone(),
                format!("{}.kind", draft.prefix),
                format!(
                    "a partition may have only one {} device; {} at line {first_line} already \
                     is one",
                    kind.value.as_str(),
                    first.prefix
                ),
            ));
        }
    }
    result
}

/// One element of the `device` array, and where it is.
struct Device<'a, 'i> {
    index: usize,
    prefix: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    /// How many block devices precede this one in the partition (for the default `id`).
    blocks_before: usize,
}

/// `kind`, if it is present and one of [`KINDS`]; nothing is reported here.
fn peek_kind(table: &DeTable<'_>) -> Option<Kind> {
    match table.get("kind").map(|kind| kind.get_ref()) {
        Some(DeValue::String(kind)) => KINDS
            .iter()
            .find(|(spelling, _)| *spelling == kind.as_ref())
            .map(|(_, kind)| *kind),
        _ => None,
    }
}

/// Reads and checks one device.
fn read(report: &mut Report<'_>, owner: &Owner<'_>, device: Device<'_, '_>) -> DeviceDraft {
    let fields = match peek_kind(device.table) {
        Some(kind) => Fields::of(
            report,
            device.table,
            device.span.clone(),
            device.prefix.clone(),
            kind.keys(),
            &kind.described(),
        ),
        None => Fields::new(
            report,
            device.table,
            device.span.clone(),
            device.prefix.clone(),
            ANY_KIND_KEYS,
        ),
    };
    let kind = fields.choice(report, "kind", KINDS);
    let kind = fields.required(report, "kind", kind);
    let mut facts = Facts::default();
    let plan = kind.clone().and_then(|kind| match kind.value {
        Kind::Block => read_block(report, &fields, owner, device.blocks_before, &mut facts),
        Kind::Rng => read_rng(report, &fields),
        Kind::Console => Ok(DeviceKind::Console),
        Kind::Net => read_net(report, &fields, &mut facts),
        Kind::Vsock => read_vsock(report, &fields, owner.base, &mut facts),
    });
    DeviceDraft {
        plan: plan.map(|kind| DevicePlan {
            index: device.index,
            kind,
        }),
        prefix: device.prefix,
        kind: kind.ok(),
        facts,
    }
}

fn read_block(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    owner: &Owner<'_>,
    blocks_before: usize,
    facts: &mut Facts,
) -> Result<DeviceKind, Reported> {
    let read_only = fields
        .boolean(report, "read_only")
        .map(|read_only| read_only.is_some_and(|r| r.value));
    let id = fields.string(report, "id").and_then(|id| match id {
        Some(id) if !rules::is_valid_block_id(&id.value) => Err(report.at(
            id.span,
            fields.key("id"),
            format!(
                "invalid id {:?}; use 1 to {} printable ASCII characters (space to '~')",
                id.value,
                rules::BLOCK_ID_MAX_BYTES
            ),
        )),
        other => Ok(other.map(|id| id.value)),
    });
    let batch_us = fields
        .integer(report, "batch_us", rules::BATCH_US_RANGE)
        .map(|b| b.map(|b| b.value));
    let io_threads = fields
        .integer(report, "io_threads", rules::IO_THREADS_RANGE)
        .map(|t| t.map_or(rules::DEFAULT_IO_THREADS, |t| t.value));
    let path = read_path(report, fields, "path", owner.base);
    let path = fields.required(report, "path", path)?;
    // With an unusable `read_only`, the image is still checked, but only for reading.
    let writable = read_only.is_ok_and(|read_only| !read_only);
    let canonical = files::disk_image(&path.value, writable)
        .map_err(|error| report.at(path.span.clone(), fields.key("path"), error.to_string()))?;
    let read_only = read_only?;
    facts.image = Some(Image {
        canonical,
        writable,
        span: path.span,
    });
    let id = match id? {
        Some(id) => id,
        None => rules::default_block_id(owner.name?, blocks_before),
    };
    Ok(DeviceKind::Block(BlockPlan {
        path: path.value,
        read_only,
        batch_us: batch_us?,
        io_threads: io_threads?,
        id,
    }))
}

fn read_rng(report: &mut Report<'_>, fields: &Fields<'_, '_>) -> Result<DeviceKind, Reported> {
    let max_bytes = fields.integer(
        report,
        "max_bytes_per_request",
        rules::RNG_MAX_BYTES_PER_REQUEST_RANGE,
    )?;
    Ok(DeviceKind::Rng(RngPlan {
        max_bytes_per_request: max_bytes
            .map_or(rules::DEFAULT_RNG_MAX_BYTES_PER_REQUEST, |m| m.value),
    }))
}

fn read_net(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    facts: &mut Facts,
) -> Result<DeviceKind, Reported> {
    let mac = fields
        .string(report, "mac")
        .and_then(|mac| mac.map(|mac| check_mac(report, fields, mac)).transpose());
    let mac = fields.required(report, "mac", mac);
    facts.mac = mac.clone().ok();
    let tap = fields.string(report, "tap").and_then(|tap| match tap {
        Some(tap) if !rules::is_valid_tap_name(&tap.value) => Err(report.at(
            tap.span,
            fields.key("tap"),
            format!(
                "invalid TAP device name {:?}; use 1 to {} characters from A-Z, a-z, 0-9, \
                 '_', '.' and '-', other than \".\" and \"..\"",
                tap.value,
                rules::TAP_NAME_MAX_LEN
            ),
        )),
        other => Ok(other),
    });
    let link = fields.string(report, "link");
    let bridge = fields.string(report, "bridge");
    let (tap, link, bridge) = (tap?, link?, bridge?);
    // Known even when the backends conflict, so the bridge's rules can still name the port
    // (the device is refused anyway).
    facts.bridge = bridge.clone();
    let given: Vec<(&str, &Located<String>)> =
        [("tap", &tap), ("link", &link), ("bridge", &bridge)]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
            .collect();
    if let [_, (second, value), ..] = given.as_slice() {
        let names = match given.as_slice() {
            [(a, _), (b, _)] => format!("both {a} and {b}"),
            _ => "tap, link and bridge".to_owned(),
        };
        return Err(report.at(
            value.span.clone(),
            fields.key(second),
            format!("{names} are given; a net device has one backend, give only one"),
        ));
    }
    let backend = match (tap, link, bridge) {
        (Some(tap), _, _) => {
            facts.tap = Some(tap.clone());
            NetBackend::Tap { name: tap.value }
        }
        (_, Some(link), _) => {
            facts.link = Some(link.clone());
            NetBackend::Link {
                partition: link.value,
            }
        }
        (_, _, Some(bridge)) => NetBackend::Bridge {
            bridge: bridge.value,
        },
        (None, None, None) => {
            return Err(report.at(
                fields.span(),
                fields.prefix().to_owned(),
                "a net device needs a backend; give tap (a host TAP device), link (another \
                 partition) or bridge (a bridge of the system)",
            ))
        }
    };
    Ok(DeviceKind::Net(NetPlan {
        mac: mac?.value,
        backend,
    }))
}

/// Parses a `mac` value and checks that a guest may use it.
fn check_mac(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    mac: Located<String>,
) -> Result<Located<[u8; 6]>, Reported> {
    let Some(parsed) = rules::parse_mac(&mac.value) else {
        return Err(report.at(
            mac.span,
            fields.key("mac"),
            format!(
                "invalid MAC address {:?}; write six two-digit hexadecimal octets separated \
                 by ':', e.g. \"52:54:00:12:34:01\"",
                mac.value
            ),
        ));
    };
    match rules::mac_problem(parsed) {
        Some(problem) => Err(report.at(mac.span, fields.key("mac"), problem)),
        None => Ok(Located {
            value: parsed,
            span: mac.span,
        }),
    }
}

fn read_vsock(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
    facts: &mut Facts,
) -> Result<DeviceKind, Reported> {
    let cid = fields.integer(report, "cid", rules::VSOCK_CID_RANGE);
    let cid = fields.required(report, "cid", cid);
    facts.cid = cid.clone().ok();
    let ports = read_ports(report, fields, base, facts);
    Ok(DeviceKind::Vsock(VsockPlan {
        cid: cid?.value,
        ports: ports?,
    }))
}

/// A vsock port that passed its own checks, and where it is in the file.
pub(crate) struct ListedPort {
    pub(crate) port: u32,
    /// The `port` value.
    pub(crate) span: Range<usize>,
    /// Dotted key of the element of `ports`, e.g. `partition[0] ("a").device[2].ports[1]`.
    pub(crate) key: String,
}

/// The `ports` of a vsock device; each port and socket that passed is added to `facts`.
fn read_ports(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
    facts: &mut Facts,
) -> Result<Vec<VsockPort>, Reported> {
    let Some(list) = fields.array(report, "ports")? else {
        return Ok(Vec::new());
    };
    let mut ports = Ok(Vec::with_capacity(list.value.len()));
    let mut listed: Vec<ListedPort> = Vec::new();
    for (i, element) in list.value.iter().enumerate() {
        let key = format!("{}[{i}]", fields.key("ports"));
        let port = match element.get_ref() {
            DeValue::Table(table) => {
                let port_fields = Fields::of(
                    report,
                    table,
                    element.span(),
                    key.clone(),
                    PORT_KEYS,
                    "a vsock port",
                );
                read_port(report, &port_fields, base, &listed, facts)
            }
            other => Err(wrong_type(
                report,
                element.span(),
                key.clone(),
                "a table",
                other,
            )),
        };
        match port {
            Ok((port, span)) => {
                listed.push(ListedPort {
                    port: port.port,
                    span,
                    key,
                });
                if let Ok(ports) = &mut ports {
                    ports.push(port);
                }
            }
            Err(reported) => ports = Err(reported),
        }
    }
    facts.vsock_ports = listed;
    ports
}

/// One element of `ports`: the port and the span of its `port` value.
fn read_port(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
    earlier: &[ListedPort],
    facts: &mut Facts,
) -> Result<(VsockPort, Range<usize>), Reported> {
    let port = fields.integer(report, "port", rules::VSOCK_PORT_RANGE);
    let port = fields.required(report, "port", port).and_then(|port| {
        match earlier.iter().find(|listed| listed.port == port.value) {
            Some(first) => {
                let first_line = report.line_of(first.span.start);
                Err(report.at(
                    port.span,
                    fields.key("port"),
                    format!(
                        "port {} is listed more than once; {} at line {first_line} already \
                         has it",
                        port.value, first.key
                    ),
                ))
            }
            None => Ok(port),
        }
    });
    let socket = read_path(report, fields, "socket", base);
    let socket = fields
        .required(report, "socket", socket)
        .and_then(|socket| match files::socket_path(&socket.value) {
            Ok(canonical) => {
                facts.sockets.push(Socket {
                    canonical,
                    span: socket.span.clone(),
                    port: fields.prefix().to_owned(),
                });
                Ok(socket.value)
            }
            Err(error) => Err(report.at(socket.span, fields.key("socket"), error.to_string())),
        });
    let port = port?;
    Ok((
        VsockPort {
            port: port.value,
            socket: socket?,
        },
        port.span,
    ))
}
