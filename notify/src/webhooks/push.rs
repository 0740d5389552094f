//! Phone push channels: ntfy and Gotify (notifications.md §4.4, §4.5).
//!
//! ntfy is published with its JSON form (a POST of `{"topic", "message", "title", "tags", "priority"}` to the
//! server root) rather than the `X-Title` header form, because titles carry non-ASCII text (`—`, names) that
//! HTTP headers cannot. Gotify gets Markdown (`client::display` extra) and its token in the `X-Gotify-Key`
//! header rather than the `?token=` query, so it never lands in a proxy's access log.
//!
//! Priorities follow the mapping proposed in notifications.md §4.10, with lifeboat's `info` standing for
//! both PVE's `info` and `notice`: ntfy 3/4/5/5 and Gotify 4/6/8/10 for info/warning/error/critical.

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::config::{GotifyConfig, NtfyConfig};
use crate::error::{ConfigProblem, DeliveryError};
use crate::http::{Plan, Request, parse_url};
use crate::model::{Notification, Severity, Transition};
use crate::secret::{Secret, SecretRef};
use crate::text::{bad_checks, passed_note, plain, report_url, truncate, truncate_bytes};

/// ntfy's default message size limit is 4096 bytes; stay under it so the message is not turned into an
/// attachment.
const NTFY_MESSAGE_BYTES: usize = 4000;

/// `server` with a trailing slash so `join` keeps any path prefix (`https://host/ntfy/`).
fn base(key: &str, server: &str) -> Result<Url, ConfigProblem> {
    let s = server.trim();
    let with_slash = if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    };
    parse_url(key, &with_slash, false)
}

/// ntfy priority 1–5.
pub(crate) fn ntfy_priority(n: &Notification) -> u8 {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) | (_, Severity::Info) => 3,
        (_, Severity::Warning) => 4,
        (_, Severity::Error | Severity::Critical) => 5,
    }
}

/// Gotify priority 0–10.
pub(crate) fn gotify_priority(n: &Notification) -> u8 {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) | (_, Severity::Info) => 4,
        (_, Severity::Warning) => 6,
        (_, Severity::Error) => 8,
        (_, Severity::Critical) => 10,
    }
}

/// The emoji shortcode tag that leads an ntfy notification.
fn ntfy_emoji(n: &Notification) -> &'static str {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) => "white_check_mark",
        (_, Severity::Critical) => "rotating_light",
        (_, Severity::Error) => "x",
        (_, Severity::Warning) => "warning",
        (_, Severity::Info) => "information_source",
    }
}

/// ntfy publish.
pub(crate) struct Ntfy {
    root: Url,
    topic: String,
    token: Option<Secret>,
    tags: Vec<String>,
}

impl Ntfy {
    pub fn new(c: &NtfyConfig) -> Result<Ntfy, ConfigProblem> {
        let root = base("server", c.server.as_deref().unwrap_or("https://ntfy.sh"))?;
        let t = &c.topic;
        if t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigProblem::Invalid(format!(
                "topic {t:?} must be 1 to 64 of A-Z a-z 0-9 - _ (on the public server, a long random name is its only protection)"
            )));
        }
        let token = SecretRef {
            key: "token",
            file: c.token_file.as_ref(),
            env: c.token_env.as_ref(),
        }
        .load()?;
        if let Some(tok) = &token {
            HeaderValue::from_str(&format!("Bearer {}", tok.expose())).map_err(|_| {
                ConfigProblem::Invalid("the token has characters a header cannot carry".to_string())
            })?;
        }
        for tag in &c.tags {
            if tag.is_empty() || tag.contains(',') {
                return Err(ConfigProblem::Invalid(format!(
                    "tag {tag:?} must be non-empty and without commas"
                )));
            }
        }
        Ok(Ntfy {
            root,
            topic: c.topic.clone(),
            token,
            tags: c.tags.clone(),
        })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.token.iter().collect()
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        let mut req = Request::json(self.root.clone(), &ntfy_payload(n, &self.topic, &self.tags));
        if let Some(t) = &self.token {
            let v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                DeliveryError::permanent("the ntfy token cannot be sent as a header")
            })?;
            req.headers.insert(AUTHORIZATION, v);
        }
        Ok(Plan::Send(vec![req]))
    }
}

/// The JSON publish body.
pub(crate) fn ntfy_payload(n: &Notification, topic: &str, extra_tags: &[String]) -> Value {
    let mut tags = vec![
        ntfy_emoji(n).to_string(),
        "lifeboat".to_string(),
        n.event.as_str().to_string(),
    ];
    tags.extend(extra_tags.iter().cloned());
    let mut p = json!({
        "topic": topic,
        "title": truncate(&n.title, 250),
        "message": truncate_bytes(&plain(n, false), NTFY_MESSAGE_BYTES),
        "priority": ntfy_priority(n),
        "tags": tags,
    });
    if let Some(u) = report_url(n) {
        p["click"] = json!(u);
    }
    p
}

/// Gotify message.
pub(crate) struct Gotify {
    url: Url,
    token: Secret,
}

impl Gotify {
    pub fn new(c: &GotifyConfig) -> Result<Gotify, ConfigProblem> {
        let root = base("server", &c.server)?;
        let url = root
            .join("message")
            .map_err(|e| ConfigProblem::Invalid(format!("server: {e}")))?;
        let token = SecretRef {
            key: "token",
            file: c.token_file.as_ref(),
            env: c.token_env.as_ref(),
        }
        .require()?;
        HeaderValue::from_str(token.expose()).map_err(|_| {
            ConfigProblem::Invalid("the token has characters a header cannot carry".to_string())
        })?;
        Ok(Gotify { url, token })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        let mut req = Request::json(self.url.clone(), &gotify_payload(n));
        let v = HeaderValue::from_str(self.token.expose())
            .map_err(|_| DeliveryError::permanent("the Gotify token cannot be sent as a header"))?;
        req.headers
            .insert(HeaderName::from_static("x-gotify-key"), v);
        Ok(Plan::Send(vec![req]))
    }
}

/// Backslash-escapes the Markdown characters that would change how user text renders.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Markdown message body for Gotify.
pub(crate) fn gotify_markdown(n: &Notification) -> String {
    let mut s = md_escape(&n.summary);
    s.push_str("\n\n");
    for f in &n.facts {
        s.push_str(&format!(
            "- **{}:** {}\n",
            md_escape(&f.label),
            md_escape(&f.value)
        ));
    }
    let bad: Vec<_> = bad_checks(n).collect();
    if !bad.is_empty() {
        s.push_str("\n**Checks that did not pass**\n\n");
        for c in bad {
            s.push_str(&format!(
                "- **{}**: {}, expected `{}`, actual `{}`",
                md_escape(&c.name),
                c.status.to_uppercase(),
                c.expected.replace('`', "'"),
                c.actual.replace('`', "'")
            ));
            if let Some(m) = &c.message {
                s.push_str(&format!(". {}", md_escape(m)));
            }
            s.push('\n');
        }
    }
    let note = passed_note(n);
    if !note.is_empty() {
        s.push_str(&format!("\n{note}\n"));
    }
    if !n.details.is_empty() {
        s.push_str("\n```\n");
        for d in n.details.iter().take(30) {
            s.push_str(&d.replace("```", "'''"));
            s.push('\n');
        }
        s.push_str("```\n");
    }
    if let Some(cmd) = &n.reproduce {
        s.push_str(&format!("\nReproduce: `{}`\n", cmd.replace('`', "'")));
    }
    s
}

/// The Gotify JSON body with the Markdown display extra.
pub(crate) fn gotify_payload(n: &Notification) -> Value {
    let mut extras = json!({"client::display": {"contentType": "text/markdown"}});
    if let Some(u) = report_url(n) {
        extras["client::notification"] = json!({"click": {"url": u}});
    }
    json!({
        "title": truncate(&n.title, 250),
        "message": truncate(&gotify_markdown(n), 20_000),
        "priority": gotify_priority(n),
        "extras": extras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::sample;

    #[test]
    fn priorities_follow_severity_and_resolve_is_calm() {
        let mut n = sample();
        assert_eq!((ntfy_priority(&n), gotify_priority(&n)), (5, 10));
        n.severity = Severity::Warning;
        assert_eq!((ntfy_priority(&n), gotify_priority(&n)), (4, 6));
        n.severity = Severity::Error;
        assert_eq!((ntfy_priority(&n), gotify_priority(&n)), (5, 8));
        n.transition = Transition::Resolve;
        assert_eq!((ntfy_priority(&n), gotify_priority(&n)), (3, 4));
    }

    #[test]
    fn ntfy_message_fits_the_limit() {
        let mut n = sample();
        n.details = vec!["é".repeat(5000)];
        let p = ntfy_payload(&n, "t", &[]);
        assert!(p["message"].as_str().unwrap().len() <= NTFY_MESSAGE_BYTES);
        assert_eq!(p["click"], "https://example.com/r/1");
    }

    #[test]
    fn gotify_markdown_escapes_user_text() {
        let mut n = sample();
        n.summary = "a *b* [c](d)".into();
        let m = gotify_markdown(&n);
        assert!(m.starts_with("a \\*b\\* \\[c\\](d)"), "{m}");
        assert!(
            m.contains("- **integrity: archive checksum**: FAILED, expected `sha256 aaaa`"),
            "{m}"
        );
    }

    #[test]
    fn bad_topic_is_refused() {
        let c = NtfyConfig {
            server: None,
            topic: "has space".into(),
            token_file: None,
            token_env: None,
            tags: vec![],
            ca_file: None,
            timeout: None,
        };
        assert!(Ntfy::new(&c).is_err());
    }
}
