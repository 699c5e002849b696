//! The rules on devices that involve more than one partition, or more than one device of the
//! system: unique MAC addresses, TAP names, CIDs and vsock sockets; images shared only between
//! read-only devices; and links between partitions that are declared on both sides.
//!
//! Each repeat or conflict is reported at the later place in the file, naming the earlier one
//! with its line. A value that failed its own checks (see [`crate::device`]) takes no part.

use std::ops::Range;
use std::path::PathBuf;

use crate::device::DeviceDraft;
use crate::partition::Draft;
use crate::problem::{Report, Reported};
use crate::rules;

/// Every system-wide device rule; `Err` if any failed.
pub(super) fn check(report: &mut Report<'_>, drafts: &[Draft]) -> Result<(), Reported> {
    let devices: Vec<&DeviceDraft> = drafts
        .iter()
        .flat_map(|draft| &draft.devices.drafts)
        .collect();
    let results = [
        check_unique_macs(report, &devices),
        check_unique_taps(report, &devices),
        check_unique_cids(report, &devices),
        check_unique_sockets(report, &devices),
        check_shared_images(report, &devices),
        check_links(report, drafts),
    ];
    results.into_iter().collect()
}

/// One use of a value that must be unique in the system.
struct Use<'d, T> {
    value: &'d T,
    span: Range<usize>,
    /// Dotted key of the value.
    key: String,
    /// Dotted key of what uses it, for messages: a device or a vsock port.
    user: &'d str,
}

/// Reports each use of a value that an earlier use already has, naming the first.
/// `describe` gives the value as messages show it, `owner` what needs a value of its own.
fn check_unique<T: PartialEq>(
    report: &mut Report<'_>,
    uses: &[Use<'_, T>],
    describe: impl Fn(&T) -> String,
    owner: &str,
) -> Result<(), Reported> {
    let mut result = Ok(());
    for (i, later) in uses.iter().enumerate() {
        let Some(first) = uses[..i].iter().find(|first| first.value == later.value) else {
            continue;
        };
        let first_line = report.line_of(first.span.start);
        result = Err(report.at(
            later.span.clone(),
            later.key.clone(),
            format!(
                "{} is already used by {} (line {first_line}); each {owner} needs its own",
                describe(later.value),
                first.user
            ),
        ));
    }
    result
}

fn check_unique_macs(report: &mut Report<'_>, devices: &[&DeviceDraft]) -> Result<(), Reported> {
    let uses: Vec<Use<'_, [u8; 6]>> = devices
        .iter()
        .filter_map(|device| {
            let mac = device.facts.mac.as_ref()?;
            Some(Use {
                value: &mac.value,
                span: mac.span.clone(),
                key: format!("{}.mac", device.prefix),
                user: &device.prefix,
            })
        })
        .collect();
    let describe = |mac: &[u8; 6]| format!("MAC address {}", rules::format_mac(*mac));
    check_unique(report, &uses, describe, "net device")
}

fn check_unique_taps(report: &mut Report<'_>, devices: &[&DeviceDraft]) -> Result<(), Reported> {
    let uses: Vec<Use<'_, String>> = devices
        .iter()
        .filter_map(|device| {
            let tap = device.facts.tap.as_ref()?;
            Some(Use {
                value: &tap.value,
                span: tap.span.clone(),
                key: format!("{}.tap", device.prefix),
                user: &device.prefix,
            })
        })
        .collect();
    let describe = |tap: &String| format!("TAP device {tap:?}");
    check_unique(report, &uses, describe, "net device")
}

fn check_unique_cids(report: &mut Report<'_>, devices: &[&DeviceDraft]) -> Result<(), Reported> {
    let uses: Vec<Use<'_, u32>> = devices
        .iter()
        .filter_map(|device| {
            let cid = device.facts.cid.as_ref()?;
            Some(Use {
                value: &cid.value,
                span: cid.span.clone(),
                key: format!("{}.cid", device.prefix),
                user: &device.prefix,
            })
        })
        .collect();
    check_unique(report, &uses, |cid| format!("CID {cid}"), "vsock device")
}

fn check_unique_sockets(report: &mut Report<'_>, devices: &[&DeviceDraft]) -> Result<(), Reported> {
    let uses: Vec<Use<'_, PathBuf>> = devices
        .iter()
        .flat_map(|device| &device.facts.sockets)
        .map(|socket| Use {
            value: &socket.canonical,
            span: socket.span.clone(),
            key: format!("{}.socket", socket.port),
            user: &socket.port,
        })
        .collect();
    let describe = |path: &PathBuf| format!("socket {path:?}");
    check_unique(report, &uses, describe, "vsock port")
}

/// Devices may share an image only if all of them are read-only. A device is reported at
/// its `path` once, against the first earlier device it conflicts with.
fn check_shared_images(report: &mut Report<'_>, devices: &[&DeviceDraft]) -> Result<(), Reported> {
    let images: Vec<(&DeviceDraft, &crate::device::Image)> = devices
        .iter()
        .filter_map(|device| device.facts.image.as_ref().map(|image| (*device, image)))
        .collect();
    let mut result = Ok(());
    for (i, (later, image)) in images.iter().enumerate() {
        let conflict = images[..i].iter().find(|(_, earlier)| {
            earlier.canonical == image.canonical && (earlier.writable || image.writable)
        });
        let Some((first, first_image)) = conflict else {
            continue;
        };
        let first_line = report.line_of(first_image.span.start);
        let who = if first_image.writable && image.writable {
            "two writers"
        } else {
            "a writer and a reader"
        };
        result = Err(report.at(
            image.span.clone(),
            format!("{}.path", later.prefix),
            format!(
                "image {:?} is also used by {} (line {first_line}): {who}; an image may be \
                 shared only between read-only devices",
                image.canonical, first.prefix
            ),
        ));
    }
    result
}

/// Each `link` names another partition of the system, which links back with exactly one net
/// device; a partition links to another with at most one device. A one-sided link is
/// reported on the side that has it, a second link to the same partition at the second.
fn check_links(report: &mut Report<'_>, drafts: &[Draft]) -> Result<(), Reported> {
    let mut result = Ok(());
    for draft in drafts {
        for (i, device) in draft.devices.drafts.iter().enumerate() {
            let Some(link) = &device.facts.link else {
                continue;
            };
            if let Some(message) = link_problem(report, drafts, draft, i, &link.value) {
                let key = format!("{}.link", device.prefix);
                result = Err(report.at(link.span.clone(), key, message));
            }
        }
    }
    result
}

/// What is wrong with device `i` of `draft` linking to partition `link`, if anything.
fn link_problem(
    report: &Report<'_>,
    drafts: &[Draft],
    draft: &Draft,
    i: usize,
    link: &str,
) -> Option<String> {
    let own = draft.name.as_ref().map(|name| name.value.as_str());
    if own == Some(link) {
        return Some("a partition cannot link to itself; name another partition".to_owned());
    }
    let Some(target) = find_partition(drafts, link) else {
        return Some(format!(
            "no partition is named {link:?} (partitions: {})",
            partition_names(drafts)
        ));
    };
    let own = own?;
    let earlier = draft.devices.drafts[..i].iter().find_map(|earlier| {
        let earlier_link = earlier.facts.link.as_ref().filter(|l| l.value == link)?;
        Some((earlier, earlier_link))
    });
    if let Some((earlier, earlier_link)) = earlier {
        return Some(format!(
            "partition {own:?} already links to {link:?} with {} (line {}); two partitions \
             are joined by one pair of net devices at most",
            earlier.prefix,
            report.line_of(earlier_link.span.start)
        ));
    }
    missing_link_back(target, own)
}

/// Why `target` does not link back to partition `own`, if it does not. Nothing is said when
/// a device of `target` could not be read far enough to tell its kind.
fn missing_link_back(target: &Draft, own: &str) -> Option<String> {
    let back = target
        .devices
        .drafts
        .iter()
        .filter(|device| links_to(device, own))
        .count();
    (back == 0 && target.devices.all_known).then(|| {
        format!(
            "partition {:?} has no net device with link = {own:?}; a link needs a net device \
             on each side",
            target.name.as_ref().map_or("", |name| name.value.as_str())
        )
    })
}

fn links_to(device: &DeviceDraft, partition: &str) -> bool {
    device
        .facts
        .link
        .as_ref()
        .is_some_and(|link| link.value == partition)
}

/// The first partition named `name` (names are unique, or refused elsewhere).
fn find_partition<'d>(drafts: &'d [Draft], name: &str) -> Option<&'d Draft> {
    drafts
        .iter()
        .find(|draft| draft.name.as_ref().is_some_and(|n| n.value == name))
}

/// The valid partition names, quoted, for messages.
pub(super) fn partition_names(drafts: &[Draft]) -> String {
    let names: Vec<String> = drafts
        .iter()
        .filter_map(|draft| draft.name.as_ref())
        .map(|name| format!("{:?}", name.value))
        .collect();
    names.join(", ")
}
