//! `GET /api/v1/users`: per end user, calls, tokens, cost, errors and when they were last seen.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use sightline_store::{SharedStore, UserSummary};

use super::params::ListParams;
use super::timestamp::format_unix_nanos;
use crate::error::ApiError;

/// Body of `GET /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UserListResponse {
    /// Users, most recently seen first.
    pub users: Vec<UserRow>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One end user's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UserRow {
    /// User identifier.
    pub user_id: String,
    /// LLM calls.
    pub calls: u64,
    /// Traces.
    pub traces: u64,
    /// Sessions.
    pub sessions: u64,
    /// Failed calls.
    pub errors: u64,
    /// Summed input tokens.
    pub input_tokens: u64,
    /// Summed output tokens.
    pub output_tokens: u64,
    /// Summed cost in USD; `null` when nothing was priced.
    pub cost_usd: Option<f64>,
    /// First call, RFC 3339 UTC with nanoseconds.
    pub first_seen: String,
    /// First call, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last call, RFC 3339 UTC with nanoseconds.
    pub last_seen: String,
    /// Last call, unix nanoseconds.
    pub last_seen_unix_nano: u64,
}

impl From<UserSummary> for UserRow {
    fn from(u: UserSummary) -> Self {
        Self {
            user_id: u.user_id,
            calls: u.calls,
            traces: u.traces,
            sessions: u.sessions,
            errors: u.errors,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost_usd: u.cost_usd,
            first_seen: format_unix_nanos(u.first_seen_unix_nano),
            first_seen_unix_nano: u.first_seen_unix_nano,
            last_seen: format_unix_nanos(u.last_seen_unix_nano),
            last_seen_unix_nano: u.last_seen_unix_nano,
        }
    }
}

/// `GET /api/v1/users`.
pub async fn list_users(
    State(store): State<SharedStore>,
    params: ListParams,
) -> Result<Json<UserListResponse>, ApiError> {
    let page = store.list_users(&params.filter, &params.page).await?;
    Ok(Json(UserListResponse {
        users: page.items.into_iter().map(UserRow::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
