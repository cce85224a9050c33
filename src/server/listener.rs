//! Accepting connections, with the time limits a server facing a network needs: a client has
//! `HEADERS_WITHIN` to send a request's head (a slow one cannot hold connections open doing
//! nothing), and a handler `ANSWER_WITHIN` to answer (streams, once begun, go on). On stop,
//! new connections are refused, requests under way finish (for at most `GRACE`), and
//! streams end.

use std::future::Future;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::problem::Problem;

const HEADERS_WITHIN: Duration = Duration::from_secs(10);
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` completes; `closing` is told then (streams end).
pub async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>, closing: watch::Sender<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors, or a connection reset before it was taken: wait a
                    // little rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connections.spawn(connection(stream, app.clone(), closing.subscribe()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

/// One client's connection (keep-alive: one request after another).
async fn connection(stream: tokio::net::TcpStream, app: Router, closing: watch::Receiver<bool>) {
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADERS_WITHIN)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        _ = super::until_closing(closing) => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

/// The middleware bounding a handler's time (a stream's, only until it begins).
pub async fn answer_in_time(request: Request, next: Next) -> Response {
    match tokio::time::timeout(ANSWER_WITHIN, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {} s (the store is slow or busy)", ANSWER_WITHIN.as_secs()),
        )
        .into_response(),
    }
}
