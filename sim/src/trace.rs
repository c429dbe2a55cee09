//! The trace of a run: a crc32c digest over every event (two runs of a seed must agree on
//! it) and a ring of the latest events, printed when an invariant breaks.

use std::collections::VecDeque;
use std::fmt::Write as _;

const KEEP: usize = 80;

#[derive(Default)]
pub struct Trace {
    digest: u32,
    events: u64,
    recent: VecDeque<(u64, String)>,
    /// Rendering text costs time: only the digest is kept unless asked for.
    pub keep_text: bool,
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            keep_text: true,
            ..Default::default()
        }
    }

    /// Records one event: `words` feed the digest; `text` renders it for humans.
    pub fn record(&mut self, at: u64, words: &[u64], text: impl FnOnce() -> String) {
        let mut buf = [0u8; 8 * 8];
        let mut n = 0;
        for w in std::iter::once(&at).chain(words.iter()).take(8) {
            buf[n..n + 8].copy_from_slice(&w.to_le_bytes());
            n += 8;
        }
        self.digest = crc32c::crc32c_append(self.digest, &buf[..n]);
        self.events += 1;
        if self.keep_text {
            if self.recent.len() == KEEP {
                self.recent.pop_front();
            }
            self.recent.push_back((at, text()));
        }
    }

    pub fn digest(&self) -> u32 {
        self.digest
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn tail(&self) -> String {
        let mut s = String::new();
        for (at, line) in &self.recent {
            let _ = writeln!(s, "  {:>8}.{:03}s  {line}", at / 1000, at % 1000);
        }
        s
    }
}
