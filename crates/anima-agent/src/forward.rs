//! The sandbox's one way to anima-server: HTTP/1.1 over the forwarding
//! socket, passed on to the MCP endpoint for the path `/mcp` alone.
//!
//! It is an HTTP proxy rather than a byte pipe so that what reaches the
//! server's listener is only what agents are meant to use: a request for
//! any other path (gRPC's login, reflection, `/healthz`), or a method MCP
//! does not use, is answered here and never forwarded. Each request goes
//! out on a connection of its own, with the endpoint's `Host` and without
//! hop-by-hop headers, so nothing can upgrade it to another protocol.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpStream, UnixListener},
    sync::Semaphore,
};

/// Connections one sandbox may hold open at once.
const MAX_CONNECTIONS: usize = 32;

/// How long a request's head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The only path forwarded.
pub const MCP_PATH: &str = "/mcp";

/// Headers that concern one hop only; never passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves the socket until the task is aborted: each connection's
/// requests for [`MCP_PATH`] go to the HTTP server at `target`
/// (`host:port`).
pub async fn serve_mcp(listener: UnixListener, target: String) {
    // A sandbox holding many connections open waits for its own to end;
    // the provider's descriptors are shared by every session.
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors, say: the socket stays served.
            Err(err) => {
                tracing::warn!(%err, "accepting on a sandbox's MCP socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let target = target.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(request, target.clone()));
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "a sandbox's MCP connection ended");
            }
            drop(permit);
        });
    }
}

async fn forward(request: Request<Incoming>, target: String) -> Result<Response<Body>, Infallible> {
    if request.uri().path() != MCP_PATH {
        return Ok(answer(
            StatusCode::FORBIDDEN,
            "only /mcp is reachable from a sandbox\n",
        ));
    }
    if ![Method::GET, Method::POST, Method::DELETE].contains(request.method()) {
        return Ok(answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "MCP uses GET, POST and DELETE\n",
        ));
    }
    Ok(match pass_on(request, &target).await {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(%err, "forwarding a sandbox's MCP request failed");
            answer(
                StatusCode::BAD_GATEWAY,
                "the MCP endpoint cannot be reached\n",
            )
        }
    })
}

async fn pass_on(mut request: Request<Incoming>, target: &str) -> anyhow::Result<Response<Body>> {
    let path = request
        .uri()
        .path_and_query()
        .map_or(MCP_PATH, |path| path.as_str())
        .to_owned();
    *request.uri_mut() = path.parse()?;
    let headers = request.headers_mut();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.insert(header::HOST, HeaderValue::from_str(target)?);
    let stream = TcpStream::connect(target).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "an MCP endpoint connection ended");
        }
    });
    let mut response = sender.send_request(request).await?;
    for name in HOP_BY_HOP {
        response.headers_mut().remove(name);
    }
    Ok(response.map(BodyExt::boxed))
}

fn answer(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
