//! Resume by deterministic replay: the script runs again, and tasks the store says succeeded
//! return their stored result instead of running (contract section 7).

use std::collections::HashMap;

use rhai::Dynamic;
use serde_json::Value;

use crate::events::TaskKind;
use crate::task::TaskCell;
use crate::value::from_json;

/// What the execution being resumed did with one task.
#[derive(Clone, Debug)]
pub struct ReplayedTask {
    pub name: String,
    pub kind: TaskKind,
    /// `Some(result)` when it succeeded (`Value::Null` for no result).
    pub success: Option<Value>,
}

/// The tasks of the execution being resumed, by creation index.
#[derive(Default, Debug)]
pub struct Replay {
    pub execution_id: String,
    tasks: HashMap<u64, ReplayedTask>,
}

impl Replay {
    pub fn new(execution_id: String, tasks: impl IntoIterator<Item = (u64, ReplayedTask)>) -> Self {
        Replay { execution_id, tasks: tasks.into_iter().collect() }
    }

    /// The stored result of `cell`, if it already succeeded.
    pub fn result_of(&self, cell: &TaskCell) -> Option<Dynamic> {
        let task = self.tasks.get(&cell.serial)?;
        if *task.name != *cell.name {
            return None;
        }
        task.success.as_ref().map(from_json)
    }

    /// Says what differs when the script built something else at this index than before.
    pub fn difference(&self, serial: u64, name: &str, kind: TaskKind) -> Option<String> {
        let before = self.tasks.get(&serial)?;
        if before.name == name && before.kind == kind {
            return None;
        }
        Some(format!(
            "the script builds a different graph than execution {} did: its task number {serial} was `{}` ({}), now it is `{name}` ({})",
            self.execution_id,
            before.name,
            before.kind.as_str(),
            kind.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskAction, TaskSettings};
    use rhai::Position;

    fn replay() -> Replay {
        let done = ReplayedTask { name: "a".into(), kind: TaskKind::Noop, success: Some(Value::from(7)) };
        let failed = ReplayedTask { name: "b".into(), kind: TaskKind::Shell, success: None };
        Replay::new("x".into(), [(1, done), (2, failed)])
    }

    #[test]
    fn succeeded_tasks_give_their_stored_result() {
        let a = TaskCell::new("a", TaskAction::Noop, TaskSettings::with_defaults(0, 0.0), Position::NONE, 1);
        assert_eq!(replay().result_of(&a).unwrap().as_int().unwrap(), 7);
        let b = TaskCell::new("b", TaskAction::Noop, TaskSettings::with_defaults(0, 0.0), Position::NONE, 2);
        assert!(replay().result_of(&b).is_none());
    }

    #[test]
    fn a_renamed_task_is_a_different_graph() {
        let r = replay();
        assert!(r.difference(1, "a", TaskKind::Noop).is_none());
        assert!(r.difference(3, "new", TaskKind::Noop).is_none());
        let text = r.difference(2, "b2", TaskKind::Shell).unwrap();
        assert!(text.contains("was `b` (shell), now it is `b2` (shell)"), "{text}");
    }
}
