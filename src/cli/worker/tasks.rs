//! The tasks executions sent to a worker's queues (`exec::remote`), run side by side on one
//! runtime of the worker's: its loop takes them in batches, their outcomes are written
//! together (one commit for all that ended meanwhile), and the cancels of all of them are
//! looked for in one query five times a second. A no-op task costs the queue and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use crate::exec::remote;
use crate::store::{PgStore, TakenTask, Wake};

const LOOK_FOR_CANCELS_EVERY: Duration = Duration::from_millis(200);

/// A task that ended, its outcome not written yet.
struct Ended {
    id: i64,
    task: String,
    execution_id: String,
    /// A no-op (nothing was said of it when it started either).
    nothing: bool,
    outcome: Value,
}

struct Shared {
    store: Arc<PgStore>,
    worker: String,
    /// What the worker runs (executions and tasks): a task counts until its outcome is written.
    running: Arc<AtomicUsize>,
    /// The worker's loop, woken when room was made.
    wake: Arc<Wake>,
    ended: Mutex<Vec<Ended>>,
    some_ended: Notify,
    /// The cancel switch of each running task.
    cancels: Mutex<HashMap<i64, oneshot::Sender<()>>>,
}

pub struct TakenTasks {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

impl TakenTasks {
    pub fn new(
        store: Arc<PgStore>,
        worker: &str,
        running: Arc<AtomicUsize>,
        wake: Arc<Wake>,
    ) -> std::io::Result<TakenTasks> {
        // Two threads: as many as cores here; the tasks mostly wait (for a process, the store).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rhaiflow-tasks")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            store,
            worker: worker.to_string(),
            running,
            wake,
            ended: Mutex::default(),
            some_ended: Notify::new(),
            cancels: Mutex::default(),
        });
        runtime.spawn(write_outcomes(shared.clone()));
        runtime.spawn(look_for_cancels(shared.clone()));
        Ok(TakenTasks { runtime, shared })
    }

    /// Runs `task`; it counts as running until its outcome is written.
    pub fn start(&self, task: TakenTask) {
        let TakenTask { id, job } = task;
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        let (cancel, cancelled) = oneshot::channel();
        self.shared.cancels.lock().insert(id, cancel);
        let shared = self.shared.clone();
        self.runtime.spawn(async move {
            if !job.nothing {
                say!("▷ task {} of {}", job.task, job.execution_id);
            }
            let forced = async {
                // A switch dropped unused (the task ended) is no cancel.
                if cancelled.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let outcome = remote::run_taken(&job, &shared.worker, forced).await;
            shared.cancels.lock().remove(&id);
            shared.ended.lock().push(Ended {
                id,
                task: job.task,
                execution_id: job.execution_id,
                nothing: job.nothing,
                outcome,
            });
            shared.some_ended.notify_one();
        });
    }
}

/// Writes the outcomes of the tasks that ended, all those that ended meanwhile in one commit.
async fn write_outcomes(shared: Arc<Shared>) {
    loop {
        shared.some_ended.notified().await;
        let ended = std::mem::take(&mut *shared.ended.lock());
        if ended.is_empty() {
            continue;
        }
        let outcomes: Vec<(i64, Value)> = ended.iter().map(|e| (e.id, e.outcome.clone())).collect();
        let store = shared.store.clone();
        let kept = match tokio::task::spawn_blocking(move || store.tasks_done(&outcomes)).await {
            Ok(Ok(kept)) => kept.into_iter().collect::<std::collections::HashSet<i64>>(),
            failed => {
                // Written again in a while: dropped, the task would count as running for ever.
                let why = failed.map_or_else(|e| e.to_string(), |r| r.err().map(|e| e.to_string()).unwrap_or_default());
                say!("worker {}: {} outcome(s) not written yet: {why}", shared.worker, ended.len());
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut waiting = shared.ended.lock();
                let later = std::mem::replace(&mut *waiting, ended);
                waiting.extend(later);
                shared.some_ended.notify_one();
                continue;
            }
        };
        for e in &ended {
            if !kept.contains(&e.id) {
                // Taken from this worker meanwhile (its lease ran out): the other run counts.
                say!("task {} of {} was taken over: its outcome here is not kept", e.task, e.execution_id);
            } else if e.outcome["ok"] != Value::Bool(true) {
                let why = e.outcome["message"].as_str().unwrap_or("failed");
                say!("✘ {why}: task {} of {}", e.task, e.execution_id);
            } else if !e.nothing {
                say!("✔ succeeded: task {} of {}", e.task, e.execution_id);
            }
        }
        shared.running.fetch_sub(ended.len(), Ordering::SeqCst);
        shared.wake.notify();
    }
}

/// Five times a second, one look for the cancels of every running task (or a task taken from
/// this worker, or forgotten by its execution): each is killed.
async fn look_for_cancels(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(LOOK_FOR_CANCELS_EVERY).await;
        let ids: Vec<i64> = shared.cancels.lock().keys().copied().collect();
        if ids.is_empty() {
            continue;
        }
        let store = shared.store.clone();
        let Ok(Ok(cancelled)) = tokio::task::spawn_blocking(move || store.tasks_cancelled(&ids)).await else {
            continue;
        };
        let mut cancels = shared.cancels.lock();
        for id in cancelled {
            if let Some(cancel) = cancels.remove(&id) {
                let _ = cancel.send(());
            }
        }
    }
}
