//! The APEX service's vsock port: a Linux guest reaches its partition's ports and doorbells
//! through its vsock device, connecting to the host (CID 2) on
//! [`rules::APEX_VSOCK_PORT`] (`docs/ports.md`). In a partition with ports or doorbells that
//! port is the monitor's, so the partition's vsock device cannot forward it to a socket.

use crate::partition::Draft;
use crate::problem::{Report, Reported};
use crate::rules;

/// No partition with ports or doorbells forwards [`rules::APEX_VSOCK_PORT`]; `doorbell_ends`
/// are the partitions named by doorbells. Reported at the vsock port's `port`.
pub(super) fn check(
    report: &mut Report<'_>,
    drafts: &[Draft],
    doorbell_ends: &[String],
) -> Result<(), Reported> {
    let mut result = Ok(());
    for draft in drafts {
        let has_doorbells = draft
            .name
            .as_ref()
            .is_some_and(|name| doorbell_ends.contains(&name.value));
        if draft.ports.drafts.is_empty() && !has_doorbells {
            continue;
        }
        let forwarded = draft
            .devices
            .drafts
            .iter()
            .flat_map(|device| &device.facts.vsock_ports)
            .filter(|listed| listed.port == rules::APEX_VSOCK_PORT);
        for listed in forwarded {
            result = Err(report.at(
                listed.span.clone(),
                format!("{}.port", listed.key),
                format!(
                    "vsock port {} is where the guest reaches its partition's ports and \
                     doorbells (the APEX service); a partition with ports or doorbells cannot \
                     forward it to a socket",
                    rules::APEX_VSOCK_PORT
                ),
            ));
        }
    }
    result
}
