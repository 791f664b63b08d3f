//! Health probes. `/healthz` says the process serves HTTP; `/readyz` says the store answers a
//! trivial query within [`READY_TIMEOUT`], so a load balancer stops routing to a node whose store
//! is down or wedged instead of letting its requests hang.

use std::time::Duration;

use axum::extract::State;
use sightline_model::DEFAULT_PROJECT;
use sightline_store::{Filter, PageRequest, SharedStore};

use crate::error::ApiError;

/// How long `/readyz` waits for the store.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 `ok` while the process runs.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 `ready` when the store lists one trace in time, else 503.
pub async fn readyz(State(store): State<SharedStore>) -> Result<&'static str, ApiError> {
    let filter = Filter {
        project: DEFAULT_PROJECT.to_owned(),
        ..Filter::default()
    };
    let page = PageRequest {
        limit: 1,
        cursor: None,
    };
    match tokio::time::timeout(READY_TIMEOUT, store.list_traces(&filter, &page)).await {
        Ok(Ok(_)) => Ok("ready"),
        Ok(Err(e)) => Err(ApiError::NotReady(e.to_string())),
        Err(_) => Err(ApiError::NotReady(format!(
            "no answer within {} ms",
            READY_TIMEOUT.as_millis()
        ))),
    }
}
