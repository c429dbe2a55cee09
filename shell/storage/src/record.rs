//! One log record, the unit the log is made of:
//!
//! ```text
//! offset  size  field
//!      0     4  payload length n, u32 little-endian
//!      4     4  crc32c over bytes 0..4 and the payload, u32 little-endian
//!      8     8  log index, u64 little-endian        \ payload
//!     16  n-8  the entry, as Entry::as_bytes()      /
//! ```
//!
//! The index inside the checksummed payload means a record copied or left at the wrong place
//! cannot pass for a different entry. The checksum also covers the length, so a damaged
//! length is caught rather than followed. Decoding takes untrusted bytes and never panics.

use std::fmt;
use zmq_raft_core::{Entry, EntryError, LogIndex, ENTRY_HEADER_LEN};

/// Bytes before the payload: length and checksum.
pub const RECORD_HEADER_LEN: usize = 8;
/// The smallest payload: an index and an entry header. A zero-filled region (a hole left by a
/// crash) therefore never decodes as a record.
pub const MIN_PAYLOAD_LEN: usize = 8 + ENTRY_HEADER_LEN;
/// The largest payload accepted: bounds what a damaged length can make a reader allocate.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// Why bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The bytes end before the record does (`need` bytes in all, `have` available).
    Incomplete {
        have: usize,
        need: usize,
    },
    /// The length field is outside `MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN`.
    BadLength(u32),
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The checksum matched but the payload is not an entry.
    BadEntry(EntryError),
    /// An entry too large to store.
    TooLarge(usize),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Incomplete { have, need } => {
                write!(f, "record cut short: {have} of {need} bytes present")
            }
            RecordError::BadLength(n) => write!(f, "record length {n} is out of range"),
            RecordError::BadChecksum { stored, computed } => write!(
                f,
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            RecordError::BadEntry(e) => write!(f, "record holds no valid entry: {e}"),
            RecordError::TooLarge(n) => write!(
                f,
                "entry of {n} bytes exceeds the {MAX_PAYLOAD_LEN}-byte record limit"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub index: LogIndex,
    pub entry: Entry,
    /// Bytes the record occupies, header included.
    pub len: usize,
}

/// Bytes `entry` takes as a record.
pub fn encoded_len(entry: &Entry) -> usize {
    RECORD_HEADER_LEN + 8 + entry.len()
}

/// Appends the record for `entry` at `index` to `out`.
pub fn encode_into(index: LogIndex, entry: &Entry, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let payload_len = 8 + entry.len();
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(entry.len()));
    }
    let len_bytes = (payload_len as u32).to_le_bytes();
    let index_bytes = index.0.to_le_bytes();
    let crc = crc32c::crc32c(&len_bytes);
    let crc = crc32c::crc32c_append(crc, &index_bytes);
    let crc = crc32c::crc32c_append(crc, entry.as_bytes());
    out.reserve(RECORD_HEADER_LEN + payload_len);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&index_bytes);
    out.extend_from_slice(entry.as_bytes());
    Ok(())
}

/// From the first bytes of a record, its total length (header included), after checking the
/// length field is in range.
pub fn total_len(buf: &[u8]) -> Result<usize, RecordError> {
    let Some(head) = buf.get(..4) else {
        return Err(RecordError::Incomplete {
            have: buf.len(),
            need: RECORD_HEADER_LEN,
        });
    };
    let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let payload = n as usize;
    if !(MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&payload) {
        return Err(RecordError::BadLength(n));
    }
    Ok(RECORD_HEADER_LEN + payload)
}

/// Checks the record at the start of `buf` (length and checksum) without building an entry;
/// returns its index and total length.
pub fn check(buf: &[u8]) -> Result<(LogIndex, usize), RecordError> {
    let total = total_len(buf)?;
    let Some(rec) = buf.get(..total) else {
        return Err(RecordError::Incomplete {
            have: buf.len(),
            need: total,
        });
    };
    let stored = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&rec[..4]), &rec[RECORD_HEADER_LEN..]);
    if stored != computed {
        return Err(RecordError::BadChecksum { stored, computed });
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&rec[RECORD_HEADER_LEN..RECORD_HEADER_LEN + 8]);
    Ok((LogIndex(u64::from_le_bytes(index)), total))
}

/// Decodes the record at the start of `buf` (trailing bytes are ignored).
pub fn decode(buf: &[u8]) -> Result<Record, RecordError> {
    let (index, len) = check(buf)?;
    let entry = Entry::decode(&buf[RECORD_HEADER_LEN + 8..len]).map_err(RecordError::BadEntry)?;
    Ok(Record { index, entry, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};
    use zmq_raft_core::{EntryType, RequestId, Term};

    fn entry(term: u64, data: &[u8]) -> Entry {
        Entry::new(
            RequestId([7; 12]),
            EntryType::State,
            Term(term & Term::MAX.0),
            data,
        )
    }

    fn encoded(index: u64, e: &Entry) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_into(LogIndex(index), e, &mut buf).unwrap();
        buf
    }

    #[test]
    fn layout_is_as_documented() {
        let e = entry(5, b"xy");
        let buf = encoded(0x0102, &e);
        assert_eq!(buf.len(), encoded_len(&e));
        assert_eq!(&buf[0..4], &(8 + e.len() as u32).to_le_bytes());
        assert_eq!(&buf[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(&buf[16..], e.as_bytes());
    }

    #[test]
    fn zeros_are_not_a_record() {
        assert_eq!(decode(&[0u8; 64]), Err(RecordError::BadLength(0)));
        assert!(matches!(
            decode(&[]),
            Err(RecordError::Incomplete { have: 0, .. })
        ));
    }

    #[test]
    fn absurd_length_is_rejected_before_reading() {
        let mut buf = vec![0xff; 16];
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&buf), Err(RecordError::BadLength(u32::MAX)));
    }

    quickcheck! {
        fn round_trip(index: u64, term: u64, data: Vec<u8>, trailing: Vec<u8>) -> bool {
            let e = entry(term, &data);
            let mut buf = encoded(index, &e);
            let len = buf.len();
            buf.extend_from_slice(&trailing);
            decode(&buf) == Ok(Record { index: LogIndex(index), entry: e, len })
        }

        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            // Whatever it returns, it must not panic; and Ok must mean the checksum holds.
            match decode(&bytes) {
                Ok(r) => check(&bytes) == Ok((r.index, r.len)),
                Err(_) => true,
            }
        }

        fn garbage_after_a_valid_length_never_panics(len: u16, bytes: Vec<u8>) -> bool {
            let mut buf = (len as u32).to_le_bytes().to_vec();
            buf.extend_from_slice(&bytes);
            let _ = decode(&buf);
            true
        }

        fn any_bit_flip_is_detected(index: u64, data: Vec<u8>, pos: usize, bit: u8) -> TestResult {
            let e = entry(3, &data);
            let mut buf = encoded(index, &e);
            let pos = pos % buf.len();
            buf[pos] ^= 1 << (bit % 8);
            // crc32c detects every single-bit error; a flipped length is caught by range,
            // truncation, or the checksum, which covers it.
            TestResult::from_bool(decode(&buf).is_err())
        }

        fn every_proper_prefix_is_incomplete_or_bad(index: u64, data: Vec<u8>, cut: usize) -> bool {
            let e = entry(1, &data);
            let buf = encoded(index, &e);
            let cut = cut % buf.len();
            match decode(&buf[..cut]) {
                Err(RecordError::Incomplete { have, .. }) => have == cut,
                _ => false,
            }
        }
    }
}
