//! Where the daemon's runtime lines go, and the log level (`log.level`,
//! reloadable) that filters them.
//!
//! The daemon logs through the `log` facade. [`init`] installs the logger
//! once per process: when standard error is the journal (systemd says so in
//! `JOURNAL_STREAM`), records go to journald natively, each with its
//! priority (error 3, warning 4, info 6, debug and trace 7) and the
//! identifier `lingerd`; otherwise each is one line on standard error,
//! `lingerd: LEVEL: …` (`warning` for warn). The level is the facade's
//! maximum, so a reload changes it with [`set_level`].
//!
//! It filters what the serving thread reports while running — warnings,
//! reloads (info), client attach and detach (debug) — and nothing else:
//! start-up lines and the final shutdown summary are the daemon's answer to
//! `run` and always print, and errors that end `run` always print
//! (`main`). Dataplane threads never log per packet; nothing here may be
//! called on the fast path.

use std::io::Write as _;

use lingerd_config::LogLevel;
use log::{LevelFilter, Log, Metadata, Record};

/// The facade's filter for `level`.
fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Installs the logger (journald or standard error, see the module
/// documentation) unless one is installed already, and sets `level`.
pub fn init(level: LogLevel) {
    // `Err` only means a logger is installed already (a second `start` in
    // one process): keep it.
    let _ = if systemd_journal_logger::connected_to_journal() {
        match systemd_journal_logger::JournalLog::new() {
            Ok(journal) => journal
                .with_syslog_identifier("lingerd".to_owned())
                .install(),
            Err(_) => log::set_logger(&STDERR),
        }
    } else {
        log::set_logger(&STDERR)
    };
    set_level(level);
}

/// Sets the level (start-up, then every applied reload).
pub fn set_level(level: LogLevel) {
    log::set_max_level(filter(level));
}

/// The word a line at `level` carries on standard error.
fn word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// One line per record on standard error.
struct Stderr;

static STDERR: Stderr = Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A full or closed stderr loses the line; the daemon goes on.
            let _ = writeln!(
                std::io::stderr().lock(),
                "lingerd: {}: {}",
                word(record.level()),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_the_less_severe() {
        set_level(LogLevel::Warn);
        let on = |l: log::Level| STDERR.enabled(&Metadata::builder().level(l).build());
        assert!(on(log::Level::Error) && on(log::Level::Warn));
        assert!(!on(log::Level::Info) && !on(log::Level::Debug));
        set_level(LogLevel::Debug);
        assert!(on(log::Level::Info) && on(log::Level::Debug));
        assert!(!on(log::Level::Trace));
        set_level(LogLevel::Info);
        assert_eq!(word(log::Level::Warn), "warning");
        assert_eq!(word(log::Level::Debug), "debug");
    }
}
