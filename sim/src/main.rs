//! `sim`: run one seeded scenario, or a swarm of them.

use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use zmq_raft_sim::options::{FaultClass, Overrides};
use zmq_raft_sim::{run_seed, Report, Variant, Verdict};

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    about = "Deterministic cluster simulator for the zmq-raft core",
    long_about = "Runs the real Raft core over a simulated network and disks in simulated time, \
                  injecting the faults each seed chooses, checking safety invariants after every \
                  event, linearizability at the end, and that the cluster recovers once faults stop. \
                  The same seed always replays the same run (compare the digest).\n\n\
                  Exit codes: 0 pass, 1 safety violation, 2 liveness failure, 3 the core panicked."
)]
struct Args {
    /// Run one scenario with this seed and print its summary, digest and verdict.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a swarm over a range of seeds, e.g. 1..2000 (end exclusive) or 1..=2000.
    #[arg(long)]
    seeds: Option<String>,
    /// Cluster size, 3 to 9 (3, 5 or 7 by default, as each seed chooses).
    #[arg(long)]
    peers: Option<usize>,
    /// Length of the fault phase in simulated milliseconds; by default each seed chooses.
    #[arg(long)]
    duration_ms: Option<u64>,
    /// Force fault classes on (comma separated): loss, dup, delay, partitions, crashes, torn,
    /// slow-disk, drift.
    #[arg(long, value_delimiter = ',')]
    on: Vec<String>,
    /// Force fault classes off (same names as --on).
    #[arg(long, value_delimiter = ',')]
    off: Vec<String>,
    /// Worker threads for a swarm (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Stop a swarm at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
    /// Plant a bug (self-test builds only): ack-before-durable, commit-old-term,
    /// skip-truncate, double-vote, forget-request-ids, skip-dir-sync, read-without-round,
    /// skip-joint-step, compact-past-commit.
    #[cfg(feature = "broken")]
    #[arg(long)]
    bug: Option<String>,
}

#[cfg(feature = "broken")]
fn configure_for(args: &Args) -> Variant {
    use zmq_raft_sim::planted;
    match args.bug.as_deref() {
        None => Variant::default(),
        Some(name) => planted::by_name(name).unwrap_or_else(|| {
            eprintln!(
                "sim: unknown bug {name:?}; known: {}",
                planted::NAMES.join(", ")
            );
            std::process::exit(64);
        }),
    }
}

#[cfg(not(feature = "broken"))]
fn configure_for(_: &Args) -> Variant {
    Variant::default()
}

fn parse_classes(names: &[String]) -> Result<Vec<FaultClass>, String> {
    names
        .iter()
        .map(|n| {
            FaultClass::parse(n).ok_or_else(|| {
                let all: Vec<_> = FaultClass::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault class {n:?}; known: {}", all.join(", "))
            })
        })
        .collect()
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("seed range {s:?} must look like A..B or A..=B");
    let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once("..") {
        (a, b, false)
    } else {
        return Err(bad());
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive { b + 1 } else { b };
    if end <= a {
        return Err(format!("seed range {s:?} is empty"));
    }
    Ok((a, end))
}

fn replay_command(seed: u64, args: &Args) -> String {
    let mut cmd = format!("sim --seed {seed}");
    if let Some(p) = args.peers {
        cmd += &format!(" --peers {p}");
    }
    if let Some(d) = args.duration_ms {
        cmd += &format!(" --duration-ms {d}");
    }
    if !args.on.is_empty() {
        cmd += &format!(" --on {}", args.on.join(","));
    }
    if !args.off.is_empty() {
        cmd += &format!(" --off {}", args.off.join(","));
    }
    cmd
}

fn print_report(r: &Report) {
    println!("seed {}", r.scenario.seed);
    println!("{}", r.scenario);
    let s = &r.stats;
    let sim_secs = s.sim_ms as f64 / 1000.0;
    println!(
        "summary:  {:.1} s simulated, {} events, {} messages, {} entries committed, {} elections, {} crashes, {} snapshots taken, {} installed, {}/{} client ops answered",
        sim_secs, s.events, s.messages, s.committed, s.elections, s.crashes, s.snapshots, s.installs, s.ops_completed, s.ops_total
    );
    println!(
        "speed:    {:.0} simulated seconds per wall second ({:.3} s wall)",
        sim_secs / r.wall_secs.max(1e-9),
        r.wall_secs
    );
    println!("digest:   {:08x}", r.digest);
}

fn main() -> ExitCode {
    // The core logs through `log`; RUST_LOG=debug shows it (best with --seed).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    let args = Args::parse();
    let overrides = match (parse_classes(&args.on), parse_classes(&args.off)) {
        (Ok(force_on), Ok(force_off)) => Overrides {
            peers: args.peers,
            duration_ms: args.duration_ms,
            force_on,
            force_off,
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("sim: {e}");
            return ExitCode::from(64);
        }
    };
    if let Some(p) = args.peers {
        if !(3..=9).contains(&p) {
            eprintln!("sim: --peers must be between 3 and 9");
            return ExitCode::from(64);
        }
    }
    if let Some(seed) = args.seed {
        let r = run_seed(seed, &overrides, configure_for(&args), true);
        print_report(&r);
        match &r.verdict {
            Verdict::Pass => println!("verdict:  PASS"),
            v => {
                println!("\nlast events before the failure:\n{}", r.trace_tail);
                println!("verdict:  FAIL ({v:?})");
            }
        }
        return ExitCode::from(r.verdict.exit_code() as u8);
    }
    let range = args.seeds.as_deref().unwrap_or("1..101");
    let (start, end) = match parse_range(range) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(64);
        }
    };
    swarm(start, end, &args, &overrides)
}

fn swarm(start: u64, end: u64, args: &Args, overrides: &Overrides) -> ExitCode {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = AtomicU64::new(start);
    let done = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures: Mutex<Vec<(u64, Verdict)>> = Mutex::new(Vec::new());
    let sim_ms = AtomicU64::new(0);
    let total = end - start;
    let began = Instant::now();
    // A panic inside the core is a finding, reported per seed; keep stderr readable.
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let r = run_seed(seed, overrides, configure_for(args), false);
                sim_ms.fetch_add(r.stats.sim_ms, Ordering::Relaxed);
                if r.verdict != Verdict::Pass {
                    println!(
                        "FAIL seed {seed}: {:?}\n  replay: {}",
                        r.verdict,
                        replay_command(seed, args)
                    );
                    failures.lock().unwrap().push((seed, r.verdict));
                    if args.fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(100) || n == total {
                    let wall = began.elapsed().as_secs_f64();
                    eprintln!(
                        "progress: {n}/{total} seeds, {} failed, {:.0} s wall, {:.0} simulated s per wall s",
                        failures.lock().unwrap().len(),
                        wall,
                        sim_ms.load(Ordering::Relaxed) as f64 / 1000.0 / wall.max(1e-9)
                    );
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let ran = done.load(Ordering::Relaxed);
    println!(
        "{} passed, {} failed",
        ran - failures.len() as u64,
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        let worst = failures
            .iter()
            .map(|(_, v)| v.exit_code())
            .min()
            .unwrap_or(1);
        ExitCode::from(worst as u8)
    }
}
