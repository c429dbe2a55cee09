//! The key-value state machine the simulated clients use. Reads go through the log too, so a
//! read's result is defined by its position in the log: that is what makes them linearizable.

use crate::linearizability::{Key, Ret, Value};
use std::collections::BTreeMap;
use zmq_raft_core::{Entry, EntryType, LogIndex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Put { key: Key, value: Value },
    Get { key: Key },
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17);
        match *self {
            Command::Put { key, value } => {
                b.push(0);
                b.extend_from_slice(&key.to_le_bytes());
                b.extend_from_slice(&value.to_le_bytes());
            }
            Command::Get { key } => {
                b.push(1);
                b.extend_from_slice(&key.to_le_bytes());
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<Command> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        match b.first()? {
            0 => Some(Command::Put {
                key: word(1)?,
                value: word(9)?,
            }),
            1 => Some(Command::Get { key: word(1)? }),
            _ => None,
        }
    }
}

/// One peer's state machine, rebuilt from scratch after a restart.
#[derive(Default, Debug, Clone)]
pub struct KvStore {
    data: BTreeMap<Key, Value>,
    /// The result of each applied command, by log index, for answering clients.
    results: BTreeMap<LogIndex, Ret>,
}

impl KvStore {
    pub fn apply(&mut self, index: LogIndex, entry: &Entry) {
        if entry.kind() != EntryType::State {
            return;
        }
        let ret = match Command::decode(entry.data()) {
            Some(Command::Put { key, value }) => {
                self.data.insert(key, value);
                Ret::Ok
            }
            Some(Command::Get { key }) => Ret::Value(self.data.get(&key).copied()),
            None => return,
        };
        self.results.insert(index, ret);
    }

    /// A read served outside the log (ReadIndex or lease).
    pub fn get(&self, key: Key) -> Option<Value> {
        self.data.get(&key).copied()
    }

    /// Whether two stores hold the same keys and values (results are not compared: a store
    /// rebuilt from a snapshot has none for the entries the snapshot covers).
    pub fn same_data(&self, other: &KvStore) -> bool {
        self.data == other.data
    }

    /// The snapshot of this store: its keys and values.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + 16 * self.data.len());
        b.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        for (k, v) in &self.data {
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// A store rebuilt from `snapshot_bytes`; `None` if the bytes are not one.
    pub fn from_snapshot(b: &[u8]) -> Option<KvStore> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let n = word(0)? as usize;
        if b.len() != 8 + 16 * n {
            return None;
        }
        let mut data = BTreeMap::new();
        for i in 0..n {
            data.insert(word(8 + 16 * i)?, word(16 + 16 * i)?);
        }
        Some(KvStore {
            data,
            results: BTreeMap::new(),
        })
    }

    pub fn result(&self, index: LogIndex) -> Option<&Ret> {
        self.results.get(&index)
    }
}
