//! Operation tasks of the deployment model: a `script` run with `sh` in the blueprint's
//! folder, or a bundle's `fn op(ctx, inputs)` on a script thread; an operation the node does
//! not define does nothing.
//!
//! A script sees the instance it runs for (for a relationship operation, the end it runs
//! for) through its environment: `RHAIFLOW_NODE`, `RHAIFLOW_INSTANCE`,
//! `RHAIFLOW_OPERATION`, `RHAIFLOW_PROPERTIES` and `RHAIFLOW_INPUTS` (JSON), and
//! `RHAIFLOW_RUNTIME_PROPERTIES`, a file holding the instance's runtime properties as a JSON
//! object, which the script may rewrite to change them.
//!
//! An operation on a queue (`OperationCall::queue`: its own, or its host's) is sent to a worker
//! listening there: the script's text and the runtime properties travel with it, and what the
//! script left in the file comes back. A bundle's function stays with the execution (it shares
//! the script's engine, as closures do).

use std::sync::Arc;

use rhai::Dynamic;
use serde_json::Value;

use super::attempt::off_the_workers;
use super::runtime_file::RuntimeFile;
use super::{process, remote, ExecEnv};
use crate::deploy::{Implementation, OperationCall};
use crate::store::RemoteJob;
use crate::task::TaskError;
use crate::task::{ProcessOptions, TaskCell, TaskSettings};

pub async fn run(
    call: &Arc<OperationCall>,
    cell: &Arc<TaskCell>,
    settings: &TaskSettings,
    env: &Arc<ExecEnv>,
) -> Result<Dynamic, TaskError> {
    let Some(operation) = &call.operation else { return Ok(Dynamic::UNIT) };
    match &operation.implementation {
        Implementation::Nothing => Ok(Dynamic::UNIT),
        Implementation::Script(path) => run_script(call, cell, path, settings, env).await,
        Implementation::Function { .. } => {
            let (scripts, call) = (env.scripts.clone(), call.clone());
            let (retry, timeout) = (cell.current_retries(), settings.timeout);
            let call = move || scripts.call_operation(&call, retry, timeout);
            super::attempt::on_script_thread(env, timeout, super::attempt::Holds::Slot, call).await
        }
    }
}

async fn run_script(
    call: &OperationCall,
    cell: &TaskCell,
    path: &str,
    settings: &TaskSettings,
    env: &Arc<ExecEnv>,
) -> Result<Dynamic, TaskError> {
    let deployment = &call.deployment;
    let dir = &deployment.blueprint.dir;
    let node = call.node().map(|n| (n.id.clone(), Value::Object(n.properties.clone()))).unwrap_or_default();
    // A target-side relationship operation runs for the target: its node, its instance and
    // its runtime properties.
    let instance = call.runs_for();
    let before = deployment.data_of(instance).runtime_properties;
    let mut env_vars = vec![
        ("RHAIFLOW_NODE".into(), node.0),
        ("RHAIFLOW_INSTANCE".into(), instance.to_string()),
        ("RHAIFLOW_OPERATION".into(), call.name.clone()),
        ("RHAIFLOW_PROPERTIES".into(), node.1.to_string()),
        ("RHAIFLOW_INPUTS".into(), Value::Object(call.inputs.clone()).to_string()),
        ("RHAIFLOW_DEPLOYMENT".into(), deployment.name.clone()),
    ];
    // A relationship operation also names both ends.
    if let Some((_, target, _)) = &call.relationship {
        env_vars.push(("RHAIFLOW_SOURCE_INSTANCE".into(), call.instance.clone()));
        env_vars.push(("RHAIFLOW_TARGET_INSTANCE".into(), target.clone()));
    }
    let task = super::attempt::current_task_info(cell);
    let before_text = Value::Object(before.clone()).to_string();
    let (result, after) = match call.queue() {
        Some(queue) => {
            let script = dir.join(path);
            let read = off_the_workers(move || std::fs::read_to_string(&script)).await?;
            let text = read.map_err(|e| TaskError::recoverable(format!("cannot read the script {path}: {e}")))?;
            let job = RemoteJob {
                execution_id: env.bus.label().execution_id.to_string(),
                task: task.name.to_string(),
                argv: Vec::new(),
                display: path.to_string(),
                env: env_vars,
                cwd: None,
                timeout: settings.timeout,
                output_limit: None,
                nothing: false,
                script: Some(text),
                runtime_properties: Some(before_text),
            };
            let outcome = remote::send(queue, job, env).await?;
            let after = match &outcome["runtime_properties"] {
                Value::String(text) => Ok(text.clone()),
                Value::Object(why) => Err(why.get("unreadable").map_or_else(String::new, |w| w.to_string())),
                _ => Err("the worker sent none back".to_string()),
            };
            (remote::from_outcome(&outcome), after)
        }
        None => {
            let file = off_the_workers(move || RuntimeFile::holding(&before_text)).await?;
            let mut file =
                file.map_err(|e| TaskError::recoverable(format!("cannot make the runtime properties file: {e}")))?;
            env_vars.push(("RHAIFLOW_RUNTIME_PROPERTIES".into(), file.path()));
            let options = ProcessOptions {
                env: env_vars,
                cwd: Some(dir.display().to_string()),
                timeout: settings.timeout,
                output_limit: None,
                queue: None,
            };
            let argv = ["sh".to_string(), dir.join(path).display().to_string()];
            let result = process::run(task, &argv, path, &options, settings.timeout, env).await;
            let after = off_the_workers(move || file.contents().map_err(|e| e.to_string())).await?;
            (result, after)
        }
    };
    let (deployment, instance, name) = (deployment.clone(), instance.to_string(), call.name.clone());
    let kept = off_the_workers(move || keep_runtime_properties(after, &deployment, &instance, before, &name)).await?;
    match kept {
        Ok(()) => result,
        Err(Unkept::Unrecorded(error)) => Err(error),
        // What the script meant to keep cannot be read: a success would lose it silently. A
        // script that failed already says so.
        Err(Unkept::Unreadable(error)) => result.and(Err(error)),
    }
}

/// Why what a script operation left in its runtime properties file was not kept.
enum Unkept {
    Unreadable(TaskError),
    Unrecorded(TaskError),
}

/// Keeps the runtime properties a script operation left in its file, when it changed them
/// (a stored deployment writes them through, with an fsync: never on tokio's workers).
fn keep_runtime_properties(
    after: Result<String, String>,
    deployment: &crate::deploy::Deployment,
    instance: &str,
    before: serde_json::Map<String, Value>,
    operation: &str,
) -> Result<(), Unkept> {
    let after = read_runtime_properties(after, operation).map_err(Unkept::Unreadable)?;
    if after != before {
        deployment
            .set_runtime_properties(instance, after)
            .map_err(|e| Unkept::Unrecorded(TaskError::unrecorded(&e)))?;
    }
    Ok(())
}

/// The runtime properties a script operation left in its file (`text`, or why it could not
/// be read): a JSON object, or an error saying what is wrong with it.
fn read_runtime_properties(
    text: Result<String, String>,
    operation: &str,
) -> Result<serde_json::Map<String, Value>, TaskError> {
    let unreadable = |why: String| {
        TaskError::recoverable(format!(
            "{operation} left $RHAIFLOW_RUNTIME_PROPERTIES unreadable ({why}): the instance's runtime properties \
             must be a JSON object"
        ))
    };
    let text = text.map_err(unreadable)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(properties)) => Ok(properties),
        Ok(other) => Err(unreadable(format!("it holds {}", json_kind(&other)))),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
