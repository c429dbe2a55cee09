//! Static settings of a node.

use crate::types::PeerId;

#[derive(Clone, Debug)]
pub struct Config {
    /// This peer.
    pub id: PeerId,
    /// The voting members the cluster starts with, this peer included if it votes. CONFIG
    /// entries in the log override it. A peer that is not a voter never campaigns.
    pub voters: Vec<PeerId>,
    /// Peers that are not voters but receive the log from the leader (zmq-raft's CLIENT state):
    /// the documented way to add a peer is to start it as a learner, let it catch up, then
    /// change the membership.
    pub learners: Vec<PeerId>,
    /// Election timeouts are drawn uniformly from `[min, max)` milliseconds.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// How often a leader sends heartbeats (and retries unanswered appends).
    pub heartbeat_interval_ms: u64,
    /// A follower that has not answered a pipelined append for this long is probed again.
    pub replication_timeout_ms: u64,
    /// Upper bounds of one AppendEntries message.
    pub max_batch_entries: usize,
    pub max_batch_bytes: usize,
    /// Flow control: unacknowledged appends in flight per follower.
    pub max_inflight_msgs: usize,
    pub max_inflight_bytes: usize,
    /// Largest accepted proposal payload.
    pub max_entry_bytes: usize,
    /// Request ids older than this (by the second they carry) are refused and forgotten.
    pub request_id_ttl_secs: u64,
    /// Request ids claiming to be made further in the future than this are refused.
    pub request_id_max_future_secs: u64,
    /// How long a leader goes without hearing from a majority before stepping down
    /// (CheckQuorum); 0 means the minimum election timeout. Safety never depends on it.
    pub check_quorum_ms: u64,
    /// Serve reads on a leader without a heartbeat round while its lease is provably valid.
    pub lease_reads: bool,
    /// Bound on any peer's clock rate error, in parts per million; leases shrink by twice it.
    pub max_clock_drift_ppm: u64,
    /// A planted bug (simulator self-test only).
    #[cfg(feature = "broken")]
    pub bug: Option<crate::broken::Bug>,
}

impl Config {
    pub fn new(id: PeerId, voters: Vec<PeerId>) -> Config {
        Config {
            id,
            voters,
            learners: Vec::new(),
            election_timeout_min_ms: 200,
            election_timeout_max_ms: 400,
            heartbeat_interval_ms: 50,
            replication_timeout_ms: 200,
            max_batch_entries: 1024,
            max_batch_bytes: 1 << 20,
            max_inflight_msgs: 32,
            max_inflight_bytes: 8 << 20,
            max_entry_bytes: 4 << 20,
            request_id_ttl_secs: 8 * 3600,
            request_id_max_future_secs: 3600,
            check_quorum_ms: 0,
            lease_reads: false,
            max_clock_drift_ppm: 100_000,
            #[cfg(feature = "broken")]
            bug: None,
        }
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.election_timeout_min_ms == 0
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return Err(format!(
                "election timeout range [{}, {}) ms is empty",
                self.election_timeout_min_ms, self.election_timeout_max_ms
            ));
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_min_ms
        {
            return Err(format!(
                "heartbeat interval {} ms must be positive and below the minimum election timeout {} ms",
                self.heartbeat_interval_ms, self.election_timeout_min_ms
            ));
        }
        if self.max_batch_entries == 0 || self.max_inflight_msgs == 0 {
            return Err("batch and in-flight limits must be positive".into());
        }
        let mut sorted = self.voters.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return Err("a voter is listed twice".into());
        }
        if let Some(both) = self.learners.iter().find(|l| self.voters.contains(l)) {
            return Err(format!("{both} is listed both as a voter and as a learner"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_settings_are_refused() {
        let id = PeerId::new("a");
        let ok = Config::new(id.clone(), vec!["a".into(), "b".into()]);
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.heartbeat_interval_ms = c.election_timeout_min_ms;
        assert!(c.validate().unwrap_err().contains("heartbeat"));
        let mut c = ok.clone();
        c.election_timeout_max_ms = c.election_timeout_min_ms;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.voters.push("b".into());
        assert!(c.validate().unwrap_err().contains("twice"));
        let mut c = ok;
        c.learners.push("b".into());
        assert!(c.validate().unwrap_err().contains("learner"));
    }
}
