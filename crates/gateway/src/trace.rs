//! W3C trace context: a call joins the caller's trace when it sends a valid `traceparent`,
//! otherwise it starts a trace of its own.
//!
//! The trace ids the gateway makes start with the time in milliseconds (48 bits, as a UUIDv7
//! does) and end with 80 random bits, more than the 56 that W3C Trace Context level 2 asks of a
//! random trace id and that samplers read. The time prefix is what keeps storing them cheap:
//! the store's index of trace ids then takes each commit's new ids on its last pages instead of
//! on one page per call scattered across the index, which was nearly half of the pages every
//! commit of gateway calls wrote.

use sightline_model::{SpanId, TraceId};

/// Where the gateway's span sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (the caller's, or a new one).
    pub trace_id: TraceId,
    /// The caller's span, the parent of the gateway's.
    pub parent_span_id: Option<SpanId>,
    /// The gateway's own span.
    pub span_id: SpanId,
}

/// A new trace id: milliseconds since the Unix epoch in the first 6 bytes (big-endian), random
/// bytes after them.
fn new_trace_id() -> TraceId {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    let random: [u8; 10] = random_nonzero();
    id[6..].copy_from_slice(&random);
    TraceId(id)
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

/// Parses `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`); `None` when
/// it is absent or invalid (all-zero ids, version `ff`, wrong lengths), as the W3C spec says to
/// treat it.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    // Every field is lowercase hex (W3C Trace Context §3.2.2).
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if version.len() != 2
        || version == "ff"
        || !lower_hex(version)
        || flags.len() != 2
        || !lower_hex(flags)
        || trace.len() != 32
        || !lower_hex(trace)
        || parent.len() != 16
        || !lower_hex(parent)
        || (version == "00" && parts.next().is_some())
    {
        return None;
    }
    Some((
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(parent).ok()?,
    ))
}

impl TraceContext {
    /// The context for a request carrying `traceparent` (or none).
    pub fn from_traceparent(value: Option<&str>) -> Self {
        let span_id = SpanId(random_nonzero());
        match value.and_then(parse_traceparent) {
            Some((trace_id, parent)) => Self {
                trace_id,
                parent_span_id: Some(parent),
                span_id,
            },
            None => Self {
                trace_id: new_trace_id(),
                parent_span_id: None,
                span_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_is_joined() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_traceparent(Some(tp));
        assert_eq!(ctx.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_span_id.map(|s| s.to_hex()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(ctx.span_id.to_hex(), "00f067aa0ba902b7");
    }

    #[test]
    fn new_trace_ids_start_with_the_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let a = TraceContext::from_traceparent(None).trace_id;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = TraceContext::from_traceparent(None).trace_id;
        let ms = |id: TraceId| {
            let mut bytes = [0u8; 8];
            bytes[2..].copy_from_slice(&id.0[..6]);
            u64::from_be_bytes(bytes)
        };
        assert!(ms(a) >= before && ms(a) < before + 1_000);
        // Later ids sort after earlier ones, byte for byte, as the store's index orders them.
        assert!(a.0 < b.0);
        // The rest is random: two ids of the same millisecond differ.
        let ids: std::collections::HashSet<[u8; 16]> = (0..1000)
            .map(|_| TraceContext::from_traceparent(None).trace_id.0)
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn invalid_traceparent_starts_a_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
            let ctx = TraceContext::from_traceparent(Some(bad));
            assert!(ctx.parent_span_id.is_none());
        }
        // A future version may carry more fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }
}
