//! The close vocabulary (docs/close-semantics.md): a connection's [`Linger`]
//! setting and what it makes `close` do ([`CloseKind`]), a bulk close's
//! [`CloseMode`], `shutdown`'s [`Shutdown`], how a close ended
//! ([`Outcome`]), and two daemon-wide policies ([`ClientExitPolicy`],
//! [`TimeWaitRst`]).

use std::fmt;
use std::str::FromStr;

use super::{Duration, ParseError, one_of};

/// The largest linger time Winsock can express (`l_linger` is a
/// `u_short` of seconds): 65,535 s, in milliseconds.
pub const MAX_LINGER_MS: u32 = 65_535 * 1000;

/// A connection's linger setting, as `SO_LINGER` holds it; the time in
/// milliseconds (the wire's unit), at most [`MAX_LINGER_MS`].
///
/// Text form: `off`, `on,5s` (linger up to 5 s), `on,0s` (a hard close),
/// or `off,5s` (off, keeping the time `SO_DONTLINGER` FALSE brings back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linger {
    /// `l_onoff`: whether close lingers (or hard-closes when `ms == 0`).
    pub on: bool,
    /// `l_linger` in milliseconds, `0..=MAX_LINGER_MS`.
    pub ms: u32,
}

/// A linger time beyond 65,535 s was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LingerRange;

impl fmt::Display for LingerRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "beyond the longest linger, {MAX_LINGER_MS} ms (65,535 s, the most `l_linger` can express)"
        )
    }
}

impl std::error::Error for LingerRange {}

impl Linger {
    /// Linger off, time 0: a new connection's setting unless configured.
    pub const OFF: Linger = Linger { on: false, ms: 0 };

    /// A checked setting: `None` when `ms` exceeds [`MAX_LINGER_MS`].
    pub const fn new(on: bool, ms: u32) -> Option<Linger> {
        if ms > MAX_LINGER_MS {
            None
        } else {
            Some(Linger { on, ms })
        }
    }

    /// `SO_LINGER`: sets both fields. Fails (and changes nothing) when `ms`
    /// exceeds [`MAX_LINGER_MS`].
    pub fn set(&mut self, on: bool, ms: u32) -> Result<(), LingerRange> {
        *self = Linger::new(on, ms).ok_or(LingerRange)?;
        Ok(())
    }

    /// `SO_DONTLINGER`. `true` turns lingering off and keeps the time;
    /// `false` turns it on again with the time last given to [`Linger::set`]
    /// (or the configured default, which is what a new connection starts
    /// with). \[decision\] TRUE means "do not linger", as closesocket words it.
    pub fn set_dont_linger(&mut self, dont: bool) {
        self.on = !dont;
    }

    /// What `close` must do under this setting.
    pub fn close_kind(self) -> CloseKind {
        match (self.on, self.ms) {
            (false, _) => CloseKind::Background,
            (true, 0) => CloseKind::Hard,
            (true, ms) => CloseKind::Linger { ms },
        }
    }
}

impl fmt::Display for Linger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = Duration::from_millis(u64::from(self.ms));
        match (self.on, self.ms) {
            (false, 0) => f.write_str("off"),
            (false, _) => write!(f, "off,{time}"),
            (true, _) => write!(f, "on,{time}"),
        }
    }
}

impl FromStr for Linger {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Linger, ParseError> {
        let (on, time) = match s.split_once(',') {
            Some(("on", t)) => (true, t),
            Some(("off", t)) => (false, t),
            None if s == "off" => return Ok(Linger::OFF),
            None if s == "on" => {
                return Err(ParseError::new(
                    "linger `on` needs a time: on,5s (on,0s is a hard close)",
                ));
            }
            _ => {
                return Err(ParseError::new(format!(
                    "{s:?} is not a linger setting: off, on,DURATION (on,5s) or off,DURATION"
                )));
            }
        };
        let d: Duration = time.parse()?;
        d.as_millis_u32()
            .and_then(|ms| Linger::new(on, ms))
            .ok_or_else(|| ParseError::new(format!("linger {d} is {LingerRange}")))
    }
}

/// The three rows of the linger matrix (docs/close-semantics.md#linger-matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// Linger off: returns at once, graceful close in the background bounded
    /// by the orphan timeout.
    Background,
    /// Linger on with time 0: abortive close (RST).
    Hard,
    /// Linger on with a time: graceful close bounded by `ms`, RST on expiry.
    Linger {
        /// The deadline, counted from the close call.
        ms: u32,
    },
}

/// How a bulk close (`close_matching`, `lingerd ctl kill`) closes what it
/// finds. Text form: `abort`, `graceful`, `linger=5s`, `deadline=5s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Background graceful close (FIN), bounded by the orphan timeout.
    Graceful,
    /// Hard close (RST).
    Abort,
    /// Graceful, as `SO_LINGER {on, ms}`: an RST only if data or the FIN
    /// is still unacknowledged when `ms` expire. A connection whose FIN was
    /// acknowledged in time is left to the orphan timeout.
    Linger {
        /// The deadline from the moment each connection is closed, at most
        /// [`MAX_LINGER_MS`].
        ms: u32,
    },
    /// A hard bound: FIN first, and an RST at `ms` for every matched
    /// connection not yet gone both ways (FIN-WAIT-2 included).
    Deadline {
        /// The deadline from the moment each connection is closed, at most
        /// [`MAX_LINGER_MS`].
        ms: u32,
    },
}

impl fmt::Display for CloseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CloseMode::Graceful => f.write_str("graceful"),
            CloseMode::Abort => f.write_str("abort"),
            CloseMode::Linger { ms } => {
                write!(f, "linger={}", Duration::from_millis(u64::from(ms)))
            }
            CloseMode::Deadline { ms } => {
                write!(f, "deadline={}", Duration::from_millis(u64::from(ms)))
            }
        }
    }
}

impl FromStr for CloseMode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<CloseMode, ParseError> {
        match s {
            "abort" => Ok(CloseMode::Abort),
            "graceful" => Ok(CloseMode::Graceful),
            _ => {
                let (word, time, mode): (_, _, fn(u32) -> CloseMode) =
                    if let Some(t) = s.strip_prefix("linger=") {
                        ("linger", t, |ms| CloseMode::Linger { ms })
                    } else if let Some(t) = s.strip_prefix("deadline=") {
                        ("deadline", t, |ms| CloseMode::Deadline { ms })
                    } else {
                        return Err(ParseError::new(format!(
                            "unknown mode {s:?}: abort, graceful, linger=DURATION or \
                             deadline=DURATION (e.g. linger=5s)"
                        )));
                    };
                let d: Duration = time.parse()?;
                d.as_millis_u32()
                    .filter(|&ms| ms <= MAX_LINGER_MS)
                    .map(mode)
                    .ok_or_else(|| ParseError::new(format!("{word} {d} is {LingerRange}")))
            }
        }
    }
}

/// `shutdown`'s `how`, with Winsock's numbers (`SD_RECEIVE` 0, `SD_SEND`
/// 1, `SD_BOTH` 2), which are also the ring's. Text form: `receive`,
/// `send`, `both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Shutdown {
    /// `SD_RECEIVE`.
    Receive = 0,
    /// `SD_SEND`.
    Send = 1,
    /// `SD_BOTH`.
    Both = 2,
}

impl Shutdown {
    /// Every value, in numeric order.
    pub const ALL: [Shutdown; 3] = [Shutdown::Receive, Shutdown::Send, Shutdown::Both];

    /// Decodes a raw `how`; `None` for anything but 0, 1 and 2.
    pub fn from_code(how: u16) -> Option<Shutdown> {
        Shutdown::ALL.into_iter().find(|s| *s as u16 == how)
    }

    /// Whether the receive side closes.
    pub fn receive(self) -> bool {
        matches!(self, Shutdown::Receive | Shutdown::Both)
    }

    /// Whether the send side closes (a FIN).
    pub fn send(self) -> bool {
        matches!(self, Shutdown::Send | Shutdown::Both)
    }
}

const SHUTDOWN_NAMES: [&str; 3] = ["receive", "send", "both"];

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SHUTDOWN_NAMES[*self as usize])
    }
}

impl FromStr for Shutdown {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Shutdown, ParseError> {
        one_of(s, &SHUTDOWN_NAMES, &Shutdown::ALL)
    }
}

/// How a close ended (docs/close-semantics.md#outcomes), with the
/// ring's stable numbers. Text form: snake case (`aborted_linger`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// The peer acknowledged all data and our FIN.
    Graceful = 1,
    /// The close returned at once; the graceful close goes on in the
    /// background (linger off, or a non-blocking close after shutdown).
    Background = 2,
    /// The linger deadline expired; RST sent.
    AbortedLinger = 3,
    /// A hard close was asked for (or forced by unread data).
    Aborted = 4,
    /// The peer reset the connection first.
    ResetByPeer = 5,
}

impl Outcome {
    /// Every outcome, in numeric order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Graceful,
        Outcome::Background,
        Outcome::AbortedLinger,
        Outcome::Aborted,
        Outcome::ResetByPeer,
    ];

    /// Decodes a ring code; `None` for an unknown one.
    pub fn from_code(b: u8) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| *o as u8 == b)
    }
}

const OUTCOME_NAMES: [&str; 5] = [
    "graceful",
    "background",
    "aborted_linger",
    "aborted",
    "reset_by_peer",
];

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OUTCOME_NAMES[*self as usize - 1])
    }
}

impl FromStr for Outcome {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Outcome, ParseError> {
        one_of(s, &OUTCOME_NAMES, &Outcome::ALL)
    }
}

/// What happens to a client's connections when it goes away (and to every
/// connection when the daemon stops). Text form: `linger`, `graceful`,
/// `abort`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientExitPolicy {
    /// Each connection's own linger setting, as an OS does at process exit.
    #[default]
    Linger,
    /// Background graceful close for all.
    Graceful,
    /// Hard close (RST) for all.
    Abort,
}

const EXIT_NAMES: [&str; 3] = ["linger", "graceful", "abort"];
const EXIT_VALUES: [ClientExitPolicy; 3] = [
    ClientExitPolicy::Linger,
    ClientExitPolicy::Graceful,
    ClientExitPolicy::Abort,
];

impl fmt::Display for ClientExitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXIT_NAMES[*self as usize])
    }
}

impl FromStr for ClientExitPolicy {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<ClientExitPolicy, ParseError> {
        one_of(s, &EXIT_NAMES, &EXIT_VALUES)
    }
}

/// What an RST received in TIME-WAIT does. Text form: `close`, `ignore`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeWaitRst {
    /// RFC 9293 §3.10.7.4: the RST ends TIME-WAIT at once.
    #[default]
    Close,
    /// RFC 1337: ignore it and keep waiting.
    Ignore,
}

const TW_NAMES: [&str; 2] = ["close", "ignore"];
const TW_VALUES: [TimeWaitRst; 2] = [TimeWaitRst::Close, TimeWaitRst::Ignore];

impl fmt::Display for TimeWaitRst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TW_NAMES[*self as usize])
    }
}

impl FromStr for TimeWaitRst {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<TimeWaitRst, ParseError> {
        one_of(s, &TW_NAMES, &TW_VALUES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dont_linger_keeps_and_reinstates_the_time() {
        let mut l = Linger::default();
        l.set(true, 5_000).unwrap();
        l.set_dont_linger(true);
        assert_eq!(
            l,
            Linger {
                on: false,
                ms: 5_000
            }
        );
        assert_eq!(l.close_kind(), CloseKind::Background);
        l.set_dont_linger(false);
        assert_eq!(l.close_kind(), CloseKind::Linger { ms: 5_000 });
    }

    #[test]
    fn the_matrix_rows() {
        let mut l = Linger::default();
        assert_eq!(l.close_kind(), CloseKind::Background);
        l.set(true, 0).unwrap();
        assert_eq!(l.close_kind(), CloseKind::Hard);
        l.set(false, 0).unwrap();
        assert_eq!(l.close_kind(), CloseKind::Background);
    }

    #[test]
    fn out_of_range_changes_nothing() {
        let mut l = Linger { on: true, ms: 7 };
        assert_eq!(l.set(false, MAX_LINGER_MS + 1), Err(LingerRange));
        assert_eq!(l, Linger { on: true, ms: 7 });
        assert!(l.set(true, MAX_LINGER_MS).is_ok());
    }

    #[test]
    fn linger_text() {
        for (s, l) in [
            ("off", Linger::OFF),
            (
                "off,5s",
                Linger {
                    on: false,
                    ms: 5000,
                },
            ),
            ("on,0s", Linger { on: true, ms: 0 }),
            ("on,250ms", Linger { on: true, ms: 250 }),
            (
                "on,65535s",
                Linger {
                    on: true,
                    ms: MAX_LINGER_MS,
                },
            ),
        ] {
            assert_eq!(s.parse::<Linger>(), Ok(l), "{s}");
            assert_eq!(l.to_string(), s);
        }
        let msg = |s: &str| s.parse::<Linger>().unwrap_err().to_string();
        assert!(msg("on").contains("needs a time"));
        assert!(msg("on,65536s").contains("longest linger"));
        assert!(msg("on,99999999999m").contains("longest linger"));
        assert!(msg("on,5").contains("give a unit"));
        assert!(msg("yes,5s").contains("not a linger setting"));
        assert!(msg("").contains("not a linger setting"));
    }

    #[test]
    fn close_mode_text() {
        for (s, m) in [
            ("abort", CloseMode::Abort),
            ("graceful", CloseMode::Graceful),
            ("linger=5s", CloseMode::Linger { ms: 5000 }),
            ("linger=250ms", CloseMode::Linger { ms: 250 }),
            ("linger=0s", CloseMode::Linger { ms: 0 }),
            ("deadline=2s", CloseMode::Deadline { ms: 2000 }),
            ("deadline=1500ms", CloseMode::Deadline { ms: 1500 }),
        ] {
            assert_eq!(s.parse::<CloseMode>(), Ok(m), "{s}");
            assert_eq!(m.to_string(), s);
        }
        let msg = |s: &str| s.parse::<CloseMode>().unwrap_err().to_string();
        assert!(msg("rst").contains("unknown mode"));
        assert!(msg("linger=5").contains("give a unit"));
        assert!(msg("linger=70000s").contains("longest"));
        assert!(msg("deadline=70000s").contains("deadline 70000s"));
        assert!(msg("deadline=5").contains("give a unit"));
        assert!(msg("linger=99999999999999999999m").contains("too long"));
    }

    #[test]
    fn enum_texts_round_trip_and_name_the_choices() {
        for s in Shutdown::ALL {
            assert_eq!(s.to_string().parse::<Shutdown>(), Ok(s));
            assert_eq!(Shutdown::from_code(s as u16), Some(s));
        }
        assert_eq!(Shutdown::from_code(3), None);
        assert_eq!(Shutdown::from_code(256 + 1), None);
        assert!(Shutdown::Both.send() && Shutdown::Both.receive());
        assert!(!Shutdown::Receive.send() && !Shutdown::Send.receive());
        for o in Outcome::ALL {
            assert_eq!(o.to_string().parse::<Outcome>(), Ok(o));
            assert_eq!(Outcome::from_code(o as u8), Some(o));
        }
        assert_eq!(Outcome::from_code(0), None);
        for p in EXIT_VALUES {
            assert_eq!(p.to_string().parse::<ClientExitPolicy>(), Ok(p));
        }
        for t in TW_VALUES {
            assert_eq!(t.to_string().parse::<TimeWaitRst>(), Ok(t));
        }
        assert_eq!(
            "rst".parse::<ClientExitPolicy>().unwrap_err().to_string(),
            "unknown variant `rst`, expected one of linger, graceful, abort"
        );
        assert_eq!(ClientExitPolicy::default(), ClientExitPolicy::Linger);
        assert_eq!(TimeWaitRst::default(), TimeWaitRst::Close);
    }
}
