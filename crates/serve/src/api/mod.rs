//! The JSON API v1 (DESIGN §4), one module per resource.
//!
//! Handlers parse parameters ([`params`]), ask the [`Store`](sightline_store::Store), and map its
//! rows into the response structs declared beside them. Those structs are the public contract: the
//! field names are what clients (and the web UI's generated types) rely on, so they are named
//! structs deriving `Serialize`, never ad-hoc `json!` values.

pub mod calls;
pub mod params;
pub mod sessions;
pub mod stats;
pub mod timeseries;
pub mod timestamp;
pub mod traces;
pub mod users;

use axum::extract::OriginalUri;
use axum::routing::get;
use axum::Router;
use sightline_store::SharedStore;

use crate::error::ApiError;

/// The `/api/v1` routes, to be nested under that prefix. Unknown paths under it answer a JSON 404
/// and known paths with another method a JSON 405.
pub fn routes() -> Router<SharedStore> {
    Router::new()
        .route("/traces", get(traces::list_traces))
        .route("/traces/{trace_id}", get(traces::get_trace))
        .route("/calls", get(calls::list_calls))
        .route("/sessions", get(sessions::list_sessions))
        .route("/sessions/{session_id}", get(sessions::get_session))
        .route("/users", get(users::list_users))
        .route("/stats", get(stats::stats))
        .route("/timeseries", get(timeseries::timeseries))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint at `{}`", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
