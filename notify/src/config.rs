//! `[notify.NAME]` as written, minus the agent's routing keys (`events`, `min_severity`, `remind_every`,
//! `digest`, `digest_timezone`), which the agent removes before deserialising. Each channel type is its own
//! struct with `deny_unknown_fields`, so a typo such as `pasword_file` is an error and not a silently
//! unauthenticated mail. Secrets are only ever referenced (`*_file`, `*_env`); checking them ("is the file
//! readable, is the variable set") is done offline by [`ChannelConfig::validate`], which builds the channel
//! exactly like the agent will.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::EventKind;

/// A timeout written as a duration (`"20s"`, `"1m"`, `"PT30S"`), between 1 second and 10 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0.as_secs()))
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let parsed: jiff::SignedDuration = s.trim().parse().map_err(|e| {
            serde::de::Error::custom(format!(
                "timeout {s:?} is not a duration such as \"20s\" or \"1m\": {e}"
            ))
        })?;
        let secs = parsed.as_secs_f64();
        if !(1.0..=600.0).contains(&secs) {
            return Err(serde::de::Error::custom(format!(
                "timeout {s:?} must be between 1s and 10m"
            )));
        }
        Ok(Timeout(Duration::from_secs_f64(secs)))
    }
}

/// How the SMTP connection is protected. Explicit and required: guessing is how passwords end up in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with `STARTTLS` (submission, port 587). Fails if the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption (a local relay, port 25). A password is refused unless the host is the local machine.
    None,
}

impl TlsMode {
    /// The usual port for the mode: 587, 465, 25.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        }
    }
}

/// `type = "email"`: SMTP submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Mail server host name (also the name its certificate must carry).
    pub host: String,
    /// Port; default from `tls` (587 / 465 / 25).
    #[serde(default)]
    pub port: Option<u16>,
    /// `"starttls"`, `"tls"` or `"none"`.
    pub tls: TlsMode,
    /// Login name; no AUTH when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Sender: `lifeboat@example.com` or `Backup drills <lifeboat@example.com>`.
    pub from: String,
    /// Recipients, same forms as `from`.
    pub to: Vec<String>,
    /// PEM file of the CA (or the certificate itself) to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name sent in `EHLO`; default: this machine's host name.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// Limit for connecting and for each SMTP reply (default 30 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "webhook"`: generic JSON, signed per Standard Webhooks when a `whsec_` secret is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receiver URL (when it holds no token); otherwise `url_file` / `url_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the `whsec_…` signing secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the `whsec_…` signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Extra request headers (not for secrets: those belong in the URL or the signing secret).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// PEM file of the CA to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "slack"`, `"teams"`: an incoming-webhook URL, which is itself the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// File holding the webhook URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the webhook URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "slack"`.
pub type SlackConfig = ChatConfig;
/// `type = "teams"` (a Workflows "When a Teams webhook request is received" URL).
pub type TeamsConfig = ChatConfig;

/// `type = "discord"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// File holding the execute-webhook URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the execute-webhook URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Name shown as the author (default: the webhook's own name).
    #[serde(default)]
    pub username: Option<String>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "ntfy"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// Server (default `https://ntfy.sh`).
    #[serde(default)]
    pub server: Option<String>,
    /// Topic (`[-_A-Za-z0-9]{1,64}`). On the public server the topic name is the only protection.
    pub topic: String,
    /// File holding an access token (`tk_…`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding an access token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Extra tags added to every message.
    #[serde(default)]
    pub tags: Vec<String>,
    /// PEM file of the CA to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "gotify"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GotifyConfig {
    /// Server, e.g. `https://gotify.example.com`.
    pub server: String,
    /// File holding the application token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the application token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// PEM file of the CA to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "pagerduty"`: Events API v2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// File holding the 32-character integration (routing) key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Environment variable holding the routing key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// Events endpoint (default `https://events.pagerduty.com/v2/enqueue`).
    #[serde(default)]
    pub url: Option<String>,
    /// `payload.source` (default: this machine's host name).
    #[serde(default)]
    pub source: Option<String>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `type = "healthchecks"`: start / success / fail pings (Healthchecks.io or self-hosted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthchecksConfig {
    /// Ping server for the slug form (default `https://hc-ping.com`).
    #[serde(default)]
    pub server: Option<String>,
    /// File holding one check's ping URL (`https://hc-ping.com/UUID`).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding one check's ping URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the project's ping key (slug form: one check per asset).
    #[serde(default)]
    pub ping_key_file: Option<PathBuf>,
    /// Environment variable holding the ping key.
    #[serde(default)]
    pub ping_key_env: Option<String>,
    /// Slug form: create missing checks (`?create=1`).
    #[serde(default)]
    pub create: bool,
    /// PEM file of the CA to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request timeout (default 20 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// `[notify.NAME]` minus the routing keys, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ChannelConfig {
    /// SMTP email.
    Email(EmailConfig),
    /// Generic JSON webhook (Standard Webhooks).
    Webhook(WebhookConfig),
    /// Slack incoming webhook (Block Kit).
    Slack(SlackConfig),
    /// Microsoft Teams Workflows webhook (Adaptive Card).
    Teams(TeamsConfig),
    /// Discord execute-webhook (embed).
    Discord(DiscordConfig),
    /// ntfy publish.
    Ntfy(NtfyConfig),
    /// Gotify message.
    Gotify(GotifyConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerdutyConfig),
    /// Healthchecks pings.
    Healthchecks(HealthchecksConfig),
}

/// Default events of chat-like channels: everything but the routine `drill.started` and `drill.passed`.
const ALERTS: [EventKind; 10] = [
    EventKind::DrillFailed,
    EventKind::DrillError,
    EventKind::DrillMissed,
    EventKind::BackupStale,
    EventKind::BackupFailed,
    EventKind::BackupVerifyFailed,
    EventKind::BackupShrunk,
    EventKind::ReportGenerated,
    EventKind::Digest,
    EventKind::Test,
];

/// Default events of a healthchecks channel: the drill's life cycle.
const PINGS: [EventKind; 4] = [
    EventKind::DrillStarted,
    EventKind::DrillPassed,
    EventKind::DrillFailed,
    EventKind::DrillError,
];

impl ChannelConfig {
    /// The `type` value: `"email"`, `"webhook"`, …
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Email(_) => "email",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Teams(_) => "teams",
            ChannelConfig::Discord(_) => "discord",
            ChannelConfig::Ntfy(_) => "ntfy",
            ChannelConfig::Gotify(_) => "gotify",
            ChannelConfig::Pagerduty(_) => "pagerduty",
            ChannelConfig::Healthchecks(_) => "healthchecks",
        }
    }

    /// Checks the channel offline: secret files readable, variables set, URLs and addresses well formed,
    /// `ca_file` holding certificates. The message (without the channel name) says what to change.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        crate::Channel::new(name, self)
            .map(drop)
            .map_err(|e| e.problem.to_string())
    }

    /// Makes relative `*_file` and `ca_file` paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p
                && path.is_relative()
            {
                *path = base.join(&*path);
            }
        };
        match self {
            ChannelConfig::Email(c) => {
                fix(&mut c.password_file);
                fix(&mut c.ca_file);
            }
            ChannelConfig::Webhook(c) => {
                fix(&mut c.url_file);
                fix(&mut c.secret_file);
                fix(&mut c.ca_file);
            }
            ChannelConfig::Slack(c) | ChannelConfig::Teams(c) => fix(&mut c.url_file),
            ChannelConfig::Discord(c) => fix(&mut c.url_file),
            ChannelConfig::Ntfy(c) => {
                fix(&mut c.token_file);
                fix(&mut c.ca_file);
            }
            ChannelConfig::Gotify(c) => {
                fix(&mut c.token_file);
                fix(&mut c.ca_file);
            }
            ChannelConfig::Pagerduty(c) => fix(&mut c.routing_key_file),
            ChannelConfig::Healthchecks(c) => {
                fix(&mut c.url_file);
                fix(&mut c.ping_key_file);
                fix(&mut c.ca_file);
            }
        }
    }

    /// The events a channel hears about when its table has no `events` key.
    pub fn default_events(&self) -> &'static [EventKind] {
        match self {
            ChannelConfig::Healthchecks(_) => &PINGS,
            _ => &ALERTS,
        }
    }

    /// The request / reply timeout: the configured one or the default (20 s for HTTP, 30 s for SMTP).
    pub fn timeout(&self) -> Duration {
        let t = match self {
            ChannelConfig::Email(c) => c.timeout,
            ChannelConfig::Webhook(c) => c.timeout,
            ChannelConfig::Slack(c) | ChannelConfig::Teams(c) => c.timeout,
            ChannelConfig::Discord(c) => c.timeout,
            ChannelConfig::Ntfy(c) => c.timeout,
            ChannelConfig::Gotify(c) => c.timeout,
            ChannelConfig::Pagerduty(c) => c.timeout,
            ChannelConfig::Healthchecks(c) => c.timeout,
        };
        match (t, self) {
            (Some(t), _) => t.0,
            (None, ChannelConfig::Email(_)) => Duration::from_secs(30),
            (None, _) => Duration::from_secs(20),
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
            TlsMode::None => "none",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChannelConfig, String> {
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn tagged_by_type_and_unknown_keys_rejected() {
        let c = parse(r#"{"type":"email","host":"smtp.example.com","tls":"starttls","from":"a@b.c","to":["d@e.f"],"timeout":"45s"}"#).unwrap();
        assert_eq!(c.kind(), "email");
        assert_eq!(c.timeout(), Duration::from_secs(45));
        let e = parse(
            r#"{"type":"email","host":"h","tls":"tls","from":"a@b.c","to":[],"pasword_file":"x"}"#,
        )
        .unwrap_err();
        assert!(e.contains("pasword_file"), "{e}");
        let e = parse(r#"{"type":"email","host":"h","from":"a@b.c","to":[]}"#).unwrap_err();
        assert!(e.contains("tls"), "{e}");
        let c = parse(r#"{"type":"pagerduty","routing_key_env":"PD"}"#).unwrap();
        assert_eq!(c.kind(), "pagerduty");
        assert_eq!(c.timeout(), Duration::from_secs(20));
        let e = parse(r#"{"type":"slack","url":"https://hooks.slack.com/x"}"#).unwrap_err();
        assert!(e.contains("url"), "inline secret URLs are refused: {e}");
        let e = parse(r#"{"type":"ntfy","topic":"t","timeout":"2h"}"#).unwrap_err();
        assert!(e.contains("between 1s and 10m"), "{e}");
    }

    #[test]
    fn round_trips_through_json() {
        let c =
            parse(r#"{"type":"healthchecks","ping_key_env":"HC","create":true,"timeout":"10s"}"#)
                .unwrap();
        let back: ChannelConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn resolves_relative_paths_against_the_config_folder() {
        let mut c = parse(r#"{"type":"email","host":"h","tls":"tls","from":"a@b.c","to":["x@y.z"],"password_file":"secrets/pw","ca_file":"/etc/ca.pem"}"#).unwrap();
        c.resolve_paths(Path::new("/etc/lifeboat"));
        let ChannelConfig::Email(e) = c else { panic!() };
        assert_eq!(
            e.password_file.unwrap(),
            Path::new("/etc/lifeboat/secrets/pw")
        );
        assert_eq!(e.ca_file.unwrap(), Path::new("/etc/ca.pem"));
    }

    #[test]
    fn default_events() {
        let hc = parse(r#"{"type":"healthchecks","url_env":"X"}"#).unwrap();
        assert!(hc.default_events().contains(&EventKind::DrillStarted));
        assert!(!hc.default_events().contains(&EventKind::BackupStale));
        let s = parse(r#"{"type":"slack","url_env":"X"}"#).unwrap();
        assert!(!s.default_events().contains(&EventKind::DrillPassed));
        assert!(!s.default_events().contains(&EventKind::DrillStarted));
        assert!(s.default_events().contains(&EventKind::DrillFailed));
    }
}
