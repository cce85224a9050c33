//! The deployment model as scripts see it (contract section 8): `ctx.nodes`, node instances
//! and relationships as small handles, and the tasks they build (`execute_operation`,
//! `send_event`, `set_state`, relationship operations).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::tasks::{bad_argument, build, TaskHandle};
use crate::deploy::model::NotRecorded;
use crate::deploy::{Deployment, OperationCall, Side};
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
    engine.register_type_with_name::<NodeHandle>("Node");
    engine.register_get("id", |n: &mut NodeHandle| n.deployment.nodes[n.node].id.clone());
    engine.register_get("type", |n: &mut NodeHandle| n.deployment.nodes[n.node].type_name.clone());
    engine.register_get("type_hierarchy", |n: &mut NodeHandle| -> Array {
        n.deployment.nodes[n.node].type_hierarchy.iter().map(|t| Dynamic::from(t.clone())).collect()
    });
    engine.register_get("properties", |n: &mut NodeHandle| {
        from_json(&serde_json::Value::Object(n.deployment.nodes[n.node].properties.clone()))
    });
    engine.register_get("instances", |n: &mut NodeHandle| n.instances());
    engine.register_get("number_of_instances", |n: &mut NodeHandle| n.deployment.settled_count(n.node) as i64);
    engine.register_fn("to_string", |n: &mut NodeHandle| format!("Node({})", n.deployment.nodes[n.node].id));
    engine.register_fn("to_debug", |n: &mut NodeHandle| format!("Node({})", n.deployment.nodes[n.node].id));
    engine.register_fn("==", |a: NodeHandle, b: NodeHandle| {
        a.node == b.node && Arc::ptr_eq(&a.deployment, &b.deployment)
    });

    engine.register_type_with_name::<InstanceHandle>("NodeInstance");
    engine.register_get("id", |i: &mut InstanceHandle| i.id.to_string());
    engine.register_get("node_id", |i: &mut InstanceHandle| -> Result<String> {
        Ok(i.deployment.nodes[i.node_index()?].id.clone())
    });
    engine
        .register_get("node", |i: &mut InstanceHandle| -> Result<Dynamic> { Ok(node(&i.deployment, i.node_index()?)) });
    engine.register_get("state", |i: &mut InstanceHandle| i.deployment.data_of(&i.id).state);
    engine.register_get("runtime_properties", |i: &mut InstanceHandle| {
        from_json(&serde_json::Value::Object(i.deployment.data_of(&i.id).runtime_properties))
    });
    engine.register_set("runtime_properties", |i: &mut InstanceHandle, properties: Map| -> Result<()> {
        i.deployment.set_runtime_properties(&i.id, kwargs(properties)).map_err(unrecorded)
    });
    engine.register_get("modification", |i: &mut InstanceHandle| i.deployment.modification_of(&i.id));
    engine.register_get("contained_in", |i: &mut InstanceHandle| -> Result<Dynamic> {
        Ok(i.model()?.contained_in.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    });
    engine.register_get("relationships", |i: &mut InstanceHandle| -> Result<Array> {
        let model = i.model()?;
        Ok((0..model.relationships.len())
            .map(|index| {
                Dynamic::from(RelationshipHandle { deployment: i.deployment.clone(), instance: i.id.clone(), index })
            })
            .collect())
    });
    engine.register_get("contained_instances", |i: &mut InstanceHandle| -> Array {
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
    engine.register_fn("get_contained_subgraph", |i: &mut InstanceHandle| -> Array {
        i.deployment.contained_subgraph(&i.id).iter().map(|id| instance(&i.deployment, id)).collect()
    });
    engine.register_fn("to_string", |i: &mut InstanceHandle| format!("NodeInstance({})", i.id));
    engine.register_fn("to_debug", |i: &mut InstanceHandle| format!("NodeInstance({})", i.id));
    engine.register_fn("==", |a: InstanceHandle, b: InstanceHandle| {
        a.id == b.id && Arc::ptr_eq(&a.deployment, &b.deployment)
    });
    engine.register_fn("!=", |a: InstanceHandle, b: InstanceHandle| {
        a.id != b.id || !Arc::ptr_eq(&a.deployment, &b.deployment)
    });

    let r = run.clone();
    engine.register_fn("execute_operation", move |ctx: NativeCallContext, i: &mut InstanceHandle, op: &str| {
        operation_task(&r, ctx, &i.deployment, &i.id, op, Map::new(), None)
    });
    let r = run.clone();
    engine.register_fn(
        "execute_operation",
        move |ctx: NativeCallContext, i: &mut InstanceHandle, op: &str, args: Map| {
            operation_task(&r, ctx, &i.deployment, &i.id, op, args, None)
        },
    );
    let r = run.clone();
    engine.register_fn("send_event", move |ctx: NativeCallContext, i: &mut InstanceHandle, message: Dynamic| {
        let action =
            TaskAction::Event { message: crate::value::display_value(&message), node_instance: Some(i.id.clone()) };
        build(&upgrade(&r)?, "send_event", action, ctx.call_position())
    });
    let r = run.clone();
    engine.register_fn("set_state", move |ctx: NativeCallContext, i: &mut InstanceHandle, state: &str| {
        let action =
            TaskAction::SetState { deployment: i.deployment.clone(), instance: i.id.clone(), state: state.to_string() };
        build(&upgrade(&r)?, "set_state", action, ctx.call_position())
    });

    engine.register_type_with_name::<RelationshipHandle>("Relationship");
    engine.register_get("type", |r: &mut RelationshipHandle| -> Result<String> {
        let (index, _) = r.target()?;
        let model = r.deployment.instance(&r.instance).ok_or_else(|| bad_argument("the instance is gone"))?;
        Ok(r.deployment.nodes[model.node].relationships[index].type_name.clone())
    });
    engine.register_get("type_hierarchy", |r: &mut RelationshipHandle| -> Result<Array> {
        let (index, _) = r.target()?;
        let model = r.deployment.instance(&r.instance).ok_or_else(|| bad_argument("the instance is gone"))?;
        let hierarchy = &r.deployment.nodes[model.node].relationships[index].type_hierarchy;
        Ok(hierarchy.iter().map(|t| Dynamic::from(t.clone())).collect())
    });
    engine.register_get("target_id", |r: &mut RelationshipHandle| -> Result<String> { Ok(r.target()?.1) });
    engine.register_get("target", |r: &mut RelationshipHandle| -> Result<Dynamic> {
        Ok(instance(&r.deployment, &r.target()?.1))
    });
    engine.register_get("target_node", |r: &mut RelationshipHandle| -> Result<Dynamic> {
        let target = r.target()?.1;
        let model = r.deployment.instance(&target).ok_or_else(|| bad_argument("the target instance is gone"))?;
        Ok(node(&r.deployment, model.node))
    });
    engine.register_fn("to_string", |r: &mut RelationshipHandle| format!("Relationship({} #{})", r.instance, r.index));
    for (name, side) in [("has_source_operation", Side::Source), ("has_target_operation", Side::Target)] {
        engine.register_fn(name, move |rel: &mut RelationshipHandle, op: &str| -> Result<bool> {
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
    engine.register_fn("has_operation", |i: &mut InstanceHandle, op: &str| -> bool {
        let call = OperationCall::new(&i.deployment, &i.id, op, Default::default(), None);
        call.operation.is_some_and(|o| o.implementation != crate::deploy::Implementation::Nothing)
    });
    for (name, side) in [("execute_source_operation", Side::Source), ("execute_target_operation", Side::Target)] {
        let r = run.clone();
        engine.register_fn(name, move |ctx: NativeCallContext, rel: &mut RelationshipHandle, op: &str| {
            let target = rel.target()?.1;
            operation_task(&r, ctx, &rel.deployment, &rel.instance, op, Map::new(), Some((rel.index, target, side)))
        });
        let r = run.clone();
        engine.register_fn(name, move |ctx: NativeCallContext, rel: &mut RelationshipHandle, op: &str, args: Map| {
            let target = rel.target()?.1;
            operation_task(&r, ctx, &rel.deployment, &rel.instance, op, args, Some((rel.index, target, side)))
        });
    }

    engine.register_type_with_name::<DeploymentHandle>("Deployment");
    engine.register_get("id", |d: &mut DeploymentHandle| d.0.name.clone());
    engine.register_fn("start_modification", |d: &mut DeploymentHandle, nodes: Map| -> Result<ModificationHandle> {
        let deployment = &d.0;
        if !deployment.modification.lock().is_empty() {
            return Err(bad_argument(
                "a modification of this deployment is under way: finish() or rollback() it first",
            ));
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
    });
    engine.register_type_with_name::<ModificationHandle>("Modification");
    for (name, pick) in [("added", true), ("removed", false)] {
        engine.register_get(name, move |m: &mut ModificationHandle| -> Map {
            let ids = if pick { &m.added } else { &m.removed };
            let mut out = Map::new();
            let instances: Array = ids.iter().map(|id| instance(&m.deployment, id)).collect();
            out.insert("node_instances".into(), instances.into());
            out
        });
    }
    engine.register_fn("finish", |m: &mut ModificationHandle| -> Result<()> {
        if std::mem::replace(&mut *m.ended.lock(), true) {
            return Err(bad_argument("this modification has ended already"));
        }
        m.deployment.finish_modification().map_err(unrecorded)
    });
    engine.register_fn("rollback", |m: &mut ModificationHandle| -> Result<()> {
        if std::mem::replace(&mut *m.ended.lock(), true) {
            return Err(bad_argument("this modification has ended already"));
        }
        m.deployment.rollback_modification().map_err(unrecorded)
    });

    // `ctx.get_node(id)`, `ctx.get_node_instance(id)`: ctx is a map; these take it by value.
    let r = run.clone();
    engine.register_fn("get_node", move |_ctx: Map, id: &str| -> Result<Dynamic> {
        let d = deployment(&r)?;
        let index = d.node_index(id).ok_or_else(|| bad_argument(format!("the deployment has no node `{id}`")))?;
        Ok(node(&d, index))
    });
    let r = run.clone();
    engine.register_fn("get_node_instance", move |_ctx: Map, id: &str| -> Result<Dynamic> {
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
