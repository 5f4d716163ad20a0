//! The server under benchmark: anima-server's router on a loopback port
//! over the database URL given as the only argument. Prints
//! `listening on http://ADDR` once it accepts connections.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .context("usage: anima-bench-server DATABASE_URL")?;
    let store = anima_db::open(&url).await?;
    anima_server::bootstrap_admin(&store, std::env::var("ANIMA_ADMIN_PASSWORD").ok()).await?;
    let config = anima_server::ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: url,
        ..Default::default()
    };
    let router = anima_server::router(store, &config, None).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    anima_server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
