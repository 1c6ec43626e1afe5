//! The one integration-test binary: every module boots the real app (in-process through
//! `create_app`, or the real `tabula` binary over a socket) on temporary data directories.

mod activity;
mod analytics;
mod common;
mod dialects;
mod errors;
mod lifecycle;
mod listing;
mod openapi;
mod permissions;
mod process;
mod realtime;
mod records;
mod supervision;
mod tables;
