//! The HTTP channels, one module per family: the generic signed webhook, chat (Slack, Teams, Discord),
//! push (ntfy, Gotify), PagerDuty and healthchecks pings. Each turns a [`Notification`] into the exact
//! payload its service documents (`shared/reference/notifications.md`) and leaves sending to [`crate::http`].

pub(crate) mod chat;
pub(crate) mod healthchecks;
pub(crate) mod pagerduty;
pub(crate) mod push;
pub(crate) mod webhook;

use std::path::PathBuf;

use reqwest::Url;

use crate::error::ConfigProblem;
use crate::http::parse_url;
use crate::secret::{Secret, SecretRef};

/// A URL that is itself a secret (`url_file` / `url_env`): parsed, and kept as [`Secret`]s for redaction:
/// the whole URL, and its path and query on their own, because receivers like to echo the path back
/// ("no such hook /services/T0/B0/XXXX") and that must not end up in an error message either.
pub(crate) struct SecretUrl {
    pub url: Url,
    pieces: Vec<Secret>,
}

/// The redaction pieces of a secret URL: the whole, the path (when more than `/`), the query.
pub(crate) fn url_pieces(url: &Url, raw: &Secret) -> Vec<Secret> {
    let mut v = vec![raw.clone()];
    if url.path().len() > 1 {
        v.push(Secret::new(url.path()));
    }
    if let Some(q) = url.query() {
        v.push(Secret::new(q));
    }
    v
}

impl SecretUrl {
    /// Loads `KEY_file` / `KEY_env` (required).
    pub fn load(
        key: &'static str,
        file: Option<&PathBuf>,
        env: Option<&String>,
    ) -> Result<SecretUrl, ConfigProblem> {
        let r = SecretRef { key, file, env };
        let raw = r.require()?;
        let url = parse_url(&r.source_key(), raw.expose(), true)?;
        let pieces = url_pieces(&url, &raw);
        Ok(SecretUrl { url, pieces })
    }

    /// Everything to scrub from messages.
    pub fn secrets(&self) -> Vec<&Secret> {
        self.pieces.iter().collect()
    }
}
