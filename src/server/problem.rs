//! Errors as RFC 9457 problem details (`application/problem+json`): a status, a title that
//! names the kind of problem, and a detail that says what happened to this request.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// A request body that is not the JSON asked for: 415 without a JSON `Content-Type`
    /// (the body is not read), 413 past the size limit, else 400 (not JSON, or not of the
    /// expected shape).
    pub fn of_json_body(rejection: JsonRejection) -> Problem {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with `Content-Type: application/json`",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} MiB", super::BODY_LIMIT / (1024 * 1024)),
            ),
            other => Problem::bad_request(other.body_text()),
        }
    }

    /// A JSON body read as `T`: `None` for `null`; an object read field by field; anything
    /// else refused (serde would read an array as a struct's fields in order).
    pub fn object_body<T: serde::de::DeserializeOwned>(
        body: Result<axum::Json<serde_json::Value>, JsonRejection>,
    ) -> Result<Option<T>, Problem> {
        match body.map_err(Problem::of_json_body)?.0 {
            serde_json::Value::Null => Ok(None),
            object @ serde_json::Value::Object(_) => {
                serde_json::from_value(object).map(Some).map_err(|e| Problem::bad_request(e.to_string()))
            }
            _ => Err(Problem::bad_request("the body must be a JSON object")),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        match error {
            StoreError::NoSuchExecution(_) | StoreError::NoSuchDeployment(_) => Problem::not_found(error.to_string()),
            other => Problem::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}
