//! The forwarding path. It reads the request body (a recorded call needs it, and it is small),
//! sends it upstream with the caller's headers, and answers with the upstream's status, headers
//! and body as a stream — each chunk is written to the client as soon as it arrives. Errors the
//! gateway itself produces (upstream unreachable or silent, request too large) are answered as
//! `{"error":{"code","message","field"}}`, which the OpenAI and Anthropic SDKs both read as an
//! API error with a message.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use sightline_ingest::otlp::{project_from_header, PROJECT_HEADER};
use sightline_ingest::IngestError;

use crate::capture::{unix_nanos, Exchange, Outcome, Pending, Tee};
use crate::recorder::Recorder;
use crate::trace::TraceContext;
use crate::{Gateway, Provider};

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus those the client
/// library recomputes.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The headers a message's `Connection` headers name as hop-by-hop (RFC 9110 §7.6.1), read
/// once per message.
struct ConnectionOptions<'a>(Vec<&'a str>);

impl<'a> ConnectionOptions<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        Self(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|option| !option.is_empty())
                .collect(),
        )
    }

    /// Whether `name` stays on this hop: always so (see [`is_hop_by_hop`]), or named by
    /// `Connection`.
    fn hop_by_hop(&self, name: &HeaderName) -> bool {
        is_hop_by_hop(name)
            || self
                .0
                .iter()
                .any(|option| option.eq_ignore_ascii_case(name.as_str()))
    }
}

/// Whether the path has a `.` or `..` segment (also percent-encoded, or separated by `\`,
/// which URLs of the http scheme read as `/`): such a path would be resolved against the
/// upstream's base path and could leave it.
fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        // Counts the dots a segment spells (`.` or `%2e`), or gives up at anything else; no
        // allocation, as this runs on every proxied request.
        let mut rest = segment.as_bytes();
        let mut dots = 0;
        while !rest.is_empty() && dots < 3 {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        rest.is_empty() && (dots == 1 || dots == 2)
    })
}

/// A header value as text: UTF-8 when it is, else each byte as a Latin-1 character (what
/// clients that encode header text as ISO-8859-1 send for `é`).
fn header_text(value: &HeaderValue) -> String {
    let bytes = value.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

const ATTRIBUTION_PREFIX: &str = "x-sightline-";

/// `POST|GET /gateway/openai/v1/{*rest}`.
pub(crate) async fn openai(
    State(gw): State<Arc<Gateway>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(gw, Provider::OpenAi, rest, method, uri, headers, body).await
}

/// `POST|GET /gateway/anthropic/v1/{*rest}`.
pub(crate) async fn anthropic(
    State(gw): State<Arc<Gateway>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(gw, Provider::Anthropic, rest, method, uri, headers, body).await
}

/// A Sightline error response.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_response_for(status, code, None, message)
}

/// [`error_response`] naming the request field (a header) that was wrong.
fn error_response_for(
    status: StatusCode,
    code: &str,
    field: Option<&str>,
    message: &str,
) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": {
            "code": code,
            "message": message,
            "field": field,
        }})),
    )
        .into_response()
}

/// Whether reading a body failed because it passed the size limit (rather than because the
/// client stopped sending).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Holds the exchange until the response body takes it over; if the handler is dropped first
/// (the client went away while the upstream was still thinking), the exchange is recorded as
/// cancelled rather than lost.
struct Guard<'a> {
    pending: Option<Pending>,
    recorder: &'a Recorder,
}

impl Guard<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(p) = self.pending.take() {
            p.finish(outcome, self.recorder);
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

async fn forward(
    gw: Arc<Gateway>,
    provider: Provider,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let start_unix_nano = unix_nanos();
    let stats = gw.recorder.counters();
    stats.request();
    // From the first proxied call on, the store's writer yields to calls like this one.
    sightline_store::background::favour_requests();

    let base = match provider {
        Provider::OpenAi => &gw.openai,
        Provider::Anthropic => &gw.anthropic,
    };
    // The path as the client encoded it (the extracted `rest` is percent-decoded), so ids such
    // as `ft%3Agpt-4o` reach the upstream unchanged.
    let raw_rest = uri
        .path()
        .strip_prefix(provider.path_prefix())
        .unwrap_or(&rest);
    if has_dot_segment(raw_rest) {
        return error_response_for(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            Some("path"),
            "the path has a `.` or `..` segment; the gateway forwards only paths below the upstream's /v1",
        );
    }
    let mut url = base.clone();
    url.set_path(&format!(
        "{}/v1/{raw_rest}",
        base.path().trim_end_matches('/')
    ));
    url.set_query(uri.query());

    // The project is validated as on every OTLP receiver; a bad name is the caller's mistake,
    // answered before anything reaches the upstream, and nothing is recorded.
    let project = match project_from_header(headers.get(PROJECT_HEADER).map(|v| v.as_bytes())) {
        Ok(p) => p,
        Err(e) => {
            let message = match &e {
                IngestError::InvalidInput { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return error_response_for(
                StatusCode::BAD_REQUEST,
                "invalid_project",
                Some(PROJECT_HEADER),
                &message,
            );
        }
    };
    let mut attribution = Vec::new();
    let mut upstream_headers = HeaderMap::with_capacity(headers.len());
    let connection = ConnectionOptions::of(&headers);
    for (name, value) in &headers {
        if let Some(key) = name.as_str().strip_prefix(ATTRIBUTION_PREFIX) {
            if key != "project" {
                attribution.push((key.to_string(), header_text(value)));
            }
            continue;
        }
        if connection.hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            // The gateway has read the whole body already: the client got its go-ahead.
            || name == header::EXPECT
        {
            continue;
        }
        upstream_headers.append(name.clone(), value.clone());
    }
    let trace =
        TraceContext::from_traceparent(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    let mut guard = Guard {
        pending: Some(Pending {
            exchange: Exchange {
                provider,
                method: method.to_string(),
                path: format!("/{raw_rest}"),
                upstream_host: base.host_str().unwrap_or_default().to_string(),
                project,
                attribution,
                trace,
                request_body: Bytes::new(),
                start_unix_nano,
                status: None,
                content_type: None,
                content_encoding: None,
                chunks: Vec::new(),
                response_bytes: 0,
                capture_truncated: false,
                first_chunk_ns: None,
                end_unix_nano: start_unix_nano,
                outcome: Outcome::Complete,
            },
            started,
        }),
        recorder: &gw.recorder,
    };

    let request_body = match axum::body::to_bytes(body, gw.config.max_request_bytes).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => {
            let message = format!(
                "request body is larger than the gateway's limit of {} bytes",
                gw.config.max_request_bytes
            );
            guard.finish(Outcome::Rejected(message.clone()));
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", &message);
        }
        Err(e) => {
            // The client stopped sending (or its connection broke) mid-body: nothing went
            // upstream, and the call is recorded as cancelled.
            guard.finish(Outcome::Cancelled);
            return error_response(
                StatusCode::BAD_REQUEST,
                "request_body_unreadable",
                &format!("the request body could not be read: {e}"),
            );
        }
    };
    if let Some(p) = guard.pending.as_mut() {
        p.exchange.request_body = request_body.clone();
    }

    let sent = gw
        .client
        .request(method.clone(), url)
        .headers(upstream_headers)
        .body(request_body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            // The URL may carry a key in its query string: it is neither answered nor recorded.
            let e = e.without_url();
            let (status, code, outcome) = if e.is_timeout() {
                let m = format!(
                    "the {} upstream did not answer in time: {e}",
                    provider.name()
                );
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    Outcome::Timeout(m),
                )
            } else {
                let m = format!("the {} upstream could not be reached: {e}", provider.name());
                (
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    Outcome::Unreachable(m),
                )
            };
            let message = match &outcome {
                Outcome::Timeout(m) | Outcome::Unreachable(m) => m.clone(),
                _ => String::new(),
            };
            guard.finish(outcome);
            return error_response(status, code, &message);
        }
    };

    let status = upstream.status();
    let mut response_headers = HeaderMap::with_capacity(upstream.headers().len());
    let connection = ConnectionOptions::of(upstream.headers());
    for (name, value) in upstream.headers() {
        if !connection.hop_by_hop(name) {
            response_headers.append(name.clone(), value.clone());
        }
    }
    let header_str = |name: HeaderName| {
        response_headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(p) = guard.pending.as_mut() {
        p.exchange.status = Some(status.as_u16());
        p.exchange.content_type = header_str(header::CONTENT_TYPE);
        p.exchange.content_encoding = header_str(header::CONTENT_ENCODING);
    }
    let expected_len = header_str(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());

    let body = if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || expected_len == Some(0)
    {
        guard.finish(Outcome::Complete);
        Body::empty()
    } else if let Some(pending) = guard.pending.take() {
        let tee = Tee::new(
            upstream.bytes_stream().boxed(),
            pending,
            gw.recorder.clone(),
            gw.config.max_capture_bytes,
            expected_len,
        );
        Body::from_stream(tee)
    } else {
        Body::empty()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_however_they_are_spelled() {
        for path in [
            "..", ".", "a/../b", "a/./b", "%2e%2E/x", "x/.%2e", "%2E", "a\\..\\b", "a/..", "../",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "",
            "a/b",
            "...",
            "a/.../b",
            "gpt-4.1..mini",
            ".hidden",
            "a./b",
            "%2e%2e%2e",
            "%2",
            "%2x",
            "a/%2ea",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
