//! The daemon's log level (`log.level`, reloadable) and the one way its
//! runtime lines reach standard error.
//!
//! It owns the process-wide level and the line format `lingerd: LEVEL: …`
//! (`warning` for warn). It filters what the control thread reports while
//! running — warnings, reloads (info), client attach and detach (debug) —
//! and nothing else: start-up lines and the final shutdown summary are the
//! daemon's answer to `run` and always print, and errors that end `run`
//! always print (`main`). Dataplane threads never log per packet; nothing
//! here may be called on the fast path.

use std::sync::atomic::{AtomicU8, Ordering};

use lingerd_config::LogLevel;

/// The level in force (a `LogLevel` as `u8`; more verbose is larger).
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// Sets the level (start-up, then every applied reload).
pub(crate) fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines at `level` print now.
pub(crate) fn enabled(level: LogLevel) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// The word a line at `level` carries.
pub(crate) fn word(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Warn => "warning",
        other => other.as_str(),
    }
}

/// Prints `lingerd: LEVEL: <message>` to standard error when `level` is
/// enabled.
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {{
        let level = ::lingerd_config::LogLevel::$level;
        if $crate::log::enabled(level) {
            eprintln!("lingerd: {}: {}", $crate::log::word(level), format_args!($($arg)*));
        }
    }};
}
pub(crate) use log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_the_less_severe() {
        set_level(LogLevel::Warn);
        assert!(enabled(LogLevel::Error) && enabled(LogLevel::Warn));
        assert!(!enabled(LogLevel::Info) && !enabled(LogLevel::Debug));
        set_level(LogLevel::Debug);
        assert!(enabled(LogLevel::Info) && enabled(LogLevel::Debug));
        assert!(!enabled(LogLevel::Trace));
        set_level(LogLevel::Info);
        assert_eq!(word(LogLevel::Warn), "warning");
        assert_eq!(word(LogLevel::Debug), "debug");
    }
}
