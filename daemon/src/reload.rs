//! SIGHUP: re-read the configuration file and decide what the running
//! daemon does with it.
//!
//! [`check`] loads the file and applies the config crate's reload rule
//! (`Config::reload_from`): a file that does not load, or that changes a
//! restart-only field, leaves the running configuration in force, whole —
//! nothing is ever half applied. Otherwise every changed field is
//! reloadable and [`Decision::Apply`] carries the new configuration; the
//! caller (`run`) hands it to its [`Target`]s. [`Decision::report`] is the
//! log line for each outcome: the loader's own error text for a bad file
//! (file, line and column, as `check-config` prints it), each changed field
//! with "needs restart" or where it was applied.
//!
//! It owns the decision, the text and the table of where each reloadable
//! field takes effect ([`target`]); it performs no I/O beyond reading the
//! file and touches neither cores nor sockets.

use std::fmt::Write as _;
use std::path::Path;

use lingerd_config::{Apply, Config, ConfigError, ReloadError};

/// Where a reloadable field takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every core's engine (`QueueEngine::retune`): timers armed and
    /// connections opened afterwards.
    Cores,
    /// The exit rule: clients that go away afterwards, and shutdown.
    ExitPolicy,
    /// The attach socket: attaches afterwards (attached clients stay).
    Attach,
    /// The daemon's log level.
    Log,
    /// Every core's RST pacing share (`QueueEngine::retune`): the next
    /// RST to leave, those already waiting included.
    RstPacing,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::Cores => "applied to every core (new timers and connections)".to_owned(),
            Target::ExitPolicy => "applied (clients leaving from now on, and shutdown)".to_owned(),
            Target::Attach => "applied (attaches from now on)".to_owned(),
            Target::Log => "applied".to_owned(),
            Target::RstPacing => {
                "applied to every core (its share; the next RST to leave, waiting ones included)"
                    .to_owned()
            }
        }
    }
}

/// Where the reloadable field `name` takes effect (`None`: not reloadable).
pub(crate) fn target(name: &str) -> Option<Target> {
    Some(match name {
        "tcp.time_wait"
        | "tcp.orphan_timeout"
        | "tcp.syn_received_timeout"
        | "tcp.syn_retries"
        | "tcp.max_retransmits"
        | "tcp.rto_min"
        | "tcp.rto_max"
        | "tcp.rto_initial"
        | "tcp.delayed_ack"
        | "tcp.time_wait_rst"
        | "tcp.challenge_acks_per_s"
        | "close.default_linger" => Target::Cores,
        "close.on_client_exit" => Target::ExitPolicy,
        "close.max_rst_per_sec" => Target::RstPacing,
        "clients.allow_uids" => Target::Attach,
        "log.level" => Target::Log,
        _ => return None,
    })
}

/// What to do with the file a SIGHUP asked for.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The file does not load: the running configuration stays.
    Invalid(ConfigError),
    /// It changes restart-only fields: the running configuration stays.
    Refused {
        /// Every changed field, in file order.
        changed: Vec<(&'static str, Apply)>,
        /// The config crate's verdict.
        error: ReloadError,
    },
    /// Nothing changed.
    Unchanged,
    /// Only reloadable fields changed: apply `config`.
    Apply {
        /// The new configuration.
        config: Box<Config>,
        /// The changed fields, in file order.
        changed: Vec<&'static str>,
    },
}

/// Loads `path` and decides against the `running` configuration.
pub(crate) fn check(running: &Config, path: &Path) -> Decision {
    match Config::load(path) {
        Err(e) => Decision::Invalid(e),
        Ok(new) => decide(running, new),
    }
}

/// The reload rule for an already loaded `new` file.
pub(crate) fn decide(running: &Config, new: Config) -> Decision {
    let changed = running.changed_fields(&new);
    if changed.is_empty() {
        return Decision::Unchanged;
    }
    match running.reload_from(new) {
        Err(error) => Decision::Refused { changed, error },
        Ok(config) => Decision::Apply {
            config: Box::new(config),
            changed: changed.into_iter().map(|(name, _)| name).collect(),
        },
    }
}

impl Decision {
    /// Whether the running configuration stays (nothing to apply).
    pub(crate) fn keeps_running(&self) -> bool {
        !matches!(self, Decision::Apply { .. })
    }

    /// The log text: the first line says what happened, the following
    /// ones (indented) name each changed field or show where the file is
    /// wrong.
    pub(crate) fn report(&self, path: &Path) -> String {
        let file = path.display();
        let mut s = String::new();
        match self {
            Decision::Invalid(e) => {
                // The loader's text, as check-config prints it, its snippet
                // lines indented under the first.
                let text = e.to_string();
                let mut lines = text.lines();
                let _ = write!(
                    s,
                    "reload of {file} failed, the running configuration is kept: {}",
                    lines.next().unwrap_or_default()
                );
                for l in lines {
                    let _ = write!(s, "\n  {l}");
                }
            }
            Decision::Refused { changed, error } => {
                let _ = write!(s, "reload of {file}: {error}");
                for (name, apply) in changed {
                    let what = match apply {
                        Apply::Restart => "needs restart",
                        Apply::Reload => "reloadable, not applied (the file is refused whole)",
                    };
                    let _ = write!(s, "\n  {name}: {what}");
                }
            }
            Decision::Unchanged => {
                let _ = write!(s, "reload of {file}: no change");
            }
            Decision::Apply { changed, .. } => {
                let _ = write!(s, "reload of {file}: applied");
                for name in changed {
                    let what = target(name).map_or_else(
                        || "not reloadable (a bug: the config crate accepted it)".to_owned(),
                        Target::describe,
                    );
                    let _ = write!(s, "\n  {name}: {what}");
                }
            }
        }
        s
    }

    /// One line for systemd's STATUS=.
    pub(crate) fn status(&self) -> &'static str {
        match self {
            Decision::Invalid(_) => "reload failed: invalid file, running configuration kept",
            Decision::Refused { .. } => {
                "reload refused: restart-only fields changed, running configuration kept"
            }
            Decision::Unchanged => "reloaded: no change",
            Decision::Apply { .. } => "reloaded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "interface: eth0\naddresses: [198.18.0.1/24]\n\
                           close: {default_linger: {on: false, secs: 0}}\nlog: {level: info}\n";

    fn running() -> Config {
        Config::parse(RUNNING, "lingerd.yaml").unwrap()
    }

    fn edited(from: &str, to: &str) -> Config {
        assert!(RUNNING.contains(from));
        Config::parse(&RUNNING.replacen(from, to, 1), "lingerd.yaml").unwrap()
    }

    #[test]
    fn every_reloadable_field_has_a_target_and_no_other() {
        for (name, apply) in Config::fields() {
            assert_eq!(
                target(name).is_some(),
                apply == Apply::Reload,
                "{name} is {apply:?}"
            );
        }
    }

    #[test]
    fn reloadable_changes_are_applied_and_named() {
        let d = decide(
            &running(),
            edited(
                "{on: false, secs: 0}}\nlog: {level: info}",
                "{on: true, secs: 0}, max_rst_per_sec: 10}\nlog: {level: debug}",
            ),
        );
        assert!(!d.keeps_running());
        let Decision::Apply { config, changed } = &d else {
            panic!("{d:?}")
        };
        assert!(config.close.default_linger.on);
        assert_eq!(
            changed,
            &["close.default_linger", "close.max_rst_per_sec", "log.level"]
        );
        let r = d.report(Path::new("/etc/lingerd.yaml"));
        assert_eq!(
            r,
            "reload of /etc/lingerd.yaml: applied\n  \
             close.default_linger: applied to every core (new timers and connections)\n  \
             close.max_rst_per_sec: applied to every core (its share; the next RST to leave, \
             waiting ones included)\n  \
             log.level: applied"
        );
    }

    #[test]
    fn restart_only_change_refuses_the_whole_file() {
        let d = decide(
            &running(),
            edited(
                "close: {default_linger: {on: false, secs: 0}}",
                "close: {default_linger: {on: true, secs: 0}}\nxdp: {frames: 4096}",
            ),
        );
        assert!(d.keeps_running());
        let r = d.report(Path::new("f.yaml"));
        assert!(
            r.starts_with(
                "reload of f.yaml: reload refused, the running configuration is kept: \
                 restart-only field changed: xdp.frames; restart lingerd to apply"
            ),
            "{r}"
        );
        assert!(r.contains("\n  xdp.frames: needs restart"), "{r}");
        assert!(
            r.contains("\n  close.default_linger: reloadable, not applied"),
            "{r}"
        );
    }

    #[test]
    fn an_invalid_file_is_reported_with_its_location() {
        let dir = std::env::temp_dir().join(format!("lingerd-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.yaml");
        std::fs::write(
            &path,
            "interface: eth0\naddresses: [198.18.0.1/24]\ntcp: {mss: x}\n",
        )
        .unwrap();
        let d = check(&running(), &path);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(d.keeps_running());
        let r = d.report(&path);
        let file = path.display().to_string();
        assert!(
            r.starts_with(&format!(
                "reload of {file} failed, the running configuration is kept: {file}: invalid configuration at line 3 column"
            )),
            "{r}"
        );
        assert!(
            r.contains(&format!("{file}:3:")),
            "the snippet's file:line:column: {r}"
        );
        assert_eq!(
            decide(&running(), running()).report(Path::new("f")),
            "reload of f: no change"
        );
    }
}
