//! What the daemon does with its own connections until client rings exist,
//! and the test-only control path.
//!
//! The daemon opens the `listen:` ports itself, as the admin client. With
//! no client attached it behaves as a discard service (RFC 863): it accepts,
//! consumes what arrives so windows stay open, closes when the peer closes,
//! and holds the connections until shutdown, when `close.on_client_exit`
//! applies to them as to a client that went away.
//!
//! **Test only** (`lingerd run --test-app`, hidden from `--help`): the
//! daemon echoes what it receives and obeys one-line commands read from
//! its standard input, applied to every connection of every queue, and
//! answers on standard output with lines starting `@`. This is the
//! "test-only control path" the issue allows until the shared-memory rings
//! land; system tests drive lingerd with it. Commands:
//!
//! | command | effect |
//! |---|---|
//! | `echo on` / `echo off` | echo and consume data, or hold it unread |
//! | `send N` | queue N bytes on each connection |
//! | `close` | `Close` (blocking semantics: the connection's linger) |
//! | `linger MS` | `SetLinger{on, MS}` then `Close` |
//! | `abort` | `Abort`; then `@abort-done q=Q n=N us=T` once every RST is back from the completion ring |
//! | `shutdown send\|receive\|both` | `Shutdown` |
//! | `connect A.B.C.D:P` | active open; `@connected q=Q port=P` or `@connect-failed` |
//! | `count` | `@count q=Q conns=N established=E bytes_in=B resets=R closed=C` |
//!
//! It owns the per-connection bookkeeping of the daemon's own connections;
//! protocol decisions stay in the engine.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{
    ADMIN_CLIENT, ClientExitPolicy, CloseOutcome, Completion, Detail, Request,
};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::linger::Linger;

/// A test-control command (see the module table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Echo (and consume) or hold data.
    Echo(bool),
    /// Queue this many bytes on each connection.
    Send(usize),
    /// Close every connection.
    Close,
    /// Linger this long, then close.
    Linger(u32),
    /// Abort every connection.
    Abort,
    /// Shutdown with this `how`.
    Shutdown(lingerd_abi::Shutdown),
    /// Active open.
    Connect(SocketAddrV4),
    /// Report counts.
    Count,
}

impl Command {
    /// Parses one line; `Err` names what is wrong.
    pub(crate) fn parse(line: &str) -> Result<Command, String> {
        let mut w = line.split_whitespace();
        let cmd = w.next().unwrap_or("");
        let arg = w.next();
        let num = |a: Option<&str>| {
            a.and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| format!("{cmd}: needs a number"))
        };
        Ok(match (cmd, arg) {
            ("echo", Some("on")) => Command::Echo(true),
            ("echo", Some("off")) => Command::Echo(false),
            ("send", a) => Command::Send(num(a)? as usize),
            ("close", None) => Command::Close,
            ("linger", a) => Command::Linger(num(a)?.min(u64::from(u32::MAX)) as u32),
            ("abort", None) => Command::Abort,
            ("shutdown", Some("receive")) => Command::Shutdown(lingerd_abi::Shutdown::Receive),
            ("shutdown", Some("send")) => Command::Shutdown(lingerd_abi::Shutdown::Send),
            ("shutdown", Some("both")) => Command::Shutdown(lingerd_abi::Shutdown::Both),
            ("connect", Some(a)) => {
                Command::Connect(a.parse().map_err(|e| format!("connect {a}: {e}"))?)
            }
            ("count", None) => Command::Count,
            _ => return Err(format!("unknown command {line:?}")),
        })
    }
}

/// One of the daemon's own connections.
#[derive(Clone, Copy, Debug, Default)]
struct Conn {
    /// Handshake finished.
    established: bool,
    /// Bytes still to queue (`send N` beyond the send buffer).
    to_send: usize,
}

/// Most bytes queued per `Send` request.
const CHUNK: usize = 16 * 1024;

/// The daemon's application on one queue.
#[derive(Debug)]
pub(crate) struct App {
    index: u8,
    test: bool,
    echo: bool,
    user_data: u64,
    listeners: Vec<Handle>,
    listen_requests: Vec<(u64, u16)>,
    conns: HashMap<Handle, Conn>,
    /// Connections with bytes of a `send N` still to queue.
    sending: Vec<Handle>,
    connects: HashMap<u64, SocketAddrV4>,
    bytes_in: u64,
    resets: u64,
    closed: u64,
    pending_closes: usize,
    /// `user_data` of each close or abort not yet completed.
    closing: HashMap<u64, Handle>,
    abort_started: Option<(Instant, usize)>,
    inbox: Vec<Completion>,
}

impl App {
    /// The app of queue `index`; `test` enables echo and the control path.
    pub(crate) fn new(index: u8, test: bool) -> App {
        App {
            index,
            test,
            echo: test,
            user_data: 0,
            listeners: Vec::new(),
            listen_requests: Vec::new(),
            conns: HashMap::new(),
            sending: Vec::new(),
            connects: HashMap::new(),
            bytes_in: 0,
            resets: 0,
            closed: 0,
            pending_closes: 0,
            closing: HashMap::new(),
            abort_started: None,
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

    fn say(&self, line: std::fmt::Arguments<'_>) {
        if self.test {
            println!("@{line} q={}", self.index);
        }
    }

    /// Handles completions, commands and pending sends; called once per
    /// loop iteration.
    pub(crate) fn step(
        &mut self,
        engine: &mut QueueEngine,
        now: Instant,
        tx_in_flight: usize,
        commands: impl Iterator<Item = Command>,
    ) {
        for c in std::mem::take(&mut self.inbox) {
            self.completion(engine, now, c);
        }
        for cmd in commands {
            self.command(engine, now, cmd);
        }
        if !self.sending.is_empty() {
            for h in std::mem::take(&mut self.sending) {
                self.push_data(engine, now, h);
            }
        }
        // Done when every RST left the engine and came back from the
        // port's completion ring (copy mode: the kernel sent it).
        if let Some((t0, n)) = self.abort_started
            && engine.tx_backlog() == 0
            && tx_in_flight == 0
        {
            self.abort_started = None;
            let us = now.saturating_duration_since(t0).as_micros();
            self.say(format_args!("abort-done n={n} us={us}"));
        }
    }

    fn push_data(&mut self, engine: &mut QueueEngine, now: Instant, handle: Handle) {
        while let Some(conn) = self.conns.get(&handle).copied()
            && conn.to_send > 0
        {
            let len = conn.to_send.min(CHUNK);
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ud = self.req(engine, now, Request::Send { handle, data });
            // Completes at once: OK, or ENOBUFS when the buffer is full.
            let ok = self.take_result(engine, ud) == Some(Errno::Ok);
            if !ok {
                break;
            }
            if let Some(c) = self.conns.get_mut(&handle) {
                c.to_send -= len;
            }
        }
        if self.conns.get(&handle).is_some_and(|c| c.to_send > 0) {
            self.sending.push(handle);
        }
    }

    /// Pulls completions now (a `Send` completes within the request) and
    /// returns the result of `user_data`'s; the rest is kept for `step`.
    fn take_result(&mut self, engine: &mut QueueEngine, user_data: u64) -> Option<Errno> {
        let mut found = None;
        while let Some(c) = engine.poll_completion() {
            if !c.is_event && c.user_data == user_data {
                found = Some(c.result);
            } else {
                self.inbox.push(c);
            }
        }
        found
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
                self.conns.insert(
                    c.handle,
                    Conn {
                        established: true,
                        ..Conn::default()
                    },
                );
            }
            Detail::Connecting => {
                self.conns.insert(c.handle, Conn::default());
            }
            Detail::Connected { local_port } => {
                if let Some(conn) = self.conns.get_mut(&c.handle) {
                    conn.established = true;
                }
                self.connects.remove(&c.user_data);
                self.say(format_args!("connected port={local_port}"));
            }
            Detail::Data(data) => {
                let len = data.len();
                self.bytes_in += len as u64;
                if self.echo {
                    self.req(
                        engine,
                        now,
                        Request::Send {
                            handle: c.handle,
                            data,
                        },
                    );
                }
                if self.echo || !self.test {
                    self.req(
                        engine,
                        now,
                        Request::RecvDone {
                            handle: c.handle,
                            len: len as u32,
                        },
                    );
                }
            }
            Detail::PeerClosed => {
                self.say(format_args!("peer-closed"));
                if !self.test {
                    self.close(engine, now, c.handle);
                }
            }
            Detail::Reset => {
                self.resets += 1;
                if self.test && self.resets <= 8 {
                    self.say(format_args!("reset err={:?}", c.result));
                }
                // The handle stays until its owner closes it.
                self.close(engine, now, c.handle);
            }
            Detail::Closed(outcome) => {
                self.pending_closes = self.pending_closes.saturating_sub(1);
                self.conns.remove(&c.handle);
                self.closed += 1;
                if self.test && outcome != CloseOutcome::Aborted {
                    self.say(format_args!("closed outcome={outcome:?}"));
                }
            }
            Detail::None if !c.is_event && c.result != Errno::Ok => {
                if let Some(remote) = self.connects.remove(&c.user_data) {
                    self.conns.remove(&c.handle);
                    self.say(format_args!(
                        "connect-failed to={remote} err={:?}",
                        c.result
                    ));
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, engine: &mut QueueEngine, now: Instant, handle: Handle) {
        if self.conns.contains_key(&handle) {
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
        let mut v: Vec<Handle> = self.conns.keys().copied().collect();
        v.sort_unstable_by_key(|h| h.raw());
        v
    }

    fn command(&mut self, engine: &mut QueueEngine, now: Instant, cmd: Command) {
        match cmd {
            Command::Echo(on) => self.echo = on,
            Command::Send(n) => {
                for h in self.handles() {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.to_send += n;
                    }
                    self.push_data(engine, now, h);
                }
            }
            Command::Close => {
                for h in self.handles() {
                    self.close(engine, now, h);
                }
            }
            Command::Linger(ms) => {
                for handle in self.handles() {
                    let linger = Linger { on: true, ms };
                    self.req(engine, now, Request::SetLinger { handle, linger });
                    self.close(engine, now, handle);
                }
            }
            Command::Abort => {
                // Announced a few ahead, as a ring-reading shell would.
                const AHEAD: usize = 8;
                let hs = self.handles();
                self.abort_started = Some((now, hs.len()));
                for (i, &handle) in hs.iter().enumerate() {
                    if let Some(&next) = hs.get(i + AHEAD) {
                        engine.prefetch_request(&Request::Abort { handle: next });
                    }
                    self.pending_closes += 1;
                    let ud = self.req(engine, now, Request::Abort { handle });
                    self.closing.insert(ud, handle);
                }
            }
            Command::Shutdown(how) => {
                for handle in self.handles() {
                    self.req(engine, now, Request::Shutdown { handle, how });
                }
            }
            Command::Connect(remote) => {
                let ud = self.req(
                    engine,
                    now,
                    Request::Connect {
                        remote,
                        local_port: None,
                    },
                );
                self.connects.insert(ud, remote);
            }
            Command::Count => {
                let est = self.conns.values().filter(|c| c.established).count();
                self.say(format_args!(
                    "count conns={} established={est} bytes_in={} resets={} closed={} table={}",
                    self.conns.len(),
                    self.bytes_in,
                    self.resets,
                    self.closed,
                    engine.connection_count()
                ));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(Command::parse("echo off"), Ok(Command::Echo(false)));
        assert_eq!(Command::parse("send 100"), Ok(Command::Send(100)));
        assert_eq!(Command::parse("close"), Ok(Command::Close));
        assert_eq!(Command::parse("linger 2000"), Ok(Command::Linger(2000)));
        assert_eq!(Command::parse("abort"), Ok(Command::Abort));
        assert_eq!(
            Command::parse("shutdown send"),
            Ok(Command::Shutdown(lingerd_abi::Shutdown::Send))
        );
        assert_eq!(
            Command::parse("shutdown both"),
            Ok(Command::Shutdown(lingerd_abi::Shutdown::Both))
        );
        assert_eq!(
            Command::parse("connect 198.18.0.2:8080"),
            Ok(Command::Connect("198.18.0.2:8080".parse().unwrap()))
        );
        assert_eq!(Command::parse("count"), Ok(Command::Count));
        assert!(Command::parse("send").is_err());
        assert!(Command::parse("frob").is_err());
        assert!(Command::parse("connect nowhere").is_err());
    }
}
