//! A service thread that runs until it is asked to stop: the flag it polls
//! and the join, on `stop` or on drop. The metrics and ctl servers run on
//! one each.
//!
//! It owns only the flag's setting and the thread handle; what the thread
//! does, and how often it looks at the flag, is its owner's business.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A named thread joined when stopped or dropped.
#[derive(Debug)]
pub struct StoppableThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StoppableThread {
    /// Spawns `body` as thread `name`; `stop` is the flag `body` polls (it
    /// may hand it on to threads of its own).
    pub fn spawn(
        name: &str,
        stop: Arc<AtomicBool>,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<StoppableThread> {
        let thread = std::thread::Builder::new().name(name.into()).spawn(body)?;
        Ok(StoppableThread {
            stop,
            thread: Some(thread),
        })
    }

    /// Sets the flag and waits for the thread to end (once; later calls do
    /// nothing).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StoppableThread {
    fn drop(&mut self) {
        self.stop();
    }
}
