//! Deterministic cluster simulator for the zmq-raft core.

pub mod linearizability;
