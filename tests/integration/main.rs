//! The one integration-test binary: every module boots the real app (in-process through
//! `create_app`, or the real `tabula` binary over a socket) on temporary data directories.

mod accounts_process;
mod activity;
mod analytics;
mod auth;
mod bench;
mod common;
mod dialects;
mod errors;
mod export_import;
mod field_access;
mod lifecycle;
mod listing;
mod openapi;
mod permissions;
mod process;
mod query_budget;
mod rate_limits;
mod realtime;
mod records;
mod schema;
mod search_access;
mod sql;
mod supervision;
mod tables;
mod webhook_targets;
mod write_batching;
mod write_queue;
