//! The API's OpenAPI document, generated from the handlers' and types' declarations (utoipa):
//! what the server answers is what the document says. `tests/snapshots` keeps a copy, so that
//! every change of the API shows in review.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

use super::{
    cancel, changes, delete, deployments, events, executions, graph, health, logs, problem, resume, session, submit,
    tokens, workflows,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "rhaiflow", description = "Executions of Rhai workflows: list, inspect, follow."),
    paths(health::healthz, health::readyz, executions::list, submit::submit, executions::show, events::events, graph::graph, changes::changes, logs::logs, cancel::cancel, resume::resume, delete::delete, workflows::list, deployments::list, deployments::show, session::login, session::logout, session::whoami, tokens::list, tokens::create, tokens::revoke),
    components(schemas(
        problem::Problem,
        executions::ExecutionPage,
        executions::ExecutionSummary,
        executions::ExecutionDetail,
        executions::TaskView,
        events::EventPage,
        cancel::CancelRequest,
        submit::SubmitRequest,
        graph::GraphsView,
        graph::GraphView,
        graph::NodeView,
        workflows::WorkflowList,
        workflows::WorkflowView,
        workflows::ParameterView,
        deployments::DeploymentList,
        deployments::DeploymentView,
        deployments::DeploymentDetail,
        deployments::InstanceView,
        session::LoginRequest,
        session::WhoAmI,
        tokens::TokenView,
        tokens::TokenList,
        tokens::NewTokenRequest,
        tokens::NewToken
    )),
    modifiers(&RoleTokens),
    security((), ("bearer" = []), ("cookie" = [])),
    tags((name = "executions", description = "Recorded executions"), (name = "health", description = "Liveness and readiness"), (name = "workflows", description = "What can be run"), (name = "deployments", description = "Deployments of blueprints"), (name = "auth", description = "Role tokens and the page's login"))
)]
pub struct ApiDoc;

/// The two ways a role token is offered: as a bearer token, or in the page's login cookie.
/// None is needed on a loopback server whose store keeps no tokens (hence the empty
/// requirement).
struct RoleTokens;

impl Modify for RoleTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        refusals(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::auth::COOKIE))),
        );
    }
}

/// Every operation that needs a role answers 401 without a token and 403 with one of a role
/// that may not (or from another site): said once here rather than on each handler.
fn refusals(openapi: &mut utoipa::openapi::OpenApi) {
    use axum::http::Method;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |description: &str| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        ResponseBuilder::new().description(description).content("application/problem+json", content).build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations =
            [(Method::GET, &mut item.get), (Method::POST, &mut item.post), (Method::DELETE, &mut item.delete)];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut().filter(|_| super::auth::needs(&method, path).is_some()) else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            responses.entry("401".into()).or_insert_with(|| problem("A role token is needed").into());
            responses
                .entry("403".into())
                .or_insert_with(|| problem("The token's role may not, or the request comes from another site").into());
        }
    }
}

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    // Every change of the API shows in review as a change of this snapshot.
    #[test]
    fn the_openapi_document_is_as_reviewed() {
        insta::assert_snapshot!("openapi", super::json());
    }
}
