//! What reaches a running execution from outside: `executions cancel` through the store,
//! and SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::exec::CancelState;
use crate::store::Store;

/// Polls the store for `executions cancel ID` from another shell, five times a second: the
/// request reaches the run within a second without a server in between.
pub(super) struct CancelWatcher {
    stop: Arc<AtomicBool>,
}

impl CancelWatcher {
    pub(super) fn start(store: Arc<dyn Store>, execution_id: &str, cancel: Arc<CancelState>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, id) = (stop.clone(), execution_id.to_string());
        let _ = std::thread::Builder::new().name("rhaiflow-cancel".into()).spawn(move || {
            let mut seen = 0;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let request = store.cancel_request(&id).unwrap_or(0);
                if request > seen {
                    seen = request;
                    let how = if request > 1 { " (forced)" } else { "" };
                    say!("rhaiflow: cancel requested from another shell{how}");
                    cancel.request(request > 1);
                }
            }
        });
        CancelWatcher { stop }
    }
}

impl Drop for CancelWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The first SIGINT/SIGTERM asks for a graceful cancel, the second forces it.
pub(super) async fn watch_signals(cancel: Arc<CancelState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
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
