//! Outbound mail from a thread message: sent from the mailbox, with the
//! work item's plus-address as `Reply-To` and `X-Anima-*` headers, and
//! Message-ID / In-Reply-To / References set so that the answer threads
//! back to the same work item (by address, and by reference when a client
//! drops the `+tag`).

use anima_core::{
    mail::{Address, work_item_address},
    planning::WorkItemKey,
    thread::EmailHeaders,
};
use mail_builder::{MessageBuilder, headers::raw::Raw};

/// Header naming the work item, on every mail Anima sends; inbound mail
/// carrying it is our own coming back (a loop).
pub const WORK_ITEM_HEADER: &str = "X-Anima-WorkItem";
/// Header naming the project.
pub const PROJECT_HEADER: &str = "X-Anima-Project";

/// What an outbound mail is made of.
pub struct Outbound<'a> {
    /// The mailbox it is sent from (`box@domain`).
    pub mailbox: &'a Address,
    /// Display name of the sender, e.g. the project's name.
    pub sender_name: &'a str,
    /// The work item whose thread it belongs to.
    pub work_item: WorkItemKey,
    /// The project's id.
    pub project_id: &'a str,
    /// Recipients, subject and threading ids from the thread message.
    pub headers: &'a EmailHeaders,
    /// The text.
    pub body: &'a str,
}

/// The RFC 5322 bytes of the mail. The Message-ID is the thread message's
/// (assigned when it was queued), so a retried send is the same mail.
pub fn compose(outbound: &Outbound<'_>) -> std::io::Result<Vec<u8>> {
    let headers = outbound.headers;
    let from = format!("{}@{}", outbound.mailbox.local, outbound.mailbox.domain);
    let reply_to = work_item_address(outbound.mailbox, outbound.work_item);
    let mut message = MessageBuilder::new()
        .from((outbound.sender_name.to_owned(), from))
        .reply_to(reply_to)
        .to(headers.to.clone())
        .subject(headers.subject.clone())
        .message_id(headers.message_id.clone())
        .header(WORK_ITEM_HEADER, Raw::new(outbound.work_item.to_string()))
        .header(PROJECT_HEADER, Raw::new(outbound.project_id.to_owned()))
        .text_body(outbound.body.to_owned());
    if !headers.cc.is_empty() {
        message = message.cc(headers.cc.clone());
    }
    if !headers.in_reply_to.is_empty() {
        message = message.in_reply_to(headers.in_reply_to.clone());
    }
    if !headers.references.is_empty() {
        message = message.references(headers.references.clone());
    }
    message.write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn a_composed_mail_threads_back_and_is_recognised_as_ours() {
        let mailbox = Address::parse("support@shop.example").expect("mailbox");
        let headers = EmailHeaders {
            from: String::new(),
            to: vec!["ann@example.org".into()],
            cc: vec!["bob@example.org".into()],
            subject: "WI-12 Export crashes — Grüße".into(),
            message_id: "anima-0192@shop.example".into(),
            in_reply_to: "r1@example.org".into(),
            references: vec!["r0@example.org".into(), "r1@example.org".into()],
        };
        let raw = compose(&Outbound {
            mailbox: &mailbox,
            sender_name: "Shop",
            work_item: WorkItemKey(12),
            project_id: "0192-project",
            headers: &headers,
            body: "We stream the rows now.",
        })
        .expect("compose");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("Reply-To: <support+WI-12@shop.example>"),
            "{text}"
        );
        assert!(text.contains("X-Anima-WorkItem: WI-12"), "{text}");
        assert!(text.contains("X-Anima-Project: 0192-project"), "{text}");

        let parsed = parse(&raw);
        assert_eq!(parsed.from, "support@shop.example");
        assert_eq!(parsed.to, ["ann@example.org"]);
        assert_eq!(parsed.cc, ["bob@example.org"]);
        assert_eq!(parsed.subject, headers.subject);
        assert_eq!(parsed.message_id, "anima-0192@shop.example");
        assert_eq!(parsed.in_reply_to, ["r1@example.org"]);
        assert_eq!(parsed.references, ["r0@example.org", "r1@example.org"]);
        assert_eq!(parsed.anima_work_item.as_deref(), Some("WI-12"));
        assert_eq!(parsed.body, "We stream the rows now.");
    }
}
