//! What reaches a running execution from outside: `executions cancel` through the store,
//! and SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::AbortHandle;

use crate::exec::CancelState;
use crate::store::Store;

/// Reads the store for `executions cancel ID` from another shell when that command nudges
/// the run (SIGUSR1, see `nudge`), and five times a second besides: the request reaches the
/// run at once, and within a second without the nudge, without a server. A task of the run's
/// runtime, not a thread: a small run ends before its first look, and a thread of its own was
/// started on the way to its first task.
pub(super) struct CancelWatcher {
    task: AbortHandle,
}

/// How the signal handler wakes the watcher.
pub(super) type Nudge = UnboundedSender<()>;

/// What the watcher is woken by: `Nudge`.
pub(super) type Nudged = UnboundedReceiver<()>;

/// How often the watcher looks without a nudge.
const LOOK_EVERY: Duration = Duration::from_millis(200);

impl CancelWatcher {
    pub(super) fn start(
        runtime: &tokio::runtime::Handle,
        store: Arc<dyn Store>,
        execution_id: &str,
        cancel: Arc<CancelState>,
        nudged: Nudged,
    ) -> Self {
        let id = execution_id.to_string();
        let task = runtime.spawn(async move {
            // `None` once no signal handler can nudge (a run that does not own its process).
            let mut nudged = Some(nudged);
            let mut seen = 0;
            loop {
                match nudged.as_mut() {
                    Some(nudges) => tokio::select! {
                        nudge = nudges.recv() => if nudge.is_none() { nudged = None },
                        _ = tokio::time::sleep(LOOK_EVERY) => {}
                    },
                    None => tokio::time::sleep(LOOK_EVERY).await,
                }
                let (store, id) = (store.clone(), id.clone());
                let read = tokio::task::spawn_blocking(move || store.cancel_request(&id)).await;
                let (request, by) = read.ok().and_then(Result::ok).unwrap_or((0, None));
                if request > seen {
                    seen = request;
                    let how = if request > 1 { " (forced)" } else { "" };
                    let who = by.as_ref().map(|by| format!(" by {by}")).unwrap_or_default();
                    say!("rhaiflow: cancel requested from another shell{who}{how}");
                    cancel.request_by(request > 1, by);
                }
            }
        });
        CancelWatcher { task: task.abort_handle() }
    }
}

impl Drop for CancelWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The signals a run handles, installed before the execution is recorded: from then on
/// `executions cancel` may send SIGUSR1, whose default would end the process.
pub(super) struct Signals {
    interrupt: Signal,
    terminate: Signal,
    nudged: Signal,
}

impl Signals {
    /// Installs the handlers now (within `runtime`); `None` if the system refused one.
    pub(super) fn install(runtime: &tokio::runtime::Runtime) -> Option<Signals> {
        let _entered = runtime.enter();
        Some(Signals {
            interrupt: signal(SignalKind::interrupt()).ok()?,
            terminate: signal(SignalKind::terminate()).ok()?,
            nudged: signal(SignalKind::user_defined1()).ok()?,
        })
    }
}

/// The first SIGINT/SIGTERM asks for a graceful cancel, the second forces it. SIGUSR1 says
/// that `executions cancel` wrote a request in the store: the watcher reads it now.
pub(super) async fn watch_signals(signals: Signals, cancel: Arc<CancelState>, nudge: Nudge) {
    let Signals { mut interrupt, mut terminate, mut nudged } = signals;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = nudged.recv() => {
                let _ = nudge.send(());
                continue;
            }
        }
        if cancel.is_requested() {
            say!("rhaiflow: forcing the cancel: stopping running tasks");
            cancel.request(true);
        } else {
            say!("rhaiflow: cancelling: running tasks finish, nothing new starts (again to force)");
            cancel.request(false);
        }
    }
}

/// Tells the run's process that a request waits in the store (SIGUSR1), so that it reads it
/// at once rather than at its next look; it looks five times a second anyway. Only a process
/// that is rhaiflow gets the signal: a recorded pid may since belong to another program.
pub fn nudge(pid: u32) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if pid != 0 && comm.trim_end() == "rhaiflow" {
        // SAFETY: kill(2) with a plain signal number; the pid was checked to be rhaiflow's.
        unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    }
}
