//! The part of JMAP (RFC 8620, RFC 8621) anima-mail needs: the session,
//! `Email/changes` from a saved state (so a restart resumes exactly where
//! it stopped), each new message's raw bytes for parsing, and sending a
//! raw mail (upload, `Email/import` into Sent, `EmailSubmission/set`).
//!
//! Why not the `jmap-client` crate: version 0.4 posts to the session's
//! `apiUrl` as given, and Cyrus sends it relative (`/jmap/`), which
//! reqwest refuses; it also brings a second TLS stack (aws-lc). This module
//! resolves the session's URLs against the server's and reuses the
//! workspace's reqwest.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

const CORE: &str = "urn:ietf:params:jmap:core";
const MAIL: &str = "urn:ietf:params:jmap:mail";
const SUBMISSION: &str = "urn:ietf:params:jmap:submission";

/// Ids per `Email/query` page.
const QUERY_PAGE: usize = 500;

/// Changes asked for per `Email/changes` call.
const CHANGES_PER_CALL: u32 = 256;

/// Why a JMAP call failed.
#[derive(Debug, thiserror::Error)]
pub enum JmapError {
    /// The server is down, slow or failing; retry later.
    #[error("JMAP server unavailable: {0}")]
    Unavailable(String),
    /// Wrong credentials.
    #[error("JMAP login refused for {0}")]
    Unauthorized(String),
    /// The saved state is too old for the server to compute changes from;
    /// the caller must resynchronise from a full listing.
    #[error("the server cannot calculate changes from state {0}")]
    CannotCalculateChanges(String),
    /// An answer that does not follow the protocol.
    #[error("JMAP protocol error: {0}")]
    Protocol(String),
    /// The server refused to send a mail (a rejected recipient, a mail it
    /// will not take); sending it again would be refused again.
    #[error("the mail server refused the mail: {0}")]
    Rejected(String),
}

impl From<reqwest::Error> for JmapError {
    fn from(err: reqwest::Error) -> Self {
        JmapError::Unavailable(err.to_string())
    }
}

/// What changed since a state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailChanges {
    /// Ids of new messages, oldest change first.
    pub created: Vec<String>,
    /// Ids whose flags or mailboxes changed.
    pub updated: Vec<String>,
    /// Ids that are gone.
    pub destroyed: Vec<String>,
    /// The state to save and resume from.
    pub new_state: String,
}

/// A message's handle: enough to download and identify it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailRef {
    /// JMAP id.
    pub id: String,
    /// Blob of the raw RFC 5322 message.
    pub blob_id: String,
    /// Size in bytes.
    pub size: u64,
    /// When the server received it (RFC 3339).
    pub received_at: String,
    /// The mailboxes (folders) of the account it is in.
    #[serde(default)]
    pub mailbox_ids: std::collections::HashMap<String, bool>,
    /// Its Message-IDs (without angle brackets), as the server read them.
    #[serde(default)]
    pub message_id: Option<Vec<String>>,
    /// Its `In-Reply-To` ids, as the server read them.
    #[serde(default)]
    pub in_reply_to: Option<Vec<String>>,
    /// Its `References` ids, as the server read them.
    #[serde(default)]
    pub references: Option<Vec<String>>,
    /// Its `From` addresses.
    #[serde(default)]
    pub from: Option<Vec<EmailAddress>>,
    /// Its decoded subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Its attachments, described (not their content).
    #[serde(default)]
    pub attachments: Option<Vec<BodyPart>>,
}

/// A JMAP `EmailBodyPart`, as far as naming it goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BodyPart {
    /// File name, if the mail gives one.
    #[serde(default)]
    pub name: Option<String>,
    /// `type/subtype`.
    #[serde(default, rename = "type")]
    pub media_type: String,
    /// Decoded size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// A JMAP `EmailAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EmailAddress {
    /// The address itself (`null` for a group).
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    api_url: String,
    download_url: String,
    upload_url: String,
    #[serde(default)]
    event_source_url: Option<String>,
    primary_accounts: std::collections::HashMap<String, String>,
}

/// How long one push connection may stay open before it is made anew.
const PUSH_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// An open JMAP push connection (see [`JmapClient::push`]).
pub struct PushStream {
    response: reqwest::Response,
    /// Bytes of an event not yet complete.
    pending: Vec<u8>,
    /// How long to wait for any event, pings included, before the
    /// connection counts as dead.
    patience: Duration,
}

impl PushStream {
    /// Waits for the next `state` event: something changed. An error means
    /// the connection ended or went silent past its pings; the caller
    /// should catch up by a pass and open a new one.
    pub async fn changed(&mut self) -> Result<(), JmapError> {
        loop {
            while let Some(end) = event_end(&self.pending) {
                let event: Vec<u8> = self.pending.drain(..end).collect();
                if event_name(&event) == Some("state") {
                    return Ok(());
                }
            }
            let chunk = tokio::time::timeout(self.patience, self.response.chunk())
                .await
                .map_err(|_| JmapError::Unavailable("eventsource: no ping in time".into()))??;
            match chunk {
                Some(bytes) => self.pending.extend_from_slice(&bytes),
                None => return Err(JmapError::Unavailable("eventsource: stream ended".into())),
            }
        }
    }
}

/// Where the first complete event in `buffer` ends (after its blank line).
fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|at| at + 2);
    let crlf = buffer
        .windows(4)
        .position(|quad| quad == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The `event:` field of one event; `None` for an unnamed (message) event.
fn event_name(event: &[u8]) -> Option<&str> {
    std::str::from_utf8(event).ok()?.lines().find_map(|line| {
        line.strip_prefix("event:")
            .map(|name| name.trim_start_matches(' ').trim_end_matches('\r'))
    })
}

/// A logged-in JMAP mail account.
pub struct JmapClient {
    http: reqwest::Client,
    username: String,
    password: String,
    api_url: Url,
    download_url: String,
    upload_url: String,
    event_source_url: Option<String>,
    account_id: String,
}

impl JmapClient {
    /// Fetches the session at `BASE/.well-known/jmap` with Basic auth.
    pub async fn connect(
        base_url: &str,
        username: &str,
        password: &str,
    ) -> Result<Self, JmapError> {
        let base = Url::parse(base_url)
            .map_err(|err| JmapError::Protocol(format!("{base_url}: {err}")))?;
        // reqwest is built without a TLS crypto provider of its own, so the
        // process needs one before the first client; ring is the one linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let session_url = base
            .join("/.well-known/jmap")
            .map_err(|err| JmapError::Protocol(err.to_string()))?;
        let response = http
            .get(session_url)
            .basic_auth(username, Some(password))
            .send()
            .await?;
        let session: Session = match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(JmapError::Unauthorized(username.to_owned()));
            }
            status if status.is_success() => response
                .json()
                .await
                .map_err(|err| JmapError::Protocol(format!("session: {err}")))?,
            status => return Err(JmapError::Unavailable(format!("session: HTTP {status}"))),
        };
        let account_id = session
            .primary_accounts
            .get(MAIL)
            .cloned()
            .ok_or_else(|| JmapError::Protocol("the session has no mail account".into()))?;
        let api_url = base
            .join(&session.api_url)
            .map_err(|err| JmapError::Protocol(format!("{}: {err}", session.api_url)))?;
        Ok(Self {
            api_url,
            download_url: absolute(&base, &session.download_url),
            upload_url: absolute(&base, &session.upload_url),
            event_source_url: session
                .event_source_url
                .map(|template| absolute(&base, &template)),
            http,
            username: username.to_owned(),
            password: password.to_owned(),
            account_id,
        })
    }

    /// The mail account's id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The server's EventSource push URL template, when it advertises push.
    pub fn event_source_url(&self) -> Option<&str> {
        self.event_source_url.as_deref()
    }

    /// Opens a JMAP push connection (RFC 8620 §7.3, EventSource) for Email
    /// changes, with a `ping` event at least every `ping`. `None` when the
    /// server does not push: no `eventSourceUrl`, or an answer that is not
    /// an event stream (Debian's Cyrus, built without WebSocket support,
    /// advertises the URL but answers it with 204 No Content).
    pub async fn push(&self, ping: Duration) -> Result<Option<PushStream>, JmapError> {
        let Some(template) = &self.event_source_url else {
            return Ok(None);
        };
        let url = template
            .replace("{types}", "Email")
            .replace("{closeafter}", "no")
            .replace("{ping}", &ping.as_secs().max(1).to_string());
        let response = self
            .http
            .get(url)
            .basic_auth(&self.username, Some(&self.password))
            .header("accept", "text/event-stream")
            // The stream lives as long as the follower; liveness is watched
            // through its pings instead of the client's request timeout.
            .timeout(PUSH_LIFETIME)
            .send()
            .await?;
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(JmapError::Unauthorized(self.username.clone()))
            }
            status if status.is_server_error() => Err(JmapError::Unavailable(format!(
                "eventsource: HTTP {status}"
            ))),
            StatusCode::OK if is_stream => Ok(Some(PushStream {
                response,
                pending: Vec::new(),
                patience: ping * 2 + Duration::from_secs(5),
            })),
            _ => Ok(None),
        }
    }

    /// Makes one method call and returns its arguments; a JMAP `error`
    /// response becomes an error.
    async fn call(&self, method: &str, arguments: Value) -> Result<Value, JmapError> {
        let mut answers = self.request(&[MAIL], vec![(method, arguments)]).await?;
        answers
            .pop()
            .ok_or_else(|| JmapError::Protocol(format!("{method}: no method response")))
    }

    /// Makes method calls in one request (later ones may refer to earlier
    /// results) and returns each one's arguments, in order; the first JMAP
    /// `error` response becomes an error.
    async fn request(
        &self,
        capabilities: &[&str],
        calls: Vec<(&str, Value)>,
    ) -> Result<Vec<Value>, JmapError> {
        let names: Vec<&str> = calls.iter().map(|(method, _)| *method).collect();
        let method = names.join(", ");
        let request = json!({
            "using": std::iter::once(CORE).chain(capabilities.iter().copied()).collect::<Vec<_>>(),
            "methodCalls": calls
                .into_iter()
                .enumerate()
                .map(|(index, (method, arguments))| json!([method, arguments, index.to_string()]))
                .collect::<Vec<_>>(),
        });
        let response = self
            .http
            .post(self.api_url.clone())
            .basic_auth(&self.username, Some(&self.password))
            .json(&request)
            .send()
            .await?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(JmapError::Unauthorized(self.username.clone()));
            }
            status if status.is_server_error() => {
                return Err(JmapError::Unavailable(format!("{method}: HTTP {status}")));
            }
            status if !status.is_success() => {
                let text = response.text().await.unwrap_or_default();
                return Err(JmapError::Protocol(format!(
                    "{method}: HTTP {status}: {text}"
                )));
            }
            _ => {}
        }
        let mut body: Value = response
            .json()
            .await
            .map_err(|err| JmapError::Protocol(format!("{method}: {err}")))?;
        let Some(responses) = body["methodResponses"].as_array_mut() else {
            return Err(JmapError::Protocol(format!(
                "{method}: no method responses"
            )));
        };
        let mut answers = Vec::with_capacity(responses.len());
        for answer in responses.iter_mut() {
            let arguments = answer[1].take();
            let Some(name) = answer[0].as_str() else {
                return Err(JmapError::Protocol(format!("{method}: malformed response")));
            };
            if name == "error" {
                let kind = arguments["type"].as_str().unwrap_or("unknown").to_owned();
                return Err(match kind.as_str() {
                    "cannotCalculateChanges" => JmapError::CannotCalculateChanges(
                        arguments["sinceState"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    "serverUnavailable" | "serverFail" => {
                        JmapError::Unavailable(format!("{method}: {kind}"))
                    }
                    _ => JmapError::Protocol(format!(
                        "{method}: {kind}: {}",
                        arguments["description"]
                    )),
                });
            }
            answers.push(arguments);
        }
        Ok(answers)
    }

    /// Sends a raw RFC 5322 mail: uploads it, files it in the account's
    /// Sent mailbox (made on first use) and submits it with this envelope
    /// (RFC 8621 EmailSubmission). A refusal of the submission itself, such
    /// as a rejected recipient, is [`JmapError::Rejected`]; retrying it
    /// would not help.
    pub async fn send(
        &self,
        raw: &[u8],
        mail_from: &str,
        rcpt_to: &[String],
    ) -> Result<(), JmapError> {
        let blob_id = self.upload(raw).await?;
        let sent = self.sent_mailbox().await?;
        let identities = self
            .request(
                &[MAIL, SUBMISSION],
                vec![("Identity/get", json!({"accountId": self.account_id}))],
            )
            .await?;
        let identity = identities[0]["list"][0]["id"]
            .as_str()
            .ok_or_else(|| JmapError::Protocol("the account has no sending identity".into()))?
            .to_owned();
        let imported = self
            .call(
                "Email/import",
                json!({
                    "accountId": self.account_id,
                    "emails": {"mail": {
                        "blobId": blob_id,
                        "mailboxIds": {sent: true},
                        // A draft until the submission is accepted.
                        "keywords": {"$seen": true, "$draft": true},
                    }},
                }),
            )
            .await?;
        // The same mail imported before (a retry after a failed or unknown
        // submission) is sent as that copy.
        let email_id = imported["created"]["mail"]["id"]
            .as_str()
            .or_else(|| imported["notCreated"]["mail"]["existingId"].as_str())
            .ok_or_else(|| {
                JmapError::Rejected(format!("Email/import: {}", imported["notCreated"]["mail"]))
            })?
            .to_owned();
        let submitted = self
            .request(
                &[MAIL, SUBMISSION],
                vec![(
                    "EmailSubmission/set",
                    json!({
                        "accountId": self.account_id,
                        "create": {"submission": {
                            "identityId": identity,
                            "emailId": email_id,
                            "envelope": {
                                "mailFrom": {"email": mail_from},
                                "rcptTo": rcpt_to.iter().map(|rcpt| json!({"email": rcpt})).collect::<Vec<_>>(),
                            },
                        }},
                        "onSuccessUpdateEmail": {"#submission": {"keywords/$draft": null}},
                    }),
                )],
            )
            .await?;
        match submitted[0]["notCreated"].get("submission") {
            Some(error) => Err(JmapError::Rejected(format!(
                "{}: {}",
                error["type"].as_str().unwrap_or("refused"),
                error["description"].as_str().unwrap_or_default()
            ))),
            None => Ok(()),
        }
    }

    /// Whether a mail with this Message-ID (without angle brackets) was
    /// submitted from this account already: [`send`](Self::send) files
    /// the copy in Sent as a draft and the server clears that keyword in
    /// the same call that accepts the submission. A sender that lost its
    /// lease asks before sending again.
    pub async fn was_submitted(&self, message_id: &str) -> Result<bool, JmapError> {
        let Some(sent) = self.mailbox_with_role("sent").await? else {
            return Ok(false);
        };
        let copies = self
            .call(
                "Email/query",
                json!({
                    "accountId": self.account_id,
                    "filter": {
                        "inMailbox": sent,
                        "header": ["Message-ID", message_id],
                        "notKeyword": "$draft",
                    },
                }),
            )
            .await?;
        Ok(copies["ids"].as_array().is_some_and(|ids| !ids.is_empty()))
    }

    /// Uploads a blob; returns its id.
    async fn upload(&self, bytes: &[u8]) -> Result<String, JmapError> {
        let url = self
            .upload_url
            .replace("{accountId}", &encode(&self.account_id));
        let response = self
            .http
            .post(&url)
            .basic_auth(&self.username, Some(&self.password))
            .header("content-type", "message/rfc822")
            .body(bytes.to_vec())
            .send()
            .await?;
        match response.status() {
            status if status.is_success() => {
                let answer: Value = response
                    .json()
                    .await
                    .map_err(|err| JmapError::Protocol(format!("upload: {err}")))?;
                string(&answer, "blobId")
            }
            status if status.is_server_error() => {
                Err(JmapError::Unavailable(format!("upload: HTTP {status}")))
            }
            status => Err(JmapError::Protocol(format!("upload: HTTP {status}"))),
        }
    }

    /// The id of the account's mailbox (folder) with this role
    /// (`inbox`, `sent` …), if it has one.
    pub async fn mailbox_with_role(&self, role: &str) -> Result<Option<String>, JmapError> {
        let listed = self
            .call(
                "Mailbox/get",
                json!({"accountId": self.account_id, "ids": null}),
            )
            .await?;
        Ok(listed["list"].as_array().and_then(|mailboxes| {
            mailboxes
                .iter()
                .find(|mailbox| mailbox["role"] == role)
                .and_then(|mailbox| mailbox["id"].as_str())
                .map(str::to_owned)
        }))
    }

    /// The id of the mailbox with role `sent`, created when missing.
    /// (Right after an account is made, Cyrus 3.6 may refuse the creation
    /// with `invalidProperties` on `parentId` for the life of the
    /// connection: an error the sender retries on a new session.)
    async fn sent_mailbox(&self) -> Result<String, JmapError> {
        if let Some(id) = self.mailbox_with_role("sent").await? {
            return Ok(id);
        }
        let created = self
            .call(
                "Mailbox/set",
                json!({
                    "accountId": self.account_id,
                    "create": {"sent": {"name": "Sent", "role": "sent"}},
                }),
            )
            .await?;
        created["created"]["sent"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                JmapError::Protocol(format!("Mailbox/set Sent: {}", created["notCreated"]))
            })
    }

    /// The account's current Email state, to start following from.
    pub async fn email_state(&self) -> Result<String, JmapError> {
        let answer = self
            .call(
                "Email/get",
                json!({ "accountId": self.account_id, "ids": [] }),
            )
            .await?;
        string(&answer, "state")
    }

    /// Every message id in the account (for a first run or a resync),
    /// oldest first, with the state the listing belongs to.
    pub async fn all_email_ids(&self) -> Result<(Vec<String>, String), JmapError> {
        // The state first: a message arriving during the listing then
        // shows up again in the next changes, and is deduplicated there,
        // rather than being missed.
        let state = self.email_state().await?;
        let mut ids = Vec::new();
        loop {
            let answer = self
                .call(
                    "Email/query",
                    json!({
                        "accountId": self.account_id,
                        "sort": [{ "property": "receivedAt", "isAscending": true }],
                        "position": ids.len(),
                        "limit": QUERY_PAGE,
                    }),
                )
                .await?;
            let page: Vec<String> = serde_json::from_value(answer["ids"].clone())
                .map_err(|err| JmapError::Protocol(format!("Email/query ids: {err}")))?;
            let last = page.len() < QUERY_PAGE;
            ids.extend(page);
            if last {
                break;
            }
        }
        Ok((ids, state))
    }

    /// Everything that changed since `state`, following `hasMoreChanges`.
    pub async fn email_changes(&self, state: &str) -> Result<EmailChanges, JmapError> {
        let mut changes = EmailChanges {
            new_state: state.to_owned(),
            ..Default::default()
        };
        loop {
            let answer = self
                .call(
                    "Email/changes",
                    json!({
                        "accountId": self.account_id,
                        "sinceState": changes.new_state,
                        "maxChanges": CHANGES_PER_CALL,
                    }),
                )
                .await?;
            for (field, list) in [
                ("created", &mut changes.created),
                ("updated", &mut changes.updated),
                ("destroyed", &mut changes.destroyed),
            ] {
                let ids: Vec<String> = serde_json::from_value(answer[field].clone())
                    .map_err(|err| JmapError::Protocol(format!("Email/changes {field}: {err}")))?;
                list.extend(ids);
            }
            changes.new_state = string(&answer, "newState")?;
            if !answer["hasMoreChanges"].as_bool().unwrap_or(false) {
                return Ok(changes);
            }
        }
    }

    /// Blob ids, sizes and the headers routing needs of messages (so an
    /// oversized one is held without downloading it); ids the server no
    /// longer has are left out.
    pub async fn email_refs(&self, ids: &[String]) -> Result<Vec<EmailRef>, JmapError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self
            .call(
                "Email/get",
                json!({
                    "accountId": self.account_id,
                    "ids": ids,
                    "properties": [
                        "id", "blobId", "size", "receivedAt", "mailboxIds", "messageId",
                        "inReplyTo", "references", "from", "subject", "attachments",
                    ],
                }),
            )
            .await?;
        serde_json::from_value(answer["list"].clone())
            .map_err(|err| JmapError::Protocol(format!("Email/get list: {err}")))
    }

    /// The raw bytes of a blob.
    pub async fn download(&self, blob_id: &str) -> Result<Vec<u8>, JmapError> {
        self.download_at_most(blob_id, u64::MAX)
            .await
            .map(Option::unwrap_or_default)
    }

    /// The raw bytes of a blob if it has at most `limit` bytes; `None` as
    /// soon as more arrive (whatever size the listing gave), so no mail
    /// takes more memory than its mailbox accepts.
    pub async fn download_at_most(
        &self,
        blob_id: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, JmapError> {
        let url = self
            .download_url
            .replace("{accountId}", &encode(&self.account_id))
            .replace("{blobId}", &encode(blob_id))
            .replace("{name}", "message.eml")
            .replace("{type}", "message/rfc822");
        let mut response = self
            .http
            .get(&url)
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await?;
        match response.status() {
            status if status.is_success() => {
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Ok(None);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Some(bytes))
            }
            status if status.is_server_error() => Err(JmapError::Unavailable(format!(
                "download {blob_id}: HTTP {status}"
            ))),
            status => Err(JmapError::Protocol(format!(
                "download {blob_id}: HTTP {status}"
            ))),
        }
    }
}

/// A URL template of the session made absolute. Templates are not URLs
/// yet (`Url::join` would escape their `{…}`), so this joins text.
fn absolute(base: &Url, template: &str) -> String {
    if template.starts_with("http://") || template.starts_with("https://") {
        template.to_owned()
    } else if template.starts_with('/') {
        format!("{}{template}", base.origin().ascii_serialization())
    } else {
        format!("{}/{template}", base.as_str().trim_end_matches('/'))
    }
}

fn string(value: &Value, field: &str) -> Result<String, JmapError> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JmapError::Protocol(format!("no {field} in the answer")))
}

/// Percent-encodes a URL template value (RFC 6570 simple expansion).
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Url, absolute, encode};

    #[test]
    fn session_templates_are_made_absolute_without_escaping() {
        let base = Url::parse("http://127.0.0.1:8008/").expect("url");
        assert_eq!(
            absolute(&base, "/jmap/download/{accountId}/{blobId}/{name}"),
            "http://127.0.0.1:8008/jmap/download/{accountId}/{blobId}/{name}"
        );
        assert_eq!(
            absolute(&base, "https://mail.example/{x}"),
            "https://mail.example/{x}"
        );
    }

    #[test]
    fn template_values_are_percent_encoded() {
        assert_eq!(encode("alice@anima.test"), "alice%40anima.test");
        assert_eq!(encode("G1a2-b_c.d~"), "G1a2-b_c.d~");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
