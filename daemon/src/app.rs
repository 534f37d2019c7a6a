//! The daemon's own connections on one core: the `listen:` ports, served
//! as a discard service.
//!
//! The daemon opens the `listen:` ports itself, as the admin client, beside
//! whatever attached clients do over their rings. On those ports it behaves
//! as a discard service (RFC 863): it accepts, consumes what arrives so
//! windows stay open, closes when the peer closes or resets, and holds the
//! connections until shutdown, when `close.on_client_exit` applies to them
//! as to a client that went away.
//!
//! It owns the bookkeeping of the daemon's own connections (which are
//! open, which closes are pending); protocol decisions stay in the engine.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ADMIN_CLIENT, ClientExitPolicy, Completion, Detail, Request};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::linger::Linger;

/// The daemon's application on one queue.
#[derive(Debug)]
pub(crate) struct App {
    index: u8,
    user_data: u64,
    listeners: Vec<Handle>,
    listen_requests: Vec<(u64, u16)>,
    conns: HashSet<Handle>,
    pending_closes: usize,
    /// `user_data` of each close or abort not yet completed.
    closing: HashMap<u64, Handle>,
    inbox: Vec<Completion>,
}

impl App {
    /// The app of queue `index`.
    pub(crate) fn new(index: u8) -> App {
        App {
            index,
            user_data: 0,
            listeners: Vec::new(),
            listen_requests: Vec::new(),
            conns: HashSet::new(),
            pending_closes: 0,
            closing: HashMap::new(),
            inbox: Vec::new(),
        }
    }

    fn req(&mut self, engine: &mut QueueEngine, now: Instant, r: Request) -> u64 {
        self.user_data += 1;
        engine.handle_request(now, ADMIN_CLIENT, self.user_data, r);
        self.user_data
    }

    /// Opens the configured listeners.
    pub(crate) fn listen(&mut self, engine: &mut QueueEngine, now: Instant, ports: &[(u16, u32)]) {
        for &(port, backlog) in ports {
            let ud = self.req(engine, now, Request::Listen { port, backlog });
            self.listen_requests.push((ud, port));
        }
    }

    /// Keeps a completion for the next [`App::step`].
    pub(crate) fn on_completion(&mut self, c: Completion) {
        self.inbox.push(c);
    }

    /// Connections held.
    pub(crate) fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Close requests not yet completed.
    pub(crate) fn pending_closes(&self) -> usize {
        self.pending_closes
    }

    /// Handles the completions kept since the last call; called once per
    /// loop iteration.
    pub(crate) fn step(&mut self, engine: &mut QueueEngine, now: Instant) {
        for c in std::mem::take(&mut self.inbox) {
            self.completion(engine, now, c);
        }
    }

    fn completion(&mut self, engine: &mut QueueEngine, now: Instant, c: Completion) {
        if !c.is_event
            && let Some(i) = self.listen_requests.iter().position(|r| r.0 == c.user_data)
        {
            let (_, port) = self.listen_requests.swap_remove(i);
            if c.result == Errno::Ok {
                self.listeners.push(c.handle);
            } else {
                eprintln!(
                    "lingerd: queue {}: listen on port {port} failed: {:?}",
                    self.index, c.result
                );
            }
            return;
        }
        if !c.is_event
            && let Some(handle) = self.closing.remove(&c.user_data)
            && c.result != Errno::Ok
        {
            // The handle died before our close reached it (`lingerd ctl
            // kill` closed it and told us with a reset): nothing to wait for.
            self.pending_closes = self.pending_closes.saturating_sub(1);
            self.conns.remove(&handle);
            return;
        }
        match c.detail {
            Detail::Accepted { .. } => {
                self.conns.insert(c.handle);
            }
            Detail::Data(data) => {
                // Discarded, but consumed: the window stays open.
                let len = data.len() as u32;
                self.req(
                    engine,
                    now,
                    Request::RecvDone {
                        handle: c.handle,
                        len,
                    },
                );
            }
            // The handle stays until its owner closes it.
            Detail::PeerClosed | Detail::Reset => self.close(engine, now, c.handle),
            Detail::Closed(_) => {
                self.pending_closes = self.pending_closes.saturating_sub(1);
                self.conns.remove(&c.handle);
            }
            _ => {}
        }
    }

    fn close(&mut self, engine: &mut QueueEngine, now: Instant, handle: Handle) {
        if self.conns.contains(&handle) {
            self.pending_closes += 1;
            let ud = self.req(
                engine,
                now,
                Request::Close {
                    handle,
                    nonblocking: false,
                },
            );
            self.closing.insert(ud, handle);
        }
    }

    fn handles(&self) -> Vec<Handle> {
        let mut v: Vec<Handle> = self.conns.iter().copied().collect();
        v.sort_unstable_by_key(|h| h.raw());
        v
    }

    /// Shutdown: stop accepting (close the listeners) and apply `policy`
    /// to every connection held.
    pub(crate) fn shutdown(
        &mut self,
        engine: &mut QueueEngine,
        now: Instant,
        policy: ClientExitPolicy,
    ) {
        for handle in std::mem::take(&mut self.listeners) {
            self.req(
                engine,
                now,
                Request::Close {
                    handle,
                    nonblocking: true,
                },
            );
        }
        for handle in self.handles() {
            match policy {
                ClientExitPolicy::Abort => {
                    self.pending_closes += 1;
                    self.req(engine, now, Request::Abort { handle });
                }
                ClientExitPolicy::Graceful => {
                    let linger = Linger { on: false, ms: 0 };
                    self.req(engine, now, Request::SetLinger { handle, linger });
                    self.close(engine, now, handle);
                }
                ClientExitPolicy::Linger => self.close(engine, now, handle),
            }
        }
    }
}
