//! The domain core of Anima: identifiers, permissions and default roles,
//! domain errors with stable reason codes, and the API conventions (page
//! tokens, field masks, input limits) every service shares.
//!
//! Nothing here does I/O; the server, storage and clients build on it.

#[macro_use]
mod named_enum;

pub mod agent;
pub mod capability;
pub mod config;
pub mod document;
pub mod error;
pub mod event;
pub mod id;
pub mod mail;
pub mod model;
pub mod paging;
pub mod path;
pub mod permission;
pub mod planning;
pub mod repository;
pub mod secret;
pub mod service_token;
pub mod skill;
pub mod text;
pub mod thread;
pub mod update_mask;
pub mod validate;
pub mod workflow;
pub mod zone;

pub use error::{DomainError, ErrorCode};
pub use permission::{Permission, RoleTemplate};
