//! The capture's batch format: how a core writes the frames it copies, and
//! how the reader (the daemon's ctl session, then `lingerd ctl`) walks
//! them. One batch is one ctl message, unchanged on its way.
//!
//! ```text
//! batch   = header record*
//! header  = "LDCP" queue:u32 records:u32 reserved:u32        (16 bytes)
//! record  = time_ns:u64 wire_len:u32 cap_len:u16 direction:u8 0:u8
//!           dropped_before:u32 bytes[cap_len]                  (20 + cap_len)
//! ```
//!
//! Little-endian throughout. `time_ns` is nanoseconds since the Unix epoch
//! (the loop iteration's clock), `dropped_before` the copies this core
//! dropped since its previous record (pcapng's `epb_dropcount`).
//!
//! It owns the layout and its checked parser: what reaches [`Batch::parse`]
//! has crossed a socket, so every length is checked and nothing panics.
//! Writing is the tap's ([`super::tap`]); it may not decide what is
//! captured.

/// The first four bytes of every batch.
pub const MAGIC: [u8; 4] = *b"LDCP";
/// Bytes before the first record.
pub const HEADER_LEN: usize = 16;
/// Bytes of a record before its frame bytes.
pub const RECORD_HEADER_LEN: usize = 20;

/// Which way a frame went through the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from the NIC queue.
    Received,
    /// Sent on it.
    Sent,
}

impl Direction {
    fn byte(self) -> u8 {
        match self {
            Direction::Received => 1,
            Direction::Sent => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Direction> {
        match b {
            1 => Some(Direction::Received),
            2 => Some(Direction::Sent),
            _ => None,
        }
    }
}

/// One copied frame, borrowed from its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// Its direction.
    pub direction: Direction,
    /// Copies this core dropped since its previous record.
    pub dropped_before: u32,
    /// The bytes kept (at most the snap length).
    pub bytes: &'a [u8],
}

/// Why bytes are not a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than the header, or the magic is wrong.
    NotABatch,
    /// A record runs past the end, or has an unknown direction.
    BadRecord {
        /// The record's index.
        index: u32,
    },
    /// The header's count and the records disagree.
    CountMismatch,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::NotABatch => write!(f, "not a capture batch"),
            BatchError::BadRecord { index } => write!(f, "capture record {index} is malformed"),
            BatchError::CountMismatch => {
                write!(
                    f,
                    "a capture batch's record count disagrees with its records"
                )
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// A checked batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The NIC queue whose core wrote it.
    pub queue: u32,
    /// Its records.
    pub count: u32,
    body: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// One record at the start of `b`, and the bytes after it.
fn record(b: &[u8]) -> Option<(Record<'_>, &[u8])> {
    let cap = usize::from(u16_at(b, 12)?);
    let end = RECORD_HEADER_LEN.checked_add(cap)?;
    let r = Record {
        time_ns: u64_at(b, 0)?,
        wire_len: u32_at(b, 8)?,
        direction: Direction::from_byte(*b.get(14)?)?,
        dropped_before: u32_at(b, 16)?,
        bytes: b.get(RECORD_HEADER_LEN..end)?,
    };
    Some((r, b.get(end..)?))
}

impl<'a> Batch<'a> {
    /// Checks `bytes` whole: the header, every record, and that the count
    /// matches.
    pub fn parse(bytes: &'a [u8]) -> Result<Batch<'a>, BatchError> {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(BatchError::NotABatch);
        }
        let (Some(queue), Some(count)) = (u32_at(bytes, 4), u32_at(bytes, 8)) else {
            return Err(BatchError::NotABatch);
        };
        let body = bytes.get(HEADER_LEN..).ok_or(BatchError::NotABatch)?;
        let mut rest = body;
        let mut seen = 0u32;
        while !rest.is_empty() {
            let (_, next) = record(rest).ok_or(BatchError::BadRecord { index: seen })?;
            rest = next;
            seen = seen.checked_add(1).ok_or(BatchError::CountMismatch)?;
        }
        if seen != count {
            return Err(BatchError::CountMismatch);
        }
        Ok(Batch { queue, count, body })
    }

    /// The records, in the order the core wrote them.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let mut rest = self.body;
        std::iter::from_fn(move || {
            let (r, next) = record(rest)?;
            rest = next;
            Some(r)
        })
    }

    /// The length of the batch's first `n` records, header included: the
    /// prefix to keep to cut the batch after `n` records (see
    /// [`set_count`]).
    pub fn prefix_len(&self, n: u32) -> usize {
        let mut rest = self.body;
        let mut len = HEADER_LEN;
        for _ in 0..n {
            let Some((r, next)) = record(rest) else {
                break;
            };
            len = len.saturating_add(RECORD_HEADER_LEN + r.bytes.len());
            rest = next;
        }
        len
    }
}

/// Rewrites the record count of the batch in `bytes` (after cutting it).
pub fn set_count(bytes: &mut [u8], count: u32) {
    if let Some(c) = bytes.get_mut(8..12) {
        c.copy_from_slice(&count.to_le_bytes());
    }
}

/// Starts a batch of `queue` in `buf` (emptied first).
pub(super) fn start(buf: &mut Vec<u8>, queue: u32) {
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&queue.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
}

/// Appends one record; the caller checked that it fits the buffer's
/// capacity (no reallocation) and that `bytes` is at most `u16::MAX` long.
pub(super) fn push(
    buf: &mut Vec<u8>,
    time_ns: u64,
    wire_len: u32,
    direction: Direction,
    dropped_before: u32,
    bytes: &[u8],
) {
    let cap = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&time_ns.to_le_bytes());
    buf.extend_from_slice(&wire_len.to_le_bytes());
    buf.extend_from_slice(&cap.to_le_bytes());
    buf.push(direction.byte());
    buf.push(0);
    buf.extend_from_slice(&dropped_before.to_le_bytes());
    buf.extend_from_slice(bytes.get(..usize::from(cap)).unwrap_or(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        start(&mut b, 3);
        push(&mut b, 1_000, 60, Direction::Received, 0, &[1, 2, 3]);
        push(&mut b, 2_000, 54, Direction::Sent, 7, &[4; 54]);
        set_count(&mut b, 2);
        b
    }

    #[test]
    fn a_batch_round_trips() {
        let b = sample();
        let batch = Batch::parse(&b).unwrap();
        assert_eq!((batch.queue, batch.count), (3, 2));
        let r: Vec<Record<'_>> = batch.records().collect();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].time_ns, r[0].wire_len, r[0].direction, r[0].bytes),
            (1_000, 60, Direction::Received, &[1u8, 2, 3][..])
        );
        assert_eq!(
            (r[1].direction, r[1].dropped_before, r[1].bytes.len()),
            (Direction::Sent, 7, 54)
        );
        // Cut after the first record.
        let mut cut = b[..batch.prefix_len(1)].to_vec();
        set_count(&mut cut, 1);
        assert_eq!(Batch::parse(&cut).unwrap().records().count(), 1);
        assert_eq!(batch.prefix_len(0), HEADER_LEN);
        assert_eq!(batch.prefix_len(9), b.len());
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let b = sample();
        for n in 0..b.len() {
            assert!(Batch::parse(&b[..n]).is_err(), "truncated at {n}");
        }
        for at in 0..b.len() {
            for v in [0u8, 0xff, 0x7f] {
                let mut c = b.clone();
                c[at] = v;
                if let Ok(batch) = Batch::parse(&c) {
                    // Still consistent: walking it yields its count.
                    assert_eq!(batch.records().count() as u32, batch.count);
                }
            }
        }
        let mut wrong = b.clone();
        set_count(&mut wrong, 3);
        assert_eq!(Batch::parse(&wrong), Err(BatchError::CountMismatch));
        let mut dir = b.clone();
        dir[HEADER_LEN + 14] = 9;
        assert_eq!(Batch::parse(&dir), Err(BatchError::BadRecord { index: 0 }));
        assert_eq!(Batch::parse(b"{\"v\":1}"), Err(BatchError::NotABatch));
    }
}
