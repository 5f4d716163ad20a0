//! anima-desktop: the Slint client, in the four layers of the spec's client
//! architecture, each in its own module:
//!
//! - the UI (`ui/*.slint`, compiled into [`ui`]): screens and the design
//!   system, defined once as the `Theme` global;
//! - [`viewmodel`]: the server's records turned into the rows screens show;
//! - [`client`]: anima-server over gRPC, with the live streams;
//! - [`cache`]: the SQLite read cache the window shows first, and offline;
//!   [`session`]: the session token, in the OS keyring where one answers.
//!
//! [`app`] wires them together, with all I/O off the UI thread; [`tour`]
//! renders every screen to PNG files.

pub mod app;
pub mod cache;
pub mod client;
pub mod session;
pub mod tour;
pub mod viewmodel;

/// The Rust side of the Slint UI: the window, its rows and screens.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod ui {
    slint::include_modules!();
}
