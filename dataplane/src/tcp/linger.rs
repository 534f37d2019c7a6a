//! Per-connection linger options (docs/close-semantics.md#linger-options).
//!
//! It owns the `{on, time}` pair with Winsock's `SO_LINGER` / `SO_DONTLINGER`
//! rules and nothing else: what a close does with the pair is decided by the
//! connection's close logic. Times are kept in milliseconds (the wire format);
//! the Winsock API's seconds are converted at the edge.

/// The largest linger time Winsock can express: 65,535 s.
pub const MAX_LINGER_MS: u32 = 65_535 * 1000;

/// A connection's linger setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linger {
    /// `l_onoff`: whether close lingers (or hard-closes when `ms == 0`).
    pub on: bool,
    /// `l_linger` in milliseconds, `0..=MAX_LINGER_MS`.
    pub ms: u32,
}

/// A linger time beyond 65,535 s was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LingerRange;

impl Linger {
    /// `SO_LINGER`: sets both fields. Fails (and changes nothing) when `ms`
    /// exceeds [`MAX_LINGER_MS`].
    pub fn set(&mut self, on: bool, ms: u32) -> Result<(), LingerRange> {
        if ms > MAX_LINGER_MS {
            return Err(LingerRange);
        }
        *self = Linger { on, ms };
        Ok(())
    }

    /// `SO_DONTLINGER`. `true` turns lingering off and keeps the time;
    /// `false` turns it on again with the time last given to [`Linger::set`]
    /// (or the configured default, which is what a new connection starts
    /// with). \[decision\] TRUE means "do not linger", as closesocket words it.
    pub fn set_dont_linger(&mut self, dont: bool) {
        self.on = !dont;
    }

    /// What `close` must do under this setting.
    pub fn close_kind(self) -> CloseKind {
        match (self.on, self.ms) {
            (false, _) => CloseKind::Background,
            (true, 0) => CloseKind::Hard,
            (true, ms) => CloseKind::Linger { ms },
        }
    }
}

/// The three rows of the linger matrix (docs/close-semantics.md#linger-matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// Linger off: returns at once, graceful close in the background bounded
    /// by the orphan timeout.
    Background,
    /// Linger on with time 0: abortive close (RST).
    Hard,
    /// Linger on with a time: graceful close bounded by `ms`, RST on expiry.
    Linger {
        /// The deadline, counted from the close call.
        ms: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dont_linger_keeps_and_reinstates_the_time() {
        let mut l = Linger::default();
        l.set(true, 5_000).unwrap();
        l.set_dont_linger(true);
        assert_eq!(
            l,
            Linger {
                on: false,
                ms: 5_000
            }
        );
        assert_eq!(l.close_kind(), CloseKind::Background);
        l.set_dont_linger(false);
        assert_eq!(l.close_kind(), CloseKind::Linger { ms: 5_000 });
    }

    #[test]
    fn the_matrix_rows() {
        let mut l = Linger::default();
        assert_eq!(l.close_kind(), CloseKind::Background);
        l.set(true, 0).unwrap();
        assert_eq!(l.close_kind(), CloseKind::Hard);
        l.set(false, 0).unwrap();
        assert_eq!(l.close_kind(), CloseKind::Background);
    }

    #[test]
    fn out_of_range_changes_nothing() {
        let mut l = Linger { on: true, ms: 7 };
        assert_eq!(l.set(false, MAX_LINGER_MS + 1), Err(LingerRange));
        assert_eq!(l, Linger { on: true, ms: 7 });
        assert!(l.set(true, MAX_LINGER_MS).is_ok());
    }
}
