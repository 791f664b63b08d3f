//! What every endpoint shares: reading the request, choosing a fault, waiting out the configured
//! latency, error bodies in each provider's shape, and paced event streams.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::gen::{fnv1a, Rng};
use crate::MockConfig;

/// What a request's `tool_choice` allows, read once and checked by each API's own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// No tool is called.
    None,
    /// The first tool offered, unless the conversation ends with a tool's result.
    Auto,
    /// The first tool offered, whatever the conversation.
    Required,
    /// This tool, by name.
    Function(&'a str),
    /// Only these tools, by name; one of them must be called when `required`.
    Allowed { names: Vec<&'a str>, required: bool },
}

impl ToolChoice<'_> {
    /// The tool the model "decides" to call: among `tools`, each read through `tool` (which gives
    /// the object holding its `name`, or `None` for a tool that is not a function), the first
    /// one the choice allows; none right after a tool's result (`after_result`) unless a call is
    /// required or named.
    pub(crate) fn pick<'t>(
        &self,
        tools: &'t [Value],
        tool: impl Fn(&'t Value) -> Option<&'t Value>,
        after_result: bool,
    ) -> Option<&'t Value> {
        let named = |name: &str| {
            tools
                .iter()
                .filter_map(&tool)
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
        };
        match self {
            Self::None => None,
            Self::Function(name) => named(name),
            Self::Auto
            | Self::Allowed {
                required: false, ..
            } if after_result => None,
            Self::Allowed { names, .. } => names.iter().find_map(|name| named(name)),
            Self::Auto | Self::Required => tools.iter().find_map(&tool),
        }
    }
}

/// Which API's conventions an answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
}

/// A fault injected into one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 429 with a `retry-after` header.
    RateLimited,
    /// 500.
    ServerError,
    /// Hang, then 504.
    Timeout,
    /// 200 with a body that is not valid JSON (or an event stream with a broken event).
    Malformed,
    /// For streams: a few chunks, then the connection is cut.
    Disconnect,
}

/// One request, ready to be answered.
pub(crate) struct Ctx {
    pub config: Arc<MockConfig>,
    /// Seeded from the configured seed and the request.
    pub rng: Rng,
    pub fault: Option<Fault>,
    pub latency: Duration,
    pub ttft: Duration,
    pub tokens_per_s: f64,
    /// A stable hash of the request, for ids and `created`.
    pub hash: u64,
}

/// The longest delay the mock takes on: latency, time to first token, the hang of a timeout,
/// and the gap between two streamed tokens. Longer values are refused rather than overflowing a
/// timer.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// What a timing header in milliseconds must be, for its error message.
static MS_RANGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "a number of milliseconds from 0 to {}",
        MAX_DELAY.as_millis()
    )
});

/// `ms` milliseconds as a delay, when it is a number from 0 to [`MAX_DELAY`].
pub fn delay_from_ms(ms: f64) -> Option<Duration> {
    // NaN, infinities and negative values are refused by the conversion itself.
    Duration::try_from_secs_f64(ms / 1e3)
        .ok()
        .filter(|d| *d <= MAX_DELAY)
}

/// Whether `tokens_per_s` is a token rate the mock can pace: 0 (no pacing), or at least one
/// token per [`MAX_DELAY`].
pub fn valid_token_rate(tokens_per_s: f64) -> bool {
    tokens_per_s == 0.0
        || (tokens_per_s.is_finite()
            && tokens_per_s > 0.0
            && 1.0 / tokens_per_s <= MAX_DELAY.as_secs_f64())
}

/// The gap between two tokens at `tokens_per_s`: zero for no pacing, at most [`MAX_DELAY`].
fn pace_interval(tokens_per_s: f64) -> Duration {
    if tokens_per_s.is_nan() || tokens_per_s <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(1.0 / tokens_per_s).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

/// A header's value as a number, `None` when absent; a value that is not a number, or that
/// `check` refuses, is a 400 naming the header.
#[allow(clippy::result_large_err)]
fn header_value<T>(
    api: Api,
    headers: &HeaderMap,
    name: &str,
    check: impl Fn(f64) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, Response> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(check)
        .map(Some)
        .ok_or_else(|| {
            bad_header(
                api,
                name,
                &format!(
                    "{name} must be {expected}, got {:?}",
                    String::from_utf8_lossy(raw.as_bytes())
                ),
            )
        })
}

/// A 400 naming the header at fault.
fn bad_header(api: Api, name: &str, message: &str) -> Response {
    error(
        api,
        StatusCode::BAD_REQUEST,
        "invalid_header",
        message,
        Some(name),
    )
}

// The error of these functions is the ready-made response, returned as is.
#[allow(clippy::result_large_err)]
impl Ctx {
    /// [`Ctx::new`] for a request that must name its model: the model as well, or the API's own
    /// error for a missing one.
    pub(crate) fn with_model(
        api: Api,
        config: Arc<MockConfig>,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Self, Value, String), Response> {
        let (ctx, req) = Self::new(api, config, path, headers, body)?;
        let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_string) else {
            let message = match api {
                Api::OpenAi => "you must provide a model parameter",
                Api::Anthropic => "model: field required",
            };
            return Err(bad_field(api, "model", message));
        };
        Ok((ctx, req, model))
    }

    /// Checks the API key and parses the body. Errors are ready-made responses.
    pub(crate) fn new(
        api: Api,
        config: Arc<MockConfig>,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Self, Value), Response> {
        let has_key = match api {
            Api::OpenAi => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.len() > "Bearer ".len() && v.starts_with("Bearer ")),
            // Anthropic SDKs send `x-api-key`; newer ones may send a bearer token instead.
            Api::Anthropic => {
                headers.contains_key("x-api-key") || headers.contains_key(header::AUTHORIZATION)
            }
        };
        if !has_key {
            return Err(error(
                api,
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "no API key was sent (the mock accepts any key)",
                None,
            ));
        }
        // Anthropic refuses a request that does not say which API version it speaks; every SDK
        // sends one, so a client without it is a hand-made one missing it.
        if api == Api::Anthropic
            && headers
                .get("anthropic-version")
                .is_none_or(|v| v.as_bytes().trim_ascii().is_empty())
        {
            return Err(bad_header(
                api,
                "anthropic-version",
                "anthropic-version: header is required (for example 2023-06-01)",
            ));
        }
        let parsed: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).map_err(|e| {
                error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    &format!("request body is not valid JSON: {e}"),
                    None,
                )
            })?
        };
        let hash = fnv1a(config.seed, &[path.as_bytes(), body]);
        let mut rng = Rng::new(hash);
        // The draw is made whether or not the header forces a fault, so the content that
        // follows depends only on the seed, the path and the body.
        let u = rng.next_f64();
        let drawn = {
            let (a, b, c) = (
                config.error_rate_429,
                config.error_rate_429 + config.error_rate_500,
                config.error_rate_429 + config.error_rate_500 + config.timeout_rate,
            );
            if u < a {
                Some(Fault::RateLimited)
            } else if u < b {
                Some(Fault::ServerError)
            } else if u < c {
                Some(Fault::Timeout)
            } else {
                None
            }
        };
        let fault = match headers.get("x-mock-fault").map(|v| v.to_str()) {
            None => drawn,
            Some(Ok("429")) => Some(Fault::RateLimited),
            Some(Ok("500")) => Some(Fault::ServerError),
            Some(Ok("timeout")) => Some(Fault::Timeout),
            Some(Ok("malformed")) => Some(Fault::Malformed),
            Some(Ok("disconnect")) => Some(Fault::Disconnect),
            Some(_) => {
                return Err(bad_header(
                    api,
                    "x-mock-fault",
                    "x-mock-fault must be one of 429, 500, timeout, malformed, disconnect",
                ))
            }
        };
        let ms = MS_RANGE.as_str();
        let latency = header_value(api, headers, "x-mock-latency-ms", delay_from_ms, ms)?;
        let ttft = header_value(api, headers, "x-mock-ttft-ms", delay_from_ms, ms)?;
        let tokens_per_s = header_value(
            api,
            headers,
            "x-mock-tokens-per-s",
            |v| valid_token_rate(v).then_some(v),
            "0 (no pacing) or a rate of at least one token a day",
        )?;
        let ctx = Self {
            latency: latency.unwrap_or(config.latency),
            ttft: ttft.unwrap_or(config.ttft),
            tokens_per_s: tokens_per_s.unwrap_or(config.tokens_per_s),
            config,
            rng,
            fault,
            hash,
        };
        Ok((ctx, parsed))
    }

    /// Derives the content, ids and `created` from `canonical` instead of the raw body. An API
    /// whose streamed answer must end in the same object as the whole one passes the request
    /// without its stream fields. The fault was drawn already and stays as it was.
    pub(crate) fn reseed(&mut self, path: &str, canonical: &[u8]) {
        self.hash = fnv1a(self.config.seed, &[path.as_bytes(), canonical]);
        self.rng = Rng::new(self.hash);
    }

    /// A deterministic `created` timestamp (within 2023–2024).
    pub(crate) fn created(&self) -> u64 {
        1_700_000_000 + self.hash % 31_536_000
    }

    /// Waits out the latency, then answers with the fault if there is one that replaces the
    /// whole response (`Malformed` and `Disconnect` are left to the endpoint).
    pub(crate) async fn before_response(&self, api: Api) -> Result<(), Response> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        match self.fault {
            Some(Fault::RateLimited) => {
                let mut r = error(
                    api,
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    "Rate limit reached for requests (mock provider)",
                    None,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Err(r)
            }
            Some(Fault::ServerError) => Err(error(
                api,
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The server had an error while processing your request (mock provider)",
                None,
            )),
            Some(Fault::Timeout) => {
                tokio::time::sleep(self.config.timeout).await;
                Err(error(
                    api,
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "Request timed out (mock provider)",
                    None,
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Api {
    /// The API a path of the mock belongs to.
    fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }
}

/// What every endpoint reads of its request: the path, the headers and the whole body.
pub(crate) struct Incoming {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    pub(crate) fn parts(&self) -> (&str, &HeaderMap, &[u8]) {
        (&self.path, &self.headers, &self.body)
    }
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_string();
        // [`add_request_id`] has read the body within the limit already; this reads it again
        // from memory.
        let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|_| too_large(Api::of_path(&path)))?;
        Ok(Self {
            path,
            headers: parts.headers,
            body,
        })
    }
}

/// The answer to a body past [`MAX_REQUEST_BYTES`]: a 413 in the API's error shape.
fn too_large(api: Api) -> Response {
    error(
        api,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        &format!("request body is larger than {MAX_REQUEST_BYTES} bytes"),
        None,
    )
}

/// Gives every answer the provider's request id header (see [`with_request_id`]); a body past
/// [`MAX_REQUEST_BYTES`] is answered here, with a 413 in the API's error shape.
pub(crate) async fn add_request_id(
    State(config): State<Arc<MockConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let api = Api::of_path(&path);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return with_request_id(api, config.seed, &path, b"", too_large(api));
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    with_request_id(api, config.seed, &path, &body, response)
}

/// Adds the provider's request id header to `response`: `x-request-id` (OpenAI) or `request-id`
/// (Anthropic), `req_…`, derived from the seed, the path and the body like every other byte.
fn with_request_id(
    api: Api,
    seed: u64,
    path: &str,
    body: &[u8],
    mut response: Response,
) -> Response {
    let mut rng = Rng::new(fnv1a(seed, &[b"request-id", path.as_bytes(), body]));
    let (name, id) = match api {
        Api::OpenAi => (
            "x-request-id",
            format!("req_{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        ),
        Api::Anthropic => ("request-id", format!("req_{}", rng.alnum(24))),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static(name), value);
    }
    response
}

/// An error in the API's own shape, with the `code`/`message`/`field` every Sightline error has.
pub(crate) fn error(
    api: Api,
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let body = match api {
        Api::OpenAi => json!({"error": {
            "message": message,
            "type": openai_type(status),
            "param": field,
            "code": code,
            "field": field,
        }}),
        Api::Anthropic => json!({"type": "error", "error": {
            "type": anthropic_type(status),
            "message": message,
            "code": code,
            "field": field,
        }}),
    };
    (status, axum::Json(body)).into_response()
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        // OpenAI answers a missing or wrong key with this type too (code `invalid_api_key`).
        400 | 401 | 404 | 413 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// A 400 naming the field at fault.
pub(crate) fn bad_field(api: Api, field: &str, message: &str) -> Response {
    error(
        api,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        message,
        Some(field),
    )
}

/// The largest request body the mock reads: 32 MiB, the limit Anthropic documents for its
/// Messages API.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Answer for paths the mock does not serve.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        Api::OpenAi,
        StatusCode::NOT_FOUND,
        "unknown_url",
        &format!("Unknown request URL: {} (mock provider)", uri.path()),
        None,
    )
}

/// A JSON response; `Malformed` cuts the body in half, so it is no longer JSON.
pub(crate) fn json_response(ctx: &Ctx, body: &Value) -> Response {
    let mut bytes = body.to_string().into_bytes();
    if ctx.fault == Some(Fault::Malformed) {
        bytes.truncate(bytes.len() / 2);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// One server-sent event.
pub(crate) fn sse(event: Option<&str>, data: &str) -> Bytes {
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// Streams `head` at once, then `paced` one event per token after the time to first token, then
/// `tail`. `Malformed` replaces the middle event with one that is not JSON; `Disconnect` cuts the
/// connection half-way through the paced events.
pub(crate) fn event_stream(
    ctx: &Ctx,
    head: Vec<Bytes>,
    paced: Vec<Bytes>,
    tail: Vec<Bytes>,
) -> Response {
    let ttft = ctx.ttft;
    let interval = pace_interval(ctx.tokens_per_s);
    let mut paced = paced;
    let cut_at = match ctx.fault {
        Some(Fault::Disconnect) => Some(paced.len() / 2),
        Some(Fault::Malformed) => {
            let mid = paced.len() / 2;
            if let Some(event) = paced.get_mut(mid) {
                *event = Bytes::from_static(b"data: {\"choices\": [{\"delta\": {\"content\n\n");
            }
            None
        }
        _ => None,
    };
    if let Some(cut) = cut_at {
        paced.truncate(cut);
    }
    let cut = cut_at.is_some();
    let paced_len = paced.len();
    let items: Vec<(Option<u32>, Bytes)> = head
        .into_iter()
        .map(|b| (None, b))
        .chain(
            paced
                .into_iter()
                .enumerate()
                .map(|(i, b)| (Some(i as u32), b)),
        )
        .chain(
            if cut { Vec::new() } else { tail }
                .into_iter()
                .map(|b| (None, b)),
        )
        .collect();
    // The time to first token passes before the first event of any kind (a provider sends its
    // opening events together with the first token); paced events then follow on a fixed
    // schedule from the first one, so timer jitter does not accumulate.
    let stream = futures::stream::unfold(
        (items.into_iter(), false, None::<tokio::time::Instant>),
        move |(mut it, mut started, mut first_paced)| async move {
            let (index, bytes) = it.next()?;
            if !started {
                started = true;
                if !ttft.is_zero() {
                    tokio::time::sleep(ttft).await;
                }
            }
            if let Some(i) = index {
                let base = *first_paced.get_or_insert_with(tokio::time::Instant::now);
                if !interval.is_zero() && i > 0 {
                    let at = interval.checked_mul(i).and_then(|d| base.checked_add(d));
                    tokio::time::sleep_until(at.unwrap_or_else(|| base + MAX_DELAY)).await;
                }
            }
            Some((
                Ok::<Bytes, std::io::Error>(bytes),
                (it, started, first_paced),
            ))
        },
    );
    // The cut comes a little after the last event, so what was sent reaches the client first.
    let cut_off = futures::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::other(format!(
            "mock provider cut the stream after {paced_len} events"
        )))
    })
    .take(usize::from(cut));
    let stream = stream.chain(cut_off);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
