//! Turning a [`WriteBatch`] into rows before it reaches the writer thread.
//!
//! The writer thread is the one serial resource of the store, so everything that can happen in
//! parallel happens on the caller's side: JSON encoding of attributes, events and calls, the text
//! to index, the user/session context, and the deduplication of resource/scope pairs within the
//! batch. The batch's own allocations are freed there too. The writer only binds ready values.

use std::sync::Arc;

use sightline_model::{
    Attributes, CallStatus, LlmCall, LogRecord, Scope, Span, SpanId, StatusCode,
};

use super::codec::{encode_extra, json_err, to_i64, Fnv1a, SpanKey};
use super::dictionary::Dictionaries;
use super::packed::Packed;
use crate::error::StoreError;
use crate::WriteBatch;

/// Span attributes that name the end user, highest precedence first (used for spans that are not
/// LLM calls; a call's own `user_id` wins).
const USER_KEYS: &[&str] = &["langfuse.user.id", "user.id", "enduser.id"];
/// Span attributes that name the session, highest precedence first.
const SESSION_KEYS: &[&str] = &[
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
];

/// Resource/scope pairs compared by value before being serialized again.
const RECENT_ORIGINS: usize = 8;

/// A batch ready for the writer.
pub(crate) struct EncodedBatch {
    /// Distinct (resource JSON, scope JSON) pairs; spans and logs point into it.
    pub origins: Vec<(String, String)>,
    pub spans: Vec<EncodedSpan>,
    pub logs: Vec<EncodedLog>,
    /// OTLP metric points.
    pub metrics: Vec<super::metric_points::EncodedPoint>,
}

/// What one call contributes to its trace, session and user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallStats {
    pub error: bool,
    pub input: i64,
    pub output: i64,
    pub cost: Option<f64>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub start: i64,
    /// What the call contributes to the rollups.
    pub rollup: Option<Box<super::rollup::RollupEntry>>,
}

impl CallStats {
    pub fn of(call: &LlmCall) -> Self {
        Self {
            error: call.status == CallStatus::Error,
            input: call.usage.input_tokens.map_or(0, to_i64),
            output: call.usage.output_tokens.map_or(0, to_i64),
            cost: call.cost.as_ref().map(|c| c.total_usd),
            user: call.user_id.clone(),
            session: call.session_id.clone(),
            start: to_i64(call.start_time_unix_nano),
            rollup: Some(super::rollup::RollupEntry::of(call)),
        }
    }
}

/// An `llm_calls` row.
pub(crate) struct EncodedCall {
    pub stats: CallStats,
    pub service: String,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub operation: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub json: Packed,
    /// Text for the full-text index, handed to the indexer after commit.
    pub text: Arc<str>,
}

impl EncodedCall {
    pub fn new(call: &LlmCall, dictionaries: &Arc<Dictionaries>) -> Result<Self, StoreError> {
        Ok(Self {
            stats: CallStats::of(call),
            service: call.service_name.clone(),
            provider: call.provider.clone(),
            request_model: call.request_model.clone(),
            response_model: call.response_model.clone(),
            operation: call.operation.clone(),
            input_tokens: call.usage.input_tokens.map(to_i64),
            output_tokens: call.usage.output_tokens.map(to_i64),
            total_tokens: call.usage.total_tokens.map(to_i64),
            json: Packed::new(
                serde_json::to_string(call).map_err(|e| json_err("llm call", e))?,
                dictionaries,
            )?,
            text: call.searchable_text().into(),
        })
    }
}

/// A `spans` row plus what the summaries need from it.
pub(crate) struct EncodedSpan {
    pub key: SpanKey,
    pub parent: Option<SpanId>,
    pub start: i64,
    pub end: i64,
    pub kind: i32,
    pub status: i32,
    pub error: bool,
    pub name: String,
    pub service: String,
    pub status_message: String,
    pub origin: usize,
    pub attributes: Packed,
    pub extra: Option<Packed>,
    /// User and session named by the span's attributes.
    pub user: Option<String>,
    pub session: Option<String>,
    /// The call the pipeline normalized.
    pub call: Option<EncodedCall>,
}

/// A `logs` row.
pub(crate) struct EncodedLog {
    pub project: String,
    pub trace_id: Option<sightline_model::TraceId>,
    pub span_id: Option<SpanId>,
    /// A GenAI event that belongs on its span (`trace_id` and `span_id` are set).
    pub genai: bool,
    pub time: i64,
    pub severity_number: i32,
    pub service: String,
    pub severity_text: String,
    pub event_name: Option<String>,
    pub origin: usize,
    pub attributes: Packed,
    pub body: Option<Packed>,
    /// What the record says, hashed: the same record resent by a retrying client has the same.
    pub fingerprint: i64,
}

impl EncodedBatch {
    /// Encodes (and consumes) a batch. CPU work proportional to its size.
    pub fn new(batch: WriteBatch, dictionaries: &Arc<Dictionaries>) -> Result<Self, StoreError> {
        let mut origins = Origins::default();
        let mut spans = Vec::with_capacity(batch.spans.len());
        for item in batch.spans {
            let call = item
                .llm
                .as_ref()
                .map(|c| EncodedCall::new(c, dictionaries))
                .transpose()?;
            spans.push(encode_span(item.span, call, &mut origins, dictionaries)?);
        }
        let mut logs = Vec::with_capacity(batch.logs.len());
        for log in batch.logs {
            logs.push(encode_log(log, &mut origins, dictionaries)?);
        }
        Ok(Self {
            origins: origins.pairs,
            spans,
            logs,
            metrics: Vec::new(),
        })
    }

    /// Spans plus logs.
    pub fn len(&self) -> usize {
        self.spans.len() + self.logs.len() + self.metrics.len()
    }
}

#[derive(Default)]
struct Origins {
    recent: Vec<(Attributes, Scope, usize)>,
    pairs: Vec<(String, String)>,
}

impl Origins {
    /// The encoded resource and scope of origin `i` (an index [`Origins::index`] returned).
    fn pair(&self, i: usize) -> (&str, &str) {
        self.pairs
            .get(i)
            .map(|(r, s)| (r.as_str(), s.as_str()))
            .unwrap_or_default()
    }

    fn index(&mut self, resource: Attributes, scope: Scope) -> Result<usize, StoreError> {
        if let Some((_, _, i)) = self
            .recent
            .iter()
            .find(|(r, s, _)| *r == resource && *s == scope)
        {
            return Ok(*i);
        }
        let pair = (
            serde_json::to_string(&resource).map_err(|e| json_err("resource", e))?,
            serde_json::to_string(&scope).map_err(|e| json_err("scope", e))?,
        );
        let i = match self.pairs.iter().position(|p| *p == pair) {
            Some(i) => i,
            None => {
                self.pairs.push(pair);
                self.pairs.len() - 1
            }
        };
        if self.recent.len() >= RECENT_ORIGINS {
            self.recent.remove(0);
        }
        self.recent.push((resource, scope, i));
        Ok(i)
    }
}

fn first_str_attr(span: &Span, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| span.attr(k).and_then(|v| v.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Encodes one span (exposed for the writer, which re-encodes nothing but calls).
fn encode_span(
    span: Span,
    call: Option<EncodedCall>,
    origins: &mut Origins,
    dictionaries: &Arc<Dictionaries>,
) -> Result<EncodedSpan, StoreError> {
    let attributes = Packed::new(
        serde_json::to_string(&span.attributes).map_err(|e| json_err("span attributes", e))?,
        dictionaries,
    )?;
    let extra = encode_extra(&span)?
        .map(|e| Packed::new(e, dictionaries))
        .transpose()?;
    let user = first_str_attr(&span, USER_KEYS);
    let session = first_str_attr(&span, SESSION_KEYS);
    let Span {
        project,
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind,
        service,
        start_time_unix_nano,
        end_time_unix_nano,
        status,
        resource,
        scope,
        ..
    } = span;
    Ok(EncodedSpan {
        key: SpanKey {
            project,
            trace_id,
            span_id,
        },
        parent: parent_span_id,
        start: to_i64(start_time_unix_nano),
        end: to_i64(end_time_unix_nano),
        kind: kind.to_otlp(),
        status: status.code.to_otlp(),
        error: status.code == StatusCode::Error,
        name,
        service,
        status_message: status.message,
        origin: origins.index(resource, scope)?,
        attributes,
        extra,
        user,
        session,
        call,
    })
}

/// The hash that recognises a log record sent again: every field of the record and its origin.
/// What is hashed must never change, or records stored before would no longer match; numbers
/// and ids are hashed in their `to_string` form without allocating it.
fn log_fingerprint(
    log: &LogRecord,
    attributes: &str,
    body: Option<&str>,
    resource: &str,
    scope: &str,
) -> i64 {
    let mut h = Fnv1a::new();
    h.display(Some(&log.observed_time_unix_nano));
    h.display(log.trace_id.as_ref());
    h.display(log.span_id.as_ref());
    h.display(Some(&log.severity_number));
    for part in [
        log.severity_text.as_str(),
        log.event_name.as_deref().unwrap_or("\u{0}"),
        &log.service,
        attributes,
        body.unwrap_or("\u{0}"),
        resource,
        scope,
    ] {
        h.part(part);
    }
    h.finish()
}

fn encode_log(
    mut log: LogRecord,
    origins: &mut Origins,
    dictionaries: &Arc<Dictionaries>,
) -> Result<EncodedLog, StoreError> {
    let genai = log.is_genai_event() && log.trace_id.is_some();
    let attributes =
        serde_json::to_string(&log.attributes).map_err(|e| json_err("log attributes", e))?;
    let body = log
        .body
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| json_err("log body", e))?;
    let origin = origins.index(
        std::mem::take(&mut log.resource),
        std::mem::take(&mut log.scope),
    )?;
    let (resource, scope) = origins.pair(origin);
    let fingerprint = log_fingerprint(&log, &attributes, body.as_deref(), resource, scope);
    Ok(EncodedLog {
        genai,
        time: to_i64(log.time_unix_nano),
        severity_number: log.severity_number,
        origin,
        project: log.project,
        trace_id: log.trace_id,
        span_id: log.span_id,
        service: log.service,
        severity_text: log.severity_text,
        event_name: log.event_name,
        attributes: Packed::new(attributes, dictionaries)?,
        body: body.map(|b| Packed::new(b, dictionaries)).transpose()?,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::super::codec::fnv1a;
    use super::*;
    use crate::query::SpanWithCall;
    use serde_json::json;
    use sightline_model::{SpanKind, SpanStatus, TraceId};

    /// The fingerprint of a log record is stored, so it must stay what hashing the fields'
    /// strings gave when it was introduced.
    #[test]
    fn log_fingerprints_hash_the_fields_as_strings() {
        for (trace_id, span_id, event_name, body) in [
            (
                Some(TraceId([7; 16])),
                Some(SpanId([9; 8])),
                Some("gen_ai.user.message".to_string()),
                Some("{\"content\":\"hi\"}"),
            ),
            (None, None, None, None),
        ] {
            let log = LogRecord {
                project: "default".into(),
                service: "chat".into(),
                time_unix_nano: 1_700_000_000_000_000_001,
                observed_time_unix_nano: 1_700_000_000_000_000_002,
                severity_number: 9,
                severity_text: "INFO".into(),
                event_name,
                body: None,
                attributes: Attributes::new(),
                resource: Attributes::new(),
                scope: Scope::default(),
                trace_id,
                span_id,
            };
            let strings = fnv1a(&[
                &log.observed_time_unix_nano.to_string(),
                &log.trace_id.map(|t| t.to_string()).unwrap_or_default(),
                &log.span_id.map(|s| s.to_string()).unwrap_or_default(),
                &log.severity_number.to_string(),
                &log.severity_text,
                log.event_name.as_deref().unwrap_or("\u{0}"),
                &log.service,
                "{\"a\":1}",
                body.unwrap_or("\u{0}"),
                "{\"service.name\":\"chat\"}",
                "scope",
            ]);
            assert_eq!(
                log_fingerprint(
                    &log,
                    "{\"a\":1}",
                    body,
                    "{\"service.name\":\"chat\"}",
                    "scope"
                ),
                strings
            );
        }
    }

    fn span(service: &str, attrs: serde_json::Value) -> Span {
        let mut resource = Attributes::new();
        resource.insert("service.name".into(), json!(service));
        Span {
            project: "p".into(),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            name: "n".into(),
            kind: SpanKind::Client,
            service: service.into(),
            start_time_unix_nano: 5,
            end_time_unix_nano: 9,
            status: SpanStatus {
                code: StatusCode::Error,
                message: "m".into(),
            },
            attributes: attrs.as_object().cloned().unwrap(),
            resource,
            scope: Scope::default(),
            events: vec![],
            links: vec![],
        }
    }

    #[test]
    fn shares_origins_and_reads_context() {
        let batch = WriteBatch {
            spans: vec![
                SpanWithCall {
                    span: span("a", json!({ "user.id": "u", "enduser.id": "e" })),
                    llm: None,
                },
                SpanWithCall {
                    span: span("b", json!({ "gen_ai.conversation.id": "c" })),
                    llm: None,
                },
                SpanWithCall {
                    span: span("a", json!({ "session.id": "" })),
                    llm: None,
                },
            ],
            logs: vec![],
        };
        let e = EncodedBatch::new(batch, &Dictionaries::without_training()).unwrap();
        assert_eq!(e.origins.len(), 2);
        assert_eq!(
            e.spans.iter().map(|s| s.origin).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
        assert_eq!(e.spans[0].user.as_deref(), Some("u"));
        assert_eq!(e.spans[1].session.as_deref(), Some("c"));
        assert_eq!(e.spans[2].session, None, "empty ids are no ids");
        assert!(e.spans[0].error);
        assert_eq!((e.spans[0].start, e.spans[0].end), (5, 9));
        assert_eq!(e.len(), 3);
    }
}
