//! Loading: file → text → serde-saphyr → garde rules + the semantic pass →
//! [`Config`], or a [`ConfigError`] that names the file, line and column.
//!
//! The YAML is read strictly: YAML 1.2 booleans only (`on`/`yes` are not
//! `true`), duplicate keys are an error, unknown fields are an error, and
//! the file may not exceed [`MAX_FILE_BYTES`]. Errors are rendered once,
//! here, into plain text with serde-saphyr's source snippets, so the error
//! type is `Send + Sync` and carries no parser state.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use garde::Validate;
use serde::Deserialize;

use crate::check;
use crate::model::Config;

/// The largest configuration file accepted: a real one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said (part of the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: larger than {MAX_FILE_BYTES} bytes; not a lingerd configuration", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8.
    #[error("{}: not UTF-8 text (first bad byte at offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Not valid YAML, not the expected shape, or values out of range.
    #[error("{0}")]
    Invalid(Box<Invalid>),
}

impl ConfigError {
    /// Line and column (1-based) of the first problem, when known.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            ConfigError::Invalid(i) => i.location,
            _ => None,
        }
    }
}

/// A configuration that parsed as text but is wrong; see its `Display`.
#[derive(Debug)]
pub struct Invalid {
    /// The file name (or the name given to [`Config::parse`]).
    pub source_name: String,
    /// How many problems were found (parse errors stop at the first;
    /// validation reports all of them).
    pub problems: usize,
    /// Line and column of the first problem, 1-based.
    pub location: Option<(u64, u64)>,
    /// serde-saphyr's rendering: one `error: line L column C: …` block
    /// with a `--> FILE:L:C` source snippet per problem.
    pub rendered: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.problems == 1 { "" } else { "s" };
        write!(f, "{}: invalid configuration", self.source_name)?;
        if let Some((line, col)) = self.location {
            write!(f, " at line {line} column {col}")?;
        }
        writeln!(f, " ({} problem{s})", self.problems)?;
        f.write_str(self.rendered.trim_end())
    }
}

/// What the binary that loads a file can run: a file that asks for
/// something else is refused like any other mistake, at the field that
/// asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    /// Built with the `dpdk` feature: `port: dpdk` can run.
    pub dpdk: bool,
}

impl Build {
    /// Every port: the file's shape alone decides (what [`Config::load`]
    /// and [`Config::parse`] check).
    pub const ALL: Build = Build { dpdk: true };
}

/// [`Config`] with the semantic pass added to garde's derived rules, so both
/// kinds of problem reach serde-saphyr with paths it maps to locations.
/// `DPDK`: [`Build::dpdk`] (a constant, as garde's context here is `()`).
#[derive(Deserialize)]
#[serde(transparent)]
struct Checked<const DPDK: bool>(Config);

impl<const DPDK: bool> Validate for Checked<DPDK> {
    type Context = ();

    fn validate_into(
        &self,
        ctx: &Self::Context,
        parent: &mut dyn FnMut() -> garde::Path,
        report: &mut garde::Report,
    ) {
        self.0.validate_into(ctx, parent, report);
        check::check(&self.0, Build { dpdk: DPDK }, report);
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_for(path, Build::ALL)
    }

    /// [`Config::load`] for a binary that can run only what `build` says:
    /// a `port` it lacks is an error at that field.
    pub fn load_for(path: impl AsRef<Path>, build: Build) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let read_err = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
            path: path.to_owned(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        Config::parse_for(&text, &path.display().to_string(), build)
    }

    /// Parses and validates YAML text; `source_name` is what errors call
    /// it (a file name, `<stdin>`, a test's name).
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        Config::parse_for(text, source_name, Build::ALL)
    }

    /// [`Config::parse`] for a binary that can run only what `build` says.
    pub fn parse_for(text: &str, source_name: &str, build: Build) -> Result<Config, ConfigError> {
        let options = serde_saphyr::options! {
            strict_booleans: true,
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        };
        let parsed = if build.dpdk {
            serde_saphyr::from_str_with_options_valid::<Checked<true>>(text, options).map(|c| c.0)
        } else {
            serde_saphyr::from_str_with_options_valid::<Checked<false>>(text, options).map(|c| c.0)
        };
        parsed.map_err(|e| ConfigError::Invalid(Box::new(invalid(&e, source_name))))
    }
}

fn invalid(e: &serde_saphyr::Error, source_name: &str) -> Invalid {
    if let serde_saphyr::Error::Eof { .. } = e.without_snippet() {
        return Invalid {
            source_name: source_name.to_owned(),
            problems: 1,
            location: None,
            rendered: "error: the file holds no YAML document; `interface` and `addresses` \
                       are required"
                .to_owned(),
        };
    }
    let rendered = e.render_with_options(serde_saphyr::render_options! {
        source_name: Some(source_name),
        formatter: &serde_saphyr::UserMessageFormatter,
    });
    Invalid {
        source_name: source_name.to_owned(),
        problems: count(e),
        location: e.location().map(|l| (l.line(), l.column())),
        rendered,
    }
}

fn count(e: &serde_saphyr::Error) -> usize {
    match e {
        serde_saphyr::Error::WithSnippet { error, .. } => count(error),
        serde_saphyr::Error::ValidationError { issues, .. } => issues.len().max(1),
        serde_saphyr::Error::ValidationErrors { errors, .. } => errors.iter().map(count).sum(),
        _ => 1,
    }
}
