//! Sightline's outward HTTP surface: the JSON API (`/api/v1/…`) and the health probes.
//!
//! [`router`] is a plain `axum::Router` over a [`SharedStore`]; it binds no socket, so the binary
//! merges it with the ingest routes on one listener and tests drive it with
//! `tower::ServiceExt::oneshot`. The crate reads only through the `Store` trait and never knows
//! the backend. Errors are turned into responses in one place ([`error`]) and logged by one
//! middleware, never by handlers; response shapes live in [`api`] as named `Serialize` structs.

pub mod api;
pub mod error;
pub mod health;
pub mod prometheus;

use axum::routing::get;
use axum::{middleware, Router};
use sightline_store::SharedStore;

pub use error::{ApiError, ErrorBody, ErrorResponse};

/// The API and health routes over `store`: `/api/v1/{traces,traces/{trace_id},calls,sessions,
/// sessions/{session_id},users}`, `/healthz` and `/readyz`.
///
/// The router sets no fallback of its own outside `/api/v1`, so it can be merged with other
/// routers that do.
pub fn router(store: SharedStore) -> Router {
    router_with_metrics(store, prometheus::MetricsSources::default())
}

/// [`router`] plus `GET /metrics` rendering `sources` (Prometheus text format).
pub fn router_with_metrics(store: SharedStore, sources: prometheus::MetricsSources) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api::routes())
        .layer(middleware::from_fn(error::log_errors))
        .with_state(store)
        .merge(prometheus::router(sources))
}
