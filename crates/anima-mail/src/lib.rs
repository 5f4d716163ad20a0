//! anima-mail: the JMAP worker that routes inbound mail into work-item
//! threads and sends outbound mail. So far: the JMAP client it follows
//! mailboxes with ([`jmap`]), inbound parsing ([`parse`]), outbound
//! composition ([`compose`]), the routing decision ([`route`]),
//! exactly-once synchronisation passes and a polling follower ([`sync`])
//! and, for tests, a private Cyrus server (`testing` feature). Still to
//! come: push, the routing context and sink backed by anima-server,
//! sending, and mailbox administration.

pub mod compose;
pub mod jmap;
pub mod parse;
pub mod route;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
