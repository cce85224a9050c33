//! The page's login: a token exchanged for an HttpOnly, SameSite=Strict cookie that holds it
//! (`POST /api/v1/login`), dropped again (`POST /api/v1/logout`), and who the server takes the
//! caller for (`GET /api/v1/whoami`).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, COOKIE};
use super::problem::Problem;
use super::Shared;

/// How long a login lasts (the cookie's `Max-Age`): a working day.
const LOGIN_SECONDS: u32 = 12 * 60 * 60;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// A token `rhaiflow tokens create` printed.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// Whether this server asks for tokens.
    pub auth: bool,
    /// viewer, operator or admin (admin when it asks for none).
    pub role: String,
    /// The token's id and name, when the caller offered one.
    pub token: Option<String>,
    pub name: Option<String>,
}

/// The cookie, set (`Some(token)`) or cleared; `Secure` behind a proxy that says it took
/// HTTPS.
fn cookie(token: Option<&str>, headers: &HeaderMap) -> String {
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    let (value, age) = match token {
        Some(token) => (token, LOGIN_SECONDS),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={age}{secure}")
}

/// Exchanges a token for the login cookie.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    request_body = LoginRequest,
    responses(
        (status = 204, description = "Logged in: the cookie is set"),
        (status = 400, description = "Not a login request", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body sent without `Content-Type: application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not a token this server knows", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "auth"
)]
pub async fn login(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let request: LoginRequest =
        Problem::object_body(body)?.ok_or_else(|| Problem::bad_request("the body must be a JSON object"))?;
    let tokens = shared.tokens.current().await?;
    if tokens.verify(&request.token).is_none() {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "not a token this server knows"));
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie(Some(&request.token), &headers))]).into_response())
}

/// Drops the login cookie.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204, description = "The cookie is cleared")), tag = "auth")]
pub async fn logout(headers: HeaderMap) -> Response {
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie(None, &headers))]).into_response()
}

/// Who the server takes the caller for.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    responses(
        (status = 200, description = "The caller's role", body = WhoAmI),
        (status = 401, description = "A token is needed", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "auth"
)]
pub async fn whoami(State(shared): State<Arc<Shared>>, Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    let auth = shared.tokens.asks();
    Json(WhoAmI {
        auth,
        role: caller.role.as_str().to_string(),
        token: caller.token.as_ref().map(|t| t.id.clone()),
        name: caller.token.map(|t| t.name),
    })
}
