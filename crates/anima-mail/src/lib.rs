//! anima-mail: the JMAP worker that routes inbound mail into work-item
//! threads and sends outbound mail. So far: the JMAP client it follows
//! mailboxes with ([`jmap`]), inbound parsing ([`parse`]), outbound
//! composition ([`compose`]) and, for tests,
//! a private Cyrus server (`testing` feature). Routing, outbound mail and mailbox administration
//! are still to come.

pub mod compose;
pub mod jmap;
pub mod parse;
#[cfg(feature = "testing")]
pub mod testing;
