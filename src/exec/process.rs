//! Shell and exec tasks: a child process in its own process group, so that a timeout or a
//! forced cancel kills it together with everything it started.

use std::process::ExitStatus;

use rhai::{Dynamic, Map};

use super::left_behind::EXECUTION_ID_VARIABLE;
use super::output_lines::OutputLines;
use super::output_tail::{OutputTail, DEFAULT_OUTPUT_LIMIT};
use super::spawn::Spawn;
use super::spawned::Spawned;
use super::ExecEnv;
use crate::events::{OutputStream, TaskInfo};
use crate::task::ProcessOptions;
use crate::task::{ErrorKind, TaskError};

/// Runs `argv` (`display` is how messages name it) and returns `#{code, stdout, stderr}`; a non-zero exit is a recoverable error
/// whose value is that same map. What it prints is emitted line by line as `task`'s output. A
/// task with a `queue` runs on a worker instead (`remote`).
pub async fn run(
    task: TaskInfo,
    argv: &[String],
    display: &str,
    options: &ProcessOptions,
    timeout: Option<f64>,
    env: &ExecEnv,
) -> Result<Dynamic, TaskError> {
    if let Some(queue) = &options.queue {
        return super::remote::run(task, queue, argv, display, options, timeout, env).await;
    }
    let lines = OutputLines::new(env.bus.clone(), task);
    let execution_id = env.bus.label().execution_id.clone();
    run_here(argv, display, options, timeout, &execution_id, env.cancel.forced(), Some(&lines)).await
}

/// Runs a task a worker took from a queue (`remote::run_taken`): as here, with no output
/// events (its execution runs elsewhere); `forced` completes when its execution cancelled it.
pub async fn run_taken(
    argv: &[String],
    display: &str,
    execution_id: &str,
    options: &ProcessOptions,
    timeout: Option<f64>,
    forced: impl std::future::Future<Output = ()>,
) -> Result<Dynamic, TaskError> {
    run_here(argv, display, options, timeout, execution_id, forced, None).await
}

/// Runs `argv` here, for the execution `execution_id`, until it ends, its `timeout` passes or
/// `forced` (a forced cancel) completes; what it prints goes to `lines` as it comes.
async fn run_here(
    argv: &[String],
    display: &str,
    options: &ProcessOptions,
    timeout: Option<f64>,
    execution_id: &str,
    forced: impl std::future::Future<Output = ()>,
    lines: Option<&OutputLines>,
) -> Result<Dynamic, TaskError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(TaskError::new(ErrorKind::NonRecoverable, "exec needs a program to run: argv is empty"));
    };
    let mut child = spawn(program, args, options, execution_id)?;
    let group = child.id();
    let kill_group = || {
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    };
    let deadline = async {
        match timeout {
            Some(secs) => tokio::time::sleep(crate::seconds::duration(secs)).await,
            None => std::future::pending().await,
        }
    };
    // Each stream keeps only its tail as it is read: a task printing gigabytes holds a
    // megabyte, and its result and `task_succeeded` event stay that small.
    let limit = options.output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let line = |stream: OutputStream, bytes: &[u8]| {
        if let Some(lines) = lines {
            lines.take(stream, bytes);
        }
    };
    let finished = async {
        let (stdout, stderr) = tokio::join!(
            OutputTail::read_piped(stdout, limit, |bytes| line(OutputStream::Stdout, bytes)),
            OutputTail::read_piped(stderr, limit, |bytes| line(OutputStream::Stderr, bytes)),
        );
        (child.wait().await, stdout, stderr)
    };
    let ended = tokio::select! {
        finished = finished => Ok(finished),
        _ = deadline => Err(TaskError::recoverable(format!("timed out after {}s; the process group was killed", timeout.unwrap_or(0.0)))),
        _ = forced => Err(TaskError::cancelled()),
    };
    // A last line without its newline, also of a process killed now, comes before the outcome.
    if let Some(lines) = lines {
        lines.finish();
    }
    let (status, stdout, stderr) = ended.inspect_err(|_| kill_group())?;
    let status = status.map_err(|e| TaskError::recoverable(format!("lost track of `{program}`: {e}")))?;
    outcome(display, status, stdout, stderr)
}

/// The process started in its own process group, with the task's environment and folder,
/// killed if rhaiflow dies (`spawn`).
fn spawn(program: &str, args: &[String], options: &ProcessOptions, execution_id: &str) -> Result<Spawned, TaskError> {
    // What a resume looks for, should this run die before the process ends (`left_behind`).
    let mut env = vec![(EXECUTION_ID_VARIABLE, execution_id)];
    env.extend(options.env.iter().map(|(key, value)| (key.as_str(), value.as_str())));
    let started = Spawn { program, args, env, cwd: options.cwd.as_deref() }.start();
    started.map_err(|e| {
        let what = if options.cwd.is_some() && e.kind() == std::io::ErrorKind::NotFound {
            format!("cannot start `{program}` (in {}): {e}", options.cwd.as_deref().unwrap_or(""))
        } else {
            format!("cannot start `{program}`: {e}")
        };
        TaskError::recoverable(what)
    })
}

/// The task's result (`code`, `stdout`, `stderr`, `truncated`); an exit code other than 0 or
/// a signal fails it, with the last lines of its stderr and the result as the error's value.
fn outcome(display: &str, status: ExitStatus, stdout: OutputTail, stderr: OutputTail) -> Result<Dynamic, TaskError> {
    let truncated = stdout.was_cut() || stderr.was_cut();
    let (stdout, stderr) = (stdout.text(), stderr.text());
    let code = status.code();
    let mut result = Map::new();
    result.insert("code".into(), Dynamic::from_int(code.unwrap_or(-1) as rhai::INT));
    result.insert("stdout".into(), stdout.into());
    result.insert("stderr".into(), stderr.clone().into());
    if truncated {
        result.insert("truncated".into(), Dynamic::TRUE);
    }
    if code == Some(0) {
        return Ok(result.into());
    }
    let status = match code {
        Some(c) => format!("exited with code {c}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            format!("was killed by signal {}", status.signal().unwrap_or(0))
        }
    };
    let tail: Vec<&str> = stderr.trim_end().lines().rev().take(3).collect();
    let mut message = format!("`{display}` {status}");
    if !tail.is_empty() {
        message.push_str(": ");
        message.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let mut error = TaskError::recoverable(message);
    error.value = result.into();
    Err(error)
}
