//! Cancel requests: the first one is graceful (start nothing new, let running tasks finish,
//! stop sleeps), the second one is forced (kill processes, stop running scripts).

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// What a forced cancel also sets off (the runner's last resort), on the thread that forced it.
pub type OnForced = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct CancelState {
    graceful: CancellationToken,
    forced: CancellationToken,
    on_forced: OnceLock<OnForced>,
    /// Who asked last, when known (`workflow_cancelled`'s `by`).
    asked_by: parking_lot::Mutex<Option<String>>,
}

impl CancelState {
    /// `request` for `by`, named by the execution's `workflow_cancelled`.
    pub fn request_by(&self, force: bool, by: Option<String>) {
        if by.is_some() {
            *self.asked_by.lock() = by;
        }
        self.request(force);
    }

    /// Who asked for the cancel, when known.
    pub fn asked_by(&self) -> Option<String> {
        self.asked_by.lock().clone()
    }

    /// Asks for a cancel; a request when one was already made forces it.
    pub fn request(&self, force: bool) {
        let force = force || self.graceful.is_cancelled();
        // Graceful first: whoever wakes on the forced token must already see a request.
        self.graceful.cancel();
        if force && !self.forced.is_cancelled() {
            self.forced.cancel();
            if let Some(hook) = self.on_forced.get() {
                hook();
            }
        }
    }

    /// Sets what a forced cancel also does (once); at once if the cancel was already forced.
    pub fn on_forced(&self, hook: OnForced) {
        if self.on_forced.set(hook).is_ok() && self.is_forced() {
            if let Some(hook) = self.on_forced.get() {
                hook();
            }
        }
    }

    pub fn is_requested(&self) -> bool {
        self.graceful.is_cancelled()
    }

    pub fn is_forced(&self) -> bool {
        self.forced.is_cancelled()
    }

    /// Resolves when a cancel (graceful or forced) is requested.
    pub async fn requested(&self) {
        self.graceful.cancelled().await
    }

    /// Resolves when the cancel is forced.
    pub async fn forced(&self) {
        self.forced.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_request_forces() {
        let cancel = CancelState::default();
        assert!(!cancel.is_requested());
        cancel.request(false);
        assert!(cancel.is_requested() && !cancel.is_forced());
        cancel.request(false);
        assert!(cancel.is_forced());
    }

    #[test]
    fn a_forced_request_is_also_a_request() {
        let cancel = CancelState::default();
        cancel.request(true);
        assert!(cancel.is_requested() && cancel.is_forced());
    }
}
