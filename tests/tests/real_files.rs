//! The core over the real storage engine on real files: what a client was told committed
//! survives killing and restarting peers, including the whole cluster at once.

use zmq_raft_core::{ClientResult, EntryType, LogIndex, Role};
use zmq_raft_tests::file_cluster::FileCluster;

#[test]
fn committed_updates_survive_killing_every_peer() {
    let mut c = FileCluster::new("kill-all", 3);
    let leader = c.elect();
    for n in 0..200 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, format!("update {n}").as_bytes());
    }
    c.advance(200);
    let committed: Vec<_> = (0..200)
        .map(|n| match c.last_reply(c.request_id(n)) {
            Some(ClientResult::Committed { index }) => *index,
            other => panic!("update {n}: {other:?}"),
        })
        .collect();
    let term = c.peers[&leader].node.term();

    for id in c.ids.clone() {
        c.kill(&id);
    }
    for id in c.ids.clone() {
        c.start(&id);
    }
    // Terms and votes came back from the meta file, entries from the segments.
    for (id, p) in &c.peers {
        assert!(p.node.term() >= term, "{id} forgot its term");
        assert!(
            p.node.last_index() >= *committed.last().unwrap(),
            "{id} lost entries"
        );
    }
    let leader = c.elect();
    c.advance(200);
    let applied = &c.peers[&leader].applied;
    for (n, index) in committed.iter().enumerate() {
        let e = &applied[index.0 as usize - 1];
        assert_eq!(e.kind(), EntryType::State);
        assert_eq!(e.data(), format!("update {n}").as_bytes());
    }
}

#[test]
fn a_retried_request_after_a_full_restart_is_not_applied_twice() {
    let mut c = FileCluster::new("dedup", 3);
    let leader = c.elect();
    let rid = c.request_id(42);
    c.propose(&leader, rid, b"once");
    c.advance(100);
    let Some(&ClientResult::Committed { index }) = c.last_reply(rid) else {
        panic!("not committed");
    };
    for id in c.ids.clone() {
        c.kill(&id);
        c.start(&id);
    }
    let leader = c.elect();
    // The request-id table was rebuilt from the log on disk.
    c.propose(&leader, rid, b"once");
    assert_eq!(c.last_reply(rid), Some(&ClientResult::Committed { index }));
    c.advance(100);
    let copies = c.peers[&leader]
        .applied
        .iter()
        .filter(|e| e.request_id() == rid)
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn a_killed_leader_rejoins_and_catches_up_from_its_files() {
    let mut c = FileCluster::new("rejoin", 3);
    let old = c.elect();
    for n in 0..50 {
        let rid = c.request_id(n);
        c.propose(&old, rid, b"before");
    }
    c.advance(100);
    c.kill(&old);
    let new = c.elect();
    assert_ne!(new, old);
    for n in 50..100 {
        let rid = c.request_id(n);
        c.propose(&new, rid, b"after");
    }
    c.advance(100);
    c.start(&old);
    c.advance(500);
    let p = &c.peers[&old];
    assert_eq!(p.node.role(), Role::Follower);
    assert_eq!(p.node.commit_index(), c.peers[&new].node.commit_index());
    assert!(p.node.commit_index() >= LogIndex(102));
    assert_eq!(p.applied, c.peers[&new].applied[..p.applied.len()]);
}
