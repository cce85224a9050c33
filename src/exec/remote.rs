//! A shell or exec task with a `queue`: sent through the store to a worker listening on that
//! queue (possibly on another machine), and its outcome brought back as if it had run here.
//! Closures never travel: they share the script's state, so they run with their execution.
//!
//! An execution looks for the outcomes of all the tasks it waits for at once, every
//! `LOOK_EVERY` (`SentTasks`): a fan-out of thousands costs one query a look, not one a task.
//! A forced cancel asks the worker to kill the task (its process group), and stops waiting
//! after `CANCEL_GRACE` even when no worker answers (none may listen on the queue). A job
//! whose worker died (its lease ran out) is sent again: at least once, as every task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rhai::Dynamic;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::attempt::off_the_workers;
use super::runtime_file::RuntimeFile;
use super::{process, ExecEnv};
use crate::events::TaskInfo;
use crate::store::{RemoteJob, RemoteState, RemoteTasks};
use crate::task::{ErrorKind, ProcessOptions, TaskError};

const LOOK_EVERY: Duration = Duration::from_millis(50);
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Told when a sent task settles.
type Settled = oneshot::Receiver<RemoteState>;

/// A job waiting to be sent, and who waits for its id (and then for it to settle).
type Unsent = (String, RemoteJob, oneshot::Sender<Result<(i64, Settled), TaskError>>);

/// At most this many jobs go in one statement.
const SEND_AT_MOST: usize = 1000;

/// The jobs waiting to be sent, and whether a sender is at work on them.
#[derive(Default)]
struct Outbox {
    jobs: Vec<Unsent>,
    sending: bool,
}

/// Who waits for which task, and the highest id sent. A look takes the outcomes of the tasks
/// up to that id only: each of them had its waiter before its outcome could be read (it was
/// registered with the id, before the sender was told), and a batch on its way is left alone.
#[derive(Default)]
struct Waiting {
    tells: HashMap<i64, oneshot::Sender<RemoteState>>,
    highest: i64,
}

/// The tasks one execution sent, and who waits for each.
pub struct SentTasks {
    remote: Arc<dyn RemoteTasks>,
    execution_id: String,
    waiting: Mutex<Waiting>,
    /// Set while a task looks for the outcomes (started by the first wait, ended when nobody
    /// waits and nothing is left to forget).
    looking: Mutex<bool>,
    /// Jobs are sent together: those that come while a batch is on its way go in the next.
    outbox: Mutex<Outbox>,
}

impl SentTasks {
    pub fn new(remote: Arc<dyn RemoteTasks>, execution_id: String) -> Arc<SentTasks> {
        Arc::new(SentTasks {
            remote,
            execution_id,
            waiting: Mutex::default(),
            looking: Mutex::new(false),
            outbox: Mutex::default(),
        })
    }

    /// Sends `job` to `queue` (with whatever else is being sent): its id, and what tells when
    /// it settled.
    async fn send(self: &Arc<Self>, queue: &str, job: RemoteJob) -> Result<(i64, Settled), TaskError> {
        let (tell, told) = oneshot::channel();
        let start = {
            let mut outbox = self.outbox.lock();
            outbox.jobs.push((queue.to_string(), job, tell));
            !std::mem::replace(&mut outbox.sending, true)
        };
        if start {
            tokio::spawn(self.clone().send_all());
        }
        told.await.map_err(|_| TaskError::internal("the sender of a task ended before sending it"))?
    }

    /// Sends what waits in the outbox, a batch a commit, until it is empty.
    async fn send_all(self: Arc<Self>) {
        loop {
            let batch: Vec<Unsent> = {
                let mut outbox = self.outbox.lock();
                if outbox.jobs.is_empty() {
                    outbox.sending = false;
                    return;
                }
                let cut = outbox.jobs.len().min(SEND_AT_MOST);
                let rest = outbox.jobs.split_off(cut);
                std::mem::replace(&mut outbox.jobs, rest)
            };
            let (jobs, tells): (Vec<(String, RemoteJob)>, Vec<_>) =
                batch.into_iter().map(|(queue, job, tell)| ((queue, job), tell)).unzip();
            let remote = self.remote.clone();
            let sent = match off_the_workers(move || remote.send(&jobs)).await {
                Ok(Ok(ids)) if ids.len() == tells.len() => Ok(ids),
                Ok(Ok(_)) => Err(TaskError::internal("the store lost a sent task")),
                Ok(Err(e)) => Err(TaskError::unrecorded(&e)),
                Err(e) => Err(e),
            };
            let ids = match sent {
                Ok(ids) => ids,
                Err(e) => {
                    for tell in tells {
                        let _ = tell.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            let settles: Vec<Settled> = {
                let mut waiting = self.waiting.lock();
                waiting.highest = ids.iter().copied().fold(waiting.highest, i64::max);
                ids.iter().map(|id| Self::register(&mut waiting, *id)).collect()
            };
            self.keep_looking();
            for ((tell, id), settled) in tells.into_iter().zip(ids).zip(settles) {
                let _ = tell.send(Ok((id, settled)));
            }
        }
    }

    fn register(waiting: &mut Waiting, id: i64) -> Settled {
        let (tell, told) = oneshot::channel();
        waiting.tells.insert(id, tell);
        told
    }

    /// Told when the task `id`, sent already, settles (again).
    fn wait(self: &Arc<Self>, id: i64) -> Settled {
        let settled = Self::register(&mut self.waiting.lock(), id);
        self.keep_looking();
        settled
    }

    fn keep_looking(self: &Arc<Self>) {
        let mut looking = self.looking.lock();
        if !*looking {
            *looking = true;
            tokio::spawn(self.clone().look());
        }
    }

    /// Looks every `LOOK_EVERY` while anyone waits, and tells them what settled.
    async fn look(self: Arc<Self>) {
        loop {
            tokio::time::sleep(LOOK_EVERY).await;
            let up_to = {
                let mut looking = self.looking.lock();
                let mut waiting = self.waiting.lock();
                waiting.tells.retain(|_, tell| !tell.is_closed());
                if waiting.tells.is_empty() {
                    *looking = false;
                    return;
                }
                waiting.highest
            };
            let (remote, execution_id) = (self.remote.clone(), self.execution_id.clone());
            // A look that fails is made again; a store that stays away fails the run elsewhere.
            let Ok(Ok(settled)) = off_the_workers(move || remote.take_settled(&execution_id, up_to)).await else {
                continue;
            };
            let mut waiting = self.waiting.lock();
            for (id, state) in settled {
                if let Some(tell) = waiting.tells.remove(&id) {
                    let _ = tell.send(state);
                }
            }
        }
    }
}

/// Runs a shell or exec task on `queue`.
pub async fn run(
    task: TaskInfo,
    queue: &str,
    argv: &[String],
    display: &str,
    options: &ProcessOptions,
    timeout: Option<f64>,
    env: &ExecEnv,
) -> Result<Dynamic, TaskError> {
    let job = RemoteJob {
        execution_id: env.bus.label().execution_id.to_string(),
        task: task.name.to_string(),
        argv: argv.to_vec(),
        display: display.to_string(),
        env: options.env.clone(),
        cwd: options.cwd.clone(),
        timeout,
        output_limit: options.output_limit,
        nothing: false,
        script: None,
        runtime_properties: None,
    };
    from_outcome(&send(queue, job, env).await?)
}

/// A no-op task on `queue` (`noop(name, #{queue})`): its result names the worker that took it.
pub async fn nothing(task: TaskInfo, queue: &str, env: &ExecEnv) -> Result<Dynamic, TaskError> {
    let job = RemoteJob {
        execution_id: env.bus.label().execution_id.to_string(),
        task: task.name.to_string(),
        argv: Vec::new(),
        display: String::new(),
        env: Vec::new(),
        cwd: None,
        timeout: None,
        output_limit: None,
        nothing: true,
        script: None,
        runtime_properties: None,
    };
    from_outcome(&send(queue, job, env).await?)
}

/// Sends `job` to `queue` and waits for its outcome (what the worker wrote: `outcome`).
pub async fn send(queue: &str, job: RemoteJob, env: &ExecEnv) -> Result<Value, TaskError> {
    let Some(sent) = env.remote.clone() else {
        return Err(TaskError::new(
            ErrorKind::NonRecoverable,
            format!(
                "task `{}` runs on queue `{queue}`, which needs workers sharing a PostgreSQL store (--store \
                 postgres://...)",
                job.task
            ),
        ));
    };
    let (id, mut settled) = sent.send(queue, job).await?;
    let mut given_up_at = None;
    loop {
        let grace = async {
            match given_up_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            state = &mut settled => match state {
                Ok(RemoteState::Done(outcome)) => return Ok(outcome),
                Ok(RemoteState::Lost) => {
                    // Waited for before it is sent again: its outcome cannot come unseen.
                    settled = sent.wait(id);
                    store_call(&sent.remote, move |r| r.send_again(id)).await?;
                }
                Err(_) => return Err(TaskError::internal("the watch of a sent task ended before it settled")),
            },
            _ = env.cancel.forced(), if given_up_at.is_none() => {
                given_up_at = Some(tokio::time::Instant::now() + CANCEL_GRACE);
                store_call(&sent.remote, move |r| r.cancel(id)).await?;
            }
            _ = grace => break,
        }
    }
    store_call(&sent.remote, move |r| r.forget(&[id])).await?;
    Err(TaskError::cancelled())
}

/// A call of the store, off tokio's workers (it blocks); a failure fails the run, as a write
/// the store cannot make does.
async fn store_call<T: Send + 'static>(
    remote: &Arc<dyn RemoteTasks>,
    call: impl FnOnce(&dyn RemoteTasks) -> crate::store::Result<T> + Send + 'static,
) -> Result<T, TaskError> {
    let remote = remote.clone();
    off_the_workers(move || call(remote.as_ref())).await?.map_err(|e| TaskError::unrecorded(&e))
}

/// Runs a job a worker took (`forced` completes when its execution cancelled it) and returns
/// its outcome; `worker` names the worker (the result of a job with nothing to run). An operation's script and its runtime properties file are anonymous files in
/// memory (`RuntimeFile`): nothing is left on the worker's disk, whatever ends it.
pub async fn run_taken(job: &RemoteJob, worker: &str, forced: impl std::future::Future<Output = ()>) -> Value {
    if job.nothing {
        return json!({ "ok": true, "result": { "worker": worker } });
    }
    let mut options = ProcessOptions {
        env: job.env.clone(),
        cwd: job.cwd.clone(),
        timeout: job.timeout,
        output_limit: job.output_limit,
        queue: None,
    };
    let in_memory = |text: &str, what: &str| {
        RuntimeFile::holding(text).map_err(|e| TaskError::recoverable(format!("cannot make the {what} file: {e}")))
    };
    let script = match job.script.as_deref().map(|text| in_memory(text, "script")).transpose() {
        Ok(script) => script,
        Err(e) => return outcome(&Err(e)),
    };
    let mut properties =
        match job.runtime_properties.as_deref().map(|text| in_memory(text, "runtime properties")).transpose() {
            Ok(properties) => properties,
            Err(e) => return outcome(&Err(e)),
        };
    if let Some(file) = &properties {
        options.env.push(("RHAIFLOW_RUNTIME_PROPERTIES".into(), file.path()));
    }
    let argv = match &script {
        Some(file) => vec!["sh".to_string(), file.path()],
        None => job.argv.clone(),
    };
    let ran = process::run_taken(&argv, &job.display, &job.execution_id, &options, job.timeout, forced).await;
    let mut told = outcome(&ran);
    if let Some(file) = &mut properties {
        told["runtime_properties"] = match file.contents() {
            Ok(text) => Value::String(text),
            Err(e) => json!({ "unreadable": e.to_string() }),
        };
    }
    told
}

/// What a worker writes of a task it ran.
pub fn outcome(result: &Result<Dynamic, TaskError>) -> Value {
    match result {
        Ok(value) => json!({ "ok": true, "result": crate::value::to_json(value) }),
        Err(e) => json!({
            "ok": false,
            "kind": e.kind.as_str(),
            "message": e.message,
            "value": crate::value::to_json(&e.value),
        }),
    }
}

/// The task's result or error from what its worker wrote.
pub fn from_outcome(outcome: &Value) -> Result<Dynamic, TaskError> {
    if outcome["ok"] == Value::Bool(true) {
        return Ok(crate::value::from_json(&outcome["result"]));
    }
    let message = outcome["message"].as_str().unwrap_or("the worker gave no reason").to_string();
    let kind = match outcome["kind"].as_str() {
        Some("cancelled") => return Err(TaskError::cancelled()),
        Some("non_recoverable") => ErrorKind::NonRecoverable,
        _ => ErrorKind::Recoverable,
    };
    let mut error = TaskError::new(kind, message);
    error.value = crate::value::from_json(&outcome["value"]);
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    // What a worker wrote read back as the same result or error, kind and value included.
    #[test]
    fn an_outcome_reads_back_as_the_task_ended() {
        let mut map = rhai::Map::new();
        map.insert("code".into(), Dynamic::from_int(3));
        let mut failed = TaskError::new(ErrorKind::NonRecoverable, "exited with code 3");
        failed.value = map.clone().into();
        let back = from_outcome(&outcome(&Err(failed))).unwrap_err();
        assert_eq!((back.kind.as_str(), back.message.as_str()), ("non_recoverable", "exited with code 3"));
        assert_eq!(crate::value::to_json(&back.value), json!({"code": 3}));
        let ok = from_outcome(&outcome(&Ok(map.into()))).unwrap();
        assert_eq!(crate::value::to_json(&ok), json!({"code": 3}));
        assert!(from_outcome(&outcome(&Err(TaskError::cancelled()))).unwrap_err().is_cancelled());
    }
}
