//! lingerd's configuration: YAML in, validated types out.
//!
//! It will own parsing, validation and the split between restart-only and
//! reloadable fields. It performs no I/O beyond reading the file it is given
//! and may not depend on the dataplane. Populated by the daemon issue.
#![deny(unsafe_code)]
