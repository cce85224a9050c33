//! Who may do what. Once the store keeps any role token (`rhaiflow tokens create`), or when the
//! server listens on an address other than loopback, every request under `/api/v1` (but the
//! document, login and logout) needs one: `Authorization: Bearer TOKEN`, or the cookie the page
//! gets by logging in. A viewer reads; an operator also submits, cancels and resumes; an admin
//! also deletes executions and manages tokens.
//!
//! Requests that change something are refused when a browser says they come from another
//! site (`Origin`, `Sec-Fetch-Site`), cookie or not: a page elsewhere must not cancel
//! executions through a browser that can reach this server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::problem::Problem;
use super::Shared;
use crate::store::{Role, StoreError, TokenRecord, TokenSet, TokenStore};

/// The cookie the page logs in with; it holds the token (HttpOnly: no script reads it).
pub const COOKIE: &str = "rhaiflow_token";

/// How old the tokens a server checks against may be: a revoked token is refused within it.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The tokens, read again from the store at most every `FRESH_FOR`.
pub struct Tokens {
    store: TokenStore,
    /// Asked for even when the store keeps no token (a server on a non-loopback address).
    always: bool,
    seen: Mutex<(Instant, Arc<TokenSet>)>,
}

/// Who made a request, put in its extensions for the handlers that record it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub role: Role,
    /// `None` without authentication (a loopback server with no tokens).
    pub token: Option<TokenRecord>,
}

impl Caller {
    /// How events name the caller: `token ID (NAME)`, or `anonymous`.
    pub fn describe(&self) -> String {
        match &self.token {
            Some(t) if t.name.is_empty() => format!("token {} ({})", t.id, t.role.as_str()),
            Some(t) => format!("token {} {} ({})", t.id, t.name, t.role.as_str()),
            None => "anonymous (loopback, no tokens)".to_string(),
        }
    }
}

impl Tokens {
    pub fn new(store: TokenStore, always: bool) -> Result<Tokens, StoreError> {
        let now = store.snapshot()?;
        Ok(Tokens { store, always, seen: Mutex::new((Instant::now(), Arc::new(now))) })
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The tokens as they were at most `FRESH_FOR` ago.
    pub async fn current(&self) -> Result<Arc<TokenSet>, Problem> {
        {
            let seen = self.seen.lock();
            if seen.0.elapsed() < FRESH_FOR {
                return Ok(seen.1.clone());
            }
        }
        let store = self.store.clone();
        let now = Arc::new(super::blocking(move || store.snapshot()).await?);
        *self.seen.lock() = (Instant::now(), now.clone());
        Ok(now)
    }

    /// Whether the store kept any token at the last read.
    pub fn keeps_any(&self) -> bool {
        !self.seen.lock().1.is_empty()
    }

    /// Whether requests need a token (as of the last read).
    pub fn asks(&self) -> bool {
        self.always || self.keeps_any()
    }

    /// Forget what was read: the next request reads the store (after a change made here).
    pub fn changed(&self) {
        self.seen.lock().0 = Instant::now() - FRESH_FOR;
    }
}

/// What a request needs: nothing (public), or a role.
pub(super) fn needs(method: &Method, path: &str) -> Option<Role> {
    let public = ["/api/v1/openapi.json", "/api/v1/login", "/api/v1/logout"];
    if !path.starts_with("/api/v1/") || public.contains(&path) {
        return None;
    }
    if path == "/api/v1/tokens" || path.starts_with("/api/v1/tokens/") {
        return Some(Role::Admin);
    }
    Some(match *method {
        Method::GET | Method::HEAD => Role::Viewer,
        Method::DELETE => Role::Admin,
        _ => Role::Operator,
    })
}

/// The token a request offers: its bearer token, else its cookie's.
fn offered(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return bearer.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether a browser says the request comes from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            origin_host != host
        }
        // A browser sends `Origin` with every request that changes something, so one without
        // it is not a browser's cross-site request; an `Origin` without a `Host` is no HTTP/1.1.
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"rhaiflow\""));
    response
}

/// The middleware: a caller for every request, or its refusal.
pub async fn guard(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && cross_site(request.headers()) {
        return Problem::new(StatusCode::FORBIDDEN, "a request from another site may not change anything here")
            .into_response();
    }
    let tokens = match shared.tokens.current().await {
        Ok(tokens) => tokens,
        Err(problem) => return problem.into_response(),
    };
    let asked = shared.tokens.always || !tokens.is_empty();
    let token = offered(request.headers()).and_then(|text| tokens.verify(text)).cloned();
    let caller = match (asked, token) {
        (_, Some(token)) => Caller { role: token.role, token: Some(token) },
        (false, None) => Caller { role: Role::Admin, token: None },
        (true, None) => {
            if let Some(_role) = needs(request.method(), request.uri().path()) {
                let detail = if offered(request.headers()).is_some() {
                    "the token is not one this server knows (revoked, or of another store)"
                } else {
                    "a role token is needed: `Authorization: Bearer TOKEN`, or log in (POST /api/v1/login)"
                };
                return unauthorized(detail);
            }
            Caller { role: Role::Viewer, token: None }
        }
    };
    if let Some(role) = needs(request.method(), request.uri().path()) {
        if caller.role < role {
            let detail = format!("this needs the {} role; the token is a {}", role.as_str(), caller.role.as_str());
            return Problem::new(StatusCode::FORBIDDEN, detail).into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn roles_follow_method_and_path() {
        assert_eq!(needs(&Method::GET, "/api/v1/executions"), Some(Role::Viewer));
        assert_eq!(needs(&Method::POST, "/api/v1/executions/x/cancel"), Some(Role::Operator));
        assert_eq!(needs(&Method::DELETE, "/api/v1/executions/x"), Some(Role::Admin));
        assert_eq!(needs(&Method::GET, "/api/v1/tokens"), Some(Role::Admin));
        assert_eq!(needs(&Method::POST, "/api/v1/login"), None);
        assert_eq!(needs(&Method::GET, "/api/v1/openapi.json"), None);
        assert_eq!(needs(&Method::GET, "/healthz"), None);
        assert_eq!(needs(&Method::GET, "/"), None);
    }

    #[test]
    fn a_bearer_token_or_the_cookie_is_offered() {
        assert_eq!(offered(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(offered(&headers(&[("cookie", "a=1; rhaiflow_token=xyz; b=2")])), Some("xyz"));
        assert_eq!(offered(&headers(&[("cookie", "rhaiflow_tokenx=1")])), None);
        assert_eq!(offered(&headers(&[])), None);
    }

    #[test]
    fn another_site_is_told_by_origin_or_fetch_metadata() {
        assert!(!cross_site(&headers(&[("host", "h:1"), ("origin", "http://h:1")])));
        assert!(cross_site(&headers(&[("host", "h:1"), ("origin", "http://evil:1")])));
        assert!(cross_site(&headers(&[("host", "h:1"), ("sec-fetch-site", "cross-site")])));
        assert!(!cross_site(&headers(&[("host", "h:1"), ("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("host", "h:1")])));
    }
}
