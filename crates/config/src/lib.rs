//! The system description: one TOML file that declares the whole machine, parsed and
//! validated into a [`SystemPlan`].
//!
//! This crate owns the description's format (its keys, types, units, defaults and limits,
//! documented in `docs/system-description.md`) and every check that can be made before any
//! partition exists: names, sizes, host CPUs and memory, the kernel, initrd and console log
//! files, each partition's virtio devices (their images, addresses, backends and sockets,
//! and the links between partitions), the serial lines between partitions, and the ports,
//! channels and doorbells through which partitions exchange messages and events. It knows
//! nothing of KVM or processes; `bulkhead check` and `bulkhead run` call [`load`] on the main
//! thread before anything else is built.
//!
//! Invariants:
//! - A [`SystemPlan`] can only be obtained from [`load`] or [`parse`], so holding one means the
//!   description passed every rule (see [`plan`] for what each field guarantees). The plan
//!   reflects the host and files at validation time; a file removed afterwards is the
//!   loader's problem to report.
//! - A refused description yields a [`Refusal`] holding one [`Problem`] per thing wrong, all of
//!   them, sorted by position, each with the file, 1-based line and column, and the dotted key.
//!   Only a TOML syntax error or an unreadable file stops the checks early (one problem).
//! - Unknown keys are errors everywhere. Relative paths are resolved against the folder of
//!   the description and stored absolute.
//!
//! Host facts are a parameter ([`HostFacts`], normally from [`HostFacts::probe`]) so that
//! validation is deterministic under test.

#![forbid(unsafe_code)]

mod device;
mod files;
mod health;
mod host;
mod partition;
pub mod plan;
mod port;
mod problem;
mod read;
pub mod rules;
mod system;

use std::path::Path;

pub use host::HostFacts;
pub use plan::{
    AlertAction, BridgePlan, BridgePortKind, BridgePortPlan, Cidr, Endpoint, IdsPlan, RatePlan,
    RuleAction, RulePlan, UplinkPlan,
};
pub use plan::{
    BlockPlan, CpuWindows, Criticality, DeviceKind, DevicePlan, Frame, HealthAction, HealthPlan,
    IdlePolicy, KernelFormat, NetBackend, NetPlan, OnReset, PartitionPlan, RngPlan, SchedulePlan,
    SchedulePolicy, SystemPlan, UartLinkPlan, UartPeer, VsockPlan, VsockPort, WindowPlan,
};
pub use plan::{ChannelPlan, DoorbellPlan, PortDirection, PortKind, PortPlan, PortRef};
pub use problem::{Problem, Refusal};

use problem::Report;

/// Reads the description at `path` and validates it (see [`parse`]).
pub fn load(path: &Path, host: &HostFacts) -> Result<SystemPlan, Refusal> {
    let bytes = std::fs::read(path).map_err(|error| {
        let mut report = Report::new(path, "");
        report.at(
            0..0,
            "",
            format!("cannot read the system description: {error}"),
        );
        report.into_refusal()
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse(path, &text, host),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&error.as_bytes()[..valid]).into_owned();
            let mut report = Report::new(path, &text);
            report.at(
                valid..valid,
                "",
                "the system description is not valid UTF-8",
            );
            Err(report.into_refusal())
        }
    }
}

/// Validates the description `text`. `path` names the file in problems and is the base of
/// relative paths; the files it names are opened and the host's CPUs and memory checked
/// against `host`.
pub fn parse(path: &Path, text: &str, host: &HostFacts) -> Result<SystemPlan, Refusal> {
    let mut report = Report::new(path, text);
    let root = match toml::de::DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let start = error.span().map_or(0, |span| span.start);
            report.at(
                start..start,
                "",
                format!("invalid TOML: {}", error.message()),
            );
            return Err(report.into_refusal());
        }
    };
    let plan = system::validate(&mut report, path, root.get_ref(), host);
    report.finish(plan)
}
