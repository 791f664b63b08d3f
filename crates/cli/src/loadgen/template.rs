//! Encoded traces that can be sent again and again as new traces.
//!
//! Building a realistic trace (text, JSON messages, attributes) costs far more than sending it, so
//! the generator encodes each built trace once, as the protobuf of an `ExportTraceServiceRequest`
//! holding one `ResourceSpans`, and remembers where in those bytes the identifiers and timestamps
//! lie. Sending it again copies the bytes, writes a fresh random trace id, XORs every span and
//! parent id with one fresh random key (which keeps parent links intact and ids unique) and shifts
//! every timestamp by the same amount. Trace ids and span ids are fixed-width bytes fields and
//! timestamps fixed64 fields, so the patched bytes stay valid protobuf; and because the request's
//! only field is repeated, concatenating several encoded traces is itself a valid request.

use anyhow::{bail, Context};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rand::rngs::SmallRng;
use rand::RngCore;

use super::traffic::BuiltTrace;

/// Protobuf wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// One field of a protobuf message: its number, wire type and where its value lies.
struct Field {
    number: u64,
    wire: u8,
    /// Start of the value (for LEN fields, of the payload after the length).
    start: usize,
    /// End of the value.
    end: usize,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> anyhow::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).context("truncated varint")?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("varint longer than 10 bytes")
}

/// The top-level fields of the message in `buf[start..end]`.
fn fields(buf: &[u8], start: usize, end: usize) -> anyhow::Result<Vec<Field>> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let key = read_varint(buf, &mut pos)?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        let value_start = pos;
        let (value_start, value_end) = match wire {
            VARINT => {
                read_varint(buf, &mut pos)?;
                (value_start, pos)
            }
            I64 => (value_start, value_start + 8),
            I32 => (value_start, value_start + 4),
            LEN => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)?;
                (pos, pos + len)
            }
            other => bail!("unsupported wire type {other} for field {number}"),
        };
        if value_end > end {
            bail!("field {number} runs past the end of its message");
        }
        pos = value_end;
        out.push(Field {
            number,
            wire,
            start: value_start,
            end: value_end,
        });
    }
    Ok(out)
}

/// A trace encoded once, with the places to patch when it is sent again.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    bytes: Vec<u8>,
    trace_ids: Vec<usize>,
    span_ids: Vec<usize>,
    times: Vec<usize>,
    /// The span ids as encoded, so that no key maps one of them to zero.
    own_span_ids: Vec<u64>,
    span_count: usize,
    end_ns: u64,
}

/// What writing a template produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// The new trace id.
    pub trace_id: [u8; 16],
    /// Spans in the trace.
    pub spans: usize,
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

fn write_u64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

impl Template {
    /// Encodes a built trace and finds its identifiers and timestamps.
    pub(crate) fn encode(trace: &BuiltTrace) -> anyhow::Result<Self> {
        let bytes = ExportTraceServiceRequest {
            resource_spans: vec![trace.resource_spans.clone()],
        }
        .encode_to_vec();
        let mut t = Self {
            trace_ids: Vec::new(),
            span_ids: Vec::new(),
            times: Vec::new(),
            own_span_ids: Vec::new(),
            span_count: 0,
            end_ns: trace.end_ns,
            bytes: Vec::new(),
        };
        for rs in fields(&bytes, 0, bytes.len())? {
            if rs.number != 1 || rs.wire != LEN {
                continue;
            }
            for ss in fields(&bytes, rs.start, rs.end)? {
                if ss.number != 2 || ss.wire != LEN {
                    continue;
                }
                for span in fields(&bytes, ss.start, ss.end)? {
                    if span.number == 2 && span.wire == LEN {
                        t.add_span(&bytes, span.start, span.end)?;
                    }
                }
            }
        }
        if t.span_count != trace.span_count {
            bail!(
                "encoded trace has {} spans, built {}",
                t.span_count,
                trace.span_count
            );
        }
        t.bytes = bytes;
        Ok(t)
    }

    fn add_span(&mut self, bytes: &[u8], start: usize, end: usize) -> anyhow::Result<()> {
        self.span_count += 1;
        for field in fields(bytes, start, end)? {
            match (field.number, field.wire, field.end - field.start) {
                (1, LEN, 16) => self.trace_ids.push(field.start),
                (2, LEN, 8) => {
                    self.span_ids.push(field.start);
                    self.own_span_ids.push(read_u64(bytes, field.start));
                }
                (4, LEN, 8) => self.span_ids.push(field.start),
                (7 | 8, I64, _) => self.times.push(field.start),
                (11, LEN, _) => {
                    for ev in fields(bytes, field.start, field.end)? {
                        if ev.number == 1 && ev.wire == I64 {
                            self.times.push(ev.start);
                        }
                    }
                }
                (1 | 2 | 4, ..) => bail!("span field {} has an unexpected size", field.number),
                _ => {}
            }
        }
        Ok(())
    }

    /// Spans in the trace.
    pub(crate) fn span_count(&self) -> usize {
        self.span_count
    }

    /// Encoded size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends the trace to `out` as a new trace ending at `end_ns`.
    pub(crate) fn write(&self, rng: &mut SmallRng, end_ns: u64, out: &mut Vec<u8>) -> Written {
        let mut trace_id = [0u8; 16];
        rng.fill_bytes(&mut trace_id);
        trace_id[15] |= 1; // never all zeros
        let key = loop {
            let k = rng.next_u64();
            if k != 0 && !self.own_span_ids.contains(&k) {
                break k;
            }
        };
        let delta = end_ns.wrapping_sub(self.end_ns);
        let base = out.len();
        out.extend_from_slice(&self.bytes);
        let buf = &mut out[base..];
        for &at in &self.trace_ids {
            buf[at..at + 16].copy_from_slice(&trace_id);
        }
        for &at in &self.span_ids {
            let id = read_u64(buf, at) ^ key;
            write_u64(buf, at, id);
        }
        for &at in &self.times {
            let t = read_u64(buf, at).wrapping_add(delta);
            write_u64(buf, at, t);
        }
        Written {
            trace_id,
            spans: self.span_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::traffic::{build, Shape, TEMPLATE_EPOCH_NS};
    use super::*;
    use rand::SeedableRng;
    use std::collections::{HashMap, HashSet};

    fn shape() -> Shape {
        Shape {
            users: 10,
            sessions: 20,
            content: true,
            salt: 1,
        }
    }

    #[test]
    fn written_traces_are_the_built_trace_with_new_ids_and_times() {
        let mut rng = SmallRng::seed_from_u64(5);
        let built = build(&mut rng, &shape());
        let template = Template::encode(&built).unwrap();
        let end = 1_760_000_000_000_000_000;
        let mut body = Vec::new();
        let a = template.write(&mut rng, end, &mut body);
        let b = template.write(&mut rng, end + 1_000, &mut body);
        assert_ne!(a.trace_id, b.trace_id);

        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(request.resource_spans.len(), 2);
        let original: Vec<_> = built
            .resource_spans
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .collect();
        let shift = end - built.end_ns;
        let mut seen_span_ids = HashSet::new();
        for (k, rs) in request.resource_spans.iter().enumerate() {
            assert_eq!(rs.resource, built.resource_spans.resource);
            let spans: Vec<_> = rs.scope_spans.iter().flat_map(|s| &s.spans).collect();
            assert_eq!(spans.len(), original.len());
            let ids: HashMap<&[u8], &[u8]> = original
                .iter()
                .zip(&spans)
                .map(|(o, n)| (o.span_id.as_slice(), n.span_id.as_slice()))
                .collect();
            for (o, n) in original.iter().zip(&spans) {
                let trace_id = if k == 0 { a.trace_id } else { b.trace_id };
                assert_eq!(n.trace_id, trace_id);
                assert!(seen_span_ids.insert(n.span_id.clone()));
                assert_ne!(n.span_id, o.span_id);
                if o.parent_span_id.is_empty() {
                    assert!(n.parent_span_id.is_empty());
                } else {
                    assert_eq!(n.parent_span_id, ids[o.parent_span_id.as_slice()]);
                }
                let extra = if k == 0 { 0 } else { 1_000 };
                assert_eq!(
                    n.start_time_unix_nano,
                    o.start_time_unix_nano + shift + extra
                );
                assert_eq!(n.end_time_unix_nano, o.end_time_unix_nano + shift + extra);
                for (oe, ne) in o.events.iter().zip(&n.events) {
                    assert_eq!(ne.time_unix_nano, oe.time_unix_nano + shift + extra);
                }
                assert_eq!(n.attributes, o.attributes);
                assert_eq!(n.name, o.name);
            }
        }
        assert!(built.end_ns > TEMPLATE_EPOCH_NS);
    }

    #[test]
    fn every_built_trace_encodes_as_a_template() {
        let mut rng = SmallRng::seed_from_u64(6);
        for _ in 0..200 {
            let built = build(&mut rng, &shape());
            let t = Template::encode(&built).unwrap();
            assert_eq!(t.span_count(), built.span_count);
            assert_eq!(t.trace_ids.len(), built.span_count);
            assert!(t.times.len() >= 2 * built.span_count);
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let mut pos = 0;
        assert!(read_varint(&[0xff; 11], &mut pos).is_err());
        assert!(fields(&[0x0a, 0x05, 0x01], 0, 3).is_err());
        assert!(fields(&[0x0b], 0, 1).is_err());
    }
}
