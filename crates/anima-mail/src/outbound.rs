//! Sending: outbound-email messages queued in threads are leased from
//! anima-server, composed ([`crate::compose`]) and sent by JMAP
//! EmailSubmission from the project's mailbox; how each attempt ended goes
//! back to the thread message. A failed attempt is retried with doubling
//! waits, a refusal or the last attempt fails it for good, visibly.
//!
//! A sender that dies between the mail server's acceptance and its report
//! loses its lease; the next attempt first asks the mail server whether the
//! mail was submitted (its copy in Sent stops being a draft in the same
//! call that accepts it) and then only reports it sent. Only a server that
//! takes the mail but dies before it marks the copy could see it twice.

use std::{collections::HashMap, time::Duration};

use anima_core::{mail::Address, planning::WorkItemKey, thread::EmailHeaders};
use anima_proto::v1 as pb;
use anyhow::Context;

use crate::{
    admin::account_password,
    compose::{Outbound, compose},
    jmap::{JmapClient, JmapError},
    server::ServerLink,
};

/// Mails leased per round.
const CLAIM_LIMIT: i32 = 20;

/// How long a lease lasts: longer than any one send takes.
const LEASE_SECONDS: i32 = 300;

/// How sending retries.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Attempts before a mail fails for good.
    pub attempts: i64,
    /// Wait after the first failure; it doubles after each further one.
    pub first_wait: Duration,
}

/// A sender: logged-in JMAP clients by mailbox address, kept between
/// rounds.
pub struct Sender {
    link: ServerLink,
    jmap_url: String,
    account_secret: String,
    retries: Retries,
    clients: HashMap<String, JmapClient>,
}

impl Sender {
    /// A sender reaching anima-server through `link` and the mail server
    /// at `jmap_url`.
    pub fn new(link: ServerLink, jmap_url: &str, account_secret: &str, retries: Retries) -> Self {
        Self {
            link,
            jmap_url: jmap_url.to_owned(),
            account_secret: account_secret.to_owned(),
            retries,
            clients: HashMap::new(),
        }
    }

    /// Sends what is due; returns how many were taken by the mail server.
    pub async fn send_due(&mut self) -> anyhow::Result<usize> {
        let mut sent = 0;
        for mail in self.link.claim_outbound(CLAIM_LIMIT, LEASE_SECONDS).await? {
            let message_id = mail
                .message
                .as_ref()
                .map(|message| message.id.clone())
                .unwrap_or_default();
            let outcome = self.send(&mail).await;
            let report = match outcome {
                Ok(()) => {
                    sent += 1;
                    pb::ReportDeliveryRequest {
                        message_id,
                        sent: true,
                        ..Default::default()
                    }
                }
                Err(err) => {
                    let final_attempt = mail.attempt >= self.retries.attempts;
                    let refused = matches!(
                        err.downcast_ref::<JmapError>(),
                        Some(JmapError::Rejected(_))
                    );
                    if !refused {
                        // The session may be what failed.
                        self.clients.remove(&mail.from_address);
                    }
                    let retry_after_ms = if refused || final_attempt {
                        0
                    } else {
                        let doublings = u32::try_from(mail.attempt - 1).unwrap_or(u32::MAX).min(16);
                        let wait = self.retries.first_wait.saturating_mul(1 << doublings);
                        i64::try_from(wait.min(Duration::from_secs(3600)).as_millis())
                            .unwrap_or(i64::MAX)
                    };
                    tracing::warn!(message = %message_id, attempt = mail.attempt, retry_after_ms, error = %format!("{err:#}"), "sending failed");
                    pb::ReportDeliveryRequest {
                        message_id,
                        sent: false,
                        error: format!("attempt {}: {err:#}", mail.attempt),
                        retry_after_ms,
                    }
                }
            };
            self.link.report_delivery(report).await?;
        }
        Ok(sent)
    }

    async fn send(&mut self, mail: &pb::OutboundMail) -> anyhow::Result<()> {
        let message = mail
            .message
            .as_ref()
            .context("the lease carries no message")?;
        let email = message.email.clone().unwrap_or_default();
        let headers = EmailHeaders {
            from: String::new(),
            to: email.to,
            cc: email.cc,
            subject: email.subject,
            message_id: email.message_id,
            in_reply_to: email.in_reply_to,
            references: email.references,
        };
        let mailbox = Address::parse(&mail.from_address)
            .with_context(|| format!("mailbox address {:?}", mail.from_address))?;
        let work_item: WorkItemKey = mail.work_item_key.parse()?;
        let raw = compose(&Outbound {
            mailbox: &mailbox,
            sender_name: &mail.from_name,
            work_item,
            project_id: &mail.project_id,
            headers: &headers,
            body: &message.body,
        })?;
        let recipients: Vec<String> = headers.to.iter().chain(&headers.cc).cloned().collect();
        if !self.clients.contains_key(&mail.from_address) {
            let password = account_password(&self.account_secret, &mail.from_address);
            let client = JmapClient::connect(&self.jmap_url, &mail.from_address, &password).await?;
            self.clients.insert(mail.from_address.clone(), client);
        }
        let client = self
            .clients
            .get(&mail.from_address)
            .context("the mailbox's session")?;
        if mail.attempt > 1 && client.was_submitted(&headers.message_id).await? {
            tracing::info!(message = %message.id, "already submitted by an earlier attempt");
            return Ok(());
        }
        client.send(&raw, &mail.from_address, &recipients).await?;
        Ok(())
    }
}
