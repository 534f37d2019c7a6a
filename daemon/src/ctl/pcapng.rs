//! The file `lingerd ctl capture` writes: pcapng, as Wireshark and tcpdump
//! read it, through the `pcap-file` crate.
//!
//! One section (little-endian), one interface per captured NIC queue (in
//! the order the daemon named them, named `lingerd queue N`, nanosecond
//! timestamps, Ethernet, the filter expression when there is one), one
//! Enhanced Packet Block per packet with its direction (`epb_flags`:
//! inbound or outbound) and the copies its core dropped just before it
//! (`epb_dropcount`), and at the end an Interface Statistics Block per
//! queue (frames the filter accepted, copies dropped, packets written).
//! Packets are written as the batches arrive, and flushed batch by batch,
//! so that a reader at the other end of a pipe (`-w - | tcpdump -r -`)
//! sees them promptly.
//!
//! It owns the layout of the file. It may not decide what is captured (the
//! daemon's) nor where the bytes go (a file, standard output: the
//! caller's).

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use lingerd_dataplane::capture::{Batch, Direction};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::{DataLink, Endianness};

use super::proto::QueueCapture;

/// `epb_flags` direction bits (pcapng §4.3.1).
const INBOUND: u32 = 0b01;
const OUTBOUND: u32 = 0b10;
/// `if_tsresol`: 10^-9 s (the records' time is in nanoseconds).
const NANOSECONDS: u8 = 9;

fn file_error(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Creates the file a capture is written to: readable by its owner only
/// (a capture holds traffic), replaced if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// A pcapng file being written.
pub struct PcapngOut<W: Write> {
    w: PcapNgWriter<W>,
    /// The queue of each interface id.
    queues: Vec<u32>,
    written: u64,
}

impl<W: Write> std::fmt::Debug for PcapngOut<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapngOut")
            .field("queues", &self.queues)
            .field("written", &self.written)
            .finish()
    }
}

impl<W: Write> PcapngOut<W> {
    /// Starts the file: its section header.
    pub fn new(out: W) -> io::Result<PcapngOut<W>> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
                "lingerd ctl capture",
            ))],
        };
        let w = PcapNgWriter::with_section_header(out, section).map_err(file_error)?;
        Ok(PcapngOut {
            w,
            queues: Vec::new(),
            written: 0,
        })
    }

    /// One interface per queue (in this order), with the snap length and
    /// the filter expression, if any.
    pub fn interfaces(&mut self, queues: &[u32], snaplen: u32, filter: &str) -> io::Result<()> {
        for &q in queues {
            let mut options = vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(format!("lingerd queue {q}"))),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "frames lingerd's core for NIC queue {q} received and sent"
                ))),
                InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
            ];
            if !filter.is_empty() {
                // Code 0: a libpcap filter string.
                let mut f = vec![0u8];
                f.extend_from_slice(filter.as_bytes());
                options.push(InterfaceDescriptionOption::IfFilter(Cow::Owned(f)));
            }
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen,
                options,
            };
            self.w.write_pcapng_block(idb).map_err(file_error)?;
        }
        self.queues.extend_from_slice(queues);
        self.flush()
    }

    /// Writes a batch's packets, up to `limit` of them; returns how many.
    /// A batch of a queue without an interface is refused.
    pub fn batch(&mut self, batch: &Batch<'_>, limit: u64) -> io::Result<u64> {
        let interface_id = self
            .queues
            .iter()
            .position(|&q| q == batch.queue)
            .ok_or_else(|| {
                io::Error::other(format!("a batch of queue {}, not captured", batch.queue))
            })?;
        let interface_id = u32::try_from(interface_id).unwrap_or(u32::MAX);
        // One block for the whole batch, its fields replaced per packet:
        // no allocation per packet (a capture may run at line rate).
        let mut block = Block::EnhancedPacket(EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::ZERO,
            original_len: 0,
            data: Cow::Borrowed(&[]),
            options: Vec::with_capacity(2),
        });
        let mut n = 0u64;
        for r in batch.records() {
            if n >= limit {
                break;
            }
            if let Block::EnhancedPacket(epb) = &mut block {
                epb.timestamp = Duration::from_nanos(r.time_ns);
                epb.original_len = r.wire_len;
                epb.data = Cow::Borrowed(r.bytes);
                epb.options.clear();
                epb.options
                    .push(EnhancedPacketOption::Flags(match r.direction {
                        Direction::Received => INBOUND,
                        Direction::Sent => OUTBOUND,
                    }));
                if r.dropped_before > 0 {
                    epb.options
                        .push(EnhancedPacketOption::DropCount(u64::from(r.dropped_before)));
                }
            }
            self.w.write_block(&block).map_err(file_error)?;
            n += 1;
        }
        self.written += n;
        self.flush()?;
        Ok(n)
    }

    /// The end: each queue's figures, stamped `at_ns` (Unix nanoseconds).
    pub fn statistics(&mut self, per_queue: &[QueueCapture], at_ns: u64) -> io::Result<()> {
        for q in per_queue {
            let Some(id) = self.queues.iter().position(|&x| x == q.queue) else {
                continue;
            };
            let isb = InterfaceStatisticsBlock {
                interface_id: u32::try_from(id).unwrap_or(u32::MAX),
                timestamp: isb_time(at_ns),
                options: vec![
                    InterfaceStatisticsOption::IsbFilterAccept(q.matched),
                    InterfaceStatisticsOption::IsbOsDrop(q.dropped),
                    InterfaceStatisticsOption::IsbUsrDeliv(q.written),
                    InterfaceStatisticsOption::Comment(Cow::Owned(format!(
                        "{} frames seen (received and sent), {} matched the filter, {} copies \
                         dropped (capture buffers full; the frames went on), {} written",
                        q.seen, q.matched, q.dropped, q.written
                    ))),
                ],
            };
            self.w.write_pcapng_block(isb).map_err(file_error)?;
        }
        self.flush()
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes what was written to the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.get_mut().flush()
    }

    /// The output.
    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }
}

/// The ISB timestamp field as `pcap-file` 2.0 needs it: it writes the
/// field as one 64-bit integer, while pcapng stores it as two 32-bit words,
/// the high one first. In a little-endian section that means the halves
/// swapped (a test reads the bytes back).
fn isb_time(ns: u64) -> u64 {
    ns.rotate_left(32)
}

#[cfg(test)]
mod tests {
    use lingerd_dataplane::capture::tap::{TapConfig, capture};
    use pcap_file::pcapng::PcapNgReader;

    use super::*;

    /// One batch of two packets from queue 3 (received, then sent after a
    /// dropped copy), made by a real tap.
    fn batch_bytes() -> Vec<u8> {
        let (mut tap, reader) = capture(TapConfig {
            queue: 3,
            filter: None,
            snaplen: 1500,
            batches: 2,
            clock: (std::time::Instant::now(), 1_700_000_000_123_456_789),
        });
        tap.offer(Direction::Received, &[0xaa; 60]);
        tap.offer(Direction::Sent, &[0xbb; 54]);
        tap.finish();
        reader.next_batch().expect("a batch")
    }

    #[test]
    fn a_file_reads_back_with_interfaces_directions_and_figures() {
        let bytes = batch_bytes();
        let batch = Batch::parse(&bytes).unwrap();
        let mut out = PcapngOut::new(Vec::new()).unwrap();
        out.interfaces(&[3], 1500, "tcp").unwrap();
        assert_eq!(out.batch(&batch, u64::MAX).unwrap(), 2);
        let figures = QueueCapture {
            queue: 3,
            seen: 5,
            matched: 2,
            dropped: 0,
            written: 2,
        };
        let at = 1_700_000_001_000_000_000u64;
        out.statistics(&[figures], at).unwrap();
        assert_eq!(out.written(), 2);
        let file = out.into_inner();

        let mut r = PcapNgReader::new(&file[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(b.unwrap().into_owned());
        }
        let Block::InterfaceDescription(idb) = &blocks[0] else {
            panic!("{:?}", blocks[0]);
        };
        assert_eq!(idb.linktype, DataLink::ETHERNET);
        assert!(
            idb.options
                .contains(&InterfaceDescriptionOption::IfTsResol(9))
        );
        let Block::EnhancedPacket(first) = &blocks[1] else {
            panic!("{:?}", blocks[1]);
        };
        assert_eq!(
            first.timestamp,
            Duration::from_nanos(1_700_000_000_123_456_789)
        );
        assert_eq!(first.data.len(), 60);
        assert!(
            first
                .options
                .contains(&EnhancedPacketOption::Flags(INBOUND))
        );
        let Block::EnhancedPacket(second) = &blocks[2] else {
            panic!("{:?}", blocks[2]);
        };
        assert!(
            second
                .options
                .contains(&EnhancedPacketOption::Flags(OUTBOUND))
        );
        assert!(matches!(blocks[3], Block::InterfaceStatistics(_)));
        // The ISB's timestamp as pcapng lays it out: high word, low word.
        let end = file.len();
        let isb_start = file
            .windows(4)
            .rposition(|w| w == 5u32.to_le_bytes())
            .expect("an ISB");
        let hi = u32::from_le_bytes(file[isb_start + 12..isb_start + 16].try_into().unwrap());
        let lo = u32::from_le_bytes(file[isb_start + 16..isb_start + 20].try_into().unwrap());
        assert_eq!((u64::from(hi) << 32) | u64::from(lo), at);
        assert!(isb_start < end);
    }

    #[test]
    fn a_limit_cuts_the_batch() {
        let bytes = batch_bytes();
        let batch = Batch::parse(&bytes).unwrap();
        let mut out = PcapngOut::new(Vec::new()).unwrap();
        out.interfaces(&[3], 1500, "").unwrap();
        assert_eq!(out.batch(&batch, 1).unwrap(), 1);
        let mut other = PcapngOut::new(Vec::new()).unwrap();
        other.interfaces(&[4], 1500, "").unwrap();
        assert!(
            other.batch(&batch, 9).is_err(),
            "queue 3 is not captured there"
        );
    }

    /// tcpdump (libpcap) reads the file: the real check of the format.
    #[test]
    fn tcpdump_reads_the_file() {
        let Ok(status) = std::process::Command::new("tcpdump")
            .arg("--version")
            .output()
        else {
            eprintln!("tcpdump is not installed: skipped (deploy/bootstrap installs it)");
            return;
        };
        assert!(status.status.success());
        let bytes = batch_bytes();
        let batch = Batch::parse(&bytes).unwrap();
        let mut out = PcapngOut::new(Vec::new()).unwrap();
        out.interfaces(&[3], 1500, "").unwrap();
        out.batch(&batch, u64::MAX).unwrap();
        out.statistics(&[], 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcapng");
        std::fs::write(&path, out.into_inner()).unwrap();
        let o = std::process::Command::new("tcpdump")
            .args(["-nn", "-tt", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        let packets: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .collect();
        assert_eq!(packets.len(), 2, "{text}");
        assert!(
            packets[0].starts_with("1700000000.123456 "),
            "nanoseconds read as such: {text}"
        );
        assert!(packets[1].contains("length 54"), "{text}");
    }
}
