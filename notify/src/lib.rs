//! lifeboat's alert channels. The agent decides *what* to say and *when* (routing, state changes, the durable
//! outbox); this crate renders one [`Notification`] for one channel and delivers it, reporting whether a failed
//! delivery is worth retrying.
//!
//! A [`Channel`] is built once from its [`ChannelConfig`] (secrets loaded, URLs parsed, TLS roots chosen) so a
//! broken configuration shows at start-up, not at 3 a.m. when the first alert is due. [`Channel::deliver`]
//! makes exactly one attempt: retries, backoff and de-duplication belong to the agent's outbox, which uses
//! [`Retry`] to tell "try again later" from "a human must fix this".

pub mod config;
mod email;
mod error;
mod http;
pub mod model;
mod secret;
pub mod text;
mod webhooks;

use std::fmt;
use std::sync::Arc;

pub use config::{
    ChannelConfig, ChatConfig, DiscordConfig, EmailConfig, GotifyConfig, HealthchecksConfig,
    NtfyConfig, PagerdutyConfig, SlackConfig, TeamsConfig, Timeout, TlsMode, WebhookConfig,
};
pub use error::{ConfigError, ConfigProblem, Delivered, DeliveryError, Retry};
pub use model::{CheckLine, EventKind, Fact, Notification, Severity, Transition};
pub use secret::{Secret, redact};

/// The transport of one channel, ready to send.
enum Transport {
    Email(email::Mailer),
    Http(http::HttpChannel),
}

/// One configured channel, built once (secrets loaded) and used for every delivery. Cloning is cheap (the
/// transport is shared), and both the channel and [`Channel::deliver`]'s future are `Send`, so deliveries can
/// run on spawned tasks.
#[derive(Clone)]
pub struct Channel {
    name: String,
    kind: &'static str,
    transport: Arc<Transport>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// Builds the channel: loads its secrets, parses its URLs and addresses, reads `ca_file`.
    pub fn new(name: &str, cfg: &ChannelConfig) -> Result<Channel, ConfigError> {
        let err = |problem| ConfigError {
            channel: name.to_string(),
            problem,
        };
        let timeout = cfg.timeout();
        let transport = match cfg {
            ChannelConfig::Email(c) => {
                Transport::Email(email::Mailer::new(c, timeout).map_err(err)?)
            }
            other => Transport::Http(http::HttpChannel::new(other, timeout).map_err(err)?),
        };
        Ok(Channel {
            name: name.to_string(),
            kind: cfg.kind(),
            transport: Arc::new(transport),
        })
    }

    /// The `[notify.NAME]` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel type (`"email"`, …).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Renders `n` for this channel and makes one delivery attempt.
    pub async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let result = match &*self.transport {
            Transport::Email(m) => m.send(n).await,
            Transport::Http(h) => h.deliver(n).await,
        };
        match &result {
            Ok(d) => {
                tracing::debug!(channel = %self.name, kind = self.kind, id = %n.id, detail = %d.detail, "delivered")
            }
            Err(e) => {
                tracing::debug!(channel = %self.name, kind = self.kind, id = %n.id, error = %e.message, "delivery failed")
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time: a delivery can be spawned on a multi-threaded runtime.
    #[allow(dead_code)]
    fn delivery_future_is_send(c: &Channel, n: &Notification) {
        fn is_send<T: Send>(_: T) {}
        is_send(c.deliver(n));
        fn is_send_sync<T: Send + Sync + Clone>() {}
        is_send_sync::<Channel>();
    }

    #[test]
    fn debug_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "https://hooks.slack.com/services/T0/B0/SECRETTOKEN\n").unwrap();
        let cfg: ChannelConfig =
            serde_json::from_value(serde_json::json!({"type": "slack", "url_file": f})).unwrap();
        let c = Channel::new("chat", &cfg).unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains("chat") && d.contains("slack") && !d.contains("SECRETTOKEN"),
            "{d}"
        );
        assert_eq!(c.kind(), "slack");
        assert_eq!(c.name(), "chat");
    }
}
