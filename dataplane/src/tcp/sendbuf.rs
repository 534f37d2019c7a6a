//! Send buffers: bytes the client queued that the peer has not acknowledged.
//!
//! It owns the byte storage and a per-core pool of buffers, so a connection
//! holds a buffer only while it has data pending and an idle connection costs
//! only its record. It knows nothing of sequence numbers: offset 0 is always
//! the oldest unacknowledged byte (SND.UNA once the SYN is acknowledged).

use std::collections::VecDeque;

/// One connection's pending send data.
#[derive(Debug)]
pub struct SendBuf {
    bytes: VecDeque<u8>,
    cap: usize,
}

impl SendBuf {
    fn new(cap: usize) -> SendBuf {
        SendBuf {
            bytes: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Bytes pending (unacknowledged, sent or not).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Room left.
    pub fn free(&self) -> usize {
        self.cap - self.bytes.len()
    }

    /// Appends `data` whole, or nothing when it does not fit (ENOBUFS: the
    /// client retries, nothing is half-queued).
    pub fn push(&mut self, data: &[u8]) -> bool {
        if data.len() > self.free() {
            return false;
        }
        self.bytes.extend(data.iter().copied());
        true
    }

    /// Drops the `n` oldest bytes (they were acknowledged). Clamped to the
    /// length, so a bogus count can never panic.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
    }

    /// Copies bytes from `offset` into `dst`; returns how many were copied
    /// (fewer when the buffer ends first).
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> usize {
        let (a, b) = self.bytes.as_slices();
        let mut done = 0;
        let mut off = offset;
        for part in [a, b] {
            if done == dst.len() {
                break;
            }
            if off >= part.len() {
                off -= part.len();
                continue;
            }
            let n = (part.len() - off).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&part[off..off + n]);
            done += n;
            off = 0;
        }
        done
    }
}

/// A per-core pool of send buffers of one capacity.
#[derive(Debug)]
pub struct SendBufPool {
    // Boxed because records hold `Option<Box<SendBuf>>` (8 bytes, not a
    // 32-byte VecDeque): buffers move between pool and record unchanged.
    #[allow(clippy::vec_box)]
    free: Vec<Box<SendBuf>>,
    cap: usize,
    max_free: usize,
}

impl SendBufPool {
    /// A pool handing out buffers of `cap` bytes, keeping at most `max_free`
    /// idle ones for reuse.
    pub fn new(cap: usize, max_free: usize) -> SendBufPool {
        SendBufPool {
            free: Vec::new(),
            cap,
            max_free,
        }
    }

    /// The capacity of each buffer.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// A buffer, from the pool when one is free.
    pub fn get(&mut self) -> Box<SendBuf> {
        self.free
            .pop()
            .unwrap_or_else(|| Box::new(SendBuf::new(self.cap)))
    }

    /// Returns an emptied buffer to the pool.
    pub fn put(&mut self, mut buf: Box<SendBuf>) {
        if self.free.len() < self.max_free {
            buf.bytes.clear();
            self.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_all_or_nothing() {
        let mut pool = SendBufPool::new(8, 4);
        let mut b = pool.get();
        assert!(b.push(b"hello"));
        assert!(!b.push(b"world"), "5 more do not fit in 3");
        assert_eq!(b.len(), 5);
        assert!(b.push(b"abc"));
        assert_eq!(b.free(), 0);
    }

    #[test]
    fn copy_out_across_the_wrap_and_past_the_end() {
        let mut pool = SendBufPool::new(8, 4);
        let mut b = pool.get();
        assert!(b.push(b"abcdefgh"));
        b.consume(6);
        assert!(b.push(b"ijklmn"));
        let mut dst = [0u8; 16];
        let n = b.copy_out(1, &mut dst);
        assert_eq!(&dst[..n], b"hijklmn");
        assert_eq!(b.copy_out(100, &mut dst), 0);
        b.consume(1000);
        assert!(b.is_empty());
        pool.put(b);
        assert_eq!(pool.get().len(), 0, "a reused buffer comes back empty");
    }
}
