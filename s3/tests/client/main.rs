//! lifeboat-s3 against real S3 servers started by the tests (SeaweedFS, moto): listing, verification,
//! resume, error classification. See `lifeboat_fixtures::s3` for the servers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod moto;
mod seaweed;
