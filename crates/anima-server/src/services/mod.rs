//! gRPC service implementations, one module per service of the API.

pub mod auth;
pub mod team;
pub mod unimplemented;
