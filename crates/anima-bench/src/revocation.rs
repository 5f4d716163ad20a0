//! The `revocation` scenario: two `anima up` instances on one PostgreSQL
//! database. A session is used on B (so B holds it in its cache), logged
//! out on A, and B is asked again until it refuses: how long a revoked
//! session lives on another instance. The sessions are written straight
//! into the database (as a login would), since 200 logins in a row are
//! what the login throttle is for.

use std::time::{Duration, Instant};

use anima_bench::{ServerUnderTest, authed};
use anima_core::{
    model::{AuthSession, now_micros},
    secret::{new_token, token_hash},
};
use anima_db::{AccountStore, PostgresStore};
use anima_proto::v1::{self as pb, auth_service_client::AuthServiceClient};
use anyhow::Context;
use hdrhistogram::Histogram;

use crate::{Options, Outcome};

/// Revocations measured.
const TRIES: usize = 200;
/// Longest a revocation may take before the scenario gives up on it.
const GIVE_UP: Duration = Duration::from_secs(30);

pub async fn scenario(_options: &Options) -> anyhow::Result<Outcome> {
    let database = anima_db::testing::TempDatabase::postgres().await;
    let a = ServerUnderTest::anima(&database.url, &[], &[])?;
    let b = ServerUnderTest::anima(&database.url, &[], &[])?;
    let (mut on_a, mut on_b) = (
        AuthServiceClient::new(a.channel().await?),
        AuthServiceClient::new(b.channel().await?),
    );
    let admin = on_a
        .who_am_i(authed(&a.admin_token().await?, pb::WhoAmIRequest {}))
        .await?
        .into_inner()
        .user
        .context("the admin")?;
    let store = PostgresStore::connect(&database.url).await?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    for _ in 0..TRIES {
        let token = new_token();
        store
            .create_session(AuthSession {
                token_hash: token_hash(&token),
                user_id: admin.id.clone(),
                created_at: now_micros(),
                last_used_at: now_micros(),
            })
            .await?;
        on_b.who_am_i(authed(&token, pb::WhoAmIRequest {})).await?;
        on_a.logout(authed(&token, pb::LogoutRequest {})).await?;
        let revoked = Instant::now();
        loop {
            match on_b.who_am_i(authed(&token, pb::WhoAmIRequest {})).await {
                Err(status) if status.code() == tonic::Code::Unauthenticated => break,
                Err(status) => return Err(status.into()),
                Ok(_) => anyhow::ensure!(
                    revoked.elapsed() < GIVE_UP,
                    "B still accepted a session revoked on A {GIVE_UP:?} ago"
                ),
            }
        }
        let micros = u64::try_from(revoked.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(micros.max(1));
    }
    let stats = anima_bench::load::Stats {
        label: "logout on A until B refuses".into(),
        operations: histogram.len(),
        errors: 0,
        throughput: histogram.len() as f64 / started.elapsed().as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
    };
    Ok(Outcome {
        scenario: "revocation",
        ratio: None,
        notes: vec![
            format!(
                "{TRIES} sessions, each cached on B, logged out on A; B asked back to back until it refuses; p99 {:.1} ms (target < 50 ms)",
                stats.p99_us as f64 / 1e3
            ),
            "throughput is revocations measured per second, login and cache warm-up included"
                .into(),
        ],
        stats: vec![stats],
    })
}
