//! The per-core hierarchical timing wheel (placeholder until the wheel lands).
