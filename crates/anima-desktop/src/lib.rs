//! anima-desktop: the Slint client (UI, view models, gRPC layer, SQLite read
//! cache). Its issue has not landed; this crate is the place it will live,
//! and holds no behaviour yet.
