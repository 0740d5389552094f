//! Healthchecks pings, a dead-man's switch for the drills themselves (notifications.md §4.7, from
//! healthchecks/healthchecks `templates/docs/http_api.md`): `drill.started` → `/start`, `drill.passed` → the
//! check's base URL (success), `drill.failed` and `drill.error` → `/fail` with a short plain-text body. If
//! the agent stops running drills, Healthchecks notices the missing pings, which lifeboat itself cannot.
//!
//! Two forms: one check's ping URL (`url_file` / `url_env`, the UUID in it is the secret), or a project
//! ping key plus one slug per asset (`<server>/<ping-key>/<slug>`, `?create=1` with `create = true`).
//! `lifeboat notify test` pings `/log`, which is recorded without changing the check's state. Other events
//! are not pings and are skipped.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::config::HealthchecksConfig;
use crate::error::{ConfigProblem, DeliveryError};
use crate::http::{Plan, Request, parse_url};
use crate::model::{EventKind, Notification};
use crate::secret::{Secret, SecretRef};
use crate::text::{plain, truncate_bytes};
use crate::webhooks::SecretUrl;

/// Self-hosted Healthchecks' default `PING_BODY_LIMIT` (hc/settings.py): bytes of body it keeps.
pub const BODY_LIMIT: usize = 10_000;
/// The public ping server.
pub const DEFAULT_SERVER: &str = "https://hc-ping.com";

enum Form {
    Url(SecretUrl),
    Slug {
        server: Url,
        key: Secret,
        create: bool,
    },
}

pub(crate) struct Healthchecks {
    form: Form,
}

impl Healthchecks {
    pub fn new(c: &HealthchecksConfig) -> Result<Healthchecks, ConfigProblem> {
        let by_url = c.url_file.is_some() || c.url_env.is_some();
        let by_key = c.ping_key_file.is_some() || c.ping_key_env.is_some();
        let form = match (by_url, by_key) {
            (true, true) => {
                return Err(ConfigProblem::Invalid(
                    "use either url_file/url_env (one check) or ping_key_file/ping_key_env (one check per asset), not both"
                        .to_string(),
                ));
            }
            (false, false) => {
                return Err(ConfigProblem::Invalid(
                    "url_file/url_env (one check's ping URL) or ping_key_file/ping_key_env (one check per asset) is required"
                        .to_string(),
                ));
            }
            (true, false) => {
                if c.create || c.server.is_some() {
                    return Err(ConfigProblem::Invalid(
                        "server and create only apply to the ping-key form (ping_key_file / ping_key_env)".to_string(),
                    ));
                }
                Form::Url(SecretUrl::load(
                    "url",
                    c.url_file.as_ref(),
                    c.url_env.as_ref(),
                )?)
            }
            (false, true) => {
                let key = SecretRef {
                    key: "ping_key",
                    file: c.ping_key_file.as_ref(),
                    env: c.ping_key_env.as_ref(),
                }
                .require()?;
                if !key
                    .expose()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(ConfigProblem::Invalid(
                        "the ping key may only hold A-Z a-z 0-9 - _".to_string(),
                    ));
                }
                let server = parse_url(
                    "server",
                    c.server.as_deref().unwrap_or(DEFAULT_SERVER),
                    false,
                )?;
                Form::Slug {
                    server,
                    key,
                    create: c.create,
                }
            }
        };
        Ok(Healthchecks { form })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.form {
            Form::Url(u) => u.secrets(),
            Form::Slug { key, .. } => vec![key],
        }
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        let suffix = match n.event {
            EventKind::DrillStarted => Some("start"),
            EventKind::DrillPassed => None,
            EventKind::DrillFailed | EventKind::DrillError => Some("fail"),
            EventKind::Test => Some("log"),
            other => {
                return Ok(Plan::Skip(format!(
                    "skipped: healthchecks only receives drill.started, drill.passed, drill.failed and drill.error, not {}",
                    other.as_str()
                )));
            }
        };
        let mut url = match &self.form {
            Form::Url(u) => u.url.clone(),
            Form::Slug {
                server,
                key,
                create,
            } => {
                let slug = slug(&n.asset);
                if slug.is_empty() {
                    return Ok(Plan::Skip(
                        "skipped: the ping-key form pings one check per asset and this notification names no asset"
                            .to_string(),
                    ));
                }
                let mut u = server.clone();
                push(&mut u, key.expose())?;
                push(&mut u, &slug)?;
                if *create {
                    u.set_query(Some("create=1"));
                }
                u
            }
        };
        if let Some(s) = suffix {
            push(&mut url, s)?;
        }
        let body = match n.event {
            EventKind::DrillStarted => format!("{}\n", n.title),
            _ => plain(n, true),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Ok(Plan::Send(vec![Request {
            method: Method::POST,
            url,
            headers,
            body: truncate_bytes(&body, BODY_LIMIT).into_bytes(),
        }]))
    }
}

fn push(url: &mut Url, segment: &str) -> Result<(), DeliveryError> {
    url.path_segments_mut()
        .map_err(|_| DeliveryError::permanent("the ping URL cannot take a path"))?
        .pop_if_empty()
        .push(segment);
    Ok(())
}

/// A Healthchecks slug from an asset name: lower case, `[a-z0-9_-]`, other characters as `-`
/// (`pbs/vm/101` → `pbs-vm-101`).
pub fn slug(asset: &str) -> String {
    let s: String = asset
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("pbs/vm/101"), "pbs-vm-101");
        assert_eq!(slug("App DB"), "app-db");
        assert_eq!(slug(""), "");
    }

    #[test]
    fn urls_per_event() {
        let h = Healthchecks {
            form: Form::Slug {
                server: Url::parse("http://127.0.0.1:9/").unwrap(),
                key: Secret::new("pk_1"),
                create: true,
            },
        };
        let mut n = crate::text::tests::sample();
        let url = |n: &Notification| match h.plan(n).unwrap() {
            Plan::Send(r) => r[0].url.to_string(),
            Plan::Skip(s) => s,
        };
        assert_eq!(url(&n), "http://127.0.0.1:9/pk_1/app/fail?create=1");
        n.event = EventKind::DrillPassed;
        assert_eq!(url(&n), "http://127.0.0.1:9/pk_1/app?create=1");
        n.event = EventKind::BackupStale;
        assert!(url(&n).starts_with("skipped"));
    }
}
