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

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anima_core::zone::{Pattern, is_internal};
use anima_proto::v1 as pb;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::{self, Body, Listener, Slot, answer};

/// Where the proxy listens, inside each sandbox's network namespace.
pub const PROXY_ADDRESS: &str = "127.0.0.1:3128";

/// How long connecting to a destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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

    /// Whether a zone names `address` at `port` itself.
    fn names_address(&self, address: std::net::IpAddr, port: u16) -> bool {
        self.patterns
            .iter()
            .any(|pattern| pattern.names_address(address, port))
    }

    /// Where a request for `host:port` may go, or why it may not.
    pub async fn destinations(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let refused = || format!("no network zone of this session allows {host}:{port}");
        if let Ok(address) = host.parse::<std::net::IpAddr>() {
            return if self.names_address(address, port) {
                Ok(vec![SocketAddr::new(address, port)])
            } else {
                Err(refused())
            };
        }
        if !self.patterns.iter().any(|p| p.allows_name(host, port)) {
            return Err(refused());
        }
        if let Some(address) = self
            .connect_to
            .get(&format!("{}:{port}", host.to_ascii_lowercase()))
        {
            return Ok(vec![*address]);
        }
        let resolved = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("{host} does not resolve"))?;
        // The host's own addresses are internal too: its services listen
        // there, and the proxy connects from the host.
        let own = host_addresses();
        let allowed: Vec<SocketAddr> = resolved
            .filter(|address| {
                let ip = address.ip();
                self.names_address(ip, port) || !(is_internal(ip) || own.contains(&ip))
            })
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "{host} resolves only to internal addresses, which no zone names"
            ));
        }
        Ok(allowed)
    }
}

/// The addresses of this host's interfaces.
fn host_addresses() -> Vec<std::net::IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            address
                .as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| {
                    address
                        .as_sockaddr_in6()
                        .map(|v6| std::net::IpAddr::V6(v6.ip()))
                })
        })
        .collect()
}

/// Serves the proxy on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, zones: Arc<Zones>) {
    proxy::serve(Listener::Tcp(listener), move |request, slot| {
        handle(request, zones.clone(), slot)
    })
    .await;
}

async fn handle(request: Request<Incoming>, zones: Arc<Zones>, slot: Slot) -> Response<Body> {
    let Some(authority) = request.uri().authority().cloned() else {
        return answer(
            StatusCode::BAD_REQUEST,
            "send absolute-form requests or CONNECT host:port to this proxy\n",
        );
    };
    let tunnel = request.method() == Method::CONNECT;
    if !tunnel && request.uri().scheme_str() != Some("http") {
        return answer(
            StatusCode::BAD_REQUEST,
            "use CONNECT for anything but plain http://\n",
        );
    }
    let port = match (authority.port_u16(), tunnel) {
        (Some(port), _) => port,
        (None, false) => 80,
        (None, true) => return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n"),
    };
    let destinations = match zones.destinations(authority.host(), port).await {
        Ok(destinations) => destinations,
        Err(why) => return answer(StatusCode::FORBIDDEN, format!("{why}\n")),
    };
    let Some(stream) = connect(&destinations).await else {
        return answer(
            StatusCode::BAD_GATEWAY,
            format!("{authority} cannot be reached\n"),
        );
    };
    if !tunnel {
        return proxy::pass_on(request, stream, authority.as_str())
            .await
            .unwrap_or_else(|err| {
                answer(StatusCode::BAD_GATEWAY, format!("{authority}: {err}\n"))
            });
    }
    tokio::spawn(async move {
        // The tunnel holds its connection's slot as long as it lasts.
        let _slot = slot;
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
