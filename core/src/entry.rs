//! Log entries in zmq-raft's on-wire layout, kept encoded so the same bytes go to disk, to
//! followers and to the state machine without re-encoding:
//!
//! ```text
//! offset  size  field
//!      0    12  request id
//!     12     1  entry type: 0 STATE, 1 CONFIG, 2 CHECKPOINT
//!     13     7  term, little-endian
//!     20     *  data
//! ```

use crate::types::Term;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Bytes of header before an entry's data.
pub const ENTRY_HEADER_LEN: usize = 20;

/// A 12-byte request id: 4-byte big-endian creation second, 3-byte machine id, 2-byte process
/// id, 3-byte counter. Its leading second is what lets the cluster forget ids after a TTL.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct RequestId(pub [u8; 12]);

impl RequestId {
    /// The id CHECKPOINT entries carry.
    pub const ZERO: RequestId = RequestId([0; 12]);

    /// Builds an id from its parts; `counter` keeps its low 24 bits.
    pub fn from_parts(unix_secs: u32, machine: [u8; 3], pid: u16, counter: u32) -> RequestId {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&unix_secs.to_be_bytes());
        b[4..7].copy_from_slice(&machine);
        b[7..9].copy_from_slice(&pid.to_be_bytes());
        b[9..12].copy_from_slice(&counter.to_be_bytes()[1..4]);
        RequestId(b)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<RequestId, EntryError> {
        let arr: [u8; 12] = bytes
            .try_into()
            .map_err(|_| EntryError::BadRequestIdLength(bytes.len()))?;
        Ok(RequestId(arr))
    }

    /// The second (since the Unix epoch) the id was made in.
    pub fn unix_secs(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 12]
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// zmq-raft's three kinds of log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EntryType {
    /// Data for the state machine.
    State = 0,
    /// A cluster configuration.
    Config = 1,
    /// Appended by a new leader so entries of earlier terms commit without a client update.
    Checkpoint = 2,
}

impl EntryType {
    pub fn from_byte(b: u8) -> Result<EntryType, EntryError> {
        match b {
            0 => Ok(EntryType::State),
            1 => Ok(EntryType::Config),
            2 => Ok(EntryType::Checkpoint),
            other => Err(EntryError::UnknownType(other)),
        }
    }
}

/// Why bytes are not a valid entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    TooShort(usize),
    UnknownType(u8),
    BadRequestIdLength(usize),
    TermTooLarge(Term),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::TooShort(n) => write!(
                f,
                "log entry of {n} bytes is shorter than its {ENTRY_HEADER_LEN}-byte header"
            ),
            EntryError::UnknownType(t) => write!(f, "log entry has unknown type byte {t}"),
            EntryError::BadRequestIdLength(n) => {
                write!(f, "request id must be 12 bytes, got {n}")
            }
            EntryError::TermTooLarge(t) => write!(f, "term {t} does not fit in 7 bytes"),
        }
    }
}

impl std::error::Error for EntryError {}

/// One log entry, held in its encoded form. Cloning shares the bytes.
///
/// Construction validates the header, so every `Entry` has a known type and a term; the
/// accessors never fail.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Entry(Arc<[u8]>);

impl Entry {
    /// Encodes a new entry.
    pub fn new(request_id: RequestId, kind: EntryType, term: Term, data: &[u8]) -> Entry {
        assert!(
            term <= Term::MAX,
            "term {term} does not fit the entry header"
        );
        let mut buf = Vec::with_capacity(ENTRY_HEADER_LEN + data.len());
        buf.extend_from_slice(&request_id.0);
        buf.push(kind as u8);
        buf.extend_from_slice(&term.0.to_le_bytes()[..7]);
        buf.extend_from_slice(data);
        Entry(Arc::from(buf))
    }

    /// The CHECKPOINT a new leader appends: zero request id, msgpack `nil` as data.
    pub fn checkpoint(term: Term) -> Entry {
        Entry::new(RequestId::ZERO, EntryType::Checkpoint, term, &[0xc0])
    }

    /// Decodes untrusted bytes (from a peer or from disk).
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        Self::validate(bytes)?;
        Ok(Entry(Arc::from(bytes)))
    }

    /// Like [`Entry::decode`] but takes ownership, avoiding a copy.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Entry, EntryError> {
        Self::validate(&bytes)?;
        Ok(Entry(Arc::from(bytes)))
    }

    fn validate(bytes: &[u8]) -> Result<(), EntryError> {
        if bytes.len() < ENTRY_HEADER_LEN {
            return Err(EntryError::TooShort(bytes.len()));
        }
        EntryType::from_byte(bytes[12])?;
        Ok(())
    }

    /// The encoded bytes, exactly as they travel and are stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn request_id(&self) -> RequestId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.0[..12]);
        RequestId(id)
    }

    pub fn kind(&self) -> EntryType {
        EntryType::from_byte(self.0[12]).expect("validated on construction")
    }

    pub fn term(&self) -> Term {
        let mut t = [0u8; 8];
        t[..7].copy_from_slice(&self.0[13..20]);
        Term(u64::from_le_bytes(t))
    }

    pub fn data(&self) -> &[u8] {
        &self.0[ENTRY_HEADER_LEN..]
    }

    /// Encoded size in bytes, used for batching and flow control.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: an entry has at least its header. Present for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Entry({:?} {:?} t{} {}B)",
            self.kind(),
            self.request_id(),
            self.term(),
            self.data().len()
        )
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded zmq-raft log entry")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Entry, E> {
                Entry::decode(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Entry, E> {
                Entry::from_vec(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Entry, A::Error> {
                let mut buf = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    buf.push(b);
                }
                Entry::from_vec(buf).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    /// PROTO.md's first entry example, byte for byte.
    #[test]
    fn golden_state_entry() {
        let id = RequestId([
            0x59, 0x56, 0xdc, 0x88, 0x26, 0xf2, 0x7e, 0x10, 0xdc, 0xcc, 0xab, 0x20,
        ]);
        let e = Entry::new(id, EntryType::State, Term(42), b"foo");
        let expected: &[u8] = &[
            0x59, 0x56, 0xdc, 0x88, 0x26, 0xf2, 0x7e, 0x10, 0xdc, 0xcc, 0xab, 0x20, 0x00, 0x2a,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x66, 0x6f, 0x6f,
        ];
        assert_eq!(e.as_bytes(), expected);
        assert_eq!(e.term(), Term(42));
        assert_eq!(e.kind(), EntryType::State);
        assert_eq!(e.request_id(), id);
        assert_eq!(e.data(), b"foo");
        assert_eq!(id.unix_secs(), 0x5956dc88);
    }

    /// PROTO.md's CHECKPOINT example.
    #[test]
    fn golden_checkpoint_entry() {
        let e = Entry::checkpoint(Term(43));
        let mut expected = vec![0u8; 12];
        expected.extend_from_slice(&[0x02, 0x2b, 0, 0, 0, 0, 0, 0, 0xc0]);
        assert_eq!(e.as_bytes(), &expected[..]);
    }

    #[test]
    fn seven_byte_term_is_little_endian() {
        let e = Entry::new(RequestId::ZERO, EntryType::Config, Term::MAX, b"");
        assert_eq!(&e.as_bytes()[13..20], &[0xff; 7]);
        assert_eq!(e.term(), Term::MAX);
        let e = Entry::new(RequestId::ZERO, EntryType::Config, Term(0x0102030405), b"");
        assert_eq!(&e.as_bytes()[13..20], &[5, 4, 3, 2, 1, 0, 0]);
    }

    #[test]
    fn request_id_parts() {
        let id = RequestId::from_parts(0x01020304, [5, 6, 7], 0x0809, 0xff0a0b0c);
        assert_eq!(id.0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c]);
        assert_eq!(id.unix_secs(), 0x01020304);
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert_eq!(Entry::decode(&[]), Err(EntryError::TooShort(0)));
        assert_eq!(Entry::decode(&[0; 19]), Err(EntryError::TooShort(19)));
        let mut bad = [0u8; 20];
        bad[12] = 3;
        assert_eq!(Entry::decode(&bad), Err(EntryError::UnknownType(3)));
    }

    quickcheck! {
        fn round_trip(id: Vec<u8>, kind: u8, term: u64, data: Vec<u8>) -> bool {
            let mut rid = [0u8; 12];
            for (d, s) in rid.iter_mut().zip(id.iter()) { *d = *s; }
            let kind = EntryType::from_byte(kind % 3).unwrap();
            let term = Term(term & Term::MAX.0);
            let e = Entry::new(RequestId(rid), kind, term, &data);
            let d = Entry::decode(e.as_bytes()).unwrap();
            d == e && d.term() == term && d.kind() == kind && d.data() == &data[..]
                && d.request_id() == RequestId(rid)
        }

        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            match Entry::decode(&bytes) {
                Ok(e) => bytes.len() >= ENTRY_HEADER_LEN && bytes[12] <= 2 && e.as_bytes() == &bytes[..],
                Err(_) => bytes.len() < ENTRY_HEADER_LEN || bytes[12] > 2,
            }
        }
    }
}
