//! Linearizability checker for the key-value histories recorded by the simulator.
//!
//! The store is a map of independent registers, so linearizability is
//! P-compositional: the history is linearizable iff every per-key
//! sub-history is. Each key is checked with the Wing & Gong search plus
//! Lowe's memoization of `(linearized set, model state)`, as in Porcupine.
//!
//! Conventions:
//! * Every key starts absent.
//! * A `Put` without a response may or may not have taken effect at any
//!   time after its invocation; its response time is treated as infinite.
//! * A `Get` without a response constrains nothing and is ignored.
//! * A return and a call with the same timestamp count as concurrent, so a
//!   tie can never make a correct history look wrong.
//! * A response of the wrong shape (`Put` answered with a value, `Get`
//!   answered with `Ok`) cannot be explained by any order, so it is reported
//!   as `NotLinearizable`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

pub type Key = u64;
pub type Value = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put { key: Key, value: Value },
    Get { key: Key },
}

impl Op {
    pub fn key(&self) -> Key {
        match *self {
            Op::Put { key, .. } | Op::Get { key } => key,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    Ok,
    Value(Option<Value>),
}

/// One client operation. `ret` is `(response time, result)`, or `None` when
/// the client never saw a response.
#[derive(Clone, Debug)]
pub struct Operation {
    pub client: u64,
    pub op: Op,
    pub call: u64,
    pub ret: Option<(u64, Ret)>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Put { key, value } => format!("put(k{key}, {value})"),
            Op::Get { key } => format!("get(k{key})"),
        };
        let (ret_at, result) = match &self.ret {
            None => ("-".to_string(), "(no response)".to_string()),
            Some((at, Ret::Ok)) => (at.to_string(), "ok".to_string()),
            Some((at, Ret::Value(None))) => (at.to_string(), "absent".to_string()),
            Some((at, Ret::Value(Some(v)))) => (at.to_string(), v.to_string()),
        };
        write!(
            f,
            "client {:<4} {:<24} call {:>8}  ret {:>8}  -> {}",
            self.client, op, self.call, ret_at, result
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invocation; returns a handle to complete it later.
    pub fn invoke(&mut self, client: u64, op: Op, at: u64) -> usize {
        self.ops.push(Operation {
            client,
            op,
            call: at,
            ret: None,
        });
        self.ops.len() - 1
    }

    /// Records the response of the operation behind `handle`.
    ///
    /// An unknown handle or a second completion of the same operation is
    /// ignored (the first response wins), so a buggy caller cannot make the
    /// checker panic. A response time before the invocation is clamped to the
    /// invocation time, because nothing can answer before it is asked.
    pub fn complete(&mut self, handle: usize, at: u64, ret: Ret) {
        if let Some(operation) = self.ops.get_mut(handle) {
            if operation.ret.is_none() {
                operation.ret = Some((at.max(operation.call), ret));
            }
        }
    }

    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable { key: Key, explanation: String },
    Unknown { key: Key },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        *self == Verdict::Linearizable
    }
}

/// Checks the history per key (P-compositionality), keys in ascending order.
///
/// `budget` bounds the search steps per key; a key that exceeds it is
/// `Unknown` (never a false verdict). A definite violation on any key wins
/// over an `Unknown` on another, since it is the more useful answer; among
/// equals the smallest key is reported.
pub fn check(history: &History, budget: u64) -> Verdict {
    let mut first_unknown = None;
    for (key, ops) in partition_by_key(history) {
        match check_key(key, &ops, budget) {
            Verdict::Linearizable => {}
            Verdict::Unknown { key } => {
                first_unknown.get_or_insert(key);
            }
            violation @ Verdict::NotLinearizable { .. } => return violation,
        }
    }
    match first_unknown {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    }
}

/// Most operation lines an explanation lists, so a failing seed stays readable.
const EXPLANATION_LINES: usize = 20;

type State = Option<Value>;

/// An operation as the search sees it: `ret == None` means an infinite
/// response time.
#[derive(Clone, Copy)]
struct KeyOp<'a> {
    call: u64,
    ret: Option<u64>,
    operation: &'a Operation,
}

/// Groups the constraining operations by key. A BTreeMap keeps the key order
/// (and thus the reported key) deterministic.
fn partition_by_key(history: &History) -> BTreeMap<Key, Vec<KeyOp<'_>>> {
    let mut by_key: BTreeMap<Key, Vec<KeyOp<'_>>> = BTreeMap::new();
    for operation in history.operations() {
        let is_unanswered_get = matches!(operation.op, Op::Get { .. }) && operation.ret.is_none();
        if is_unanswered_get {
            continue;
        }
        by_key.entry(operation.op.key()).or_default().push(KeyOp {
            call: operation.call,
            // Operation's fields are public, so clamp here too.
            ret: operation
                .ret
                .as_ref()
                .map(|(at, _)| (*at).max(operation.call)),
            operation,
        });
    }
    by_key
}

fn check_key(key: Key, ops: &[KeyOp<'_>], budget: u64) -> Verdict {
    if let Some(bad) = ops.iter().position(|op| is_malformed(op.operation)) {
        let header = format!(
            "key {key}: the operation marked `>>` has a response of the wrong kind \
             (put must return Ok, get must return a value)"
        );
        return Verdict::NotLinearizable {
            key,
            explanation: explain(header, ops, bad),
        };
    }
    let relevant = drop_unobserved_pending_puts(ops);
    match search(&relevant, budget) {
        Outcome::Linearizable => Verdict::Linearizable,
        Outcome::Unknown => Verdict::Unknown { key },
        Outcome::NotLinearizable { stuck, depth } => {
            let mut header = format!(
                "key {key}: no linearization of its {} operation(s) exists; at most {depth} \
                 could be ordered before the response of the operation marked `>>` had to \
                 be explained",
                relevant.len()
            );
            let omitted = ops.len() - relevant.len();
            if omitted > 0 {
                header.push_str(&format!(
                    " ({omitted} unanswered put(s) whose value no read returned are not listed)"
                ));
            }
            Verdict::NotLinearizable {
                key,
                explanation: explain(header, &relevant, stuck),
            }
        }
    }
}

fn is_malformed(operation: &Operation) -> bool {
    matches!(
        (&operation.op, &operation.ret),
        (Op::Put { .. }, Some((_, Ret::Value(_)))) | (Op::Get { .. }, Some((_, Ret::Ok)))
    )
}

/// A pending Put whose value no Get returned can always be placed last (or
/// omitted): no read between it and the next Put could have returned
/// anything else. Dropping it keeps the verdict and avoids a search branch
/// that would stay concurrent with the whole rest of the history.
fn drop_unobserved_pending_puts<'a>(ops: &[KeyOp<'a>]) -> Vec<KeyOp<'a>> {
    let observed: HashSet<Value> = ops
        .iter()
        .filter_map(|op| match op.operation.ret {
            Some((_, Ret::Value(Some(value)))) => Some(value),
            _ => None,
        })
        .collect();
    ops.iter()
        .filter(|op| match op.operation.op {
            Op::Put { value, .. } => op.ret.is_some() || observed.contains(&value),
            Op::Get { .. } => true,
        })
        .copied()
        .collect()
}

/// The register's sequential specification: the state after `operation`, or
/// `None` if its result is impossible in `state`.
fn apply(state: State, operation: &Operation) -> Option<State> {
    match (&operation.op, &operation.ret) {
        (Op::Put { value, .. }, _) => Some(Some(*value)),
        (Op::Get { .. }, Some((_, Ret::Value(read)))) if *read == state => Some(state),
        _ => None,
    }
}

enum Outcome {
    Linearizable,
    Unknown,
    /// `stuck` is the op whose response was reached unlinearized at the
    /// deepest point of the search; `depth` is how many ops were placed then.
    NotLinearizable {
        stuck: usize,
        depth: usize,
    },
}

/// Wing & Gong search over the call/return event list, with Lowe's cache.
/// Uses an explicit stack so long histories cannot overflow the call stack.
fn search(ops: &[KeyOp<'_>], budget: u64) -> Outcome {
    let mut events = EventList::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut seen: HashSet<(Bitset, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut deepest: Option<(usize, usize)> = None;
    let mut steps: u64 = 0;
    let mut entry = events.first();

    while !events.is_empty() {
        steps += 1;
        if steps > budget {
            return Outcome::Unknown;
        }
        let node = events.nodes[entry];
        if node.is_call {
            if let Some(next_state) = apply(state, ops[node.op].operation) {
                linearized.set(node.op);
                if seen.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    events.lift(entry);
                    entry = events.first();
                    continue;
                }
                linearized.clear(node.op);
            }
            entry = node.next;
        } else {
            // The op's response is reached but it is not placed yet: every
            // ordering of the current prefix fails, so backtrack.
            let deeper = match deepest {
                Some((depth, _)) => stack.len() > depth,
                None => true,
            };
            if deeper {
                deepest = Some((stack.len(), node.op));
            }
            let Some((call, previous)) = stack.pop() else {
                let (depth, stuck) = deepest.unwrap_or((0, node.op));
                return Outcome::NotLinearizable { stuck, depth };
            };
            linearized.clear(events.nodes[call].op);
            state = previous;
            events.unlift(call);
            entry = events.nodes[call].next;
        }
    }
    Outcome::Linearizable
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    op: usize,
    is_call: bool,
    /// For a call node, the index of its return node.
    matching: usize,
}

/// Doubly linked list of call/return events (index 0 is a sentinel head), so
/// linearizing an op is an O(1) unlink that backtracking undoes in LIFO order.
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    fn new(ops: &[KeyOp<'_>]) -> Self {
        // (time, is_return, op): calls sort before returns at equal times so
        // ties count as concurrent; an infinite return sorts after everything.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, false, i));
            order.push((op.ret.unwrap_or(u64::MAX), true, i));
        }
        order.sort_unstable();

        let mut nodes = Vec::with_capacity(order.len() + 1);
        nodes.push(Node {
            prev: NIL,
            next: if order.is_empty() { NIL } else { 1 },
            op: NIL,
            is_call: false,
            matching: NIL,
        });
        let mut return_node = vec![NIL; ops.len()];
        for (pos, &(_, is_return, op)) in order.iter().enumerate() {
            let index = pos + 1;
            if is_return {
                return_node[op] = index;
            }
            nodes.push(Node {
                prev: index - 1,
                next: if index == order.len() { NIL } else { index + 1 },
                op,
                is_call: !is_return,
                matching: NIL,
            });
        }
        for node in nodes.iter_mut().skip(1).filter(|node| node.is_call) {
            node.matching = return_node[node.op];
        }
        EventList { nodes }
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn is_empty(&self) -> bool {
        self.first() == NIL
    }

    /// Unlinks a call and its return. A call always has a successor (at
    /// least its own return), so only the return may be the tail.
    fn lift(&mut self, call: usize) {
        let Node { prev, next, .. } = self.nodes[call];
        self.nodes[prev].next = next;
        self.nodes[next].prev = prev;
        let ret = self.nodes[call].matching;
        let Node { prev, next, .. } = self.nodes[ret];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    /// Exact inverse of `lift`; valid because lifts are undone in LIFO order.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        let Node { prev, next, .. } = self.nodes[ret];
        self.nodes[prev].next = ret;
        if next != NIL {
            self.nodes[next].prev = ret;
        }
        let Node { prev, next, .. } = self.nodes[call];
        self.nodes[prev].next = call;
        self.nodes[next].prev = call;
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.0[bit / 64] &= !(1 << (bit % 64));
    }
}

/// Renders `header` plus the operations around `focus` in call-time order,
/// at most `EXPLANATION_LINES` of them, with `focus` marked `>>`.
fn explain(header: String, ops: &[KeyOp<'_>], focus: usize) -> String {
    let mut by_call: Vec<usize> = (0..ops.len()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    let focus_pos = by_call.iter().position(|&i| i == focus).unwrap_or(0);
    let start = focus_pos
        .saturating_sub(EXPLANATION_LINES / 2)
        .min(by_call.len().saturating_sub(EXPLANATION_LINES));
    let end = (start + EXPLANATION_LINES).min(by_call.len());

    let mut out = header;
    if start > 0 {
        out.push_str(&format!("\n     ... {start} earlier operation(s)"));
    }
    for &i in &by_call[start..end] {
        let marker = if i == focus { ">>" } else { "  " };
        out.push_str(&format!("\n  {marker} {}", ops[i].operation));
    }
    if end < by_call.len() {
        out.push_str(&format!(
            "\n     ... {} later operation(s)",
            by_call.len() - end
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 1_000_000;

    fn put(key: Key, value: Value) -> Op {
        Op::Put { key, value }
    }

    fn get(key: Key) -> Op {
        Op::Get { key }
    }

    fn read(value: Option<Value>) -> Ret {
        Ret::Value(value)
    }

    /// Records a completed operation.
    fn done(h: &mut History, client: u64, op: Op, call: u64, ret_at: u64, ret: Ret) {
        let handle = h.invoke(client, op, call);
        h.complete(handle, ret_at, ret);
    }

    fn assert_violation_on(verdict: Verdict, expected_key: Key) -> String {
        match verdict {
            Verdict::NotLinearizable { key, explanation } => {
                assert_eq!(key, expected_key, "{explanation}");
                explanation
            }
            other => panic!("expected a violation on key {expected_key}, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        let h = History::new();
        assert!(h.is_empty());
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        assert_eq!(check(&h, 0), Verdict::Linearizable);
    }

    #[test]
    fn sequential_put_then_get_is_linearizable() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 7), 0, 10, Ret::Ok);
        done(&mut h, 2, get(1), 20, 30, read(Some(7)));
        assert_eq!(h.len(), 2);
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn get_before_any_put_sees_absent() {
        let mut h = History::new();
        done(&mut h, 1, get(1), 0, 5, read(None));
        done(&mut h, 1, put(1, 3), 10, 15, Ret::Ok);
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_put_is_not_linearizable() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 1), 0, 10, Ret::Ok);
        done(&mut h, 1, put(1, 2), 20, 30, Ret::Ok);
        done(&mut h, 2, get(1), 40, 50, read(Some(1)));
        let explanation = assert_violation_on(check(&h, BUDGET), 1);
        assert!(explanation.contains("key 1"), "{explanation}");
        assert!(explanation.contains(">> client 2"), "{explanation}");
        assert!(explanation.contains("put(k1, 2)"), "{explanation}");
    }

    #[test]
    fn concurrent_get_may_see_old_or_new_value() {
        for seen in [None, Some(5)] {
            let mut h = History::new();
            done(&mut h, 1, put(1, 5), 0, 100, Ret::Ok);
            done(&mut h, 2, get(1), 10, 20, read(seen));
            assert_eq!(check(&h, BUDGET), Verdict::Linearizable, "get saw {seen:?}");
        }
    }

    #[test]
    fn return_and_call_at_same_time_are_concurrent() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 5), 0, 10, Ret::Ok);
        done(&mut h, 2, get(1), 10, 20, read(None));
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn read_of_never_written_value_is_not_linearizable() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 5), 0, 100, Ret::Ok);
        done(&mut h, 2, get(1), 10, 20, read(Some(6)));
        assert_violation_on(check(&h, BUDGET), 1);
    }

    #[test]
    fn new_old_inversion_is_not_linearizable() {
        // Put concurrent with both reads, once acknowledged late, once never.
        for put_ret in [Some(100), None] {
            let mut h = History::new();
            let p = h.invoke(1, put(1, 1), 0);
            if let Some(at) = put_ret {
                h.complete(p, at, Ret::Ok);
            }
            done(&mut h, 2, get(1), 10, 20, read(Some(1)));
            done(&mut h, 3, get(1), 30, 40, read(None));
            assert_violation_on(check(&h, BUDGET), 1);
        }
    }

    #[test]
    fn pending_put_may_or_may_not_take_effect() {
        let mut observed = History::new();
        observed.invoke(1, put(1, 9), 0);
        done(&mut observed, 2, get(1), 50, 60, read(Some(9)));
        done(&mut observed, 2, get(1), 70, 80, read(Some(9)));
        assert_eq!(check(&observed, BUDGET), Verdict::Linearizable);

        let mut unobserved = History::new();
        unobserved.invoke(1, put(1, 9), 0);
        done(&mut unobserved, 2, get(1), 50, 60, read(None));
        done(&mut unobserved, 2, get(1), 70, 80, read(None));
        assert_eq!(check(&unobserved, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn pending_put_cannot_take_effect_before_its_invocation() {
        let mut h = History::new();
        done(&mut h, 2, get(1), 0, 10, read(Some(9)));
        h.invoke(1, put(1, 9), 20);
        assert_violation_on(check(&h, BUDGET), 1);
    }

    #[test]
    fn unanswered_get_is_ignored() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 1), 0, 10, Ret::Ok);
        h.invoke(2, get(1), 20);
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn violation_is_reported_on_its_own_key() {
        let mut h = History::new();
        done(&mut h, 1, put(1, 1), 0, 10, Ret::Ok);
        done(&mut h, 2, get(1), 20, 30, read(Some(1)));
        done(&mut h, 1, put(2, 1), 0, 10, Ret::Ok);
        done(&mut h, 2, get(2), 20, 30, read(None));
        let explanation = assert_violation_on(check(&h, BUDGET), 2);
        assert!(explanation.contains("key 2"), "{explanation}");
        assert!(!explanation.contains("k1"), "{explanation}");
    }

    #[test]
    fn malformed_response_is_reported() {
        let mut h = History::new();
        done(&mut h, 1, get(4), 0, 10, Ret::Ok);
        let explanation = assert_violation_on(check(&h, BUDGET), 4);
        assert!(explanation.contains("wrong kind"), "{explanation}");
    }

    #[test]
    fn bad_handles_and_double_completion_are_ignored() {
        let mut h = History::new();
        h.complete(3, 10, Ret::Ok);
        let p = h.invoke(1, put(1, 1), 5);
        h.complete(p, 1, Ret::Ok); // before the call: clamped
        h.complete(p, 99, read(None)); // second completion: ignored
        assert_eq!(h.operations()[0].ret, Some((5, Ret::Ok)));
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn explanation_is_bounded_for_long_histories() {
        let mut h = History::new();
        for i in 0..200 {
            done(&mut h, 1, put(1, i), i * 10, i * 10 + 5, Ret::Ok);
        }
        done(&mut h, 2, get(1), 5000, 5005, read(Some(3)));
        let explanation = assert_violation_on(check(&h, BUDGET), 1);
        assert!(
            explanation.lines().count() <= EXPLANATION_LINES + 3,
            "{explanation}"
        );
        assert!(explanation.contains(">> client 2"), "{explanation}");
        assert!(
            explanation.contains("earlier operation(s)"),
            "{explanation}"
        );
    }

    /// Many mutually concurrent puts followed by reads: needs real search.
    fn concurrent_history(writers: u64) -> History {
        let mut h = History::new();
        for v in 0..writers {
            done(&mut h, v, put(1, v), v, 1000, Ret::Ok);
        }
        for v in 0..writers {
            done(
                &mut h,
                100 + v,
                get(1),
                2000 + 10 * v,
                2005 + 10 * v,
                read(Some(0)),
            );
        }
        h
    }

    #[test]
    fn tiny_budget_gives_unknown_not_a_wrong_verdict() {
        let h = concurrent_history(12);
        assert_eq!(check(&h, 0), Verdict::Unknown { key: 1 });
        assert_eq!(check(&h, 5), Verdict::Unknown { key: 1 });
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);

        // Same for a history that is actually broken.
        let mut bad = concurrent_history(12);
        done(&mut bad, 999, get(1), 5000, 5005, read(Some(1)));
        assert_eq!(check(&bad, 5), Verdict::Unknown { key: 1 });
        assert_violation_on(check(&bad, BUDGET), 1);
    }

    #[test]
    fn violation_wins_over_unknown_on_another_key() {
        let mut h = concurrent_history(12);
        done(&mut h, 1, put(7, 1), 0, 10, Ret::Ok);
        done(&mut h, 2, get(7), 20, 30, read(Some(2)));
        assert_violation_on(check(&h, 20), 7);
    }

    /// SplitMix64: a tiny deterministic PRNG so tests need no dependencies.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Runs ops atomically against a real map at distinct instants, then
    /// blurs each into a random window around its instant and drops some
    /// responses. Such a history is linearizable by construction.
    fn atomic_history(seed: u64, ops: u64, keys: u64) -> History {
        let mut rng = SplitMix(seed);
        let mut store: BTreeMap<Key, Value> = BTreeMap::new();
        let mut h = History::new();
        for i in 0..ops {
            let instant = 100 + 10 * i;
            let key = rng.below(keys);
            let client = rng.below(8);
            let call = instant - rng.below(40);
            let ret_at = instant + rng.below(40);
            let (op, ret) = if rng.below(2) == 0 {
                let value = rng.below(6);
                store.insert(key, value);
                (put(key, value), Ret::Ok)
            } else {
                (get(key), read(store.get(&key).copied()))
            };
            let handle = h.invoke(client, op, call);
            if rng.below(8) != 0 {
                h.complete(handle, ret_at, ret);
            }
        }
        h
    }

    #[test]
    fn atomic_executions_are_always_linearizable() {
        for seed in 0..300 {
            let h = atomic_history(seed, 150, 3);
            let verdict = check(&h, BUDGET);
            assert_eq!(verdict, Verdict::Linearizable, "seed {seed}");
        }
    }

    #[test]
    fn corrupting_a_read_of_an_atomic_execution_is_caught() {
        for seed in 0..100 {
            let mut h = atomic_history(seed, 150, 3);
            let Some(victim) = h
                .ops
                .iter()
                .position(|o| matches!(o.op, Op::Get { .. }) && o.ret.is_some())
            else {
                continue;
            };
            let at = h.ops[victim].ret.as_ref().map_or(0, |(at, _)| *at);
            h.ops[victim].ret = Some((at, read(Some(1_000))));
            let key = h.ops[victim].op.key();
            assert_violation_on(check(&h, BUDGET), key);
        }
    }

    #[test]
    fn thousands_of_ops_over_many_keys_check_quickly() {
        let h = atomic_history(42, 5000, 30);
        let started = std::time::Instant::now();
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        // Generous bound so debug builds on slow CI still pass.
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }
}
