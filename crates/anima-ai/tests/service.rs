//! AnimaAiService over a real gRPC connection, with the real sentence model
//! when it is installed (`scripts/setup-debian` installs it; `scripts/test`
//! sets `ANIMA_TEST_REQUIRE_MODEL=1`, so in the suite its absence fails).

use anima_ai::{AiConfig, MAX_INPUT_CHARS};
use anima_proto::v1::{self as pb, ModelTier, anima_ai_service_client::AnimaAiServiceClient};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

async fn client(config: AiConfig) -> AnimaAiServiceClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(anima_ai::service(config).expect("service"))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    AnimaAiServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn model_required() -> bool {
    std::env::var("ANIMA_TEST_REQUIRE_MODEL").is_ok_and(|value| value == "1")
}

#[tokio::test]
async fn embeddings_come_from_the_real_model() {
    let mut ai = client(AiConfig::load(None).expect("config")).await;
    let reply = ai
        .embed(pb::EmbedRequest {
            texts: vec![
                "The new movie is awesome".into(),
                "The new movie is so great".into(),
                "The quarterly tax return is due".into(),
            ],
        })
        .await
        .expect("embed")
        .into_inner();
    if reply.model.starts_with("local:lexical") {
        assert!(
            !model_required(),
            "the model is required here but not installed"
        );
        eprintln!("sentence model not installed; checked the lexical fallback only");
        return;
    }
    assert_eq!(reply.model, "local:all-MiniLM-L6-v2");
    assert_eq!(reply.dimensions, 384);
    let cosine = |a: &pb::Vector, b: &pb::Vector| -> f32 {
        a.values.iter().zip(&b.values).map(|(x, y)| x * y).sum()
    };
    // sentence-transformers publishes 0.8939 for this pair.
    let similar = cosine(&reply.vectors[0], &reply.vectors[1]);
    assert!((similar - 0.8939).abs() < 0.002, "similarity {similar}");
    assert!(cosine(&reply.vectors[0], &reply.vectors[2]) < 0.3);
}

#[tokio::test]
async fn mail_is_classified_on_the_minimal_tier_or_answered_unknown() {
    let mut ai = client(AiConfig::load(None).expect("config")).await;
    let candidates = vec![
        pb::CandidateWorkItem {
            work_item_id: "wi-export".into(),
            title: "CSV export runs out of memory".into(),
            description: "Exporting projects with more than 100k rows crashes the worker.".into(),
            recent_messages: vec!["We should stream rows instead of buffering them.".into()],
        },
        pb::CandidateWorkItem {
            work_item_id: "wi-safari".into(),
            title: "Login fails on Safari".into(),
            description: "Users on Safari 17 get a blank page after entering their password."
                .into(),
            recent_messages: vec![],
        },
    ];
    let reply = ai
        .classify_mail(pb::ClassifyMailRequest {
            from: "ops@example.com".into(),
            subject: "Export crashed again".into(),
            body: "Last night's CSV export of the big project died with an out-of-memory error."
                .into(),
            candidates: candidates.clone(),
        })
        .await
        .expect("classify")
        .into_inner();
    assert_eq!(reply.work_item_id, "wi-export", "{reply:?}");
    assert_eq!(reply.tier, ModelTier::Minimal as i32);
    assert!(reply.confidence > 0.5 && reply.confidence <= 1.0);

    let reply = ai
        .classify_mail(pb::ClassifyMailRequest {
            from: "friend@example.com".into(),
            subject: "Dinner on Friday".into(),
            body: "Are you coming to the dinner at Maria's place?".into(),
            candidates,
        })
        .await
        .expect("classify")
        .into_inner();
    assert_eq!(
        reply.work_item_id, "",
        "unrelated mail is unknown: {reply:?}"
    );
}

#[tokio::test]
async fn summaries_and_drafts_cite_their_messages() {
    let mut ai = client(AiConfig::load(None).expect("config")).await;
    let sources = vec![
        pb::TextSource {
            id: "m1".into(),
            text: "The nightly export fails for large projects. It runs out of memory after about ten minutes.".into(),
        },
        pb::TextSource {
            id: "m2".into(),
            text: "I propose streaming the rows to the file instead of collecting them first. That keeps memory flat.".into(),
        },
        pb::TextSource {
            id: "m3".into(),
            text: "Agreed, streaming fixes the memory problem. Also, the office is closed on Monday.".into(),
        },
    ];
    let reply = ai
        .summarize(pb::SummarizeRequest {
            tier: ModelTier::Standard as i32,
            sources: sources.clone(),
            max_sentences: 2,
        })
        .await
        .expect("summarize")
        .into_inner();
    assert_eq!(reply.citations.len(), 2, "{reply:?}");
    for citation in &reply.citations {
        let source = sources
            .iter()
            .find(|s| s.id == citation.source_id)
            .expect("cited source exists");
        let cited = &source.text[citation.start as usize..citation.end as usize];
        assert!(
            reply.summary.contains(cited),
            "{cited:?} in {:?}",
            reply.summary
        );
    }
    assert!(!reply.summary.contains("office"), "{}", reply.summary);

    let draft = ai
        .generate_description(pb::GenerateDescriptionRequest {
            tier: ModelTier::Unspecified as i32,
            title: "Stream the nightly export".into(),
            context: sources,
        })
        .await
        .expect("draft")
        .into_inner();
    assert!(
        draft
            .description
            .starts_with("## Goal\n\nStream the nightly export")
    );
    assert!(!draft.citations.is_empty());
    assert!(draft.model.starts_with("local:"));
}

#[tokio::test]
async fn bad_input_and_missing_tiers_get_clear_errors() {
    let mut ai = client(AiConfig::load(None).expect("config")).await;
    let status = ai
        .analyze_gap(pb::AnalyzeGapRequest {
            plan_json: "{}".into(),
            implementation_state: "half done".into(),
        })
        .await
        .expect_err("no reasoning model");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "NO_MODEL_FOR_TIER");

    let status = ai
        .summarize(pb::SummarizeRequest {
            tier: 42,
            sources: vec![pb::TextSource {
                id: "m".into(),
                text: "Some text.".into(),
            }],
            max_sentences: 0,
        })
        .await
        .expect_err("unknown tier");
    assert_eq!(reason(&status), "UNKNOWN_TIER");

    let status = ai
        .summarize(pb::SummarizeRequest {
            tier: ModelTier::Reasoning as i32,
            sources: vec![pb::TextSource {
                id: "m".into(),
                text: "Some text.".into(),
            }],
            max_sentences: 0,
        })
        .await
        .expect_err("reasoning summaries need a reasoning model");
    assert_eq!(reason(&status), "NO_MODEL_FOR_TIER");

    let status = ai
        .embed(pb::EmbedRequest {
            texts: vec!["   ".into()],
        })
        .await
        .expect_err("empty");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "FIELD_REQUIRED")
    );

    let status = ai
        .embed(pb::EmbedRequest {
            texts: vec!["word ".repeat(MAX_INPUT_CHARS / 5 + 1)],
        })
        .await
        .expect_err("huge");
    assert_eq!(reason(&status), "FIELD_TOO_LONG");
    assert!(
        status.message().contains(&MAX_INPUT_CHARS.to_string()),
        "{}",
        status.message()
    );

    // A tier with no model configured fails instead of guessing.
    let mut config = AiConfig::load(None).expect("config");
    config.tiers.minimal.clear();
    let mut bare = client(config).await;
    let status = bare
        .classify_mail(pb::ClassifyMailRequest {
            subject: "hello".into(),
            ..Default::default()
        })
        .await
        .expect_err("no minimal model");
    assert_eq!(reason(&status), "NO_MODEL_FOR_TIER");
}
