//! The `lingerd ctl` protocol, version 2: one JSON document per
//! `SOCK_SEQPACKET` message, a request from `lingerd ctl`, then replies
//! from the daemon until the last one.
//!
//! | request `op` | replies |
//! |---|---|
//! | `{"conns": {"filter": F}}` | `rows` (≤ [`ROWS_PER_MESSAGE`] each) …, then `end` |
//! | `{"kill": {"filter": F, "mode": M, "pace": N}}` | `started` (the job id), `progress` …, then `killed` |
//! | `"jobs"` | `jobs` (the kills running) |
//! | `{"cancel": {"job": ID}}` | `cancelled` |
//! | `"stats"` | `stats` |
//! | `{"capture": C}` | `capture_started`, then binary batches …, then `captured` |
//!
//! Version 2 added the job id (`started`, `killed.job`), `jobs` and
//! `cancel`. A kill runs on until it is done or cancelled, whether or not
//! the session that started it stays.
//!
//! Any request may be answered by one `error` instead. A request is
//! `{"v": 2, "op": …}`; every reply is `{"v": 2, "body": {"type": …}}`.
//! A daemon answers a request of another version with an `error` naming
//! the version it speaks. A capture's packets are the one exception to
//! JSON: each is a message in the batch format of
//! `lingerd_dataplane::capture::batch` (it starts with `LDCP`, never with
//! `{`), sent as the core wrote it.
//!
//! This module owns the message types, their limits and validation, and the
//! parsers of the pieces a person types that are lingerd's own (state
//! names, a prefix that may be a bare address), so that the command line
//! and the daemon accept exactly the same things. Close modes, prefixes and
//! durations are `lingerd_abi::vocab` types with the one text form the YAML
//! and the other command lines also use (`linger=5s`). It does no I/O.
//! Everything decoded here came from a socket: sizes are bounded by the
//! caller's buffer, every value is checked before it becomes an engine
//! [`Filter`] or [`CloseMode`], and nothing panics.

use std::net::IpAddr;

use lingerd_abi::vocab::{CloseMode, Prefix};
use lingerd_dataplane::capture::bpf::{self, Insn, Program};
use lingerd_dataplane::capture::tap::MAX_SNAPLEN;
use lingerd_dataplane::engine::api::{ADMIN_CLIENT, ConnInfo, Filter};
use lingerd_dataplane::tcp::State;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 2;
/// The largest request the daemon reads; a longer one is refused. A
/// capture's filter program of the most instructions allowed
/// (`bpf::MAX_INSNS`, at most 28 bytes each in JSON) fits.
pub const MAX_REQUEST: usize = 128 * 1024;
/// The largest reply message (the client's receive buffer).
pub const MAX_REPLY: usize = 128 * 1024;
/// Connections per `rows` message (each well under 512 bytes encoded, so a
/// message stays far below [`MAX_REPLY`]).
pub const ROWS_PER_MESSAGE: usize = 128;
/// The most state names one filter may list.
const MAX_STATES: usize = 32;

/// A request from `lingerd ctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version ([`VERSION`]).
    pub v: u32,
    /// What to do.
    pub op: Op,
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// List the connections matching `filter`.
    Conns {
        /// Which connections.
        filter: FilterSpec,
    },
    /// Close the connections matching `filter` (`close_matching` as the
    /// operator: every owner's).
    Kill {
        /// Which connections; an empty filter is refused (say
        /// `--state all` to mean everything).
        filter: FilterSpec,
        /// How: `abort`, `graceful`, `linger=DURATION` or `deadline=DURATION` (its text form,
        /// refused beyond the longest linger).
        mode: CloseMode,
        /// Closes per second in total, split evenly across queues (each
        /// queue gets `pace / queues`, rounded up); 0 = unpaced.
        pace: u32,
    },
    /// The kills running: their progress and rate.
    Jobs,
    /// Stop a running kill on every queue: what it closed stays closed,
    /// what it has not reached stays open.
    Cancel {
        /// The kill's job id (`started`, `jobs`).
        job: u64,
    },
    /// The per-queue figures `/metrics` has.
    Stats,
    /// Copy the frames the dataplane receives and sends (`lingerd ctl
    /// capture`).
    Capture(CaptureSpec),
}

/// What a capture asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureSpec {
    /// The NIC queues to capture on; empty: every queue.
    pub queues: Vec<u32>,
    /// The filter as classic BPF, one `[code, jt, jf, k]` per instruction
    /// (what `pcap_compile` makes of an expression, on the `lingerd ctl`
    /// side); empty: every frame.
    pub program: Vec<(u16, u8, u8, u32)>,
    /// Bytes kept of each frame; 0: the most (`tap::MAX_SNAPLEN`).
    pub snaplen: u32,
    /// Stop after this many packets; 0: no limit.
    pub count: u64,
    /// Stop after this many milliseconds; 0: no limit.
    pub duration_ms: u64,
}

impl CaptureSpec {
    /// The checked filter (`None`: every frame), or why it is refused.
    pub fn filter(&self) -> Result<Option<Program>, String> {
        if self.program.is_empty() {
            return Ok(None);
        }
        if self.program.len() > bpf::MAX_INSNS {
            return Err(format!(
                "the filter program has {} instructions, more than {}",
                self.program.len(),
                bpf::MAX_INSNS
            ));
        }
        let insns: Vec<Insn> = self
            .program
            .iter()
            .map(|&(code, jt, jf, k)| Insn { code, jt, jf, k })
            .collect();
        Program::new(&insns)
            .map(Some)
            .map_err(|e| format!("the filter program is refused: {e}"))
    }

    /// The snap length the cores use.
    pub fn snaplen(&self) -> u32 {
        match self.snaplen {
            0 => MAX_SNAPLEN,
            n => n.min(MAX_SNAPLEN),
        }
    }
}

/// One queue's figures at the end of a capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCapture {
    /// The NIC queue.
    pub queue: u32,
    /// Frames its core offered the filter (received and sent).
    pub seen: u64,
    /// Frames the filter accepted.
    pub matched: u64,
    /// Accepted frames whose copy was dropped because the capture's
    /// buffers were full (the frames themselves went on).
    pub dropped: u64,
    /// Packets of this queue sent to `lingerd ctl`.
    pub written: u64,
}

/// A filter as it travels: the engine's [`Filter`] with addresses and
/// states spelled out. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// State names ([`parse_states`]); empty = any state.
    pub states: Vec<String>,
    /// Our address within this prefix (`198.18.0.0/24`, or one address).
    pub local: Option<String>,
    /// The peer's address within this prefix.
    pub remote: Option<String>,
    /// Our port.
    pub local_port: Option<u16>,
    /// The peer's port.
    pub remote_port: Option<u16>,
    /// Idle (no segment in or out) for at least this many milliseconds.
    pub min_idle_ms: u32,
}

impl FilterSpec {
    /// Whether no field is set (it matches everything).
    pub fn is_empty(&self) -> bool {
        *self == FilterSpec::default()
    }

    /// The engine filter, or why this one is not acceptable.
    pub fn to_filter(&self) -> Result<Filter, String> {
        if self.states.len() > MAX_STATES {
            return Err(format!("at most {MAX_STATES} state names"));
        }
        let mut states = 0u16;
        for s in &self.states {
            states |= parse_states(s)?;
        }
        let prefix = |p: &Option<String>| p.as_deref().map(parse_prefix).transpose();
        Ok(Filter {
            local: prefix(&self.local)?,
            remote: prefix(&self.remote)?,
            local_port: self.local_port,
            remote_port: self.remote_port,
            states,
            min_idle_ms: self.min_idle_ms,
        })
    }
}

/// A reply message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version ([`VERSION`]).
    pub v: u32,
    /// What it says.
    pub body: Body,
}

impl Reply {
    /// A reply of this version.
    pub fn new(body: Body) -> Reply {
        Reply { v: VERSION, body }
    }
}

/// What a reply says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Body {
    /// Some of the connections a `conns` request matched.
    Rows {
        /// The connections.
        rows: Vec<Row>,
    },
    /// `conns` is done: every queue walked its table once.
    End {
        /// Connections listed in all.
        count: u64,
    },
    /// A kill started on every queue as this job.
    Started {
        /// Its id: the same on every queue, for `jobs` and `cancel`.
        job: u64,
    },
    /// A kill is running: closes so far, all queues.
    Progress {
        /// Closes so far.
        closed: u64,
    },
    /// A kill ended on every queue: done, or cancelled.
    Killed {
        /// Its job id.
        job: u64,
        /// Closes in all.
        closed: u64,
        /// Per queue: `[queue, closes]`.
        per_queue: Vec<(u32, u64)>,
        /// Queues whose engine refused the request, and why.
        errors: Vec<String>,
        /// It was cancelled before it had walked every table.
        cancelled: bool,
    },
    /// The kills running.
    Jobs {
        /// One row per job, oldest first.
        jobs: Vec<JobRow>,
    },
    /// A kill was cancelled on every queue.
    Cancelled {
        /// Its job id.
        job: u64,
        /// What it had closed, in all (those stay closed).
        closed: u64,
        /// Per queue: `[queue, closes]`.
        per_queue: Vec<(u32, u64)>,
    },
    /// The latest figures each queue published (every 100 ms).
    Stats {
        /// The queue of each column.
        queues: Vec<u32>,
        /// One row per figure, one value per queue.
        metrics: Vec<Metric>,
    },
    /// A capture runs on these queues; binary batches follow.
    CaptureStarted {
        /// The NIC queues, in the order of the file's interfaces.
        queues: Vec<u32>,
        /// The snap length in force.
        snaplen: u32,
    },
    /// The capture ended (its count, its duration, `lingerd ctl` asked,
    /// or the daemon stopping): every batch was sent before this.
    Captured {
        /// Packets sent in all.
        written: u64,
        /// Per queue, in the order of [`Body::CaptureStarted`].
        per_queue: Vec<QueueCapture>,
        /// Why it ended.
        reason: String,
    },
    /// The request failed; nothing (more) was done.
    Error {
        /// What is wrong, for a person.
        message: String,
    },
}

/// One running kill as `lingerd ctl jobs` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    /// Its id.
    pub job: u64,
    /// Which connections.
    pub filter: FilterSpec,
    /// How they close.
    pub mode: CloseMode,
    /// Closes per second asked for in total; 0 = unpaced.
    pub pace: u32,
    /// Milliseconds since it started.
    pub elapsed_ms: u64,
    /// Closes so far, all queues.
    pub closed: u64,
    /// Per queue: `[queue, closes]`.
    pub per_queue: Vec<(u32, u64)>,
    /// How much of the tables it has walked, in percent (the mean over
    /// queues; tables change meanwhile, so an estimate).
    pub walked_percent: u32,
    /// Closes per second since it started.
    pub rate_per_s: f64,
    /// A cancel was asked for and not every queue has confirmed it yet.
    pub cancelling: bool,
}

impl FilterSpec {
    /// The filter as `lingerd ctl` flags (`--state established --dport 80`).
    pub fn to_flags(&self) -> String {
        let mut out = Vec::new();
        for s in &self.states {
            out.push(format!("--state {s}"));
        }
        if let Some(p) = &self.local {
            out.push(format!("--src {p}"));
        }
        if let Some(p) = &self.remote {
            out.push(format!("--dst {p}"));
        }
        if let Some(p) = self.local_port {
            out.push(format!("--sport {p}"));
        }
        if let Some(p) = self.remote_port {
            out.push(format!("--dport {p}"));
        }
        if self.min_idle_ms != 0 {
            out.push(format!("--idle {}ms", self.min_idle_ms));
        }
        out.join(" ")
    }
}

/// One figure of `stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// Its name (the `/metrics` name without `lingerd_` and `_total`).
    pub name: String,
    /// One value per queue, in [`Body::Stats::queues`] order.
    pub values: Vec<u64>,
}

/// One connection as `lingerd ctl conns` shows it (and `--json` prints it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The NIC queue whose core owns it.
    pub queue: u32,
    /// Its handle, `0x` and 16 hex digits (core:8 | slot:32 | generation:24).
    pub handle: String,
    /// The state, as `ss` names it (`ESTAB`, `TIME-WAIT`, …).
    pub state: String,
    /// Our address and port, as `ss` writes them (`198.18.0.1:80`,
    /// `[2001:db8::1]:80`).
    pub local: String,
    /// The peer's address and port (`0.0.0.0:0` for a listener).
    pub remote: String,
    /// The owning client's id; 65535 is the daemon itself (its `listen:`
    /// ports).
    pub owner: u16,
    /// Closed by its owner, finishing in the background.
    pub orphan: bool,
    /// Milliseconds since the last segment in or out.
    pub idle_ms: u64,
    /// Bytes queued to send, not yet acknowledged.
    pub send_q: u32,
    /// Bytes received, not yet consumed by the owner.
    pub recv_q: u32,
    /// `SO_LINGER`: on.
    pub linger_on: bool,
    /// `SO_LINGER`: time, ms.
    pub linger_ms: u32,
    /// The lifetime timer (linger, orphan, TIME-WAIT, SYN-RECEIVED):
    /// `[kind, ms left]`, kind one of `linger`, `timewait`, `synrecv`,
    /// `orphan`, `close`.
    pub close_timer: Option<(String, u64)>,
    /// Milliseconds until the retransmission / persist timer fires.
    pub rtx_in_ms: Option<u64>,
}

impl Row {
    /// The row of `c`, a connection of queue `queue`.
    pub fn from_info(queue: u32, c: &ConnInfo) -> Row {
        let kind = if c.lingering {
            "linger"
        } else if c.state == State::TimeWait {
            "timewait"
        } else if c.state == State::SynReceived {
            "synrecv"
        } else if c.orphan {
            "orphan"
        } else {
            "close"
        };
        let t = &c.tuple;
        Row {
            queue,
            handle: format!("{:#018x}", c.handle.raw()),
            state: c.state.name().to_owned(),
            local: endpoint(t.local_addr, t.local_port),
            remote: endpoint(t.remote_addr, t.remote_port),
            owner: c.owner.0,
            orphan: c.orphan,
            idle_ms: c.idle_ms,
            send_q: c.send_queue,
            recv_q: c.recv_queue,
            linger_on: c.linger.on,
            linger_ms: c.linger.ms,
            close_timer: c.close_in_ms.map(|ms| (kind.to_owned(), ms)),
            rtx_in_ms: c.rtx_in_ms,
        }
    }

    /// The owner for a person: `daemon` or `client N`.
    pub fn owner_name(&self) -> String {
        if self.owner == ADMIN_CLIENT.0 {
            "daemon".to_owned()
        } else {
            format!("client {}", self.owner)
        }
    }
}

/// Just the version of a message, read before the rest so that another
/// version gets a clear answer rather than a parse error.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Decodes a request: its version first, then the rest.
pub fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    decode(bytes, "request", |v| {
        format!("ctl protocol version {v} is not supported: this daemon speaks version {VERSION}")
    })
}

/// Decodes a reply (in `lingerd ctl`): its version first, then the rest.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    decode(bytes, "reply", |v| {
        format!(
            "the daemon speaks ctl protocol version {v}, this lingerd version {VERSION}: \
             use the lingerd binary of the running daemon"
        )
    })
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    other_version: impl FnOnce(u32) -> String,
) -> Result<T, String> {
    let v: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| format!("not a ctl {what}: {e}"))?;
    if v.v != VERSION {
        return Err(other_version(v.v));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("malformed ctl {what}: {e}"))
}

/// Encodes any message (our own types: never fails in practice; an error
/// becomes an empty document the peer rejects).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

/// An address and port as `ss` writes them: `198.18.0.1:80`,
/// `[2001:db8::1]:80`. Takes the engine's address type, whichever family
/// it holds.
pub fn endpoint(addr: impl Into<IpAddr>, port: u16) -> String {
    std::net::SocketAddr::new(addr.into(), port).to_string()
}

/// A prefix, IPv4 or IPv6 (`198.18.0.0/24`, `2001:db8::/32`: [`Prefix`]'s
/// text form), or one address (`198.18.0.3`, `2001:db8::1`, or bracketed
/// as `ss` prints it, `[2001:db8::1]`: a host prefix). The host bits may be
/// set (`198.18.0.7/24` means `198.18.0.0/24`), as `ss` allows.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) if bare.len() != s.len() => Err(format!(
            "{s:?}: only an IPv6 address is written in brackets"
        )),
        Ok(addr) => Ok(Prefix::host(addr)),
        Err(_) if s.contains('/') => s.parse::<Prefix>().map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{s:?} is not an IPv4 or IPv6 address or prefix (e.g. 198.18.0.0/24, 2001:db8::/32)"
        )),
    }
}

/// The engine's state bits for one name as `ss` spells it, any case
/// (`established`, `syn-sent`, `syn-recv`, `fin-wait-1`, `fin-wait-2`,
/// `time-wait`, `closed`, `close-wait`, `last-ack`, `listening`,
/// `closing`), or one of `ss`'s groups: `all`, `connected` (all but
/// listening and closed), `synchronized` (connected but syn-sent),
/// `bucket` (syn-recv, time-wait), `big` (all but bucket).
pub fn parse_states(name: &str) -> Result<u16, String> {
    let all = State::ALL.iter().fold(0u16, |m, s| m | s.bit());
    let connected = all & !(State::Listen.bit() | State::Closed.bit());
    let bucket = State::SynReceived.bit() | State::TimeWait.bit();
    let one = |s: State| Ok(s.bit());
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "established" | "estab" => one(State::Established),
        "syn-sent" => one(State::SynSent),
        "syn-recv" | "syn-received" => one(State::SynReceived),
        "fin-wait-1" => one(State::FinWait1),
        "fin-wait-2" => one(State::FinWait2),
        "time-wait" => one(State::TimeWait),
        "closed" => one(State::Closed),
        "close-wait" => one(State::CloseWait),
        "last-ack" => one(State::LastAck),
        "listening" | "listen" => one(State::Listen),
        "closing" => one(State::Closing),
        "all" => Ok(all),
        "connected" => Ok(connected),
        "synchronized" => Ok(connected & !State::SynSent.bit()),
        "bucket" => Ok(bucket),
        "big" => Ok(all & !bucket),
        _ => Err(format!(
            "unknown state {name:?}: one of established, syn-sent, syn-recv, fin-wait-1, \
             fin-wait-2, time-wait, closed, close-wait, last-ack, listening, closing, \
             or a group: all, connected, synchronized, bucket, big"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use lingerd_abi::vocab::Duration;

    use super::*;

    #[test]
    fn prefixes() {
        let p = parse_prefix("198.18.0.0/24").unwrap();
        assert_eq!(
            (p.addr(), p.prefix_len()),
            (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 24)
        );
        assert_eq!(parse_prefix("198.18.0.3").unwrap().prefix_len(), 32);
        assert!(
            parse_prefix("198.18.0.0/33")
                .unwrap_err()
                .contains("0..=32")
        );
        assert!(parse_prefix("198.18.0/24").is_err());
        assert!(parse_prefix("198.18.0.0/").is_err());
        // IPv6: a prefix, a bare address, an address as `ss` prints it.
        let p = parse_prefix("2001:db8::/32").unwrap();
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert!(p.contains("2001:db8:1::9".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
        assert!(!p.contains("198.18.0.1".parse().unwrap()));
        assert_eq!(parse_prefix("2001:db8::1").unwrap().prefix_len(), 128);
        assert_eq!(
            parse_prefix("[2001:db8::1]").unwrap(),
            parse_prefix("2001:db8::1").unwrap()
        );
        assert!(
            parse_prefix("2001:db8::/129")
                .unwrap_err()
                .contains("0..=128")
        );
        assert!(
            parse_prefix("[198.18.0.1]")
                .unwrap_err()
                .contains("brackets")
        );
        assert!(parse_prefix("[2001:db8::1").is_err());
        assert!(parse_prefix("2001:db8::zz").unwrap_err().contains("IPv6"));
    }

    #[test]
    fn endpoints_print_as_ss_prints_them() {
        assert_eq!(endpoint(Ipv4Addr::new(198, 18, 0, 1), 80), "198.18.0.1:80");
        assert_eq!(
            endpoint("2001:db8::1".parse::<IpAddr>().unwrap(), 80),
            "[2001:db8::1]:80"
        );
        assert_eq!(endpoint(Ipv4Addr::UNSPECIFIED, 0), "0.0.0.0:0");
    }

    #[test]
    fn states_and_groups() {
        assert_eq!(parse_states("ESTAB").unwrap(), State::Established.bit());
        assert_eq!(parse_states("time_wait").unwrap(), State::TimeWait.bit());
        let connected = parse_states("connected").unwrap();
        assert_eq!(connected & State::Listen.bit(), 0);
        assert_ne!(connected & State::SynSent.bit(), 0);
        assert_eq!(
            parse_states("synchronized").unwrap() & State::SynSent.bit(),
            0
        );
        assert!(
            parse_states("estabished")
                .unwrap_err()
                .contains("unknown state")
        );
    }

    /// The grammar is `lingerd_abi::vocab`'s; these are the cases `ctl`
    /// relies on.
    #[test]
    fn modes_and_durations() {
        let parse_mode = |s: &str| s.parse::<CloseMode>().map_err(|e| e.to_string());
        let parse_duration_ms = |s: &str| s.parse::<Duration>().map(Duration::as_millis);
        assert_eq!(parse_mode("abort"), Ok(CloseMode::Abort));
        assert_eq!(parse_mode("linger=5s"), Ok(CloseMode::Linger { ms: 5000 }));
        assert_eq!(
            parse_mode("linger=250ms"),
            Ok(CloseMode::Linger { ms: 250 })
        );
        assert!(parse_mode("linger=5").unwrap_err().contains("give a unit"));
        assert!(parse_mode("linger=99999999s").is_err());
        assert!(parse_mode("linger=70000s").unwrap_err().contains("longest"));
        assert!(parse_mode("rst").unwrap_err().contains("unknown mode"));
        assert!(parse_duration_ms("5h").is_err());
        assert!(parse_duration_ms("").is_err());
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
    }

    #[test]
    fn requests_round_trip_and_hostile_ones_are_refused() {
        let r = Request {
            v: VERSION,
            op: Op::Kill {
                filter: FilterSpec {
                    local: Some("198.18.0.0/24".into()),
                    remote_port: Some(80),
                    ..FilterSpec::default()
                },
                mode: CloseMode::Linger { ms: 5000 },
                pace: 1000,
            },
        };
        assert_eq!(decode_request(&encode(&r)), Ok(r));
        let stats = br#"{"v":2,"op":"stats"}"#;
        assert_eq!(
            decode_request(br#"{"v":2,"op":"jobs"}"#).unwrap().op,
            Op::Jobs
        );
        assert_eq!(
            decode_request(br#"{"v":2,"op":{"cancel":{"job":7}}}"#)
                .unwrap()
                .op,
            Op::Cancel { job: 7 }
        );
        for bad in [
            &br#"{"v":2,"op":{"cancel":{"job":-1}}}"#[..],
            br#"{"v":2,"op":{"cancel":{"job":"7"}}}"#,
            br#"{"v":2,"op":{"cancel":{}}}"#,
            br#"{"v":2,"op":{"cancel":{"job":18446744073709551616}}}"#,
            br#"{"v":1,"op":"jobs"}"#,
        ] {
            assert!(
                decode_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_request(stats).unwrap().op, Op::Stats);
        assert!(
            decode_request(br#"{"v":3,"op":"stats"}"#)
                .unwrap_err()
                .contains("speaks version 2")
        );
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"v":1}"#,
            br#"{"v":2,"op":"drop_tables"}"#,
            br#"{"v":2,"op":"stats","extra":1}"#,
            br#"{"v":2,"op":{"conns":{"filter":{"local_port":70000}}}}"#,
            br#"{"v":-1,"op":"stats"}"#,
        ] {
            assert!(
                decode_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Deep nesting stops at serde_json's recursion limit, no overflow.
        let deep = format!(r#"{{"v":2,"op":{}}}"#, "[".repeat(10_000));
        assert!(decode_request(deep.as_bytes()).is_err());
        // Validation beyond the shape.
        let f = FilterSpec {
            states: vec!["nope".into()],
            ..FilterSpec::default()
        };
        assert!(f.to_filter().is_err());
        let f = FilterSpec {
            states: vec!["listen".into(); 33],
            ..FilterSpec::default()
        };
        assert!(f.to_filter().is_err());
        let long = br#"{"v":2,"op":{"kill":{"filter":{"local_port":1},"mode":"linger=4294967295ms","pace":0}}}"#;
        assert!(decode_request(long).unwrap_err().contains("longest"));
        assert!(
            decode_request(
                br#"{"v":2,"op":{"kill":{"filter":{"local_port":1},"mode":"linger=5s","pace":0}}}"#
            )
            .is_ok()
        );
        let f = FilterSpec {
            local: Some("2001:db8::/32".into()),
            remote: Some("[2001:2::9]".into()),
            ..FilterSpec::default()
        };
        let filter = f.to_filter().unwrap();
        assert_eq!(filter.local, Some("2001:db8::/32".parse().unwrap()));
        assert_eq!(filter.remote, Some("2001:2::9/128".parse().unwrap()));
        assert_eq!(f.to_flags(), "--src 2001:db8::/32 --dst [2001:2::9]");
    }

    #[test]
    fn capture_requests_are_checked_before_any_core_sees_them() {
        let r = Request {
            v: VERSION,
            op: Op::Capture(CaptureSpec {
                queues: vec![0],
                program: vec![(0x06, 0, 0, 65535)],
                snaplen: 0,
                count: 10,
                duration_ms: 0,
            }),
        };
        let bytes = encode(&r);
        assert_eq!(decode_request(&bytes), Ok(r.clone()));
        let Op::Capture(spec) = r.op else {
            unreachable!()
        };
        assert!(spec.filter().unwrap().is_some());
        assert_eq!(spec.snaplen(), MAX_SNAPLEN);
        assert_eq!(CaptureSpec::default().filter(), Ok(None));
        // Out-of-range fields fail to decode; bad programs fail to check.
        for bad in [
            &br#"{"v":1,"op":{"capture":{"program":[[65536,0,0,0]]}}}"#[..],
            br#"{"v":1,"op":{"capture":{"program":[[6,256,0,0]]}}}"#,
            br#"{"v":1,"op":{"capture":{"program":[[6,0,0]]}}}"#,
            br#"{"v":1,"op":{"capture":{"snaplen":-1}}}"#,
            br#"{"v":1,"op":{"capture":{"bpf":[]}}}"#,
        ] {
            assert!(
                decode_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for (program, why) in [
            (vec![(0x00, 0, 0, 1)], "return"),
            (vec![(0x15, 9, 0, 1), (0x06, 0, 0, 1)], "jump"),
            (vec![(0xff, 0, 0, 0), (0x06, 0, 0, 1)], "opcode"),
            (vec![(0x06, 0, 0, 1); bpf::MAX_INSNS + 1], "more than"),
        ] {
            let spec = CaptureSpec {
                program,
                ..CaptureSpec::default()
            };
            assert!(spec.filter().unwrap_err().contains(why), "{why}");
        }
        // The largest program fits a request.
        let spec = CaptureSpec {
            program: vec![(0xffff, 255, 255, u32::MAX); bpf::MAX_INSNS],
            ..CaptureSpec::default()
        };
        let big = encode(&Request {
            v: VERSION,
            op: Op::Capture(spec),
        });
        assert!(big.len() <= MAX_REQUEST, "{}", big.len());
    }
}
