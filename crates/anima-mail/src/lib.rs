//! anima-mail: the JMAP worker that routes inbound mail into work-item
//! threads and sends outbound mail. Its issue has not landed; this crate is
//! the place it will live, and holds no behaviour yet.
