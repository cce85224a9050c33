//! The REPL as a person uses it: in a real pseudo-terminal (expectrl), typing lines and
//! keys (Tab, Ctrl-C, Ctrl-D), reading what the screen shows.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::{ControlCode, Eof, Expect, Session};

use crate::support::{example, fixtures};

const PROMPT: &str = "rhaiflow> ";

/// `rhaiflow repl` in a pseudo-terminal, in the fixtures folder, with its history in `home`.
fn repl(home: &Path, args: &[&str]) -> expectrl::session::OsSession {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("rhaiflow"));
    command
        .arg("repl")
        .arg("--history")
        .arg(home.join("history"))
        .args(args)
        .current_dir(fixtures())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("RHAIFLOW_BUNDLES", home.join("bundles"))
        .env_remove("RHAIFLOW_STORE");
    let mut session = Session::spawn(command).expect("the repl starts in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session.expect(PROMPT).expect("a prompt");
    session
}

/// Types `line` and waits for `shown` to appear, then for the next prompt.
fn type_line(session: &mut expectrl::session::OsSession, line: &str, shown: &str) {
    session.send_line(line).unwrap();
    session.expect(shown).unwrap_or_else(|e| panic!("after `{line}`, `{shown}` did not appear: {e}"));
    session.expect(PROMPT).unwrap_or_else(|e| panic!("after `{line}`, no prompt: {e}"));
}

#[test]
fn values_variables_and_functions_last_from_line_to_line() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line("let x = 40 + 2;").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "x", "42");
    // An open brace goes on on the next line. The three lines are sent at once, as typed
    // ahead or pasted: the lines after the first were dropped when the continuation prompt
    // started a new read (without rustyline's `buffer-redux`).
    s.send_line("fn twice(n) {").unwrap();
    s.send_line("    n * 2").unwrap();
    s.send_line("}").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "twice(x) + 1000", "1084");
    type_line(&mut s, "#{name: \"web\", ports: [80, 443]}", "{\"name\":\"web\",\"ports\":[80,443]}");
}

#[test]
fn a_graph_built_line_by_line_is_drawn_run_and_its_events_listed() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    for line in [
        "let g = graph_mode();",
        "let build = task(\"build\", || 6 * 7);",
        "let deploy = shell(\"deploy\", \"echo deployed\");",
        "g.sequence().add(build, deploy);",
    ] {
        s.send_line(line).unwrap();
        s.expect(PROMPT).unwrap();
    }
    type_line(&mut s, ":graph", "deploy (shell)  waits for: build");
    s.send_line(":run").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "build.result + deploy.result.code", "42");
    s.send_line(":events").unwrap();
    s.expect("task_succeeded      build  => 42").unwrap();
    s.expect("task_succeeded      deploy").unwrap();
    s.expect(PROMPT).unwrap();
}

#[test]
fn an_error_is_a_diagnostic_at_the_line_and_the_session_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line("let y = nope(1);").unwrap();
    s.expect("Function not found: nope (int)").unwrap();
    s.expect("<repl>:1:9").unwrap();
    s.expect(PROMPT).unwrap();
    s.send_line("let z = 1 +* 2;").unwrap();
    s.expect("<repl> does not compile").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "6 * 7", "42");
}

#[test]
fn ctrl_c_drops_the_input_or_cancels_the_running_graph() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send("let half_typed = ").unwrap();
    s.send(ControlCode::EndOfText).unwrap();
    s.expect("^C (Ctrl-D or :quit leaves)").unwrap();
    s.expect(PROMPT).unwrap();
    for line in ["let g = graph_mode();", "g.add_task(sleep(\"nap\", 60));"] {
        s.send_line(line).unwrap();
        s.expect(PROMPT).unwrap();
    }
    s.send_line(":run").unwrap();
    s.expect("nap").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.send(ControlCode::EndOfText).unwrap();
    s.expect("cancelling").unwrap_or_else(|e| panic!("{e:?}"));
    s.expect("cancelled").unwrap();
    s.expect(PROMPT).unwrap();
    // The session stands: variables are still there and new tasks run.
    type_line(&mut s, "task(\"after\", || 40 + 2).get()", "42");
}

#[test]
fn tab_completes_host_functions_variables_and_commands() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line("let my_volume = 7;").unwrap();
    s.expect(PROMPT).unwrap();
    s.send("grap").unwrap();
    s.send("\t").unwrap();
    s.expect("graph_mode").unwrap();
    s.send(ControlCode::EndOfText).unwrap();
    s.expect(PROMPT).unwrap();
    s.send("my_vo").unwrap();
    s.send("\t").unwrap();
    s.expect("my_volume").unwrap();
    s.send_line(" + 35").unwrap();
    s.expect("42").unwrap();
    s.expect(PROMPT).unwrap();
    s.send(":he").unwrap();
    s.send("\t").unwrap();
    s.send("\r").unwrap();
    s.expect("The host API").unwrap();
    s.expect("graph_mode()").unwrap();
    s.expect(PROMPT).unwrap();
}

// `:help` printed a hand-written list, and `:help NAME` printed that same list.
#[test]
fn help_name_shows_the_doc_written_beside_the_registration() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    type_line(&mut s, ":help parse_json", "bad JSON is an error at the call");
    type_line(&mut s, ":help total_retries", "how many retries it is allowed");
    type_line(&mut s, ":help no_such_thing", "no host function `no_such_thing`");
}

// Completion read hand-kept lists, which missed `parse_json`, `start_modification`, ...
#[test]
fn tab_completes_every_registered_function_and_member() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send("parse_js").unwrap();
    s.send("\t").unwrap();
    s.send_line("(\"[41]\")[0] + 1").unwrap();
    s.expect("42").unwrap();
    s.expect(PROMPT).unwrap();
    s.send("ctx.deployment.start_modi").unwrap();
    s.send("\t").unwrap();
    s.expect("start_modification").unwrap();
}

#[test]
fn ctrl_d_leaves_and_the_history_is_kept() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    type_line(&mut s, "\"remember \" + \"me\"", "remember me");
    s.send(ControlCode::EndOfTransmission).unwrap();
    s.expect(Eof).unwrap();
    assert_eq!(s.get_process().wait().unwrap(), WaitStatus::Exited(s.get_process().pid(), 0));
    let history = std::fs::read_to_string(home.path().join("history")).unwrap();
    assert!(history.contains("\"remember \" + \"me\""), "{history}");

    // The next session starts with it: arrow-up brings the line back.
    let mut s = repl(home.path(), &[]);
    s.send("\x1b[A").unwrap();
    s.send("\r").unwrap();
    s.expect("remember me").unwrap();
    s.send_line(":quit").unwrap();
    s.expect(Eof).unwrap();
}

#[test]
fn load_runs_a_file_into_the_session_and_reset_starts_over() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line(":load repl_helpers.rhai").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "greet(\"ops\")", "hello, ops");
    type_line(&mut s, "loaded_at_top", "42");
    s.send_line(":reset").unwrap();
    s.expect("a new session").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "loaded_at_top", "Variable not found: loaded_at_top");
}

#[test]
fn a_blueprint_gives_the_session_its_nodes_and_instances() {
    let home = tempfile::tempdir().unwrap();
    let blueprint = example("three_tier/blueprint.yaml");
    let mut s = repl(home.path(), &["--blueprint", blueprint.to_str().unwrap()]);
    type_line(&mut s, "ctx.node_instances.map(|i| i.id)", "[\"vm_1\",\"database_1\",\"web_1\",\"web_2\"]");
    type_line(&mut s, "ctx.get_node(\"web\").type_hierarchy", "three_tier.WebApp");
    type_line(&mut s, "import \"std/flow\" as flow; \"imported\"", "imported");
}

#[test]
fn modules_of_installed_bundles_are_imported_and_stay_imported() {
    let home = tempfile::tempdir().unwrap();
    let installed = assert_cmd::Command::cargo_bin("rhaiflow")
        .unwrap()
        .args(["bundle", "install", example("bundles/cloudops").to_str().unwrap()])
        .env("RHAIFLOW_BUNDLES", home.path().join("bundles"))
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let mut s = repl(home.path(), &[]);
    s.send_line("import \"cloudops/cloud\" as cloud;").unwrap();
    s.expect(PROMPT).unwrap();
    // A later line still reaches the module.
    type_line(&mut s, "cloud::boot_instance(\"/tmp/w\", \"vm9\", \"m1\")", "printf vm9");
}

/// `:run` and `g.execute()` printed nothing of the run: no failed task, no outcome line.
#[test]
fn a_run_shows_its_task_lines_and_its_outcome_as_rhaiflow_run_does() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    for line in ["let g = graph_mode();", "g.add_task(shell(\"bad\", \"exit 3\"));"] {
        s.send_line(line).unwrap();
        s.expect(PROMPT).unwrap();
    }
    s.send_line(":run").unwrap();
    s.expect("FAILED  bad: `exit 3` exited with code 3").unwrap();
    s.expect("✘ workflow failed").unwrap();
    s.expect("first failure: task `bad`").unwrap();
    s.expect(PROMPT).unwrap();
    for line in ["let h = graph_mode();", "h.add_task(shell(\"good\", \"true\"));"] {
        s.send_line(line).unwrap();
        s.expect(PROMPT).unwrap();
    }
    s.send_line("h.execute()").unwrap();
    s.expect("✔ workflow succeeded").unwrap();
    s.expect("tasks: 1 succeeded").unwrap();
    s.expect(PROMPT).unwrap();
}

/// Every line drew a progress line (a spinner), tasks or not, which the prompt then followed.
#[test]
fn a_line_that_runs_no_task_draws_no_progress_line() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line("let g = graph_mode();").unwrap();
    let shown = s.expect(PROMPT).unwrap();
    let shown = String::from_utf8_lossy(shown.before()).to_string();
    assert!(!shown.contains("0s"), "a progress line was drawn: {shown:?}");
}

/// `let x = 40 +` failed at once with "Script is incomplete" instead of reading on.
#[test]
fn input_incomplete_at_its_end_goes_on_under_a_continuation_prompt() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    s.send_line("let x = 40 +").unwrap();
    s.expect("...> ").unwrap();
    s.send_line("2;").unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "x", "42");
    // Ctrl-C under the continuation prompt drops the whole input.
    s.send_line("let y = [1,").unwrap();
    s.expect("...> ").unwrap();
    s.send(ControlCode::EndOfText).unwrap();
    s.expect(PROMPT).unwrap();
    type_line(&mut s, "x + 1", "43");
}

/// What a terminal shows of each line of `raw`: the text after the line's last erase (`\r`
/// followed by the erase-line sequence), which is where the progress line is redrawn.
fn visible_lines(raw: &str) -> Vec<String> {
    raw.split('\n').map(|line| line.rsplit("\r\x1b[2K").next().unwrap_or("").trim_end().to_string()).collect()
}

/// "^C cancelling" was written after the progress line's text, leaving "running 1 · nap ^C
/// cancelling" on the screen.
#[test]
fn ctrl_c_while_a_run_shows_progress_says_cancelling_on_a_line_of_its_own() {
    let home = tempfile::tempdir().unwrap();
    let mut s = repl(home.path(), &[]);
    for line in ["let g = graph_mode();", "g.add_task(sleep(\"nap\", 60));"] {
        s.send_line(line).unwrap();
        s.expect(PROMPT).unwrap();
    }
    s.send_line(":run").unwrap();
    s.expect("running 1").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.send(ControlCode::EndOfText).unwrap();
    let shown = s.expect(PROMPT).unwrap();
    let shown = String::from_utf8_lossy(shown.before()).to_string();
    let said = visible_lines(&shown).into_iter().find(|l| l.contains("cancelling")).expect("a cancelling line");
    assert!(!said.contains("running"), "the message is glued to the progress line: {said:?} in {shown:?}");
    assert!(shown.contains("⊘ workflow cancelled"), "{shown:?}");
}
