//! Shared helpers for integration tests: `mod support;` in a test file.
//!
//! Items are `pub(crate)` (not `pub`) because the crate's `unreachable_pub` lint
//! fires on `pub` items of a test binary's private module.

#![allow(dead_code)]

pub(crate) mod any_cert;
pub(crate) mod capture;
pub(crate) mod client_cli;
pub(crate) mod demo_server;
pub(crate) mod examples;
pub(crate) mod pair;
pub(crate) mod pg;
pub(crate) mod proxy;
pub(crate) mod recorder;
pub(crate) mod repl_workload;
pub(crate) mod replication_capture;
pub(crate) mod scripted_client;
pub(crate) mod scripted_server;
pub(crate) mod standby;
pub(crate) mod trace;
pub(crate) mod wire;
