//! What the sandbox's two HTTP proxies share ([`crate::forward`] to `/mcp`,
//! [`crate::egress`] to the network zones): serving a listener one
//! sandbox holds with a bound number of connections and a deadline for
//! each request's head, answering refusals, and passing a request on over
//! a connection of its own without hop-by-hop headers.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream, UnixListener},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// Connections one sandbox may hold open through one proxy at once: it
/// waits for its own to end, the provider's descriptors are everyone's.
const MAX_CONNECTIONS: usize = 64;

/// How long a request's head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A response body of either kind (an answer here, or one passed on).
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A connection's place among the [`MAX_CONNECTIONS`]: held while it
/// lasts, and by whatever outlives it (a CONNECT tunnel).
pub type Slot = Arc<OwnedSemaphorePermit>;

/// A connection a proxy serves.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Where a proxy listens.
pub enum Listener {
    /// A socket file bound into the sandbox.
    Unix(UnixListener),
    /// A port inside the sandbox's network namespace.
    Tcp(TcpListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Self::Unix(listener) => Box::new(listener.accept().await?.0),
            Self::Tcp(listener) => Box::new(listener.accept().await?.0),
        })
    }
}

/// Serves `listener` until the task is aborted, each request answered by
/// `handle` (which may take over the connection with an upgrade, keeping
/// its [`Slot`] while it uses it).
pub async fn serve<H, F>(listener: Listener, handle: H)
where
    H: Fn(Request<Incoming>, Slot) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = open.clone().acquire_owned().await.map(Arc::new) else {
            return;
        };
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            // Out of descriptors, say: the listener stays served.
            Err(err) => {
                tracing::warn!(%err, "accepting a sandbox's connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let held = slot.clone();
            let service = service_fn(move |request| {
                let answered = handle(request, held.clone());
                async move { Ok::<_, Infallible>(answered.await) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%err, "a sandbox's connection ended");
            }
            drop(slot);
        });
    }
}

/// Passes `request` on over `stream` to the server at `host` (its `Host`
/// header), in origin form and without hop-by-hop headers.
pub async fn pass_on(
    mut request: Request<Incoming>,
    stream: TcpStream,
    host: &str,
) -> anyhow::Result<Response<Body>> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    *request.uri_mut() = path.parse()?;
    let headers = request.headers_mut();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.insert(header::HOST, HeaderValue::from_str(host)?);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "a passed-on connection ended");
        }
    });
    let mut response = sender.send_request(request).await?;
    for name in HOP_BY_HOP {
        response.headers_mut().remove(name);
    }
    Ok(response.map(BodyExt::boxed))
}

/// A plain-text answer given by the proxy itself.
pub fn answer(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(text.into())
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
