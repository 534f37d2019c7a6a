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
    /// The SACK scoreboard and undo state of the data outstanding.
    pub board: super::sack::Scoreboard,
}

impl SendBuf {
    fn new(cap: usize) -> SendBuf {
        SendBuf {
            bytes: VecDeque::with_capacity(cap),
            cap,
            board: super::sack::Scoreboard::default(),
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

    /// Appends `n` bytes written in place by `fill(offset, dst)`, which is
    /// called once or twice (the buffer may wrap) with consecutive parts of
    /// the `n` bytes, `offset` counting from the first. All or nothing:
    /// [`Fill::NoRoom`] when `n` does not fit, [`Fill::Failed`] (nothing
    /// appended) when `fill` returns false.
    pub fn push_from(&mut self, n: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> bool) -> Fill {
        if n > self.free() {
            return Fill::NoRoom;
        }
        let old = self.bytes.len();
        // Within the capacity reserved at creation: no allocation.
        self.bytes.resize(old + n, 0);
        let (front, back) = self.bytes.as_mut_slices();
        let ok = if old >= front.len() {
            fill(0, &mut back[old - front.len()..])
        } else {
            let first = front.len() - old;
            fill(0, &mut front[old..]) && fill(first, back)
        };
        if ok {
            Fill::Queued
        } else {
            self.bytes.truncate(old);
            Fill::Failed
        }
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

/// What [`SendBuf::push_from`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// All bytes appended.
    Queued,
    /// Not enough room; nothing appended.
    NoRoom,
    /// The source could not be read; nothing appended.
    Failed,
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
            buf.board.clear();
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

    #[test]
    fn push_from_fills_across_the_wrap_or_not_at_all() {
        let mut pool = SendBufPool::new(8, 4);
        let mut b = pool.get();
        assert!(b.push(b"abcdef"));
        b.consume(5);
        let src = b"ghijkl";
        let mut calls = 0;
        let mut fill = |off: usize, dst: &mut [u8]| {
            calls += 1;
            dst.copy_from_slice(&src[off..off + dst.len()]);
            true
        };
        assert_eq!(b.push_from(6, &mut fill), Fill::Queued);
        let mut out = [0u8; 7];
        assert_eq!(b.copy_out(0, &mut out), 7);
        assert_eq!(&out, b"fghijkl");
        assert_eq!(b.push_from(2, &mut |_, _| true), Fill::NoRoom);
        assert_eq!(b.push_from(1, &mut |_, _| false), Fill::Failed);
        assert_eq!(b.len(), 7, "a failed fill leaves nothing behind");
        let _ = calls;
    }
}
