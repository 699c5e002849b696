//! Putting the calling thread where the system description says: on one host CPU, and for
//! high-criticality partitions under SCHED_FIFO. Reports what it actually got, so the run
//! can say so (the host may refuse real-time priority, e.g. without CAP_SYS_NICE).
#![allow(unsafe_code)]

use std::fmt;

/// The placement a vCPU thread ended up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Host CPU it is pinned to, if pinning worked.
    pub cpu: Option<usize>,
    /// SCHED_FIFO priority, if set.
    pub fifo_priority: Option<u8>,
    /// What was asked for and refused.
    pub refused: Vec<PlacementError>,
}

/// A placement the host refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// `sched_setaffinity` failed.
    #[error("cannot pin to host CPU {cpu}: {err}")]
    Pin {
        /// The CPU.
        cpu: usize,
        /// The OS error.
        err: String,
    },
    /// `sched_setscheduler(SCHED_FIFO)` failed.
    #[error("cannot set SCHED_FIFO priority {priority}: {err}")]
    Fifo {
        /// The priority.
        priority: u8,
        /// The OS error.
        err: String,
    },
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpu {
            Some(cpu) => write!(f, "host CPU {cpu}")?,
            None => write!(f, "any host CPU")?,
        }
        match self.fifo_priority {
            Some(p) => write!(f, ", SCHED_FIFO priority {p}"),
            None => write!(f, ", SCHED_OTHER"),
        }
    }
}

/// Pins the calling thread to `cpu` and, when `fifo_priority` is given, makes it SCHED_FIFO.
pub fn place_current_thread(cpu: usize, fifo_priority: Option<u8>) -> Placement {
    let mut placement = Placement {
        cpu: None,
        fifo_priority: None,
        refused: Vec::new(),
    };
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu < libc::CPU_SETSIZE as usize {
        // SAFETY: CPU_SET writes one bit inside `set`; `cpu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        placement.cpu = Some(cpu);
    } else {
        let err = std::io::Error::last_os_error().to_string();
        placement.refused.push(PlacementError::Pin { cpu, err });
    }
    if let Some(priority) = fifo_priority {
        let param = libc::sched_param {
            sched_priority: i32::from(priority),
        };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc == 0 {
            placement.fifo_priority = Some(priority);
        } else {
            let err = std::io::Error::last_os_error().to_string();
            placement
                .refused
                .push(PlacementError::Fifo { priority, err });
        }
    }
    placement
}

/// Restricts the calling thread (and the threads it starts later) to `cpus`: where the
/// housekeeping threads of a partition run. An empty list or a refusal leaves it as it was.
pub fn restrict_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: CPU_SET writes one bit inside `set`; `cpu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Restricts the calling thread (and those it starts later, which inherit both) to `cpus`
/// and, given a priority, makes it SCHED_FIFO; returns what it got, for the log.
pub fn place_threads(cpus: &[usize], fifo_priority: Option<u8>) -> String {
    let mut placed = match restrict_current_thread(cpus) {
        Ok(()) => format!("host CPUs {cpus:?}"),
        Err(e) => format!("any host CPU (cannot restrict to {cpus:?}: {e})"),
    };
    match fifo_priority {
        None => placed.push_str(", SCHED_OTHER"),
        Some(priority) => {
            let param = libc::sched_param {
                sched_priority: i32::from(priority),
            };
            // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if rc == 0 {
                placed.push_str(&format!(", SCHED_FIFO priority {priority}"));
            } else {
                let err = std::io::Error::last_os_error();
                placed.push_str(&format!(
                    ", SCHED_OTHER (SCHED_FIFO {priority} refused: {err})"
                ));
            }
        }
    }
    placed
}

/// Locks every page of this process in RAM, now and from now on (`mlockall(MCL_CURRENT |
/// MCL_FUTURE)`), faulting in what is not yet resident (guest RAM included): a
/// high-criticality partition then takes no page faults in its monitor or its guest memory.
pub fn lock_all_memory() -> std::io::Result<()> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks the kernel to SIGKILL this process when its parent (the supervisor) dies, so no
/// partition outlives the run that started it.
pub fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_cpu_zero_is_granted_and_reported() {
        let placement = std::thread::spawn(|| place_current_thread(0, None))
            .join()
            .unwrap();

        assert_eq!(placement.cpu, Some(0));
        assert_eq!(placement.to_string(), "host CPU 0, SCHED_OTHER");
    }

    #[test]
    fn pinning_to_a_missing_cpu_is_reported_as_refused() {
        let placement = std::thread::spawn(|| place_current_thread(1000, None))
            .join()
            .unwrap();

        assert_eq!(placement.cpu, None);
        assert!(matches!(
            placement.refused[0],
            PlacementError::Pin { cpu: 1000, .. }
        ));
    }
}
