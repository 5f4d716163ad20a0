//! `anima-bench serve --echo-bytes N`: a bare tonic echo of a work item,
//! the floor a gRPC read can reach, in its own process like the server it
//! is compared with. Prints `listening on http://ADDR` once it accepts
//! connections. (The server itself is `anima up`.)

use anima_proto::v1::{
    self as pb,
    work_item_service_server::{WorkItemService, WorkItemServiceServer},
};
use axum::serve::ListenerExt;
use clap::Args;
use prost::Message;
use tonic::{Request, Response, Status, service::Routes};

/// Options of `anima-bench serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The encoded size of the work item it answers with, in bytes.
    #[arg(long)]
    pub echo_bytes: usize,
}

/// Serves the echo until interrupted, as anima-server serves (axum over
/// hyper, TCP_NODELAY).
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router =
        Routes::new(WorkItemServiceServer::new(Echo::of_size(args.echo_bytes))).into_axum_router();
    println!("listening on http://{address}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
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
