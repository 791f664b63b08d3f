//! OTLP receivers and the ingest pipeline.
