//! JMAP push (RFC 8620 §7.3) against a local HTTP server that answers in
//! the protocol's shapes: the Cyrus on these machines is built without
//! WebSocket support and so never pushes (its EventSource URL answers
//! 204; `tests/cyrus.rs` checks that the client then reports no push and
//! the follower polls). This checks our side of the stream: the URL
//! template, the events that wake a pass, and a connection that ends.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_mail::jmap::JmapClient;
use axum::{
    Json, Router,
    body::Body,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

/// The event stream's feed, taken by the first push connection.
type Feed = Arc<Mutex<Option<mpsc::Receiver<&'static str>>>>;

/// Serves a JMAP session whose `eventSourceUrl` is `event_source_path`
/// (with RFC 8620's template variables) and, there, the feed.
async fn server(event_source_path: &'static str, feed: Feed) -> String {
    let session = move || async move {
        Json(json!({
            "apiUrl": "/jmap/",
            "downloadUrl": "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
            "uploadUrl": "/jmap/upload/{accountId}/",
            "eventSourceUrl": format!("{event_source_path}?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
            "primaryAccounts": {"urn:ietf:params:jmap:mail": "account"},
        }))
    };
    let events = move |Query(query): Query<HashMap<String, String>>| async move {
        let expected = [("types", "Email"), ("closeafter", "no"), ("ping", "30")];
        if expected
            .iter()
            .any(|(name, value)| query.get(*name).map(String::as_str) != Some(value))
        {
            return (StatusCode::BAD_REQUEST, format!("{query:?}")).into_response();
        }
        let Some(feed) = feed.lock().expect("lock").take() else {
            return StatusCode::NO_CONTENT.into_response();
        };
        let body = tokio_stream::wrappers::ReceiverStream::new(feed).map(Ok::<_, Infallible>);
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(body))
            .expect("response")
    };
    let app = Router::new()
        .route("/.well-known/jmap", get(session))
        .route("/jmap/eventsource/", get(events.clone()))
        .route("/jmap/silent/", get(|| async { StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn a_state_event_wakes_the_follower_and_pings_do_not() {
    let (send, feed) = mpsc::channel(8);
    let base = server("/jmap/eventsource/", Arc::new(Mutex::new(Some(feed)))).await;
    let client = JmapClient::connect(&base, "desk@test", "secret")
        .await
        .expect("session");
    let mut stream = client
        .push(Duration::from_secs(30))
        .await
        .expect("eventsource")
        .expect("the server pushes");

    send.send("event: ping\ndata: {\"interval\":30}\n\n")
        .await
        .expect("feed");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.changed())
            .await
            .is_err(),
        "a ping is not a change"
    );

    // A state event split across chunks, with CRLF line ends.
    send.send("id: 7\r\nevent: st").await.expect("feed");
    send.send("ate\r\ndata: {\"@type\":\"StateChange\",\"changed\":{\"account\":{\"Email\":\"7\"}}}\r\n\r\n")
        .await
        .expect("feed");
    tokio::time::timeout(Duration::from_secs(10), stream.changed())
        .await
        .expect("woken")
        .expect("a change");

    drop(send);
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.changed())
        .await
        .expect("the end is noticed");
    assert!(
        ended.is_err(),
        "a closed stream is an error to recover from"
    );
}

#[tokio::test]
async fn a_server_that_answers_without_a_stream_does_not_push() {
    let base = server("/jmap/silent/", Arc::new(Mutex::new(None))).await;
    let client = JmapClient::connect(&base, "desk@test", "secret")
        .await
        .expect("session");
    assert!(client.event_source_url().is_some());
    assert!(
        client
            .push(Duration::from_secs(30))
            .await
            .expect("answered")
            .is_none()
    );
}
