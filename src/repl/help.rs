//! What `:help` shows (the host API with one line each) and what Tab completes after a dot.

/// The REPL's commands.
pub const COMMANDS: &[(&str, &str)] = &[
    (":help", "this list"),
    (":graph", "the current graph (the last graph_mode()) as text"),
    (":run", "execute the current graph, with live progress (Ctrl-C cancels it, twice forces)"),
    (":events", "the events of the last run (or of the last line that ran tasks)"),
    (":load FILE", "run a script file in this session"),
    (":reset", "start over: no variables, no functions, standard mode"),
    (":quit", "leave (Ctrl-D too)"),
];

/// The host API, as `(call, what it does)`.
pub const API: &[(&str, &str)] = &[
    ("task(name, || ...)", "a task running a Rhai closure; its value is the result"),
    ("shell(name, command[, #{env, cwd, timeout}])", "a task running `sh -c command`; result #{code, stdout, stderr}"),
    ("exec(name, [program, args...][, opts])", "a task running a program, no shell"),
    ("sleep(name, secs)", "a task that waits (cancellable)"),
    ("noop(name)", "a task that does nothing"),
    ("send_event(message)", "a task emitting a workflow_event"),
    ("graph_mode()", "switch to graph mode; returns the Graph (constructors then only build)"),
    ("g.add_task(t)", "add a task to the graph"),
    ("g.add_dependency(a, b)", "a waits for b"),
    ("g.remove_dependency(a, b) / g.remove_task(t)", "undo"),
    ("g.sequence().add(a, b, ...)", "a chain: each item waits for the one before"),
    ("forkjoin(a, b, ...)", "items of a sequence that run in parallel"),
    ("g.subgraph(name)", "a task holding tasks of its own; sg.total_retries reruns it"),
    ("g.flow(\"a; b || c\", #{a: ta, ...})", "structure from a flow string"),
    ("g.execute() / g.fail_fast", "run the graph (or :run); stop starting tasks after a failure"),
    ("t.get()", "wait for a task and return its result (or throw its error)"),
    ("t.total_retries / t.retry_interval / t.timeout", "retry and time settings"),
    (
        "t.on_success / t.on_failure = |t| HandlerResult::...",
        "handlers: cont, ignore, fail, retry, retry_ignoring_limit",
    ),
    ("t.revert = |result| ...", "undo a succeeded task when its graph fails"),
    ("t.provides / t.requires / t.inject", "data flow between tasks (TaskFlow)"),
    ("t.name / t.state / t.result / t.error", "what the task is and did"),
    ("non_recoverable(msg) / operation_retry(msg, secs)", "errors to throw from a closure"),
    ("has_cancel_request() / is_cancelled(err)", "cancellation"),
    ("log(level, msg) / print(msg) / debug(msg)", "log events"),
    ("import \"std/flow\" as flow", "the stdlib: flow::pipeline, flow::parallel, flow::dag"),
    ("ctx.nodes / ctx.node_instances / ctx.get_node(id)", "the deployment model (--blueprint, --deployment)"),
    ("instance.execute_operation(op[, kwargs])", "an operation task on a node instance"),
    ("instance.send_event(msg) / instance.set_state(s)", "node events and instance states"),
];

/// Free functions and keywords, completed at the start of a word.
pub const FUNCTIONS: &[&str] = &[
    "HandlerResult",
    "debug",
    "exec",
    "execution_cancelled",
    "fn",
    "forkjoin",
    "graph_mode",
    "has_cancel_request",
    "import",
    "is_cancelled",
    "let",
    "log",
    "noop",
    "non_recoverable",
    "operation_retry",
    "print",
    "send_event",
    "shell",
    "sleep",
    "task",
    "throw",
    "try",
];

/// Task, graph and deployment properties and methods, completed after a dot.
pub const PROPERTIES: &[&str] = &[
    "add",
    "add_dependency",
    "add_task",
    "contained_instances",
    "current_retries",
    "error",
    "execute",
    "execute_operation",
    "execute_source_operation",
    "execute_target_operation",
    "fail_fast",
    "flow",
    "get",
    "get_contained_subgraph",
    "id",
    "inject",
    "instances",
    "name",
    "node",
    "node_id",
    "number_of_instances",
    "on_failure",
    "on_success",
    "properties",
    "provides",
    "relationships",
    "remove_dependency",
    "remove_task",
    "requires",
    "result",
    "retry_interval",
    "revert",
    "runtime_properties",
    "send_event",
    "sequence",
    "set_state",
    "state",
    "subgraph",
    "target_id",
    "target_node",
    "tasks",
    "timeout",
    "total_retries",
    "type",
    "type_hierarchy",
];

/// The text `:help` prints.
pub fn text() -> String {
    let width = API.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut out = String::from("Commands:\n");
    for (command, what) in COMMANDS {
        out.push_str(&format!("  {command:<12} {what}\n"));
    }
    out.push_str("\nThe host API (all of it: docs/REFERENCE.md):\n");
    for (call, what) in API {
        out.push_str(&format!("  {call:<width$}  {what}\n"));
    }
    out.push_str("\nInput that stops before its end (an open bracket, brace or string, a trailing operator) goes on\nunder `...>`. Tab completes.\n");
    out
}
