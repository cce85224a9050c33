//! `rhaiflow worker`: runs the executions submitted to a PostgreSQL store (`run --submit`),
//! from the queues it is given, up to `--concurrency` at once; and `rhaiflow workers list`.
//!
//! A worker takes waiting executions in batches, runs each on a thread of its own through
//! one shared store (one writer, one heartbeat that renews the leases of everything it
//! runs), and reaps: executions whose worker died are queued again and resumed by whichever
//! worker takes them. SIGTERM or Ctrl-C stops it gracefully: it takes nothing more and
//! finishes what it runs; a second signal ends it at once, leaving its executions to others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

mod tasks;

use super::report;
use crate::diagnostic::{Code, Diagnostic};
use crate::runner;
use crate::store::{PgStore, Store, StoreLocation, Wake};

/// How often a worker queues again what dead workers held: a dead worker's executions wait at
/// most its lease and this to be taken up.
const REAP_EVERY: Duration = Duration::from_millis(500);
/// How often it also forgets the tasks of executions that ended without reading them (killed).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct WorkerArgs {
    /// The PostgreSQL store (default: $RHAIFLOW_STORE).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// A queue to take executions from (repeat for several).
    #[arg(long = "queue", value_name = "NAME", default_value = "default")]
    queues: Vec<String>,
    /// Executions run at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Seconds between looks at the queues when nothing wakes the worker (new work wakes it
    /// at once through LISTEN/NOTIFY).
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    poll_interval: f64,
    /// No LISTEN connection, only looks every --poll-interval (behind a pooler in
    /// transaction mode, which does not keep LISTEN).
    #[arg(long)]
    poll_only: bool,
    /// Stop once the queues are empty and nothing runs (scripts, tests, batch jobs).
    #[arg(long)]
    drain: bool,
}

#[derive(Args)]
pub struct WorkersArgs {
    #[command(subcommand)]
    command: WorkersCommand,
    /// The PostgreSQL store (default: $RHAIFLOW_STORE).
    #[arg(long, value_name = "URL", global = true)]
    store: Option<String>,
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// The workers: alive or gone, their queues, what they run.
    List,
}

/// The shared store a worker command names (only PostgreSQL's is shared), with at most
/// `connections` connections.
fn shared_store(option: Option<&str>, connections: usize) -> Result<(StoreLocation, PgStore), Diagnostic> {
    let location = StoreLocation::locate(option)?;
    let StoreLocation::Postgres(url) = &location else {
        return Err(Diagnostic::plain(
            Code::Store,
            format!("workers need a store they share, and {location} is a SQLite file"),
        )
        .with_help("give a PostgreSQL store: --store postgres://user@host/db (or RHAIFLOW_STORE)"));
    };
    let store = PgStore::open_pool(url, connections)?;
    Ok((location, store))
}

pub fn worker(args: WorkerArgs) -> i32 {
    if args.concurrency == 0 {
        report(&Diagnostic::plain(Code::BadOption, "--concurrency must be 1 or more"));
        return 2;
    }
    // Each execution commits through a writer of its own, on connections the worker shares:
    // one per execution, and a few for reading, taking work and the heartbeat.
    let opened = shared_store(args.store.as_deref(), args.concurrency + 3).and_then(|(location, store)| {
        let name = store.register_worker(&args.queues, args.concurrency)?;
        Ok((location, store, name))
    });
    let (location, store, name) = match opened {
        Ok(opened) => opened,
        Err(d) => {
            report(&d);
            return 2;
        }
    };
    let signals = StopSignals::install();
    say!("worker {name} takes from {} ({} at once)", args.queues.join(", "), args.concurrency);
    let store = Arc::new(store);
    let wake = Arc::new(Wake::default());
    if !args.poll_only {
        store.listen(wake.clone());
    }
    let running = Arc::new(AtomicUsize::new(0));
    let sent_tasks = match tasks::TakenTasks::new(store.clone(), &name, running.clone(), wake.clone()) {
        Ok(sent_tasks) => sent_tasks,
        Err(e) => {
            report(&Diagnostic::plain(Code::Store, format!("worker {name} cannot start its task runtime: {e}")));
            return 1;
        }
    };
    let mut last_reap = Instant::now() - Duration::from_secs(3600);
    let mut last_sweep = last_reap;
    let poll = Duration::from_secs_f64(args.poll_interval.clamp(0.001, 60.0));
    loop {
        if signals.count() > 0 {
            break;
        }
        // Half a lease: a dead worker's executions wait at most lease + this to be taken up.
        if last_reap.elapsed() >= REAP_EVERY {
            last_reap = Instant::now();
            let sweep = last_sweep.elapsed() >= SWEEP_EVERY;
            if sweep {
                last_sweep = last_reap;
            }
            if let Err(e) = store.reap(sweep) {
                say!("worker {name}: reaping failed: {e}");
            }
        }
        let free = args.concurrency.saturating_sub(running.load(Ordering::SeqCst));
        let taken = if free > 0 { store.take(&args.queues, free) } else { Ok(Vec::new()) };
        let free = free.saturating_sub(taken.as_ref().map_or(0, Vec::len));
        let tasks = if free > 0 { store.take_tasks(&args.queues, free) } else { Ok(Vec::new()) };
        let (taken, tasks) = match (taken, tasks) {
            (Ok(taken), Ok(tasks)) => (taken, tasks),
            (Err(e), _) | (_, Err(e)) => {
                say!("worker {name}: cannot take work: {e}");
                std::thread::sleep(poll.max(Duration::from_secs(1)));
                continue;
            }
        };
        if taken.is_empty() && tasks.is_empty() {
            if args.drain && running.load(Ordering::SeqCst) == 0 && store.unfinished(&args.queues).is_ok_and(|n| n == 0)
            {
                break;
            }
            // Woken by a submission, a sent task, room made, or a signal; else looks again.
            wake.wait(if args.poll_only { poll } else { poll.min(REAP_EVERY) });
            continue;
        }
        for task in tasks {
            sent_tasks.start(task);
        }
        for (id, waited) in taken {
            running.fetch_add(1, Ordering::SeqCst);
            let (store, location, done, woken) = (store.clone(), location.clone(), running.clone(), wake.clone());
            let spawned = std::thread::Builder::new()
                .name("rhaiflow-execution".into())
                .stack_size(crate::exec::SCRIPT_STACK_BYTES)
                .spawn(move || {
                    run_one(store, &location, &id, waited);
                    done.fetch_sub(1, Ordering::SeqCst);
                    // Room for one more: take it now.
                    woken.notify();
                });
            if spawned.is_err() {
                running.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    let _ = store.worker_stopping(false);
    if running.load(Ordering::SeqCst) > 0 {
        say!("worker {name} stopping: it takes nothing more, and finishes what it runs (again to stop now)");
    }
    while running.load(Ordering::SeqCst) > 0 && signals.count() < 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = running.load(Ordering::SeqCst);
    if left > 0 {
        // Its leases run out and other workers take the executions up.
        say!("worker {name} stopped with {left} execution(s) running: other workers take them up");
        return 1;
    }
    let _ = store.worker_stopping(true);
    say!("worker {name} stopped");
    0
}

/// Runs one taken execution (its first run, or a resume of one whose worker died).
fn run_one(worker: Arc<PgStore>, location: &StoreLocation, id: &str, waited_ms: f64) {
    say!("▶ {id} (waited {waited_ms:.1} ms)");
    let store = match worker.sibling() {
        Ok(store) => Arc::new(store) as Arc<dyn Store>,
        Err(e) => {
            // Its lease runs out and a worker takes it up again.
            say!("✘ {id}: {e}");
            return;
        }
    };
    let report = runner::resume_in(store, location, id, Vec::new(), false, None);
    let how = match &report.diagnostic {
        Some(d) => format!(": {}", d.message),
        None => String::new(),
    };
    let status = match report.status {
        runner::Status::Succeeded => "✔ succeeded",
        runner::Status::Failed => "✘ failed",
        runner::Status::Invalid => "✘ refused",
        runner::Status::Cancelled => "■ cancelled",
    };
    say!("{status} {id} ({}) in {:.2}s{how}", report.workflow, report.elapsed.as_secs_f64());
}

/// SIGTERM and SIGINT, counted: the first stops taking work, the second stops at once.
struct StopSignals {
    count: Arc<AtomicUsize>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(runtime) = runtime {
            // Installed now, before any work is taken; waited for on a thread of their own.
            let streams = runtime.block_on(async {
                Some((signal(SignalKind::terminate()).ok()?, signal(SignalKind::interrupt()).ok()?))
            });
            if let Some((mut terminate, mut interrupt)) = streams {
                let _ = std::thread::Builder::new().name("rhaiflow-signals".into()).spawn(move || {
                    runtime.block_on(async move {
                        loop {
                            tokio::select! {
                                _ = terminate.recv() => {}
                                _ = interrupt.recv() => {}
                            }
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                });
            }
        }
        StopSignals { count }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

pub fn workers(args: WorkersArgs) -> i32 {
    let WorkersCommand::List = args.command;
    let listed = shared_store(args.store.as_deref(), 1).and_then(|(_, store)| Ok(store.workers()?));
    let workers = match listed {
        Ok(workers) => workers,
        Err(d) => {
            report(&d);
            return 2;
        }
    };
    if workers.is_empty() {
        say!("no workers");
        return 0;
    }
    say_out!("WORKER\tSTATE\tQUEUES\tCONCURRENCY\tSTARTED\tSEEN\tRUNNING");
    for w in workers {
        let state = match (w.alive, w.stopping) {
            (false, _) => "gone",
            (true, true) => "stopping",
            (true, false) => "alive",
        };
        say_out!(
            "{}\t{state}\t{}\t{}\t{}\t{:.1}s ago\t{}",
            w.name,
            w.queues.join(","),
            w.concurrency,
            w.started_at,
            w.silent_for,
            if w.running.is_empty() { "-".to_string() } else { w.running.join(",") }
        );
    }
    0
}
