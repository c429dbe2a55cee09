//! The `meta` file: Raft's hard state (term, vote) and an opaque configuration blob.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "ZRAFTHS1" (the trailing digit is the format version)
//!      8     8  term, u64 LE
//!     16     4  length v of voted_for, u32 LE; 0xffffffff means no vote
//!     20     v  voted_for, UTF-8
//!      .     4  length c of the configuration blob, u32 LE
//!      .     c  configuration blob
//!      .     4  crc32c of everything before it, u32 LE
//! ```
//!
//! Written by replacing the whole file atomically (temp file, fsync, rename, directory fsync)
//! rather than by alternating between two checksummed slots: the hard state changes only on a
//! new term or a vote, so the extra fsync the rename protocol costs is irrelevant, and the
//! file on disk is then always a complete, synced version. A checksum failure can therefore
//! only mean corruption and is reported as such, never repaired.

use crate::error::{Result, StorageError};
use crate::fs::{read_small_file, replace_atomically, Fs};
use std::path::Path;
use zmq_raft_core::{HardState, PeerId, Term};

pub(crate) const META_FILE: &str = "meta";
pub(crate) const META_TMP: &str = "meta.tmp";
const MAGIC: &[u8; 8] = b"ZRAFTHS1";
const NO_VOTE: u32 = u32::MAX;

/// Everything the meta file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub hard_state: HardState,
    pub config: Vec<u8>,
}

pub(crate) fn encode(meta: &Meta) -> Result<Vec<u8>> {
    let too_large = |what: &str| StorageError::InvalidArgument(format!("{what} exceeds 4 GiB"));
    let mut buf = Vec::with_capacity(32 + meta.config.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&meta.hard_state.term.0.to_le_bytes());
    match &meta.hard_state.voted_for {
        None => buf.extend_from_slice(&NO_VOTE.to_le_bytes()),
        Some(peer) => {
            let id = peer.as_str().as_bytes();
            let len = u32::try_from(id.len())
                .ok()
                .filter(|&n| n != NO_VOTE)
                .ok_or_else(|| too_large("peer id"))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(id);
        }
    }
    let len = u32::try_from(meta.config.len()).map_err(|_| too_large("configuration"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&meta.config);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// A cursor over untrusted bytes that reports, instead of panicking, when they run out.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], (u64, String)> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err((
                self.pos as u64,
                format!(
                    "needs {n} more bytes, only {} remain",
                    self.buf.len() - self.pos
                ),
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> std::result::Result<u32, (u64, String)> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, (u64, String)> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// Decodes a meta file; on failure, the offset and reason.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Meta, (u64, String)> {
    if bytes.len() < MAGIC.len() + 4 {
        return Err((
            0,
            format!("{} bytes is too short for a meta file", bytes.len()),
        ));
    }
    let body_len = bytes.len() - 4;
    let (body, crc) = bytes.split_at(body_len);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err((
            body_len as u64,
            format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    let mut c = Cursor { buf: body, pos: 0 };
    if c.take(8)? != MAGIC {
        return Err((0, "not a meta file (bad magic or version)".into()));
    }
    let term = Term(c.u64()?);
    let vote_pos = c.pos as u64;
    let voted_for = match c.u32()? {
        NO_VOTE => None,
        n => {
            let id = std::str::from_utf8(c.take(n as usize)?)
                .map_err(|_| (vote_pos, "voted_for is not UTF-8".to_string()))?;
            Some(PeerId::new(id))
        }
    };
    let n = c.u32()? as usize;
    let config = c.take(n)?.to_vec();
    if c.pos != body.len() {
        return Err((
            c.pos as u64,
            "trailing bytes after the configuration".into(),
        ));
    }
    Ok(Meta {
        hard_state: HardState { term, voted_for },
        config,
    })
}

/// Loads `dir/meta`, or `None` if there is none yet.
pub(crate) fn load<F: Fs>(fs: &F, dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join(META_FILE);
    let Some(bytes) = read_small_file(fs, &path)? else {
        return Ok(None);
    };
    decode(&bytes)
        .map(Some)
        .map_err(|(offset, reason)| StorageError::corrupt(&path, offset, reason))
}

/// Durably replaces `dir/meta`.
pub(crate) fn store<F: Fs>(fs: &F, dir: &Path, meta: &Meta) -> Result<()> {
    let bytes = encode(meta)?;
    replace_atomically(fs, dir, META_FILE, META_TMP, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn meta(term: u64, vote: Option<String>, config: Vec<u8>) -> Meta {
        Meta {
            hard_state: HardState {
                term: Term(term),
                voted_for: vote.as_deref().map(PeerId::new),
            },
            config,
        }
    }

    #[test]
    fn empty_vote_differs_from_no_vote() {
        let a = meta(1, Some(String::new()), vec![]);
        let b = meta(1, None, vec![]);
        assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
        assert_eq!(decode(&encode(&b).unwrap()).unwrap(), b);
    }

    quickcheck! {
        fn round_trip(term: u64, vote: Option<String>, config: Vec<u8>) -> bool {
            let m = meta(term, vote, config);
            decode(&encode(&m).unwrap()) == Ok(m)
        }

        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            let _ = decode(&bytes);
            true
        }

        fn garbage_with_valid_checksum_never_panics(body: Vec<u8>) -> bool {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&body);
            let crc = crc32c::crc32c(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let _ = decode(&bytes);
            true
        }

        fn any_bit_flip_is_detected(term: u64, vote: Option<String>, config: Vec<u8>, pos: usize, bit: u8) -> bool {
            let mut bytes = encode(&meta(term, vote, config)).unwrap();
            let pos = pos % bytes.len();
            bytes[pos] ^= 1 << (bit % 8);
            decode(&bytes).is_err()
        }
    }
}
