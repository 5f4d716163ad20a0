//! Mail addresses of work items: a mailbox `box@domain` gives every work
//! item the plus-address `box+WI-12@domain`. Inbound mail names its work
//! item by that address; outbound mail sets it as `Reply-To` so that
//! answers come back to the same thread.

use serde::{Deserialize, Serialize};

use crate::{
    planning::{Actor, WorkItemKey},
    thread::{AttachmentRef, EmailHeaders},
};

/// An address split at `@` and at the first `+` of its local part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The local part before any `+`, lower-cased.
    pub local: String,
    /// What follows the `+`, as written.
    pub tag: Option<String>,
    /// The domain, lower-cased.
    pub domain: String,
}

impl Address {
    /// Parses `local[+tag]@domain`, with or without a display name and
    /// angle brackets (`Support <support+WI-3@x.org>`). `None` for text
    /// that is not one address.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bare = match (text.rfind('<'), text.rfind('>')) {
            (Some(open), Some(close)) if open < close => &text[open + 1..close],
            _ => text,
        };
        let (local, domain) = bare.trim().rsplit_once('@')?;
        if local.is_empty()
            || domain.is_empty()
            || (!domain.contains('.') && domain != "localhost")
            || bare
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ','))
        {
            return None;
        }
        let (base, tag) = match local.split_once('+') {
            Some((base, tag)) => (base, Some(tag.to_owned())),
            None => (local, None),
        };
        if base.is_empty() {
            return None;
        }
        Some(Self {
            local: base.to_lowercase(),
            tag,
            domain: domain.to_lowercase(),
        })
    }

    /// Whether this is `mailbox` itself or one of its plus-addresses.
    pub fn belongs_to(&self, mailbox: &Address) -> bool {
        self.local == mailbox.local && self.domain == mailbox.domain
    }

    /// The work item this address names, if its tag is a key (`WI-12`).
    pub fn work_item(&self) -> Option<WorkItemKey> {
        self.tag.as_deref().and_then(|tag| tag.parse().ok())
    }
}

/// The plus-address of a work item in a mailbox: `box+WI-12@domain`.
pub fn work_item_address(mailbox: &Address, key: WorkItemKey) -> String {
    format!("{}+{key}@{}", mailbox.local, mailbox.domain)
}

/// What the recipients of a mail to a mailbox say about its work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// No recipient is a work-item address of the mailbox.
    Nothing,
    /// Every such recipient names this work item.
    WorkItem(WorkItemKey),
    /// Recipients name different work items, for a human to sort.
    Ambiguous,
}

/// The work item that mail to `mailbox` names by plus-address, looking at
/// every recipient (To, Cc, Delivered-To, envelope).
pub fn addressed_work_item<'a>(
    mailbox: &Address,
    recipients: impl IntoIterator<Item = &'a str>,
) -> Addressed {
    let mut found = Addressed::Nothing;
    for address in recipients.into_iter().filter_map(Address::parse) {
        if !address.belongs_to(mailbox) {
            continue;
        }
        match (address.work_item(), found) {
            (Some(key), Addressed::Nothing) => found = Addressed::WorkItem(key),
            (Some(key), Addressed::WorkItem(first)) if key != first => {
                return Addressed::Ambiguous;
            }
            _ => {}
        }
    }
    found
}

/// Which senders a mailbox accepts: addresses or bare domains, lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreeningRules {
    /// Always refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// When not empty, only these are accepted.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The authserv-id of the receiving mail server whose
    /// `Authentication-Results` this mailbox trusts (e.g. `mx.shop.example`);
    /// when set, mail whose sender that server did not authenticate (SPF,
    /// DKIM or DMARC passing for the From domain) is held. Empty: no check.
    #[serde(default)]
    pub trusted_authserv_id: String,
}

impl ScreeningRules {
    /// Whether `sender` passes: not denied, and allowed when there is an
    /// allow list.
    pub fn admits(&self, sender: &str) -> bool {
        let sender = sender.to_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, domain)| domain);
        let matches = |entry: &String| *entry == sender || *entry == domain;
        !self.deny.iter().any(matches) && (self.allow.is_empty() || self.allow.iter().any(matches))
    }
}

named_enum!(
    /// Where a mailbox is in its life.
    MailboxState, "mailbox state" {
        /// Followed: its mail is fetched and routed.
        Active = "active",
        /// Not followed: its address already has an account on the mail
        /// server that Anima did not create (see `problem`); a server admin
        /// may adopt it, else it can only be deleted.
        Refused = "refused",
        /// Deleted or rotated away: anima-mail removes its account from the
        /// mail server, then the mailbox is gone.
        Dropping = "dropping",
    }
);

/// A mailbox of the mail server that anima-mail follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// UUIDv7.
    pub id: String,
    /// Its address, lower-case.
    pub address: String,
    /// Display name on outbound mail.
    pub display_name: String,
    /// The projects it serves: at least one; several make a gather box.
    pub project_ids: Vec<String>,
    /// Which senders it accepts.
    pub rules: ScreeningRules,
    /// Largest mail accepted, in bytes.
    pub max_size: i64,
    /// Where it is in its life.
    pub state: MailboxState,
    /// The JMAP state synchronisation resumes from.
    pub jmap_state: Option<String>,
    /// A server admin adopted an account that existed on the mail server:
    /// Anima may set its password, and never deletes it.
    pub adopted: bool,
    /// Anima made the account (the worker confirmed it): Anima may set its
    /// password, and deletes it with the mailbox.
    pub provisioned: bool,
    /// Whether the first synchronisation takes the account's existing mail
    /// too (else it starts at the mailbox's creation).
    pub import_history: bool,
    /// Why the mailbox is refused; empty otherwise.
    pub problem: String,
    /// Creation time, µs.
    pub created_at: i64,
}

impl Mailbox {
    /// A gather mailbox serves several projects and routes only by
    /// plus-address or reply references.
    pub fn is_gather(&self) -> bool {
        self.project_ids.len() > 1
    }
}

/// A mailbox to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailbox {
    /// Its address.
    pub address: String,
    /// Display name.
    pub display_name: String,
    /// The projects it serves (at least one).
    pub project_ids: Vec<String>,
    /// Screening rules.
    pub rules: ScreeningRules,
    /// Largest mail accepted, in bytes.
    pub max_size: i64,
    /// Take over an account that exists on the mail server (server admins
    /// only; see [`Mailbox::adopted`]).
    pub adopted: bool,
    /// Fetch the account's existing mail too.
    pub import_history: bool,
}

/// Changes to a mailbox's settings; `None` keeps the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New screening rules.
    pub rules: Option<ScreeningRules>,
    /// New size limit.
    pub max_size: Option<i64>,
}

/// Most work items one ClassifyMail call weighs a mail against: anima-ai
/// refuses more, and anima-server offers at most this many.
pub const MAX_CLASSIFY_CANDIDATES: usize = 200;

/// Default size limit of a mailbox: 25 MiB.
pub const DEFAULT_MAX_SIZE: i64 = 25 * 1024 * 1024;

/// Refuses an address outside the mail domains a server admin configured
/// (`MAIL_DOMAIN_NOT_ALLOWED`): project owners make addresses only there.
pub fn allowed_domain(address: &str, domains: &[String]) -> Result<(), crate::DomainError> {
    let domain = address.rsplit_once('@').map_or("", |(_, domain)| domain);
    if domains
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(domain))
    {
        return Ok(());
    }
    Err(crate::DomainError::new(
        crate::ErrorCode::FailedPrecondition,
        crate::error::reason::MAIL_DOMAIN_NOT_ALLOWED,
        if domains.is_empty() {
            "this server has no mail domains configured (mail_domains / ANIMA_MAIL_DOMAINS)"
                .to_owned()
        } else {
            format!(
                "Anima makes addresses only in {}; {domain:?} is not one of them",
                domains.join(", ")
            )
        },
    ))
}

/// Checks a mailbox address: `local@domain`, without a `+` tag (the tags
/// are the work items'). Returns it lower-case.
pub fn mailbox_address(raw: &str) -> Result<String, crate::DomainError> {
    let invalid = |why: &str| {
        crate::DomainError::invalid_argument(
            crate::error::reason::INVALID_FIELD,
            format!("address {raw:?} {why}"),
        )
    };
    if raw.trim().contains(['<', '>', ' ']) {
        return Err(invalid("must be a bare address"));
    }
    let address = Address::parse(raw).ok_or_else(|| invalid("is not local@domain"))?;
    if address.tag.is_some() {
        return Err(invalid("must not carry a +tag"));
    }
    Ok(format!("{}@{}", address.local, address.domain))
}

/// Checks a Message-ID as RFC 5322 writes it between `<` and `>`
/// (`id-left@id-right`): printable ASCII without brackets, quotes,
/// separators or whitespace, so that no id written into a header can end
/// it, start another, or smuggle a second id.
pub fn msg_id(field: &str, value: &str) -> Result<(), crate::DomainError> {
    let well_formed = value.len() <= 998
        && value.split_once('@').is_some_and(|(left, right)| {
            !left.is_empty() && !right.is_empty() && !right.contains('@')
        })
        && value
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"<>\"(),;:\\".contains(&byte));
    if well_formed {
        Ok(())
    } else {
        Err(crate::DomainError::invalid_argument(
            crate::error::reason::INVALID_FIELD,
            format!("{field} {value:?} is not a Message-ID (id@domain, without <>)"),
        ))
    }
}

/// Whether the topmost `Authentication-Results` header (`header`, the one
/// the receiving server added last) comes from `authserv_id` and says the
/// `from` address's domain was authenticated: `dmarc=pass`, or `dkim=pass`
/// signed by that domain, or `spf=pass` for a return path in it. RFC 8601
/// servers remove headers that claim their own id from incoming mail, so
/// a sender cannot write this header for them.
pub fn sender_authenticated(header: &str, authserv_id: &str, from: &str) -> bool {
    let Some(domain) = from
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_lowercase())
    else {
        return false;
    };
    let unfolded: String = strip_comments_and_quotes(header)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut parts = unfolded.split(';').map(str::trim);
    let Some(id) = parts.next().and_then(|id| id.split(' ').next()) else {
        return false;
    };
    if !id.eq_ignore_ascii_case(authserv_id) {
        return false;
    }
    let of_domain = |value: &str| {
        let value = value
            .rsplit_once('@')
            .map_or(value, |(_, d)| d)
            .to_lowercase();
        value == domain || domain.ends_with(&format!(".{value}"))
    };
    parts.any(|result| {
        let mut tokens = result.split(' ');
        let Some((method, outcome)) = tokens.next().and_then(|t| t.split_once('=')) else {
            return false;
        };
        if !outcome.eq_ignore_ascii_case("pass") {
            return false;
        }
        let property = |name: &str| {
            result.split(' ').find_map(|token| {
                token
                    .split_once('=')
                    .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value)
            })
        };
        match method.to_ascii_lowercase().as_str() {
            "dmarc" => property("header.from").is_some_and(of_domain),
            "dkim" => property("header.d").is_some_and(of_domain),
            "spf" => property("smtp.mailfrom").is_some_and(of_domain),
            _ => false,
        }
    })
}

/// The text without RFC 5322 comments (`(…)`, nested) and quoted strings
/// (`"…"`, with `\\` escapes): neither may carry a `;` or a `method=result`
/// that counts, since a sender chooses what the server quotes of their
/// envelope.
fn strip_comments_and_quotes(text: &str) -> String {
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    text.chars()
        .filter(|c| {
            if escaped {
                escaped = false;
                return false;
            }
            match c {
                '\\' if quoted || depth > 0 => {
                    escaped = true;
                    false
                }
                '"' if depth == 0 => {
                    quoted = !quoted;
                    false
                }
                _ if quoted => false,
                '(' => {
                    depth += 1;
                    false
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    false
                }
                _ => depth == 0,
            }
        })
        .collect()
}

named_enum!(
    /// Where a fetched mail ended up.
    InboundState, "inbound mail state" {
        /// In a work item's thread.
        Posted = "posted",
        /// Held for review (unknown sender, screened, too large, a loop).
        Held = "held",
        /// Waiting for a human to assign it.
        Triage = "triage",
        /// Held or triaged mail a human decided not to post.
        Dismissed = "dismissed",
    }
);

/// What a fetched mail says, kept so that mail posted later (assigned
/// from triage, released from hold) is the very mail that came in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailContent {
    /// Its headers.
    pub email: EmailHeaders,
    /// Plain-text body (HTML converted).
    pub body: String,
    /// Its attachments.
    pub attachments: Vec<AttachmentRef>,
}

/// Classification's best guess for mail it was not sure about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The work item.
    pub work_item_id: String,
    /// How sure, 0–1.
    pub confidence: f64,
}

/// A fetched mail and where it went; one per mailbox and Message-ID.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    /// UUIDv7.
    pub id: String,
    /// The mailbox it came through.
    pub mailbox_id: String,
    /// Its Message-ID.
    pub message_id: String,
    /// Where it went.
    pub state: InboundState,
    /// Why, for held and triaged mail.
    pub reason: String,
    /// The work item it was posted to or meant for.
    pub work_item_id: Option<String>,
    /// Sender address.
    pub sender: String,
    /// Subject.
    pub subject: String,
    /// What it says.
    pub content: MailContent,
    /// Classification's guess, for triaged mail.
    pub suggestion: Option<Suggestion>,
    /// The thread message it became, once posted.
    pub posted_message_id: Option<String>,
    /// Who assigned, released or dismissed it; `None` when routing did.
    pub settled_by: Option<Actor>,
    /// When it was recorded, µs.
    pub created_at: i64,
}

/// A fetched mail to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    /// The mailbox it came through.
    pub mailbox_id: String,
    /// Its Message-ID.
    pub message_id: String,
    /// Where it goes.
    pub state: InboundState,
    /// Why.
    pub reason: String,
    /// The work item, if known (required to post).
    pub work_item_id: Option<String>,
    /// What it says.
    pub content: MailContent,
    /// Classification's guess, for triaged mail.
    pub suggestion: Option<Suggestion>,
    /// Its attachments, to keep in the library.
    pub files: Vec<MailFile>,
}

/// An attachment of a fetched mail, to store as a library document; the
/// library holds its bytes already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFile {
    /// File name as sent.
    pub file_name: String,
    /// MIME type.
    pub media_type: String,
    /// Its bytes in the library.
    pub blob: crate::document::StoredBlob,
    /// What search has of it.
    pub text: crate::document::SearchText,
}

/// A queued outbound mail handed to a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundClaim {
    /// The outbound-email message.
    pub message: crate::thread::Message,
    /// This attempt's number, from 1.
    pub attempt: i64,
}

/// How an attempt to send an outbound mail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// The mail server took it.
    Sent,
    /// It failed and is tried again at `at` (µs).
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again, µs.
        at: i64,
    },
    /// It failed for good.
    Failed {
        /// Why.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> Address {
        Address::parse("support@shop.example").expect("mailbox")
    }

    #[test]
    fn addresses_parse_with_names_tags_and_case() {
        let address = Address::parse("Support Team <Support+WI-12@Shop.Example>").expect("parse");
        assert_eq!(address.local, "support");
        assert_eq!(address.tag.as_deref(), Some("WI-12"));
        assert_eq!(address.domain, "shop.example");
        assert_eq!(address.work_item(), Some(WorkItemKey(12)));
        assert!(address.belongs_to(&mailbox()));
        for bad in [
            "",
            "nobody",
            "@shop.example",
            "a b@shop.example",
            "+x@shop.example",
            "x@y",
        ] {
            assert_eq!(Address::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Address::parse("support+newsletter@shop.example").and_then(|a| a.work_item()),
            None
        );
    }

    #[test]
    fn the_work_item_comes_from_any_recipient_of_the_mailbox() {
        let key = addressed_work_item(
            &mailbox(),
            ["alice@other.example", "support+wi-7@shop.example"],
        );
        assert_eq!(key, Addressed::WorkItem(WorkItemKey(7)));
        assert_eq!(
            addressed_work_item(&mailbox(), ["sales+WI-7@shop.example"]),
            Addressed::Nothing,
            "another mailbox's address names nothing here"
        );
        assert_eq!(
            addressed_work_item(
                &mailbox(),
                ["support+WI-7@shop.example", "support+WI-8@shop.example"]
            ),
            Addressed::Ambiguous,
            "two items: ambiguous"
        );
        assert_eq!(
            addressed_work_item(
                &mailbox(),
                [
                    "support+WI-7@shop.example",
                    "Support <support+WI-7@shop.example>"
                ]
            ),
            Addressed::WorkItem(WorkItemKey(7))
        );
        assert_eq!(
            work_item_address(&mailbox(), WorkItemKey(42)),
            "support+WI-42@shop.example"
        );
    }

    #[test]
    fn rules_deny_first_then_allow_lists() {
        let rules = ScreeningRules {
            deny: vec!["mallory@partner.example".into()],
            allow: vec!["partner.example".into(), "ann@example.org".into()],
            ..ScreeningRules::default()
        };
        assert!(rules.admits("Bob@Partner.example"));
        assert!(rules.admits("ann@example.org"));
        assert!(!rules.admits("mallory@partner.example"));
        assert!(!rules.admits("eve@example.org"));
        assert!(ScreeningRules::default().admits("anyone@anywhere.example"));
    }

    /// Issue 21: a mail whose From named a member was posted as theirs;
    /// with a trusted receiving server, only an authenticated one is.
    #[test]
    fn only_the_trusted_servers_verdict_authenticates_a_sender() {
        let mx = "mx.shop.example";
        let passes = [
            "mx.shop.example; spf=pass smtp.mailfrom=bounce@example.org",
            "mx.shop.example 1;\r\n\tdkim=pass (good sig) header.d=example.org header.s=s1",
            "MX.shop.example; spf=fail smtp.mailfrom=x@evil.example; dmarc=pass header.from=example.org",
            "mx.shop.example; spf=pass (sender \"a\\\" b\"@x.example\") smtp.mailfrom=ann@example.org",
            "mx.shop.example; dkim=pass header.d=example.org; spf=none",
        ];
        for header in passes {
            assert!(
                sender_authenticated(header, mx, "ann@example.org"),
                "{header}"
            );
        }
        let forged = [
            // Another server's verdict, or a sender's own header.
            "mx.evil.example; spf=pass smtp.mailfrom=ann@example.org",
            // Passing, but for another domain.
            "mx.shop.example; dkim=pass header.d=evil.example",
            "mx.shop.example; spf=pass smtp.mailfrom=a@evil.example",
            "mx.shop.example; dmarc=pass header.from=evil.example",
            "mx.shop.example; spf=softfail smtp.mailfrom=ann@example.org; dkim=none",
            "mx.shop.example; dkim=pass (header.d=example.org) header.d=evil.example",
            // A quoted envelope sender the server copies cannot add a
            // verdict, and a DMARC pass must name the From domain.
            "mx.shop.example; spf=fail (from <\"a) x; dmarc=pass (b\"@evil.example>) smtp.mailfrom=\"a) x; dmarc=pass (b\"@evil.example",
            "mx.shop.example; dmarc=pass",
            "",
        ];
        for header in forged {
            assert!(
                !sender_authenticated(header, mx, "ann@example.org"),
                "{header}"
            );
        }
        assert!(!sender_authenticated(passes[0], mx, "no-domain"));
    }
}
