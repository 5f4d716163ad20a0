//! The Stalwart admin implementation against a local HTTP server that
//! answers in the shapes Stalwart documents for `/api/principal` (up to
//! 0.15). Stalwart itself does not run on these machines, so this checks
//! the requests we send and how we read the answers, not Stalwart.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use anima_mail::admin::{MailServerAdmin, Provisioned, StalwartAdmin};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{patch, post},
};
use serde_json::{Value, json};

/// Principals by name, with their secrets.
type Directory = Arc<Mutex<HashMap<String, Value>>>;

/// `admin:secret`, as HTTP Basic.
const AUTH: &str = "Basic YWRtaW46c2VjcmV0";

fn authorized(headers: &HeaderMap) -> Result<(), (StatusCode, Json<Value>)> {
    match headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
    {
        Some(AUTH) => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        )),
    }
}

async fn create(
    State(directory): State<Directory>,
    headers: HeaderMap,
    Json(principal): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    authorized(&headers)?;
    let name = principal["name"].as_str().unwrap_or_default().to_owned();
    let mut directory = directory.lock().expect("lock");
    if directory.contains_key(&name) {
        // Stalwart answers a duplicate with 200 and an error object.
        return Ok(Json(
            json!({"error": "fieldAlreadyExists", "field": "name", "value": name}),
        ));
    }
    directory.insert(name, principal);
    Ok(Json(json!({"data": directory.len()})))
}

async fn update(
    State(directory): State<Directory>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(changes): Json<Vec<Value>>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    authorized(&headers)?;
    let mut directory = directory.lock().expect("lock");
    let Some(principal) = directory.get_mut(&name) else {
        return Err((StatusCode::NOT_FOUND, Json(json!({"error": "notFound"}))));
    };
    for change in changes {
        assert_eq!(change["action"], "set");
        principal[change["field"].as_str().expect("field")] = change["value"].clone();
    }
    Ok(Json(json!({"data": null})))
}

async fn delete(
    State(directory): State<Directory>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    authorized(&headers)?;
    match directory.lock().expect("lock").remove(&name) {
        Some(_) => Ok(Json(json!({"data": null}))),
        None => Err((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "notFound", "item": name})),
        )),
    }
}

async fn serve() -> (String, Directory) {
    let directory = Directory::default();
    let router = Router::new()
        .route("/api/principal", post(create))
        .route("/api/principal/{name}", patch(update).delete(delete))
        .with_state(directory.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), directory)
}

/// Issue 21: an existing principal's password was reset whenever a mailbox
/// named its address, handing its mail to whoever made the mailbox. Now it
/// is left alone unless taken over (a server admin's adoption).
#[tokio::test]
async fn existing_accounts_are_left_alone_unless_taken_over() {
    let (url, directory) = serve().await;
    let admin = StalwartAdmin::new(&url, "admin", "secret").expect("admin");
    assert_eq!(
        admin
            .create_account("desk@shop.example", "first", false)
            .await
            .expect("create"),
        Provisioned::Ready
    );
    {
        let directory = directory.lock().expect("lock");
        let desk = &directory["desk@shop.example"];
        assert_eq!(desk["type"], "individual");
        assert_eq!(desk["emails"], json!(["desk@shop.example"]));
        assert_eq!(desk["secrets"], json!(["first"]));
    }
    assert_eq!(
        admin
            .create_account("desk@shop.example", "second", false)
            .await
            .expect("exists"),
        Provisioned::Exists
    );
    assert_eq!(
        directory.lock().expect("lock")["desk@shop.example"]["secrets"],
        json!(["first"]),
        "the existing password stays"
    );
    assert_eq!(
        admin
            .create_account("desk@shop.example", "second", true)
            .await
            .expect("take over"),
        Provisioned::Ready
    );
    assert_eq!(
        directory.lock().expect("lock")["desk@shop.example"]["secrets"],
        json!(["second"])
    );
    admin.drop_account("desk@shop.example").await.expect("drop");
    assert!(directory.lock().expect("lock").is_empty());
    admin
        .drop_account("desk@shop.example")
        .await
        .expect("dropping twice is fine");

    let wrong = StalwartAdmin::new(&url, "admin", "wrong").expect("admin");
    let err = wrong
        .create_account("x@shop.example", "pw", false)
        .await
        .expect_err("unauthorized");
    assert!(format!("{err:#}").contains("unauthorized"), "{err:#}");
}
