//! A deployment: the nodes of a blueprint, their instances (a node contained in another gets
//! its instances once per instance of its container), the instances' relationships, and the
//! state and runtime properties each instance carries from execution to execution.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::blueprint::{Blueprint, Operations};

/// An instance's data (or the set of instances) changed here, but the store the deployment is
/// kept in could not record it: the next execution would start from what it last recorded.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotRecorded(pub String);

/// Writes an instance's changed data through to where the deployment is kept.
pub type RecordChange = Box<dyn Fn(&str, &InstanceData) -> Result<(), NotRecorded> + Send + Sync>;
/// Writes the whole set of instances, after a modification added or removed some.
pub type RecordInstances = Box<dyn Fn(&Deployment) -> Result<(), NotRecorded> + Send + Sync>;

#[derive(Debug)]
pub struct NodeModel {
    pub id: String,
    pub type_name: String,
    /// Root first, the node's own type last.
    pub type_hierarchy: Vec<String>,
    pub properties: Map<String, Value>,
    pub operations: Operations,
    pub relationships: Vec<RelationshipModel>,
    /// How many instances each container instance gets (`instances.deploy`).
    pub deploy: usize,
    /// The queue its operations run on unless they say otherwise (`Blueprint::host_queue`).
    pub queue: Option<String>,
}

#[derive(Debug)]
pub struct RelationshipModel {
    pub type_name: String,
    pub type_hierarchy: Vec<String>,
    pub target_node: String,
    pub contained_in: bool,
    pub source_operations: Operations,
    pub target_operations: Operations,
}

/// One instance as the model knows it; `state` and `runtime_properties` live in
/// `InstanceData`, which executions change.
#[derive(Clone, Debug)]
pub struct InstanceModel {
    pub id: String,
    pub node: usize,
    /// Index into the node's relationships, and the target instance's id.
    pub relationships: Vec<(usize, String)>,
    pub contained_in: Option<String>,
}

/// What operations and `set_state` change, and the store keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceData {
    pub state: String,
    pub runtime_properties: Map<String, Value>,
}

pub struct Deployment {
    pub name: String,
    pub blueprint: Arc<Blueprint>,
    pub nodes: Vec<NodeModel>,
    pub instances: Mutex<Vec<InstanceModel>>,
    pub data: Mutex<BTreeMap<String, InstanceData>>,
    /// The highest instance number given out per node: ids are never reused.
    counters: Mutex<BTreeMap<String, usize>>,
    /// During a deployment modification: `added` / `removed` by instance id.
    pub modification: Mutex<BTreeMap<String, String>>,
    /// Told whenever an instance's data changes (the store writes it through).
    pub on_change: Mutex<Option<RecordChange>>,
    /// Kept in a store (rather than a throw-away deployment of a blueprint).
    pub stored: std::sync::atomic::AtomicBool,
    /// Told when a modification ended and the set of instances changed.
    pub on_modified: Mutex<Option<RecordInstances>>,
    /// The first change the store could not record: the run that made it fails.
    unrecorded: Mutex<Option<NotRecorded>>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deployment({})", self.name)
    }
}

impl Deployment {
    /// A fresh deployment of `blueprint`: every instance `uninitialized`.
    pub fn new(name: &str, blueprint: Arc<Blueprint>) -> Deployment {
        let nodes = blueprint
            .templates
            .iter()
            .map(|t| {
                let (properties, operations) = blueprint.resolved_node(t);
                let relationships = t
                    .relationships
                    .iter()
                    .map(|r| {
                        let (source_operations, target_operations) = blueprint.resolved_relationship(&r.type_name);
                        RelationshipModel {
                            type_name: r.type_name.clone(),
                            type_hierarchy: blueprint.relationship_hierarchy(&r.type_name).unwrap_or_default(),
                            target_node: r.target.clone(),
                            contained_in: blueprint.is_contained_in(&r.type_name),
                            source_operations,
                            target_operations,
                        }
                    })
                    .collect();
                NodeModel {
                    id: t.id.clone(),
                    type_name: t.type_name.clone(),
                    type_hierarchy: blueprint.node_hierarchy(&t.type_name).unwrap_or_default(),
                    properties,
                    operations,
                    relationships,
                    deploy: t.deploy,
                    queue: blueprint.host_queue(&t.id).map(str::to_string),
                }
            })
            .collect();
        let deployment = Deployment {
            name: name.to_string(),
            blueprint,
            nodes,
            instances: Mutex::new(Vec::new()),
            data: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(BTreeMap::new()),
            modification: Mutex::new(BTreeMap::new()),
            on_change: Mutex::new(None),
            on_modified: Mutex::new(None),
            stored: Default::default(),
            unrecorded: Mutex::new(None),
        };
        let order = deployment.containment_order();
        for node in order {
            let count = deployment.nodes[node].deploy;
            deployment.add_instances(node, count);
        }
        deployment.link_all();
        deployment
    }

    /// Nodes with their containers first.
    fn containment_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = Vec::new();
        while order.len() < self.nodes.len() {
            let before = order.len();
            for i in 0..self.nodes.len() {
                if order.contains(&i) {
                    continue;
                }
                let ready = match self.container_node(i) {
                    None => true,
                    Some(c) => order.contains(&c),
                };
                if ready {
                    order.push(i);
                }
            }
            // The blueprint was validated: no cycles. Guard anyway.
            if order.len() == before {
                order.extend((0..self.nodes.len()).filter(|i| !order.contains(i)).collect::<Vec<_>>());
            }
        }
        order
    }

    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn container_node(&self, node: usize) -> Option<usize> {
        let r = self.nodes[node].relationships.iter().find(|r| r.contained_in)?;
        self.node_index(&r.target_node)
    }

    /// Adds `per_container` instances of `node` in each instance of its container (or
    /// `per_container` in all when it has none); returns their ids.
    pub fn add_instances(&self, node: usize, per_container: usize) -> Vec<String> {
        let containers: Vec<Option<String>> = match self.container_node(node) {
            None => vec![None],
            Some(c) => self.instances_of(c).into_iter().map(Some).collect(),
        };
        self.add_in(node, &containers, per_container)
    }

    fn add_in(&self, node: usize, containers: &[Option<String>], per_container: usize) -> Vec<String> {
        let mut added = Vec::new();
        for container in containers {
            for _ in 0..per_container {
                let n = {
                    let mut counters = self.counters.lock();
                    let n = counters.entry(self.nodes[node].id.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let id = format!("{}_{n}", self.nodes[node].id);
                self.instances.lock().push(InstanceModel {
                    id: id.clone(),
                    node,
                    relationships: Vec::new(),
                    contained_in: container.clone(),
                });
                self.data
                    .lock()
                    .insert(id.clone(), InstanceData { state: "uninitialized".into(), ..Default::default() });
                added.push(id);
            }
        }
        added
    }

    /// Instances of `node`, in creation order.
    pub fn instances_of(&self, node: usize) -> Vec<String> {
        self.instances.lock().iter().filter(|i| i.node == node).map(|i| i.id.clone()).collect()
    }

    /// How many instances `node` has as far as its node object tells: during a modification,
    /// the ones it adds are not counted until it finishes (Cloudify's `number_of_instances`
    /// changes when the modification does), and the ones it removes still are.
    pub fn settled_count(&self, node: usize) -> usize {
        let ids = self.instances_of(node);
        let marks = self.modification.lock();
        ids.iter().filter(|id| marks.get(*id).is_none_or(|m| m != "added")).count()
    }

    /// Fills every instance's relationships: its container for contained_in, every instance
    /// of the target node otherwise.
    pub fn link_all(&self) {
        let snapshot = self.instances.lock().clone();
        let mut linked = snapshot.clone();
        for instance in &mut linked {
            instance.relationships = self.nodes[instance.node]
                .relationships
                .iter()
                .enumerate()
                .flat_map(|(r, rel)| {
                    let targets: Vec<String> = if rel.contained_in {
                        instance.contained_in.iter().cloned().collect()
                    } else {
                        snapshot
                            .iter()
                            .filter(|t| self.nodes[t.node].id == rel.target_node)
                            .map(|t| t.id.clone())
                            .collect()
                    };
                    targets.into_iter().map(move |t| (r, t))
                })
                .collect();
        }
        *self.instances.lock() = linked;
    }

    /// Removes instances (and everything contained in them); returns the removed ids.
    pub fn remove_instances(&self, ids: &[String]) -> Vec<String> {
        let mut removed: Vec<String> = Vec::new();
        for id in ids {
            for inner in self.contained_subgraph(id) {
                if !removed.contains(&inner) {
                    removed.push(inner);
                }
            }
        }
        self.instances.lock().retain(|i| !removed.contains(&i.id));
        let mut data = self.data.lock();
        for id in &removed {
            data.remove(id);
        }
        drop(data);
        self.link_all();
        removed
    }

    /// Starts a modification that gives `node` `count` instances (per container instance,
    /// for a contained node): new ones are added, with everything their node's contained
    /// nodes deploy inside them, and marked `added`; the newest surplus ones (and what they
    /// contain) are marked `removed` and stay until `finish_modification`.
    pub fn start_modification(&self, node: usize, count: usize) -> (Vec<String>, Vec<String>) {
        let groups: Vec<Vec<String>> = match self.container_node(node) {
            None => vec![self.instances_of(node)],
            Some(c) => self
                .instances_of(c)
                .into_iter()
                .map(|container| {
                    let instances = self.instances.lock();
                    instances
                        .iter()
                        .filter(|i| i.node == node && i.contained_in.as_deref() == Some(&container))
                        .map(|i| i.id.clone())
                        .collect()
                })
                .collect(),
        };
        let containers: Vec<Option<String>> = match self.container_node(node) {
            None => vec![None],
            Some(c) => self.instances_of(c).into_iter().map(Some).collect(),
        };
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (group, container) in groups.iter().zip(&containers) {
            if count > group.len() {
                let new = self.add_in(node, std::slice::from_ref(container), count - group.len());
                for id in new {
                    added.extend(self.populate(&id));
                }
            } else {
                for id in &group[count..] {
                    removed.extend(self.contained_subgraph(id));
                }
            }
        }
        self.link_all();
        let mut marks = self.modification.lock();
        for id in &added {
            marks.insert(id.clone(), "added".into());
        }
        for id in &removed {
            marks.insert(id.clone(), "removed".into());
        }
        (added, removed)
    }

    /// A new instance and, inside it, the instances its contained nodes deploy (recursively).
    fn populate(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let Some(model) = self.instance(id) else { return out };
        for (n, node) in self.nodes.iter().enumerate() {
            if self.container_node(n) == Some(model.node) {
                for inner in self.add_in(n, &[Some(id.to_string())], node.deploy) {
                    out.extend(self.populate(&inner));
                }
            }
        }
        out
    }

    /// Ends a modification: removed instances go, marks are cleared.
    pub fn finish_modification(&self) -> Result<(), NotRecorded> {
        let removed: Vec<String> =
            self.modification.lock().iter().filter(|(_, m)| *m == "removed").map(|(id, _)| id.clone()).collect();
        self.remove_instances(&removed);
        self.modification.lock().clear();
        self.modified()
    }

    fn modified(&self) -> Result<(), NotRecorded> {
        match &*self.on_modified.lock() {
            Some(record) => self.remember(record(self)),
            None => Ok(()),
        }
    }

    /// Keeps the first change that was not recorded, for `unrecorded`.
    fn remember(&self, recorded: Result<(), NotRecorded>) -> Result<(), NotRecorded> {
        if let Err(e) = &recorded {
            self.unrecorded.lock().get_or_insert_with(|| e.clone());
        }
        recorded
    }

    /// The first change of this deployment its store could not record, if one was not.
    pub fn unrecorded(&self) -> Option<NotRecorded> {
        self.unrecorded.lock().clone()
    }

    /// Undoes a modification: added instances go, removed ones stay.
    pub fn rollback_modification(&self) -> Result<(), NotRecorded> {
        let added: Vec<String> =
            self.modification.lock().iter().filter(|(_, m)| *m == "added").map(|(id, _)| id.clone()).collect();
        self.remove_instances(&added);
        self.modification.lock().clear();
        self.modified()
    }

    pub fn instance(&self, id: &str) -> Option<InstanceModel> {
        self.instances.lock().iter().find(|i| i.id == id).cloned()
    }

    /// The instance and everything contained in it, transitively; itself first.
    pub fn contained_subgraph(&self, id: &str) -> Vec<String> {
        let instances = self.instances.lock().clone();
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            let at = out[i].clone();
            out.extend(instances.iter().filter(|x| x.contained_in.as_deref() == Some(&at)).map(|x| x.id.clone()));
            i += 1;
        }
        out
    }

    /// `"added"`, `"removed"` during a modification, else `""`.
    pub fn modification_of(&self, id: &str) -> String {
        self.modification.lock().get(id).cloned().unwrap_or_default()
    }

    pub fn data_of(&self, id: &str) -> InstanceData {
        self.data.lock().get(id).cloned().unwrap_or_default()
    }

    pub fn set_state(&self, id: &str, state: &str) -> Result<(), NotRecorded> {
        self.update(id, |d| d.state = state.to_string())
    }

    pub fn set_runtime_properties(&self, id: &str, properties: Map<String, Value>) -> Result<(), NotRecorded> {
        self.update(id, |d| d.runtime_properties = properties)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut InstanceData)) -> Result<(), NotRecorded> {
        let data = {
            let mut all = self.data.lock();
            let Some(d) = all.get_mut(id) else { return Ok(()) };
            change(d);
            d.clone()
        };
        match &*self.on_change.lock() {
            Some(record) => self.remember(record(id, &data)),
            None => Ok(()),
        }
    }

    /// Every instance with its node, container and data, as JSON: what an execution started
    /// from (a resume builds its graph from the same states).
    pub fn snapshot(&self) -> Value {
        let instances = self.instances.lock().clone();
        Value::Array(
            instances
                .iter()
                .map(|i| {
                    let data = self.data_of(&i.id);
                    serde_json::json!({
                        "id": i.id,
                        "node_id": self.nodes[i.node].id,
                        "container": i.contained_in,
                        "state": data.state,
                        "runtime_properties": data.runtime_properties,
                    })
                })
                .collect(),
        )
    }

    /// Goes back to the instances and states of a `snapshot`; runtime properties stay as
    /// they are now (operations wrote them since), and so do the instance numbers given out.
    pub fn restore_snapshot(&self, snapshot: &Value) {
        let counters = self.counters();
        let now = self.data.lock().clone();
        let stored = snapshot
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|i| {
                        let text = |key: &str| i[key].as_str().unwrap_or_default().to_string();
                        let runtime_properties = match now.get(&text("id")) {
                            Some(current) => current.runtime_properties.clone(),
                            None => i["runtime_properties"].as_object().cloned().unwrap_or_default(),
                        };
                        let data = InstanceData { state: text("state"), runtime_properties };
                        (text("id"), text("node_id"), i["container"].as_str().map(str::to_string), data)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.restore(stored);
        self.raise_counters(&counters);
    }

    /// The highest instance number given out, per node.
    pub fn counters(&self) -> BTreeMap<String, usize> {
        self.counters.lock().clone()
    }

    /// Numbers given out before (and since removed) are not given again.
    pub fn raise_counters(&self, given_out: &BTreeMap<String, usize>) {
        let mut counters = self.counters.lock();
        for (node, n) in given_out {
            let c = counters.entry(node.clone()).or_insert(0);
            *c = (*c).max(*n);
        }
    }

    /// Takes over what a stored deployment recorded: instances (with their numbers) and
    /// their data.
    pub fn restore(&self, mut stored: Vec<(String, String, Option<String>, InstanceData)>) {
        // Creation order: nodes as the blueprint lists them, then by number (db_2 before db_10).
        stored.sort_by_key(|(id, node, _, _)| {
            let n: u64 = id.rsplit('_').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            (self.node_index(node).unwrap_or(usize::MAX), n)
        });
        let mut instances = Vec::new();
        let mut counters = BTreeMap::new();
        let mut data = BTreeMap::new();
        for (id, node_id, container, d) in stored {
            let Some(node) = self.node_index(&node_id) else { continue };
            let n: usize = id.rsplit('_').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let c = counters.entry(node_id.clone()).or_insert(0);
            *c = (*c).max(n);
            instances.push(InstanceModel { id: id.clone(), node, relationships: Vec::new(), contained_in: container });
            data.insert(id, d);
        }
        *self.instances.lock() = instances;
        *self.data.lock() = data;
        *self.counters.lock() = counters;
        self.link_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(text: &str) -> Deployment {
        let bp = Blueprint::parse("bp.yaml", text, "/tmp".into()).unwrap();
        Deployment::new("d", Arc::new(bp))
    }

    const THREE_TIER: &str = "node_templates:\n  vm: {type: rhaiflow.nodes.Compute, instances: {deploy: 2}}\n  db:\n    type: rhaiflow.nodes.Root\n    relationships: [{type: rhaiflow.relationships.contained_in, target: vm}]\n  app:\n    type: rhaiflow.nodes.Root\n    relationships: [{type: rhaiflow.relationships.connected_to, target: db}]\n";

    #[test]
    fn contained_nodes_get_instances_per_container_and_connections_go_to_all() {
        let d = deployment(THREE_TIER);
        let ids: Vec<String> = d.instances.lock().iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, ["vm_1", "vm_2", "db_1", "db_2", "app_1"]);
        assert_eq!(d.instance("db_2").unwrap().contained_in.as_deref(), Some("vm_2"));
        let app = d.instance("app_1").unwrap();
        let targets: Vec<&str> = app.relationships.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(targets, ["db_1", "db_2"]);
        assert_eq!(d.contained_subgraph("vm_1"), ["vm_1", "db_1"]);
        assert_eq!(d.data_of("vm_1").state, "uninitialized");
    }

    #[test]
    fn ids_are_never_reused() {
        let d = deployment(THREE_TIER);
        let vm = d.node_index("vm").unwrap();
        assert_eq!(d.remove_instances(&["vm_2".into()]), ["vm_2", "db_2"]);
        assert_eq!(d.add_instances(vm, 1), ["vm_3"]);
        let db = d.node_index("db").unwrap();
        assert_eq!(d.add_instances(db, 1), ["db_3", "db_4"]);
    }

    #[test]
    fn scaling_out_adds_contained_instances_and_scaling_in_marks_the_newest() {
        let d = deployment(THREE_TIER);
        let vm = d.node_index("vm").unwrap();
        let (added, removed) = d.start_modification(vm, 3);
        assert_eq!((added.as_slice(), removed.len()), (["vm_3".to_string(), "db_3".to_string()].as_slice(), 0));
        assert_eq!(d.modification_of("db_3"), "added");
        let app = d.instance("app_1").unwrap();
        assert_eq!(app.relationships.len(), 3, "connected to every db, the new one too");
        assert_eq!(d.settled_count(vm), 2, "the added vm counts once the modification finishes");
        d.rollback_modification().unwrap();
        assert!(d.instance("vm_3").is_none());
        let (_, removed) = d.start_modification(vm, 1);
        assert_eq!(removed, ["vm_2", "db_2"]);
        assert!(d.instance("vm_2").is_some(), "removed instances stay until finish");
        assert_eq!(d.settled_count(vm), 2);
        d.finish_modification().unwrap();
        assert!(d.instance("db_2").is_none());
        assert_eq!(d.modification_of("vm_1"), "");
    }
}
