//! Domain errors on the wire; the mapping lives in `anima_proto::status`
//! so that every service crate answers errors the same way.

pub use anima_proto::status::*;
