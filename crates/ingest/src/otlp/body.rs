//! OTLP/HTTP request bodies: content type, content encoding, and the bytes → model path.
//!
//! Every compressed body is read through a size cap: decompression stops as soon as its output
//! passes `max_decompressed_bytes`, and the output buffer never grows past the cap, so a
//! decompression bomb costs at most the cap in memory and the time to inflate that much.
//! Everything here is synchronous CPU work; the receivers run it on a blocking thread.

use std::io::Read;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sightline_model::{LogRecord, Span};

use super::decode::{self, Decoded, Limits};
use super::json::{self, Signal};
use crate::error::IngestError;

/// How a request body (and so its response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf (`application/x-protobuf`, `application/protobuf`).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

impl Encoding {
    /// Reads the `Content-Type` header (parameters such as `charset` are ignored).
    pub fn from_content_type(value: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = value else {
            return Err(IngestError::UnsupportedMediaType {
                message: "missing content-type; send application/x-protobuf or application/json"
                    .into(),
            });
        };
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            _ => Err(IngestError::UnsupportedMediaType {
                message: format!(
                    "unsupported content-type `{}`; send application/x-protobuf or application/json",
                    value.chars().take(100).collect::<String>()
                ),
            }),
        }
    }

    /// The `Content-Type` of bodies in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// How a request body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Not compressed.
    Identity,
    /// `gzip` (several members allowed).
    Gzip,
    /// `deflate`: zlib-wrapped deflate, as HTTP defines it.
    Deflate,
    /// `zstd`.
    Zstd,
}

impl ContentEncoding {
    /// Reads the `Content-Encoding` header; absent means identity.
    pub fn from_header(value: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            "zstd" => Ok(Self::Zstd),
            _ => Err(IngestError::UnsupportedMediaType {
                message: format!(
                    "unsupported content-encoding `{}`; send gzip, zstd, deflate or identity",
                    value.chars().take(100).collect::<String>()
                ),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Zstd => "zstd",
        }
    }
}

/// Decompresses `body`, refusing with [`IngestError::TooLarge`] as soon as the output passes
/// `max` bytes. An uncompressed body is returned as it is (its size was capped while reading it).
pub fn decompress(
    body: Bytes,
    encoding: ContentEncoding,
    max: usize,
) -> Result<Bytes, IngestError> {
    if encoding == ContentEncoding::Identity {
        if body.len() > max {
            return Err(too_large(max));
        }
        return Ok(body);
    }
    let reader = decoder(&body, encoding, max).map_err(|e| decompress_error(encoding, &e))?;
    let mut out = Vec::new();
    match read_capped(reader, body.len(), max, &mut out) {
        Ok(()) => Ok(Bytes::from(out)),
        Err(Capped::TooLarge) => Err(too_large(max)),
        Err(Capped::Read(e)) => Err(decompress_error(encoding, &e)),
    }
}

/// What could be decompressed of `body`, for a reader that keeps whatever it can: at most
/// `max` bytes (the rest is left unread, not refused), and the output decoded before an error
/// when there is any (a stream cut off mid-frame still yields its start). An error only when
/// nothing at all could be decoded. The same decoders and zstd window bound as [`decompress`].
pub fn decompress_prefix(
    body: &[u8],
    encoding: ContentEncoding,
    max: usize,
) -> Result<Vec<u8>, String> {
    let failed = |e: &std::io::Error| format!("body cannot be decoded as {}: {e}", encoding.name());
    let reader = decoder(body, encoding, max).map_err(|e| failed(&e))?;
    let mut out = Vec::new();
    match read_capped(reader, body.len(), max, &mut out) {
        Ok(()) => Ok(out),
        Err(Capped::TooLarge) => Ok(out),
        Err(Capped::Read(_)) if !out.is_empty() => Ok(out),
        Err(Capped::Read(e)) => Err(failed(&e)),
    }
}

/// A reader of `body` decompressed by `encoding` (not identity). A zstd frame may ask for a
/// window of up to 128 MiB, allocated before any output: allow what streaming compressors use
/// (8 MiB at their highest standard levels) and, for larger caps, windows up to the cap, but
/// never more — a larger window cannot be needed for an output that stops at the cap anyway.
fn decoder<'a>(
    body: &'a [u8],
    encoding: ContentEncoding,
    max: usize,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match encoding {
        ContentEncoding::Identity => Box::new(body),
        ContentEncoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        ContentEncoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(body)),
        ContentEncoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body)?;
            decoder.window_log_max(window_log_for(max))?;
            Box::new(decoder)
        }
    })
}

/// The largest zstd window log accepted for an output cap of `max` bytes: the cap rounded up to
/// a power of two, at least 2^23 (what standard compression levels use) and at most 2^31.
fn window_log_for(max: usize) -> u32 {
    let bits = usize::BITS - max.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(23, 31)
}

fn too_large(max: usize) -> IngestError {
    IngestError::TooLarge {
        message: format!("decompressed body exceeds {max} bytes (max_decompressed_bytes)"),
    }
}

fn decompress_error(encoding: ContentEncoding, e: &std::io::Error) -> IngestError {
    IngestError::invalid(
        "body",
        format!("failed to decompress {} body: {e}", encoding.name()),
    )
}

/// Why [`read_capped`] stopped early.
enum Capped {
    /// The output passed the cap; `out` holds what was read up to the cap.
    TooLarge,
    /// The decoder failed; `out` holds what it produced before.
    Read(std::io::Error),
}

/// Reads `reader` to the end into `out`, never holding more than `max` bytes (plus one read
/// chunk).
fn read_capped(
    mut reader: impl Read,
    compressed_len: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), Capped> {
    const CHUNK: usize = 64 * 1024;
    let initial = compressed_len.saturating_mul(4).max(CHUNK).min(max);
    out.reserve_exact(initial);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Capped::Read(e)),
        };
        let needed = out.len() + n;
        if needed > max {
            let room = max - out.len();
            out.reserve_exact(room);
            out.extend_from_slice(&chunk[..room]);
            return Err(Capped::TooLarge);
        }
        if needed > out.capacity() {
            // Grow geometrically, but never past the cap.
            let target = out.capacity().saturating_mul(2).max(needed).min(max);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// What prost said of a message it could not decode, kept short: for a value nested past its
/// recursion limit it names every level on the way.
pub(crate) fn decode_failure(message: &str, e: &prost::DecodeError) -> String {
    const MAX_CHARS: usize = 300;
    let text = e.to_string();
    let mut out = format!("failed to decode protobuf {message}: ");
    if text.chars().count() > MAX_CHARS {
        out.extend(text.chars().take(MAX_CHARS));
        out.push('…');
    } else {
        out.push_str(&text);
    }
    out
}

/// Reads a trace export request from protobuf or JSON bytes (already decompressed). For JSON, the
/// spans rejected while reading come back too (see [`json`]).
pub fn parse_traces(
    body: &[u8],
    encoding: Encoding,
    decoded_budget: usize,
) -> Result<json::ParsedJson<ExportTraceServiceRequest>, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map(|request| json::ParsedJson {
                request,
                rejected: Vec::new(),
            })
            .map_err(|e| {
                IngestError::invalid("body", decode_failure("ExportTraceServiceRequest", &e))
            }),
        Encoding::Json => json::parse(body, Signal::Traces, decoded_budget),
    }
}

/// Reads a logs export request from protobuf or JSON bytes (already decompressed).
pub fn parse_logs(
    body: &[u8],
    encoding: Encoding,
    decoded_budget: usize,
) -> Result<json::ParsedJson<ExportLogsServiceRequest>, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map(|request| json::ParsedJson {
                request,
                rejected: Vec::new(),
            })
            .map_err(|e| {
                IngestError::invalid("body", decode_failure("ExportLogsServiceRequest", &e))
            }),
        Encoding::Json => json::parse(body, Signal::Logs, decoded_budget),
    }
}

/// How many times the decompressed-size cap a protobuf request may take in memory once decoded.
/// Ordinary telemetry takes 2–4 times its wire size; a request of empty messages, a hundred.
pub const MAX_DECODED_PER_DECOMPRESSED: usize = 8;

/// Refuses, before it is decoded, a protobuf request with more `what` than `max` (the same
/// answer as the count check after decoding) or whose decoded form would take more than
/// [`MAX_DECODED_PER_DECOMPRESSED`] times `max_decompressed_bytes`. A body the walk cannot
/// follow passes, for prost to name its fault.
pub(crate) fn check_shape(
    shape: Option<super::shape::Shape>,
    what: &str,
    max: usize,
    limit_name: &str,
    limits: &Limits,
) -> Result<(), IngestError> {
    let Some(shape) = shape else {
        return Ok(());
    };
    if shape.items > max {
        return Err(IngestError::TooLarge {
            message: format!(
                "request has {} {what}, more than the limit of {max} ({limit_name})",
                shape.items
            ),
        });
    }
    check_decoded_size(shape.decoded_bytes, "about", limits)
}

/// [`check_shape`] for the protobuf request `body` of `signal`, walked by [`super::shape`] (the
/// gRPC receiver's codec calls it too).
pub(crate) fn check_request_shape(
    body: &[u8],
    signal: Signal,
    limits: &Limits,
) -> Result<(), IngestError> {
    match signal {
        Signal::Traces => check_shape(
            super::shape::traces(body),
            "spans",
            limits.max_spans_per_request,
            "max_spans_per_request",
            limits,
        ),
        Signal::Logs => check_shape(
            super::shape::logs(body),
            "log records",
            limits.max_log_records_per_request,
            "max_log_records_per_request",
            limits,
        ),
    }
}

/// The most memory a request may take decoded: [`MAX_DECODED_PER_DECOMPRESSED`] times
/// `max_decompressed_bytes`.
fn decoded_budget(limits: &Limits) -> usize {
    limits
        .max_decompressed_bytes
        .saturating_mul(MAX_DECODED_PER_DECOMPRESSED)
}

fn check_decoded_size(bytes: usize, how: &str, limits: &Limits) -> Result<(), IngestError> {
    if bytes > decoded_budget(limits) {
        return Err(IngestError::TooLarge {
            message: format!(
                "request would take {how} {} MiB of memory once decoded, more than \
                 {MAX_DECODED_PER_DECOMPRESSED} times max_decompressed_bytes ({} bytes); send \
                 fewer items per request",
                bytes >> 20,
                limits.max_decompressed_bytes
            ),
        });
    }
    Ok(())
}

/// Refuses, before it is decoded, a JSON request that could take more memory decoded than
/// [`decoded_budget`]: every object counted as the largest message (a bound, not an estimate,
/// since JSON does not say which message an object is before it is read).
pub(crate) fn check_json_shape(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
    let shape = super::shape::json(body);
    check_decoded_size(shape.decoded_bytes_at_most(body.len()), "up to", limits)
}

/// The checks a request of `signal` passes before it is decoded: its shape read from the
/// protobuf wire format, or its objects counted in JSON.
fn check_before_decoding(
    raw: &[u8],
    encoding: Encoding,
    signal: Signal,
    limits: &Limits,
) -> Result<(), IngestError> {
    match encoding {
        Encoding::Protobuf => check_request_shape(raw, signal, limits),
        Encoding::Json => check_json_shape(raw, limits),
    }
}

/// The whole OTLP/HTTP trace path from the bytes received to spans: decompress through the cap,
/// parse, check the span count, convert.
pub fn decode_trace_body(
    body: Bytes,
    encoding: Encoding,
    content_encoding: ContentEncoding,
    project: &str,
    limits: &Limits,
) -> Result<Decoded<Span>, IngestError> {
    let raw = decompress(body, content_encoding, limits.max_decompressed_bytes)?;
    check_before_decoding(&raw, encoding, Signal::Traces, limits)?;
    let parsed = parse_traces(&raw, encoding, decoded_budget(limits))?;
    drop(raw);
    decode::check_span_count(&parsed.request, limits)?;
    let mut decoded = decode::spans_from_owned_request(parsed.request, project, limits);
    decoded.apply_earlier_rejections(parsed.rejected);
    Ok(decoded)
}

/// The whole OTLP/HTTP logs path from the bytes received to log records.
pub fn decode_logs_body(
    body: Bytes,
    encoding: Encoding,
    content_encoding: ContentEncoding,
    project: &str,
    limits: &Limits,
) -> Result<Decoded<LogRecord>, IngestError> {
    let raw = decompress(body, content_encoding, limits.max_decompressed_bytes)?;
    check_before_decoding(&raw, encoding, Signal::Logs, limits)?;
    let parsed = parse_logs(&raw, encoding, decoded_budget(limits))?;
    drop(raw);
    decode::check_log_record_count(&parsed.request, limits)?;
    let mut decoded = decode::logs_from_owned_request(parsed.request, project, limits);
    decoded.apply_earlier_rejections(parsed.rejected);
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn values_nested_past_prost_limit_get_a_short_error() {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let mut value = AnyValue {
            value: Some(any_value::Value::IntValue(1)),
        };
        for _ in 0..150 {
            value = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        attributes: vec![KeyValue {
                            key: "deep".into(),
                            value: Some(value),
                            ..KeyValue::default()
                        }],
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let err = parse_traces(&request.encode_to_vec(), Encoding::Protobuf, usize::MAX)
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.contains("failed to decode protobuf ExportTraceServiceRequest"),
            "{message}"
        );
        assert!(message.len() < 600, "{} bytes: {message}", message.len());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type(Some("application/x-protobuf")),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/protobuf")),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type(Some("Application/JSON; charset=utf-8")),
            Ok(Encoding::Json)
        );
        let err = Encoding::from_content_type(Some("text/plain")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported content-type `text/plain`; send application/x-protobuf or application/json"
        );
        assert!(matches!(
            Encoding::from_content_type(None),
            Err(IngestError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn content_encodings() {
        assert_eq!(
            ContentEncoding::from_header(None),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_header(Some("GZIP")),
            Ok(ContentEncoding::Gzip)
        );
        assert_eq!(
            ContentEncoding::from_header(Some("zstd")),
            Ok(ContentEncoding::Zstd)
        );
        assert_eq!(
            ContentEncoding::from_header(Some("deflate")),
            Ok(ContentEncoding::Deflate)
        );
        assert!(matches!(
            ContentEncoding::from_header(Some("br")),
            Err(IngestError::UnsupportedMediaType { message }) if message.contains("`br`")
        ));
    }

    #[test]
    fn decompresses_each_encoding() {
        let data = b"hello otlp ".repeat(1000);
        assert_eq!(
            decompress(gzip(&data), ContentEncoding::Gzip, 1 << 20).unwrap(),
            data
        );
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            decompress(Bytes::from(z), ContentEncoding::Zstd, 1 << 20).unwrap(),
            data
        );
        let mut d = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(&data).unwrap();
        let d = d.finish().unwrap();
        assert_eq!(
            decompress(Bytes::from(d), ContentEncoding::Deflate, 1 << 20).unwrap(),
            data
        );
        assert_eq!(
            decompress(
                Bytes::from(data.clone()),
                ContentEncoding::Identity,
                1 << 20
            )
            .unwrap(),
            data
        );
    }

    #[test]
    fn output_is_capped() {
        let data = vec![0u8; 10_000];
        let err = decompress(gzip(&data), ContentEncoding::Gzip, 9_999).unwrap_err();
        assert_eq!(
            err,
            IngestError::TooLarge {
                message: "decompressed body exceeds 9999 bytes (max_decompressed_bytes)".into()
            }
        );
        assert_eq!(
            decompress(gzip(&data), ContentEncoding::Gzip, 10_000)
                .unwrap()
                .len(),
            10_000
        );
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert!(matches!(
            decompress(Bytes::from(z), ContentEncoding::Zstd, 5_000),
            Err(IngestError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_compressed_bodies_are_invalid_input() {
        let err = decompress(
            Bytes::from_static(b"not gzip at all"),
            ContentEncoding::Gzip,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            matches!(&err, IngestError::InvalidInput { field, message } if field == "body" && message.starts_with("failed to decompress gzip body")),
            "{err:?}"
        );
        let err = decompress(
            Bytes::from_static(b"not zstd"),
            ContentEncoding::Zstd,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(&err, IngestError::InvalidInput { .. }), "{err:?}");
    }

    #[test]
    fn zstd_window_is_bounded_by_the_cap() {
        assert_eq!(window_log_for(64 * 1024 * 1024), 26);
        assert_eq!(window_log_for(64 * 1024 * 1024 + 1), 27);
        assert_eq!(window_log_for(1), 23);
    }

    #[test]
    fn malformed_protobuf_says_what_failed() {
        let err = parse_traces(b"\x0a\xff\xff\xff", Encoding::Protobuf, usize::MAX).unwrap_err();
        let IngestError::InvalidInput { field, message } = err else {
            panic!()
        };
        assert_eq!(field, "body");
        assert!(
            message.starts_with("failed to decode protobuf ExportTraceServiceRequest: "),
            "{message}"
        );
        let err = parse_logs(b"\x0a\x05abc", Encoding::Protobuf, usize::MAX).unwrap_err();
        assert!(
            err.to_string()
                .contains("failed to decode protobuf ExportLogsServiceRequest"),
            "{err}"
        );
    }
}
