//! The threads that run script code (task closures, handlers): never tokio's workers, since
//! Rhai is not async and a closure may run for long.
//!
//! Up to one thread per core takes jobs from one queue. They start as jobs come, so a run
//! without closure tasks starts none, and then stay warm: a thread that finishes a job looks
//! for the next before going to sleep, so a burst of ready closures costs a queue operation
//! each, not a thread wake-up. A closure may block (on `t.get()` of another task, or on a
//! nested `execute()`); it says so with `ScriptPool::blocking`, and the pool starts a spare
//! thread for what is queued so that the queue never stalls behind blocked ones. A closure
//! task's first attempt waits in the queue as it is (`DirectJob`), without a boxed closure,
//! and a burst of them is queued under one lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::direct_closure::DirectJob;

/// What a script thread runs: any code, or (the common case, without an allocation of its
/// own) a closure task's first attempt.
enum Job {
    Boxed(Box<dyn FnOnce() + Send>),
    Direct(DirectJob),
}

/// A job of `run_within` that was still running when its caller stopped waiting.
#[derive(Debug, PartialEq, Eq)]
pub struct Overdue;

// The life of a `run_within` job.
/// The stack of every thread that evaluates scripts. Rhai prints, compares, checks the size
/// of and drops arrays and maps by recursing once per level of nesting, with no bound of its
/// own (docs/upstream/rhai-deep-values.md), and a script can build a value thousands of
/// levels deep in a loop: the 2 MiB of a spawned thread overflowed at ~8,000 levels, aborting
/// the process. Only the pages a script touches are allocated, so a large reserve costs nothing.
pub const SCRIPT_STACK_BYTES: usize = 256 << 20;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const ABANDONED: u8 = 3;

/// The owner's handle: dropping it lets the threads go once the queue is empty.
pub struct ScriptPool {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<PoolState>,
    work: Condvar,
    /// Threads wanted when none is blocked.
    base: usize,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    /// Started, and not yet looking at the queue: each will take a job.
    starting: usize,
    blocked: usize,
    shutdown: bool,
}

thread_local! {
    /// The pool the current thread works for, if it is one of its threads.
    static WORKER_OF: std::cell::RefCell<Option<Arc<Shared>>> = const { std::cell::RefCell::new(None) };
    /// The `--max-concurrency` slot of the task whose code runs on this thread, if it holds one.
    static SLOT: std::cell::RefCell<Option<ConcurrencySlot>> = const { std::cell::RefCell::new(None) };
}

/// A running task's place under `--max-concurrency`. A task that waits (in `t.get()`, or a
/// nested `execute()`) gives it up meanwhile: the task it waits for may need it, and would
/// otherwise never start.
#[derive(Clone)]
pub struct ConcurrencySlot {
    pub limiter: Arc<tokio::sync::Semaphore>,
    pub runtime: tokio::runtime::Handle,
}

impl ConcurrencySlot {
    fn give_back(&self) {
        self.limiter.add_permits(1);
    }

    /// Waits for a place again; the permit stays taken until the task's own is dropped.
    fn take_again(&self) {
        if let Ok(permit) = self.runtime.block_on(self.limiter.acquire()) {
            permit.forget();
        }
    }
}

impl ScriptPool {
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                starting: 0,
                blocked: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            base: threads.max(1),
        });
        ScriptPool { shared }
    }

    /// Queues `job` on a script thread.
    fn submit(&self, job: Job) {
        let mut state = self.shared.inner.lock();
        state.queue.push_back(job);
        self.shared.take_up(&mut state, 1);
    }

    /// Queues closure tasks' first attempts (all that became ready together), waking as many
    /// idle threads as there are jobs.
    pub fn submit_direct(&self, jobs: impl Iterator<Item = DirectJob>) {
        let mut state = self.shared.inner.lock();
        let before = state.queue.len();
        state.queue.extend(jobs.map(Job::Direct));
        let added = state.queue.len() - before;
        self.shared.take_up(&mut state, added);
    }

    /// Runs `f` on a script thread and waits for its value without blocking tokio.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Job::Boxed(Box::new(move || {
            let _ = tx.send(f());
        })));
        rx.await.ok()
    }

    /// `run`, waiting at most `limit`: `Err(Overdue)` past it. A job still queued then never
    /// runs; one still running is left to finish (no thread can be stopped from outside) and
    /// counts as blocked, so a spare thread takes its place in the meanwhile.
    pub async fn run_within<T: Send + 'static>(
        &self,
        limit: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, Overdue> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Arc::new(AtomicU8::new(QUEUED));
        let (mine, shared) = (job.clone(), self.shared.clone());
        self.submit(Job::Boxed(Box::new(move || {
            if mine.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return; // abandoned before it started
            }
            let value = f();
            if mine.swap(DONE, Ordering::AcqRel) == ABANDONED {
                shared.inner.lock().blocked -= 1;
            }
            let _ = tx.send(value);
        })));
        match tokio::time::timeout(limit, rx).await {
            Ok(value) => Ok(value.ok()),
            Err(_) => {
                match job.compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => self.shared.block_one(),
                    Err(QUEUED) => job.store(ABANDONED, Ordering::Release),
                    Err(_) => {} // it ended just now; its value is dropped with the channel
                }
                Err(Overdue)
            }
        }
    }

    /// Runs `f`, the code of a task that holds `slot` (if any), on the current thread.
    pub fn holding<T>(slot: Option<ConcurrencySlot>, f: impl FnOnce() -> T) -> T {
        let previous = SLOT.with(|s| s.replace(slot));
        let value = f();
        SLOT.with(|s| *s.borrow_mut() = previous);
        value
    }

    /// Runs `wait` (which blocks) on the current thread; if that is a script thread, a spare
    /// thread takes its place meanwhile, and the task's concurrency slot is given up.
    pub fn blocking<T>(wait: impl FnOnce() -> T) -> T {
        let pool = WORKER_OF.with(|w| w.borrow().clone());
        let Some(pool) = pool else { return wait() };
        pool.block_one();
        let slot = SLOT.with(|s| s.borrow().clone());
        if let Some(slot) = &slot {
            slot.give_back();
        }
        let value = wait();
        if let Some(slot) = &slot {
            slot.take_again();
        }
        pool.inner.lock().blocked -= 1;
        value
    }
}

impl Drop for ScriptPool {
    fn drop(&mut self) {
        self.shared.inner.lock().shutdown = true;
        self.shared.work.notify_all();
    }
}

impl Shared {
    /// `added` jobs were queued: idle threads are woken for them, and threads started for the
    /// rest while fewer than `base` are unblocked.
    fn take_up(self: &Arc<Self>, state: &mut PoolState, added: usize) {
        for _ in 0..added.min(state.idle) {
            self.work.notify_one();
        }
        self.start_for_queued(state);
    }

    /// One of the threads is blocked: a spare takes its place for what is queued.
    fn block_one(self: &Arc<Self>) {
        let mut state = self.inner.lock();
        state.blocked += 1;
        self.start_for_queued(&mut state);
    }

    /// Starts a thread for each queued job no idle or starting thread will take, while fewer
    /// than `base` threads are unblocked.
    fn start_for_queued(self: &Arc<Self>, state: &mut PoolState) {
        let mut untaken = state.queue.len().saturating_sub(state.idle + state.starting);
        while untaken > 0 && state.threads - state.blocked < self.base {
            self.start_thread(state);
            untaken -= 1;
        }
    }

    fn start_thread(self: &Arc<Self>, state: &mut PoolState) {
        let shared = self.clone();
        let started = std::thread::Builder::new()
            .name("rhaiflow-script".into())
            .stack_size(SCRIPT_STACK_BYTES)
            .spawn(move || shared.work_loop());
        if started.is_ok() {
            state.threads += 1;
            state.starting += 1;
        }
    }

    fn work_loop(self: Arc<Self>) {
        WORKER_OF.with(|w| *w.borrow_mut() = Some(self.clone()));
        let mut state = self.inner.lock();
        state.starting -= 1;
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                run_job(job);
                state = self.inner.lock();
                continue;
            }
            // Spare threads started for blocked ones leave once they are not needed, and all
            // leave when the pool's owner is gone.
            if state.shutdown || state.threads - state.blocked > self.base {
                state.threads -= 1;
                drop(state);
                WORKER_OF.with(|w| *w.borrow_mut() = None);
                return;
            }
            state.idle += 1;
            self.work.wait(&mut state);
            state.idle -= 1;
        }
    }
}

/// Runs a job; one that panics must not take its thread with it (the pool would shrink, and
/// whoever waits for the job hears it is gone: `run` gives `None`). Script evaluations catch
/// their own panics; this is for the pool's own code and the jobs around them (a `DirectJob`
/// catches its own, to report its task failed).
fn run_job(job: Job) {
    match job {
        Job::Boxed(job) => {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
        Job::Direct(job) => job.run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jobs_run_and_return_their_value() {
        let pool = ScriptPool::new(2);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let values: Vec<u32> = runtime.block_on(async {
            let mut all = Vec::new();
            for i in 0..100u32 {
                all.push(pool.run(move || i * 2).await.unwrap());
            }
            all
        });
        assert_eq!(values[99], 198);
    }

    // Every run started one thread a core before anything ran, closures or not: 0.1 ms of a
    // `hello.rhai` that has none.
    #[test]
    fn threads_start_as_jobs_come_and_no_more_than_one_a_core() {
        let pool = ScriptPool::new(2);
        let threads = || pool.shared.inner.lock().threads;
        assert_eq!(threads(), 0, "nothing queued yet");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(runtime.block_on(pool.run(|| 1)), Some(1));
        assert_eq!(threads(), 1, "one job at a time needs one thread");
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let held = held.clone();
                let (done, finished) = std::sync::mpsc::channel();
                pool.submit(Job::Boxed(Box::new(move || {
                    let _ = held.lock().recv();
                    let _ = done.send(());
                })));
                finished
            })
            .collect();
        assert_eq!(threads(), 2, "eight jobs at once get a thread a core, not eight");
        for _ in &jobs {
            release.send(()).unwrap();
        }
        for finished in jobs {
            finished.recv().unwrap();
        }
    }

    // A closure stuck in a native call held its task past its timeout, and its thread for good.
    #[test]
    fn a_job_past_its_limit_is_left_behind_and_a_spare_thread_runs_the_next() {
        let pool = ScriptPool::new(1);
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let overdue =
                pool.run_within(Duration::from_millis(50), move || stuck.recv_timeout(Duration::from_secs(10))).await;
            assert_eq!(overdue.err(), Some(Overdue));
            // The only thread is still stuck: the next job runs on a spare one.
            let next = pool.run_within(Duration::from_secs(5), || 7).await;
            assert_eq!(next, Ok(Some(7)));
        });
        release.send(()).unwrap();
    }

    #[test]
    fn a_blocked_job_does_not_stall_the_queue() {
        // One thread; its job blocks until a second job has run: without a spare thread this
        // would never finish.
        let pool = ScriptPool::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let first = pool.run(move || ScriptPool::blocking(|| rx.recv_timeout(Duration::from_secs(10)).is_ok()));
            let second = pool.run(move || tx.send(()).is_ok());
            let (a, b) = tokio::join!(first, second);
            assert_eq!((a, b), (Some(true), Some(true)));
        });
    }

    // A job that panicked killed its thread: with one thread, the pool never ran anything again.
    #[test]
    fn a_job_that_panics_leaves_the_pool_working() {
        let pool = ScriptPool::new(1);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let lost: Option<u32> = pool.run(|| panic!("a job's bug")).await;
            assert_eq!(lost, None, "whoever waits for the job hears it is gone");
            assert_eq!(pool.run(|| 7).await, Some(7));
        });
    }
}
