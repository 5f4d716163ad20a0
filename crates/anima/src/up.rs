//! `anima up`: anima-server with anima-ai, anima-agent and anima-library hosted in the same
//! process and on the same listener, on an embedded SQLite database unless
//! told otherwise.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use clap::Args;
use tonic::service::Routes;

/// Options of `anima up`; everything else is in `anima.toml`.
#[derive(Args)]
pub struct UpArgs {
    /// `anima.toml`: a section per component; every key is also an
    /// `ANIMA_*` variable (`anima config variables` lists them).
    #[arg(long, env = "ANIMA_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the embedded database [default: the platform data dir,
    /// e.g. ~/.local/share/anima].
    #[arg(long, env = "ANIMA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Use this database instead of the embedded one (postgres://…).
    // Its value may hold a password: `--help` does not show it.
    #[arg(long, env = "ANIMA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Listen address; port 0 picks a free one [default: 127.0.0.1:7433].
    #[arg(long, env = "ANIMA_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    tls: anima_server::listener::TlsArgs,
    /// Skip authentication and RBAC: every request counts as an internal
    /// service. Only for the benchmarks, to measure what they cost; only in
    /// builds with the `bench` feature.
    #[cfg(feature = "bench")]
    #[arg(long, hide = true)]
    trust_every_caller: bool,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,anima_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let crate::config::AnimaConfig {
        server: mut config,
        ai,
        mut mail,
        agent: mut agent_config,
        library,
    } = crate::config::AnimaConfig::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    args.tls.apply(&mut config);
    if let Some(dir) = args.data_dir {
        config.data_dir = dir.display().to_string();
    }
    let data_dir = match config.data_dir.as_str() {
        "" => dirs::data_dir().map(|dir| dir.join("anima")),
        dir => Some(PathBuf::from(dir)),
    };
    if config.database_url.is_empty() {
        let dir = data_dir
            .clone()
            .context("no data directory; pass --data-dir")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let database = dir.join("anima.db");
        anima_client::keep_sqlite_private(&database)?;
        config.database_url = format!("sqlite://{}", database.display());
    }

    let store = anima_db::open(&config.database_url)
        .await
        .with_context(|| format!("opening {}", config.database_url))?;
    let admin =
        anima_server::bootstrap_admin(&store, std::env::var("ANIMA_ADMIN_PASSWORD").ok()).await?;
    let listener = anima_server::Listener::bind(&config).await?;
    let address = listener.local_addr()?;
    let url = format!("{}://{address}", listener.scheme());
    // What runs in this process (the mail worker, the sandboxes' MCP
    // forwarding, the login audit) reaches the router in plaintext on a
    // loopback port of its own: the certificate, if any, need not name a
    // loopback address, and the port stays open until they have stopped.
    let internal = anima_server::Listener::plaintext(
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .context("binding the internal loopback port")?,
    );
    let internal_address = internal.local_addr()?;
    // With an agent command and no other provider, sessions run in this
    // process's sandboxes: anima-agent hosted in process.
    let local_agent = agent_config.provider == anima_server::config::AgentProviderKind::Local
        && !agent_config.command.is_empty();
    // The provider reports logins into its sandboxes to the audit service
    // on the internal port, with a token good for nothing else.
    let audit_token = local_agent.then(anima_core::secret::new_token);
    if let Some(token) = &audit_token {
        if agent_config.mcp_endpoint.is_empty() {
            agent_config.mcp_endpoint = format!("http://{internal_address}/mcp");
        }
        config
            .service_tokens
            .push(anima_server::config::ServiceToken {
                name: anima_server::config::InternalService::Agent,
                token: token.clone(),
            });
    }
    if mail.is_enabled() {
        // The worker reaches the internal port with a token of its own.
        let token = anima_core::secret::new_token();
        config
            .service_tokens
            .push(anima_server::config::ServiceToken {
                name: anima_server::config::InternalService::Mail,
                token: token.clone(),
            });
        mail.server_url = format!("http://{internal_address}");
        mail.service_token = token;
        mail.check()?;
    }
    let login = match audit_token {
        Some(token) => {
            let audit = anima_agent::audit::ServerAudit::new(
                &format!("http://{internal_address}"),
                &token,
            )?;
            Some((
                anima_agent::login::LoginOptions {
                    listen: agent_config.ssh_listen,
                    host: None,
                },
                Arc::new(audit) as Arc<dyn anima_agent::audit::AuditSink>,
            ))
        }
        None => None,
    };
    let sandboxes = data_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join("sandboxes");
    let sandbox_user = match agent_config.sandbox_user.as_str() {
        "" => anima_agent::sandbox::DEFAULT_USER.to_owned(),
        user => user.to_owned(),
    };
    if local_agent {
        for path in &agent_config.read_only {
            anyhow::ensure!(
                Path::new(path).exists(),
                "[agent] read_only: {path} does not exist (paths are separated by commas)"
            );
        }
        // Fail at start, not at the first session.
        anima_agent::sandbox::LocalSandboxes::new(&sandboxes, sandbox_user.as_str())
            .check()
            .map_err(|why| anyhow::anyhow!("[agent] command is set, but {why}"))?;
    }
    let agent = anima_agent::service(anima_agent::AgentOptions {
        sandboxes,
        read_only: agent_config.read_only.iter().map(PathBuf::from).collect(),
        sandbox_user,
        login,
    })
    .await?;
    let ai = anima_ai::service(anima_ai::AiConfig::from_settings(ai)?)?;
    // Seshat's Library, unless the server is pointed at one elsewhere.
    let blobs = match config.library_url.as_str() {
        "" => {
            let blobs = library.open(data_dir.as_deref()).context("[library]")?;
            tokio::spawn(blobs.clone().sweep_uploads_forever());
            let pdf = anima_library::PdfReader::this_binary()?;
            // Its vectors come from the anima-ai named in [library], else
            // the one the server uses: hosted here or at ai_url.
            let embeddings = match (library.embeddings()?, config.ai_url.as_str()) {
                (Some(named), _) => named,
                (None, "") => anima_library::Embeddings::hosted(anima_server::in_process::channel(
                    Routes::new(ai.clone()),
                )),
                (None, url) => anima_library::Embeddings::remote(url, &config.ai_token)?,
            };
            let indexer = library
                .open_index(data_dir.as_deref(), Some(embeddings))
                .await
                .context("[library] index")?;
            tokio::spawn(indexer.clone().embed_forever());
            Some(anima_library::service(blobs, Some(pdf), indexer))
        }
        _ => None,
    };
    // anima-ai, anima-agent and anima-library answer over in-memory
    // channels, never on the listener.
    let mut routes = Routes::new(ai).add_service(agent);
    if let Some(blobs) = blobs.clone() {
        routes = routes.add_service(blobs);
    }
    let hosted = anima_server::in_process::channel(routes);
    let hosted_services = anima_server::Hosted {
        ai: config.ai_url.is_empty().then(|| hosted.clone()),
        library: blobs.is_some().then(|| hosted.clone()),
    };
    let provider = if local_agent {
        Some(Arc::new(anima_server::agents::RemoteProvider::hosted(
            hosted,
            &agent_config.mcp_endpoint,
            &agent_config.command,
        )) as Arc<dyn anima_server::agents::AgentProvider>)
    } else {
        anima_server::agents::from_config(&agent_config)?
    };
    let api = anima_server::app::api(store.clone(), &config, hosted_services, provider).await?;
    #[cfg(feature = "bench")]
    let router = match args.trust_every_caller {
        true => api.into_router_trusting_every_caller(),
        false => api.into_router(),
    };
    #[cfg(not(feature = "bench"))]
    let router = api.into_router();

    say(format!(
        "anima is up at {url} (database: {})",
        store.backend()
    ));
    if let Some(admin) = admin {
        match admin.generated_password {
            Some(password) => {
                say(format!(
                    "first start: created administrator {:?}",
                    admin.username
                ));
                say(format!("admin password: {password}"));
                say(format!(
                    "(shown only now; log in with `anima login --server {}://{} --username admin`{})",
                    listener.scheme(),
                    reachable(address),
                    match listener.scheme() {
                        "https" => " and, for a private CA, --ca-cert CA.pem",
                        _ => "",
                    }
                ));
            }
            None => say(format!(
                "first start: created administrator {:?} with ANIMA_ADMIN_PASSWORD",
                admin.username
            )),
        }
    }
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let worker = mail.is_enabled().then(|| {
        say(format!("following mail at {}", mail.jmap_url));
        let mut stopped = stopped.clone();
        tokio::spawn(anima_mail::worker::run(mail, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let (internal_stop, internal_stopped) = tokio::sync::oneshot::channel::<()>();
    let internal = tokio::spawn(anima_server::serve(internal, router.clone(), async move {
        let _ = internal_stopped.await;
    }));
    anima_server::serve(listener, router, async move {
        stop_requested().await;
        let _ = stopping.send(true);
    })
    .await?;
    // The worker may be finishing a send it must record; its way to the
    // server closes after it.
    let worker = match worker {
        Some(worker) => worker
            .await
            .map_err(anyhow::Error::from)
            .and_then(|ran| ran),
        None => Ok(()),
    };
    let _ = internal_stop.send(());
    internal.await??;
    worker
}

/// Returns on Ctrl-C (SIGINT) or SIGTERM, how operators and service
/// managers ask a process to stop; what it runs is then torn down (agent
/// sandboxes with it).
async fn stop_requested() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The address this process's own clients dial: the listener's, with an
/// unspecified IP replaced by loopback.
fn reachable(mut address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    address
}

/// Prints a line for the operator. A closed stdout (the terminal went away,
/// a pipe reader stopped) must not take the server down, as `println!`
/// would by panicking.
fn say(line: String) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
