//! The lifeboat drill engine: everything that performs ONE run.
//!
//! A run selects a snapshot from a [`source`], restores it into a scratch folder through the hostile-input-safe
//! [`extract`] layer, runs [`check`]s, measures phases against the drill's RTO and RPO and returns a
//! [`model::RunReport`]. This crate knows nothing about schedules, history or alerts: the `lifeboat` agent
//! decides when to run and what to do with the report.

pub mod check;
pub mod engine;
pub mod extract;
pub mod model;
pub mod pbs;
pub mod scratch;
pub mod select;
pub mod source;
pub mod target;
pub mod timestamp;
pub mod units;
pub mod watch;
