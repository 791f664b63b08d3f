//! `GET /api/v1/calls`: the normalized LLM calls themselves.
//!
//! A call is already the public shape (the model's `LlmCall` is the contract for every convention),
//! so rows pass through unchanged.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use sightline_model::LlmCall;
use sightline_store::SharedStore;

use super::params::ListParams;
use crate::error::ApiError;

/// Body of `GET /api/v1/calls`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CallListResponse {
    /// Calls, newest first.
    pub calls: Vec<LlmCall>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/calls`.
pub async fn list_calls(
    State(store): State<SharedStore>,
    params: ListParams,
) -> Result<Json<CallListResponse>, ApiError> {
    let page = store.list_calls(&params.filter, &params.page).await?;
    Ok(Json(CallListResponse {
        calls: page.items,
        next_cursor: page.next_cursor,
    }))
}
