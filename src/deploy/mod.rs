//! The deployment model (docs/DEPLOYMENTS.md): blueprints, the nodes and instances of a
//! deployment with their relationships, and the operations tasks run on instances.
//!
//! `blueprint` reads and validates the YAML; `model` is a deployment's nodes and instances
//! and what executions change of them (state, runtime properties).

pub mod blueprint;
pub mod model;
pub mod packed;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use blueprint::{Blueprint, Executor, Implementation, Operation};
pub use model::{Deployment, InstanceData};

/// Which end of a relationship an operation runs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

/// One operation called on one instance (`instance.execute_operation(op, kwargs)`), or on
/// a relationship's source or target.
#[derive(Clone, Debug)]
pub struct OperationCall {
    pub deployment: Arc<Deployment>,
    pub instance: String,
    /// As called: `lifecycle.configure`.
    pub name: String,
    /// `None` when the node (or relationship) does not define it: the task does nothing.
    pub operation: Option<Operation>,
    /// The operation's declared inputs with the call's kwargs laid over them.
    pub inputs: Map<String, Value>,
    /// For a relationship operation: the relationship's index on the instance, its target
    /// instance, and which end runs.
    pub relationship: Option<(usize, String, Side)>,
    /// Where the script that built the task placed it (`execute_operation(op, kwargs, #{queue})`),
    /// over what the blueprint says.
    pub placed: Option<Executor>,
}

impl OperationCall {
    /// The call of `name` on `instance` (or on its relationship `relationship`).
    pub fn new(
        deployment: &Arc<Deployment>,
        instance: &str,
        name: &str,
        kwargs: Map<String, Value>,
        relationship: Option<(usize, String, Side)>,
    ) -> OperationCall {
        let model = deployment.instance(instance);
        let operation = model.and_then(|i| {
            let node = &deployment.nodes[i.node];
            match &relationship {
                None => node.operations.get(name).cloned(),
                Some((r, _, side)) => {
                    let rel = &node.relationships[i.relationships[*r].0];
                    match side {
                        Side::Source => rel.source_operations.get(name).cloned(),
                        Side::Target => rel.target_operations.get(name).cloned(),
                    }
                }
            }
        });
        let mut inputs = operation.as_ref().map(|o| o.inputs.clone()).unwrap_or_default();
        inputs.extend(kwargs);
        OperationCall {
            deployment: deployment.clone(),
            instance: instance.to_string(),
            name: name.to_string(),
            operation,
            inputs,
            relationship,
            placed: None,
        }
    }

    /// The instance the operation runs for: the target of a target-side relationship
    /// operation, else the instance it was called on. Its identity is the operation's
    /// (`RHAIFLOW_INSTANCE`, `ctx.instance`, the events' `node_instance`).
    pub fn runs_for(&self) -> &str {
        match &self.relationship {
            Some((_, target, Side::Target)) => target,
            _ => &self.instance,
        }
    }

    /// The queue the operation runs on (a worker listening there), or `None`: with the
    /// execution. Its own `queue` or `executor`, else the queue of the host of the instance it
    /// runs for (a relationship's target operation on the target's host, as Cloudify's agents).
    pub fn queue(&self) -> Option<&str> {
        let operation = self.operation.as_ref()?;
        match self.placed.as_ref().unwrap_or(&operation.executor) {
            Executor::Central => None,
            Executor::Queue(queue) => Some(queue),
            Executor::HostAgent => self.node()?.queue.as_deref(),
        }
    }

    /// The node of the instance the operation runs for.
    pub fn node(&self) -> Option<&model::NodeModel> {
        self.deployment.instance(self.runs_for()).map(|i| &self.deployment.nodes[i.node])
    }
}
