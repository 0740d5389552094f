//! The outbox table: what is queued, what was delivered, what failed and why (`lifeboat outbox`).
//!
//! Retries back off from 30 s to 4 h; a notification that could not be delivered for 48 h, or that the
//! channel refused for good (wrong password, 4xx), is marked `failed` with the reason and stays visible until
//! `lifeboat outbox retry` queues it again.

use std::time::Duration;

use jiff::Timestamp;
use lifeboat_notify::Notification;
use rusqlite::params;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// Give up on transient failures after this long.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(48 * 3600);

/// One outbox row.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Row id.
    pub id: i64,
    /// Event id (unique with the channel).
    pub event_id: String,
    /// Channel name.
    pub channel: String,
    /// Event kind (`drill.failed`).
    pub event: String,
    /// `trigger`, `remind`, `resolve`, `info`.
    pub transition: String,
    /// Subject line.
    pub title: String,
    /// `pending`, `sent`, `failed`.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Next attempt (pending rows).
    pub next_attempt_at: Timestamp,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// The channel's answer on success.
    pub detail: Option<String>,
    /// The message itself.
    #[serde(skip)]
    pub notification: String,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

const COLUMNS: &str = "id, event_id, channel, event, transition, title, state, attempts, created_at, next_attempt_at, delivered_at, last_error, detail, notification";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        event_id: r.get(1)?,
        channel: r.get(2)?,
        event: r.get(3)?,
        transition: r.get(4)?,
        title: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        created_at: ts(r.get(8)?),
        next_attempt_at: ts(r.get(9)?),
        delivered_at: r.get::<_, Option<i64>>(10)?.map(ts),
        last_error: r.get(11)?,
        detail: r.get(12)?,
        notification: r.get(13)?,
    })
}

impl Item {
    /// The stored message.
    pub fn decode(&self) -> Result<Notification, serde_json::Error> {
        serde_json::from_str(&self.notification)
    }
}

/// Rows due for delivery now, oldest first.
pub fn due(store: &Store, now: Timestamp, limit: usize) -> Result<Vec<Item>, StoreError> {
    store.transaction(|tx| {
        let mut st = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
        ))?;
        st.query_map(params![now.as_millisecond(), limit as i64], row)?
            .collect()
    })
}

/// Rows for `lifeboat outbox`: pending and failed, plus the newest `sent` ones when `all`.
pub fn list(store: &Store, all: bool, limit: usize) -> Result<Vec<Item>, StoreError> {
    store.transaction(|tx| {
        let filter = if all {
            ""
        } else {
            "WHERE state IN ('pending', 'failed')"
        };
        let mut st = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox {filter} ORDER BY id DESC LIMIT ?1"
        ))?;
        st.query_map(params![limit as i64], row)?.collect()
    })
}

/// Counts by state.
pub fn counts(store: &Store) -> Result<(i64, i64, i64), StoreError> {
    store.transaction(|tx| {
        tx.query_row(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed') FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    })
}

/// Marks a row delivered.
pub fn sent(store: &Store, id: i64, now: Timestamp, detail: &str) -> Result<(), StoreError> {
    store.transaction(|tx| {
        tx.execute(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, last_attempt_at = ?2, delivered_at = ?2, detail = ?3, last_error = NULL WHERE id = ?1",
            params![id, now.as_millisecond(), detail],
        )
        .map(|_| ())
    })
}

/// The wait before attempt `attempts + 1`: 30 s, 1 min, 2 min, … capped at 4 h, with up to 10 % jitter.
pub fn backoff(attempts: i64, id: i64) -> Duration {
    let base = 30u64
        .saturating_mul(1u64 << attempts.clamp(0, 12))
        .min(4 * 3600);
    let jitter = (id.unsigned_abs().wrapping_mul(2_654_435_761) % 100) * base / 1000;
    Duration::from_secs(base + jitter)
}

/// Records a failed attempt: retried later when `retry_after` is set and the row is not too old, else
/// `failed`.
pub fn failed(
    store: &Store,
    item: &Item,
    now: Timestamp,
    error: &str,
    retry_after: Option<Duration>,
) -> Result<bool, StoreError> {
    let age = now.duration_since(item.created_at);
    let give_up = age.as_secs() >= GIVE_UP_AFTER.as_secs() as i64;
    let (state, next, msg) = match retry_after {
        Some(d) if !give_up => {
            let wait = d.max(backoff(item.attempts, item.id));
            let next =
                now.as_millisecond() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            ("pending", next, error.to_string())
        }
        Some(_) => (
            "failed",
            now.as_millisecond(),
            format!(
                "gave up after {} attempts over 48 h: {error}",
                item.attempts + 1
            ),
        ),
        None => ("failed", now.as_millisecond(), error.to_string()),
    };
    store.transaction(|tx| {
        tx.execute(
            "UPDATE outbox SET state = ?2, attempts = attempts + 1, last_attempt_at = ?3, next_attempt_at = ?4, last_error = ?5 WHERE id = ?1",
            params![item.id, state, now.as_millisecond(), next, msg],
        )
        .map(|_| ())
    })?;
    Ok(state == "pending")
}

/// Makes every pending row due now (`lifeboat outbox deliver`: the operator fixed the mail server).
pub fn due_now(store: &Store, now: Timestamp) -> Result<usize, StoreError> {
    store.transaction(|tx| {
        tx.execute(
            "UPDATE outbox SET next_attempt_at = ?1 WHERE state = 'pending' AND next_attempt_at > ?1",
            params![now.as_millisecond()],
        )
    })
}

/// Queues failed rows (all, or the given ids) again, now.
pub fn retry(store: &Store, ids: &[i64], now: Timestamp) -> Result<usize, StoreError> {
    store.transaction(|tx| {
        if ids.is_empty() {
            tx.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, created_at = ?1 WHERE state = 'failed'",
                params![now.as_millisecond()],
            )
        } else {
            let mut n = 0;
            for id in ids {
                n += tx.execute(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, created_at = ?2 WHERE id = ?1 AND state = 'failed'",
                    params![id, now.as_millisecond()],
                )?;
            }
            Ok(n)
        }
    })
}
