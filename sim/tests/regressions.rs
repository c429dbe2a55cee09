//! Seeds that once failed, kept so what they found stays fixed. Each names what it found.

use zmq_raft_sim::options::Overrides;
use zmq_raft_sim::{default_config, run_seed, Verdict};

fn passes(seed: u64) {
    let r = run_seed(seed, &Overrides::default(), default_config, true);
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
