//! `anima-bench serve`: the servers the benchmarks measure, each in its own
//! process. Prints `listening on http://ADDR` once it accepts connections.
//!
//! - the API as `anima up` composes it (server, anima-ai hosted in process);
//! - the same with every caller trusted, to see what auth and RBAC cost;
//! - a bare tonic echo of a work item, the floor a gRPC read can reach.

use std::time::Duration;

use anima_proto::v1::{
    self as pb,
    work_item_service_server::{WorkItemService, WorkItemServiceServer},
};
use clap::Args;
use prost::Message;
use tonic::{Request, Response, Status, service::Routes};

/// Options of `anima-bench serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The database to serve (`sqlite://…` or `postgres://…`).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Skip authentication and RBAC: every request counts as an internal
    /// service. Only for measuring what they cost.
    #[arg(long)]
    pub trust_every_caller: bool,
    /// Serve only a bare echo of a work item of this encoded size, in bytes.
    #[arg(long)]
    pub echo_bytes: Option<usize>,
}

/// Runs the chosen server until interrupted.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = anima_server::Listener::plaintext(std::net::TcpListener::bind("127.0.0.1:0")?);
    let address = listener.local_addr()?;
    let router = match (args.echo_bytes, args.database_url) {
        (Some(bytes), _) => {
            Routes::new(WorkItemServiceServer::new(Echo::of_size(bytes))).into_axum_router()
        }
        (None, Some(url)) => {
            let store = anima_db::open(&url).await?;
            anima_server::bootstrap_admin(&store, std::env::var("ANIMA_ADMIN_PASSWORD").ok())
                .await?;
            let config = anima_server::ServerConfig {
                database_url: url,
                // Long runs outlast the default idle expiry of nothing,
                // but a benchmark session must not expire mid-run.
                session_idle_timeout_secs: 24 * 60 * 60,
                ..Default::default()
            };
            let ai = anima_server::in_process::channel(Routes::new(anima_ai::service(
                anima_ai::AiConfig::from_env()?,
            )?));
            let api = anima_server::app::api(store, &config, Some(ai), None).await?;
            if args.trust_every_caller {
                api.into_router_trusting_every_caller()
            } else {
                api.into_router()
            }
        }
        (None, None) => anyhow::bail!("serve needs --database-url or --echo-bytes"),
    };
    println!("listening on http://{address}");
    anima_server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
        tokio::time::sleep(Duration::ZERO).await;
    })
    .await?;
    Ok(())
}

/// Answers GetWorkItem with a canned work item, touching nothing else.
#[derive(Clone)]
struct Echo {
    item: pb::WorkItem,
}

impl Echo {
    /// A work item whose encoding is `bytes` long (or just over).
    fn of_size(bytes: usize) -> Self {
        let mut item = pb::WorkItem {
            id: "01900000-0000-7000-8000-000000000001".into(),
            project_id: "01900000-0000-7000-8000-000000000002".into(),
            key: "WI-1".into(),
            title: "Echo".into(),
            ..Default::default()
        };
        let missing = bytes.saturating_sub(item.encoded_len());
        item.description = "x".repeat(missing);
        Self { item }
    }
}

#[tonic::async_trait]
impl WorkItemService for Echo {
    async fn get_work_item(
        &self,
        _request: Request<pb::GetWorkItemRequest>,
    ) -> Result<Response<pb::WorkItem>, Status> {
        Ok(Response::new(self.item.clone()))
    }
}
