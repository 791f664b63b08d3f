//! OTLP receivers and the ingest pipeline.
//!
//! Data flows one way through this crate: [`otlp`] reads a request (HTTP or gRPC, protobuf or
//! JSON, compressed or not) into model items, validating each one on its own so that one bad
//! span never costs the good ones; [`pipeline`] enriches them into LLM calls, bounds the memory
//! they hold, and writes them through the store seam, answering only once they are durable.
//! Errors are one type, [`IngestError`], split the way OTLP clients act on them (permanent,
//! retry later), and mapped to HTTP and gRPC in one place, [`otlp::status`].

pub mod error;
pub mod otlp;
pub mod pipeline;

pub use error::IngestError;
pub use pipeline::{IngestReceipt, Pipeline, PipelineConfig, PipelineStats};
