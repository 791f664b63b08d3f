//! How values are laid out in rows, shared by the writer and the readers: integer clamping, ids,
//! the span encoding, cursors, the full-text query quoting, and error mapping.
//!
//! Spans keep their identity, timing and status in columns, their attributes as one JSON object
//! (so `json_extract` can filter on them), their events and links as one JSON document that is
//! NULL in the common case of neither, and their resource and scope as a shared `origins` row.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sightline_model::{
    Attributes, Event, LlmCall, Scope, Span, SpanId, SpanKind, SpanStatus, StatusCode, TraceId,
};

use crate::error::StoreError;
use crate::query::SpanWithCall;

/// A u64 as SQLite's signed integer, saturating (times past year 2262 and absurd token counts).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer back to u64; negative values (only from corruption) become 0.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Maps a SQLite failure to the store's error, retryable when the disk is full or the database is
/// busy.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

/// JSON encoding failure (only possible for maps with non-string keys, which the model has none
/// of) reported as an internal error.
pub(crate) fn json_err(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn trace_id_from(bytes: &[u8]) -> Result<TraceId, StoreError> {
    TraceId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("stored trace id: {e}")))
}

pub(crate) fn span_id_from(bytes: &[u8]) -> Result<SpanId, StoreError> {
    SpanId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("stored span id: {e}")))
}

/// Identity of a span (and of its call) in storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SpanKey {
    pub project: String,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// Events and links of a span as stored (borrowed for writing).
#[derive(Serialize)]
pub(crate) struct ExtraRef<'a> {
    #[serde(skip_serializing_if = "<[Event]>::is_empty")]
    pub events: &'a [Event],
    #[serde(skip_serializing_if = "<[sightline_model::Link]>::is_empty")]
    pub links: &'a [sightline_model::Link],
}

/// Events and links of a span as read back.
#[derive(Deserialize, Default)]
pub(crate) struct Extra {
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub links: Vec<sightline_model::Link>,
}

/// The `extra` column for a span: NULL when it has neither events nor links.
pub(crate) fn encode_extra(span: &Span) -> Result<Option<String>, StoreError> {
    if span.events.is_empty() && span.links.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&ExtraRef {
        events: &span.events,
        links: &span.links,
    })
    .map(Some)
    .map_err(|e| json_err("span events", e))
}

/// FNV-1a, 64-bit: a stable hash for deduplicating resource/scope pairs across restarts.
pub(crate) fn fnv1a(parts: &[&str]) -> i64 {
    let mut h = Fnv1a::new();
    for part in parts {
        h.part(part);
    }
    h.finish()
}

/// [`fnv1a`] fed one part at a time. Parts that are formatted values (numbers, ids) are hashed
/// as they are formatted, with the bytes `to_string` would give, so no string is allocated
/// for them; each part ends with the same `0xff` separator.
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Hashes one part and its separator.
    pub(crate) fn part(&mut self, s: &str) {
        self.bytes(s.as_bytes());
        self.bytes(&[0xff]);
    }

    /// Hashes the `Display` form of a value as one part (nothing but the separator for `None`).
    pub(crate) fn display(&mut self, v: Option<impl std::fmt::Display>) {
        if let Some(v) = v {
            // Writing into the hasher cannot fail.
            let _ = std::fmt::Write::write_fmt(self, format_args!("{v}"));
        }
        self.bytes(&[0xff]);
    }

    pub(crate) fn finish(&self) -> i64 {
        self.0 as i64
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// The columns `read_span` expects, in order, from `spans` aliased as `s`.
pub(crate) const SPAN_COLUMNS: &str = "s.span_id, s.parent_span_id, s.start_ns, s.end_ns, \
     s.kind, s.status, s.service, s.name, s.status_message, s.origin, s.attributes, s.extra";

/// The row id of the trace `trace_id` of `project` (its `trace_ref`), if stored.
pub(crate) fn trace_ref(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM traces WHERE project = ?1 AND trace_id = ?2")
        .and_then(|mut st| {
            st.query_row(rusqlite::params![project, trace_id.as_bytes()], |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(db_err)
}

/// Decodes resource/scope pairs once per query.
#[derive(Default)]
pub(crate) struct OriginReader {
    cache: HashMap<i64, (Attributes, Scope)>,
}

impl OriginReader {
    pub fn get(&mut self, conn: &Connection, id: i64) -> Result<(Attributes, Scope), StoreError> {
        if let Some(hit) = self.cache.get(&id) {
            return Ok(hit.clone());
        }
        let row: Option<(String, String)> = conn
            .prepare_cached("SELECT resource, scope FROM origins WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db_err)?;
        let (resource, scope) =
            row.ok_or_else(|| StoreError::Corrupt(format!("missing origin {id}")))?;
        let resource: Attributes =
            serde_json::from_str(&resource).map_err(|e| json_err("stored resource", e))?;
        let scope: Scope = serde_json::from_str(&scope).map_err(|e| json_err("stored scope", e))?;
        self.cache.insert(id, (resource.clone(), scope.clone()));
        Ok((resource, scope))
    }
}

/// A span row (columns as in [`SPAN_COLUMNS`]) of trace `trace_id` of `project`, decoded.
pub(crate) fn read_span(
    conn: &Connection,
    origins: &mut OriginReader,
    project: &str,
    trace_id: TraceId,
    row: &Row<'_>,
) -> Result<Span, StoreError> {
    let get = |e: rusqlite::Error| db_err(e);
    let span_id = span_id_from(&row.get::<_, Vec<u8>>(0).map_err(get)?)?;
    let parent_span_id = row
        .get::<_, Option<Vec<u8>>>(1)
        .map_err(get)?
        .map(|b| span_id_from(&b))
        .transpose()?;
    let attributes = super::packed::required(row, 10, "attributes")?;
    let attributes: Attributes =
        serde_json::from_str(&attributes).map_err(|e| json_err("stored attributes", e))?;
    let extra = match super::packed::column(row, 11, "events")? {
        Some(s) => serde_json::from_str::<Extra>(&s).map_err(|e| json_err("stored events", e))?,
        None => Extra::default(),
    };
    let (resource, scope) = origins.get(conn, row.get(9).map_err(get)?)?;
    Ok(Span {
        project: project.to_string(),
        trace_id,
        span_id,
        parent_span_id,
        name: row.get(7).map_err(get)?,
        kind: SpanKind::from_otlp(row.get(4).map_err(get)?),
        service: row.get(6).map_err(get)?,
        start_time_unix_nano: to_u64(row.get(2).map_err(get)?),
        end_time_unix_nano: to_u64(row.get(3).map_err(get)?),
        status: SpanStatus {
            code: StatusCode::from_otlp(row.get(5).map_err(get)?),
            message: row.get(8).map_err(get)?,
        },
        attributes,
        resource,
        scope,
        events: extra.events,
        links: extra.links,
    })
}

/// The columns `read_log_event` expects, from `logs` aliased as `l`.
pub(crate) const LOG_EVENT_COLUMNS: &str =
    "l.span_id, l.time_ns, l.event_name, l.attributes, l.body";

/// A GenAI log row decoded as the span id it belongs to and the event it adds.
pub(crate) fn read_log_event(row: &Row<'_>) -> Result<(Option<SpanId>, Event), StoreError> {
    let get = |e: rusqlite::Error| db_err(e);
    let span_id = row
        .get::<_, Option<Vec<u8>>>(0)
        .map_err(get)?
        .map(|b| span_id_from(&b))
        .transpose()?;
    let attributes = super::packed::required(row, 3, "log attributes")?;
    let attributes: Attributes =
        serde_json::from_str(&attributes).map_err(|e| json_err("stored log attributes", e))?;
    let body = super::packed::column(row, 4, "log body")?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| json_err("stored log body", e))?;
    Ok((
        span_id,
        Event {
            time_unix_nano: to_u64(row.get(1).map_err(get)?),
            name: row
                .get::<_, Option<String>>(2)
                .map_err(get)?
                .unwrap_or_default(),
            attributes,
            body,
        },
    ))
}

/// The stored call in column `idx` of `row` (a zstd frame or JSON text), decoded.
pub(crate) fn read_call(row: &Row<'_>, idx: usize) -> Result<LlmCall, StoreError> {
    let json = super::packed::required(row, idx, "llm call")?;
    serde_json::from_str(&json).map_err(|e| json_err("stored llm call", e))
}

/// Orders a trace's spans: parents before children, siblings (and roots) by start time then span
/// id. Spans whose parent is missing count as roots; spans caught in a parent cycle come last.
pub(crate) fn order_spans(mut spans: Vec<SpanWithCall>) -> Vec<SpanWithCall> {
    spans.sort_by(|a, b| {
        (a.span.start_time_unix_nano, a.span.span_id)
            .cmp(&(b.span.start_time_unix_nano, b.span.span_id))
    });
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span.span_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.span.parent_span_id.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    let mut stack = Vec::new();
    let starts = roots.into_iter().chain(0..spans.len());
    for start in starts {
        if visited[start] {
            continue;
        }
        stack.push(start);
        while let Some(i) = stack.pop() {
            if visited[i] {
                continue;
            }
            visited[i] = true;
            order.push(i);
            stack.extend(children[i].iter().rev().copied().filter(|&c| !visited[c]));
        }
    }
    let mut slots: Vec<Option<SpanWithCall>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// Which list a cursor belongs to, so that a cursor from one list is refused by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorKind {
    Traces = b't' as isize,
    Calls = b'c' as isize,
    Sessions = b's' as isize,
    Users = b'u' as isize,
}

/// A keyset position: the sort time and row id of the last row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub time: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self, kind: CursorKind) -> String {
        let mut bytes = Vec::with_capacity(17);
        bytes.push(kind as u8);
        bytes.extend_from_slice(&self.time.to_be_bytes());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(kind: CursorKind, s: &str) -> Result<Self, StoreError> {
        let invalid = |message: &str| StoreError::InvalidInput {
            field: "cursor",
            message: message.to_string(),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| invalid("not a cursor returned by this list"))?;
        let (tag, rest) = bytes.split_first().ok_or_else(|| invalid("empty cursor"))?;
        if *tag != kind as u8 || rest.len() != 16 {
            return Err(invalid("not a cursor returned by this list"));
        }
        let mut time = [0u8; 8];
        let mut id = [0u8; 8];
        time.copy_from_slice(&rest[..8]);
        id.copy_from_slice(&rest[8..]);
        Ok(Self {
            time: i64::from_be_bytes(time),
            id: i64::from_be_bytes(id),
        })
    }
}

/// Page size clamped to 1..=1000.
pub(crate) fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, 1000)
}

/// The user's full-text query as a safe FTS5 expression: every whitespace-separated word becomes a
/// quoted phrase (so `AND`, `(`, `"`, `:`, `-`, `^` and `NEAR` are plain text), all of which must
/// match; a trailing `*` keeps prefix search. Words with no letter or digit are dropped. `None`
/// when nothing searchable is left.
pub(crate) fn fts_query(q: &str) -> Option<String> {
    let mut parts = Vec::new();
    // FTS5 strings cannot hold NUL: it separates words, as whitespace does.
    let words = q
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|w| !w.is_empty());
    for raw in words {
        let (word, prefix) = match raw.strip_suffix('*') {
            Some(w) => (w.trim_end_matches('*'), true),
            None => (raw, false),
        };
        if !word.chars().any(char::is_alphanumeric) {
            continue;
        }
        let mut part = String::with_capacity(word.len() + 3);
        part.push('"');
        part.push_str(&word.replace('"', "\"\""));
        part.push('"');
        if prefix {
            part.push('*');
        }
        parts.push(part);
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" "))
    }
}

/// The JSON path of a top-level attribute key, or an error for keys SQLite's JSON paths cannot
/// express (a double quote inside the key).
pub(crate) fn attr_path(key: &str) -> Result<String, StoreError> {
    if key.contains('"') || key.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "attrs",
            message: format!("unsupported attribute key `{key}`"),
        });
    }
    Ok(format!("$.\"{key}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swc(id: u8, parent: Option<u8>, start: u64) -> SpanWithCall {
        SpanWithCall {
            span: Span {
                project: "p".into(),
                trace_id: TraceId([1; 16]),
                span_id: SpanId([id; 8]),
                parent_span_id: parent.map(|p| SpanId([p; 8])),
                name: format!("s{id}"),
                kind: SpanKind::Internal,
                service: "svc".into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1,
                status: SpanStatus::default(),
                attributes: Attributes::new(),
                resource: Attributes::new(),
                scope: Scope::default(),
                events: vec![],
                links: vec![],
            },
            llm: None,
        }
    }

    fn ids(spans: &[SpanWithCall]) -> Vec<u8> {
        spans.iter().map(|s| s.span.span_id.0[0]).collect()
    }

    #[test]
    fn orders_parents_before_children_and_siblings_by_start() {
        // root 1 (t=10) with children 3 (t=30) and 2 (t=20); 2 has child 4 (t=5, clock skew).
        let spans = vec![
            swc(3, Some(1), 30),
            swc(4, Some(2), 5),
            swc(1, None, 10),
            swc(2, Some(1), 20),
        ];
        assert_eq!(ids(&order_spans(spans)), vec![1, 2, 4, 3]);
    }

    #[test]
    fn orphans_are_roots_and_cycles_are_kept() {
        let spans = vec![
            swc(5, Some(6), 50), // cycle 5 <-> 6
            swc(6, Some(5), 40),
            swc(2, Some(9), 20), // parent never arrived
            swc(1, None, 10),
        ];
        let ordered = order_spans(spans);
        assert_eq!(ordered.len(), 4);
        assert_eq!(ids(&ordered)[..2], [1, 2]);
        let mut tail = ids(&ordered)[2..].to_vec();
        tail.sort_unstable();
        assert_eq!(tail, vec![5, 6]);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            time: 1_700_000_000_000_000_000,
            id: 42,
        };
        let s = c.encode(CursorKind::Traces);
        assert_eq!(Cursor::decode(CursorKind::Traces, &s).unwrap(), c);
        for bad in ["", "!!!", "dGVzdA", &c.encode(CursorKind::Calls)] {
            let err = Cursor::decode(CursorKind::Traces, bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::InvalidInput {
                        field: "cursor",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn fts_query_quotes_every_word() {
        assert_eq!(fts_query("foo AND (").as_deref(), Some("\"foo\" \"AND\""));
        assert_eq!(
            fts_query("say \"hi\"").as_deref(),
            Some("\"say\" \"\"\"hi\"\"\"")
        );
        assert_eq!(fts_query("pref*").as_deref(), Some("\"pref\"*"));
        assert_eq!(fts_query("( ) * \" -"), None);
        assert_eq!(fts_query("   "), None);
        // FTS5 strings cannot hold NUL: it separates words.
        assert_eq!(fts_query("a\0b").as_deref(), Some("\"a\" \"b\""));
        assert_eq!(fts_query("\0").as_deref(), None);
    }

    #[test]
    fn clamps_and_converts() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(5000), 1000);
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_u64(-5), 0);
        assert_ne!(fnv1a(&["a", "bc"]), fnv1a(&["ab", "c"]));
        // Parts hashed as they are formatted give what hashing their strings gives.
        let mut h = Fnv1a::new();
        h.display(Some(&1_700_000_000_123_456_789u64));
        h.display(None::<u64>);
        h.part("x");
        assert_eq!(h.finish(), fnv1a(&["1700000000123456789", "", "x"]));
        assert!(attr_path("a\"b").is_err());
        assert_eq!(attr_path("gen_ai.system").unwrap(), "$.\"gen_ai.system\"");
    }
}
