//! The per-queue TCP engine (being assembled): see `api` for its vocabulary.

pub mod api;
