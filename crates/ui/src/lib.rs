//! Sightline's web UI, embedded in the binary.
//!
//! The single-page app in `ui/` (TypeScript, Preact, uPlot, bundled by Vite) is built by this
//! crate's build script and every output file is compiled in with `include_bytes!`, so
//! `sightline serve` needs no files beside it. [`router`] serves them: hashed files under
//! `/assets/` are cached for a year, everything else is revalidated, and any other `GET` path
//! that does not look like a file answers `index.html`, so deep links (`/traces/<id>`,
//! `/sessions/<id>?…`) load the app, which routes on the client. The router only sets a
//! fallback, so it merges under the API and the OTLP receivers without shadowing them.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// `Cache-Control` of content-hashed files: their name changes whenever their content does.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html` and unhashed files: always revalidate.
const REVALIDATE: &str = "no-cache";

/// The UI as a fallback-only router, to be merged after every other route.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

/// The embedded file at `path` (relative, no leading slash).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    assets::ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(bytes) = asset(path) {
        let cache = if path.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return file(bytes, content_type(path), cache, &method);
    }
    // A missing file (anything with an extension in its last segment) is a real 404; every other
    // path is a client-side route.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') || path.starts_with("api/") {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match asset("index.html") {
        Some(bytes) => file(bytes, content_type("index.html"), REVALIDATE, &method),
        None => (StatusCode::NOT_FOUND, "the web UI was not built\n").into_response(),
    }
}

fn file(
    bytes: &'static [u8],
    content_type: &'static str,
    cache: &'static str,
    method: &Method,
) -> Response {
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The media type of a built file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(method: Method, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = router()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn root_serves_index_html_revalidated() {
        let (status, headers, body) = get(Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], REVALIDATE);
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("<div id=\"app\">"), "{html}");
        assert!(
            html.contains("/assets/"),
            "index.html loads hashed assets: {html}"
        );
    }

    #[tokio::test]
    async fn deep_links_fall_back_to_index_html() {
        let index = asset("index.html").unwrap();
        for path in [
            "/traces",
            "/traces/0123456789abcdef0123456789abcdef",
            "/sessions/s-1?x=1",
        ] {
            let (status, headers, body) = get(Method::GET, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(body, index, "{path}");
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_with_their_type() {
        let (name, bytes) = assets::ASSETS
            .iter()
            .find(|(name, _)| name.starts_with("assets/") && name.ends_with(".js"))
            .expect("the build emits a hashed script");
        let (status, headers, body) = get(Method::GET, &format!("/{name}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(body, *bytes);
        let (_, headers, body) = get(Method::HEAD, &format!("/{name}")).await;
        assert!(body.is_empty());
        assert_eq!(headers[header::CONTENT_LENGTH], bytes.len().to_string());
    }

    #[tokio::test]
    async fn missing_files_and_other_methods_are_errors() {
        assert_eq!(
            get(Method::GET, "/assets/nope-123.js").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::GET, "/favicon.ico").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::GET, "/api/v2/traces").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(Method::POST, "/traces").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
