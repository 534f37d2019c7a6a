//! What the configuration's user-side tests share: parsing a file made of
//! a test's required lines and its own, and finding a problem in the
//! rendered errors. It owns no expectations of its own.
#![allow(dead_code)]

use lingerd_config::{Config, ConfigError};

/// `base` then `extra`, parsed as the file `name`; panics with the errors
/// when refused.
pub(crate) fn parse_ok(base: &str, name: &str, extra: &str) -> Config {
    Config::parse(&format!("{base}{extra}"), name).unwrap_or_else(|e| panic!("{e}"))
}

/// `base` then `extra`, parsed as the file `name`, which must be refused.
pub(crate) fn parse_err(base: &str, name: &str, extra: &str) -> ConfigError {
    match Config::parse(&format!("{base}{extra}"), name) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

/// Some problem (not necessarily the first) says `needle` at `line:col`.
#[track_caller]
pub(crate) fn assert_has(e: &ConfigError, line: u64, col: u64, needle: &str) {
    let text = e.to_string();
    let here = format!("error: line {line} column {col}: ");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&here) && l.contains(needle)),
        "no `{needle}` at {line}:{col} in:\n{text}"
    );
}
