//! Serving HTTP to the open network, for the gateway and the trail API alike.
//! `axum::serve` sets no timer, so a client that never finishes its headers, or
//! keeps a connection idle, or trickles a body, holds a connection (and a file
//! descriptor) forever: a handful of such clients starve the server. Here every
//! connection has a deadline for each request's headers (which also bounds the
//! idle time between keep-alive requests) and every request one for being read
//! and answered.

#[cfg(feature = "hostile")]
pub mod hostile;

/// Percent-encodes everything but RFC 3986's unreserved characters: a value
/// fit for one path segment or query component (eventIDs hold ':', '/', ';', '?').
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
#[cfg(feature = "hostile")]
pub mod probe;

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The deadlines every connection and request gets; flags or `SEALTRAIL_HTTP_*`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take to send a request's headers, and longest a
    /// kept-alive connection may sit idle, in milliseconds.
    #[arg(
        long,
        env = "SEALTRAIL_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub header_timeout_ms: u64,
    /// Longest one request may take from its headers to its answer, reading
    /// the body included, in milliseconds (a backstop above the services' own).
    #[arg(
        long,
        env = "SEALTRAIL_HTTP_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub http_request_timeout_ms: u64,
}

/// Serves `app` until `shutdown` resolves, then lets requests in progress finish
/// (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let request_limit = Duration::from_millis(limits.http_request_timeout_ms);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let answer =
                    tokio::time::timeout(request_limit, app.oneshot(request.map(Body::new))).await;
                Ok::<Response, std::convert::Infallible>(match answer {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => (
                        StatusCode::REQUEST_TIMEOUT,
                        [(axum::http::header::CONNECTION, "close")],
                        "the request took too long to arrive and be answered\n",
                    )
                        .into_response(),
                })
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("requests still in progress after 10 s; closing");
        }
    }
}
