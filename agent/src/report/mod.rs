//! Compliance reports and the evidence ledger.
//!
//! An auditor (ISO 27001 A.8.13/A.5.30, SOC 2 A1.3, NIS2 4.2.6, DORA 12) wants three things from restore
//! drills: that every asset in scope was tested as often as the policy says, that the tests measured restore
//! time and data age against the objectives, and that the records were not edited afterwards. This module
//! turns the history into one [`model::Report`] value (the JSON document, `lifeboat.report/v1`) and renders
//! that same value as HTML and CSV, so the three formats can never disagree. The ledger
//! ([`ledger`]) chains every finished run's record by SHA-256 so an edited, deleted or reordered record is
//! found by `lifeboat verify-ledger`, and every report prints the chain's head hash.
//!
//! Split by job: [`period`] (which instants a period covers), [`kpi`] (pure arithmetic over runs),
//! [`build`] (collecting runs and configuration into the model), [`html`]/[`svg`]/[`csv`]/[`json`]
//! (renderers), [`ledger`] (canonical JSON, chaining, verification), [`scheduled`] (the agent's reports).

pub mod build;
pub mod csv;
pub mod html;
pub mod json;
pub mod kpi;
pub mod ledger;
pub mod model;
pub mod period;
pub mod scheduled;
pub mod svg;

use std::path::PathBuf;

/// Report generation errors.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The period could not be understood.
    #[error(transparent)]
    Period(#[from] period::PeriodError),
    /// The history could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The report could not be written.
    #[error("cannot write report {path}: {source}; check the folder exists and is writable")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The JSON document could not be serialised.
    #[error("cannot serialise the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained HTML file with SVG charts (print to PDF from a browser).
    Html,
    /// One row per run, for spreadsheets and GRC tools.
    Csv,
    /// The `lifeboat.report/v1` document.
    Json,
}

impl Format {
    /// File extension and config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    /// Parses the config word.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "html" => Some(Format::Html),
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Renders `r` in this format.
    pub fn render(self, r: &model::Report) -> Result<String, ReportError> {
        Ok(match self {
            Format::Html => html::render(r),
            Format::Csv => csv::render(r),
            Format::Json => json::render(r)?,
        })
    }
}
