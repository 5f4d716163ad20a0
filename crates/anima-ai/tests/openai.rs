//! The OpenAI-compatible provider against a local HTTP server that speaks
//! the chat-completions and embeddings wire format: the request shape is
//! asserted, and timeouts, server errors and malformed replies are played.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_ai::{
    AiConfig, AiService,
    config::{ModelSpec, ProviderConfig},
};
use anima_proto::v1::{
    self as pb, anima_ai_service_client::AnimaAiServiceClient,
    anima_ai_service_server::AnimaAiServiceServer,
};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

/// What the fake server answers next.
#[derive(Clone)]
enum Reply {
    /// A chat completion whose message content is this text.
    Content(String),
    /// A whole response body.
    Body(Value),
    /// An HTTP error status.
    Status(u16),
    /// Nothing for this long, then the next reply.
    Stall(Duration),
}

#[derive(Default)]
struct Fake {
    replies: Mutex<VecDeque<Reply>>,
    /// When the queue is empty.
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<(String, Option<String>, Value)>>,
}

async fn answer(fake: Arc<Fake>, path: &str, headers: HeaderMap, body: Value) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    fake.requests
        .lock()
        .expect("lock")
        .push((path.to_owned(), auth, body));
    loop {
        let next = fake.replies.lock().expect("lock").pop_front();
        let reply = match next.or_else(|| fake.fallback.lock().expect("lock").clone()) {
            Some(reply) => reply,
            None => return StatusCode::NOT_IMPLEMENTED.into_response(),
        };
        match reply {
            Reply::Stall(time) => tokio::time::sleep(time).await,
            Reply::Status(code) => {
                return StatusCode::from_u16(code)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    .into_response();
            }
            Reply::Body(body) => return Json(body).into_response(),
            Reply::Content(content) => {
                return Json(json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": content },
                        "finish_reason": "stop"
                    }],
                    "usage": { "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150 }
                }))
                .into_response();
            }
        }
    }
}

struct Harness {
    fake: Arc<Fake>,
    service: AiService,
    client: AnimaAiServiceClient<Channel>,
}

impl Harness {
    fn requests(&self) -> Vec<(String, Option<String>, Value)> {
        self.fake.requests.lock().expect("lock").clone()
    }

    fn play(&self, replies: impl IntoIterator<Item = Reply>) {
        self.fake.replies.lock().expect("lock").extend(replies);
    }

    fn always(&self, reply: Reply) {
        *self.fake.fallback.lock().expect("lock") = Some(reply);
    }
}

/// A fake provider `openai` and anima-ai configured by `adjust` to use it.
async fn harness(adjust: impl FnOnce(&mut AiConfig)) -> Harness {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                |State(fake): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>| {
                    answer(fake, "chat/completions", headers, body)
                },
            ),
        )
        .route(
            "/v1/embeddings",
            post(
                |State(fake): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>| {
                    answer(fake, "embeddings", headers, body)
                },
            ),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = AiConfig::load(None).expect("config");
    config.providers = BTreeMap::from([(
        "openai".to_owned(),
        ProviderConfig {
            base_url: format!("http://{fake_address}/v1"),
            // A variable every test process has; its value must arrive as
            // the bearer token.
            api_key_env: Some("HOME".into()),
            timeout_ms: 2_000,
            max_retries: 1,
            input_usd_per_mtok: 1.0,
            output_usd_per_mtok: 2.0,
        },
    )]);
    config.tiers.reasoning = vec![remote("gpt-test")];
    adjust(&mut config);
    let service = AiService::new(config).expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AnimaAiServiceServer::new(service.clone()))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    let client = AnimaAiServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    Harness {
        fake,
        service,
        client,
    }
}

fn remote(model: &str) -> ModelSpec {
    ModelSpec::Remote {
        provider: "openai".into(),
        model: model.into(),
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn review_request() -> pb::ShouldReviewRequest {
    pb::ShouldReviewRequest {
        work_item_json: r#"{"key":"WI-7","title":"Rotate the Stripe webhook secret"}"#.into(),
        changes: "diff --git a/payments/webhook.rs ...".into(),
    }
}

#[tokio::test]
async fn requests_have_the_chat_completions_shape_and_usage_is_recorded() {
    let mut h = harness(|_| {}).await;
    h.play([Reply::Content(
        r#"{"review": true, "reason": "It changes how payments are verified."}"#.into(),
    )]);
    let reply = h
        .client
        .should_review(review_request())
        .await
        .expect("review")
        .into_inner();
    assert!(reply.review);
    assert_eq!(reply.reason, "It changes how payments are verified.");
    assert_eq!(reply.model, "openai:gpt-test");

    let requests = h.requests();
    assert_eq!(requests.len(), 1);
    let (path, auth, body) = &requests[0];
    assert_eq!(path, "chat/completions");
    let home = std::env::var("HOME").expect("HOME");
    assert_eq!(auth.as_deref(), Some(format!("Bearer {home}").as_str()));
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["response_format"]["type"], "json_object");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    let user = body["messages"][1]["content"].as_str().expect("user text");
    assert!(
        user.contains("WI-7") && user.contains("payments/webhook.rs"),
        "{user}"
    );

    let usage = h.service.usage();
    let used = usage.get("openai:gpt-test").expect("usage recorded");
    assert_eq!(
        (used.calls, used.prompt_tokens, used.completion_tokens),
        (1, 120, 30)
    );
    assert!((used.cost_usd - (120.0 * 1.0 + 30.0 * 2.0) / 1e6).abs() < 1e-12);
}

#[tokio::test]
async fn a_malformed_reply_is_asked_for_once_more_then_refused() {
    let mut h = harness(|_| {}).await;
    h.play([
        Reply::Content("Sure! The review is needed.".into()),
        Reply::Content("```json\n{\"review\": false, \"reason\": \"Docs only.\"}\n```".into()),
    ]);
    let reply = h
        .client
        .should_review(review_request())
        .await
        .expect("second answer parses")
        .into_inner();
    assert!(!reply.review);
    assert_eq!(h.requests().len(), 2);

    h.always(Reply::Content(r#"{"review": "maybe"}"#.into()));
    let status = h
        .client
        .should_review(review_request())
        .await
        .expect_err("malformed twice");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "MALFORMED_MODEL_REPLY");
    assert!(
        status.message().contains("openai:gpt-test"),
        "{}",
        status.message()
    );
    assert_eq!(h.requests().len(), 4, "exactly one retry");
}

#[tokio::test]
async fn slow_and_failing_servers_are_retried_then_unavailable() {
    let mut h = harness(|config| {
        if let Some(provider) = config.providers.get_mut("openai") {
            provider.timeout_ms = 300;
        }
    })
    .await;
    // A 503 is retried and the retry answers.
    h.play([
        Reply::Status(503),
        Reply::Content(r#"{"gap_report": "Search has no tests yet."}"#.into()),
    ]);
    let reply = h
        .client
        .analyze_gap(pb::AnalyzeGapRequest {
            plan_json: r#"{"title":"Search"}"#.into(),
            implementation_state: "index added, tests missing".into(),
        })
        .await
        .expect("retried")
        .into_inner();
    assert_eq!(reply.gap_report, "Search has no tests yet.");
    assert_eq!(h.requests().len(), 2);

    // A server that never answers in time: one try, one retry, then UNAVAILABLE.
    h.always(Reply::Stall(Duration::from_secs(2)));
    let status = h
        .client
        .analyze_gap(pb::AnalyzeGapRequest {
            plan_json: "{}".into(),
            implementation_state: "nothing".into(),
        })
        .await
        .expect_err("timed out");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "MODEL_UNAVAILABLE");
    assert!(status.message().contains("300 ms"), "{}", status.message());
    assert_eq!(h.requests().len(), 4);

    // A 400 means the request is wrong: no retry.
    h.always(Reply::Status(400));
    let status = h
        .client
        .analyze_gap(pb::AnalyzeGapRequest {
            plan_json: "{}".into(),
            implementation_state: "nothing".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(reason(&status), "MODEL_UNAVAILABLE");
    assert_eq!(h.requests().len(), 5);
}

#[tokio::test]
async fn a_tier_falls_back_to_its_next_model() {
    let mut h = harness(|config| {
        config.tiers.minimal = vec![remote("gpt-mini"), ModelSpec::Local];
        if let Some(provider) = config.providers.get_mut("openai") {
            provider.max_retries = 0;
        }
    })
    .await;
    h.always(Reply::Status(500));
    let reply = h
        .client
        .classify_mail(pb::ClassifyMailRequest {
            from: "ops@example.com".into(),
            subject: "Export crashed".into(),
            body: "The CSV export ran out of memory again.".into(),
            candidates: vec![pb::CandidateWorkItem {
                work_item_id: "wi-export".into(),
                title: "CSV export runs out of memory".into(),
                description: "Large exports crash.".into(),
                recent_messages: vec![],
            }],
        })
        .await
        .expect("local answers")
        .into_inner();
    assert!(reply.model.starts_with("local:"), "{}", reply.model);
    assert_eq!(reply.work_item_id, "wi-export");
    assert_eq!(h.requests().len(), 1, "the remote model was tried first");
}

#[tokio::test]
async fn remote_classification_is_checked_against_the_candidates() {
    let mut h = harness(|config| config.tiers.minimal = vec![remote("gpt-mini")]).await;
    h.play([
        Reply::Content(r#"{"work_item_id": "wi-invented", "confidence": 0.9}"#.into()),
        Reply::Content(r#"{"work_item_id": "wi-login", "confidence": 0.93}"#.into()),
    ]);
    let reply = h
        .client
        .classify_mail(pb::ClassifyMailRequest {
            from: "anna@example.com".into(),
            subject: "Cannot sign in".into(),
            body: "Blank page after login on my iPhone.".into(),
            candidates: vec![pb::CandidateWorkItem {
                work_item_id: "wi-login".into(),
                title: "Login fails on Safari".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("classified")
        .into_inner();
    assert_eq!(
        (reply.work_item_id.as_str(), reply.model.as_str()),
        ("wi-login", "openai:gpt-mini")
    );
    assert!((reply.confidence - 0.93).abs() < 1e-9);
    let user = h.requests()[0].2["messages"][1]["content"]
        .as_str()
        .expect("user text")
        .to_owned();
    assert!(
        user.contains("wi-login") && user.contains("Blank page"),
        "{user}"
    );
}

#[tokio::test]
async fn capabilities_are_validated_and_embeddings_use_the_wire_format() {
    let mut h = harness(|config| config.embedding = remote("embed-test")).await;
    h.play([
        Reply::Content(r#"{"capabilities": [{"type": "network_zone", "name": "", "hosts": []}]}"#.into()),
        Reply::Content(
            r#"{"capabilities": [{"type": "network_zone", "name": "stripe", "hosts": ["api.stripe.com:443"]},
                {"type": "secret", "name": "Stripe key", "reference": "vault://shop-stripe", "mount_as": "stripe.key"}]}"#
                .into(),
        ),
    ]);
    let reply = h
        .client
        .derive_capabilities(pb::DeriveCapabilitiesRequest {
            work_item_json: r#"{"title":"Rotate the Stripe webhook secret"}"#.into(),
        })
        .await
        .expect("capabilities")
        .into_inner();
    assert_eq!(reply.capabilities.len(), 2);
    assert!(
        reply.capabilities.iter().all(|c| !c.id.is_empty()),
        "ids assigned"
    );
    assert!(matches!(
        &reply.capabilities[0].kind,
        Some(pb::capability::Kind::NetworkZone(zone)) if zone.hosts == ["api.stripe.com:443"]
    ));
    assert_eq!(
        h.requests().len(),
        2,
        "the invalid proposal was asked for again"
    );

    h.play([Reply::Body(json!({
        "object": "list",
        "data": [
            { "object": "embedding", "index": 1, "embedding": [0.0, 1.0] },
            { "object": "embedding", "index": 0, "embedding": [1.0, 0.0] }
        ],
        "model": "embed-test",
        "usage": { "prompt_tokens": 8, "total_tokens": 8 }
    }))]);
    let reply = h
        .client
        .embed(pb::EmbedRequest {
            texts: vec!["first".into(), "second".into()],
        })
        .await
        .expect("embed")
        .into_inner();
    assert_eq!(reply.model, "openai:embed-test");
    assert_eq!(reply.dimensions, 2);
    assert_eq!(reply.vectors[0].values, [1.0, 0.0], "ordered by index");
    let (path, _, body) = h.requests().pop().expect("request");
    assert_eq!(path, "embeddings");
    assert_eq!(
        body,
        json!({ "model": "embed-test", "input": ["first", "second"] })
    );

    h.play([Reply::Body(json!({ "data": [] }))]);
    let status = h
        .client
        .embed(pb::EmbedRequest {
            texts: vec!["third".into()],
        })
        .await
        .expect_err("no vectors");
    assert_eq!(status.code(), Code::Unavailable);
}
