//! The one integration-test binary: every module boots the real app (in-process through
//! `create_app`, or the real `tabula` binary over a socket) on temporary data directories.

mod common;
mod errors;
mod process;
mod records;
mod supervision;
mod tables;
