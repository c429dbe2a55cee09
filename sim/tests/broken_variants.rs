//! The simulator's proof that it finds bugs: each deliberately broken core or storage engine
//! must fail within 2,000 seeds. Run with
//! `cargo test -p zmq-raft-sim --features broken --release --test broken_variants`.

use zmq_raft_sim::options::Overrides;
use zmq_raft_sim::{find_failure, planted, Verdict};

const MAX_SEEDS: u64 = 2_000;

fn caught(name: &str) {
    let variant = planted::by_name(name).expect("a planted bug");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    match find_failure(1, MAX_SEEDS, &Overrides::default(), variant, jobs) {
        Some((seed, verdict)) => {
            assert_ne!(verdict, Verdict::Pass);
            println!("{name}: caught by seed {seed}: {verdict:?}");
        }
        None => panic!("{name} survived {MAX_SEEDS} seeds"),
    }
}

#[test]
fn ack_before_durable_is_caught() {
    caught("ack-before-durable");
}

#[test]
fn commit_by_counting_old_term_replicas_is_caught() {
    caught("commit-old-term");
}

#[test]
fn skipping_truncation_of_a_conflicting_suffix_is_caught() {
    caught("skip-truncate");
}

#[test]
fn two_votes_in_one_term_are_caught() {
    caught("double-vote");
}

#[test]
fn forgetting_request_ids_on_restart_is_caught() {
    caught("forget-request-ids");
}

#[test]
fn skipping_the_directory_sync_of_a_new_segment_is_caught() {
    caught("skip-dir-sync");
}

#[test]
fn serving_a_read_before_the_heartbeat_round_is_caught() {
    caught("read-without-round");
}

#[test]
fn changing_membership_without_the_joint_step_is_caught() {
    caught("skip-joint-step");
}

#[test]
fn compacting_past_the_commit_index_is_caught() {
    caught("compact-past-commit");
}

#[test]
fn every_planted_bug_has_a_test() {
    assert_eq!(planted::NAMES.len(), 9);
}
