//! Cluster membership: a configuration of voting peers, or a transitional joint one (Cold,new)
//! in which elections and commits need a majority of both. CONFIG log entries carry it in
//! zmq-raft's encoding: MessagePack of `[[id, url], ...]`, or `{old: [...], new: [...]}` while
//! joint.

use crate::types::PeerId;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: PeerId,
    pub url: String,
}

impl Member {
    pub fn new(id: &str, url: &str) -> Member {
        Member {
            id: PeerId::new(id),
            url: url.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub old: Vec<Member>,
    /// The configuration being moved to, while joint.
    pub new: Option<Vec<Member>>,
}

/// Why a configuration is refused or cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipError(pub String);

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MembershipError {}

fn err<T>(msg: impl Into<String>) -> Result<T, MembershipError> {
    Err(MembershipError(msg.into()))
}

impl Membership {
    pub fn simple(members: Vec<Member>) -> Membership {
        Membership {
            old: members,
            new: None,
        }
    }

    pub fn is_joint(&self) -> bool {
        self.new.is_some()
    }

    /// Every voter, in either half of a joint configuration.
    pub fn voters(&self) -> BTreeSet<PeerId> {
        self.groups().flatten().map(|m| m.id.clone()).collect()
    }

    fn groups(&self) -> impl Iterator<Item = &Vec<Member>> {
        std::iter::once(&self.old).chain(self.new.as_ref())
    }

    /// The highest value a majority of every group has reached: with `value(p)` a peer's match
    /// index, the index that may commit; with a round number, the round confirmed.
    pub fn quorum_value<T: Ord + Copy + Default>(&self, value: impl Fn(&PeerId) -> T) -> T {
        self.groups()
            .map(|g| {
                if g.is_empty() {
                    return T::default();
                }
                // Clusters are small: sort on the stack, not the heap (this runs per ack).
                let mut small = [T::default(); 16];
                let mut large = Vec::new();
                let v: &mut [T] = if g.len() <= small.len() {
                    for (slot, m) in small.iter_mut().zip(g) {
                        *slot = value(&m.id);
                    }
                    &mut small[..g.len()]
                } else {
                    large.extend(g.iter().map(|m| value(&m.id)));
                    &mut large
                };
                v.sort_unstable_by(|a, b| b.cmp(a));
                v[g.len() / 2]
            })
            .min()
            .unwrap_or_default()
    }

    /// Does `yes` hold for a majority of every group?
    pub fn quorum(&self, yes: impl Fn(&PeerId) -> bool) -> bool {
        self.groups()
            .all(|g| g.iter().filter(|m| yes(&m.id)).count() > g.len() / 2)
    }

    /// Checks a requested new configuration against this one (zmq-raft's rules): not empty,
    /// no id or url twice, and an id keeps its url.
    pub fn validate_change(&self, new: &[Member]) -> Result<(), MembershipError> {
        if new.is_empty() {
            return err("the new configuration has no peers");
        }
        let mut ids = BTreeSet::new();
        let mut urls = BTreeSet::new();
        for m in new {
            if m.id.as_str().is_empty() {
                return err("a peer id is empty");
            }
            if !ids.insert(m.id.clone()) {
                return err(format!("peer id {} is listed twice", m.id));
            }
            if !m.url.is_empty() && !urls.insert(m.url.clone()) {
                return err(format!("url {} is listed twice", m.url));
            }
            let old = self.groups().flatten().find(|o| o.id == m.id);
            if let Some(o) = old {
                if !o.url.is_empty() && o.url != m.url {
                    return err(format!(
                        "peer {} has url {} in the current configuration, not {}",
                        m.id, o.url, m.url
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- MessagePack (the subset zmq-raft uses for configurations) ----

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.new {
            None => encode_members(&mut out, &self.old),
            Some(new) => {
                out.push(0x82);
                encode_str(&mut out, "old");
                encode_members(&mut out, &self.old);
                encode_str(&mut out, "new");
                encode_members(&mut out, new);
            }
        }
        out
    }

    /// Decodes untrusted bytes (a CONFIG entry's data).
    pub fn decode(bytes: &[u8]) -> Result<Membership, MembershipError> {
        let mut r = Reader { b: bytes, at: 0 };
        let m = match r.peek()? {
            0x80..=0x8f | 0xde | 0xdf => {
                let n = r.map_len()?;
                let (mut old, mut new) = (None, None);
                for _ in 0..n {
                    match r.str()?.as_str() {
                        "old" => old = Some(r.members()?),
                        "new" => new = Some(r.members()?),
                        other => {
                            return err(format!("unexpected key {other:?} in a configuration"))
                        }
                    }
                }
                match (old, new) {
                    (Some(old), Some(new)) => Membership {
                        old,
                        new: Some(new),
                    },
                    _ => return err("a joint configuration needs both old and new"),
                }
            }
            _ => Membership::simple(r.members()?),
        };
        if r.at != bytes.len() {
            return err("trailing bytes after the configuration");
        }
        Ok(m)
    }
}

fn encode_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, w16: u8, w32: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(w16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(w32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n <= 31 {
        out.push(0xa0 | n as u8);
    } else if n <= u8::MAX as usize {
        out.push(0xd9);
        out.push(n as u8);
    } else {
        encode_len(out, n, 0, 0, 0xda, 0xdb);
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode_members(out: &mut Vec<u8>, members: &[Member]) {
    encode_len(out, members.len(), 0x90, 15, 0xdc, 0xdd);
    for m in members {
        out.push(0x92);
        encode_str(out, m.id.as_str());
        encode_str(out, &m.url);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Result<u8, MembershipError> {
        match self.b.get(self.at) {
            Some(&x) => Ok(x),
            None => err("configuration ends early"),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], MembershipError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => err("configuration ends early"),
        }
    }

    fn be(&mut self, n: usize) -> Result<usize, MembershipError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0usize, |a, &x| (a << 8) | x as usize))
    }

    fn array_len(&mut self) -> Result<usize, MembershipError> {
        match self.take(1)?[0] {
            x @ 0x90..=0x9f => Ok((x & 0x0f) as usize),
            0xdc => self.be(2),
            0xdd => self.be(4),
            x => err(format!("expected an array, found byte 0x{x:02x}")),
        }
    }

    fn map_len(&mut self) -> Result<usize, MembershipError> {
        match self.take(1)?[0] {
            x @ 0x80..=0x8f => Ok((x & 0x0f) as usize),
            0xde => self.be(2),
            0xdf => self.be(4),
            x => err(format!("expected a map, found byte 0x{x:02x}")),
        }
    }

    fn str(&mut self) -> Result<String, MembershipError> {
        let n = match self.take(1)?[0] {
            x @ 0xa0..=0xbf => (x & 0x1f) as usize,
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            x => return err(format!("expected a string, found byte 0x{x:02x}")),
        };
        match std::str::from_utf8(self.take(n)?) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => err("a string in the configuration is not UTF-8"),
        }
    }

    fn members(&mut self) -> Result<Vec<Member>, MembershipError> {
        let n = self.array_len()?;
        // Every member takes at least 3 bytes: refuse counts the input cannot hold.
        if n > self.b.len() {
            return err("configuration claims more peers than it holds");
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if self.array_len()? != 2 {
                return err("a peer must be an [id, url] pair");
            }
            let id = self.str()?;
            let url = self.str()?;
            v.push(Member {
                id: PeerId::new(&id),
                url,
            });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn three() -> Vec<Member> {
        vec![
            Member::new("1", "tcp://127.0.0.1:8047"),
            Member::new("2", "tcp://127.0.0.1:8147"),
            Member::new("3", "tcp://127.0.0.1:8247"),
        ]
    }

    #[test]
    fn golden_simple_configuration() {
        let m = Membership::simple(vec![Member::new("a", "u")]);
        assert_eq!(m.encode(), vec![0x91, 0x92, 0xa1, b'a', 0xa1, b'u']);
        assert_eq!(Membership::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn golden_joint_configuration() {
        let m = Membership {
            old: vec![Member::new("a", "u")],
            new: Some(vec![]),
        };
        let mut expected = vec![
            0x82, 0xa3, b'o', b'l', b'd', 0x91, 0x92, 0xa1, b'a', 0xa1, b'u',
        ];
        expected.extend_from_slice(&[0xa3, b'n', b'e', b'w', 0x90]);
        assert_eq!(m.encode(), expected);
        assert_eq!(Membership::decode(&expected).unwrap(), m);
    }

    #[test]
    fn joint_quorum_needs_both_majorities() {
        let m = Membership {
            old: three(),
            new: Some(vec![
                Member::new("3", "tcp://127.0.0.1:8247"),
                Member::new("4", "tcp://127.0.0.1:8347"),
                Member::new("5", "tcp://127.0.0.1:8447"),
            ]),
        };
        // 1 and 2 are a majority of old only; 3 and 4 of new only.
        assert!(!m.quorum(|p| ["1", "2"].contains(&p.as_str())));
        assert!(!m.quorum(|p| ["4", "5"].contains(&p.as_str())));
        assert!(m.quorum(|p| ["1", "3", "4"].contains(&p.as_str())));
        let idx = |p: &PeerId| match p.as_str() {
            "1" => 9,
            "2" => 8,
            "3" => 5,
            "4" => 7,
            _ => 1,
        };
        // old: 9,8,5 -> 8; new: 7,5,1 -> 5.
        assert_eq!(m.quorum_value(idx), 5);
        assert_eq!(m.voters().len(), 5);
    }

    #[test]
    fn changes_are_validated() {
        let m = Membership::simple(three());
        assert!(m.validate_change(&[]).is_err());
        let twice = vec![Member::new("1", "a"), Member::new("1", "b")];
        assert!(m.validate_change(&twice).is_err());
        let moved = vec![Member::new("1", "tcp://elsewhere:1")];
        assert!(m.validate_change(&moved).is_err());
        let mut grown = three();
        grown.push(Member::new("4", "tcp://127.0.0.1:8347"));
        assert!(m.validate_change(&grown).is_ok());
    }

    quickcheck! {
        fn round_trip(ids: Vec<String>, joint: bool) -> bool {
            let members: Vec<Member> = ids.iter().map(|i| Member { id: PeerId::new(i), url: format!("tcp://{i}") }).collect();
            let m = Membership { old: members.clone(), new: joint.then(|| members.clone()) };
            Membership::decode(&m.encode()) == Ok(m)
        }

        fn garbage_never_panics(bytes: Vec<u8>) -> bool {
            let _ = Membership::decode(&bytes);
            true
        }
    }
}
