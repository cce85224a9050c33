//! Shell and exec tasks: a child process in its own process group, so that a timeout or a
//! forced cancel kills it together with everything it started.

use std::process::{ExitStatus, Stdio};

use rhai::{Dynamic, Map};
use tokio::process::{Child, Command};

use super::left_behind::EXECUTION_ID_VARIABLE;
use super::output_lines::OutputLines;
use super::output_tail::{OutputTail, DEFAULT_OUTPUT_LIMIT};
use super::ExecEnv;
use crate::events::{OutputStream, TaskInfo};
use crate::task::ProcessOptions;
use crate::task::{ErrorKind, TaskError};

/// The child gets SIGKILL when rhaiflow dies, even of a SIGKILL: an orphan still running would
/// run beside its own rerun after a resume. Linux sends it when the *thread* that forked the
/// child ends; children are forked on tokio's executor threads, which live as long as the run
/// (whose end kills every child anyway). It reaches the child itself: what that child starts
/// in the background is not covered (a timeout or a forced cancel kills the whole group).
fn dies_with_its_runner(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2),
    // getppid(2) and _exit(2), which are async-signal-safe and allocate nothing.
    let runner = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The runner died between fork and prctl: nothing will send the signal now.
            if libc::getppid() != runner {
                libc::_exit(137);
            }
            Ok(())
        });
    }
}

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
    let group = child.id().map(|pid| pid as i32);
    let kill_group = || {
        if let Some(pgid) = group {
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
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

/// The process started in its own process group, with the task's environment and folder.
fn spawn(program: &str, args: &[String], options: &ProcessOptions, execution_id: &str) -> Result<Child, TaskError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    dies_with_its_runner(&mut command);
    // What a resume looks for, should this run die before the process ends (`left_behind`).
    command.env(EXECUTION_ID_VARIABLE, execution_id);
    for (key, value) in &options.env {
        command.env(key, value);
    }
    if let Some(cwd) = &options.cwd {
        command.current_dir(cwd);
    }
    command.spawn().map_err(|e| {
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
