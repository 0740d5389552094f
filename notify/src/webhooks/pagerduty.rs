//! PagerDuty Events API v2 (notifications.md §4.6, from PagerDuty/developer-docs "Trigger Events"):
//! an alert opens with `trigger`, a reminder is another `trigger` with the same `dedup_key` (PagerDuty folds it
//! into the open incident), and the recovery sends `resolve` with that key, which closes it — borgmatic's hook
//! only ever triggers, leaving incidents open after the backups recover; lifeboat resolves.
//!
//! Plain information (a passed drill, a report) is not an incident and is not sent. `lifeboat notify test`
//! sends a `trigger` of severity `info` followed at once by its `resolve`, which proves the routing key works
//! without leaving an incident open.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::PagerdutyConfig;
use crate::error::{ConfigProblem, DeliveryError};
use crate::http::{Plan, Request, parse_url};
use crate::model::{EventKind, Notification, Severity, Transition};
use crate::secret::{Secret, SecretRef};
use crate::text::{bad_checks, check_line, hostname, report_url, truncate};

/// The public Events API v2 endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub(crate) struct Pagerduty {
    url: reqwest::Url,
    key: Secret,
    source: String,
}

impl Pagerduty {
    pub fn new(c: &PagerdutyConfig) -> Result<Pagerduty, ConfigProblem> {
        let r = SecretRef {
            key: "routing_key",
            file: c.routing_key_file.as_ref(),
            env: c.routing_key_env.as_ref(),
        };
        let key = r.require()?;
        let k = key.expose().trim();
        if k.len() != 32 || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigProblem::Invalid(format!(
                "{} must hold the 32-character integration key of an Events API v2 integration",
                r.source_key()
            )));
        }
        let url = parse_url("url", c.url.as_deref().unwrap_or(DEFAULT_URL), false)?;
        let source = c.source.clone().unwrap_or_else(hostname);
        if source.trim().is_empty() {
            return Err(ConfigProblem::Invalid(
                "source must not be empty".to_string(),
            ));
        }
        Ok(Pagerduty {
            url,
            key: Secret::new(k),
            source,
        })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        vec![&self.key]
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        let key = self.key.expose();
        let dk = dedup_key(n);
        let bodies = match (n.event, n.transition) {
            (EventKind::Test, _) => {
                let test_key = dedup_key_of(&format!("lifeboat-test/{}", n.id));
                vec![
                    trigger(n, key, &test_key, &self.source),
                    resolve(key, &test_key),
                ]
            }
            (_, Transition::Trigger | Transition::Remind) => {
                vec![trigger(n, key, &dk, &self.source)]
            }
            (_, Transition::Resolve) => vec![resolve(key, &dk)],
            (e, Transition::Info) => {
                return Ok(Plan::Skip(format!(
                    "skipped: {} is information, not an alert; PagerDuty only receives trigger and resolve",
                    e.as_str()
                )));
            }
        };
        Ok(Plan::Send(
            bodies
                .iter()
                .map(|b| Request::json(self.url.clone(), b))
                .collect(),
        ))
    }
}

/// `critical`, `error`, `warning` or `info`: the same words as lifeboat's severities.
pub(crate) fn severity(s: Severity) -> &'static str {
    s.as_str()
}

/// The notification's `dedup_key` (its id when empty), kept within PagerDuty's 255 characters.
pub(crate) fn dedup_key(n: &Notification) -> String {
    if n.dedup_key.is_empty() {
        dedup_key_of(&n.id)
    } else {
        dedup_key_of(&n.dedup_key)
    }
}

fn dedup_key_of(k: &str) -> String {
    if k.chars().count() <= 255 {
        return k.to_string();
    }
    let head: String = k.chars().take(200).collect();
    let digest = hex::encode(Sha256::digest(k.as_bytes()));
    format!("{head}#{}", &digest[..32])
}

fn trigger(n: &Notification, key: &str, dk: &str, source: &str) -> Value {
    let mut facts = Map::new();
    for f in &n.facts {
        facts.insert(f.label.clone(), json!(f.value));
    }
    let mut details = json!({
        "summary": n.summary,
        "event": n.event.as_str(),
        "transition": n.transition,
        "facts": facts,
        "failing_checks": bad_checks(n).map(check_line).collect::<Vec<_>>(),
        "notification_id": n.id,
    });
    if !n.details.is_empty() {
        details["details"] = json!(n.details.iter().take(50).collect::<Vec<_>>());
    }
    if let Some(cmd) = &n.reproduce {
        details["reproduce"] = json!(cmd);
    }
    let severity = if n.event == EventKind::Test {
        Severity::Info
    } else {
        n.severity
    };
    let mut payload = json!({
        "summary": truncate(&n.title, 1024),
        "source": source,
        "severity": self::severity(severity),
        "timestamp": n.time.to_string(),
        "class": n.event.as_str(),
        "custom_details": details,
    });
    if !n.asset.is_empty() {
        payload["component"] = json!(n.asset);
    }
    if let Some(site) = &n.site {
        payload["group"] = json!(site);
    }
    let mut body = json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dk,
        "payload": payload,
        "client": "lifeboat",
    });
    if let Some(u) = report_url(n) {
        body["client_url"] = json!(u);
        body["links"] = json!([{"href": u, "text": "Report"}]);
    }
    body
}

fn resolve(key: &str, dk: &str) -> Value {
    json!({"routing_key": key, "event_action": "resolve", "dedup_key": dk})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::sample;

    #[test]
    fn long_dedup_keys_are_shortened_stably() {
        let mut n = sample();
        n.dedup_key = "k".repeat(400);
        let a = dedup_key(&n);
        assert!(a.chars().count() <= 255);
        assert_eq!(a, dedup_key(&n));
        n.dedup_key.push('x');
        assert_ne!(a, dedup_key(&n));
        n.dedup_key = String::new();
        assert_eq!(dedup_key(&n), n.id);
    }

    #[test]
    fn trigger_shape() {
        let n = sample();
        let b = trigger(&n, "K", "site/drill/app", "host1");
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["payload"]["severity"], "critical");
        assert_eq!(b["payload"]["component"], "app");
        assert_eq!(b["payload"]["group"], "site");
        assert_eq!(b["payload"]["custom_details"]["facts"]["Drill"], "app");
        assert_eq!(b["client_url"], "https://example.com/r/1");
    }
}
