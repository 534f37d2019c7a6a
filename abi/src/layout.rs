//! The shared region: one sealed memfd per client, laid out as a header
//! page, then per core a request ring and a completion ring, then the TX
//! and RX data arenas.
//!
//! This module owns the byte offsets and their validation. Both sides
//! compute the layout from the same few numbers with the same checked
//! arithmetic; the client additionally checks the header the daemon wrote
//! against what it computes, so a mismatch is an attach error, never a
//! stray access.

/// `"LINGERD\0"` little-endian: the first eight bytes of every region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"LINGERD\0");
/// Bumped on any incompatible change to this crate's layouts.
pub const VERSION: u32 = 2;
/// The header occupies one page.
pub const HEADER_SIZE: usize = 4096;
/// Every entry, request or completion, is 64 bytes.
pub const ENTRY_SIZE: usize = 64;
/// Head, tail and flags of a ring each get a 128-byte block (two cache
/// lines, so adjacent-line prefetch cannot make them share).
pub const RING_CONTROL_SIZE: usize = 384;
/// Offset of the consumer's head in a ring's control block.
pub const RING_HEAD: usize = 0;
/// Offset of the producer's tail.
pub const RING_TAIL: usize = 128;
/// Offset of the ring's flags word (NEED_WAKEUP, written by the consumer).
pub const RING_FLAGS: usize = 256;
/// Ring flag: the consumer sleeps; the producer must signal the eventfd.
pub const RING_NEED_WAKEUP: u32 = 1;
/// The most cores a region describes.
pub const MAX_CORES: u32 = 64;
/// Largest ring, entries.
pub const MAX_RING_ENTRIES: u32 = 1 << 20;
/// Largest data chunk, bytes.
pub const MAX_CHUNK_SIZE: u32 = 1 << 16;
/// Most chunks per arena.
pub const MAX_CHUNKS: u32 = 1 << 20;

/// The numbers a region is built from (the daemon's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutParams {
    /// Dataplane cores, one ring pair each.
    pub cores: u32,
    /// Entries per ring, a power of two.
    pub ring_entries: u32,
    /// Bytes per data chunk, a power of two ≥ 64.
    pub chunk_size: u32,
    /// Chunks in the TX arena (client → daemon data).
    pub tx_chunks: u32,
    /// Chunks in the RX arena (daemon → client data).
    pub rx_chunks: u32,
}

/// Why a set of numbers makes no valid region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `cores` is 0 or above [`MAX_CORES`].
    Cores,
    /// `ring_entries` is not a power of two in 2..=[`MAX_RING_ENTRIES`].
    RingEntries,
    /// `chunk_size` is not a power of two in 64..=[`MAX_CHUNK_SIZE`].
    ChunkSize,
    /// An arena has more than [`MAX_CHUNKS`] chunks.
    Chunks,
    /// The region would not fit the address space.
    TooLarge,
}

/// Where everything is, in bytes from the start of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What it was built from.
    pub params: LayoutParams,
    /// Bytes of one ring (control block + entries).
    pub ring_size: usize,
    /// Offset of the first ring; core `c`'s request ring is at
    /// `rings + 2c × ring_size`, its completion ring right after.
    pub rings: usize,
    /// Offset of the TX arena.
    pub tx_arena: usize,
    /// Offset of the RX arena.
    pub rx_arena: usize,
    /// Total size of the region, a multiple of the page size.
    pub total: usize,
}

impl Layout {
    /// Computes and validates a layout.
    pub fn new(p: LayoutParams) -> Result<Layout, LayoutError> {
        if p.cores == 0 || p.cores > MAX_CORES {
            return Err(LayoutError::Cores);
        }
        if !p.ring_entries.is_power_of_two()
            || p.ring_entries < 2
            || p.ring_entries > MAX_RING_ENTRIES
        {
            return Err(LayoutError::RingEntries);
        }
        if !p.chunk_size.is_power_of_two() || p.chunk_size < 64 || p.chunk_size > MAX_CHUNK_SIZE {
            return Err(LayoutError::ChunkSize);
        }
        if p.tx_chunks > MAX_CHUNKS || p.rx_chunks > MAX_CHUNKS {
            return Err(LayoutError::Chunks);
        }
        let ring_size = (p.ring_entries as usize)
            .checked_mul(ENTRY_SIZE)
            .and_then(|e| e.checked_add(RING_CONTROL_SIZE))
            .ok_or(LayoutError::TooLarge)?;
        let rings_bytes = ring_size
            .checked_mul(2 * p.cores as usize)
            .ok_or(LayoutError::TooLarge)?;
        let tx_arena =
            align_up(HEADER_SIZE + rings_bytes, HEADER_SIZE).ok_or(LayoutError::TooLarge)?;
        let tx_bytes = (p.tx_chunks as usize)
            .checked_mul(p.chunk_size as usize)
            .ok_or(LayoutError::TooLarge)?;
        let rx_arena = tx_arena
            .checked_add(tx_bytes)
            .ok_or(LayoutError::TooLarge)?;
        let rx_bytes = (p.rx_chunks as usize)
            .checked_mul(p.chunk_size as usize)
            .ok_or(LayoutError::TooLarge)?;
        let end = rx_arena
            .checked_add(rx_bytes)
            .ok_or(LayoutError::TooLarge)?;
        let total = align_up(end, HEADER_SIZE).ok_or(LayoutError::TooLarge)?;
        Ok(Layout {
            params: p,
            ring_size,
            rings: HEADER_SIZE,
            tx_arena,
            rx_arena,
            total,
        })
    }

    /// Offset of core `core`'s request ring (client → core).
    pub fn request_ring(&self, core: u32) -> Option<usize> {
        (core < self.params.cores).then(|| self.rings + 2 * core as usize * self.ring_size)
    }

    /// Offset of core `core`'s completion ring (core → client).
    pub fn completion_ring(&self, core: u32) -> Option<usize> {
        self.request_ring(core).map(|o| o + self.ring_size)
    }

    /// The byte range of TX chunk `chunk` holding `len` bytes, if both are
    /// in bounds (hostile indices and lengths come through here).
    pub fn tx_chunk(&self, chunk: u32, len: u32) -> Option<core::ops::Range<usize>> {
        chunk_range(
            self.tx_arena,
            self.params.tx_chunks,
            self.params.chunk_size,
            chunk,
            len,
        )
    }

    /// The byte range of RX chunk `chunk` holding `len` bytes.
    pub fn rx_chunk(&self, chunk: u32, len: u32) -> Option<core::ops::Range<usize>> {
        chunk_range(
            self.rx_arena,
            self.params.rx_chunks,
            self.params.chunk_size,
            chunk,
            len,
        )
    }

    /// The header the daemon writes into the first page.
    pub fn header(&self) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            cores: self.params.cores,
            ring_entries: self.params.ring_entries,
            entry_size: ENTRY_SIZE as u32,
            chunk_size: self.params.chunk_size,
            tx_chunks: self.params.tx_chunks,
            rx_chunks: self.params.rx_chunks,
            total_size: self.total as u64,
        }
    }
}

fn chunk_range(
    base: usize,
    chunks: u32,
    size: u32,
    chunk: u32,
    len: u32,
) -> Option<core::ops::Range<usize>> {
    if chunk >= chunks || len > size {
        return None;
    }
    let start = base.checked_add((chunk as usize).checked_mul(size as usize)?)?;
    Some(start..start.checked_add(len as usize)?)
}

fn align_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

/// The first bytes of the header page, little-endian, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// [`HEADER_SIZE`].
    pub header_size: u32,
    /// Cores.
    pub cores: u32,
    /// Entries per ring.
    pub ring_entries: u32,
    /// [`ENTRY_SIZE`].
    pub entry_size: u32,
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// TX chunks.
    pub tx_chunks: u32,
    /// RX chunks.
    pub rx_chunks: u32,
    /// Region size.
    pub total_size: u64,
}

/// Encoded size of a [`Header`].
pub const HEADER_BYTES: usize = 48;

/// Why a header read from a region is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a lingerd region.
    Magic,
    /// Another version of the ABI.
    Version(u32),
    /// Sizes that make no valid layout, or disagree with it.
    Layout,
}

impl Header {
    /// Little-endian encoding.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&self.magic.to_le_bytes());
        let words = [
            self.version,
            self.header_size,
            self.cores,
            self.ring_entries,
            self.entry_size,
            self.chunk_size,
            self.tx_chunks,
            self.rx_chunks,
        ];
        for (i, w) in words.iter().enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        b[40..48].copy_from_slice(&self.total_size.to_le_bytes());
        b
    }

    /// Decodes and validates: magic, version, and a layout that the sizes
    /// recompute to exactly.
    pub fn decode(b: &[u8; HEADER_BYTES]) -> Result<(Header, Layout), HeaderError> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let h = Header {
            magic: u64_at(0),
            version: u32_at(8),
            header_size: u32_at(12),
            cores: u32_at(16),
            ring_entries: u32_at(20),
            entry_size: u32_at(24),
            chunk_size: u32_at(28),
            tx_chunks: u32_at(32),
            rx_chunks: u32_at(36),
            total_size: u64_at(40),
        };
        if h.magic != MAGIC {
            return Err(HeaderError::Magic);
        }
        if h.version != VERSION {
            return Err(HeaderError::Version(h.version));
        }
        let layout = Layout::new(LayoutParams {
            cores: h.cores,
            ring_entries: h.ring_entries,
            chunk_size: h.chunk_size,
            tx_chunks: h.tx_chunks,
            rx_chunks: h.rx_chunks,
        })
        .map_err(|_| HeaderError::Layout)?;
        if layout.header() != h {
            return Err(HeaderError::Layout);
        }
        Ok((h, layout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LayoutParams {
        LayoutParams {
            cores: 2,
            ring_entries: 1024,
            chunk_size: 2048,
            tx_chunks: 256,
            rx_chunks: 512,
        }
    }

    #[test]
    fn rings_and_arenas_are_disjoint_and_aligned() {
        let l = Layout::new(params()).unwrap();
        assert_eq!(l.ring_size, 384 + 1024 * 64);
        assert_eq!(l.request_ring(0), Some(4096));
        assert_eq!(l.completion_ring(0), Some(4096 + l.ring_size));
        assert_eq!(l.request_ring(1), Some(4096 + 2 * l.ring_size));
        assert_eq!(l.request_ring(2), None);
        let rings_end = l.completion_ring(1).unwrap() + l.ring_size;
        assert!(l.tx_arena >= rings_end && l.tx_arena.is_multiple_of(4096));
        assert_eq!(l.rx_arena, l.tx_arena + 256 * 2048);
        assert_eq!(l.total % 4096, 0);
        assert!(l.total >= l.rx_arena + 512 * 2048);
    }

    #[test]
    fn chunk_ranges_reject_hostile_indices_and_lengths() {
        let l = Layout::new(params()).unwrap();
        assert_eq!(l.tx_chunk(0, 10), Some(l.tx_arena..l.tx_arena + 10));
        assert_eq!(l.tx_chunk(255, 2048).map(|r| r.end), Some(l.rx_arena));
        assert_eq!(l.tx_chunk(256, 1), None);
        assert_eq!(l.tx_chunk(0, 2049), None);
        assert_eq!(l.rx_chunk(u32::MAX, u32::MAX), None);
    }

    #[test]
    fn bad_params_are_refused() {
        let p = params();
        assert_eq!(
            Layout::new(LayoutParams { cores: 0, ..p }),
            Err(LayoutError::Cores)
        );
        assert_eq!(
            Layout::new(LayoutParams {
                ring_entries: 1000,
                ..p
            }),
            Err(LayoutError::RingEntries)
        );
        assert_eq!(
            Layout::new(LayoutParams {
                chunk_size: 32,
                ..p
            }),
            Err(LayoutError::ChunkSize)
        );
        assert_eq!(
            Layout::new(LayoutParams {
                rx_chunks: MAX_CHUNKS + 1,
                ..p
            }),
            Err(LayoutError::Chunks)
        );
    }

    #[test]
    fn header_round_trips_and_rejects_tampering() {
        let l = Layout::new(params()).unwrap();
        let bytes = l.header().encode();
        assert_eq!(Header::decode(&bytes), Ok((l.header(), l)));
        let mut bad = bytes;
        bad[0] ^= 1;
        assert_eq!(Header::decode(&bad), Err(HeaderError::Magic));
        let mut bad = bytes;
        bad[8] = 9;
        assert_eq!(Header::decode(&bad), Err(HeaderError::Version(9)));
        let mut bad = bytes;
        bad[40] ^= 0x10;
        assert_eq!(
            Header::decode(&bad),
            Err(HeaderError::Layout),
            "total size disagrees"
        );
        let mut bad = bytes;
        bad[20..24].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            Header::decode(&bad),
            Err(HeaderError::Layout),
            "ring entries not a power of two"
        );
    }
}
