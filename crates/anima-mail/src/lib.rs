//! anima-mail: the JMAP worker that routes inbound mail into work-item
//! threads. The worker ([`worker`]) supervises one follower per mailbox
//! anima-server knows; a follower runs exactly-once synchronisation passes
//! ([`sync`]) over the JMAP client ([`jmap`]), parses ([`parse`]) and
//! routes ([`route`]) each mail, and hands it to anima-server
//! ([`server`]). Mailbox accounts are made and dropped through
//! [`admin`]. [`outbound`] sends the threads' outbound mail, composed by
//! [`compose`], by JMAP EmailSubmission. For tests, a private Cyrus server
//! (`testing` feature).

pub mod admin;
pub mod compose;
pub mod jmap;
pub mod outbound;
pub mod parse;
pub mod route;
pub mod server;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;
