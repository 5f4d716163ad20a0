//! anima-server: the gRPC API of Anima, its authentication and RBAC, served
//! on one listener together with `/healthz`, gRPC health and reflection.
//!
//! The path of a request: [`middleware::authorize`] finds the RPC's rule in
//! [`rbac::ACCESS`] and authenticates the caller → the service in
//! [`services`] validates input with `anima_core` rules and, for
//! project-scoped RPCs, calls [`authz::require_project`] → the
//! [`anima_db::Store`] applies the change and writes its outbox event in the
//! same transaction.

pub mod agents;
pub mod ai;
pub mod app;
pub mod auth;
pub mod auth_cache;
pub mod authz;
pub mod config;
pub mod error;
pub mod events;
pub mod forge;
pub mod in_process;
pub mod library;
pub mod limits;
pub mod listener;
pub mod mcp;
pub mod middleware;
pub mod password;
pub mod rbac;
pub mod secrets;
pub mod services;
pub mod supervisor;
pub mod zones;

pub use app::{Bootstrap, Hosted, bootstrap_admin, router};
pub use config::ServerConfig;
pub use listener::{Listener, serve};
