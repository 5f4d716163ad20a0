//! Work item threads and human decisions. Every work item has one thread
//! (its id is the work item's); messages come from humans, Akh personas and
//! email, in a per-thread sequence. A decision is a first-class "this work
//! item needs a human" record with the single input needed.

use serde::{Deserialize, Serialize};

use crate::{
    error::{DomainError, reason},
    planning::Actor,
    validate,
};

/// Largest message body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 50;
/// Most recipients of one email (to + cc).
pub const MAX_RECIPIENTS: usize = 100;
/// Most choices a decision may offer.
pub const MAX_CHOICES: usize = 20;
/// Longest decision question (and reason for withdrawing one), in characters.
pub const MAX_QUESTION_CHARS: usize = 2_000;
/// Longest answer to a decision, in characters.
pub const MAX_ANSWER_CHARS: usize = 10_000;

named_enum!(
    /// Who wrote a message, by kind.
    MessageKind, "message kind" {
        /// A person, through a client.
        Human = "human",
        /// An AI persona speaking for an agent session or a service.
        Akh = "akh",
        /// Mail that arrived for the work item.
        InboundEmail = "inbound_email",
        /// Mail sent from the thread; queued for the mail worker.
        OutboundEmail = "outbound_email",
        /// Written by the server itself (e.g. a decision's answer).
        System = "system",
    }
);

impl MessageKind {
    /// Only AI contributions may become description revisions.
    pub fn is_promotable(self) -> bool {
        self == MessageKind::Akh
    }
}

named_enum!(
    /// Where an outbound email stands; `None` for other messages.
    DeliveryState, "delivery state" {
        /// Waiting in the outbound queue.
        Queued = "queued",
        /// Claimed by the mail worker.
        Sending = "sending",
        /// Accepted by the mail server.
        Sent = "sent",
        /// Given up; see the error.
        Failed = "failed",
    }
);

/// Structured headers of an email message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailHeaders {
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// `Message-ID`, without angle brackets.
    pub message_id: String,
    /// `In-Reply-To`.
    pub in_reply_to: String,
    /// `References`, oldest first.
    pub references: Vec<String>,
}

/// A file attached to a message, stored in the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Library document id.
    pub document_id: String,
    /// File name as sent.
    pub file_name: String,
    /// MIME type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
}

/// One message of a thread. Also the payload of its `message.posted` event,
/// so live streams deliver it without reading it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// UUIDv7.
    pub id: String,
    /// The work item (and thread).
    pub work_item_id: String,
    /// Its project.
    pub project_id: String,
    /// 1, 2, 3 … within the thread.
    pub sequence: i64,
    /// Who wrote it, by kind.
    pub kind: MessageKind,
    /// Who wrote it.
    pub author: Actor,
    /// The text.
    pub body: String,
    /// Email messages only.
    pub email: Option<EmailHeaders>,
    /// Attached files.
    pub attachments: Vec<AttachmentRef>,
    /// Outbound email only.
    pub delivery_state: Option<DeliveryState>,
    /// Why delivery failed, if it did.
    pub delivery_error: String,
    /// When it was written.
    pub created_at: i64,
}

/// What posting a message needs (already validated).
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The work item whose thread it joins.
    pub work_item_id: String,
    /// Its kind.
    pub kind: MessageKind,
    /// Who writes it.
    pub author: Actor,
    /// The text.
    pub body: String,
    /// Email headers, for email kinds.
    pub email: Option<EmailHeaders>,
    /// Attached files.
    pub attachments: Vec<AttachmentRef>,
    /// A second post with the same key returns the first message.
    pub idempotency_key: Option<String>,
}

/// Checks a message body: present and at most [`MAX_BODY_BYTES`].
pub fn body(value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            "body must not be empty",
        ));
    }
    if value.len() > MAX_BODY_BYTES {
        return Err(DomainError::invalid_argument(
            reason::FIELD_TOO_LONG,
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn address(field: &str, value: &str) -> Result<(), DomainError> {
    let well_formed = value
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;".contains(c));
    if !well_formed {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("{field} {value:?} is not an email address"),
        ));
    }
    validate::max_chars(field, value, validate::MAX_NAME_CHARS)
}

/// Checks the headers of an email message. Inbound mail must say who sent
/// it and carry its `Message-ID`; outbound mail needs a recipient and a
/// subject (the sender is the project's mailbox, filled in by the worker).
pub fn email_headers(headers: &EmailHeaders, kind: MessageKind) -> Result<(), DomainError> {
    if headers.to.len() + headers.cc.len() > MAX_RECIPIENTS {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    for recipient in headers.to.iter().chain(&headers.cc) {
        address("recipient", recipient)?;
    }
    if !headers.from.is_empty() {
        address("from", &headers.from)?;
    }
    validate::max_chars("subject", &headers.subject, 998)?;
    if headers.subject.chars().any(|c| c.is_control() && c != '\t') {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            "subject must be one line without control characters",
        ));
    }
    if headers.references.len() > MAX_REFERENCES {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("at most {MAX_REFERENCES} references"),
        ));
    }
    if kind == MessageKind::OutboundEmail {
        // The server names its own mail: a chosen Message-ID could claim
        // another thread's replies.
        if !headers.message_id.is_empty() {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "outbound email gets its Message-ID from the server; leave email.message_id empty",
            ));
        }
        if !headers.in_reply_to.is_empty() {
            crate::mail::msg_id("email.in_reply_to", &headers.in_reply_to)?;
        }
        for id in &headers.references {
            crate::mail::msg_id("email.references", id)?;
        }
    }
    match kind {
        MessageKind::InboundEmail if headers.from.is_empty() || headers.message_id.is_empty() => {
            Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "inbound email needs email.from and email.message_id",
            ))
        }
        MessageKind::OutboundEmail if headers.to.is_empty() => Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            "outbound email needs at least one recipient in email.to",
        )),
        MessageKind::OutboundEmail if headers.subject.trim().is_empty() => {
            Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "outbound email needs email.subject",
            ))
        }
        _ => Ok(()),
    }
}

/// Most Message-IDs an email's References may list.
pub const MAX_REFERENCES: usize = 100;

/// Checks attachment references.
pub fn attachments(attachments: &[AttachmentRef]) -> Result<(), DomainError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    for attachment in attachments {
        crate::id::parse_id(&attachment.document_id, "attachment document_id")?;
        validate::name("attachment file_name", &attachment.file_name)?;
        validate::max_chars("attachment media_type", &attachment.media_type, 255)?;
        if attachment.size_bytes < 0 {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "attachment size_bytes must not be negative",
            ));
        }
    }
    Ok(())
}

named_enum!(
    /// Where a decision stands.
    DecisionState, "decision state" {
        /// Waiting for a human.
        Open = "open",
        /// Answered.
        Resolved = "resolved",
        /// Withdrawn.
        Cancelled = "cancelled",
    }
);

/// "This work item needs a human."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// UUIDv7.
    pub id: String,
    /// The work item it blocks.
    pub work_item_id: String,
    /// Its project.
    pub project_id: String,
    /// What is asked.
    pub question: String,
    /// The single input needed, e.g. "Target date".
    pub input_label: String,
    /// Allowed answers; empty means free text.
    pub choices: Vec<String>,
    /// Who asked.
    pub asked_by: Actor,
    /// The user expected to answer, if any.
    pub assignee_user_id: Option<String>,
    /// Where it stands.
    pub state: DecisionState,
    /// The answer, or the reason it was cancelled.
    pub answer: String,
    /// Who answered or cancelled.
    pub answered_by: Option<String>,
    /// When it was asked.
    pub created_at: i64,
    /// When it was answered or cancelled.
    pub resolved_at: Option<i64>,
}

/// What asking for a decision needs (already validated).
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The work item.
    pub work_item_id: String,
    /// What is asked.
    pub question: String,
    /// The single input needed.
    pub input_label: String,
    /// Allowed answers.
    pub choices: Vec<String>,
    /// Who asks.
    pub asked_by: Actor,
    /// Who should answer.
    pub assignee_user_id: Option<String>,
}

/// Checks what asking for a decision needs, from any client: a question,
/// the label of the single input needed, and distinct choices.
pub fn decision_request(
    question: &str,
    input_label: &str,
    choices: &[String],
) -> Result<(), DomainError> {
    if question.trim().is_empty() {
        return Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            "question must not be empty",
        ));
    }
    validate::max_chars("question", question, MAX_QUESTION_CHARS)?;
    validate::name("input_label", input_label)?;
    self::choices(choices)
}

/// Checks the choices of a decision: few, named, distinct.
pub fn choices(choices: &[String]) -> Result<(), DomainError> {
    if choices.len() > MAX_CHOICES {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("at most {MAX_CHOICES} choices"),
        ));
    }
    for (index, choice) in choices.iter().enumerate() {
        validate::name("choice", choice)?;
        if choices[..index].contains(choice) {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                format!("choice {choice:?} appears twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded() {
        assert!(body("hi").is_ok());
        assert_eq!(
            body(" \n").map_err(|e| e.reason),
            Err(reason::FIELD_REQUIRED)
        );
        assert!(body(&"x".repeat(MAX_BODY_BYTES)).is_ok());
        assert_eq!(
            body(&"x".repeat(MAX_BODY_BYTES + 1)).map_err(|e| e.reason),
            Err(reason::FIELD_TOO_LONG)
        );
    }

    #[test]
    fn email_headers_are_structured() {
        let outbound = EmailHeaders {
            to: vec!["a@example.org".into()],
            subject: "Hello".into(),
            ..Default::default()
        };
        assert!(email_headers(&outbound, MessageKind::OutboundEmail).is_ok());
        let no_subject = EmailHeaders {
            subject: String::new(),
            ..outbound.clone()
        };
        assert!(email_headers(&no_subject, MessageKind::OutboundEmail).is_err());
        assert!(email_headers(&outbound, MessageKind::InboundEmail).is_err());
        let bad = EmailHeaders {
            to: vec!["Ann <a@example.org>".into()],
            ..outbound
        };
        assert!(email_headers(&bad, MessageKind::OutboundEmail).is_err());
    }

    /// Issue 21: a member's outbound mail carried its own Message-ID and
    /// threading ids into the mail's headers verbatim.
    #[test]
    fn outbound_threading_ids_cannot_write_headers() {
        let outbound = EmailHeaders {
            to: vec!["a@example.org".into()],
            subject: "Hello".into(),
            in_reply_to: "r1@example.org".into(),
            references: vec!["r0@example.org".into(), "r1@[10.0.0.1]".into()],
            ..Default::default()
        };
        assert!(email_headers(&outbound, MessageKind::OutboundEmail).is_ok());
        let attacks = [
            EmailHeaders {
                message_id: "theirs@victim.example".into(),
                ..outbound.clone()
            },
            EmailHeaders {
                in_reply_to: "r1@example.org>\r\nBcc: all@example.org".into(),
                ..outbound.clone()
            },
            EmailHeaders {
                references: vec!["a@b> <c@d".into()],
                ..outbound.clone()
            },
            EmailHeaders {
                references: vec!["no-at-sign".into()],
                ..outbound.clone()
            },
            EmailHeaders {
                subject: "Hi\r\nBcc: all@example.org".into(),
                ..outbound.clone()
            },
            EmailHeaders {
                references: vec!["r@example.org".into(); MAX_REFERENCES + 1],
                ..outbound
            },
        ];
        for attack in attacks {
            let err = email_headers(&attack, MessageKind::OutboundEmail).expect_err("refused");
            assert_eq!(err.reason, reason::INVALID_FIELD, "{attack:?}");
        }
    }

    #[test]
    fn choices_are_distinct() {
        assert!(choices(&["yes".into(), "no".into()]).is_ok());
        assert!(choices(&["yes".into(), "yes".into()]).is_err());
        assert!(choices(&[String::new()]).is_err());
    }
}
