//! Mounting `/debug/pprof` in an axum application: the framework-neutral
//! `memprof::http::handle_with_body` answers the requests, axum serves them.
//!
//! ```sh
//! cargo run --release -p memprof-example-axum                      # 127.0.0.1:6060
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
//! ```
//!
//! The first argument is the address to serve at. `handle_with_body` builds
//! a profile synchronously (and `?seconds=N` waits N seconds), so it runs on
//! tokio's blocking pool, not on the async workers.
//!
//! A package of its own (`examples/axum/Cargo.toml`, a workspace member), as
//! in an application: memprof with the `http` feature, axum and tokio. So
//! the library's own builds and examples never compile axum.

use std::alloc::System;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

#[global_allocator]
static ALLOC: memprof::Sampled<System> = memprof::Sampled::new(System);

/// Every `/debug/pprof` request goes to memprof.
async fn pprof(method: Method, uri: Uri, body: Bytes) -> Response {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let answer = tokio::task::spawn_blocking(move || {
        memprof::http::handle_with_body(method.as_str(), &target, &body)
    })
    .await;
    let Ok(r) = answer else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, r.body).into_response();
    for (name, value) in r.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The application's own route: something to profile.
async fn hello() -> String {
    let words: Vec<String> = (0..1000).map(|i| format!("word{i}")).collect();
    words.join(" ")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6060".into());
    let app = Router::new()
        .route("/", get(hello))
        .route("/debug/pprof", any(pprof))
        .route("/debug/pprof/", any(pprof))
        .route("/debug/pprof/{*profile}", any(pprof));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving http://{}/debug/pprof/", listener.local_addr()?);
    axum::serve(listener, app).await
}
