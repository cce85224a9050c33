//! `HandlerResult`: what a task's `on_success` / `on_failure` handler decides.

/// The verdict of a handler (section 5). Scripts build it with `HandlerResult::cont()` etc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerVerdict {
    /// The task counts as done; its dependents run.
    Continue,
    /// Like `Continue`, said of a failure that does not matter.
    Ignore,
    /// The task failed.
    Fail,
    /// Run the task again if it has retries left.
    Retry,
    /// Run the task again even past `total_retries`.
    RetryIgnoringLimit,
}

impl HandlerVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerVerdict::Continue => "cont",
            HandlerVerdict::Ignore => "ignore",
            HandlerVerdict::Fail => "fail",
            HandlerVerdict::Retry => "retry",
            HandlerVerdict::RetryIgnoringLimit => "retry_ignoring_limit",
        }
    }
}
