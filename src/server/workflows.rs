//! `GET /api/v1/workflows`: what can be run: the workflows of the installed bundles (newest
//! version of each) and the built-in ones, with their parameters and a JSON Schema of them
//! (what a form is built from).

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::problem::Problem;
use crate::bundle::parameters::{ParamDecl, ParamType};
use crate::bundle::{builtin, registry, Bundle};

/// A workflow a bundle offers.
#[derive(Serialize, ToSchema)]
pub struct WorkflowView {
    /// The bundle (`builtin` for install, uninstall, execute_operation, scale, heal).
    pub bundle: String,
    pub version: String,
    pub name: String,
    pub description: String,
    pub parameters: Vec<ParameterView>,
    /// The parameters as a JSON Schema object (`properties`, `required`).
    pub parameters_schema: Value,
}

#[derive(Serialize, ToSchema)]
pub struct ParameterView {
    pub name: String,
    pub description: String,
    /// string, integer, float, boolean, list or dict; none: any.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub default: Option<Value>,
    /// Must be given (required, without a default).
    pub mandatory: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowView>,
}

/// The workflows that can be run.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    responses((status = 200, description = "Installed bundles' workflows, then the built-in ones", body = WorkflowList)),
    tag = "workflows"
)]
pub async fn list() -> Result<axum::Json<WorkflowList>, Problem> {
    let bundles = tokio::task::spawn_blocking(bundles)
        .await
        .map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let workflows = bundles.iter().flat_map(views).collect();
    Ok(axum::Json(WorkflowList { workflows }))
}

/// The newest installed version of each bundle, then the built-in bundle. A bundle that no
/// longer loads (changed on disk) is left out: `bundle check` says why.
fn bundles() -> Vec<Bundle> {
    let mut names: Vec<String> = registry::list().into_iter().map(|i| i.name).collect();
    names.dedup();
    let installed = names.iter().filter_map(|name| registry::find(name)).filter_map(|i| Bundle::load(&i.dir).ok());
    installed.chain(builtin::bundle().ok()).collect()
}

fn views(bundle: &Bundle) -> Vec<WorkflowView> {
    let manifest = &bundle.manifest;
    let views = manifest.workflows.iter().map(|workflow| WorkflowView {
        bundle: manifest.name.clone(),
        version: manifest.version.clone(),
        name: workflow.name.clone(),
        description: workflow.description.clone(),
        parameters: workflow.parameters.iter().map(parameter).collect(),
        parameters_schema: schema(&workflow.parameters),
    });
    views.collect()
}

fn parameter(decl: &ParamDecl) -> ParameterView {
    ParameterView {
        name: decl.name.clone(),
        description: decl.description.clone(),
        kind: decl.kind.map(|k| k.name().to_string()),
        default: decl.default.clone(),
        mandatory: decl.mandatory(),
    }
}

/// The parameters as a JSON Schema object.
fn schema(parameters: &[ParamDecl]) -> Value {
    let mut properties = Map::new();
    for decl in parameters {
        let mut property = Map::new();
        if let Some(kind) = decl.kind {
            let kind = match kind {
                ParamType::String => "string",
                ParamType::Integer => "integer",
                ParamType::Float => "number",
                ParamType::Boolean => "boolean",
                ParamType::List => "array",
                ParamType::Dict => "object",
            };
            property.insert("type".into(), kind.into());
        }
        if !decl.description.is_empty() {
            property.insert("description".into(), decl.description.clone().into());
        }
        if let Some(default) = &decl.default {
            property.insert("default".into(), default.clone());
        }
        properties.insert(decl.name.clone(), Value::Object(property));
    }
    let required: Vec<&str> = parameters.iter().filter(|d| d.mandatory()).map(|d| d.name.as_str()).collect();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}
