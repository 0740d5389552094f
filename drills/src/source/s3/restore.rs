//! Restoring one S3 snapshot: an object (HEAD, part layout, verified streaming download into the shared
//! archive/file restore, sidecar lookup) or a timestamped folder of objects (each one a file at its relative
//! key), and turning what the download proved into check results: one per verification method, failed on a
//! mismatch, unverifiable with the reason, and an explicit `s3 checksums` check when nothing at all could be
//! verified.

use std::sync::Arc;

use lifeboat_s3::checksum::parse_etag;
use lifeboat_s3::client::requestable_key;
use lifeboat_s3::{DownloadReport, DownloadSpec, Outcome, Verification};

use super::S3Source;
use crate::check::integrity::parse_sums;
use crate::extract::path::RelPath;
use crate::extract::sink::FileError;
use crate::extract::{RestoreError, RestoreSink, SourceReader, SourceState};
use crate::model::{CheckResult, CheckStatus, Snapshot, SnapshotKind};
use crate::source::stream::{restore_stream, sidecar_check};
use crate::source::{RestoreRequest, Restored};
use crate::units::HumanBytes;

/// Largest `NAME.sha256` read.
const MAX_SIDECAR: usize = 1 << 20;
/// Largest `SHA256SUMS` read.
const MAX_SUMS: usize = 64 << 20;
/// How many mismatches a folder check names in its message.
const NAMED: usize = 5;

/// A checksum list found beside an object.
struct Sidecar {
    /// The SHA-256 it gives for the object.
    digest: [u8; 32],
    /// Its name (`NAME.sha256`, `SHA256SUMS`).
    list: String,
    /// Its text (kept as evidence).
    text: Vec<u8>,
}

impl S3Source {
    /// HEAD, part layout, download, restore through `restore_stream`; returns the structure check and the
    /// download report.
    fn fetch_object(
        &self,
        key: &str,
        kind: SnapshotKind,
        name: &str,
        sink: &mut RestoreSink,
        state: &Arc<SourceState>,
    ) -> Result<(CheckResult, DownloadReport), RestoreError> {
        let client = self.client().map_err(|m| self.source_err(key, m))?;
        let spec = {
            let (c, k) = (client.clone(), key.to_string());
            let verify_etag = self.config.verify_etag;
            self.call(key, async move {
                let head = c.head(&k, None).await?;
                let parts = head
                    .etag
                    .as_deref()
                    .and_then(parse_etag)
                    .and_then(|e| e.parts)
                    .or(head.parts_count.filter(|n| *n > 1))
                    .or_else(|| head.checksums.stored.iter().find_map(|s| s.parts));
                let layout = match parts {
                    Some(n) if n > 1 => c.part_layout(&k, head.size, n).await?,
                    _ => None,
                };
                Ok(DownloadSpec {
                    head,
                    layout,
                    verify_etag,
                })
            })?
        };
        let size = spec.head.size;
        let rt = self.rt.get().map_err(|m| self.source_err(key, m))?;
        let mut download = client.download_cancellable(rt.handle(), spec, sink.cancel_flag());
        let location = self.location(key);
        let result = {
            let mut src = SourceReader::new(&mut download, state.clone(), false);
            restore_stream(kind, name, &location, &mut src, Some(size), sink, state).and_then(|c| {
                src.finish().map(|_| c).map_err(|e| RestoreError::SourceIo {
                    path: location.clone(),
                    source: e,
                })
            })
        };
        if result.is_err() && sink.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        // A network failure reads better as the client's own error (endpoint, bucket, key, advice).
        if let Some(e) = download.take_error() {
            return Err(self.source_err(key, e.to_string()));
        }
        let check = result?;
        let report = download
            .finish()
            .map_err(|e| self.source_err(key, e.to_string()))?;
        Ok((check, report))
    }

    /// `NAME.sha256` beside the object, else `SHA256SUMS` in its folder.
    fn sidecar(&self, key: &str) -> Result<Option<Sidecar>, RestoreError> {
        let client = self.client().map_err(|m| self.source_err(key, m))?;
        let (dir, base) = match key.rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b.to_string()),
            None => (String::new(), key.to_string()),
        };
        let side = format!("{key}.sha256");
        let (c, k) = (client.clone(), side.clone());
        if let Some(text) = self.call(key, async move { c.get_small(&k, MAX_SIDECAR).await })? {
            let hit = parse_sums(&text).into_iter().find(|e| match &e.name {
                None => true,
                Some(n) => n == base.as_bytes() || n.ends_with(format!("/{base}").as_bytes()),
            });
            if let Some(e) = hit {
                return Ok(Some(Sidecar {
                    digest: e.digest,
                    list: format!("{base}.sha256"),
                    text,
                }));
            }
        }
        for list in ["SHA256SUMS", "sha256sums", "SHA256SUMS.txt"] {
            let (c, k) = (client.clone(), format!("{dir}{list}"));
            if let Some(text) = self.call(key, async move { c.get_small(&k, MAX_SUMS).await })? {
                let hit = parse_sums(&text)
                    .into_iter()
                    .find(|e| e.name.as_deref() == Some(base.as_bytes()));
                if let Some(e) = hit {
                    return Ok(Some(Sidecar {
                        digest: e.digest,
                        list: list.to_string(),
                        text,
                    }));
                }
            }
        }
        Ok(None)
    }

    pub(super) fn restore_object(
        &self,
        snapshot: &Snapshot,
        req: &RestoreRequest,
    ) -> Result<Restored, RestoreError> {
        let key = self.key_of(snapshot)?;
        let state = Arc::new(SourceState::default());
        let mut sink = req.sink(state.clone())?;
        let sidecar = self.sidecar(&key)?;
        let (structure, report) =
            self.fetch_object(&key, snapshot.kind, &snapshot.id, &mut sink, &state)?;
        let summary = sink.finish()?;
        let uri = format!("s3://{}/{key}", self.config.bucket);
        let mut integrity = vec![structure];
        let mut verified = false;
        for v in &report.verifications {
            verified |= matches!(v.outcome, Outcome::Match | Outcome::Mismatch);
            integrity.push(verification_check(&uri, v));
        }
        if let Some(side) = sidecar {
            let mut c = sidecar_check(
                snapshot.kind,
                &snapshot.id,
                side.digest,
                &side.list,
                report.sha256,
            );
            // The list is evidence: keep the copy that was compared.
            let copy = req.evidence_dir.join(format!("sidecar-{}", side.list));
            if std::fs::write(&copy, &side.text).is_ok() {
                c.evidence.push(copy);
            }
            integrity.push(c);
            verified = true;
        }
        if !verified {
            integrity.push(nothing_to_verify(&uri, &report.verifications));
        }
        if report.resumes > 0 {
            integrity[0].actual.push_str(&format!(
                " (resumed {} times with ranged GETs after broken connections)",
                report.resumes
            ));
        }
        Ok(Restored {
            summary,
            integrity,
            // Every restored byte came from object bytes checked against the store (or a sidecar), as an
            // archive with a verified `archive checksum` is for a local source.
            content_verified: verified,
        })
    }

    pub(super) fn restore_folder(
        &self,
        snapshot: &Snapshot,
        req: &RestoreRequest,
    ) -> Result<Restored, RestoreError> {
        let folder = format!("{}/", self.key_of(snapshot)?);
        let listing = self
            .list_all(folder.clone(), None)
            .map_err(|m| self.source_err(&folder, m))?;
        let state = Arc::new(SourceState::default());
        let mut sink = req.sink(state.clone())?;
        let mut tallies: Vec<Tally> = Vec::new();
        let mut unverified: Vec<String> = Vec::new();
        let mut objects = 0u64;
        for o in &listing.objects {
            let Some(rel) = o.key.strip_prefix(&folder) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            if !requestable_key(&o.key) {
                return Err(RestoreError::Unsafe {
                    entry: rel.to_string(),
                    reason: "an object name with a '.' or '..' path segment".to_string(),
                });
            }
            if let Some(dir) = rel.strip_suffix('/') {
                // A folder marker object.
                let p = RelPath::parse(dir.as_bytes())?;
                sink.begin_entry(rel)?;
                sink.dir(&p, 0o755)?;
                continue;
            }
            RelPath::parse(rel.as_bytes())?;
            let report = self.fetch_folder_object(&o.key, rel, &mut sink, &state)?;
            objects += 1;
            let mut any = false;
            for v in &report.verifications {
                any |= matches!(v.outcome, Outcome::Match | Outcome::Mismatch);
                tally(&mut tallies, &o.key, v);
            }
            if !any {
                unverified.push(o.key.clone());
            }
        }
        let summary = sink.finish()?;
        let mut integrity = vec![CheckResult::new(
            "folder",
            "integrity",
            CheckStatus::Passed,
            format!(
                "every object below s3://{}/{folder} read to its end",
                self.config.bucket
            ),
            format!("{objects} objects, {}", HumanBytes(summary.stats.bytes)),
            "",
        )];
        integrity.extend(tallies.iter().map(Tally::check));
        if !unverified.is_empty() {
            let shown: Vec<&str> = unverified.iter().take(NAMED).map(String::as_str).collect();
            integrity.push(CheckResult::new(
                "s3 checksums",
                "integrity",
                CheckStatus::Unverifiable,
                "a stored checksum (x-amz-checksum-*) or an MD5 ETag for every object",
                format!("{} of {objects} objects have none", unverified.len()),
                format!(
                    "nothing to verify {}{} against; upload with a checksum (e.g. `aws s3 cp --checksum-algorithm SHA256`) or include a SHA256SUMS",
                    shown.join(", "),
                    if unverified.len() > NAMED { " …" } else { "" }
                ),
            ));
        }
        Ok(Restored {
            summary,
            integrity,
            content_verified: unverified.is_empty() && objects > 0,
        })
    }

    fn fetch_folder_object(
        &self,
        key: &str,
        rel: &str,
        sink: &mut RestoreSink,
        state: &Arc<SourceState>,
    ) -> Result<DownloadReport, RestoreError> {
        // Each object of a folder is a plain file at its relative path (the sink re-checks the path).
        let rel_path = RelPath::parse(rel.as_bytes())?;
        let client = self.client().map_err(|m| self.source_err(key, m))?;
        let (c, k, verify_etag) = (client.clone(), key.to_string(), self.config.verify_etag);
        let spec = self.call(key, async move {
            let head = c.head(&k, None).await?;
            let layout = match head
                .etag
                .as_deref()
                .and_then(parse_etag)
                .and_then(|e| e.parts)
            {
                Some(n) if n > 1 => c.part_layout(&k, head.size, n).await?,
                _ => None,
            };
            Ok(DownloadSpec {
                head,
                layout,
                verify_etag,
            })
        })?;
        let size = spec.head.size;
        let rt = self.rt.get().map_err(|m| self.source_err(key, m))?;
        let mut download = client.download_cancellable(rt.handle(), spec, sink.cancel_flag());
        sink.begin_entry(rel)?;
        let written = {
            let mut src = SourceReader::new(&mut download, state.clone(), false);
            sink.file(&rel_path, 0o644, size, &mut src)
        };
        if written.is_err() && sink.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        if let Some(e) = download.take_error() {
            return Err(self.source_err(key, e.to_string()));
        }
        match written {
            Ok(()) => {}
            Err(FileError::Sink(e)) => return Err(e),
            Err(FileError::Read(e)) => return Err(self.source_err(key, e.to_string())),
        }
        download
            .finish()
            .map_err(|e| self.source_err(key, e.to_string()))
    }
}

fn verification_check(uri: &str, v: &Verification) -> CheckResult {
    let (status, message) = match &v.outcome {
        Outcome::Match => (CheckStatus::Passed, String::new()),
        Outcome::Mismatch => (
            CheckStatus::Failed,
            format!(
                "object {uri} does not match its {}: the stored bytes differ from what was uploaded (bit rot, a broken copy or tampering); restore from another copy",
                v.source
            ),
        ),
        Outcome::Unverifiable(why) => (CheckStatus::Unverifiable, format!("{uri}: {why}")),
    };
    CheckResult::new(
        format!("s3 {}", v.method),
        "integrity",
        status,
        format!("{} ({} of {uri})", v.expected, v.source),
        v.actual.clone(),
        message,
    )
}

fn nothing_to_verify(uri: &str, v: &[Verification]) -> CheckResult {
    let reasons: Vec<String> = v
        .iter()
        .filter_map(|v| match &v.outcome {
            Outcome::Unverifiable(why) => Some(format!("{}: {why}", v.method)),
            _ => None,
        })
        .collect();
    CheckResult::new(
        "s3 checksums",
        "integrity",
        CheckStatus::Unverifiable,
        "a stored checksum (x-amz-checksum-*), an MD5 ETag or a NAME.sha256 / SHA256SUMS beside the object",
        if reasons.is_empty() {
            "none offered".to_string()
        } else {
            reasons.join("; ")
        },
        format!(
            "nothing to verify {uri} against, so silent corruption cannot be detected; upload with a checksum (e.g. `aws s3 cp --checksum-algorithm SHA256`) or write NAME.sha256 beside it"
        ),
    )
}

/// Verification results of one method over the objects of a folder.
struct Tally {
    method: &'static str,
    source: String,
    passed: u64,
    mismatches: Vec<String>,
    unverifiable: Vec<String>,
}

fn tally(tallies: &mut Vec<Tally>, key: &str, v: &Verification) {
    let i = match tallies.iter().position(|t| t.method == v.method) {
        Some(i) => i,
        None => {
            tallies.push(Tally {
                method: v.method,
                source: v.source.clone(),
                passed: 0,
                mismatches: Vec::new(),
                unverifiable: Vec::new(),
            });
            tallies.len() - 1
        }
    };
    let t = &mut tallies[i];
    match &v.outcome {
        Outcome::Match => t.passed += 1,
        Outcome::Mismatch => t
            .mismatches
            .push(format!("{key}: expected {}, read {}", v.expected, v.actual)),
        Outcome::Unverifiable(why) => t.unverifiable.push(format!("{key}: {why}")),
    }
}

impl Tally {
    fn check(&self) -> CheckResult {
        let total = self.passed + self.mismatches.len() as u64 + self.unverifiable.len() as u64;
        let expected = format!(
            "{} of {total} objects as the store recorded it",
            self.source
        );
        let mut actual = format!("{} match", self.passed);
        if !self.mismatches.is_empty() {
            actual.push_str(&format!(", {} differ", self.mismatches.len()));
        }
        if !self.unverifiable.is_empty() {
            actual.push_str(&format!(", {} unverifiable", self.unverifiable.len()));
        }
        let (status, message) = if !self.mismatches.is_empty() {
            let shown: Vec<&str> = self
                .mismatches
                .iter()
                .take(NAMED)
                .map(String::as_str)
                .collect();
            (
                CheckStatus::Failed,
                format!(
                    "{}{}; these objects' stored bytes differ from what was uploaded: restore from another copy",
                    shown.join("; "),
                    if self.mismatches.len() > NAMED {
                        " …"
                    } else {
                        ""
                    }
                ),
            )
        } else if self.passed == 0 {
            (
                CheckStatus::Unverifiable,
                self.unverifiable.first().cloned().unwrap_or_default(),
            )
        } else {
            (CheckStatus::Passed, String::new())
        };
        CheckResult::new(
            format!("s3 {}", self.method),
            "integrity",
            status,
            expected,
            actual,
            message,
        )
    }
}
