//! The neighbour cache of one engine, for ARP (RFC 826) and IPv6 Neighbor
//! Discovery (RFC 4861) alike.
//!
//! It owns IP → MAC mappings of both families in one map with expiry, the
//! rate limit on our own ARP requests and Neighbor Solicitations, and the
//! list of connections waiting for a resolution. It learns from ARP, from
//! Neighbor Solicitations and Advertisements, and from the Ethernet source
//! of frames from on-link hosts. It never sends anything itself: the engine
//! asks what to send.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::table::Handle;
use crate::wire::EthernetAddress;

/// How long a learned mapping is trusted without a refresh. After that it is
/// *stale* (RFC 4861's word, which Linux uses for ARP too): still used, but
/// every use asks for a refresh.
pub const ENTRY_LIFETIME_MS: u64 = 60_000;
/// At most one ARP request or Neighbor Solicitation per address per this
/// interval.
pub const REQUEST_INTERVAL_MS: u64 = 1_000;
/// Bound on connections parked waiting for resolutions.
pub const MAX_WAITING: usize = 4_096;
/// Bound on the cache size; beyond it the oldest half is dropped.
pub const MAX_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Option<EthernetAddress>,
    expires_ms: u64,
    last_request_ms: Option<u64>,
}

/// One engine's neighbour cache.
#[derive(Debug, Default)]
pub struct NeighborCache {
    entries: HashMap<IpAddr, Entry>,
    waiting: Vec<Handle>,
    /// The last successful lookup `(ip, mac, expires_ms)`: a bulk close
    /// sends every RST to the same next hop, so this spares the keyed hash
    /// per frame. Cleared by every change to the mappings.
    last: Cell<Option<(IpAddr, EthernetAddress, u64)>>,
}

impl NeighborCache {
    /// The MAC of `ip`, if known and fresh.
    #[inline]
    pub fn lookup(&self, ip: IpAddr, now_ms: u64) -> Option<EthernetAddress> {
        if let Some((last_ip, mac, expires_ms)) = self.last.get()
            && last_ip == ip
            && expires_ms > now_ms
        {
            return Some(mac);
        }
        let (mac, expires_ms) = self
            .entries
            .get(&ip)
            .filter(|e| e.expires_ms > now_ms)
            .and_then(|e| Some((e.mac?, e.expires_ms)))?;
        self.last.set(Some((ip, mac, expires_ms)));
        Some(mac)
    }

    /// The MAC of `ip` if it was ever learned, with whether it is still
    /// fresh. A stale mapping is better than dropping a frame; the caller
    /// sends a refresh request.
    pub fn lookup_any(&self, ip: IpAddr, now_ms: u64) -> Option<(EthernetAddress, bool)> {
        if let Some(mac) = self.lookup(ip, now_ms) {
            return Some((mac, true));
        }
        self.entries
            .get(&ip)
            .and_then(|e| e.mac.map(|m| (m, e.expires_ms > now_ms)))
    }

    /// Cheap refresh from received traffic: learns `ip` at `mac` unless the
    /// same mapping is already known with more than half its life left.
    /// Returns what [`learn`](Self::learn) returns.
    pub fn touch(&mut self, ip: IpAddr, mac: EthernetAddress, now_ms: u64) -> bool {
        match self.entries.get(&ip) {
            Some(e)
                if e.mac == Some(mac)
                    && e.expires_ms > now_ms.saturating_add(ENTRY_LIFETIME_MS / 2) =>
            {
                false
            }
            _ => self.learn(ip, mac, now_ms),
        }
    }

    /// Records `ip` at `mac`. Returns true when this resolved an address we
    /// did not know (waiting connections should be retried).
    pub fn learn(&mut self, ip: IpAddr, mac: EthernetAddress, now_ms: u64) -> bool {
        if !mac.is_unicast() {
            return false;
        }
        self.last.set(None);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            self.entries.retain(|_, e| e.expires_ms > now_ms);
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            return false;
        }
        let entry = self.entries.entry(ip).or_insert(Entry {
            mac: None,
            expires_ms: 0,
            last_request_ms: None,
        });
        let was_unknown = entry.mac.is_none() || entry.expires_ms <= now_ms;
        entry.mac = Some(mac);
        entry.expires_ms = now_ms.saturating_add(ENTRY_LIFETIME_MS);
        was_unknown
    }

    /// Whether an ARP request (IPv4) or a Neighbor Solicitation (IPv6) for
    /// `ip` should go out now (rate limited).
    pub fn should_request(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let entry = self.entries.entry(ip).or_insert(Entry {
            mac: None,
            expires_ms: 0,
            last_request_ms: None,
        });
        match entry.last_request_ms {
            Some(t) if now_ms.saturating_sub(t) < REQUEST_INTERVAL_MS => false,
            _ => {
                entry.last_request_ms = Some(now_ms);
                true
            }
        }
    }

    /// Parks a connection until some address resolves. Returns false when the
    /// waiting list is full (the retransmission timer will try again).
    pub fn park(&mut self, handle: Handle) -> bool {
        if self.waiting.len() >= MAX_WAITING || self.waiting.contains(&handle) {
            return false;
        }
        self.waiting.push(handle);
        true
    }

    /// Takes every parked connection (after a resolution).
    pub fn take_waiting(&mut self) -> Vec<Handle> {
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn learn_lookup_expire() {
        let mut c = NeighborCache::default();
        let ip = IpAddr::from([198, 18, 0, 2]);
        assert_eq!(c.lookup(ip, 0), None);
        assert!(c.learn(ip, MAC, 0));
        assert!(!c.learn(ip, MAC, 10), "already known");
        assert_eq!(c.lookup(ip, ENTRY_LIFETIME_MS - 1), Some(MAC));
        assert_eq!(c.lookup(ip, ENTRY_LIFETIME_MS + 10), None);
        assert!(
            !c.learn(ip, EthernetAddress::BROADCAST, 0),
            "never learn a broadcast MAC"
        );
    }

    #[test]
    fn stale_entries_stay_usable_and_touch_refreshes() {
        let mut c = NeighborCache::default();
        let ip = IpAddr::from([198, 18, 0, 3]);
        assert!(c.learn(ip, MAC, 0));
        assert_eq!(c.lookup_any(ip, 10), Some((MAC, true)));
        assert_eq!(c.lookup_any(ip, ENTRY_LIFETIME_MS + 1), Some((MAC, false)));
        assert!(!c.touch(ip, MAC, 1), "fresh enough: no write");
        c.touch(ip, MAC, ENTRY_LIFETIME_MS);
        assert_eq!(
            c.lookup(ip, ENTRY_LIFETIME_MS + 1),
            Some(MAC),
            "refreshed by traffic"
        );
    }

    #[test]
    fn remembered_lookup_follows_relearning_and_expiry() {
        let mut c = NeighborCache::default();
        let (a, b) = (IpAddr::from([198, 18, 0, 2]), IpAddr::from([198, 18, 0, 3]));
        let other = EthernetAddress([2, 0, 0, 0, 0, 7]);
        c.learn(a, MAC, 0);
        c.learn(b, other, 0);
        assert_eq!(c.lookup(a, 1), Some(MAC));
        assert_eq!(c.lookup(a, 2), Some(MAC), "remembered");
        assert_eq!(
            c.lookup(b, 2),
            Some(other),
            "another address misses the memo"
        );
        c.learn(b, MAC, 3);
        assert_eq!(
            c.lookup(b, 4),
            Some(MAC),
            "a relearned MAC replaces the memo"
        );
        assert_eq!(
            c.lookup(b, 3 + ENTRY_LIFETIME_MS),
            None,
            "and expires with it"
        );
    }

    #[test]
    fn v4_and_v6_neighbours_share_one_cache() {
        let mut c = NeighborCache::default();
        let v4 = IpAddr::from([198, 18, 0, 2]);
        let v6: IpAddr = "fe80::2".parse().unwrap();
        let other = EthernetAddress([2, 0, 0, 0, 0, 7]);
        assert!(c.learn(v4, MAC, 0));
        assert_eq!(c.lookup(v6, 1), None);
        assert!(c.learn(v6, other, 1));
        assert_eq!(c.lookup(v4, 2), Some(MAC));
        assert_eq!(c.lookup(v6, 2), Some(other));
        assert!(c.should_request("2001:db8::9".parse().unwrap(), 5));
        assert!(c.should_request(IpAddr::from([198, 18, 0, 9]), 5));
    }

    #[test]
    fn requests_are_rate_limited() {
        let mut c = NeighborCache::default();
        let ip = IpAddr::from([198, 18, 0, 9]);
        assert!(c.should_request(ip, 5));
        assert!(!c.should_request(ip, 5 + REQUEST_INTERVAL_MS - 1));
        assert!(c.should_request(ip, 5 + REQUEST_INTERVAL_MS));
    }

    #[test]
    fn parking_is_bounded_and_deduplicated() {
        let mut c = NeighborCache::default();
        let h = Handle::new(0, 1, 1);
        assert!(c.park(h));
        assert!(!c.park(h));
        assert_eq!(c.take_waiting(), vec![h]);
        assert!(c.take_waiting().is_empty());
    }
}
