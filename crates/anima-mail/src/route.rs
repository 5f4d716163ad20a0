//! Where an inbound mail goes: into a work item's thread, held for review,
//! or into triage for a human to assign. Every mail gets exactly one of
//! these answers, with a reason; nothing is dropped.
//!
//! The order of the checks:
//! 1. size limit, then our own mail coming back (a loop), then the
//!    mailbox's deny and allow rules;
//! 2. the plus-address (`box+WI-12@domain`) names the work item;
//! 3. otherwise In-Reply-To / References match a message already in a
//!    thread; a reply to mail that waits for a human (held or in triage)
//!    waits beside it;
//! 4. otherwise a mailbox serving one project asks anima-ai to classify;
//!    a gather mailbox (several projects) needs one of the above.
//!
//! Mail about a work item from a sender who is neither a project member
//! nor already in that thread is held, not posted.

use anima_core::mail::{Address, Addressed, ScreeningRules, addressed_work_item};

use crate::parse::InboundMail;

/// A work item as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo {
    /// Its id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// Whether its project accepts writes (not archived).
    pub writable: bool,
}

/// Why a mail is held for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// Bigger than the mailbox's limit.
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Our own outbound mail came back.
    Loop,
    /// The sender or its domain is denied, or not on the allow list.
    Screened,
    /// The mailbox trusts its receiving server's Authentication-Results,
    /// and they do not authenticate the sender's domain.
    Unauthenticated,
    /// Neither a project member nor already in the thread.
    UnknownSender,
    /// It answers mail that is held.
    AnswersHeld,
}

/// Why a mail waits in triage.
#[derive(Debug, Clone, PartialEq)]
pub enum TriageReason {
    /// Recipients name different work items.
    Ambiguous,
    /// The plus-address names no work item of the mailbox's projects.
    UnknownWorkItem,
    /// The work item's project is archived.
    Archived,
    /// A gather mailbox got mail with no plus-address and no known thread.
    NoAddress,
    /// It answers mail that waits in triage.
    AnswersTriaged,
    /// Classification was not sure enough; its best guess, if any.
    Unsure {
        /// The best candidate and its confidence.
        suggestion: Option<(String, f64)>,
    },
}

/// The answer for one mail.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Post into this work item's thread.
    Post(ItemInfo),
    /// Hold for review; `item` is the work item it was meant for, if known.
    Held {
        /// The work item, if known.
        item: Option<ItemInfo>,
        /// Why.
        reason: HoldReason,
    },
    /// Wait in triage for a human to assign.
    Triage(TriageReason),
}

impl Route {
    /// Why, in words, for the triage and held lists.
    pub fn reason(&self) -> String {
        match self {
            Route::Post(_) => "addressed to its work item".into(),
            Route::Held { reason, .. } => match reason {
                HoldReason::TooLarge { size, limit } => {
                    format!("too large: {size} bytes, the mailbox takes {limit}")
                }
                HoldReason::Loop => "our own outbound mail came back (a loop)".into(),
                HoldReason::Screened => {
                    "the sender is denied or not allowed by the mailbox's rules".into()
                }
                HoldReason::UnknownSender => {
                    "the sender is neither a project member nor in the thread".into()
                }
                HoldReason::Unauthenticated => {
                    "the receiving mail server did not authenticate the sender's domain (SPF, DKIM or DMARC)"
                        .into()
                }
                HoldReason::AnswersHeld => "it answers mail that is held for review".into(),
            },
            Route::Triage(reason) => match reason {
                TriageReason::Ambiguous => "its recipients name different work items".into(),
                TriageReason::UnknownWorkItem => {
                    "its plus-address names no single work item of the mailbox's projects".into()
                }
                TriageReason::Archived => "its work item's project is archived".into(),
                TriageReason::NoAddress => {
                    "a gather mailbox needs a plus-address or a reply to a known mail".into()
                }
                TriageReason::AnswersTriaged => "it answers mail that waits in triage".into(),
                TriageReason::Unsure {
                    suggestion: Some((_, confidence)),
                } => {
                    format!("classification was not sure enough ({confidence:.2})")
                }
                TriageReason::Unsure { suggestion: None } => {
                    "classification found no matching work item".into()
                }
            },
        }
    }
}

/// A mailbox as routing sees it.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Its address.
    pub address: Address,
    /// The projects it serves (at least one; several make a gather box).
    pub projects: Vec<String>,
    /// Screening rules.
    pub rules: ScreeningRules,
    /// Largest mail accepted, in bytes.
    pub max_size: usize,
    /// The earliest mail its first synchronisation takes (a JMAP UTCDate,
    /// the mailbox's creation); `None` takes all the account holds.
    pub history_from: Option<String>,
}

/// What routing needs to know from anima-server and anima-ai.
#[async_trait::async_trait]
pub trait RoutingContext: Send + Sync {
    /// The work item with this key in one of `projects`.
    async fn work_item(
        &self,
        projects: &[String],
        key: anima_core::planning::WorkItemKey,
    ) -> anyhow::Result<Option<ItemInfo>>;
    /// What mail with one of these ids became: a thread's message, or
    /// mail of the mailbox `mailbox_id` that waits for a human.
    async fn referenced(
        &self,
        mailbox_id: &str,
        message_ids: &[&str],
    ) -> anyhow::Result<Referenced>;
    /// Whether `sender` is a member of the item's project or already
    /// wrote in its thread.
    async fn knows_sender(&self, item: &ItemInfo, sender: &str) -> anyhow::Result<bool>;
    /// anima-ai's classification among the project's open work items:
    /// the item if it is sure, else its best guess.
    async fn classify(&self, project_id: &str, mail: &InboundMail) -> anyhow::Result<Classified>;
}

/// What the mail a reply refers to became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referenced {
    /// It is in this work item's thread.
    Thread(ItemInfo),
    /// It waits for a human, held for review.
    Held,
    /// It waits for a human, in triage.
    Triage,
    /// Nothing known.
    Nothing,
}

/// What classification found.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// Sure enough to post.
    Item(ItemInfo),
    /// Not sure; the best candidate id and confidence, if any.
    Unsure(Option<(String, f64)>),
}

/// Whether the mail can find its work item only through its references
/// (a reply without a plus-address of this mailbox).
pub fn routes_by_reference(mailbox: &Mailbox, mail: &InboundMail) -> bool {
    mail.referenced_ids().next().is_some()
        && addressed_work_item(&mailbox.address, mail.recipients()) == Addressed::Nothing
}

/// Routes one mail; see the module documentation for the order.
pub async fn route(
    mailbox_id: &str,
    mailbox: &Mailbox,
    mail: &InboundMail,
    context: &dyn RoutingContext,
) -> anyhow::Result<Route> {
    let held = |item: Option<ItemInfo>, reason| Route::Held { item, reason };
    if mail.size > mailbox.max_size {
        return Ok(held(
            None,
            HoldReason::TooLarge {
                size: mail.size,
                limit: mailbox.max_size,
            },
        ));
    }
    if mail.anima_work_item.is_some() {
        return Ok(held(None, HoldReason::Loop));
    }
    if !mailbox.rules.admits(&mail.from) {
        return Ok(held(None, HoldReason::Screened));
    }
    let trusted = &mailbox.rules.trusted_authserv_id;
    if !trusted.is_empty()
        && !mail
            .authentication_results
            .as_deref()
            .is_some_and(|header| {
                anima_core::mail::sender_authenticated(header, trusted, &mail.from)
            })
    {
        return Ok(held(None, HoldReason::Unauthenticated));
    }
    let item = match addressed_work_item(&mailbox.address, mail.recipients()) {
        Addressed::Ambiguous => return Ok(Route::Triage(TriageReason::Ambiguous)),
        Addressed::WorkItem(key) => match context.work_item(&mailbox.projects, key).await? {
            Some(item) => item,
            None => return Ok(Route::Triage(TriageReason::UnknownWorkItem)),
        },
        Addressed::Nothing => {
            let referenced: Vec<&str> = mail.referenced_ids().collect();
            // A reference into a project this mailbox does not serve is
            // ignored: a known Message-ID must not open another project's
            // thread to whoever writes to this address.
            let replied = if referenced.is_empty() {
                None
            } else {
                match context.referenced(mailbox_id, &referenced).await? {
                    Referenced::Thread(item) => {
                        Some(item).filter(|item| mailbox.projects.contains(&item.project_id))
                    }
                    // The conversation stays together, and waits for the
                    // human deciding on the mail it answers.
                    Referenced::Held => return Ok(held(None, HoldReason::AnswersHeld)),
                    Referenced::Triage => {
                        return Ok(Route::Triage(TriageReason::AnswersTriaged));
                    }
                    Referenced::Nothing => None,
                }
            };
            match (replied, mailbox.projects.as_slice()) {
                (Some(item), _) => item,
                (None, [project]) => match context.classify(project, mail).await? {
                    Classified::Item(item) => item,
                    Classified::Unsure(suggestion) => {
                        return Ok(Route::Triage(TriageReason::Unsure { suggestion }));
                    }
                },
                (None, _) => return Ok(Route::Triage(TriageReason::NoAddress)),
            }
        }
    };
    if !item.writable {
        return Ok(Route::Triage(TriageReason::Archived));
    }
    if !context.knows_sender(&item, &mail.from).await? {
        return Ok(held(Some(item), HoldReason::UnknownSender));
    }
    Ok(Route::Post(item))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use anima_core::planning::WorkItemKey;

    use super::*;
    use crate::parse::parse;

    /// Two projects' items, who is known where, and a classifier answer.
    struct Fake {
        items: HashMap<(String, i64), ItemInfo>,
        threads: HashMap<String, ItemInfo>,
        known: Vec<(String, String)>,
        classified: Classified,
    }

    #[async_trait::async_trait]
    impl RoutingContext for Fake {
        async fn work_item(
            &self,
            projects: &[String],
            key: WorkItemKey,
        ) -> anyhow::Result<Option<ItemInfo>> {
            Ok(projects
                .iter()
                .find_map(|project| self.items.get(&(project.clone(), key.0)).cloned()))
        }
        async fn referenced(&self, mailbox_id: &str, ids: &[&str]) -> anyhow::Result<Referenced> {
            assert_eq!(mailbox_id, "mb1");
            Ok(
                match ids.iter().find_map(|id| self.threads.get(*id).cloned()) {
                    Some(item) => Referenced::Thread(item),
                    None if ids.contains(&"held@example.org") => Referenced::Held,
                    None if ids.contains(&"triaged@example.org") => Referenced::Triage,
                    None => Referenced::Nothing,
                },
            )
        }
        async fn knows_sender(&self, item: &ItemInfo, sender: &str) -> anyhow::Result<bool> {
            Ok(self
                .known
                .iter()
                .any(|(id, who)| *id == item.id && who == sender))
        }
        async fn classify(&self, _: &str, _: &InboundMail) -> anyhow::Result<Classified> {
            Ok(self.classified.clone())
        }
    }

    fn item(id: &str, project: &str, writable: bool) -> ItemInfo {
        ItemInfo {
            id: id.into(),
            project_id: project.into(),
            writable,
        }
    }

    fn fake() -> Fake {
        Fake {
            items: HashMap::from([
                (("p1".into(), 12), item("wi-12", "p1", true)),
                (("p1".into(), 13), item("wi-13", "p1", false)),
            ]),
            threads: HashMap::from([("anima-1@shop.example".into(), item("wi-12", "p1", true))]),
            known: vec![("wi-12".into(), "ann@example.org".into())],
            classified: Classified::Unsure(Some(("wi-12".into(), 0.4))),
        }
    }

    fn mailbox(projects: &[&str]) -> Mailbox {
        Mailbox {
            address: Address::parse("support@shop.example").expect("address"),
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            rules: ScreeningRules {
                deny: vec!["spam.example".into()],
                ..ScreeningRules::default()
            },
            max_size: 10_000,
            history_from: None,
        }
    }

    /// Issue 21: a forged From of a member was posted as the member's mail.
    /// A mailbox that trusts its receiving server holds what that server
    /// did not authenticate, and only trusts the topmost verdict.
    #[tokio::test]
    async fn a_forged_member_is_held_when_the_mailbox_trusts_its_server() {
        let mut trusting = mailbox(&["p1"]);
        trusting.rules.trusted_authserv_id = "mx.shop.example".into();
        let to_item = "support+WI-12@shop.example";
        let verdict = |result: &str| format!("Authentication-Results: mx.shop.example; {result}");
        let genuine = mail(
            "ann@example.org",
            to_item,
            &verdict("dkim=pass header.d=example.org"),
        );
        assert_eq!(
            routed(&trusting, &genuine).await,
            Route::Post(item("wi-12", "p1", true))
        );
        // Under the server's own verdict, a line the sender wrote (lower
        // in the header) claiming a pass counts for nothing.
        let forged = mail(
            "ann@example.org",
            to_item,
            &format!(
                "{}\r\n{}",
                verdict("spf=fail smtp.mailfrom=ann@example.org; dkim=none"),
                verdict("dkim=pass header.d=example.org")
            ),
        );
        let unsigned = mail("ann@example.org", to_item, "");
        for mail in [forged, unsigned] {
            assert_eq!(
                routed(&trusting, &mail).await,
                Route::Held {
                    item: None,
                    reason: HoldReason::Unauthenticated
                }
            );
        }
        // Without trust, the same forgery passes as before.
        assert_eq!(
            routed(&mailbox(&["p1"]), &mail("ann@example.org", to_item, "")).await,
            Route::Post(item("wi-12", "p1", true))
        );
    }

    fn mail(from: &str, to: &str, extra: &str) -> InboundMail {
        parse(format!("From: {from}\r\nTo: {to}\r\nSubject: s\r\n{extra}\r\nbody\r\n").as_bytes())
    }

    async fn routed(mailbox: &Mailbox, mail: &InboundMail) -> Route {
        route("mb1", mailbox, mail, &fake()).await.expect("route")
    }

    #[tokio::test]
    async fn every_mail_gets_one_answer_with_a_reason() {
        let single = mailbox(&["p1"]);
        let to_item = "support+WI-12@shop.example";
        assert_eq!(
            routed(&single, &mail("ann@example.org", to_item, "")).await,
            Route::Post(item("wi-12", "p1", true))
        );
        assert_eq!(
            routed(&single, &mail("eve@example.org", to_item, "")).await,
            Route::Held {
                item: Some(item("wi-12", "p1", true)),
                reason: HoldReason::UnknownSender
            }
        );
        assert_eq!(
            routed(
                &single,
                &mail("ann@example.org", "support+WI-99@shop.example", "")
            )
            .await,
            Route::Triage(TriageReason::UnknownWorkItem)
        );
        assert_eq!(
            routed(
                &single,
                &mail("ann@example.org", "support+WI-13@shop.example", "")
            )
            .await,
            Route::Triage(TriageReason::Archived)
        );
        assert_eq!(
            routed(
                &single,
                &mail(
                    "ann@example.org",
                    "support+WI-12@shop.example, support+WI-13@shop.example",
                    ""
                )
            )
            .await,
            Route::Triage(TriageReason::Ambiguous)
        );
        assert!(matches!(
            routed(&single, &mail("bot@spam.example", to_item, "")).await,
            Route::Held {
                reason: HoldReason::Screened,
                ..
            }
        ));
        assert!(matches!(
            routed(
                &single,
                &mail("ann@example.org", to_item, "X-Anima-WorkItem: WI-12\r\n")
            )
            .await,
            Route::Held {
                reason: HoldReason::Loop,
                ..
            }
        ));
        let mut small = single.clone();
        small.max_size = 10;
        assert!(matches!(
            routed(&small, &mail("ann@example.org", to_item, "")).await,
            Route::Held {
                reason: HoldReason::TooLarge { limit: 10, .. },
                ..
            }
        ));
    }

    #[tokio::test]
    async fn replies_thread_back_and_the_rest_is_classified_or_triaged() {
        let reply = mail(
            "ann@example.org",
            "support@shop.example",
            "In-Reply-To: <anima-1@shop.example>\r\n",
        );
        assert_eq!(
            routed(&mailbox(&["p1"]), &reply).await,
            Route::Post(item("wi-12", "p1", true))
        );
        assert_eq!(
            routed(&mailbox(&["p1", "p2"]), &reply).await,
            Route::Post(item("wi-12", "p1", true)),
            "a gather box routes a known reply too"
        );
        let plain = mail("ann@example.org", "support@shop.example", "");
        assert_eq!(
            routed(&mailbox(&["p1"]), &plain).await,
            Route::Triage(TriageReason::Unsure {
                suggestion: Some(("wi-12".into(), 0.4))
            })
        );
        assert_eq!(
            routed(&mailbox(&["p1", "p2"]), &plain).await,
            Route::Triage(TriageReason::NoAddress)
        );
        assert_eq!(
            routed(&mailbox(&["p2", "p3"]), &reply).await,
            Route::Triage(TriageReason::NoAddress),
            "a reference into another project's thread is ignored"
        );
        for (original, wanted) in [
            (
                "held@example.org",
                Route::Held {
                    item: None,
                    reason: HoldReason::AnswersHeld,
                },
            ),
            (
                "triaged@example.org",
                Route::Triage(TriageReason::AnswersTriaged),
            ),
        ] {
            let answer = mail(
                "ann@example.org",
                "support@shop.example",
                &format!("References: <{original}>\r\n"),
            );
            assert_eq!(
                routed(&mailbox(&["p1"]), &answer).await,
                wanted,
                "a reply waits beside {original}"
            );
        }
        let mut sure = fake();
        sure.classified = Classified::Item(item("wi-12", "p1", true));
        assert_eq!(
            route("mb1", &mailbox(&["p1"]), &plain, &sure)
                .await
                .expect("route"),
            Route::Post(item("wi-12", "p1", true))
        );
    }
}
