//! The sandbox's one way to anima-server: HTTP/1.1 over the forwarding
//! socket, passed on to the MCP endpoint for the path `/mcp` alone.
//!
//! It is an HTTP proxy rather than a byte pipe so that what reaches the
//! server's listener is only what agents are meant to use: a request for
//! any other path (gRPC's login, reflection, `/healthz`), or a method MCP
//! does not use, is answered here and never forwarded. Each request goes
//! out on a connection of its own, with the endpoint's `Host` and without
//! hop-by-hop headers, so nothing can upgrade it to another protocol.

use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use tokio::net::{TcpStream, UnixListener};

use crate::proxy::{self, Body, Listener, answer};

/// The only path forwarded.
pub const MCP_PATH: &str = "/mcp";

/// Serves the socket until the task is aborted: each connection's
/// requests for [`MCP_PATH`] go to the HTTP server at `target`
/// (`host:port`).
pub async fn serve_mcp(listener: UnixListener, target: String) {
    proxy::serve(Listener::Unix(listener), move |request, _slot| {
        forward(request, target.clone())
    })
    .await;
}

async fn forward(request: Request<Incoming>, target: String) -> Response<Body> {
    if request.uri().path() != MCP_PATH {
        return answer(
            StatusCode::FORBIDDEN,
            "only /mcp is reachable from a sandbox\n",
        );
    }
    if ![Method::GET, Method::POST, Method::DELETE].contains(request.method()) {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "MCP uses GET, POST and DELETE\n",
        );
    }
    let passed = match TcpStream::connect(&target).await {
        Ok(stream) => proxy::pass_on(request, stream, &target).await,
        Err(err) => Err(err.into()),
    };
    passed.unwrap_or_else(|err| {
        tracing::warn!(%err, "forwarding a sandbox's MCP request failed");
        answer(
            StatusCode::BAD_GATEWAY,
            "the MCP endpoint cannot be reached\n",
        )
    })
}
