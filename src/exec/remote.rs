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

/// The tasks one execution sent, and who waits for each.
pub struct SentTasks {
    remote: Arc<dyn RemoteTasks>,
    execution_id: String,
    waiting: Mutex<HashMap<i64, oneshot::Sender<RemoteState>>>,
    /// Set while a task looks for the outcomes (started by the first wait, ended when nobody
    /// waits).
    looking: Mutex<bool>,
}

impl SentTasks {
    pub fn new(remote: Arc<dyn RemoteTasks>, execution_id: String) -> Arc<SentTasks> {
        Arc::new(SentTasks { remote, execution_id, waiting: Mutex::default(), looking: Mutex::new(false) })
    }

    /// Told when the task `id` settles.
    fn wait(self: &Arc<Self>, id: i64) -> oneshot::Receiver<RemoteState> {
        let (tell, told) = oneshot::channel();
        self.waiting.lock().insert(id, tell);
        let mut looking = self.looking.lock();
        if !*looking {
            *looking = true;
            tokio::spawn(self.clone().look());
        }
        told
    }

    /// Looks every `LOOK_EVERY` while anyone waits, and tells them what settled.
    async fn look(self: Arc<Self>) {
        loop {
            tokio::time::sleep(LOOK_EVERY).await;
            {
                let mut looking = self.looking.lock();
                self.waiting.lock().retain(|_, tell| !tell.is_closed());
                if self.waiting.lock().is_empty() {
                    *looking = false;
                    return;
                }
            }
            let (remote, id) = (self.remote.clone(), self.execution_id.clone());
            // A look that fails is made again; a store that stays away fails the run elsewhere.
            let Ok(Ok(settled)) = off_the_workers(move || remote.settled(&id)).await else { continue };
            let mut waiting = self.waiting.lock();
            for (id, state) in settled {
                if let Some(tell) = waiting.remove(&id) {
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
    let queue = queue.to_string();
    let id = store_call(&sent.remote, move |r| r.send(&queue, &job)).await?;
    let mut given_up_at = None;
    loop {
        let settled = sent.wait(id);
        let grace = async {
            match given_up_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            state = settled => match state {
                Ok(RemoteState::Done(outcome)) => {
                    store_call(&sent.remote, move |r| r.forget(id)).await?;
                    return Ok(outcome);
                }
                Ok(RemoteState::Lost) => store_call(&sent.remote, move |r| r.send_again(id)).await?,
                Err(_) => return Err(TaskError::internal("the watch of a sent task ended before it settled")),
            },
            _ = env.cancel.forced(), if given_up_at.is_none() => {
                given_up_at = Some(tokio::time::Instant::now() + CANCEL_GRACE);
                store_call(&sent.remote, move |r| r.cancel(id)).await?;
            }
            _ = grace => break,
        }
    }
    store_call(&sent.remote, move |r| r.forget(id)).await?;
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
/// its outcome. An operation's script and its runtime properties file are anonymous files in
/// memory (`RuntimeFile`): nothing is left on the worker's disk, whatever ends it.
pub async fn run_taken(job: &RemoteJob, forced: impl std::future::Future<Output = ()>) -> Value {
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
