//! Deterministic cluster simulator for the zmq-raft core.
//!
//! One seed picks a scenario (cluster size, fault mix, clients), then runs the real core over
//! an in-memory network and disks in simulated time, checking invariants after every event and
//! linearizability at the end. Nothing reads a clock or iterates a hash map, so a seed replays
//! exactly: same digest, same verdict, on any machine.

pub mod checker;
pub mod disk;
pub mod kv;
pub mod linearizability;
pub mod options;
pub mod trace;
pub mod world;

use options::{Overrides, Scenario};
use std::time::Instant;
use world::{Failure, Stats, World};
use zmq_raft_core::Config;
use zmq_raft_storage::Options;

/// What the simulator runs: settings applied on top of each seed's choices. The default changes
/// nothing; the self-test plants bugs through it.
#[derive(Clone, Copy)]
pub struct Variant {
    pub core: fn(&mut Config),
    pub storage: fn(&mut Options),
}

impl Default for Variant {
    fn default() -> Variant {
        Variant {
            core: |_| {},
            storage: |_| {},
        }
    }
}

/// Bound on the linearizability search per key.
const LINEARIZABILITY_BUDGET: u64 = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// A safety invariant broke (exit code 1).
    Safety(String),
    /// The cluster did not recover after the faults stopped (exit code 2).
    Liveness(String),
    /// The core panicked: an internal assertion fired (exit code 3).
    Panic(String),
}

impl Verdict {
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Safety(_) => 1,
            Verdict::Liveness(_) => 2,
            Verdict::Panic(_) => 3,
        }
    }
}

pub struct Report {
    pub scenario: Scenario,
    pub digest: u32,
    pub stats: Stats,
    pub verdict: Verdict,
    /// The last events before the failure (empty when the trace text was not kept).
    pub trace_tail: String,
    pub wall_secs: f64,
}

/// Runs one seed. `keep_text` keeps a readable trace of recent events (slower); the digest is
/// the same either way.
pub fn run_seed(seed: u64, overrides: &Overrides, variant: Variant, keep_text: bool) -> Report {
    let scenario = Scenario::from_seed(seed, overrides);
    let started = Instant::now();
    let mut world = World::new(scenario.clone(), variant, keep_text);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    let verdict = match outcome {
        Ok(Ok(())) => {
            match linearizability::check(&world.history, LINEARIZABILITY_BUDGET) {
                linearizability::Verdict::NotLinearizable { key, explanation } => {
                    Verdict::Safety(format!("linearizability: key {key}:\n{explanation}"))
                }
                // An undecided search is not a failure; the budget is printed in the summary.
                _ => Verdict::Pass,
            }
        }
        Ok(Err(Failure::Safety(v))) => Verdict::Safety(v.to_string()),
        Ok(Err(Failure::Liveness(m))) => Verdict::Liveness(m),
        Err(panic) => Verdict::Panic(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        ),
    };
    Report {
        scenario,
        digest: world.trace.digest(),
        stats: world.stats,
        trace_tail: world.trace.tail(),
        verdict,
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

/// Runs seeds from `first` on, at most `count` of them, until one fails; spreads them over
/// `jobs` threads. Returns the lowest failing seed found and its verdict.
pub fn find_failure(
    first: u64,
    count: u64,
    overrides: &Overrides,
    variant: Variant,
    jobs: usize,
) -> Option<(u64, Verdict)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    let next = AtomicU64::new(first);
    let found: Mutex<Option<(u64, Verdict)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                let best = found.lock().unwrap().as_ref().map(|f| f.0);
                if seed >= first + count || best.is_some_and(|b| seed > b) {
                    return;
                }
                let r = run_seed(seed, overrides, variant, false);
                if r.verdict != Verdict::Pass {
                    let mut f = found.lock().unwrap();
                    if f.as_ref().is_none_or(|(b, _)| seed < *b) {
                        *f = Some((seed, r.verdict));
                    }
                }
            });
        }
    });
    found.into_inner().unwrap()
}

/// The planted bugs of the self-test, by name (only in `broken` builds).
#[cfg(feature = "broken")]
pub mod planted {
    use super::Variant;
    use zmq_raft_core::broken::Bug;

    pub const NAMES: [&str; 9] = [
        "ack-before-durable",
        "commit-old-term",
        "skip-truncate",
        "double-vote",
        "forget-request-ids",
        "skip-dir-sync",
        "read-without-round",
        "skip-joint-step",
        "compact-past-commit",
    ];

    pub fn by_name(name: &str) -> Option<Variant> {
        let mut v = Variant::default();
        match name {
            "ack-before-durable" => v.core = |c| c.bug = Some(Bug::AckBeforeDurable),
            "commit-old-term" => v.core = |c| c.bug = Some(Bug::CommitOldTerm),
            "skip-truncate" => v.core = |c| c.bug = Some(Bug::SkipTruncate),
            "double-vote" => v.core = |c| c.bug = Some(Bug::DoubleVote),
            "forget-request-ids" => v.core = |c| c.bug = Some(Bug::ForgetRequestIds),
            "skip-dir-sync" => v.storage = |o| o.skip_segment_dir_sync = true,
            "read-without-round" => v.core = |c| c.bug = Some(Bug::ReadWithoutRound),
            "skip-joint-step" => v.core = |c| c.bug = Some(Bug::SkipJointStep),
            "compact-past-commit" => v.core = |c| c.bug = Some(Bug::CompactPastCommit),
            _ => return None,
        }
        Some(v)
    }
}
