//! `/api/v1/tokens`: an admin's view of the role tokens, as `rhaiflow tokens` has it: list,
//! create (the token is in the answer, and only there), revoke.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::{Role, TokenRecord};

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    /// viewer, operator or admin.
    pub role: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// viewer, operator or admin.
    pub role: String,
    /// Who holds it or what it is for.
    #[serde(default)]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct NewToken {
    /// The token: shown only in this answer.
    pub token: String,
    #[serde(flatten)]
    pub record: TokenView,
}

fn view(record: TokenRecord) -> TokenView {
    TokenView {
        id: record.id,
        role: record.role.as_str().to_string(),
        name: record.name,
        created_at: record.created_at,
    }
}

/// The tokens (never the tokens' text).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 503, description = "The store cannot be read", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "auth"
)]
pub async fn list(State(shared): State<Arc<Shared>>) -> Result<Json<TokenList>, Problem> {
    let records = blocking(move || shared.tokens.store().list()).await?;
    Ok(Json(TokenList { tokens: records.into_iter().map(view).collect() }))
}

/// Makes a token.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "Made: the token is in this answer only", body = NewToken),
        (status = 400, description = "Not a token request", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body sent without `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such role", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "auth"
)]
pub async fn create(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<NewToken>), Problem> {
    let request: NewTokenRequest =
        Problem::object_body(body)?.ok_or_else(|| Problem::bad_request("the body must be a JSON object"))?;
    let Some(role) = Role::parse(&request.role) else {
        let detail = format!("`{}` is no role: viewer, operator or admin", request.role);
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail));
    };
    let store = shared.clone();
    let (record, token) = blocking(move || store.tokens.store().create(role, &request.name)).await?;
    shared.tokens.changed();
    Ok((StatusCode::CREATED, Json(NewToken { token, record: view(record) })))
}

/// Revokes a token: refused from now on, by every server on this store within a second.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "auth"
)]
pub async fn revoke(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    let store = shared.clone();
    let shown = id.clone();
    if !blocking(move || store.tokens.store().revoke(&id)).await? {
        return Err(Problem::not_found(format!("no token has the id `{shown}`")));
    }
    shared.tokens.changed();
    Ok(StatusCode::NO_CONTENT)
}
