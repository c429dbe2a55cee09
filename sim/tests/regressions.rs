//! Seeds that once failed, kept so what they found stays fixed. Each names what it found.

use zmq_raft_sim::options::Overrides;
use zmq_raft_sim::{run_seed, Variant, Verdict};

fn passes(seed: u64) {
    let r = run_seed(seed, &Overrides::default(), Variant::default(), true);
    assert_eq!(
        r.verdict,
        Verdict::Pass,
        "seed {seed}; last events:\n{}",
        r.trace_tail
    );
}

/// Simulator bug: an update was counted as acknowledged when the leader committed it, but the
/// run ended before any peer applied it (the client had not seen the answer yet), so the final
/// check reported it lost. Acknowledgement now means the client received the result.
#[test]
fn seed_9077_ack_counted_when_the_client_receives_it() {
    passes(9077);
}

/// Same finding as 9077, on a 5-peer scenario.
#[test]
fn seed_10115_ack_counted_when_the_client_receives_it() {
    passes(10115);
}

/// Simulator model bug found when the real storage engine came in: a truncation is durable
/// as soon as the engine returns, so the recovery check must not count entries a pending
/// truncating write had already cut from what the core considered durable.
#[test]
fn seed_1828_a_pending_truncation_unreports_what_it_cuts() {
    passes(1828);
}

/// Simulator model bug: a peer whose disk was corrupted stays down for good, but the copies it
/// had acknowledged still counted toward the majority that committed them.
#[test]
fn seed_1521_copies_on_a_corrupted_peer_were_acknowledged() {
    passes(1521);
}

/// Core bug found by the swarm once membership changes ran: a follower whose configuration
/// was stale dropped AppendEntries from a leader elected by a newer configuration it had not
/// seen, so it could never catch up, and the cluster stalled. Only election traffic is now
/// restricted to members; appends are taken from whoever leads a term at least ours.
#[test]
fn seed_430_a_lagging_follower_accepts_the_leader_of_a_newer_configuration() {
    passes(430);
}

/// Same finding as 430, in another scenario.
#[test]
fn seed_865_a_lagging_follower_accepts_the_leader_of_a_newer_configuration() {
    passes(865);
}

/// Core bug found by the swarm once snapshots ran: installing the leader's snapshot discarded
/// a divergent suffix of the follower's log but kept its request ids, so as leader it later
/// answered a retried request with the index of an unrelated entry. The table is now rebuilt
/// from the entries the log still holds.
#[test]
fn seed_3671_installing_a_snapshot_forgets_the_ids_of_replaced_entries() {
    passes(3671);
}

/// Simulator client bug: after a membership change, two removed peers named each other (or
/// nobody) as leader, and clients stepping through peers in order bounced between them
/// forever, so the liveness probe never reached the new configuration. Clients now try a
/// random other peer when no leader is named.
#[test]
fn seed_19218_clients_escape_removed_peers() {
    passes(19218);
}
