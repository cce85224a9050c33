//! The schema of `POST /api/v1/executions`' body as the document shows it: a workflow to run
//! or a script's text, exactly one of them. Derived from `SubmitRequest`'s fields it would let
//! both be absent (or both given), and a generator reading the document would send requests
//! the server must refuse; written here, the document says what the handler accepts.

use std::borrow::Cow;

use serde_json::{json, Value};
use utoipa::openapi::schema::{Object, OneOfBuilder, Schema};
use utoipa::openapi::RefOr;

use super::submit::SubmitRequest;

impl utoipa::PartialSchema for SubmitRequest {
    fn schema() -> RefOr<Schema> {
        let variant = |runs: &str, absent: &str, description: &str| -> Object {
            let mut properties = common();
            properties[runs] = json!({ "type": "string" });
            properties[absent] = json!({ "type": "null" });
            let object = json!({
                "type": "object",
                "description": description,
                "properties": properties,
                "required": [runs],
                "additionalProperties": false,
            });
            // The literal above is a schema object: its form cannot fail to read.
            serde_json::from_value(object).unwrap_or_default()
        };
        OneOfBuilder::new()
            .description(Some("What to run: an installed bundle's workflow or a built-in one, or a script's text."))
            .item(variant(
                "workflow",
                "script",
                "A bundle's workflow (`bundle` omitted: a built-in one, which needs a `deployment`).",
            ))
            .item(variant("script", "workflow", "A script's text: only on a server started with `--allow-scripts`."))
            .into()
    }
}

impl utoipa::ToSchema for SubmitRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SubmitRequest")
    }
}

/// The properties both forms have.
fn common() -> Value {
    json!({
        "bundle": { "type": ["string", "null"], "description": "An installed bundle's name, or `builtin` (the default) for install, uninstall, execute_operation, scale and heal." },
        "deployment": { "type": ["string", "null"], "description": "A stored deployment to run on (`rhaiflow deployments create`); the built-in workflows need one." },
        "parameters": { "type": "object", "description": "The workflow's parameters, checked against its declarations." },
    })
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    // The derived schema let `{}` through, which the server refuses (400): now one of the two
    // forms is required.
    #[test]
    fn a_submission_names_a_workflow_or_a_script() {
        let schema = serde_json::to_value(super::SubmitRequest::schema()).unwrap();
        let required: Vec<&serde_json::Value> =
            schema["oneOf"].as_array().unwrap().iter().map(|v| &v["required"]).collect();
        assert_eq!(required, [&serde_json::json!(["workflow"]), &serde_json::json!(["script"])], "{schema}");
        assert_eq!(schema["oneOf"][0]["properties"]["script"]["type"], "null", "{schema}");
    }
}
