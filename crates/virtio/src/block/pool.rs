//! The I/O workers of one disk: requests run on a small pool of threads, so several are in
//! flight at once and complete in the order they finish, the way QEMU's `aio=threads` and
//! crosvm's block workers do. One device thread issuing one `preadv` at a time leaves the
//! host's other cores idle while a batch of requests waits; a pool copies a batch on every
//! core the device thread may use, and the guest gets each request back as soon as it is done.
//!
//! The device thread checks each request ([`Request::prepare`]) and [`Pool::submit`]s it; at
//! the end of the batch, [`Pool::dispatch`] hands them all to the workers under one lock and
//! wakes only as many sleeping workers as there are jobs. A worker runs a job
//! ([`Request::run`]: the host I/O, then the status byte) and queues a [`Done`]; the first
//! worker to queue one since the device thread last looked signals the pool's eventfd. That
//! eventfd is the device's backend descriptor (`VirtioDevice::backend_fd`): the device thread
//! wakes on it and returns every finished chain to the used ring ([`Pool::take_done`]), with
//! one interrupt for all of them. Under load this costs a few system calls per batch, not
//! per request.
//!
//! Workers start with the first request, from the device thread, so they inherit its CPU
//! affinity (the partition's housekeeping CPUs) and scheduling class. Each job holds a clone
//! of the guest memory, so the buffers it writes stay mapped until it is done; a driver reset
//! waits for the running jobs ([`Pool::drain`]) so that none writes into guest memory after it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::metrics::BlockMetrics;
use super::request::{Disk, Request};

/// A request handed to a worker.
#[derive(Debug)]
pub(crate) struct Job {
    /// Head index of its chain, to return it with.
    pub head: u16,
    pub request: Request,
    /// Keeps the guest buffers mapped while the job runs.
    pub mem: Arc<GuestMemoryMmap>,
}

/// A request a worker finished.
#[derive(Debug)]
pub(crate) struct Done {
    pub head: u16,
    /// The used length (data read or ID, plus the status byte).
    pub used_len: u32,
    /// What running it counted.
    pub metrics: BlockMetrics,
}

/// The workers of one disk.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// How many workers to start.
    size: usize,
    workers: Vec<JoinHandle<()>>,
    /// Submitted and not yet dispatched.
    batch: Vec<Job>,
    /// Submitted and not yet taken back with [`Pool::take_done`].
    in_flight: usize,
}

#[derive(Debug)]
struct Shared {
    disk: Arc<Disk>,
    state: Mutex<State>,
    /// A job was queued, or the pool stops.
    work: Condvar,
    /// A worker finished a job.
    finished: Condvar,
    /// Signalled after each finished job: the device thread waits on it.
    done_evt: EventFd,
}

#[derive(Debug, Default)]
struct State {
    jobs: VecDeque<Job>,
    done: Vec<Done>,
    /// Jobs a worker is running.
    running: usize,
    /// Workers waiting for a job.
    idle: usize,
    stop: bool,
}

impl Pool {
    /// A pool of `size` workers (at least one) for `disk`; none starts before the first job.
    pub fn new(disk: Arc<Disk>, size: usize) -> std::io::Result<Pool> {
        Ok(Pool {
            shared: Arc::new(Shared {
                disk,
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                finished: Condvar::new(),
                done_evt: EventFd::new(libc::EFD_NONBLOCK)?,
            }),
            size: size.max(1),
            workers: Vec::new(),
            batch: Vec::new(),
            in_flight: 0,
        })
    }

    /// The descriptor that becomes readable when jobs finish.
    pub fn done_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.shared.done_evt)
    }

    /// Jobs submitted and not yet taken back.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds `job` to the batch [`Pool::dispatch`] hands to the workers, starting the workers
    /// on the first call. Gives the job back when no worker could be started (the caller runs
    /// it itself).
    pub fn submit(&mut self, job: Job) -> Result<(), Job> {
        if self.workers.is_empty() && self.start_workers().is_err() && self.workers.is_empty() {
            return Err(job);
        }
        self.batch.push(job);
        self.in_flight += 1;
        Ok(())
    }

    /// Hands the submitted jobs to the workers, waking as many sleeping ones as there are
    /// jobs (a running worker looks for the next job before it sleeps).
    pub fn dispatch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let jobs = self.batch.len();
        let mut state = self.shared.lock();
        state.jobs.extend(self.batch.drain(..));
        let wake = jobs.min(state.idle);
        drop(state);
        for _ in 0..wake {
            self.shared.work.notify_one();
        }
    }

    fn start_workers(&mut self) -> std::io::Result<()> {
        for i in self.workers.len()..self.size {
            let shared = Arc::clone(&self.shared);
            let worker = std::thread::Builder::new()
                .name(format!("blk-io-{i}"))
                .spawn(move || shared.work_loop())?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// The jobs finished since the last call (device thread, after the eventfd fired).
    pub fn take_done(&mut self) -> Vec<Done> {
        // Clear the eventfd first: a job finishing after the lock below signals it again.
        let _ = self.shared.done_evt.read();
        let done = std::mem::take(&mut self.shared.lock().done);
        self.in_flight = self.in_flight.saturating_sub(done.len());
        done
    }

    /// Forgets the queued jobs, waits for the running ones and drops what finished: after
    /// this no worker touches guest memory until the next [`Pool::submit`] (driver reset).
    pub fn drain(&mut self) {
        self.batch.clear();
        let mut state = self.shared.lock();
        state.jobs.clear();
        while state.running > 0 {
            state = self
                .shared
                .finished
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.done.clear();
        drop(state);
        let _ = self.shared.done_evt.read();
        self.in_flight = 0;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.stop = true;
            state.jobs.clear();
        }
        self.shared.work.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work_loop(&self) {
        let mut state = self.lock();
        loop {
            if state.stop {
                return;
            }
            let Some(job) = state.jobs.pop_front() else {
                state.idle += 1;
                state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                state.idle -= 1;
                continue;
            };
            state.running += 1;
            drop(state);
            let mut metrics = BlockMetrics::default();
            let used_len = job.request.run(&self.disk, &job.mem, &mut metrics);
            state = self.lock();
            state.running -= 1;
            // The device thread empties the list when it looks: a list that was not empty
            // has been signalled already.
            let signal = state.done.is_empty();
            state.done.push(Done {
                head: job.head,
                used_len,
                metrics,
            });
            if state.running == 0 {
                self.finished.notify_all();
            }
            if signal {
                // With the lock held, so `take_done` cannot clear the eventfd in between.
                let _ = self.done_evt.write(1);
            }
        }
    }
}
