//! Starting a task's process without fork(2).
//!
//! A fork copies the runner's page tables, and every page the runner writes afterwards
//! faults once to be copied or reclaimed: measured, 0.5 ms a process in a small run and 7 ms
//! in one holding 100 MB, growing with the run. So the child is cloned sharing the runner's
//! memory, as posix_spawn(3) does, while the thread that clones it waits for it to exec. What
//! std's `Command` would do between the two has to happen here instead, because the child
//! must also ask for SIGKILL when the runner dies (`PR_SET_PDEATHSIG`), which posix_spawn
//! cannot: in its own process group, with default signal handlers and no signal blocked,
//! stdin from /dev/null and stdout and stderr into pipes. Between clone and exec the child
//! only makes system calls, with everything they need prepared beforehand, on a stack of its
//! own.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicI32, Ordering};

use super::spawned::Spawned;

/// What to start: the program (looked up in `PATH` when it has no `/`), its arguments, the
/// variables added to the runner's environment, and the folder it starts in.
pub struct Spawn<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub env: Vec<(&'a str, &'a str)>,
    pub cwd: Option<&'a str>,
}

/// The child's stack, until it execs: a few system calls, no allocation.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Where `PATH` leads when it is not set, as for execvp(3).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

impl Spawn<'_> {
    /// Starts the process; an error is the reason it could not (no such program or folder,
    /// not executable, out of processes).
    pub fn start(&self) -> io::Result<Spawned> {
        let null = std::fs::File::open("/dev/null")?;
        let (stdout, stdout_writer) = pipe()?;
        let (stderr, stderr_writer) = pipe()?;
        let child = ChildSetup {
            argv: NullTerminated::new(
                std::iter::once(self.program.into()).chain(self.args.iter().map(OsString::from)),
            )?,
            envp: NullTerminated::new(self.environment().map(|(key, value)| {
                let mut pair = key;
                pair.push("=");
                pair.push(value);
                pair
            }))?,
            candidates: self.candidates().into_iter().map(c_string).collect::<io::Result<_>>()?,
            cwd: self.cwd.map(|cwd| c_string(cwd.into())).transpose()?,
            stdio: [above_stdio(null.into())?, above_stdio(stdout_writer)?, above_stdio(stderr_writer)?],
            runner: std::process::id() as libc::pid_t,
            failure: AtomicI32::new(0),
        };
        let pid = child.clone_and_exec()?;
        Ok(Spawned::new(pid, stdout, stderr))
    }

    /// The runner's environment with this process's variables set over it.
    fn environment(&self) -> impl Iterator<Item = (OsString, OsString)> + '_ {
        let overridden = |key: &OsStr| self.env.iter().any(|(k, _)| OsStr::new(k) == key);
        std::env::vars_os()
            .filter(move |(key, _)| !overridden(key))
            .chain(self.env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
    }

    /// The paths exec tries in turn: the program itself when it names a path, else each
    /// folder of the `PATH` it gets (or the runner's), as execvp(3) looks.
    fn candidates(&self) -> Vec<OsString> {
        if self.program.contains('/') {
            return vec![self.program.into()];
        }
        let path = match self.env.iter().rev().find(|(k, _)| *k == "PATH") {
            Some((_, path)) => OsString::from(path),
            None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        };
        std::env::split_paths(&path)
            .map(|folder| match folder.as_os_str().is_empty() {
                true => self.program.into(),
                false => folder.join(self.program).into_os_string(),
            })
            .collect()
    }
}

/// Everything the child needs between clone and exec, made before the clone.
struct ChildSetup {
    argv: NullTerminated,
    envp: NullTerminated,
    candidates: Vec<CString>,
    cwd: Option<CString>,
    /// Its stdin, stdout and stderr, each at a number above 2 so none is overwritten by
    /// another's dup2; closed on exec, so only their copies at 0, 1 and 2 stay.
    stdio: [OwnedFd; 3],
    runner: libc::pid_t,
    /// The errno of the step that failed, set by the child before it exits.
    failure: AtomicI32,
}

impl ChildSetup {
    /// Clones the child and returns its pid once it has exec'd, or the error that stopped it.
    fn clone_and_exec(&self) -> io::Result<libc::pid_t> {
        let mut stack = vec![0u8; CHILD_STACK_BYTES];
        // SAFETY: the stack is ours and outlives the child's use of it (this thread resumes
        // only once the child has exec'd or exited: CLONE_VFORK); the top is 16-byte aligned
        // as the ABI wants. Every signal is blocked around the clone, so no handler of the
        // runner runs in the child before it has set them back to their defaults.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(CHILD_STACK_BYTES);
            let top = top.sub(top as usize % 16);
            let (mut all, mut before) = (std::mem::zeroed(), std::mem::zeroed());
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
            let pid = libc::clone(
                child_main,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (self as *const ChildSetup).cast_mut().cast(),
            );
            let cloned = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
            if pid < 0 {
                return Err(cloned);
            }
            pid
        };
        match self.failure.load(Ordering::Acquire) {
            0 => Ok(pid),
            errno => {
                // It has exited already: reaped now, so no zombie stays.
                let mut status = 0;
                // SAFETY: waitpid(2) on our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

/// The child, from clone to exec: only async-signal-safe system calls on what `setup`
/// prepared. It returns only if exec failed, having said why in `setup.failure`.
extern "C" fn child_main(setup: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `setup` is the `ChildSetup` the paused parent holds; the calls below allocate
    // nothing and touch only the child's own stack and that setup.
    unsafe {
        let setup = &*(setup as *const ChildSetup);
        let fail = |errno: i32| -> libc::c_int {
            setup.failure.store(errno.max(1), Ordering::Release);
            libc::_exit(127)
        };
        default_signal_handlers();
        // Its own process group, so a timeout or a forced cancel kills what it starts too.
        if libc::setpgid(0, 0) != 0 {
            return fail(errno());
        }
        // An orphan left running would run beside its own rerun after a resume. Linux sends
        // the signal when the thread that cloned it ends: tokio's executor threads, which live
        // as long as the run (whose end kills every child anyway).
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return fail(errno());
        }
        // The runner died before prctl: nothing would send the signal now.
        if libc::getppid() != setup.runner {
            libc::_exit(137);
        }
        for (target, fd) in setup.stdio.iter().enumerate() {
            if libc::dup2(fd.as_raw_fd(), target as RawFd) < 0 {
                return fail(errno());
            }
        }
        if let Some(cwd) = &setup.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                return fail(errno());
            }
        }
        let mut none = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        fail(exec_first_found(setup))
    }
}

/// Tries each candidate path as execvp(3) does, and returns the errno to report when none ran:
/// a path that is missing is passed over, one not executable is reported if no later one runs.
///
/// # Safety
/// Only in the child, between clone and exec.
unsafe fn exec_first_found(setup: &ChildSetup) -> i32 {
    let mut reported = libc::ENOENT;
    for path in &setup.candidates {
        libc::execve(path.as_ptr(), setup.argv.as_ptr(), setup.envp.as_ptr());
        match errno() {
            libc::EACCES => reported = libc::EACCES,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            other => return other,
        }
    }
    reported
}

/// Back to the default action for every signal the runner handles (its handlers must not run
/// in the child, which shares its memory until exec), and for SIGPIPE, which Rust ignores.
///
/// # Safety
/// Only in the child, with every signal blocked.
unsafe fn default_signal_handlers() {
    for signal in 1..libc::SIGRTMAX() {
        let mut action: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
            continue;
        }
        let handled = action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN;
        if handled || signal == libc::SIGPIPE {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, std::ptr::null_mut());
        }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)
}

fn c_string(text: OsString) -> io::Result<CString> {
    CString::new(text.into_vec()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// C strings and the null-terminated array of pointers to them that execve(2) takes.
struct NullTerminated {
    _strings: Vec<CString>,
    pointers: Vec<*const libc::c_char>,
}

impl NullTerminated {
    fn new(items: impl Iterator<Item = OsString>) -> io::Result<Self> {
        let strings = items.map(c_string).collect::<io::Result<Vec<_>>>()?;
        let pointers = strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(NullTerminated { _strings: strings, pointers })
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.pointers.as_ptr()
    }
}

/// A pipe: the end the runner reads and the end the child writes, both closed on exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: pipe2(2) fills `ends` with two new descriptors we then own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// `fd` at a number above 2 (a runner started with 0, 1 or 2 closed gets those numbers back
/// from pipe2 and open), closed on exec.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own; `fd` is closed on return.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn<'a>(program: &'a str, args: &'a [String], env: Vec<(&'a str, &'a str)>) -> io::Result<Spawned> {
        Spawn { program, args, env, cwd: None }.start()
    }

    fn output(program: &str, args: &[&str], env: Vec<(&str, &str)>) -> (i32, String) {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut child = spawn(program, &args, env).unwrap();
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut text).await.unwrap();
            let status = child.wait().await.unwrap();
            (status.code().unwrap_or(-1), text)
        })
    }

    fn minor_faults_of_this_thread() -> i64 {
        // SAFETY: getrusage(2) fills the struct.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage.ru_minflt
        }
    }

    // A fork write-protected all 16,384 pages of this memory, so that writing them again
    // faulted once each: 7 ms a process in a run holding 100 MB.
    #[test]
    fn starting_a_process_leaves_the_runners_memory_alone() {
        let mut memory = vec![1u8; 64 << 20];
        assert_eq!(output("true", &[], vec![]).0, 0);
        let before = minor_faults_of_this_thread();
        for page in memory.chunks_mut(4096) {
            page[0] = 2;
        }
        let faults = minor_faults_of_this_thread() - before;
        assert!(faults < 64, "writing the runner's memory after a spawn faulted {faults} times: it was copied");
    }

    #[test]
    fn a_child_starts_with_no_signal_blocked_or_ignored_by_the_runner() {
        let (code, status) = output("grep", &["-E", "^Sig(Blk|Ign)", "/proc/self/status"], vec![]);
        assert_eq!(code, 0);
        assert!(status.contains("SigBlk:\t0000000000000000"), "{status}");
        // SIGPIPE (13) is bit 12: Rust ignores it in the runner, a child gets its default.
        let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:\t")).unwrap();
        assert_eq!(u64::from_str_radix(ignored, 16).unwrap() & (1 << 12), 0, "{status}");
    }

    #[test]
    fn a_child_leads_a_process_group_of_its_own() {
        let (_, ids) = output("sh", &["-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"], vec![]);
        let mut lines = ids.lines();
        assert_eq!(lines.next(), lines.next(), "the pid, then the process group: {ids}");
    }

    #[test]
    fn the_program_is_looked_up_in_the_path_the_child_gets() {
        let folder = tempfile::tempdir().unwrap();
        let program = folder.path().join("only-here");
        std::fs::write(&program, "#!/bin/sh\necho found \"$1\" \"$EXTRA\"\n").unwrap();
        std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!("/nowhere:{}", folder.path().display());
        let (code, text) = output("only-here", &["it"], vec![("PATH", &path), ("EXTRA", "too")]);
        assert_eq!((code, text.as_str()), (0, "found it too\n"));
    }

    #[test]
    fn a_program_or_folder_that_is_not_there_is_an_error_and_no_process() {
        let missing = spawn("no-such-program-anywhere", &[], vec![]).err().unwrap();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let elsewhere = Spawn { program: "true", args: &[], env: vec![], cwd: Some("/no/such/folder") }.start();
        assert_eq!(elsewhere.err().unwrap().kind(), io::ErrorKind::NotFound);
        let folder = tempfile::tempdir().unwrap();
        let plain = folder.path().join("plain");
        std::fs::write(&plain, "echo not executable").unwrap();
        let not_executable = spawn(plain.to_str().unwrap(), &[], vec![]).err().unwrap();
        assert_eq!(not_executable.kind(), io::ErrorKind::PermissionDenied);
    }
}
