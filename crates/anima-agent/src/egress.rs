//! The egress proxy: a sandbox's only way to the network, through its
//! session's network zones. It listens inside the sandbox's network
//! namespace (`HTTP_PROXY`/`HTTPS_PROXY` point there) and takes HTTP
//! `CONNECT` (for TLS and any TCP) and plain HTTP requests in absolute
//! form.
//!
//! A destination is reached only if a zone allows its `host:port`. The
//! proxy resolves names itself and connects to the address it checked (no
//! rebinding between check and connect); a name never leads to an
//! internal address (loopback, private, link-local, metadata, …) unless a
//! zone names that address (an address pattern, or `connect_to`).
//! Everything refused is answered `403` with the reason.

use std::{collections::HashMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anima_core::zone::{Pattern, is_internal};
use anima_proto::v1 as pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

/// Where the proxy listens, inside each sandbox's network namespace.
pub const PROXY_ADDRESS: &str = "127.0.0.1:3128";

/// Connections one sandbox may hold open through the proxy at once.
const MAX_CONNECTIONS: usize = 64;

/// How long a request's head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to a destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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

/// A session's zones, parsed.
#[derive(Debug, Default)]
pub struct Zones {
    patterns: Vec<Pattern>,
    /// `host:port` (lower-case) → address.
    connect_to: HashMap<String, SocketAddr>,
}

impl Zones {
    /// The zones of a provisioning request; a pattern or address that does
    /// not parse is an error naming it.
    pub fn parse(zones: &[pb::EgressZone]) -> Result<Self, String> {
        let mut parsed = Self::default();
        for zone in zones {
            for text in &zone.allow {
                parsed.patterns.push(
                    Pattern::parse(text).map_err(|err| format!("zone {}: {err}", zone.name))?,
                );
            }
            for (host, target) in &zone.connect_to {
                let address = target
                    .parse()
                    .map_err(|_| format!("zone {}: connect_to {target:?}", zone.name))?;
                parsed.connect_to.insert(host.to_ascii_lowercase(), address);
            }
        }
        Ok(parsed)
    }

    /// Where a request for `host:port` may go, or why it may not.
    pub async fn destinations(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = host.parse::<std::net::IpAddr>() {
            return if self.patterns.iter().any(|p| p.names_address(address, port)) {
                Ok(vec![SocketAddr::new(address, port)])
            } else {
                Err(format!(
                    "no network zone of this session allows {host}:{port}"
                ))
            };
        }
        if !self.patterns.iter().any(|p| p.allows_name(host, port)) {
            return Err(format!(
                "no network zone of this session allows {host}:{port}"
            ));
        }
        if let Some(address) = self
            .connect_to
            .get(&format!("{}:{port}", host.to_ascii_lowercase()))
        {
            return Ok(vec![*address]);
        }
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("{host} does not resolve"))?
            .collect();
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .filter(|address| {
                !is_internal(address.ip())
                    || self
                        .patterns
                        .iter()
                        .any(|p| p.names_address(address.ip(), port))
            })
            .copied()
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "{host} resolves only to internal addresses, which no zone names"
            ));
        }
        Ok(allowed)
    }
}

/// Serves the proxy on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, zones: Arc<Zones>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accepting on a sandbox's egress proxy");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let zones = zones.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, zones.clone()));
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%err, "a sandbox's proxy connection ended");
            }
            drop(permit);
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    zones: Arc<Zones>,
) -> Result<Response<Body>, Infallible> {
    let Some(authority) = request.uri().authority().cloned() else {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            "send absolute-form requests or CONNECT host:port to this proxy\n".into(),
        ));
    };
    let tunnel = request.method() == Method::CONNECT;
    if !tunnel && request.uri().scheme_str() != Some("http") {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            "use CONNECT for anything but plain http://\n".into(),
        ));
    }
    let port = match (authority.port_u16(), tunnel) {
        (Some(port), _) => port,
        (None, false) => 80,
        (None, true) => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "CONNECT needs host:port\n".into(),
            ));
        }
    };
    let destinations = match zones.destinations(authority.host(), port).await {
        Ok(destinations) => destinations,
        Err(why) => return Ok(answer(StatusCode::FORBIDDEN, format!("{why}\n"))),
    };
    let Some(stream) = connect(&destinations).await else {
        return Ok(answer(
            StatusCode::BAD_GATEWAY,
            format!("{authority} cannot be reached\n"),
        ));
    };
    Ok(if tunnel {
        tokio::spawn(async move {
            match hyper::upgrade::on(request).await {
                Ok(upgraded) => {
                    let mut upgraded = TokioIo::new(upgraded);
                    let mut stream = stream;
                    let _ = tokio::io::copy_bidirectional(&mut upgraded, &mut stream).await;
                }
                Err(err) => tracing::debug!(%err, "a CONNECT was not upgraded"),
            }
        });
        Response::new(Empty::new().map_err(|never| match never {}).boxed())
    } else {
        match pass_on(request, stream, &authority).await {
            Ok(response) => response,
            Err(err) => answer(StatusCode::BAD_GATEWAY, format!("{authority}: {err}\n")),
        }
    })
}

async fn connect(destinations: &[SocketAddr]) -> Option<TcpStream> {
    for destination in destinations {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination)).await
        {
            return Some(stream);
        }
    }
    None
}

async fn pass_on(
    mut request: Request<Incoming>,
    stream: TcpStream,
    authority: &hyper::http::uri::Authority,
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
    headers.insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "a proxied connection ended");
        }
    });
    let mut response = sender.send_request(request).await?;
    for name in HOP_BY_HOP {
        response.headers_mut().remove(name);
    }
    Ok(response.map(BodyExt::boxed))
}

fn answer(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(allow: &[&str], connect_to: &[(&str, &str)]) -> Zones {
        Zones::parse(&[pb::EgressZone {
            name: "z".into(),
            allow: allow.iter().map(|p| (*p).to_owned()).collect(),
            connect_to: connect_to
                .iter()
                .map(|(host, target)| ((*host).to_owned(), (*target).to_owned()))
                .collect(),
        }])
        .expect("zones")
    }

    #[tokio::test]
    async fn names_lead_only_where_the_zone_says() {
        let zones = zones(
            &["example.test:443", "localhost:5432", "10.0.0.0/8:80"],
            &[("example.test:443", "127.0.0.1:4000")],
        );
        assert_eq!(
            zones.destinations("example.test", 443).await,
            Ok(vec!["127.0.0.1:4000".parse().expect("address")])
        );
        // A name the zone allows, resolving to loopback, is not reached.
        assert!(zones.destinations("localhost", 5432).await.is_err());
        assert!(zones.destinations("127.0.0.1", 5432).await.is_err());
        assert!(zones.destinations("169.254.169.254", 80).await.is_err());
        assert!(zones.destinations("example.test", 80).await.is_err());
        assert!(zones.destinations("10.1.2.3", 80).await.is_ok());
        assert!(
            Zones::default()
                .destinations("example.test", 443)
                .await
                .is_err()
        );
    }
}
