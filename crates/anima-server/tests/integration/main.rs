//! anima-server's integration tests, one binary (one link) for all: each
//! module drives the real server over gRPC or `/mcp`, on both backends.

#[macro_use]
mod common;

mod api;
mod forge;
mod library;
mod mail;
mod mcp;
mod multi_instance;
mod outbox;
mod planning;
mod rbac_matrix;
mod repositories;
mod revocation;
mod security;
mod threads;
