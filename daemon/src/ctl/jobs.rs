//! The operator's kills while they run: one [`KillJob`] per `lingerd ctl
//! kill`, shared by the session that started it, the sessions that list
//! (`jobs`) or cancel it, and every core that runs its `close_matching`.
//!
//! It owns the job records and their bound ([`MAX_JOBS`] at once): the
//! job's id (the same on every core: it is the `close_matching`'s
//! `user_data` there), what was asked, and each core's progress, which
//! the core writes with plain atomic stores and sessions read whenever
//! they like, so a kill goes on being tracked after the session that
//! started it has gone. A job is over once every core has reported its
//! end (done, cancelled, refused, or never started). It may not touch
//! engines (the cores run the jobs, [`super::core`]) nor sockets (the
//! sessions', [`super::server`]).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lingerd_abi::vocab::CloseMode;

use super::proto::FilterSpec;

/// Kills running at once; another is refused until one ends.
pub const MAX_JOBS: usize = 16;

/// How a job ended on one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CoreEnd {
    /// Still running there.
    Running = 0,
    /// Walked the whole table.
    Done = 1,
    /// Stopped by a cancel.
    Cancelled = 2,
    /// The engine refused the request (EINVAL).
    Refused = 3,
    /// The core never took it (the daemon is stopping).
    NotStarted = 4,
}

impl CoreEnd {
    fn from_u8(v: u8) -> CoreEnd {
        match v {
            1 => CoreEnd::Done,
            2 => CoreEnd::Cancelled,
            3 => CoreEnd::Refused,
            4 => CoreEnd::NotStarted,
            _ => CoreEnd::Running,
        }
    }
}

/// One core's view of a job.
#[derive(Debug, Default)]
struct CoreProgress {
    closed: AtomicU64,
    /// Table slots walked, in thousandths of the slots in use.
    walked_permille: AtomicU32,
    end: AtomicU8,
}

/// One kill: what was asked and how far each core has got.
#[derive(Debug)]
pub struct KillJob {
    /// Its id.
    pub id: u64,
    /// Which connections.
    pub filter: FilterSpec,
    /// How they close.
    pub mode: CloseMode,
    /// Closes per second in total (0 = unpaced).
    pub pace: u32,
    /// When it started.
    pub started: Instant,
    cancel: AtomicBool,
    cores: Box<[CoreProgress]>,
}

impl KillJob {
    /// Core `core` has closed `closed` so far and walked `walked_permille`
    /// thousandths of its table (ignored for an unknown core).
    pub fn report(&self, core: usize, closed: u64, walked_permille: u32) {
        if let Some(c) = self.cores.get(core) {
            c.closed.store(closed, Ordering::Relaxed);
            c.walked_permille
                .store(walked_permille.min(1000), Ordering::Relaxed);
        }
    }

    /// Core `core` has closed `closed` so far.
    pub fn report_closed(&self, core: usize, closed: u64) {
        if let Some(c) = self.cores.get(core) {
            c.closed.store(closed, Ordering::Relaxed);
        }
    }

    /// The job ended on core `core` with `closed` closes.
    pub fn finish(&self, core: usize, end: CoreEnd, closed: u64) {
        if let Some(c) = self.cores.get(core) {
            c.closed.store(closed, Ordering::Relaxed);
            if end == CoreEnd::Done {
                c.walked_permille.store(1000, Ordering::Relaxed);
            }
            // Release: whoever sees the end sees the count.
            c.end.store(end as u8, Ordering::Release);
        }
    }

    /// Asks for a cancel; returns whether one was asked for before.
    pub fn request_cancel(&self) -> bool {
        self.cancel.swap(true, Ordering::Relaxed)
    }

    /// Whether a cancel was asked for.
    pub fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Each core's end so far, by core.
    pub fn ends(&self) -> Vec<CoreEnd> {
        self.cores
            .iter()
            .map(|c| CoreEnd::from_u8(c.end.load(Ordering::Acquire)))
            .collect()
    }

    /// Each core's closes so far, by core.
    pub fn closed(&self) -> Vec<u64> {
        self.cores
            .iter()
            .map(|c| c.closed.load(Ordering::Relaxed))
            .collect()
    }

    /// The mean share of the tables walked, in percent.
    pub fn walked_percent(&self) -> u32 {
        let n = self.cores.len().max(1) as u64;
        let sum: u64 = self
            .cores
            .iter()
            .map(|c| u64::from(c.walked_permille.load(Ordering::Relaxed)))
            .sum();
        (sum / n / 10) as u32
    }

    /// Whether every core has reported its end.
    pub fn is_over(&self) -> bool {
        self.ends().iter().all(|&e| e != CoreEnd::Running)
    }
}

/// The kills of one daemon.
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<Vec<Arc<KillJob>>>,
}

impl Jobs {
    /// Registers job `id` over `cores` cores, or says why not: at most
    /// [`MAX_JOBS`] run at once (ended ones are forgotten first).
    pub fn start(
        &self,
        id: u64,
        filter: FilterSpec,
        mode: CloseMode,
        pace: u32,
        cores: usize,
    ) -> Result<Arc<KillJob>, String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|j| !j.is_over());
        if running.len() >= MAX_JOBS {
            return Err(format!(
                "{MAX_JOBS} kills are running: wait for one, or cancel one (lingerd ctl jobs)"
            ));
        }
        let job = Arc::new(KillJob {
            id,
            filter,
            mode,
            pace,
            started: Instant::now(),
            cancel: AtomicBool::new(false),
            cores: (0..cores).map(|_| CoreProgress::default()).collect(),
        });
        running.push(job.clone());
        Ok(job)
    }

    /// The running job `id`, if it has not ended.
    pub fn get(&self, id: u64) -> Option<Arc<KillJob>> {
        self.running().into_iter().find(|j| j.id == id)
    }

    /// The jobs that have not ended, oldest first.
    pub fn running(&self) -> Vec<Arc<KillJob>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|j| !j.is_over());
        running.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(jobs: &Jobs, id: u64) -> Result<Arc<KillJob>, String> {
        jobs.start(id, FilterSpec::default(), CloseMode::Abort, 0, 2)
    }

    #[test]
    fn a_job_is_over_when_every_core_has_ended_and_is_then_forgotten() {
        let jobs = Jobs::default();
        let j = start(&jobs, 7).unwrap();
        j.report(0, 5, 400);
        j.report(1, 3, 2000);
        j.report(9, 1, 1);
        assert_eq!(j.closed(), [5, 3]);
        assert_eq!(j.walked_percent(), 70, "(40% + 100%) / 2");
        assert!(!j.is_over());
        assert_eq!(jobs.get(7).map(|j| j.id), Some(7));
        assert!(!j.request_cancel());
        assert!(j.request_cancel() && j.cancel_requested());
        j.finish(0, CoreEnd::Cancelled, 6);
        assert!(!j.is_over());
        j.finish(1, CoreEnd::Done, 4);
        assert!(j.is_over());
        assert_eq!(j.ends(), [CoreEnd::Cancelled, CoreEnd::Done]);
        assert_eq!(j.closed(), [6, 4]);
        assert!(jobs.get(7).is_none());
        assert!(jobs.running().is_empty());
    }

    #[test]
    fn at_most_max_jobs_run_at_once() {
        let jobs = Jobs::default();
        let all: Vec<_> = (0..MAX_JOBS as u64)
            .map(|i| start(&jobs, i).unwrap())
            .collect();
        assert!(start(&jobs, 99).unwrap_err().contains("kills are running"));
        for core in 0..2 {
            all[3].finish(core, CoreEnd::NotStarted, 0);
        }
        assert!(start(&jobs, 99).is_ok(), "an ended job frees its place");
    }
}
