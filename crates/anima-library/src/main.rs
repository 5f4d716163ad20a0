//! The `anima-library` binary: LibraryService on its own listener, for a
//! deployment that runs the library apart from anima-server.

use anima_library::LibrarySettings;
use anima_proto::service_auth::ServiceTokens;
use clap::Parser;

/// Runs Seshat's Library, the internal service that keeps documents'
/// bytes and finds them by their words and meaning. Where they are kept comes from the `[library]` section of
/// `anima.toml` and `ANIMA_LIBRARY_*` variables (`anima config check`
/// lists them).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// `anima.toml`, of which this reads the `[library]` section.
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Listen address.
    #[arg(long, env = "ANIMA_LIBRARY_LISTEN", default_value = "127.0.0.1:7437")]
    listen: std::net::SocketAddr,
    /// Bearer tokens callers must present (comma-separated; several may be
    /// valid at once while they rotate). Required, even on loopback: the
    /// library holds every project's documents.
    #[arg(
        long,
        env = "ANIMA_LIBRARY_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// Holds `library/` and `library-index.db` when `[library] store` and
    /// `index` are not set (default: the user's data directory, `anima` in
    /// it).
    #[arg(long, env = "ANIMA_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anima_library::serve_pdf_reader_if_asked();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // S3 stores speak TLS through rustls on ring, as every Anima client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    anyhow::ensure!(
        args.tokens.iter().any(|token| !token.trim().is_empty()),
        "set ANIMA_LIBRARY_TOKENS: the library holds every project's documents, \
         so it answers only anima-server (`openssl rand -base64 32` makes one)"
    );
    let tokens = ServiceTokens::configured(
        "anima-library",
        "ANIMA_LIBRARY_TOKENS",
        args.tokens,
        args.listen,
    )
    .map_err(anyhow::Error::msg)?;
    let data_dir = args
        .data_dir
        .or_else(|| dirs::data_dir().map(|dir| dir.join("anima")));
    let settings = LibrarySettings::load(args.config.as_deref())?;
    let blobs = settings.open(data_dir.as_deref())?;
    tokio::spawn(blobs.clone().sweep_uploads_forever());
    let indexer = settings
        .open_index(data_dir.as_deref(), settings.embeddings()?)
        .await?;
    tokio::spawn(indexer.clone().embed_forever());
    // Bound before it says where: with port 0 the system picks one, and
    // the line names it.
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("anima-library listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            anima_library::service(
                blobs,
                Some(anima_library::PdfReader::this_binary()?),
                indexer,
            ),
            tokens,
        ))
        .serve_with_incoming(
            // Answers leave at once: without TCP_NODELAY, Nagle's algorithm
            // held small replies for the peer's delayed ACK (about 40 ms).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
