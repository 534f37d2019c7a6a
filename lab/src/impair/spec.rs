//! The impairment grammar: what `deploy/lab up --impair SPEC` accepts.
//!
//! ```text
//! spec     := section (';' section)*
//! section  := [direction ':'] effect+
//! direction:= 'to-dut' | 'to-peer' | 'both'
//! effect   := 'none'
//!           | 'loss' PERCENT | 'dup' PERCENT
//!           | 'reorder' PERCENT [GAP]
//!           | 'delay' TIME [JITTER]
//! PERCENT  := decimal '%'            (0 to 100, steps of 0.0001%)
//! TIME     := decimal ('us' | 'ms' | 's')
//! ```
//!
//! A section without a direction applies to both. `to-dut` is what the peer
//! sends towards the device under test, `to-peer` the other way. Each
//! effect may be given once per direction; `none` is a pass-through stage.
//! This module only parses and prints; it owns no state and touches no
//! socket. A bad spec is a [`SpecError`] naming the offending token.

use std::fmt;
use std::time::Duration;

/// Parts per million in one percent.
const PPM_PER_PERCENT: u64 = 10_000;
/// The longest delay (and jitter) a spec may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// The largest reorder gap: how many later frames may overtake a held one.
pub const MAX_GAP: u32 = 64;

/// What happens to the frames of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Chance that a frame is dropped, in parts per million.
    pub loss_ppm: u32,
    /// Chance that a frame is sent twice, in parts per million.
    pub dup_ppm: u32,
    /// Chance that a frame is held back until `reorder_gap` later frames
    /// have overtaken it, in parts per million.
    pub reorder_ppm: u32,
    /// How many later frames overtake a frame held back for reordering.
    pub reorder_gap: u32,
    /// Base one-way delay added to every frame.
    pub delay: Duration,
    /// Uniform jitter around `delay` (±); frames keep their order.
    pub jitter: Duration,
}

impl Effects {
    /// Whether frames pass untouched.
    pub fn is_none(&self) -> bool {
        self.loss_ppm == 0
            && self.dup_ppm == 0
            && self.reorder_ppm == 0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

/// Both directions' effects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// Frames from the peer towards the dut.
    pub to_dut: Effects,
    /// Frames from the dut towards the peer.
    pub to_peer: Effects,
}

/// A spec that cannot be parsed: the token and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad impairment spec: token '{token}': {why}")]
pub struct SpecError {
    /// The offending token (empty when the spec ended early).
    pub token: String,
    /// What was expected instead.
    pub why: String,
}

fn err(token: &str, why: impl Into<String>) -> SpecError {
    SpecError {
        token: token.to_owned(),
        why: why.into(),
    }
}

/// Parses `int[.frac]` into units of 10^-9 (so `1.5` is 1_500_000_000).
fn decimal_e9(s: &str) -> Option<u128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || int.len() > 12 {
        return None;
    }
    if s.contains('.') && frac.is_empty() {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u128 = int.parse().ok()?;
    v = v.checked_mul(1_000_000_000)?;
    let mut scale: u128 = 100_000_000;
    for b in frac.bytes() {
        v = v.checked_add(u128::from(b - b'0') * scale)?;
        scale /= 10;
    }
    Some(v)
}

fn percent(tok: &str) -> Result<u32, SpecError> {
    let num = tok
        .strip_suffix('%')
        .ok_or_else(|| err(tok, "expected a percentage such as 1% or 0.5%"))?;
    let v = decimal_e9(num).ok_or_else(|| err(tok, "expected a percentage such as 1% or 0.5%"))?;
    let scaled = v * u128::from(PPM_PER_PERCENT);
    if !scaled.is_multiple_of(1_000_000_000) {
        return Err(err(tok, "finer than the 0.0001% resolution"));
    }
    let ppm = scaled / 1_000_000_000;
    if ppm > 1_000_000 {
        return Err(err(tok, "more than 100%"));
    }
    Ok(ppm as u32)
}

fn time(tok: &str) -> Result<Duration, SpecError> {
    let bad = || err(tok, "expected a time such as 10ms, 500us or 0.5s");
    let (num, unit_ns): (&str, u128) = if let Some(n) = tok.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = tok.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = tok.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        return Err(bad());
    };
    let v = decimal_e9(num).ok_or_else(bad)?;
    let scaled = v.checked_mul(unit_ns).ok_or_else(bad)?;
    if !scaled.is_multiple_of(1_000_000_000) {
        return Err(err(tok, "finer than one nanosecond"));
    }
    let ns = u64::try_from(scaled / 1_000_000_000).map_err(|_| bad())?;
    let d = Duration::from_nanos(ns);
    if d > MAX_DELAY {
        return Err(err(tok, format!("longer than {}s", MAX_DELAY.as_secs())));
    }
    Ok(d)
}

/// Which effects a section already set, to refuse repeats.
#[derive(Default)]
struct Seen {
    loss: bool,
    dup: bool,
    reorder: bool,
    delay: bool,
}

fn once(seen: &mut bool, tok: &str, dir: &str) -> Result<(), SpecError> {
    if std::mem::replace(seen, true) {
        return Err(err(tok, format!("given twice for {dir}")));
    }
    Ok(())
}

/// Applies one section's effect tokens to `targets`.
fn section(
    tokens: &[&str],
    targets: &mut [(&mut Effects, &mut Seen, &str)],
) -> Result<(), SpecError> {
    if tokens.is_empty() {
        return Err(err(
            "",
            "empty section: expected loss, dup, reorder, delay or none",
        ));
    }
    let mut i = 0;
    let next_is_value = |i: usize| {
        tokens
            .get(i)
            .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()))
    };
    while let Some(&tok) = tokens.get(i) {
        i += 1;
        let value = |i: usize| -> Result<&str, SpecError> {
            tokens
                .get(i)
                .copied()
                .ok_or_else(|| err(tok, "needs a value after it"))
        };
        match tok {
            "none" => {}
            "loss" | "dup" => {
                let ppm = percent(value(i)?)?;
                i += 1;
                for (e, seen, dir) in targets.iter_mut() {
                    if tok == "loss" {
                        once(&mut seen.loss, tok, dir)?;
                        e.loss_ppm = ppm;
                    } else {
                        once(&mut seen.dup, tok, dir)?;
                        e.dup_ppm = ppm;
                    }
                }
            }
            "reorder" => {
                let ppm = percent(value(i)?)?;
                i += 1;
                let mut gap = 1;
                if next_is_value(i) {
                    let g = tokens[i];
                    gap = g
                        .parse::<u32>()
                        .ok()
                        .filter(|g| (1..=MAX_GAP).contains(g))
                        .ok_or_else(|| {
                            err(
                                g,
                                format!("expected a reorder gap of 1 to {MAX_GAP} frames"),
                            )
                        })?;
                    i += 1;
                }
                for (e, seen, dir) in targets.iter_mut() {
                    once(&mut seen.reorder, tok, dir)?;
                    e.reorder_ppm = ppm;
                    e.reorder_gap = gap;
                }
            }
            "delay" => {
                let delay = time(value(i)?)?;
                i += 1;
                let mut jitter = Duration::ZERO;
                if next_is_value(i) {
                    jitter = time(tokens[i])?;
                    i += 1;
                }
                for (e, seen, dir) in targets.iter_mut() {
                    once(&mut seen.delay, tok, dir)?;
                    e.delay = delay;
                    e.jitter = jitter;
                }
            }
            _ => {
                return Err(err(
                    tok,
                    "expected loss, dup, reorder, delay or none (directions: to-dut:, to-peer:, both:)",
                ));
            }
        }
    }
    Ok(())
}

impl std::str::FromStr for Spec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Spec, SpecError> {
        if s.trim().is_empty() {
            return Err(err(
                "",
                "empty spec (use \"none\" for a pass-through stage)",
            ));
        }
        let mut spec = Spec::default();
        let (mut seen_dut, mut seen_peer) = (Seen::default(), Seen::default());
        for part in s.split(';') {
            let (dir, body) = match part.split_once(':') {
                Some((d, b)) => (Some(d.trim()), b),
                None => (None, part),
            };
            let tokens: Vec<&str> = body.split_whitespace().collect();
            match dir {
                Some("to-dut") => {
                    section(&tokens, &mut [(&mut spec.to_dut, &mut seen_dut, "to-dut")])?
                }
                Some("to-peer") => section(
                    &tokens,
                    &mut [(&mut spec.to_peer, &mut seen_peer, "to-peer")],
                )?,
                None | Some("both") => section(
                    &tokens,
                    &mut [
                        (&mut spec.to_dut, &mut seen_dut, "to-dut"),
                        (&mut spec.to_peer, &mut seen_peer, "to-peer"),
                    ],
                )?,
                Some(d) => {
                    return Err(err(d, "expected a direction: to-dut, to-peer or both"));
                }
            }
        }
        Ok(spec)
    }
}

fn fmt_ppm(f: &mut fmt::Formatter<'_>, ppm: u32) -> fmt::Result {
    let whole = ppm / PPM_PER_PERCENT as u32;
    let frac = ppm % PPM_PER_PERCENT as u32;
    if frac == 0 {
        write!(f, "{whole}%")
    } else {
        let digits = format!("{frac:04}");
        write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
    }
}

fn fmt_time(f: &mut fmt::Formatter<'_>, d: Duration) -> fmt::Result {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000) {
        write!(f, "{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        write!(f, "{}us", ns / 1_000)
    } else {
        let us = ns / 1_000;
        let frac = format!("{:03}", ns % 1_000);
        write!(f, "{us}.{}us", frac.trim_end_matches('0'))
    }
}

impl fmt::Display for Effects {
    /// The canonical form, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut sep = "";
        if self.loss_ppm != 0 {
            f.write_str("loss ")?;
            fmt_ppm(f, self.loss_ppm)?;
            sep = " ";
        }
        if self.reorder_ppm != 0 {
            write!(f, "{sep}reorder ")?;
            fmt_ppm(f, self.reorder_ppm)?;
            if self.reorder_gap != 1 {
                write!(f, " {}", self.reorder_gap)?;
            }
            sep = " ";
        }
        if self.dup_ppm != 0 {
            write!(f, "{sep}dup ")?;
            fmt_ppm(f, self.dup_ppm)?;
            sep = " ";
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            write!(f, "{sep}delay ")?;
            fmt_time(f, self.delay)?;
            if !self.jitter.is_zero() {
                f.write_str(" ")?;
                fmt_time(f, self.jitter)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Spec {
    /// The canonical form: one section when both directions agree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.to_dut == self.to_peer {
            write!(f, "{}", self.to_dut)
        } else {
            write!(f, "to-dut: {}; to-peer: {}", self.to_dut, self.to_peer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Spec, SpecError> {
        s.parse()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn test_both_directions() {
        let s = parse("loss 1% reorder 5% delay 10ms 5ms dup 1%").unwrap();
        let e = Effects {
            loss_ppm: 10_000,
            dup_ppm: 10_000,
            reorder_ppm: 50_000,
            reorder_gap: 1,
            delay: ms(10),
            jitter: ms(5),
        };
        assert_eq!(s.to_dut, e);
        assert_eq!(s.to_peer, e);
    }

    #[test]
    fn test_per_direction() {
        let s = parse("to-dut: loss 1%; to-peer: delay 5ms").unwrap();
        assert_eq!(s.to_dut.loss_ppm, 10_000);
        assert!(s.to_dut.delay.is_zero());
        assert_eq!(s.to_peer.loss_ppm, 0);
        assert_eq!(s.to_peer.delay, ms(5));
        let s = parse("delay 1ms; to-peer: loss 0.5%").unwrap();
        assert_eq!(s.to_dut.delay, ms(1));
        assert_eq!(s.to_peer.delay, ms(1));
        assert_eq!(s.to_peer.loss_ppm, 5_000);
        assert_eq!(s.to_dut.loss_ppm, 0);
        let s = parse(" both: dup 2% ;to-dut:reorder 1% 4").unwrap();
        assert_eq!((s.to_dut.dup_ppm, s.to_peer.dup_ppm), (20_000, 20_000));
        assert_eq!((s.to_dut.reorder_ppm, s.to_dut.reorder_gap), (10_000, 4));
        assert_eq!(s.to_peer.reorder_ppm, 0);
    }

    #[test]
    fn test_values() {
        let s = parse("loss 0.0001% reorder 100% 3 delay 250us 0.5ms").unwrap();
        assert_eq!(s.to_dut.loss_ppm, 1);
        assert_eq!(s.to_dut.reorder_ppm, 1_000_000);
        assert_eq!(s.to_dut.reorder_gap, 3);
        assert_eq!(s.to_dut.delay, Duration::from_micros(250));
        assert_eq!(s.to_dut.jitter, Duration::from_micros(500));
        assert_eq!(parse("delay 2s").unwrap().to_peer.delay, ms(2000));
        assert!(parse("none").unwrap().to_dut.is_none());
    }

    #[test]
    fn test_errors_name_the_token() {
        let cases = [
            ("lossy 1%", "lossy"),
            ("loss 1", "1"),
            ("loss 101%", "101%"),
            ("loss 1.%", "1.%"),
            ("loss 0.00001%", "0.00001%"),
            ("loss", "loss"),
            ("delay 10", "10"),
            ("delay 11s", "11s"),
            ("delay 10ms 5", "5"),
            ("reorder 5% 0", "0"),
            ("reorder 5% 65", "65"),
            ("to-dot: loss 1%", "to-dot"),
            ("loss 1% loss 2%", "loss"),
            ("loss 1%; to-dut: loss 2%", "loss"),
            ("loss -1%", "-1%"),
            ("", ""),
            ("loss 1%;", ""),
        ];
        for (spec, token) in cases {
            let e = parse(spec).expect_err(spec);
            assert_eq!(e.token, token, "{spec}: {e}");
            assert!(e.to_string().contains(&format!("'{token}'")), "{e}");
        }
    }

    #[test]
    fn test_display_round_trips() {
        for s in [
            "none",
            "loss 1% reorder 5% dup 1% delay 10ms 5ms",
            "loss 0.25% reorder 2% 3",
            "delay 250us 1.5us",
            "to-dut: loss 1%; to-peer: delay 5ms",
            "to-dut: none; to-peer: dup 100%",
        ] {
            let spec = parse(s).unwrap();
            assert_eq!(spec.to_string(), s);
            assert_eq!(parse(&spec.to_string()).unwrap(), spec);
        }
    }
}
