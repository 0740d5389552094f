//! The generic JSON webhook, shaped and signed per the Standard Webhooks specification
//! (standard-webhooks/standard-webhooks, `spec/standard-webhooks.md`; notifications.md §4.8) so a receiver
//! can verify it with any of the spec's libraries:
//!
//! * body `{"type": "drill.failed", "timestamp": "<RFC 3339>", "data": {…}}`;
//! * `webhook-id` = the notification id, stable across retries, so the receiver can de-duplicate;
//! * `webhook-timestamp` = Unix seconds of this attempt (a retry gets a fresh one, as the spec says);
//! * `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is the
//!   base64 text after the secret's `whsec_` prefix, decoded.
//!
//! `data` is the agent's structured payload with the common fields filled in where the agent did not set
//! them, so a receiver always finds `title`, `summary`, `severity`, `asset`, … in the same place.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::config::WebhookConfig;
use crate::error::{ConfigProblem, DeliveryError};
use crate::http::{Plan, Request, header, parse_url};
use crate::model::Notification;
use crate::secret::{Secret, SecretRef};

/// Headers the channel sets itself; the config may not override them.
const RESERVED: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

pub(crate) struct Webhook {
    url: reqwest::Url,
    url_secrets: Vec<Secret>,
    signing: Option<(Secret, Vec<u8>)>,
    headers: HeaderMap,
}

impl Webhook {
    pub fn new(c: &WebhookConfig) -> Result<Webhook, ConfigProblem> {
        let from_secret = SecretRef {
            key: "url",
            file: c.url_file.as_ref(),
            env: c.url_env.as_ref(),
        };
        let (url, url_secrets) = match (&c.url, from_secret.load()?) {
            (Some(_), Some(_)) => {
                return Err(ConfigProblem::Invalid(
                    "set one of url, url_file and url_env".to_string(),
                ));
            }
            (Some(u), None) => (parse_url("url", u, false)?, Vec::new()),
            (None, Some(s)) => {
                let url = parse_url(&from_secret.source_key(), s.expose(), true)?;
                let pieces = super::url_pieces(&url, &s);
                (url, pieces)
            }
            (None, None) => {
                return Err(ConfigProblem::Invalid(
                    "url (or url_file / url_env) is required".to_string(),
                ));
            }
        };
        let secret = SecretRef {
            key: "secret",
            file: c.secret_file.as_ref(),
            env: c.secret_env.as_ref(),
        };
        let signing = match secret.load()? {
            None => None,
            Some(s) => {
                let key = signing_key(s.expose()).ok_or_else(|| {
                    ConfigProblem::Invalid(format!(
                        "{} must hold a Standard Webhooks secret: whsec_ followed by base64 (24 to 64 random bytes)",
                        secret.source_key()
                    ))
                })?;
                Some((s, key))
            }
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            if RESERVED.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(ConfigProblem::Invalid(format!(
                    "headers: {k} is set by lifeboat itself and cannot be overridden"
                )));
            }
            let (n, v) = header(k, v)?;
            headers.insert(n, v);
        }
        Ok(Webhook {
            url,
            url_secrets,
            signing,
            headers,
        })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.url_secrets
            .iter()
            .chain(self.signing.as_ref().map(|(s, _)| s))
            .collect()
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        let body = body(n).to_string().into_bytes();
        let ts = jiff::Timestamp::now().as_second();
        let mut req = Request::json(self.url.clone(), &Value::Null);
        req.body = body;
        for (k, v) in &self.headers {
            req.headers.insert(k.clone(), v.clone());
        }
        let id = HeaderValue::from_str(&n.id).map_err(|_| {
            DeliveryError::permanent(format!(
                "notification id {:?} is not a valid header value",
                n.id
            ))
        })?;
        req.headers
            .insert(HeaderName::from_static("webhook-id"), id);
        req.headers.insert(
            HeaderName::from_static("webhook-timestamp"),
            HeaderValue::from(ts),
        );
        if let Some((_, key)) = &self.signing {
            let sig = sign(key, &n.id, ts, &req.body);
            let v = HeaderValue::from_str(&sig)
                .map_err(|_| DeliveryError::permanent("signature is not a valid header value"))?;
            req.headers
                .insert(HeaderName::from_static("webhook-signature"), v);
        }
        Ok(Plan::Send(vec![req]))
    }
}

/// The key bytes of a `whsec_…` secret (the prefix is optional, as in the spec's reference libraries).
pub(crate) fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret
        .trim()
        .strip_prefix("whsec_")
        .unwrap_or(secret.trim());
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub(crate) fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty signature rather than panic.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The JSON body: `{"type", "timestamp", "data"}`.
pub(crate) fn body(n: &Notification) -> Value {
    let mut data = match &n.data {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("value".to_string(), other.clone());
            m
        }
    };
    let common = json!({
        "id": n.id,
        "event": n.event.as_str(),
        "transition": n.transition,
        "severity": n.severity.as_str(),
        "asset": n.asset,
        "site": n.site,
        "dedup_key": n.dedup_key,
        "title": n.title,
        "summary": n.summary,
        "facts": n.facts.iter().map(|f| json!({"label": f.label, "value": f.value})).collect::<Vec<_>>(),
        "checks": n.checks,
        "details": n.details,
        "reproduce": n.reproduce,
    });
    if let Value::Object(common) = common {
        for (k, v) in common {
            data.entry(k).or_insert(v);
        }
    }
    json!({
        "type": n.event.as_str(),
        "timestamp": n.time.to_string(),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_test_vector() {
        // The vector the Standard Webhooks / Svix reference libraries test against
        // (Svix's PHP test suite signs exactly this; found via the code search, several libraries reuse it).
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Some(key));
        assert_eq!(signing_key("whsec_not base64!"), None);
    }

    #[test]
    fn body_keeps_agent_data_and_adds_common_fields() {
        let n = crate::text::tests::sample();
        let b = body(&n);
        assert_eq!(b["type"], "drill.failed");
        assert_eq!(b["timestamp"], "2026-03-01T02:00:00Z");
        assert_eq!(b["data"]["run_id"], "r1");
        assert_eq!(b["data"]["severity"], "critical");
        assert_eq!(b["data"]["transition"], "trigger");
        assert_eq!(b["data"]["checks"][0]["expected"], "sha256 aaaa");
        assert_eq!(b["data"]["facts"][1]["label"], "RTA vs RTO");
    }
}
