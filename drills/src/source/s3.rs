//! `type = "s3"`: objects in an S3-compatible bucket (AWS S3, Backblaze B2, MinIO, Wasabi, Garage,
//! SeaweedFS), read-only with list + get permissions.
//!
//! Snapshots are the objects directly below `prefix` (archives are extracted, anything else — a dump, a disk
//! image — is kept as one file) and "folders": common prefixes below `prefix` whose name carries a timestamp
//! (`postgres/2026-11-21T02:00:00Z/…`), restored object by object. Checksum lists (`*.sha256`, `SHA256SUMS`)
//! are evidence, not snapshots. A snapshot's time is the timestamp in its name, else the object's
//! Last-Modified.
//!
//! Bytes stream from the network into the same extraction code as local archives ([`super::stream`]), never
//! whole in memory; the client verifies every checksum the store offers while they stream, resumes broken
//! downloads with ranged GETs, and classifies failures: an unreachable endpoint, refused credentials or a
//! missing bucket make the drill an `error`; a checksum mismatch makes it `failed`.
//!
//! Like the PBS source, this one owns a small tokio runtime and waits for its futures on plain channels, so
//! it works from any thread.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use lifeboat_s3::client::requestable_key;
use lifeboat_s3::{Addressing, Client, ClientConfig, RetryPolicy, S3Error};

use super::stream::{archive_kind, is_sidecar};
use super::{RestoreRequest, Restored, Source, SourceError};
use crate::extract::RestoreError;
use crate::model::{Snapshot, SnapshotKind, TimeSource};
use crate::timestamp::parse_name_timestamp;

mod config;
mod profile;
mod restore;

pub use config::{AddressingConfig, S3Config};

/// Most objects listed below a prefix (the listing is held in memory).
const MAX_LISTED: usize = 1_000_000;

/// An S3 bucket prefix.
pub struct S3Source {
    config: S3Config,
    glob: Option<glob::Pattern>,
    tz: TimeZone,
    rt: super::net_runtime::NetRuntime,
    client: OnceLock<Result<Client, String>>,
}

impl S3Source {
    /// Builds from configuration; nothing connects until the first call.
    pub fn new(c: &S3Config, tz: TimeZone) -> Self {
        S3Source {
            config: c.clone(),
            glob: c.glob.as_deref().and_then(|g| glob::Pattern::new(g).ok()),
            tz,
            rt: super::net_runtime::NetRuntime::new("lifeboat-s3"),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<Client, String> {
        self.client
            .get_or_init(|| {
                let c = &self.config;
                let mut cfg = ClientConfig::new(
                    c.endpoint.clone(),
                    c.region.clone().unwrap_or_else(|| "us-east-1".to_string()),
                    c.bucket.clone(),
                    c.credentials()?,
                );
                cfg.addressing = c.addressing.map(|a| match a {
                    AddressingConfig::Path => Addressing::Path,
                    AddressingConfig::Virtual => Addressing::Virtual,
                });
                if let Some(p) = &c.ca_file {
                    cfg.ca_pem = Some(
                        std::fs::read(p)
                            .map_err(|e| format!("cannot read ca_file {}: {e}", p.display()))?,
                    );
                }
                if let Some(r) = c.retries {
                    cfg.retry = RetryPolicy {
                        max_retries: r,
                        ..RetryPolicy::default()
                    };
                }
                let rt = self.rt.get()?;
                let _guard = rt.enter();
                Client::new(cfg).map_err(|e| e.to_string())
            })
            .clone()
    }

    fn endpoint_shown(&self) -> String {
        self.config
            .endpoint
            .clone()
            .unwrap_or_else(|| {
                format!(
                    "https://s3.{}.amazonaws.com",
                    self.config.region.as_deref().unwrap_or("us-east-1")
                )
            })
            .trim_end_matches('/')
            .to_string()
    }

    fn key_of(&self, snapshot: &Snapshot) -> Result<String, RestoreError> {
        let key = format!("{}{}", self.config.prefix(), snapshot.id);
        if !requestable_key(&key) || snapshot.id.is_empty() {
            return Err(RestoreError::Unsafe {
                entry: snapshot.id.clone(),
                reason:
                    "not an object name lifeboat can request (empty, or a '.'/'..' path segment)"
                        .to_string(),
            });
        }
        Ok(key)
    }

    fn location(&self, key: &str) -> PathBuf {
        PathBuf::from(format!(
            "s3://{}/{key} at {}",
            self.config.bucket,
            self.endpoint_shown()
        ))
    }

    /// Runs an S3 call on the runtime; any failure is a source failure (`error`).
    fn call<T: Send + 'static>(
        &self,
        key: &str,
        fut: impl Future<Output = Result<T, S3Error>> + Send + 'static,
    ) -> Result<T, RestoreError> {
        let r = self.rt.run(fut).map_err(|m| self.source_err(key, m))?;
        r.map_err(|e| self.source_err(key, e.to_string()))
    }

    fn source_err(&self, key: &str, msg: String) -> RestoreError {
        RestoreError::SourceIo {
            path: self.location(key),
            source: io::Error::other(msg),
        }
    }

    fn list_all(
        &self,
        prefix: String,
        delimiter: Option<&'static str>,
    ) -> Result<lifeboat_s3::Listing, String> {
        let client = self.client()?;
        self.rt
            .run(async move { client.list(&prefix, delimiter, MAX_LISTED).await })?
            .map_err(|e| e.to_string())
    }
}

impl Source for S3Source {
    fn describe(&self) -> String {
        let p = self.config.prefix();
        if p.is_empty() {
            format!(
                "S3 bucket {} at {}",
                self.config.bucket,
                self.endpoint_shown()
            )
        } else {
            format!(
                "S3 bucket {} prefix {p} at {}",
                self.config.bucket,
                self.endpoint_shown()
            )
        }
    }

    fn list(&self) -> Result<Vec<Snapshot>, SourceError> {
        let prefix = self.config.prefix().to_string();
        let listing = self
            .list_all(prefix.clone(), Some("/"))
            .map_err(SourceError::Unavailable)?;
        let folder_hint = !prefix.is_empty()
            && !prefix.ends_with('/')
            && listing.prefixes.iter().any(|p| *p == format!("{prefix}/"));
        let mut out = Vec::new();
        for o in listing.objects {
            let Some(name) = o.key.strip_prefix(&prefix) else {
                continue;
            };
            if name.is_empty() || name.ends_with('/') || is_sidecar(name) {
                continue;
            }
            if !requestable_key(&o.key) {
                tracing::warn!(key = %o.key, "skipping an object whose name has a '.' or '..' path segment");
                continue;
            }
            if self.glob.as_ref().is_some_and(|g| !g.matches(name)) {
                continue;
            }
            let (time, time_source) = match parse_name_timestamp(name, &self.tz) {
                Some(t) => (t, TimeSource::Name),
                None => (
                    o.last_modified.unwrap_or(Timestamp::UNIX_EPOCH),
                    TimeSource::Mtime,
                ),
            };
            let details = o
                .storage_class
                .as_deref()
                .filter(|c| !c.is_empty() && *c != "STANDARD")
                .map(|c| format!("storage class {c}"));
            out.push(Snapshot {
                id: name.to_string(),
                time,
                time_source,
                size: Some(o.size),
                kind: archive_kind(name).unwrap_or(SnapshotKind::File),
                details,
            });
        }
        for p in listing.prefixes {
            let Some(name) = p.strip_prefix(&prefix).map(|n| n.trim_end_matches('/')) else {
                continue;
            };
            if name.is_empty() || !requestable_key(name) {
                continue;
            }
            if self.glob.as_ref().is_some_and(|g| !g.matches(name)) {
                continue;
            }
            // Only timestamped prefixes are snapshots; other sub-folders are something else.
            let Some(time) = parse_name_timestamp(name, &self.tz) else {
                continue;
            };
            out.push(Snapshot {
                id: name.to_string(),
                time,
                time_source: TimeSource::Name,
                size: None,
                kind: SnapshotKind::Folder,
                details: None,
            });
        }
        if out.is_empty() && folder_hint {
            return Err(SourceError::Unavailable(format!(
                "{}: prefix {prefix:?} is a folder; write it with a trailing slash: prefix = \"{prefix}/\"",
                self.describe()
            )));
        }
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    fn expected_size(&self, snapshot: &Snapshot) -> Option<u64> {
        match snapshot.kind {
            SnapshotKind::Folder => {
                let folder = format!("{}/", self.key_of(snapshot).ok()?);
                let l = self.list_all(folder, None).ok()?;
                Some(l.objects.iter().map(|o| o.size).sum())
            }
            _ => snapshot.size,
        }
    }

    fn restore(&self, snapshot: &Snapshot, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        if snapshot.kind == SnapshotKind::Folder {
            self.restore_folder(snapshot, req)
        } else {
            self.restore_object(snapshot, req)
        }
    }
}
