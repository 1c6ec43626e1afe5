//! The `tabula` binary's library: configuration, the HTTP surface (routes, error envelope,
//! OpenAPI), and the start-up/shutdown sequence. `main.rs` only parses flags and calls [`serve`].

pub mod auth;
pub mod bench;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod connection_guard;
pub mod error;
pub mod json;
pub mod memory;
pub mod offline;
pub mod offline_admin;
pub mod rate_limit;
pub mod routes;
pub mod scheduling;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod transfer;
pub mod webhooks;

pub use server::{create_app, run, serve};
