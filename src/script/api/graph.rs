//! Graph mode (contract section 6): `graph_mode()`, the `Graph` and `Subgraph` building
//! methods, sequences, fork-joins and `execute()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::doc::{doc, Doc};
use super::tasks::{bad_argument, error, AsTask, TaskHandle};
use crate::events::TaskKind;
use crate::exec::{execute_plan, ScriptPool};
use crate::graph::flow_spec::{self, FlowNode};
use crate::graph::{dataflow, Plan, TaskGraph};
use crate::script::state::{upgrade, RunRef};
use crate::task::{ErrorKind, FailedTask, TaskError};
use crate::task::{TaskAction, TaskCell};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// One graph and its options, shared by every handle on it.
#[derive(Default)]
pub struct GraphShared {
    pub graph: Mutex<TaskGraph>,
    pub fail_fast: AtomicBool,
}

/// `graph_mode()`'s value.
#[derive(Clone)]
pub struct GraphHandle(pub Arc<GraphShared>);

/// `g.subgraph(name)`: a task of its graph that holds tasks of its own.
#[derive(Clone)]
pub struct SubgraphHandle {
    pub graph: Arc<GraphShared>,
    pub cell: Arc<TaskCell>,
}

impl AsTask for SubgraphHandle {
    fn cell(&self) -> &Arc<TaskCell> {
        &self.cell
    }
}

/// `g.sequence()`: each item added waits for the item before.
#[derive(Clone)]
pub struct SequenceHandle {
    graph: Arc<GraphShared>,
    parent: Option<Arc<TaskCell>>,
    last: Arc<Mutex<Vec<Arc<TaskCell>>>>,
}

/// `forkjoin(a, b, ...)`: members that run side by side inside a sequence.
#[derive(Clone)]
pub struct ForkJoinHandle(Vec<Arc<TaskCell>>);

/// Where building methods put tasks: a graph's top, or a subgraph.
trait Building: Clone + Send + Sync + 'static {
    fn shared(&self) -> &Arc<GraphShared>;
    fn parent(&self) -> Option<&Arc<TaskCell>>;
}

impl Building for GraphHandle {
    fn shared(&self) -> &Arc<GraphShared> {
        &self.0
    }
    fn parent(&self) -> Option<&Arc<TaskCell>> {
        None
    }
}

impl Building for SubgraphHandle {
    fn shared(&self) -> &Arc<GraphShared> {
        &self.graph
    }
    fn parent(&self) -> Option<&Arc<TaskCell>> {
        Some(&self.cell)
    }
}

fn type_error(value: &Dynamic, wanted: &str) -> Box<EvalAltResult> {
    bad_argument(format!("expected {wanted}, got {}", value.type_name().rsplit("::").next().unwrap_or("a value")))
}

/// The task behind a `Task` or `Subgraph` value.
fn task_of(value: &Dynamic) -> Result<Arc<TaskCell>> {
    if let Some(t) = value.read_lock::<TaskHandle>() {
        return Ok(t.0.clone());
    }
    if let Some(s) = value.read_lock::<SubgraphHandle>() {
        return Ok(s.cell.clone());
    }
    Err(type_error(value, "a task or a subgraph"))
}

fn graph_error(e: crate::graph::GraphError) -> Box<EvalAltResult> {
    error(e.to_string())
}

fn handle_of(shared: &Arc<GraphShared>, cell: Arc<TaskCell>) -> Dynamic {
    if cell.kind() == TaskKind::Subgraph {
        Dynamic::from(SubgraphHandle { graph: shared.clone(), cell })
    } else {
        Dynamic::from(TaskHandle(cell))
    }
}

/// Adds `items` to the sequence in order (an array's members one by one), each waiting for
/// the item before. It runs once per task a script adds, so it borrows each item in place
/// and reuses the sequence's list of last tasks instead of cloning and collecting.
fn add_items(seq: &SequenceHandle, items: &[Dynamic]) -> Result<()> {
    let mut graph = seq.graph.graph.lock();
    let mut last = seq.last.lock();
    for item in items {
        match item.read_lock::<Array>() {
            Some(array) => {
                for member in array.iter() {
                    add_item(&mut graph, seq.parent.as_ref(), &mut last, member)?;
                }
            }
            None => add_item(&mut graph, seq.parent.as_ref(), &mut last, item)?,
        }
    }
    Ok(())
}

/// One sequence item (a task, a subgraph or a fork-join): placed, waiting for `last`, and
/// then the new `last` (an empty fork-join leaves it as it was).
fn add_item(
    graph: &mut TaskGraph,
    parent: Option<&Arc<TaskCell>>,
    last: &mut Vec<Arc<TaskCell>>,
    item: &Dynamic,
) -> Result<()> {
    if let Some(f) = item.read_lock::<ForkJoinHandle>() {
        for t in &f.0 {
            graph.add(t, parent).map_err(graph_error)?;
        }
        for t in &f.0 {
            for before in last.iter() {
                graph.add_dependency(t, before).map_err(graph_error)?;
            }
        }
        if !f.0.is_empty() {
            last.clear();
            last.extend(f.0.iter().cloned());
        }
        return Ok(());
    }
    let t = task_of(item).map_err(|_| type_error(item, "a task, a subgraph or a forkjoin"))?;
    let index = graph.add(&t, parent).map_err(graph_error)?;
    for before in last.iter() {
        graph.add_dependency_of(index, before).map_err(graph_error)?;
    }
    last.clear();
    last.push(t);
    Ok(())
}

fn forkjoin(items: &[Dynamic]) -> Result<ForkJoinHandle> {
    let mut members = Vec::new();
    for item in items {
        match item.read_lock::<Array>() {
            Some(array) => {
                for member in array.iter() {
                    members.push(task_of(member)?);
                }
            }
            None => members.push(task_of(item)?),
        }
    }
    Ok(ForkJoinHandle(members))
}

fn register_building<T: Building>(engine: &mut Engine, run: &RunRef) {
    doc("g.add_task(t)", "Adds the task or subgraph `t`; returns it.").func("add_task").register_into_engine(
        engine,
        |g: &mut T, t: Dynamic| -> Result<Dynamic> {
            let cell = task_of(&t)?;
            g.shared().graph.lock().add(&cell, g.parent()).map_err(graph_error)?;
            Ok(t)
        },
    );
    doc("g.add_dependency(a, b)", "`a` waits for `b`.").func("add_dependency").register_into_engine(
        engine,
        |g: &mut T, a: Dynamic, b: Dynamic| -> Result<()> {
            let (a, b) = (task_of(&a)?, task_of(&b)?);
            g.shared().graph.lock().add_dependency(&a, &b).map_err(graph_error)
        },
    );
    doc("g.remove_dependency(a, b)", "`a` no longer waits for `b`.").func("remove_dependency").register_into_engine(
        engine,
        |g: &mut T, a: Dynamic, b: Dynamic| -> Result<()> {
            let (a, b) = (task_of(&a)?, task_of(&b)?);
            g.shared().graph.lock().remove_dependency(&a, &b).map_err(graph_error)
        },
    );
    doc("g.remove_task(t)", "Takes `t` out, with its dependencies.").func("remove_task").register_into_engine(
        engine,
        |g: &mut T, t: Dynamic| -> Result<()> {
            let cell = task_of(&t)?;
            g.shared().graph.lock().remove(&cell).map_err(graph_error)
        },
    );
    doc("g.sequence()", "A new `Sequence`: each item added waits for the item before.")
        .func("sequence")
        .register_into_engine(engine, |g: &mut T| SequenceHandle {
            graph: g.shared().clone(),
            parent: g.parent().cloned(),
            last: Arc::new(Mutex::new(Vec::new())),
        });
    let r = run.clone();
    doc(
        "g.subgraph(name)",
        "A task holding tasks of its own (the same building methods); `total_retries` reruns it from fresh copies.",
    )
    .func("subgraph")
    .register_into_engine(engine, move |ctx: NativeCallContext, g: &mut T, name: &str| -> Result<SubgraphHandle> {
        let run = upgrade(&r)?;
        let mut settings = run.new_settings();
        settings.total_retries = 0;
        let cell = run.new_task(name, TaskAction::Subgraph, settings, ctx.call_position())?;
        g.shared().graph.lock().add(&cell, g.parent()).map_err(graph_error)?;
        Ok(SubgraphHandle { graph: g.shared().clone(), cell })
    });
    register_flow::<T>(engine, run);
    doc("g.tasks()", "The tasks and subgraphs added to it so far.").func("tasks").register_into_engine(
        engine,
        |g: &mut T| -> Result<Array> {
            let graph = g.shared().graph.lock();
            let parent = match g.parent() {
                Some(p) => Some(graph.index_of(p).ok_or_else(|| error(format!("subgraph `{}` was removed", p.name)))?),
                None => None,
            };
            Ok(graph.members(parent).into_iter().map(|c| handle_of(g.shared(), c)).collect())
        },
    );
}

/// `g.flow(spec, tasks)`: a subgraph structured by a flow string.
fn register_flow<T: Building>(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    let flow = doc(
        "g.flow(spec, tasks)",
        "Structure from a flow string, `\"a; b || c\"` (`;` in order, `||` in parallel, parentheses group), as a new \
         subgraph; `tasks` maps its names to tasks.",
    );
    flow.func("flow").register_into_engine(
        engine,
        move |ctx: NativeCallContext, g: &mut T, spec: &str, tasks: Map| -> Result<SubgraphHandle> {
            let tree = flow_spec::parse(spec).map_err(|e| bad_argument(e.explain(spec)))?;
            let run = upgrade(&r)?;
            let mut settings = run.new_settings();
            settings.total_retries = 0;
            let sg = run.new_task("flow", TaskAction::Subgraph, settings, ctx.call_position())?;
            let mut graph = g.shared().graph.lock();
            graph.add(&sg, g.parent()).map_err(graph_error)?;
            let mut used = Vec::new();
            build_flow(&mut graph, &sg, &tree, &tasks, &mut used)?;
            not_left_out(&tasks, &used)?;
            Ok(SubgraphHandle { graph: g.shared().clone(), cell: sg })
        },
    );
}

/// Builds a parsed flow string inside subgraph `sg`; returns the tasks it starts with and
/// the ones it ends with, so that the caller can chain it.
/// The tasks a flow item starts with and the tasks it ends with.
type FlowEnds = (Vec<Arc<TaskCell>>, Vec<Arc<TaskCell>>);

fn build_flow(
    graph: &mut TaskGraph,
    sg: &Arc<TaskCell>,
    node: &FlowNode,
    tasks: &Map,
    used: &mut Vec<String>,
) -> Result<FlowEnds> {
    match node {
        FlowNode::Task(name) => {
            let Some(value) = tasks.get(name.as_str()) else {
                let mut known: Vec<&str> = tasks.keys().map(|k| k.as_str()).collect();
                known.sort();
                return Err(bad_argument(format!(
                    "the flow string names `{name}`, which its map does not hold (it holds: {})",
                    known.join(", ")
                )));
            };
            if used.contains(name) {
                return Err(bad_argument(format!("`{name}` appears twice in the flow string")));
            }
            used.push(name.clone());
            let cell = task_of(value)?;
            graph.add(&cell, Some(sg)).map_err(graph_error)?;
            Ok((vec![cell.clone()], vec![cell]))
        }
        FlowNode::Sequence(items) => {
            let mut entries = None;
            let mut exits: Vec<Arc<TaskCell>> = Vec::new();
            for item in items {
                let (starts, ends) = build_flow(graph, sg, item, tasks, used)?;
                for task in &starts {
                    for before in &exits {
                        graph.add_dependency(task, before).map_err(graph_error)?;
                    }
                }
                entries.get_or_insert(starts);
                exits = ends;
            }
            Ok((entries.unwrap_or_default(), exits))
        }
        FlowNode::Parallel(items) => {
            let (mut entries, mut exits) = (Vec::new(), Vec::new());
            for item in items {
                let (starts, ends) = build_flow(graph, sg, item, tasks, used)?;
                entries.extend(starts);
                exits.extend(ends);
            }
            Ok((entries, exits))
        }
    }
}

/// Every task handed to `flow` is named in its string: one left out would silently never run.
fn not_left_out(tasks: &Map, used: &[String]) -> Result<()> {
    let mut unused: Vec<&str> = tasks.keys().map(|k| k.as_str()).filter(|k| !used.iter().any(|u| u == k)).collect();
    if unused.is_empty() {
        return Ok(());
    }
    unused.sort();
    let list = unused.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    Err(bad_argument(format!(
        "the flow string never names {list}, which its map holds: add {} to the string or leave {} out of the map",
        if unused.len() == 1 { "it" } else { "them" },
        if unused.len() == 1 { "it" } else { "them" },
    )))
}

/// A task named in an invalid-graph diagnostic, pointing at where it was defined.
fn definition(task: &Arc<TaskCell>) -> FailedTask {
    FailedTask::of(task, TaskError::recoverable(""))
}

/// `g.execute()`: link data, validate, then run the graph and wait for it.
fn execute(run: &RunRef, g: &GraphHandle) -> Result<()> {
    let run = upgrade(run)?;
    let mut graph = g.0.graph.lock();
    dataflow::link(&mut graph, &run.settings.parameters).map_err(|e| {
        let mut error = TaskError::new(ErrorKind::Invalid, e.to_string());
        error.failed_tasks = Arc::new(e.tasks.iter().map(definition).collect());
        error.into_rhai()
    })?;
    let plan = Plan::build(&graph).map_err(|cycle| {
        let mut e = TaskError::new(ErrorKind::Invalid, cycle.to_string());
        e.failed_tasks = Arc::new(cycle.tasks.iter().map(definition).collect());
        e.into_rhai()
    })?;
    if run.settings.dry_run {
        return Ok(());
    }
    let env = run.env().clone();
    let reserve = |cell: &crate::task::TaskCell| {
        let task_id = env.next_task_id();
        cell.reserve_attempt(task_id);
        task_id
    };
    if env.bus.graphs_read() {
        let planned = crate::graph::planned(&graph, reserve);
        drop(graph);
        env.bus.emit(crate::events::Payload::GraphPlanned { graph: Arc::new(planned) });
    } else {
        // The plan holds the tasks in creation order already: each is given its id in turn.
        drop(graph);
        for task in plan.tasks.iter() {
            reserve(&task.cell);
        }
    }
    let fail_fast = g.0.fail_fast.load(Ordering::Relaxed);
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    run.begin_execution();
    env.runtime.spawn({
        let env = env.clone();
        async move {
            let _ = done_tx.send(execute_plan(plan, env, fail_fast).await);
        }
    });
    let result = ScriptPool::blocking(|| done_rx.recv()).unwrap_or_else(|_| {
        Err(TaskError::new(
            ErrorKind::NonRecoverable,
            "this is a bug in rhaiflow: the executor stopped; please report it",
        ))
    });
    run.end_execution();
    result.map_err(TaskError::into_rhai)
}

pub fn register(engine: &mut Engine, run: &RunRef) {
    engine
        .register_type_with_name::<GraphHandle>("Graph")
        .register_type_with_name::<SubgraphHandle>("Subgraph")
        .register_type_with_name::<SequenceHandle>("Sequence")
        .register_type_with_name::<ForkJoinHandle>("ForkJoin");

    let r = run.clone();
    doc("graph_mode()", "Switches to graph mode and returns the `Graph`: constructors then only build; throws once a task ran in standard mode.")
        .func("graph_mode").register_into_engine(engine, move || -> Result<GraphHandle> {
        let run = upgrade(&r)?;
        run.enter_graph_mode()?;
        let shared = Arc::new(GraphShared::default());
        run.graphs.lock().push(shared.clone());
        Ok(GraphHandle(shared))
    });
    register_building::<GraphHandle>(engine, run);
    register_building::<SubgraphHandle>(engine, run);

    let r = run.clone();
    doc("g.execute()", "Validates the graph, runs it and waits; reverts on failure and throws the graph's error.")
        .func("execute")
        .register_into_engine(engine, move |g: &mut GraphHandle| execute(&r, g));
    let fail_fast = doc("g.fail_fast", "Read and write: stop starting tasks after the first failure.");
    fail_fast
        .get("fail_fast")
        .register_into_engine(engine, |g: &mut GraphHandle| g.0.fail_fast.load(Ordering::Relaxed));
    fail_fast
        .set("fail_fast")
        .register_into_engine(engine, |g: &mut GraphHandle, on: bool| g.0.fail_fast.store(on, Ordering::Relaxed));

    register_variadic(engine);
    doc("g.to_string()", "`Graph(N tasks)`.")
        .func("to_string")
        .register_into_engine(engine, |g: &mut GraphHandle| format!("Graph({} tasks)", g.0.graph.lock().len()));
    doc("sg.to_string()", "`Subgraph(name)`.")
        .func("to_string")
        .register_into_engine(engine, |s: &mut SubgraphHandle| format!("Subgraph({})", s.cell.name));
    doc("f.to_string()", "`ForkJoin(a, b, …)`: the names of its tasks.").func("to_string").register_into_engine(
        engine,
        |f: &mut ForkJoinHandle| {
            let names: Vec<&str> = f.0.iter().map(|t| &*t.name).collect();
            format!("ForkJoin({})", names.join(", "))
        },
    );
}

/// `s.add(...)` and `forkjoin(...)`, registered for 1 to 8 arguments (Rhai has no variadic
/// functions; an array is one argument too).
fn register_variadic(engine: &mut Engine) {
    let add_doc: Doc = doc(
        "s.add(x, y, …)",
        "Adds up to 8 items (tasks, subgraphs, fork-joins, or arrays of them) in order, each waiting for the one before.",
    );
    let forkjoin_doc: Doc = doc(
        "forkjoin(a, b, …)",
        "Up to 8 tasks (or an array of them) that run side by side as one item of a sequence.",
    );
    macro_rules! variadic {
        ($name:literal, $f:expr, $this:ty, $($arg:ident),+) => {
            add_doc.func($name).register_into_engine(engine, move |this: &mut $this, $($arg: Dynamic),+| $f(this, &[$($arg),+]));
        };
        (free $name:literal, $f:expr, $($arg:ident),+) => {
            forkjoin_doc.func($name).register_into_engine(engine, move |$($arg: Dynamic),+| $f(&[$($arg),+]));
        };
    }
    let add = |s: &mut SequenceHandle, items: &[Dynamic]| add_items(s, items);
    variadic!("add", add, SequenceHandle, a);
    variadic!("add", add, SequenceHandle, a, b);
    variadic!("add", add, SequenceHandle, a, b, c);
    variadic!("add", add, SequenceHandle, a, b, c, d);
    variadic!("add", add, SequenceHandle, a, b, c, d, e);
    variadic!("add", add, SequenceHandle, a, b, c, d, e, f);
    variadic!("add", add, SequenceHandle, a, b, c, d, e, f, g);
    variadic!("add", add, SequenceHandle, a, b, c, d, e, f, g, h);
    variadic!(free "forkjoin", forkjoin, a);
    variadic!(free "forkjoin", forkjoin, a, b);
    variadic!(free "forkjoin", forkjoin, a, b, c);
    variadic!(free "forkjoin", forkjoin, a, b, c, d);
    variadic!(free "forkjoin", forkjoin, a, b, c, d, e);
    variadic!(free "forkjoin", forkjoin, a, b, c, d, e, f);
    variadic!(free "forkjoin", forkjoin, a, b, c, d, e, f, g);
    variadic!(free "forkjoin", forkjoin, a, b, c, d, e, f, g, h);
}
