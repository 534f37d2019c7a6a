//! Wire formats (placeholder until the wire module lands).
