//! The `ai` scenario: anima-ai's local provider as a server would use it.
//! ClassifyMail accuracy on the labelled mail set, with the model and with
//! the lexical fallback, and Embed and ClassifyMail throughput through a
//! real gRPC connection.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anima_ai::{
    AiConfig,
    embed::Embedder,
    eval::{MailSet, Score, score_with, similarities},
    local::ClassifierSettings,
};
use anima_bench::load::measure;
use anima_proto::v1::{self as pb, anima_ai_service_client::AnimaAiServiceClient};
use anyhow::Context;
use tonic::transport::Channel;

use crate::{Options, Outcome};

/// Sentences per Embed call, as a library indexer would batch them.
const EMBED_BATCH: usize = 16;

/// At most this many concurrent clients: the model is CPU-bound, and more
/// clients than cores only queue.
const MAX_CLIENTS: usize = 4;

pub async fn scenario(options: &Options) -> anyhow::Result<Outcome> {
    let config = AiConfig::load(None)?;
    let set = MailSet::load()?;
    let embedder = Embedder::load_or_fallback(config.model_dir().as_deref())?;
    let model_score = accuracy(&embedder, &set)?;
    let lexical_score = accuracy(&Embedder::Lexical, &set)?;
    let model_name = embedder.name().to_owned();
    drop(embedder);

    let address = serve(config).await?;
    let clients = options.clients.clamp(1, MAX_CLIENTS);
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    // The first call loads the model; it is not part of the measurement.
    AnimaAiServiceClient::new(channel.clone())
        .embed(pb::EmbedRequest {
            texts: vec!["warm up".into()],
        })
        .await?;
    // Every call sends texts never seen before, so the server's vector
    // cache does not answer for the model.
    let counter = Arc::new(AtomicU64::new(0));
    let embed = {
        let counter = counter.clone();
        measure(
            &format!("Embed, {EMBED_BATCH} sentences a call"),
            vec![AnimaAiServiceClient::new(channel.clone()); clients],
            options.duration(),
            move |client: &mut AnimaAiServiceClient<Channel>| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let texts = (0..EMBED_BATCH)
                    .map(|i| {
                        format!(
                            "Sentence {i} of call {n}: the export job streams rows to the file."
                        )
                    })
                    .collect();
                let mut client = client.clone();
                async move {
                    client.embed(pb::EmbedRequest { texts }).await?;
                    Ok(())
                }
            },
        )
        .await?
    };
    let candidates: Vec<pb::CandidateWorkItem> = set
        .work_items
        .iter()
        .map(|item| pb::CandidateWorkItem {
            work_item_id: item.id.clone(),
            title: item.title.clone(),
            description: item.description.clone(),
            recent_messages: item.recent.clone(),
        })
        .collect();
    let mails: Arc<Vec<(String, String)>> = Arc::new(
        set.mails
            .iter()
            .map(|mail| (mail.subject.clone(), mail.body.clone()))
            .collect(),
    );
    // Routing compares each mail with the same open items, whose vectors
    // the server then holds; one call before measuring puts them there.
    AnimaAiServiceClient::new(channel.clone())
        .classify_mail(pb::ClassifyMailRequest {
            subject: "warm up".into(),
            candidates: candidates.clone(),
            ..Default::default()
        })
        .await?;
    let classify = measure(
        "ClassifyMail, 10 candidates",
        vec![AnimaAiServiceClient::new(channel); clients],
        options.duration(),
        move |client: &mut AnimaAiServiceClient<Channel>| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let (subject, body) = &mails[n as usize % mails.len()];
            let request = pb::ClassifyMailRequest {
                from: "bench@example.com".into(),
                subject: subject.clone(),
                body: format!("{body}\n(ref {n})"),
                candidates: candidates.clone(),
            };
            let mut client = client.clone();
            async move {
                client.classify_mail(request).await?;
                Ok(())
            }
        },
    )
    .await?;
    let describe = |label: &str, score: &Score| {
        format!(
            "{label}: {}/{} answered mails right ({:.1} %), {:.1} % unknown ({}/{} mails about no item among them)",
            score.correct,
            score.answered,
            100.0 * score.accuracy(),
            100.0 * score.unknown_share(),
            score.unrelated_unknown,
            score.unrelated,
        )
    };
    Ok(Outcome {
        scenario: "ai",
        ratio: Some((
            format!("ClassifyMail accuracy among answered ({model_name})"),
            model_score.accuracy(),
            "≥ 0.85",
        )),
        notes: vec![
            describe(&format!("labelled set, {model_name}"), &model_score),
            describe("labelled set, lexical fallback", &lexical_score),
            format!(
                "Embed: {:.0} sentences/s; {clients} clients; every mail and sentence new to the model, the candidates' vectors cached",
                embed.throughput * EMBED_BATCH as f64
            ),
        ],
        stats: vec![embed, classify],
    })
}

fn accuracy(embedder: &Embedder, set: &MailSet) -> anyhow::Result<Score> {
    let sims = similarities(embedder, set).context("classifying the labelled set")?;
    Ok(score_with(set, &sims, ClassifierSettings::default()))
}

/// AnimaAiService on a loopback port of this process.
pub(crate) async fn serve(config: AiConfig) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(anima_ai::service(config)?)
            .serve_with_incoming(
                // Answers leave at once: without TCP_NODELAY, Nagle's algorithm
                // held small replies for the peer's delayed ACK (about 40 ms).
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    Ok(address)
}
