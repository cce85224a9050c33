//! Waiting on a thread that may be one of tokio's workers. Emitters wait when the store's
//! write queue or the events held for its commit are full; most emit on a script thread or
//! the main thread, but a task's events are emitted on the worker that runs the task, and a
//! worker that parks stalls every task queued on it (timers, process output, other tasks'
//! ends). `park` hands those on to another worker first. It is only called on the slow path
//! (a full queue), so an emitter with room pays nothing.

/// Runs `wait`, which parks the thread; on a worker of a multi-thread runtime, the worker's
/// other tasks are handed on before (`block_in_place`). Elsewhere it just waits: outside a
/// runtime, or on a current-thread runtime (where `block_in_place` would panic).
pub fn park<R>(wait: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}
