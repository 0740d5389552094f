//! Delivering the outbox: due rows are sent through their channel one by one, in queue order, and the
//! result recorded before the next. A row is marked `sent` only after the channel accepted it; a crash
//! between the two sends it again at the next start, so channels carry the notification id as an
//! idempotency key (`webhook-id`, `Message-ID`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use lifeboat_notify::{Channel, Retry};

use super::outbox::{self, Item};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Built channels, or why one could not be built.
pub struct Channels(BTreeMap<String, Result<Channel, String>>);

impl Channels {
    /// Builds every configured channel (secrets are read here).
    pub fn build(config: &Config) -> Self {
        Channels(
            config
                .channels
                .iter()
                .map(|(name, c)| {
                    (
                        name.clone(),
                        Channel::new(name, &c.config).map_err(|e| e.to_string()),
                    )
                })
                .collect(),
        )
    }

    /// The channel named `name`.
    pub fn get(&self, name: &str) -> Option<&Result<Channel, String>> {
        self.0.get(name)
    }
}

/// What one delivery pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pass {
    /// Delivered.
    pub sent: usize,
    /// Failed, will be retried.
    pub retrying: usize,
    /// Failed for good.
    pub failed: usize,
}

async fn attempt(channels: &Channels, item: &Item) -> Result<String, (String, Option<Duration>)> {
    let n = item
        .decode()
        .map_err(|e| (format!("the stored notification cannot be read: {e}"), None))?;
    let ch = match channels.get(&item.channel) {
        None => {
            return Err((
                format!(
                    "channel {} is no longer configured; add it back or leave this notification failed",
                    item.channel
                ),
                None,
            ));
        }
        Some(Err(e)) => return Err((format!("channel {}: {e}", item.channel), None)),
        Some(Ok(c)) => c,
    };
    match ch.deliver(&n).await {
        Ok(d) => Ok(d.detail),
        Err(e) => {
            let retry = match e.retry {
                Retry::Transient { after } => Some(after.unwrap_or(Duration::ZERO)),
                Retry::Permanent => None,
            };
            Err((e.message, retry))
        }
    }
}

/// Delivers every due row, stopping at `deadline` (rows not reached stay pending).
pub async fn pass(
    store: &Store,
    channels: &Channels,
    deadline: Option<tokio::time::Instant>,
) -> Result<Pass, StoreError> {
    let mut p = Pass::default();
    loop {
        let items = outbox::due(store, Timestamp::now(), 50)?;
        if items.is_empty() {
            return Ok(p);
        }
        let mut progressed = false;
        for item in items {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(p);
            }
            let result = match deadline {
                Some(d) => match tokio::time::timeout_at(d, attempt(channels, &item)).await {
                    Ok(r) => r,
                    Err(_) => return Ok(p),
                },
                None => attempt(channels, &item).await,
            };
            let now = Timestamp::now();
            match result {
                Ok(detail) => {
                    tracing::info!(channel = %item.channel, event = %item.event, title = %item.title, "notification delivered");
                    outbox::sent(store, item.id, now, &detail)?;
                    p.sent += 1;
                    progressed = true;
                }
                Err((msg, retry)) => {
                    if outbox::failed(store, &item, now, &msg, retry)? {
                        tracing::warn!(channel = %item.channel, event = %item.event, error = %msg, "notification not delivered; will retry");
                        p.retrying += 1;
                    } else {
                        tracing::error!(channel = %item.channel, event = %item.event, error = %msg, "notification failed; see `lifeboat outbox`");
                        p.failed += 1;
                        progressed = true;
                    }
                }
            }
        }
        if !progressed {
            return Ok(p);
        }
    }
}

/// For one-shot commands (`lifeboat drill`, `lifeboat watch`): deliver what is due for up to `budget`,
/// on a small runtime of its own.
pub fn now_blocking(config: &Config, store: &Store, budget: Duration) -> Result<Pass, String> {
    if config.channels.is_empty() {
        return Ok(Pass::default());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the delivery runtime: {e}"))?;
    let channels = {
        let _g = rt.enter();
        Channels::build(config)
    };
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + budget;
        pass(store, &channels, Some(deadline)).await
    })
    .map_err(|e| e.to_string())
}
