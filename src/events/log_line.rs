//! The lines `executions logs` and the API's `/logs` show: a recorded `task_output` event as
//! `build | text` (`web_1 configure | text` for an operation's instance), or bare for one task.

use serde_json::Value;

/// Every recorded event line starts with its type.
const OUTPUT_EVENT: &str = "{\"type\":\"task_output\"";

/// The line that the recorded event `json` shows in a task's logs, if it is a line of output
/// (of `task`, when given).
pub fn log_line(json: &str, task: Option<&str>) -> Option<String> {
    if !json.starts_with(OUTPUT_EVENT) {
        return None;
    }
    let event = serde_json::from_str::<Value>(json).ok()?;
    let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
    match (task, event.get("node_instance").and_then(Value::as_str)) {
        (Some(task), _) if text("task") != task => None,
        (Some(_), _) => Some(text("line").to_string()),
        (None, Some(instance)) => Some(format!("{instance} {} | {}", text("task"), text("line"))),
        (None, None) => Some(format!("{} | {}", text("task"), text("line"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_led_by_their_task_and_instance_or_bare_for_one_task() {
        let plain = r#"{"type":"task_output","task":"build","line":"ok"}"#;
        let operation = r#"{"type":"task_output","task":"configure","node_instance":"web_1","line":"up"}"#;
        assert_eq!(log_line(plain, None).as_deref(), Some("build | ok"));
        assert_eq!(log_line(operation, None).as_deref(), Some("web_1 configure | up"));
        assert_eq!(log_line(plain, Some("build")).as_deref(), Some("ok"));
        assert_eq!(log_line(plain, Some("test")), None);
        assert_eq!(log_line(r#"{"type":"log","message":"x"}"#, None), None);
    }
}
