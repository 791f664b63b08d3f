//! Error handling through the whole router, against stores that fail on purpose: every failure is
//! a JSON `{"error":{code,message,field}}` with the right status, and parameters are checked before
//! the store is asked anything.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use common::failing_store::{FailingStore, Failure};
use common::{get, send};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn all_reads() -> Vec<String> {
    vec![
        "/api/v1/traces".into(),
        format!("/api/v1/traces/{TRACE}"),
        "/api/v1/calls".into(),
        "/api/v1/sessions".into(),
        "/api/v1/sessions/s-1".into(),
        "/api/v1/users".into(),
    ]
}

#[tokio::test]
async fn unavailable_store_is_503_with_retry_after() {
    let router = sightline_serve::router(FailingStore::new(Failure::Unavailable));
    for uri in all_reads() {
        let reply = get(&router, &uri).await;
        reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
        assert_eq!(reply.headers["retry-after"], "1", "{uri}");
    }
}

#[tokio::test]
async fn internal_failures_are_500_without_details() {
    let router = sightline_serve::router(FailingStore::new(Failure::Internal));
    for uri in all_reads() {
        let reply = get(&router, &uri).await;
        reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", None);
        assert_eq!(reply.json()["error"]["message"], "internal error");
        assert!(
            !reply.text().contains("secret"),
            "{uri} leaked: {}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn store_rejected_cursor_is_400_naming_cursor() {
    let router = sightline_serve::router(FailingStore::new(Failure::BadCursor));
    for uri in [
        "/api/v1/traces",
        "/api/v1/calls",
        "/api/v1/sessions",
        "/api/v1/users",
    ] {
        get(&router, &format!("{uri}?cursor=garbage"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("cursor"));
    }
}

#[tokio::test]
async fn bad_parameters_are_rejected_before_the_store_is_asked() {
    let store = FailingStore::new(Failure::Internal);
    let router = sightline_serve::router(store.clone());
    let cases = [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=maybe", "status"),
        ("from=garbage", "from"),
        ("to=yesterday", "to"),
        ("from=2000&to=1000", "from"),
        ("attr.=x", "attr"),
        ("service=a&service=b", "service"),
    ];
    for list in [
        "/api/v1/traces",
        "/api/v1/calls",
        "/api/v1/sessions",
        "/api/v1/users",
    ] {
        for (query, field) in cases {
            get(&router, &format!("{list}?{query}")).await.assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some(field),
            );
        }
    }
    for bad in [
        "xyz",
        "0af7651916cd43dd8448eb211c80319",
        "0af7651916cd43dd8448eb211c80319cc",
        "zzf7651916cd43dd8448eb211c80319c",
        "00000000000000000000000000000000",
        "%FF%FE",
    ] {
        get(&router, &format!("/api/v1/traces/{bad}"))
            .await
            .assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some("trace_id"),
            );
    }
    get(&router, "/api/v1/sessions/%FF%FE").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("session_id"),
    );
    let mut request = Request::get("/api/v1/traces").body(Body::empty()).unwrap();
    request.headers_mut().insert(
        "x-sightline-project",
        axum::http::HeaderValue::from_bytes(b"\xff").unwrap(),
    );
    send(&router, request).await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("project"),
    );
    assert_eq!(store.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let router = sightline_serve::router(FailingStore::new(Failure::Internal));
    get(&router, "/api/v1/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    get(&router, "/api/v1/sessions/")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    let post = Request::post("/api/v1/traces").body(Body::empty()).unwrap();
    send(&router, post).await.assert_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
}

#[tokio::test]
async fn healthz_does_not_touch_the_store() {
    let store = FailingStore::new(Failure::Internal);
    let router = sightline_serve::router(store.clone());
    let reply = get(&router, "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert_eq!(store.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn readyz_is_503_when_the_store_fails() {
    for failure in [Failure::Unavailable, Failure::Internal] {
        let router = sightline_serve::router(FailingStore::new(failure));
        get(&router, "/readyz").await.assert_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            None,
        );
    }
}

#[tokio::test(start_paused = true)]
async fn readyz_is_503_when_the_store_hangs() {
    let router = sightline_serve::router(FailingStore::new(Failure::Hang));
    get(&router, "/readyz").await.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        None,
    );
}

#[tokio::test]
async fn the_router_merges_with_one_that_has_a_fallback() {
    let other = axum::Router::new()
        .route("/v1/traces", axum::routing::post(|| async { "ingested" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "ui") });
    let router = sightline_serve::router(FailingStore::new(Failure::Internal)).merge(other);
    assert_eq!(get(&router, "/healthz").await.text(), "ok");
    assert_eq!(get(&router, "/elsewhere").await.text(), "ui");
    get(&router, "/api/v1/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
}
