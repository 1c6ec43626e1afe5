//! The one integration-test binary: every module boots the real app (in-process through
//! `create_app`, or the real `tabula` binary over a socket) on temporary data directories.

mod activity;
mod analytics;
mod common;
mod errors;
mod lifecycle;
mod listing;
mod openapi;
mod permissions;
mod process;
mod records;
mod schema;
mod supervision;
mod tables;
