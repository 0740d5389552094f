//! The two ways a channel can go wrong: its configuration cannot be used ([`ConfigError`], found before any
//! delivery, at start-up or by `lifeboat check`), or one delivery did not go through ([`DeliveryError`]).
//! A delivery error always says whether trying again later can help ([`Retry`]): the durable outbox retries
//! transient failures with backoff and parks permanent ones for a human, so the classification matters more
//! than the wording. Neither type ever carries a secret.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What is wrong with one channel's configuration, without the channel's name (the caller adds it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// A setting is missing, contradictory or malformed; the text says which and what to write instead.
    #[error("{0}")]
    Invalid(String),
    /// A `*_file` secret could not be read.
    #[error("cannot read {key} {path}: {source}; create it (mode 0600) with the secret inside")]
    SecretFile {
        /// The config key (`password_file`).
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `*_env` secret's variable is not set.
    #[error(
        "environment variable {var} (from {key}) is not set; export it in the agent's environment"
    )]
    SecretEnvMissing {
        /// The config key (`token_env`).
        key: String,
        /// The variable.
        var: String,
    },
    /// The `ca_file` could not be read or holds no certificate.
    #[error("ca_file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The HTTP or TLS client could not be built.
    #[error("cannot set up the client: {0}")]
    Client(String),
}

/// A channel that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("channel {channel}: {problem}")]
pub struct ConfigError {
    /// The `[notify.NAME]` name.
    pub channel: String,
    /// What is wrong.
    pub problem: ConfigProblem,
}

/// Whether a failed delivery is worth trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The receiver is down, slow, throttling or temporarily refusing: try again later, no sooner than
    /// `after` when the receiver said so (`Retry-After`).
    Transient {
        /// The receiver's requested delay, if it gave one.
        after: Option<Duration>,
    },
    /// Trying again cannot help until someone changes the configuration or the receiver (wrong password,
    /// untrusted certificate, endpoint gone, payload rejected).
    Permanent,
}

/// One delivery that did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// Whether to try again.
    pub retry: Retry,
    /// What happened and what to do, without secrets.
    pub message: String,
}

impl DeliveryError {
    /// A transient failure without a requested delay.
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retry: Retry::Transient { after: None },
            message: message.into(),
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retry: Retry::Permanent,
            message: message.into(),
        }
    }

    /// `true` when trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self.retry, Retry::Transient { .. })
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeliveryError {}

/// A delivery that went through (or was deliberately skipped), with what the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's answer (`250 2.0.0 Ok: queued as 4F2A`, `HTTP 202`) or why nothing was sent.
    pub detail: String,
}

impl Delivered {
    /// A delivery with this detail.
    pub fn new(detail: impl Into<String>) -> Delivered {
        Delivered {
            detail: detail.into(),
        }
    }
}
