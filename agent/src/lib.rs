//! lifeboat, the agent: configuration, scheduling, history and the command line.
//!
//! This crate decides WHEN and WHAT runs and who hears of it; the drill engine (`lifeboat-drills`) performs
//! one run and returns a report. Data flows one way: agent → drills.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod output;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod store;
