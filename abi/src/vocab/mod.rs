//! The words every lingerd crate shares: how a close may go ([`Linger`],
//! [`CloseMode`], [`Shutdown`], [`Outcome`], [`ClientExitPolicy`],
//! [`TimeWaitRst`]), how long ([`Duration`]) and where ([`Prefix`],
//! [`MacAddr`]); and the default TCP settings ([`tcp_defaults`]).
//!
//! Each type is declared here once, with one text form: `FromStr` and
//! `Display` round-trip, and the same text is what the YAML, the command
//! lines and (with the `serde` feature) JSON carry. Parsing treats its
//! input as hostile: checked arithmetic, bounded lengths, an error that
//! says what was expected, never a panic. This module does no I/O and knows
//! nothing of rings or the engine; the entry codec maps these values onto
//! bytes.

mod close;
mod duration;
mod net;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod tcp_defaults;

use std::fmt;

pub use close::{
    ClientExitPolicy, CloseKind, CloseMode, Linger, LingerRange, MAX_LINGER_MS, Outcome, Shutdown,
    TimeWaitRst,
};
pub use duration::Duration;
pub use net::{MacAddr, Prefix};

/// Why a string is not the value it should spell; the message says what
/// was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl ParseError {
    pub(crate) fn new(msg: impl Into<String>) -> ParseError {
        ParseError(msg.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses one of `names` into the value at the same index, with the error
/// serde's derive would give (`unknown variant `x`, expected one of a, b`).
pub(crate) fn one_of<T: Copy>(s: &str, names: &[&str], values: &[T]) -> Result<T, ParseError> {
    names
        .iter()
        .position(|n| *n == s)
        .and_then(|i| values.get(i).copied())
        .ok_or_else(|| {
            ParseError::new(format!(
                "unknown variant `{s}`, expected one of {}",
                names.join(", ")
            ))
        })
}
