//! End-to-end tests: the `lifeboat` binary on real archives built by `lifeboat-fixtures`.
//!
//! One test binary (one link step), one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod alerts;
mod archives;
mod cli;
mod crash;
mod hostile;
mod pbs;
mod pbs_client;
mod pbs_remote;
mod report;
mod s3;
mod util;
mod vm;
