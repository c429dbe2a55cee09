//! The simulator's proof that it finds bugs: each deliberately broken core must fail within
//! 2,000 seeds. Run with `cargo test -p zmq-raft-sim --features broken --release`.

use zmq_raft_core::broken::Bug;
use zmq_raft_core::Config;
use zmq_raft_sim::options::Overrides;
use zmq_raft_sim::{find_failure, Verdict};

const MAX_SEEDS: u64 = 2_000;

fn caught(bug: Bug, configure: fn(&mut Config)) {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let found = find_failure(1, MAX_SEEDS, &Overrides::default(), configure, jobs);
    match found {
        Some((seed, verdict)) => {
            assert_ne!(verdict, Verdict::Pass);
            println!("{bug:?}: caught by seed {seed}: {verdict:?}");
        }
        None => panic!("{bug:?} survived {MAX_SEEDS} seeds"),
    }
}

#[test]
fn ack_before_durable_is_caught() {
    caught(Bug::AckBeforeDurable, |c| {
        c.bug = Some(Bug::AckBeforeDurable)
    });
}

#[test]
fn commit_by_counting_old_term_replicas_is_caught() {
    caught(Bug::CommitOldTerm, |c| c.bug = Some(Bug::CommitOldTerm));
}

#[test]
fn skipping_truncation_of_a_conflicting_suffix_is_caught() {
    caught(Bug::SkipTruncate, |c| c.bug = Some(Bug::SkipTruncate));
}

#[test]
fn two_votes_in_one_term_are_caught() {
    caught(Bug::DoubleVote, |c| c.bug = Some(Bug::DoubleVote));
}

#[test]
fn forgetting_request_ids_on_restart_is_caught() {
    caught(Bug::ForgetRequestIds, |c| {
        c.bug = Some(Bug::ForgetRequestIds)
    });
}
