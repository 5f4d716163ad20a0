//! The one listener: gRPC, `/mcp` and `/healthz` on one address, in
//! plaintext on loopback or over TLS (rustls) with a certificate that
//! `SIGHUP` reloads.
//!
//! Plaintext beyond loopback is refused unless asked for: passwords,
//! session tokens and agents' MCP tokens would cross the network readable
//! by anyone on the path.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use axum::Router;
use axum_server::{Handle, accept::NoDelayAcceptor, tls_rustls::RustlsConfig};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::ServerConfig;

/// How long open connections (live streams among them) get to finish once
/// a stop is asked for, before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a connection may stay open before its first request: a
/// client that connects and says nothing must not hold a socket for ever.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the listener is asked for TLS on the command line; `anima up` and
/// `anima-server` both take these.
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain: the listener then speaks only TLS (gRPC,
    /// /mcp and /healthz alike); SIGHUP reloads it [env: ANIMA_TLS_CERT].
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [env: ANIMA_TLS_KEY].
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Listen in plaintext beyond loopback, e.g. behind a proxy that
    /// terminates TLS; without it (or TLS), only loopback addresses are
    /// accepted [env: ANIMA_INSECURE_LISTEN=true].
    #[arg(long)]
    insecure_listen: bool,
}

impl TlsArgs {
    /// Puts what was given over the configuration's values.
    pub fn apply(self, config: &mut ServerConfig) {
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls_cert = cert.display().to_string();
            config.tls_key = key.display().to_string();
        }
        config.insecure_listen |= self.insecure_listen;
    }
}

/// A bound listener, plaintext or TLS.
pub struct Listener {
    tcp: std::net::TcpListener,
    tls: Option<Tls>,
}

/// The certificate in use, the files it is reloaded from, and the signal
/// that asks for it: followed from the start, so a `SIGHUP` that arrives
/// before serving begins reloads rather than ending the process.
struct Tls {
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    hangups: Signal,
}

impl Listener {
    /// Binds `config.listen`, with TLS when `tls_cert` and `tls_key` are
    /// set. Without TLS, only a loopback address is accepted unless
    /// `insecure_listen` says a TLS-terminating proxy sits in front.
    pub async fn bind(config: &ServerConfig) -> anyhow::Result<Self> {
        let tls = match (config.tls_cert.as_str(), config.tls_key.as_str()) {
            ("", "") => None,
            ("", _) | (_, "") => {
                anyhow::bail!("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
            }
            (cert, key) => Some(Tls::load(Path::new(cert), Path::new(key)).await?),
        };
        if tls.is_none() && !config.listen.ip().is_loopback() && !config.insecure_listen {
            anyhow::bail!(
                "refusing to listen on {} without TLS: passwords and tokens would cross the \
                 network in clear text. Give --tls-cert and --tls-key (PEM), or \
                 --insecure-listen if a TLS-terminating proxy sits in front",
                config.listen
            );
        }
        let tcp = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self { tcp, tls })
    }

    /// A plaintext listener on an address already bound (benchmarks and
    /// tests on loopback).
    pub fn plaintext(tcp: std::net::TcpListener) -> Self {
        Self { tcp, tls: None }
    }

    /// The address bound (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

impl Tls {
    async fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        install_crypto_provider();
        let config = RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "loading the TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        let hangups = signal(SignalKind::hangup()).context("following SIGHUP")?;
        Ok(Self {
            config,
            cert: cert.to_owned(),
            key: key.to_owned(),
            hangups,
        })
    }

    /// Reloads the files on every `SIGHUP`, so a renewed certificate takes
    /// effect without a restart; a pair that does not load is reported and
    /// the one in use kept. Connections already open keep theirs.
    async fn reload_on_hangup(mut self) {
        while self.hangups.recv().await.is_some() {
            match self
                .config
                .reload_from_pem_file(&self.cert, &self.key)
                .await
            {
                Ok(()) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
                Err(err) => tracing::error!(
                    %err,
                    cert = %self.cert.display(),
                    "the TLS certificate did not reload; keeping the one in use"
                ),
            }
        }
    }
}

/// The project's TLS runs on ring; a provider chosen once per process.
fn install_crypto_provider() {
    // Err only says one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves the router on the listener until `shutdown` completes, then
/// gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: Listener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = Handle::new();
    let stopper = handle.clone();
    let stop = tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    // The peer address feeds the login throttle (`ConnectInfo`).
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = match listener.tls {
        None => {
            axum_server::from_tcp(listener.tcp)?
                // Streams push small frames; without TCP_NODELAY, Nagle's
                // algorithm holds them back until the peer's delayed ACK.
                .acceptor(NoDelayAcceptor)
                .handle(handle)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .serve(service)
                .await
        }
        Some(tls) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.config.clone())
                .acceptor(NoDelayAcceptor);
            let reload = tokio::spawn(tls.reload_on_hangup());
            let served = axum_server::from_tcp(listener.tcp)?
                .acceptor(acceptor)
                .handle(handle)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .serve(service)
                .await;
            reload.abort();
            served
        }
    };
    stop.abort();
    served
}
