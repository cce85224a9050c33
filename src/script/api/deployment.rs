//! The deployment model as scripts see it (contract section 8): `ctx.nodes`, node instances
//! and relationships as small handles, and the tasks they build (`execute_operation`,
//! `send_event`, `set_state`, relationship operations).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::doc::doc;
use super::tasks::{bad_argument, build, TaskHandle};
use crate::deploy::model::NotRecorded;
use crate::deploy::{Deployment, Executor, OperationCall, Side};
use crate::script::state::{upgrade, RunRef};
use crate::task::TaskAction;
use crate::task::TaskError;
use crate::value::{from_json, to_json};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// A change the deployment's store could not record, thrown into the script.
fn unrecorded(error: NotRecorded) -> Box<EvalAltResult> {
    TaskError::unrecorded(&error).into_rhai()
}

#[derive(Clone)]
pub struct NodeHandle {
    pub deployment: Arc<Deployment>,
    pub node: usize,
}

#[derive(Clone)]
pub struct InstanceHandle {
    pub deployment: Arc<Deployment>,
    pub id: Arc<str>,
}

#[derive(Clone)]
pub struct RelationshipHandle {
    pub deployment: Arc<Deployment>,
    pub instance: Arc<str>,
    /// Its place among the instance's relationships.
    pub index: usize,
}

/// `ctx.deployment`.
#[derive(Clone)]
pub struct DeploymentHandle(pub Arc<Deployment>);

/// What `start_modification` returns: `added` / `removed` (each `.node_instances`),
/// `finish()`, `rollback()`.
#[derive(Clone)]
pub struct ModificationHandle {
    deployment: Arc<Deployment>,
    added: Vec<String>,
    removed: Vec<String>,
    ended: Arc<parking_lot::Mutex<bool>>,
}

pub fn deployment_handle(deployment: &Arc<Deployment>) -> Dynamic {
    Dynamic::from(DeploymentHandle(deployment.clone()))
}

impl NodeHandle {
    fn instances(&self) -> Array {
        self.deployment.instances_of(self.node).into_iter().map(|id| instance(&self.deployment, &id)).collect()
    }
}

pub fn instance(deployment: &Arc<Deployment>, id: &str) -> Dynamic {
    Dynamic::from(InstanceHandle { deployment: deployment.clone(), id: Arc::from(id) })
}

pub fn node(deployment: &Arc<Deployment>, node: usize) -> Dynamic {
    Dynamic::from(NodeHandle { deployment: deployment.clone(), node })
}

/// `ctx.nodes` and `ctx.node_instances`.
pub fn nodes(deployment: &Arc<Deployment>) -> (Array, Array) {
    let nodes = (0..deployment.nodes.len()).map(|i| node(deployment, i)).collect();
    let ids: Vec<String> = deployment.instances.lock().iter().map(|i| i.id.clone()).collect();
    (nodes, ids.iter().map(|id| instance(deployment, id)).collect())
}

impl InstanceHandle {
    fn model(&self) -> Result<crate::deploy::model::InstanceModel> {
        self.deployment
            .instance(&self.id)
            .ok_or_else(|| bad_argument(format!("node instance `{}` is no longer part of the deployment", self.id)))
    }

    fn node_index(&self) -> Result<usize> {
        Ok(self.model()?.node)
    }
}

impl RelationshipHandle {
    fn target(&self) -> Result<(usize, String)> {
        let model = self.deployment.instance(&self.instance).ok_or_else(|| bad_argument("the instance is gone"))?;
        model.relationships.get(self.index).cloned().ok_or_else(|| bad_argument("the relationship is gone"))
    }
}

fn kwargs(map: Map) -> serde_json::Map<String, serde_json::Value> {
    match to_json(&Dynamic::from_map(map)) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

pub fn register(engine: &mut Engine, run: &RunRef) {
    register_node(engine);
    register_instance(engine);
    register_instance_topology(engine);
    register_instance_tasks(engine, run);
    register_relationship(engine, run);
    register_modification(engine);
    register_lookups(engine, run);
}

/// `Node`: a node of the blueprint.
fn register_node(engine: &mut Engine) {
    engine.register_type_with_name::<NodeHandle>("Node");
    doc("node.id", "The node's name in the blueprint.")
        .get("id")
        .register_into_engine(engine, |n: &mut NodeHandle| n.deployment.nodes[n.node].id.clone());
    doc("node.type", "Its type.")
        .get("type")
        .register_into_engine(engine, |n: &mut NodeHandle| n.deployment.nodes[n.node].type_name.clone());
    doc("node.type_hierarchy", "Its type and the types it derives from, the root first.")
        .get("type_hierarchy")
        .register_into_engine(engine, |n: &mut NodeHandle| -> Array {
            n.deployment.nodes[n.node].type_hierarchy.iter().map(|t| Dynamic::from(t.clone())).collect()
        });
    doc("node.properties", "Its properties, as the blueprint gives them (a map).")
        .get("properties")
        .register_into_engine(engine, |n: &mut NodeHandle| {
            from_json(&serde_json::Value::Object(n.deployment.nodes[n.node].properties.clone()))
        });
    doc("node.instances", "Its node instances.")
        .get("instances")
        .register_into_engine(engine, |n: &mut NodeHandle| n.instances());
    doc(
        "node.number_of_instances",
        "How many instances it has; during a modification, the ones it adds count once it finishes.",
    )
    .get("number_of_instances")
    .register_into_engine(engine, |n: &mut NodeHandle| n.deployment.settled_count(n.node) as i64);
    doc("node.to_string()", "`Node(id)`.")
        .func("to_string")
        .register_into_engine(engine, |n: &mut NodeHandle| format!("Node({})", n.deployment.nodes[n.node].id));
    doc("node.to_debug()", "`Node(id)`.")
        .func("to_debug")
        .register_into_engine(engine, |n: &mut NodeHandle| format!("Node({})", n.deployment.nodes[n.node].id));
    doc("a == b", "Whether two nodes are the same node.")
        .func("==")
        .register_into_engine(engine, |a: NodeHandle, b: NodeHandle| {
            a.node == b.node && Arc::ptr_eq(&a.deployment, &b.deployment)
        });
}

/// `NodeInstance`: what it is and where it sits.
fn register_instance(engine: &mut Engine) {
    engine.register_type_with_name::<InstanceHandle>("NodeInstance");
    doc("instance.id", "The instance's id (`web_1a2b3c`).")
        .get("id")
        .register_into_engine(engine, |i: &mut InstanceHandle| i.id.to_string());
    doc("instance.node_id", "Its node's id.")
        .get("node_id")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Result<String> {
            Ok(i.deployment.nodes[i.node_index()?].id.clone())
        });
    doc("instance.node", "Its `Node`.")
        .get("node")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Result<Dynamic> {
            Ok(node(&i.deployment, i.node_index()?))
        });
    doc("instance.state", "Its state (`uninitialized`, `started`, …).")
        .get("state")
        .register_into_engine(engine, |i: &mut InstanceHandle| i.deployment.data_of(&i.id).state);
    let runtime_properties = doc(
        "instance.runtime_properties",
        "Read and write: its runtime properties (a map), stored with the deployment.",
    );
    runtime_properties.get("runtime_properties").register_into_engine(engine, |i: &mut InstanceHandle| {
        from_json(&serde_json::Value::Object(i.deployment.data_of(&i.id).runtime_properties))
    });
    runtime_properties.set("runtime_properties").register_into_engine(
        engine,
        |i: &mut InstanceHandle, properties: Map| -> Result<()> {
            i.deployment.set_runtime_properties(&i.id, kwargs(properties)).map_err(unrecorded)
        },
    );
    doc(
        "instance.modification",
        "`added` or `removed` while a modification under way changes it, else an empty string.",
    )
    .get("modification")
    .register_into_engine(engine, |i: &mut InstanceHandle| i.deployment.modification_of(&i.id));
    doc("instance.to_string()", "`NodeInstance(id)`.")
        .func("to_string")
        .register_into_engine(engine, |i: &mut InstanceHandle| format!("NodeInstance({})", i.id));
    doc("instance.to_debug()", "`NodeInstance(id)`.")
        .func("to_debug")
        .register_into_engine(engine, |i: &mut InstanceHandle| format!("NodeInstance({})", i.id));
    doc("a == b", "Whether two instances are the same instance.")
        .func("==")
        .register_into_engine(engine, |a: InstanceHandle, b: InstanceHandle| {
            a.id == b.id && Arc::ptr_eq(&a.deployment, &b.deployment)
        });
    doc("a != b", "Whether two instances are different instances.")
        .func("!=")
        .register_into_engine(engine, |a: InstanceHandle, b: InstanceHandle| {
            a.id != b.id || !Arc::ptr_eq(&a.deployment, &b.deployment)
        });
}

/// Where a `NodeInstance` sits: containment, relationships, the operations it has.
fn register_instance_topology(engine: &mut Engine) {
    doc("instance.contained_in", "The id of the instance it is contained in, or `()`.")
        .get("contained_in")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Result<Dynamic> {
            Ok(i.model()?.contained_in.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        });
    doc("instance.relationships", "Its `Relationship`s, in the blueprint's order.")
        .get("relationships")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Result<Array> {
            let model = i.model()?;
            Ok((0..model.relationships.len())
                .map(|index| {
                    Dynamic::from(RelationshipHandle {
                        deployment: i.deployment.clone(),
                        instance: i.id.clone(),
                        index,
                    })
                })
                .collect())
        });
    doc("instance.contained_instances", "The instances contained directly in it.")
        .get("contained_instances")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Array {
            let inside: Vec<String> = i
                .deployment
                .instances
                .lock()
                .iter()
                .filter(|x| x.contained_in.as_deref() == Some(&*i.id))
                .map(|x| x.id.clone())
                .collect();
            inside.iter().map(|id| instance(&i.deployment, id)).collect()
        });
    doc("instance.get_contained_subgraph()", "It and every instance contained in it, at any depth.")
        .func("get_contained_subgraph")
        .register_into_engine(engine, |i: &mut InstanceHandle| -> Array {
            i.deployment.contained_subgraph(&i.id).iter().map(|id| instance(&i.deployment, id)).collect()
        });
    doc("instance.has_operation(op)", "Whether its node's interfaces implement operation `op`.")
        .func("has_operation")
        .register_into_engine(engine, |i: &mut InstanceHandle, op: &str| -> bool {
            let call = OperationCall::new(&i.deployment, &i.id, op, Default::default(), None);
            call.operation.is_some_and(|o| o.implementation != crate::deploy::Implementation::Nothing)
        });
}

/// The tasks a node instance builds: its operations, its events, its state.
fn register_instance_tasks(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    doc(
        "instance.execute_operation(op)",
        "A task running operation `op` (`cloudify.interfaces.lifecycle.start`) on the instance.",
    )
    .func("execute_operation")
    .register_into_engine(engine, move |ctx: NativeCallContext, i: &mut InstanceHandle, op: &str| {
        operation_task(&r, ctx, &i.deployment, &i.id, op, Map::new(), None)
    });
    let r = run.clone();
    doc(
        "instance.execute_operation(op, kwargs)",
        "As `execute_operation(op)`, with `kwargs` over the operation's inputs.",
    )
    .func("execute_operation")
    .register_into_engine(engine, move |ctx: NativeCallContext, i: &mut InstanceHandle, op: &str, args: Map| {
        operation_task(&r, ctx, &i.deployment, &i.id, op, args, None)
    });
    let r = run.clone();
    doc(
        "instance.execute_operation(op, kwargs, opts)",
        "As `execute_operation(op, kwargs)`, with options: `queue` (run a script operation on a worker listening \
         there; `\"\"` runs it with the execution, whatever the blueprint says).",
    )
    .func("execute_operation")
    .register_into_engine(
        engine,
        move |ctx: NativeCallContext, i: &mut InstanceHandle, op: &str, args: Map, opts: Map| {
            let placed = operation_placement(&opts)?;
            let call = OperationCall { placed, ..OperationCall::new(&i.deployment, &i.id, op, kwargs(args), None) };
            build(&upgrade(&r)?, op, TaskAction::Operation(Arc::new(call)), ctx.call_position())
        },
    );
    let r = run.clone();
    doc("instance.send_event(message)", "A task emitting a `workflow_event` about the instance.")
        .func("send_event")
        .register_into_engine(engine, move |ctx: NativeCallContext, i: &mut InstanceHandle, message: Dynamic| {
            let action =
                TaskAction::Event { message: crate::value::display_value(&message), node_instance: Some(i.id.clone()) };
            build(&upgrade(&r)?, "send_event", action, ctx.call_position())
        });
    let r = run.clone();
    doc("instance.set_state(state)", "A task setting the instance's state (stored with the deployment).")
        .func("set_state")
        .register_into_engine(engine, move |ctx: NativeCallContext, i: &mut InstanceHandle, state: &str| {
            let action = TaskAction::SetState {
                deployment: i.deployment.clone(),
                instance: i.id.clone(),
                state: state.to_string(),
            };
            build(&upgrade(&r)?, "set_state", action, ctx.call_position())
        });
}

/// `Relationship`: an instance's relationship to a target instance, and its operations.
fn register_relationship(engine: &mut Engine, run: &RunRef) {
    engine.register_type_with_name::<RelationshipHandle>("Relationship");
    doc("rel.type", "The relationship's type.").get("type").register_into_engine(
        engine,
        |r: &mut RelationshipHandle| -> Result<String> {
            let (index, _) = r.target()?;
            let model = r.deployment.instance(&r.instance).ok_or_else(|| bad_argument("the instance is gone"))?;
            Ok(r.deployment.nodes[model.node].relationships[index].type_name.clone())
        },
    );
    doc("rel.type_hierarchy", "Its type and the types it derives from, the root first.")
        .get("type_hierarchy")
        .register_into_engine(engine, |r: &mut RelationshipHandle| -> Result<Array> {
            let (index, _) = r.target()?;
            let model = r.deployment.instance(&r.instance).ok_or_else(|| bad_argument("the instance is gone"))?;
            let hierarchy = &r.deployment.nodes[model.node].relationships[index].type_hierarchy;
            Ok(hierarchy.iter().map(|t| Dynamic::from(t.clone())).collect())
        });
    doc("rel.target_id", "The id of the target instance.")
        .get("target_id")
        .register_into_engine(engine, |r: &mut RelationshipHandle| -> Result<String> { Ok(r.target()?.1) });
    doc("rel.target", "The target `NodeInstance`.")
        .get("target")
        .register_into_engine(engine, |r: &mut RelationshipHandle| -> Result<Dynamic> {
            Ok(instance(&r.deployment, &r.target()?.1))
        });
    doc("rel.target_node", "The target instance's `Node`.").get("target_node").register_into_engine(
        engine,
        |r: &mut RelationshipHandle| -> Result<Dynamic> {
            let target = r.target()?.1;
            let model = r.deployment.instance(&target).ok_or_else(|| bad_argument("the target instance is gone"))?;
            Ok(node(&r.deployment, model.node))
        },
    );
    doc("rel.to_string()", "`Relationship(source instance #index)`.")
        .func("to_string")
        .register_into_engine(engine, |r: &mut RelationshipHandle| {
            format!("Relationship({} #{})", r.instance, r.index)
        });
    for (name, side, has) in [
        (
            "has_source_operation",
            Side::Source,
            doc("rel.has_source_operation(op)", "Whether the relationship implements `op` on its source side."),
        ),
        (
            "has_target_operation",
            Side::Target,
            doc("rel.has_target_operation(op)", "Whether the relationship implements `op` on its target side."),
        ),
    ] {
        has.func(name).register_into_engine(engine, move |rel: &mut RelationshipHandle, op: &str| -> Result<bool> {
            let target = rel.target()?.1;
            let call = OperationCall::new(
                &rel.deployment,
                &rel.instance,
                op,
                Default::default(),
                Some((rel.index, target, side)),
            );
            Ok(call.operation.is_some_and(|o| o.implementation != crate::deploy::Implementation::Nothing))
        });
    }
    register_relationship_tasks(engine, run);
}

/// `rel.execute_source_operation(op)` and `rel.execute_target_operation(op)`.
fn register_relationship_tasks(engine: &mut Engine, run: &RunRef) {
    for (name, side, plain, with_kwargs) in [
        (
            "execute_source_operation",
            Side::Source,
            doc(
                "rel.execute_source_operation(op)",
                "A task running the relationship's operation `op` on its source instance.",
            ),
            doc(
                "rel.execute_source_operation(op, kwargs)",
                "As `execute_source_operation(op)`, with `kwargs` over its inputs.",
            ),
        ),
        (
            "execute_target_operation",
            Side::Target,
            doc(
                "rel.execute_target_operation(op)",
                "A task running the relationship's operation `op` on its target instance.",
            ),
            doc(
                "rel.execute_target_operation(op, kwargs)",
                "As `execute_target_operation(op)`, with `kwargs` over its inputs.",
            ),
        ),
    ] {
        let r = run.clone();
        plain.func(name).register_into_engine(
            engine,
            move |ctx: NativeCallContext, rel: &mut RelationshipHandle, op: &str| {
                let target = rel.target()?.1;
                operation_task(&r, ctx, &rel.deployment, &rel.instance, op, Map::new(), Some((rel.index, target, side)))
            },
        );
        let r = run.clone();
        with_kwargs.func(name).register_into_engine(
            engine,
            move |ctx: NativeCallContext, rel: &mut RelationshipHandle, op: &str, args: Map| {
                let target = rel.target()?.1;
                operation_task(&r, ctx, &rel.deployment, &rel.instance, op, args, Some((rel.index, target, side)))
            },
        );
    }
}

/// `ctx.deployment` and its modifications (scale).
fn register_modification(engine: &mut Engine) {
    engine.register_type_with_name::<DeploymentHandle>("Deployment");
    doc("ctx.deployment.id", "The deployment's name.")
        .get("id")
        .register_into_engine(engine, |d: &mut DeploymentHandle| d.0.name.clone());
    doc(
        "ctx.deployment.start_modification(#{node_id: #{instances: n}})",
        "Starts changing the number of instances of nodes; returns the `Modification`.",
    )
    .func("start_modification")
    .register_into_engine(engine, start_modification);
    engine.register_type_with_name::<ModificationHandle>("Modification");
    for (name, pick, what) in [
        ("added", true, doc("m.added", "The instances it adds, as `#{node_instances: [..]}`.")),
        ("removed", false, doc("m.removed", "The instances it removes, as `#{node_instances: [..]}`.")),
    ] {
        what.get(name).register_into_engine(engine, move |m: &mut ModificationHandle| -> Map {
            let ids = if pick { &m.added } else { &m.removed };
            let mut out = Map::new();
            let instances: Array = ids.iter().map(|id| instance(&m.deployment, id)).collect();
            out.insert("node_instances".into(), instances.into());
            out
        });
    }
    doc("m.finish()", "Makes the modification part of the deployment (stored).").func("finish").register_into_engine(
        engine,
        |m: &mut ModificationHandle| -> Result<()> {
            if std::mem::replace(&mut *m.ended.lock(), true) {
                return Err(bad_argument("this modification has ended already"));
            }
            m.deployment.finish_modification().map_err(unrecorded)
        },
    );
    doc("m.rollback()", "Undoes the modification: the deployment is as before it.")
        .func("rollback")
        .register_into_engine(engine, |m: &mut ModificationHandle| -> Result<()> {
            if std::mem::replace(&mut *m.ended.lock(), true) {
                return Err(bad_argument("this modification has ended already"));
            }
            m.deployment.rollback_modification().map_err(unrecorded)
        });
}

fn start_modification(d: &mut DeploymentHandle, nodes: Map) -> Result<ModificationHandle> {
    let deployment = &d.0;
    if !deployment.modification.lock().is_empty() {
        return Err(bad_argument("a modification of this deployment is under way: finish() or rollback() it first"));
    }
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for (node_id, change) in nodes {
        let node = deployment
            .node_index(&node_id)
            .ok_or_else(|| bad_argument(format!("start_modification: the deployment has no node `{node_id}`")))?;
        let count = change
            .read_lock::<Map>()
            .and_then(|m| m.get("instances").and_then(|n| n.as_int().ok()))
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                bad_argument(format!("start_modification: give `{node_id}: #{{instances: N}}` with N ≥ 0"))
            })?;
        let (a, r) = deployment.start_modification(node, count as usize);
        added.extend(a);
        removed.extend(r);
    }
    Ok(ModificationHandle { deployment: deployment.clone(), added, removed, ended: Default::default() })
}

/// `ctx.get_node(id)`, `ctx.get_node_instance(id)`: ctx is a map; these take it by value.
fn register_lookups(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    doc("ctx.get_node(id)", "The deployment's node `id`.").func("get_node").register_into_engine(
        engine,
        move |_ctx: Map, id: &str| -> Result<Dynamic> {
            let d = deployment(&r)?;
            let index = d.node_index(id).ok_or_else(|| bad_argument(format!("the deployment has no node `{id}`")))?;
            Ok(node(&d, index))
        },
    );
    let r = run.clone();
    doc("ctx.get_node_instance(id)", "The deployment's node instance `id`.")
        .func("get_node_instance")
        .register_into_engine(engine, move |_ctx: Map, id: &str| -> Result<Dynamic> {
            let d = deployment(&r)?;
            d.instance(id).ok_or_else(|| bad_argument(format!("the deployment has no node instance `{id}`")))?;
            Ok(instance(&d, id))
        });
}

fn deployment(run: &RunRef) -> Result<Arc<Deployment>> {
    upgrade(run)?
        .settings
        .deployment
        .clone()
        .ok_or_else(|| bad_argument("this run has no deployment: give --blueprint FILE or --deployment NAME"))
}

/// The options of an operation task: `queue` only.
fn operation_placement(opts: &Map) -> Result<Option<Executor>> {
    let mut placed = None;
    for (key, value) in opts {
        match key.as_str() {
            "queue" => {
                let queue = value.clone().into_immutable_string().map_err(|_| {
                    bad_argument(format!("execute_operation: `queue` must be the name of a queue, not {value}"))
                })?;
                placed = Some(if queue.is_empty() { Executor::Central } else { Executor::Queue(queue.to_string()) });
            }
            other => return Err(bad_argument(format!("execute_operation: unknown option `{other}` (expected queue)"))),
        }
    }
    Ok(placed)
}

fn operation_task(
    run: &RunRef,
    ctx: NativeCallContext,
    deployment: &Arc<Deployment>,
    instance: &str,
    op: &str,
    args: Map,
    relationship: Option<(usize, String, Side)>,
) -> Result<TaskHandle> {
    let call = OperationCall::new(deployment, instance, op, kwargs(args), relationship);
    build(&upgrade(run)?, op, TaskAction::Operation(Arc::new(call)), ctx.call_position())
}
