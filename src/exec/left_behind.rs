//! Task processes that an execution's previous run left behind when it died.
//!
//! A task's own process dies with its runner (`PR_SET_PDEATHSIG`), but not what it started
//! in the background (`daemon &`, a helper that called `setsid`): after a crash those go on,
//! and a resume would run the task again beside them. Every task process carries its
//! execution's id in its environment ([`EXECUTION_ID_VARIABLE`]), inherited by all it starts;
//! before a resume runs anything, each process still carrying it is killed with its process
//! group. A process that cleared its environment, or runs as another user, is not found.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The environment variable that names a task process's execution.
pub const EXECUTION_ID_VARIABLE: &str = "RHAIFLOW_EXECUTION_ID";

/// How long to wait for the killed processes to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(2);

/// Kills every process (and its group) whose environment says it belongs to `execution_id`;
/// returns the pids of those it found, once they are gone (or `GONE_WITHIN` passed).
pub fn end_left_behind(execution_id: &str) -> Vec<i32> {
    let found = processes_of(execution_id);
    let groups: BTreeSet<i32> = found.iter().filter_map(|&pid| group_of(pid)).collect();
    for pgid in groups {
        // SAFETY: kill(2) with a negative pid signals a process group; it only sends a signal.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    for &pid in &found {
        // SAFETY: as above, for one process (one that left its group).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + GONE_WITHIN;
    while !found.iter().all(|&pid| is_gone(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    found
}

/// The pids whose environment holds `RHAIFLOW_EXECUTION_ID=<execution_id>`, this one aside.
fn processes_of(execution_id: &str) -> Vec<i32> {
    let marker = format!("{EXECUTION_ID_VARIABLE}={execution_id}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            // Unreadable (another user's, or gone meanwhile): not one of ours to find.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|&b| b == 0).any(|entry| entry == marker.as_bytes()))
        })
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and parens).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn group_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok().filter(|&pgid: &i32| pgid > 1)
}

/// Gone, or a zombie waiting for a parent to reap it (it runs no more).
fn is_gone(pid: i32) -> bool {
    stat_fields(pid).is_none_or(|fields| fields.first().is_some_and(|state| state == "Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_carrying_the_execution_id_is_killed_with_its_group_and_others_are_not() {
        let spawn = |id: &str| {
            std::process::Command::new("sleep")
                .arg("30")
                .env(EXECUTION_ID_VARIABLE, id)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        use std::os::unix::process::CommandExt;
        let (mut ours, mut theirs) = (spawn("left-behind-test-1"), spawn("left-behind-test-2"));
        // Until a child has exec'd, /proc shows the environment it forked with (ours): on a
        // busy machine the search came too early and found nothing. A left-behind process
        // has long exec'd; wait for both here.
        let deadline = Instant::now() + Duration::from_secs(10);
        while (processes_of("left-behind-test-1").is_empty() || processes_of("left-behind-test-2").is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(end_left_behind("left-behind-test-1"), vec![ours.id() as i32]);
        assert!(ours.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(theirs.try_wait().unwrap().is_none(), "another execution's process runs on");
        theirs.kill().unwrap();
        theirs.wait().unwrap();
    }
}
