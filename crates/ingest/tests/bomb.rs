//! A decompression bomb (1 GiB of zeros, gzipped to about 1 MiB) is refused with 413 without
//! Sightline allocating anywhere near 1 GiB, and so is a bomb of empty spans that fits the byte
//! caps but would take gigabytes decoded. A counting allocator measures the peak; this file
//! holds a single test so that nothing else allocates meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use bytes::Bytes;
use common::*;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sightline_ingest::otlp::body::{decompress, ContentEncoding};
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::otlp::http::router;
use sightline_ingest::{IngestError, PipelineConfig};
use tower::ServiceExt;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;

/// Measures the peak bytes allocated above the current level while `f` runs.
async fn peak_during<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn gzip_of_zeros(total: usize) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; MIB];
    for _ in 0..total / MIB {
        e.write_all(&chunk).unwrap();
    }
    Bytes::from(e.finish().unwrap())
}

#[tokio::test]
async fn one_gib_bomb_is_refused_within_the_cap() {
    let limits = Limits::default();
    let cap = limits.max_decompressed_bytes;
    assert_eq!(cap, 64 * MIB);
    let bomb = gzip_of_zeros(1024 * MIB);
    assert!(
        bomb.len() < limits.max_body_bytes,
        "bomb is {} bytes",
        bomb.len()
    );

    // the decompressor alone
    let (result, peak) =
        peak_during(async { decompress(bomb.clone(), ContentEncoding::Gzip, cap) }).await;
    assert_eq!(
        result.unwrap_err(),
        IngestError::TooLarge {
            message: format!("decompressed body exceeds {cap} bytes (max_decompressed_bytes)")
        }
    );
    assert!(
        peak <= cap + 4 * MIB,
        "peak allocation {} MiB for a {} MiB cap",
        peak / MIB,
        cap / MIB
    );
    // and the counter does see the output buffer, which fills up to the cap before refusing
    assert!(peak >= cap / 2, "peak allocation {} MiB", peak / MIB);

    // the whole HTTP path with the default limits
    let store = RecordingStore::new();
    let app = router(pipeline(store.clone(), PipelineConfig::default()), limits);
    let ((status, body), peak) = peak_during(post_gzip(&app, bomb)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&body).contains("decompressed body exceeds 67108864 bytes"));
    assert!(
        peak <= cap + 8 * MIB,
        "peak allocation {} MiB for a {} MiB cap",
        peak / MIB,
        cap / MIB
    );
    assert!(store.spans().is_empty());

    // A bomb of messages rather than bytes: 8 Mi empty spans, 16 MiB on the wire and 16 KiB
    // gzipped, well within every byte cap, would take gigabytes decoded. It is refused from
    // its shape before prost builds it.
    let mut scope = Vec::with_capacity(16 * MIB);
    for _ in 0..8 * MIB {
        scope.extend_from_slice(b"\x12\x00");
    }
    let mut resource = vec![0x12];
    push_varint(&mut resource, scope.len());
    resource.extend_from_slice(&scope);
    drop(scope);
    let mut raw = vec![0x0a];
    push_varint(&mut raw, resource.len());
    raw.extend_from_slice(&resource);
    drop(resource);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&raw).unwrap();
    drop(raw);
    let bomb = Bytes::from(e.finish().unwrap());
    let limits = Limits {
        max_spans_per_request: usize::MAX,
        ..Limits::default()
    };
    let app = router(pipeline(store.clone(), PipelineConfig::default()), limits);
    let ((status, body), peak) = peak_during(post_gzip(&app, bomb)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        String::from_utf8_lossy(&body).contains("memory once decoded"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        peak <= cap + 8 * MIB,
        "peak allocation {} MiB for a {} MiB cap",
        peak / MIB,
        cap / MIB
    );
    assert!(store.spans().is_empty());
}

/// Posts a gzipped protobuf trace export; the answer's status and body.
async fn post_gzip(app: &axum::Router, body: Bytes) -> (StatusCode, Bytes) {
    let request = Request::post("/v1/traces")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(request).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}
