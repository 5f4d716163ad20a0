//! gRPC to services hosted in this same process (anima-ai and anima-agent
//! under `anima up`): each connection is an in-memory pipe served by the
//! services directly, so they never listen on a socket anyone could reach
//! and need no token.

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tonic::{
    service::Routes,
    transport::{Channel, Endpoint},
};

/// Bytes in flight per direction of one in-memory connection.
const PIPE_BYTES: usize = 1 << 20;

/// A channel whose every connection is served by `routes` in this process.
pub fn channel(routes: Routes) -> Channel {
    let router: Router = routes.into_axum_router();
    Endpoint::from_static("http://in-process.invalid").connect_with_connector_lazy(
        tower::service_fn(move |_: http::Uri| {
            let router = router.clone();
            async move {
                let (client, server) = tokio::io::duplex(PIPE_BYTES);
                tokio::spawn(async move {
                    let served = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(server), TowerToHyperService::new(router))
                        .await;
                    if let Err(err) = served {
                        tracing::debug!(%err, "in-process connection ended");
                    }
                });
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        }),
    )
}
