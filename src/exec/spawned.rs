//! A task's started process (`spawn`): its output pipes, and its end, awaited without a
//! thread through a pidfd. A process still running when this is dropped is killed, as
//! tokio's `kill_on_drop` did.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

pub struct Spawned {
    pid: libc::pid_t,
    /// Readable once the process has ended; `None` where the kernel has no pidfds (before
    /// Linux 5.3, or a seccomp filter refusing them): then a blocking thread waits.
    ended: Option<AsyncFd<OwnedFd>>,
    reaped: bool,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

impl Spawned {
    /// Takes charge of the child `pid` and the pipes it writes; in a tokio runtime.
    pub(super) fn new(pid: libc::pid_t, stdout: OwnedFd, stderr: OwnedFd) -> Spawned {
        Spawned {
            pid,
            // SAFETY: the pidfd is ours alone, neither replaced nor closed while registered.
            ended: pidfd(pid)
                .ok()
                .and_then(|fd| unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()),
            reaped: false,
            stdout: pipe::Receiver::from_owned_fd(stdout).ok(),
            stderr: pipe::Receiver::from_owned_fd(stderr).ok(),
        }
    }

    /// The process id, which is also its process group's.
    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// Waits for the process to end, and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(ended) = &self.ended else {
            let pid = self.pid;
            let status = tokio::task::spawn_blocking(move || reap(pid, 0))
                .await
                .map_err(io::Error::other)??
                .expect("a blocking waitpid returns an ended process");
            self.reaped = true;
            return Ok(status);
        };
        loop {
            if let Some(status) = reap(self.pid, libc::WNOHANG)? {
                self.reaped = true;
                return Ok(status);
            }
            ended.readable().await?.clear_ready();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: kill(2) of our own child, not yet reaped, so its pid is still its own.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if !matches!(reap(self.pid, libc::WNOHANG), Ok(None)) {
            return;
        }
        // Killed but not yet gone (it may be in an uninterruptible wait): reaped aside.
        let pid = self.pid;
        let _ = std::thread::Builder::new().name("rhaiflow-reap".into()).spawn(move || reap(pid, 0));
    }
}

/// waitpid(2) with `flags`: the status of the ended process, or `None` if it still runs.
fn reap(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

/// A descriptor that becomes readable when `pid` ends.
fn pidfd(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor (close-on-exec) we then own.
    match unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } {
        -1 => Err(io::Error::last_os_error()),
        fd => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
    }
}
