//! Raw inbound mail to what a thread message needs: sender, recipients,
//! subject, Message-ID and threading headers, a plain-text body (HTML
//! converted) and attachments. mail-parser is lenient with malformed MIME,
//! 8-bit headers and encoded words; what is missing gets a stated default,
//! never a failure, because every fetched mail must end up somewhere.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

/// One attachment, bytes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name, or `attachment-N` when the mail gives none.
    pub name: String,
    /// `type/subtype`.
    pub content_type: String,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// An inbound mail, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundMail {
    /// The sender's address (`From`, else `Sender`, else `Return-Path`),
    /// empty when the mail names none.
    pub from: String,
    /// `To` addresses.
    pub to: Vec<String>,
    /// `Cc` addresses.
    pub cc: Vec<String>,
    /// `Delivered-To` and `X-Original-To` addresses (where the MTA put it).
    pub delivered_to: Vec<String>,
    /// Decoded subject, empty when absent.
    pub subject: String,
    /// Message-ID without angle brackets. A mail without one gets
    /// `sha256-<hash of its bytes>@anima.invalid`, so fetching it twice
    /// still gives the same id.
    pub message_id: String,
    /// In-Reply-To ids.
    pub in_reply_to: Vec<String>,
    /// References ids.
    pub references: Vec<String>,
    /// The text body; HTML-only mail converted to text.
    pub body: String,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Size of the raw mail in bytes.
    pub size: usize,
    /// The `X-Anima-WorkItem` header: set on mail Anima sent, so its
    /// presence on inbound mail means our own mail came back (a loop).
    pub anima_work_item: Option<String>,
    /// The topmost `Authentication-Results` header: the receiving server's
    /// verdict on the sender (the only one a mailbox may trust).
    pub authentication_results: Option<String>,
}

impl InboundMail {
    /// Every recipient address: To, Cc and delivery headers.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.delivered_to)
            .map(String::as_str)
    }

    /// Message ids this mail answers or references, for matching it to a
    /// message already in a thread.
    pub fn referenced_ids(&self) -> impl Iterator<Item = &str> {
        self.in_reply_to
            .iter()
            .chain(&self.references)
            .map(String::as_str)
    }
}

/// Parses raw RFC 5322 bytes. Never fails: unparseable input becomes a
/// mail with its bytes as the body, for a human to look at.
pub fn parse(raw: &[u8]) -> InboundMail {
    let fallback_id = format!("sha256-{}@anima.invalid", hex::encode(Sha256::digest(raw)));
    let Some(message) = MessageParser::default().parse(raw) else {
        return InboundMail {
            from: String::new(),
            to: Vec::new(),
            cc: Vec::new(),
            delivered_to: Vec::new(),
            subject: String::new(),
            message_id: fallback_id,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            body: String::from_utf8_lossy(raw).into_owned(),
            attachments: Vec::new(),
            size: raw.len(),
            anima_work_item: None,
            authentication_results: None,
        };
    };
    let addresses = |address: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        address
            .map(|address| {
                address
                    .iter()
                    .filter_map(|addr| addr.address())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let from = addresses(message.from())
        .into_iter()
        .chain(addresses(message.sender()))
        .chain(
            message
                .return_path()
                .as_text()
                .map(|path| path.trim_matches(['<', '>', ' ']).to_owned()),
        )
        .find(|address| !address.is_empty())
        .unwrap_or_default();
    let delivered_to = ["Delivered-To", "X-Original-To"]
        .iter()
        .flat_map(|name| message.header_values(*name).collect::<Vec<_>>())
        .flat_map(header_addresses)
        .collect();
    let body = message
        .body_text(0)
        .map(|text| text.trim_end().to_owned())
        .unwrap_or_default();
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(index, part)| Attachment {
            name: part
                .attachment_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("attachment-{}", index + 1)),
            content_type: part
                .content_type()
                .map(|ct| match &ct.c_subtype {
                    Some(subtype) => format!("{}/{subtype}", ct.c_type),
                    None => ct.c_type.to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_lowercase(),
            bytes: part.contents().to_vec(),
        })
        .collect();
    InboundMail {
        from,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        delivered_to,
        subject: message.subject().unwrap_or_default().trim().to_owned(),
        message_id: message
            .message_id()
            .map(|id| id.trim_matches(['<', '>', ' ']).to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or(fallback_id),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        body,
        attachments,
        size: raw.len(),
        anima_work_item: message
            .header(crate::compose::WORK_ITEM_HEADER)
            .and_then(|value| value.as_text())
            .map(|text| text.trim().to_owned()),
        authentication_results: message
            .headers()
            .iter()
            .find(|header| {
                header
                    .name
                    .as_str()
                    .eq_ignore_ascii_case("Authentication-Results")
            })
            .and_then(|header| raw.get(header.offset_start as usize..header.offset_end as usize))
            .map(|value| String::from_utf8_lossy(value).into_owned()),
    }
}

/// Message ids of an In-Reply-To or References header.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.trim_matches(['<', '>', ' ']).to_owned()],
        HeaderValue::TextList(ids) => ids
            .iter()
            .map(|id| id.trim_matches(['<', '>', ' ']).to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Addresses of a header mail-parser keeps as text or as addresses.
fn header_addresses(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Address(address) => address
            .iter()
            .filter_map(|addr| addr.address())
            .map(str::to_owned)
            .collect(),
        HeaderValue::Text(text) => vec![text.trim_matches(['<', '>', ' ']).to_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_reply_keeps_its_threading_headers() {
        let mail = parse(
            b"From: Ann Lee <ann@example.org>\r\n\
              To: support+WI-12@shop.example\r\n\
              Cc: Bob <bob@example.org>\r\n\
              Delivered-To: support@shop.example\r\n\
              Subject: Re: Export crashed\r\n\
              Message-ID: <r1@example.org>\r\n\
              In-Reply-To: <anima-1@shop.example>\r\n\
              References: <anima-0@shop.example> <anima-1@shop.example>\r\n\
              \r\n\
              Still broken.\r\n\r\n> quoted\r\n",
        );
        assert_eq!(mail.from, "ann@example.org");
        assert_eq!(mail.to, ["support+WI-12@shop.example"]);
        assert_eq!(mail.cc, ["bob@example.org"]);
        assert_eq!(mail.delivered_to, ["support@shop.example"]);
        assert_eq!(mail.subject, "Re: Export crashed");
        assert_eq!(mail.message_id, "r1@example.org");
        assert_eq!(mail.in_reply_to, ["anima-1@shop.example"]);
        assert_eq!(
            mail.references,
            ["anima-0@shop.example", "anima-1@shop.example"]
        );
        assert!(mail.body.starts_with("Still broken."), "{}", mail.body);
        assert_eq!(mail.recipients().count(), 3);
    }

    #[test]
    fn encoded_words_8bit_and_html_only_mail_become_text() {
        let mail = parse(
            "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.de>\r\n\
             To: support@shop.example\r\n\
             Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             \r\n\
             <html><body><p>Der <b>Export</b> bricht ab.</p><p>Grüße</p></body></html>\r\n"
                .as_bytes(),
        );
        assert_eq!(mail.subject, "Grüße aus Köln");
        assert!(mail.body.contains("Der Export bricht ab."), "{}", mail.body);
        assert!(!mail.body.contains('<'), "{}", mail.body);
    }

    #[test]
    fn missing_headers_and_garbage_still_give_a_mail() {
        let raw = b"this is not really a mail\r\nno headers at all";
        let first = parse(raw);
        assert_eq!(first.message_id, parse(raw).message_id, "stable id");
        assert!(first.message_id.ends_with("@anima.invalid"));
        assert_eq!(first.from, "");
        let empty = parse(b"");
        assert!(empty.message_id.starts_with("sha256-"));
    }

    #[test]
    fn attachments_come_out_decoded() {
        let mail = parse(
            b"From: ann@example.org\r\n\
              To: support@shop.example\r\n\
              Subject: logs\r\n\
              MIME-Version: 1.0\r\n\
              Content-Type: multipart/mixed; boundary=XX\r\n\
              \r\n\
              --XX\r\n\
              Content-Type: text/plain\r\n\
              \r\n\
              See the log.\r\n\
              --XX\r\n\
              Content-Type: text/plain; name=export.log\r\n\
              Content-Disposition: attachment; filename=export.log\r\n\
              Content-Transfer-Encoding: base64\r\n\
              \r\n\
              T3V0IG9mIG1lbW9yeQ==\r\n\
              --XX--\r\n",
        );
        assert_eq!(mail.body, "See the log.");
        assert_eq!(mail.attachments.len(), 1);
        assert_eq!(mail.attachments[0].name, "export.log");
        assert_eq!(mail.attachments[0].content_type, "text/plain");
        assert_eq!(mail.attachments[0].bytes, b"Out of memory");
    }
}
