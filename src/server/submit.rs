//! `POST /api/v1/executions`: runs an installed bundle's workflow or a built-in one (on a
//! stored deployment), its parameters checked as `rhaiflow run` checks them, in this server's
//! process, recorded in its store; 201 with the execution's `Location` once it is recorded.
//! A script's text runs only when the server was started with `--allow-scripts`: it is code.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Caller;
use super::executions::summary;
use super::problem::Problem;
use super::{blocking, Shared};
use crate::bundle::{builtin, registry, Bundle};
use crate::diagnostic::Diagnostic;
use crate::runner::{DeploymentSource, RunOptions, StoreChoice};
use crate::store::{ExecutionQuery, ExecutionRecord};

/// What to run (its schema in the document: `submission`).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// An installed bundle's name, or `builtin` (the default) for install, uninstall,
    /// execute_operation, scale and heal.
    #[serde(default)]
    pub bundle: Option<String>,
    /// The bundle's workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The workflow's parameters, checked against its declarations.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// A stored deployment to run on (`rhaiflow deployments create`); the built-in workflows need one.
    #[serde(default)]
    pub deployment: Option<String>,
    /// A script's text, instead of a bundle's workflow: only on a server started with `--allow-scripts`.
    #[serde(default)]
    pub script: Option<String>,
    /// Queue it for a worker of this queue (`rhaiflow worker --queue NAME`) instead of running
    /// it in the server: needs a PostgreSQL store.
    #[serde(default)]
    pub queue: Option<String>,
}

/// Starts an execution.
#[utoipa::path(
    post,
    path = "/api/v1/executions",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "The same request with the same key starts one execution: again, it answers with that one (another request with the key is 422)")),
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "Started: the execution, at its Location", body = super::executions::ExecutionSummary),
        (status = 400, description = "A body that is not a submission (not JSON, unknown fields, a script and a workflow), or a bad Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 4 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A script's text, and the server does not run scripts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body sent without `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "What cannot run: an unknown bundle, workflow or deployment, bad parameters, a script that does not compile", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn submit(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let request: SubmitRequest =
        Problem::object_body(body)?.ok_or_else(|| Problem::bad_request("the body must be a JSON object"))?;
    let by = caller.describe();
    let Some(key) = idempotency_key(&headers)? else { return start(&shared, request, None, by).await };
    // One request with a key at a time here; across servers on one store, the store keeps a
    // key to one execution, and the loser of a race answers with the winner's.
    let _one_at_a_time = shared.idempotent.lock().await;
    let fingerprint = crate::embedded::sha256_hex(serde_json::to_string(&request).unwrap_or_default().as_bytes());
    if let Some(record) = started_with(&shared, &key).await? {
        return same_request(&record, &key, &fingerprint);
    }
    let idempotency = serde_json::json!({ "key": key, "request": fingerprint });
    match start(&shared, request, Some(idempotency), by).await {
        Ok(started) => Ok(started),
        Err(refused) => match started_with(&shared, &key).await? {
            Some(record) => same_request(&record, &key, &fingerprint),
            None => Err(refused),
        },
    }
}

/// The execution started with the Idempotency-Key `key`, if any.
async fn started_with(shared: &Arc<Shared>, key: &str) -> Result<Option<ExecutionRecord>, Problem> {
    let store = shared.clone();
    let query = ExecutionQuery { idempotency_key: Some(key.to_string()), limit: Some(1), ..ExecutionQuery::default() };
    Ok(blocking(move || store.store.executions(&query)).await?.into_iter().next())
}

/// The answer to a request with a key already used: the execution it started, if it is the
/// same request; else 422.
fn same_request(record: &ExecutionRecord, key: &str, fingerprint: &str) -> Result<Response, Problem> {
    let recorded = record.options.pointer("/idempotency/request").and_then(Value::as_str);
    if recorded != Some(fingerprint) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Idempotency-Key `{key}` was used for another request (execution {})", record.id),
        ));
    }
    Ok(created(record))
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible characters (no spaces), as the
/// document's pattern says; quoted (a structured-field string), the key is what is inside.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    if !(1..=255).contains(&text.len()) || !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Problem::bad_request("Idempotency-Key must be 1 to 255 visible characters, without spaces"));
    }
    let key = text.strip_prefix('"').and_then(|k| k.strip_suffix('"')).filter(|k| !k.is_empty()).unwrap_or(text);
    Ok(Some(key.to_string()))
}

/// The answer to a submission: 201 at the execution's Location.
fn created(record: &crate::store::ExecutionRecord) -> Response {
    let location = format!("/api/v1/executions/{}", record.id);
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(summary(record))).into_response()
}

/// Starts the run `request` asks for (`idempotency` recorded with it), for the caller `by`.
async fn start(
    shared: &Arc<Shared>,
    request: SubmitRequest,
    idempotency: Option<Value>,
    by: String,
) -> Result<Response, Problem> {
    if request.script.is_some() && !shared.allow_scripts {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "this server runs bundles' workflows, not scripts' text: start it with --allow-scripts to run them",
        ));
    }
    let location = shared.location.clone();
    let queue = request.queue.clone();
    let prepared = tokio::task::spawn_blocking(move || options(request, &location)).await;
    let mut options = prepared.map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let id = uuid::Uuid::new_v4().to_string();
    options.execution_id = Some(id.clone());
    options.idempotency = idempotency;
    options.caller = Some(by);
    let record = match queue {
        Some(queue) => queued(shared, options, queue).await?,
        None => super::runs::start(shared, &id, move || crate::runner::run(&options, Vec::new()), |_| true).await?,
    };
    Ok(created(&record))
}

/// Records the run as queued for a worker of `queue` (checked as `run --submit` checks it).
async fn queued(shared: &Arc<Shared>, options: RunOptions, queue: String) -> Result<ExecutionRecord, Problem> {
    if queue.trim().is_empty() {
        return Err(Problem::bad_request("`queue` is empty: name the queue workers take from"));
    }
    let store = shared.clone();
    let submitted = tokio::task::spawn_blocking(move || {
        let id = crate::runner::submit(&options, &store.location, &queue)
            .map_err(|d| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, super::runs::shown(&d)))?;
        store.store.execution(&id).map_err(Problem::from)
    });
    submitted.await.map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// The run `request` asks for, checked as `rhaiflow run` checks it.
fn options(request: SubmitRequest, location: &crate::store::StoreLocation) -> Result<RunOptions, Problem> {
    let refused = |d: Diagnostic| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, super::runs::shown(&d));
    let mut options = RunOptions::new("workflow.rhai");
    options.parameters = request.parameters;
    options.store = StoreChoice::At(location.clone());
    match (request.script, request.workflow) {
        (Some(_), Some(_)) => return Err(Problem::bad_request("give a script or a workflow, not both")),
        (Some(text), None) => {
            let path =
                script_file(&text).map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            options.script = path;
        }
        (None, Some(workflow)) => {
            let bundle = bundle(request.bundle.as_deref().unwrap_or("builtin")).map_err(refused)?;
            crate::runner::prepare_bundle_workflow(&bundle, &workflow, &mut options).map_err(refused)?;
            if bundle.manifest.name == "builtin" && request.deployment.is_none() {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "`{workflow}` is a built-in workflow of the deployment model: give a `deployment` to run it on"
                    ),
                ));
            }
        }
        (None, None) => return Err(Problem::bad_request("give a `workflow` (of a `bundle`) to run")),
    }
    if let Some(name) = &request.deployment {
        let source = DeploymentSource::Stored { name, store: location };
        crate::runner::attach_deployment(&mut options, source).map_err(refused)?;
    }
    Ok(options)
}

/// The bundle `name`: the built-in one, or the newest installed version.
fn bundle(name: &str) -> Result<Bundle, Diagnostic> {
    if name == "builtin" {
        return builtin::bundle();
    }
    let installed = registry::find(name).ok_or_else(|| {
        let names: Vec<String> = registry::list().into_iter().map(|i| i.name).collect();
        let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        Diagnostic::plain(
            crate::diagnostic::Code::NoTarget,
            format!("no installed bundle named `{name}` (installed: {known})"),
        )
    })?;
    Bundle::load(&installed.dir)
}

/// A submitted script's text, kept by its checksum where runs find it again (a resume).
fn script_file(text: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = registry::root().join(".submitted");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.rhai", crate::embedded::sha256_hex(text.as_bytes())));
    if !path.exists() {
        let scratch = dir.join(format!(".{}", uuid::Uuid::new_v4()));
        std::fs::write(&scratch, text)?;
        std::fs::rename(&scratch, &path)?;
    }
    Ok(path)
}
