//! `rhaiflow serve`: an HTTP API (`/api/v1`, JSON, errors as problem details) on the execution
//! store, with its OpenAPI document generated from the handlers (`openapi`). On a loopback
//! address with no role tokens in the store it asks for none, as the CLI on the same machine
//! needs none; once tokens exist, or on any other address (which needs them to start), every
//! request does (`auth`).

mod auth;
mod cancel;
mod changes;
mod delete;
mod deployments;
mod events;
mod executions;
mod graph;
mod health;
mod listener;
mod logs;
pub mod openapi;
mod page;
mod problem;
mod resume;
mod runs;
mod session;
mod submission;
mod submit;
mod tokens;
mod watches;
mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::diagnostic::{Code, Diagnostic};
use crate::store::{DeploymentStore, Store, StoreError, StoreLocation, TokenStore};
use problem::Problem;

/// What every handler shares.
pub struct Shared {
    store: Arc<dyn Store>,
    deployments: DeploymentStore,
    location: StoreLocation,
    /// Scripts' text may be submitted (`--allow-scripts`).
    allow_scripts: bool,
    /// Executions' changes, for `/events` streams (`changes`).
    changes: tokio::sync::broadcast::Sender<Arc<String>>,
    /// Held while a submission with an `Idempotency-Key` looks for its earlier execution and
    /// starts one.
    idempotent: tokio::sync::Mutex<()>,
    /// The role tokens requests are checked against.
    tokens: auth::Tokens,
    /// Set when the server stops: streams end.
    closing: tokio::sync::watch::Receiver<bool>,
    /// The pollers of followed executions, one each (`watches`).
    watches: watches::Watches,
}

/// The largest request body: a submission's parameters, or a script's text (which the
/// compiler bounds further).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How a server is set up.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub location: StoreLocation,
    pub allow_scripts: bool,
}

/// The routes of the API on `store`.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{name}", get(page::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/events", get(changes::changes))
        .route("/api/v1/workflows", get(workflows::list))
        .route("/api/v1/deployments", get(deployments::list))
        .route("/api/v1/deployments/{name}", get(deployments::show))
        .route("/api/v1/executions", get(executions::list).post(submit::submit))
        .route("/api/v1/executions/{id}", get(executions::show).delete(delete::delete))
        .route("/api/v1/executions/{id}/events", get(events::events))
        .route("/api/v1/executions/{id}/graph", get(graph::graph))
        .route("/api/v1/executions/{id}/logs", get(logs::logs))
        .route("/api/v1/executions/{id}/cancel", post(cancel::cancel))
        .route("/api/v1/executions/{id}/resume", post(resume::resume))
        .route("/api/v1/login", post(session::login))
        .route("/api/v1/logout", post(session::logout))
        .route("/api/v1/whoami", get(session::whoami))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .fallback(|| async { Problem::not_found("no such resource: the API is under /api/v1 (openapi.json)") })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), auth::guard))
        .layer(axum::middleware::from_fn(listener::answer_in_time))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// Serves as `options` say until SIGTERM or Ctrl-C; `ready` is told the address it listens on
/// (the port the system chose for `:0`).
pub fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), Diagnostic> {
    let ServeOptions { listen, location, allow_scripts } = options;
    let location = &location;
    let store = crate::store::open(location)?;
    let deployments = DeploymentStore::open(location).map_err(StoreError::into_deployments_diagnostic)?;
    let tokens = auth::Tokens::new(TokenStore::open(location)?, !listen.ip().is_loopback())?;
    if !listen.ip().is_loopback() && !tokens.keeps_any() {
        return Err(Diagnostic::plain(
            Code::BadOption,
            format!("rhaiflow serve will not listen on {listen}: the store has no role tokens to ask for"),
        )
        .with_help("make one first (rhaiflow tokens create --role admin), or listen on a loopback address (the default, 127.0.0.1:8080)"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rhaiflow-serve")
        .build()
        .map_err(|e| Diagnostic::plain(Code::Error, format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let cannot_listen =
            |e: std::io::Error| Diagnostic::plain(Code::BadOption, format!("cannot listen on {listen}: {e}"));
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(cannot_listen)?;
        cancel::take_nudges().map_err(|e| Diagnostic::plain(Code::Error, format!("cannot handle SIGUSR1: {e}")))?;
        ready(listener.local_addr().map_err(cannot_listen)?);
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let (closing, closed) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            store,
            deployments,
            location: location.clone(),
            allow_scripts,
            changes,
            idempotent: Default::default(),
            tokens,
            closing: closed,
            watches: Default::default(),
        });
        tokio::spawn(changes::watch(shared.clone()));
        listener::serve(listener, router(shared), stopped(), closing).await;
        Ok(())
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else { return std::future::pending().await };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Completes when the server stops (for streams to end then).
async fn until_closing(mut closing: tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Runs a store call off the runtime's workers (the stores block) and turns its error into a
/// problem.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> crate::store::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(Problem::from),
        Err(e) => Err(Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
