//! The scenario a seed chooses: cluster size, duration and the fault mix (swarm testing: each
//! seed turns every fault class on or off and picks its intensity, so rare combinations occur).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt;

/// A fault class the command line can force on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultClass {
    Loss,
    Duplication,
    Delay,
    Partitions,
    Crashes,
    TornWrites,
    SlowDisk,
    ClockDrift,
    Corruption,
}

impl FaultClass {
    pub const ALL: [FaultClass; 9] = [
        FaultClass::Loss,
        FaultClass::Duplication,
        FaultClass::Delay,
        FaultClass::Partitions,
        FaultClass::Crashes,
        FaultClass::TornWrites,
        FaultClass::SlowDisk,
        FaultClass::ClockDrift,
        FaultClass::Corruption,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Loss => "loss",
            FaultClass::Duplication => "dup",
            FaultClass::Delay => "delay",
            FaultClass::Partitions => "partitions",
            FaultClass::Crashes => "crashes",
            FaultClass::TornWrites => "torn",
            FaultClass::SlowDisk => "slow-disk",
            FaultClass::ClockDrift => "drift",
            FaultClass::Corruption => "corrupt",
        }
    }

    pub fn parse(s: &str) -> Option<FaultClass> {
        FaultClass::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// What the command line fixes; everything else the seed decides.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub peers: Option<usize>,
    pub duration_ms: Option<u64>,
    pub force_on: Vec<FaultClass>,
    pub force_off: Vec<FaultClass>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// A read is a command in the log, answered when applied.
    Log,
    /// `Node::read`: a heartbeat round confirms leadership, then the state machine answers.
    ReadIndex,
    /// `Node::read` with leader leases under the scenario's clock-drift bound.
    Lease,
}

/// A scenario, fully determined by the seed and the overrides.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    /// Every simulated peer: the first `voters` start as the configuration, the rest as
    /// learners (spares for membership changes).
    pub peers: usize,
    pub voters: usize,
    /// Mean time between membership changes, ms (0 = none).
    pub reconfig_every_ms: u64,
    /// Mean time between snapshots (each of a random peer), ms (0 = none), and the request-id
    /// TTL, short when snapshots are on so the prune index lets the log compact.
    pub snapshot_every_ms: u64,
    pub request_id_ttl_secs: u64,
    /// Length of the safety phase (faults on), in simulated milliseconds.
    pub duration_ms: u64,
    /// Bound on the liveness phase: a leader and a fresh commit must appear within it.
    pub liveness_ms: u64,
    /// Per-message probabilities, in parts per million.
    pub loss_ppm: u32,
    pub dup_ppm: u32,
    /// One-way network delay range, ms.
    pub delay_ms: (u64, u64),
    /// Mean time between partition changes, ms (0 = none).
    pub partition_every_ms: u64,
    /// Mean time between crashes, ms (0 = none), and the restart delay range.
    pub crash_every_ms: u64,
    pub restart_ms: (u64, u64),
    /// Chance (ppm) that a freshly elected leader is killed moments later: the nemesis that
    /// leaves half-replicated entries of many terms behind.
    pub crash_new_leader_ppm: u32,
    /// Chance (ppm) that a freshly elected leader is cut off before its first message leaves,
    /// leaving a log with an unreplicated entry of a newer term behind.
    pub isolate_new_leader_ppm: u32,
    /// A crash keeps a random prefix of the unsynced writes, possibly cutting one in half.
    pub torn_writes: bool,
    /// Time one fsync takes, ms.
    pub sync_ms: (u64, u64),
    /// Per-peer clock rate deviation bound, parts per million (0 = perfect clocks).
    pub drift_ppm: u32,
    /// Chance (ppm) that a crash also flips a bit in data the peer had synced (media
    /// corruption); at most a minority of peers is ever corrupted.
    pub corrupt_ppm: u32,
    /// The storage engine's segment size, small so segments roll over and get compacted.
    pub segment_size: u64,
    pub clients: usize,
    pub keys: u64,
    /// Client think time between operations, ms, and its request timeout.
    pub think_ms: (u64, u64),
    pub client_timeout_ms: u64,
    /// Core settings the seed varies too, so flow control and batching limits get exercised.
    /// How clients read: through the log, by ReadIndex, or by ReadIndex with leases.
    pub reads: ReadMode,
    pub max_batch_entries: usize,
    pub max_inflight_msgs: usize,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_ms: u64,
    /// CheckQuorum period as a multiple of the minimum election timeout: a slow one keeps a
    /// deposed leader believing it leads for longer, which is what reads must survive.
    pub check_quorum_factor: u64,
    /// Flow control: bytes of appends in flight per follower.
    pub max_inflight_bytes: usize,
    /// Mean time between leadership transfers, ms (0 = none).
    pub transfer_every_ms: u64,
}

impl Scenario {
    pub fn from_seed(seed: u64, o: &Overrides) -> Scenario {
        // Its own stream, so scenario choices never shift the run's random numbers.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let mut pick = |lo: u64, hi: u64| lo + rng.next_u64() % (hi - lo + 1);
        let on = |class: FaultClass, draw: u64| {
            if o.force_on.contains(&class) {
                true
            } else if o.force_off.contains(&class) {
                false
            } else {
                draw.is_multiple_of(2)
            }
        };
        let draws: Vec<u64> = (0..9).map(|_| pick(0, 1 << 20)).collect();
        let loss = on(FaultClass::Loss, draws[0]);
        let dup = on(FaultClass::Duplication, draws[1]);
        let delay = on(FaultClass::Delay, draws[2]);
        let partitions = on(FaultClass::Partitions, draws[3]);
        let crashes = on(FaultClass::Crashes, draws[4]);
        let torn = on(FaultClass::TornWrites, draws[5]);
        let slow = on(FaultClass::SlowDisk, draws[6]);
        let drift = on(FaultClass::ClockDrift, draws[7]);
        let corrupt = on(FaultClass::Corruption, draws[8]);
        let voters = o.peers.unwrap_or([3, 3, 5, 5, 7][pick(0, 4) as usize]);
        let reconfig = pick(0, 2) == 0;
        let spares = if reconfig { pick(0, 2) as usize } else { 0 };
        let snapshots = pick(0, 1) == 0;
        let duration_ms = o.duration_ms.unwrap_or(pick(5_000, 15_000));
        let delay_max = if delay { pick(5, 120) } else { 2 };
        Scenario {
            seed,
            peers: voters + spares,
            voters,
            reconfig_every_ms: if reconfig { pick(500, 3_000) } else { 0 },
            snapshot_every_ms: if snapshots { pick(200, 2_000) } else { 0 },
            request_id_ttl_secs: if snapshots { pick(2, 6) } else { 8 * 3600 },
            duration_ms,
            liveness_ms: 20_000,
            loss_ppm: if loss { pick(1_000, 200_000) as u32 } else { 0 },
            dup_ppm: if dup { pick(1_000, 100_000) as u32 } else { 0 },
            delay_ms: (1, delay_max),
            partition_every_ms: if partitions { pick(300, 3_000) } else { 0 },
            crash_every_ms: if crashes { pick(300, 3_000) } else { 0 },
            // Some peers stay down long enough to fall behind the leader's compaction.
            restart_ms: (pick(10, 200), pick(300, 8_000)),
            crash_new_leader_ppm: if crashes && pick(0, 1) == 0 {
                pick(100_000, 600_000) as u32
            } else {
                0
            },
            torn_writes: torn,
            sync_ms: if slow {
                (pick(1, 10), pick(20, 150))
            } else {
                (0, 1)
            },
            drift_ppm: if drift { pick(1_000, 50_000) as u32 } else { 0 },
            // A corrupted peer stays down for good; with membership changes it could end up
            // a majority of some configuration, which no Raft survives.
            corrupt_ppm: if corrupt && !reconfig {
                pick(100_000, 500_000) as u32
            } else {
                0
            },
            segment_size: [4 << 10, 64 << 10, 1 << 20, 64 << 20][pick(0, 3) as usize],
            clients: pick(1, 6) as usize,
            keys: pick(1, 8),
            think_ms: (0, pick(5, 100)),
            client_timeout_ms: pick(200, 1_000),
            isolate_new_leader_ppm: if partitions && pick(0, 1) == 0 {
                pick(100_000, 500_000) as u32
            } else {
                0
            },
            reads: [
                ReadMode::Log,
                ReadMode::ReadIndex,
                ReadMode::ReadIndex,
                ReadMode::Lease,
            ][pick(0, 3) as usize],
            max_batch_entries: [1, 2, 4, 16, 64, 1024][pick(0, 5) as usize],
            max_inflight_msgs: [1, 2, 8, 32][pick(0, 3) as usize],
            election_timeout_ms: [(150, 300), (200, 400), (300, 600)][pick(0, 2) as usize],
            heartbeat_ms: pick(20, 60),
            check_quorum_factor: [1, 1, 3, 10][pick(0, 3) as usize],
            max_inflight_bytes: [256, 4 << 10, 8 << 20][pick(0, 2) as usize],
            transfer_every_ms: if pick(0, 1) == 0 { pick(300, 3_000) } else { 0 },
        }
    }

    pub fn faults_on(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |b: bool, c: FaultClass| {
            if b {
                v.push(c.name())
            }
        };
        add(self.loss_ppm > 0, FaultClass::Loss);
        add(self.dup_ppm > 0, FaultClass::Duplication);
        add(self.delay_ms.1 > 2, FaultClass::Delay);
        add(self.partition_every_ms > 0, FaultClass::Partitions);
        add(self.crash_every_ms > 0, FaultClass::Crashes);
        add(self.torn_writes, FaultClass::TornWrites);
        add(self.sync_ms.1 > 1, FaultClass::SlowDisk);
        add(self.drift_ppm > 0, FaultClass::ClockDrift);
        add(self.corrupt_ppm > 0, FaultClass::Corruption);
        v
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario: {} voters + {} learners, {} ms of faults, {} clients on {} keys, membership changes every ~{} ms, snapshots every ~{} ms (request ids live {} s)",
            self.voters,
            self.peers - self.voters,
            self.duration_ms,
            self.clients,
            self.keys,
            self.reconfig_every_ms,
            self.snapshot_every_ms,
            self.request_id_ttl_secs
        )?;
        let on = self.faults_on();
        writeln!(
            f,
            "faults:   {}",
            if on.is_empty() {
                "none".to_string()
            } else {
                on.join(", ")
            }
        )?;
        write!(
            f,
            "detail:   loss {:.2}% dup {:.2}% delay {}-{} ms, partitions every ~{} ms, crashes every ~{} ms (restart {}-{} ms, new leaders killed {:.0}%, new leaders isolated {:.0}%), torn {}, fsync {}-{} ms, drift ±{} ppm",
            self.loss_ppm as f64 / 1e4,
            self.dup_ppm as f64 / 1e4,
            self.delay_ms.0,
            self.delay_ms.1,
            self.partition_every_ms,
            self.crash_every_ms,
            self.restart_ms.0,
            self.restart_ms.1,
            self.crash_new_leader_ppm as f64 / 1e4,
            self.isolate_new_leader_ppm as f64 / 1e4,
            self.torn_writes,
            self.sync_ms.0,
            self.sync_ms.1,
            self.drift_ppm
        )?;
        write!(
            f,
            "\ncore:     reads {:?}, batch {} entries, {} in flight, election timeout {}-{} ms, heartbeat {} ms, check quorum x{}, {} B in flight, transfers every ~{} ms; storage: {} B segments, corruption on {:.0}% of crashes",
            self.reads,
            self.max_batch_entries,
            self.max_inflight_msgs,
            self.election_timeout_ms.0,
            self.election_timeout_ms.1,
            self.heartbeat_ms,
            self.check_quorum_factor,
            self.max_inflight_bytes,
            self.transfer_every_ms,
            self.segment_size,
            self.corrupt_ppm as f64 / 1e4
        )
    }
}
