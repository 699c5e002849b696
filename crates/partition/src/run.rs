//! Building and running a partition: memory, VM, devices, guest image, vCPU threads.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_config::plan::{Criticality, PartitionPlan};
use bulkhead_config::rules::APEX_VSOCK_PORT;
use bulkhead_config::{DeviceKind, IdlePolicy, NetBackend};
use bulkhead_devices::legacy::{
    PowerController, Uart, COM1_BASE, COM1_GSI, COM2_BASE, COM2_GSI, POWER_PORT_BASE, PVPANIC_PORT,
    RESET_OFFSET, RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
};
use bulkhead_devices::pvcall::{PvCallHandler, PvIdentity, PvVcpuState};
use bulkhead_devices::RateLimitedLog;
use bulkhead_vmm::x86_64::acpi::AcpiPlatform;
use bulkhead_vmm::{
    create_guest_memory, install_kick_signal, load_guest, GuestImage, HaltMode, Vcpu, VcpuExit, Vm,
};
use vmm_sys_util::eventfd::EventFd;

use crate::apex;
use crate::clock;
use crate::console::Console;
use crate::events::EventLog;
use crate::exits::{Devices, Next, VcpuCtx};
use crate::health::{Health, HealthStop};
use crate::link::Link;
use crate::placement::{
    die_with_parent, lock_all_memory, place_current_thread, restrict_current_thread,
};
use crate::ports::PartitionPorts;
use crate::uart_link::Com2;
use crate::virtio::{self, VirtioDevices};
use crate::windows::{Schedule, WindowGate, WindowStats};

/// The environment variable in which the supervisor passes the start of the first major
/// frame (`CLOCK_MONOTONIC` ns): every partition process of a system counts its windows from
/// it, restarted ones too. Without it a partition counts from its own start.
pub const FRAME_EPOCH_ENV: &str = "BULKHEAD_FRAME_EPOCH_NS";

/// The longest halt-polling KVM is asked for when HLT exits cannot be disabled for
/// `idle = "poll"`: KVM then grows each vCPU's polling up to this before it sleeps.
const POLL_FALLBACK_NS: u32 = 1_000_000_000;

/// How often a time-partitioned vCPU reports its window statistics (from outside its windows).
const WINDOW_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The signal that kicks a vCPU out of the guest (the end of a time window).
fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Why a partition stopped. The partition process exits with [`StopReason::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The guest powered off (ACPI S5 or the ABI's PowerOff with code 0).
    PowerOff,
    /// The guest powered off through the ABI with a non-zero code.
    PowerOffWithCode(u64),
    /// The guest reset itself.
    Reset,
    /// The guest faulted: triple fault, KVM internal error, failed entry.
    GuestFault(String),
    /// The health monitor stopped the partition (watchdog, panic, deadline misses).
    Health(HealthStop),
}

impl StopReason {
    /// Exit codes of a partition process (documented in `ARCHITECTURE.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            StopReason::PowerOff => 0,
            StopReason::Reset => 3,
            StopReason::GuestFault(_) => 4,
            StopReason::PowerOffWithCode(_) => 5,
            StopReason::Health(stop) => stop.exit_code(),
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::PowerOff => write!(f, "guest powered off"),
            StopReason::PowerOffWithCode(c) => write!(f, "guest powered off with code {c}"),
            StopReason::Reset => write!(f, "guest reset"),
            StopReason::GuestFault(what) => write!(f, "guest fault: {what}"),
            StopReason::Health(stop) => write!(f, "health monitor: {stop}"),
        }
    }
}

/// Errors building a partition (before or while starting the guest).
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// Guest memory could not be mapped.
    #[error("cannot create guest memory")]
    Memory(#[from] bulkhead_vmm::MemoryError),
    /// The VM could not be created or wired.
    #[error("cannot set up the virtual machine")]
    Vm(#[from] bulkhead_vmm::VmError),
    /// The guest image could not be loaded.
    #[error("cannot load the guest")]
    Load(#[from] bulkhead_vmm::LoadError),
    /// An eventfd could not be created.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
    /// A vCPU thread could not be started.
    #[error("cannot start a vCPU thread")]
    Thread(#[source] std::io::Error),
    /// KVM_RUN itself failed.
    #[error("vCPU {0} failed")]
    Vcpu(u8, #[source] bulkhead_vmm::VcpuError),
    /// A device could not be created.
    #[error("device {0}: {1}")]
    Device(usize, String),
    /// The ports, doorbells or the APEX service could not be set up.
    #[error("cannot set up the partition's ports")]
    Ports(#[from] crate::ports::PortsError),
    /// The APEX service's socket could not be bound.
    #[error("cannot start the APEX service (vsock port {APEX_VSOCK_PORT}) at {0}")]
    Apex(std::path::PathBuf, #[source] std::io::Error),
    /// The run directory is needed and missing.
    #[error("ports and doorbells need the run directory of `bulkhead run`")]
    RunDir(#[source] crate::link::LinkError),
    /// COM2 and its uart link could not be set up.
    #[error("cannot set up COM2")]
    UartLink(#[from] crate::uart_link::UartLinkError),
}

/// Opens the partition's ports and doorbells, and starts its APEX service when it has a vsock
/// device for a Linux guest to reach them with.
fn open_ports(
    plan: &PartitionPlan,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Option<Arc<PartitionPorts>>, PartitionError> {
    if plan.ports.is_empty() && plan.doorbells.is_empty() {
        return Ok(None);
    }
    let run_dir = Link::run_dir().map_err(PartitionError::RunDir)?;
    let Some(ports) = PartitionPorts::open(plan, &run_dir)?.map(Arc::new) else {
        return Ok(None);
    };
    let names: Vec<&str> = plan
        .ports
        .iter()
        .map(|p| p.name.as_str())
        .chain(plan.doorbells.iter().map(|d| d.name.as_str()))
        .collect();
    if plan
        .devices
        .iter()
        .any(|d| matches!(d.kind, DeviceKind::Vsock(_)))
    {
        let path = run_dir.join(apex::socket_name(&plan.name));
        apex::spawn(&plan.name, &path, Arc::clone(&ports))
            .map_err(|e| PartitionError::Apex(path.clone(), e))?;
        log(&format!(
            "ports {}: ABI 0.3 calls, and vsock port {APEX_VSOCK_PORT} (APEX service)",
            names.join(", ")
        ));
    } else {
        log(&format!("ports {}: ABI 0.3 calls", names.join(", ")));
    }
    Ok(Some(ports))
}

/// Runs `plan`'s guest until it stops. Monitor messages go to `log` (standard error).
pub fn run_partition(
    plan: &PartitionPlan,
    log: &(dyn Fn(&str) + Sync),
) -> Result<StopReason, PartitionError> {
    die_with_parent();
    let started = Instant::now();
    let epoch_ns = std::env::var(FRAME_EPOCH_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(clock::monotonic_ns);
    // Every thread but the vCPUs (which pin themselves) stays on the housekeeping CPUs.
    if let Err(e) = restrict_current_thread(&plan.housekeeping_cpus) {
        log(&format!(
            "warning: cannot keep the monitor's threads on housekeeping CPUs {:?}: {e}",
            plan.housekeeping_cpus
        ));
    }
    // A bridge port is a vhost-user connection: the bridge maps the guest's memory.
    let shared = plan.devices.iter().any(|d| {
        matches!(&d.kind, DeviceKind::Net(net) if matches!(net.backend, NetBackend::Bridge { .. }))
    });
    let memory = create_guest_memory(plan.memory_mib, plan.huge_pages, shared)?;
    let vm = Vm::new(memory)?;
    set_idle_policy(plan, &vm, log);
    let console = Console::stdout();

    let uart_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(PartitionError::EventFd)?;
    vm.register_irqfd(&uart_irq, COM1_GSI)?;
    let mut com2 = Com2::build(plan, &vm)?;
    let vcpus = plan.vcpus as u8;
    let platform = AcpiPlatform {
        vcpus,
        sleep_control_port: POWER_PORT_BASE + SLEEP_CONTROL_OFFSET,
        sleep_status_port: POWER_PORT_BASE + SLEEP_STATUS_OFFSET,
        reset_port: POWER_PORT_BASE + RESET_OFFSET,
        reset_value: RESET_VALUE,
        s5_sleep_type: S5_SLEEP_TYPE,
        com1: (COM1_BASE, COM1_GSI),
        com2: com2.as_ref().map(|_| (COM2_BASE, COM2_GSI)),
        virtio_mmio: virtio::acpi_entries(plan),
        pvpanic_port: Some(PVPANIC_PORT),
    };
    let ports = open_ports(plan, log)?;
    let virtio = VirtioDevices::build(plan, &vm, &console)?;
    for line in virtio.describe() {
        log(&line);
    }
    if let Some(com2) = &com2 {
        log(&com2.describe(plan));
    }
    let image = GuestImage {
        kernel: &plan.kernel,
        initrd: plan.initrd.as_deref(),
        cmdline: &plan.cmdline,
        platform,
    };
    let boot = load_guest(vm.memory(), &image)?;
    log(&format!(
        "loaded {} ({:?} boot, entry {:#x}), {} MiB, {} vCPU(s)",
        plan.kernel.display(),
        boot.protocol,
        boot.entry.0,
        plan.memory_mib,
        vcpus
    ));

    if plan.lock_memory {
        match lock_all_memory() {
            Ok(()) => log(&format!(
                "memory locked: {} MiB of guest RAM faulted in, no page faults from now on",
                plan.memory_mib
            )),
            Err(e) => log(&format!(
                "warning: cannot lock the partition's memory ({e}); it may take page faults                  (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK, see docs/host-setup.md)"
            )),
        }
    }
    if !plan.windows.is_empty() {
        install_kick_signal(kick_signal()).map_err(|e| PartitionError::Vcpu(0, e))?;
    }

    let mut vcpu_list = Vec::new();
    for index in 0..vcpus {
        vcpu_list.push(vm.create_vcpu(index, vcpus, &boot)?);
    }
    let tsc_khz = vcpu_list.first().and_then(Vcpu::tsc_khz).unwrap_or(0);
    let devices = Arc::new(Devices {
        uart: Mutex::new(Uart::new(uart_irq, Box::new(console.clone()))),
        com2: com2.as_ref().map(Com2::uart),
        power: PowerController,
        pv: PvCallHandler::new(PvIdentity {
            partition_index: plan.index as u64,
            name: plan.name.clone(),
            high_criticality: plan.criticality == Criticality::High,
            tsc_khz: u64::from(tsc_khz),
        }),
        console: console.clone(),
        started,
        virtio,
        unhandled_log: RateLimitedLog::new(10, Duration::from_secs(10)),
        trace_io: std::env::var_os("BULKHEAD_TRACE_IO").is_some_and(|v| v == "1"),
        health: Arc::new(Health::new(
            &plan.name,
            plan.health.clone(),
            EventLog::from_env(),
        )),
        ports: ports.clone(),
    });

    devices.virtio.spawn_device_thread(&plan.name)?;
    if let Some(com2) = &mut com2 {
        com2.spawn_thread(&plan.name)?;
    }
    let vm = Arc::new(vm);
    if let Some(ports) = &ports {
        let vm = Arc::clone(&vm);
        // An attached doorbell vector goes to vCPU 0 (APIC ID 0).
        ports.start(
            &plan.name,
            Box::new(move |vector| {
                let _ = vm.signal_msi(0, vector);
            }),
        )?;
    }
    let (stop_tx, stop_rx) = mpsc::channel::<Result<StopReason, PartitionError>>();
    let watchdog_stop = stop_tx.clone();
    devices
        .health
        .spawn_watchdog(move |expired| {
            let _ = watchdog_stop.send(Ok(StopReason::Health(expired)));
        })
        .map_err(PartitionError::Thread)?;
    let fifo = (plan.criticality == Criticality::High).then_some(plan.rt_priority);
    let window_stats: Mutex<Vec<WindowReport>> = Mutex::default();
    std::thread::scope(|scope| -> Result<StopReason, PartitionError> {
        for mut vcpu in vcpu_list {
            let host_cpu = plan.host_cpu_for_vcpu(u32::from(vcpu.index()));
            let (devices, vm, stop_tx) = (Arc::clone(&devices), Arc::clone(&vm), stop_tx.clone());
            let window_stats = &window_stats;
            std::thread::Builder::new()
                .name(format!("vcpu{}", vcpu.index()))
                .spawn_scoped(scope, move || {
                    let index = vcpu.index();
                    let placement = place_current_thread(host_cpu, fifo);
                    log(&format!("vCPU {index} placed on {placement}"));
                    for refused in &placement.refused {
                        log(&format!("warning: vCPU {index}: {refused}"));
                    }
                    let gate = match window_gate(plan, host_cpu, epoch_ns) {
                        Some(Ok(gate)) => {
                            vcpu.enable_kicks();
                            let frame = plan
                                .windows
                                .iter()
                                .find(|w| w.cpu == host_cpu)
                                .map_or(0, |w| w.major_frame_us);
                            log(&format!(
                                "vCPU {index} runs only in its time windows on host CPU {host_cpu} (major frame {frame} µs)"
                            ));
                            window_stats
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(WindowReport {
                                    vcpu: index,
                                    cpu: host_cpu,
                                    frame_us: frame,
                                    stats: gate.stats(),
                                });
                            Some((gate, frame))
                        }
                        Some(Err(e)) => {
                            let _ = stop_tx.send(Err(PartitionError::Thread(e)));
                            return;
                        }
                        None => None,
                    };
                    let outcome = run_vcpu(vcpu, &vm, &devices, gate, host_cpu, log);
                    let _ = stop_tx.send(outcome);
                })
                .map_err(PartitionError::Thread)?;
        }
        drop(stop_tx);
        let first = stop_rx.recv().unwrap_or(Ok(StopReason::PowerOff));
        console.flush();
        // The other vCPU threads are still in the guest; the caller ends the process, which
        // stops them. Leaving the scope would wait for them, so exit from here.
        let code = match &first {
            Ok(reason) => {
                log(&format!("stopping: {reason}"));
                for line in devices.virtio.metrics_summary() {
                    log(&format!("counters: {line}"));
                }
                if let Some(com2) = &com2 {
                    log(&format!("counters: {}", com2.metrics_summary()));
                }
                for line in ports.iter().flat_map(|p| p.metrics_summary()) {
                    log(&format!("counters: {line}"));
                }
                for report in window_stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    let stats = report.stats.lock().unwrap_or_else(|e| e.into_inner());
                    log(&stats.line(report.vcpu, report.cpu, report.frame_us));
                }
                reason.exit_code()
            }
            Err(e) => {
                log(&format!("error: {}", error_chain(e)));
                1
            }
        };
        std::process::exit(code)
    })
}

/// Formats an error with its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The window statistics of one time-partitioned vCPU, for the report when the partition
/// stops.
struct WindowReport {
    vcpu: u8,
    cpu: usize,
    frame_us: u32,
    stats: Arc<Mutex<WindowStats>>,
}

/// How the partition's vCPUs idle (`idle`, `halt_poll_us`); set before any vCPU exists.
fn set_idle_policy(plan: &PartitionPlan, vm: &Vm, log: &(dyn Fn(&str) + Sync)) {
    match (plan.idle, plan.halt_poll_us) {
        (IdlePolicy::Poll, _) => match vm.set_halt_mode(HaltMode::NoExit) {
            Ok(()) => {
                log("idle poll: HLT and PAUSE run in the guest, the vCPUs never leave their CPUs")
            }
            Err(e) => {
                let fallback = vm.set_halt_mode(HaltMode::Poll {
                    ns: POLL_FALLBACK_NS,
                });
                log(&format!(
                    "warning: idle poll: {}; {}",
                    error_chain(&e),
                    match fallback {
                        Ok(()) => "KVM halt-polls up to 1 s instead".to_string(),
                        Err(e) =>
                            format!("halt-polling cannot be raised either ({})", error_chain(&e)),
                    }
                ));
            }
        },
        (IdlePolicy::Halt, Some(us)) => {
            if let Err(e) = vm.set_halt_mode(HaltMode::Poll { ns: us * 1000 }) {
                log(&format!(
                    "warning: halt_poll_us = {us} not applied: {}",
                    error_chain(&e)
                ));
            }
        }
        (IdlePolicy::Halt, None) => {}
    }
}

/// The window gate of the vCPU on `host_cpu`, if that CPU is time-partitioned for `plan`.
fn window_gate(
    plan: &PartitionPlan,
    host_cpu: usize,
    epoch_ns: u64,
) -> Option<std::io::Result<WindowGate>> {
    let windows = plan.windows.iter().find(|w| w.cpu == host_cpu)?;
    Some(WindowGate::for_current_thread(
        Schedule::new(windows, epoch_ns),
        kick_signal(),
    ))
}

fn run_vcpu(
    mut vcpu: Vcpu,
    vm: &Vm,
    devices: &Devices,
    mut gate: Option<(WindowGate, u32)>,
    host_cpu: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<StopReason, PartitionError> {
    let index = vcpu.index();
    let mut ctx = VcpuCtx {
        index,
        pv_state: PvVcpuState::default(),
        mem: vm.memory(),
    };
    let mut last_report = Instant::now();
    let stats = gate.as_ref().map(|(gate, _)| gate.stats());
    loop {
        if let (Some((gate, frame)), Some(stats)) = (gate.as_mut(), stats.as_ref()) {
            vcpu.clear_kick();
            gate.admit(|| {
                if last_report.elapsed() >= WINDOW_REPORT_EVERY {
                    last_report = Instant::now();
                    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
                    log(&stats.line(index, host_cpu, *frame));
                }
            });
        }
        let next = match vcpu.run().map_err(|e| PartitionError::Vcpu(index, e))? {
            VcpuExit::IoIn(port, data) => {
                devices.io_in(port, data);
                Next::Continue
            }
            VcpuExit::IoOut(port, data) => devices.io_out(port, data, &mut ctx),
            VcpuExit::MmioRead(addr, data) => {
                devices.mmio_read(addr, data, index);
                Next::Continue
            }
            VcpuExit::MmioWrite(addr, data) => {
                devices.mmio_write(addr, data, index);
                Next::Continue
            }
            VcpuExit::Interrupted => Next::Continue,
            VcpuExit::SystemReset => Next::Reset,
            VcpuExit::SystemPowerOff => Next::PowerOff(0),
            VcpuExit::Hlt => {
                return Ok(StopReason::GuestFault(format!(
                    "vCPU {index} halted for good"
                )))
            }
            VcpuExit::Shutdown => {
                return Ok(StopReason::GuestFault(format!("vCPU {index} triple fault")))
            }
            VcpuExit::FailEntry(reason) => {
                return Ok(StopReason::GuestFault(format!(
                    "vCPU {index} VM entry failed (reason {reason:#x})"
                )))
            }
            VcpuExit::InternalError => {
                let code = vcpu.internal_error_code();
                return Ok(StopReason::GuestFault(format!(
                    "vCPU {index} KVM internal error (suberror {code}; a triple fault on software KVM)"
                )));
            }
            VcpuExit::Other(what) => {
                return Ok(StopReason::GuestFault(format!(
                    "vCPU {index} unexpected exit {what}"
                )))
            }
        };
        match next {
            Next::Continue => {}
            Next::PowerOff(0) => return Ok(StopReason::PowerOff),
            Next::PowerOff(code) => return Ok(StopReason::PowerOffWithCode(code)),
            Next::Reset => return Ok(StopReason::Reset),
            Next::Health(stop) => return Ok(StopReason::Health(stop)),
        }
    }
}
