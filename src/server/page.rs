//! The web page at `/`: hand-written HTML, CSS and JavaScript modules under `web/`, compiled
//! into the binary so that `rhaiflow serve` needs nothing beside it. The page uses only the
//! API; this module serves its files, each with its type and an `ETag` (`no-cache`: the
//! browser asks again and gets a 304 while the binary is the same).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::problem::Problem;

/// One of the page's files.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../web/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
/// The page, then the files it loads (under `/assets/`).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("list.js", JS),
    asset!("execution.js", JS),
    asset!("drawing.js", JS),
    asset!("detail.js", JS),
    asset!("submit.js", JS),
];

/// Scripts from this server only (no inline script); inline styles are the drawing's places.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /assets/{name}`: one of its files.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().skip(1).position(|a| a.name == name) {
        Some(i) => serve(i + 1, &headers),
        None => Problem::not_found(format!("no asset `{name}`")).into_response(),
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let tag = &etags()[i];
    let cached = headers.get(header::IF_NONE_MATCH).is_some_and(|seen| seen.as_bytes() == tag.as_bytes());
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let set = response.headers_mut();
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(tag) = HeaderValue::from_str(tag) {
        set.insert(header::ETAG, tag);
    }
    if i == 0 {
        set.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
        set.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

/// Each asset's `ETag`, from its content (computed once).
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", &crate::embedded::sha256_hex(a.body)[..16])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The budget for the page: all its files together under 150 KB.
    #[test]
    fn the_page_weighs_under_150_kb() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 150 * 1024, "the page's files weigh {total} bytes");
    }

    // Every file the page loads is one it can get: each `/assets/NAME` the HTML and the
    // modules name is served.
    #[test]
    fn every_asset_the_page_names_is_served() {
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap();
            for named in text.split("/assets/").skip(1) {
                let name: String = named.chars().take_while(|c| c.is_alphanumeric() || *c == '.').collect();
                assert!(ASSETS.iter().any(|a| a.name == name), "{} names /assets/{name}", asset.name);
            }
            for named in text.split("from \"./").skip(1) {
                let name: String = named.chars().take_while(|c| *c != '"').collect();
                assert!(ASSETS.iter().any(|a| a.name == name), "{} imports ./{name}", asset.name);
            }
        }
    }
}
