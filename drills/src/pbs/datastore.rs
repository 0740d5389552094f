//! The directory layout of a PBS datastore, read straight from disk (a removable or replicated datastore is
//! what is left when the PBS host itself is gone).
//!
//! Layout (pbs-protocol.md §3.7, from proxmox-backup `chunk_store.rs`, `datastore.rs`, `backup_info.rs`):
//! `ROOT/.chunks/<hex(d[0..2])>/<hex(d)>` holds chunks; `ROOT[/ns/<a>[/ns/<b>…]]/<type>/<id>/<RFC3339 UTC>/`
//! holds a snapshot's `index.json.blob` and its `*.fidx`, `*.didx`, `*.blob` files. A snapshot directory
//! without `index.json.blob` is a backup still running (or aborted) and is not listed. Everything here only
//! reads; a datastore is never locked or modified.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// Backup types PBS knows.
pub const BACKUP_TYPES: [&str; 3] = ["vm", "ct", "host"];
/// Deepest namespace nesting PBS allows.
pub const MAX_NAMESPACE_DEPTH: usize = 7;

/// Errors reading the layout (never the backup's fault: the store is missing or unreadable).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Not a datastore.
    #[error("{path} is not a PBS datastore (no .chunks folder); check `path` of the source")]
    NotADatastore {
        /// Folder.
        path: PathBuf,
    },
    /// A namespace name that PBS would not accept.
    #[error(
        "invalid namespace {ns:?}: each level is [A-Za-z0-9_][A-Za-z0-9._-]*, at most {MAX_NAMESPACE_DEPTH} levels"
    )]
    BadNamespace {
        /// As configured.
        ns: String,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// One snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDir {
    /// `vm`, `ct` or `host`.
    pub backup_type: String,
    /// Backup id (`101`).
    pub backup_id: String,
    /// Backup time.
    pub time: Timestamp,
    /// The directory.
    pub path: PathBuf,
    /// `.protected` marker present.
    pub protected: bool,
}

impl SnapshotDir {
    /// `vm/101/2026-11-21T02:00:00Z`, the id lifeboat shows and stores.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.backup_type,
            self.backup_id,
            self.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    }

    /// `vm/101`.
    pub fn group(&self) -> String {
        format!("{}/{}", self.backup_type, self.backup_id)
    }
}

fn valid_ns_level(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The folder of namespace `ns` (`"a/b"`) under `root`.
pub fn namespace_dir(root: &Path, ns: Option<&str>) -> Result<PathBuf, LayoutError> {
    let mut dir = root.to_path_buf();
    if let Some(ns) = ns.filter(|n| !n.is_empty()) {
        let levels: Vec<&str> = ns.split('/').collect();
        if levels.len() > MAX_NAMESPACE_DEPTH || !levels.iter().all(|l| valid_ns_level(l)) {
            return Err(LayoutError::BadNamespace { ns: ns.to_string() });
        }
        for l in levels {
            dir = dir.join("ns").join(l);
        }
    }
    Ok(dir)
}

/// The path of a chunk file.
pub fn chunk_path(root: &Path, digest: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(digest);
    root.join(".chunks").join(&hex[..4]).join(hex)
}

/// Parses a snapshot directory name (`2026-11-21T02:00:00Z`, exactly PBS's form).
pub fn parse_snapshot_time(name: &str) -> Option<Timestamp> {
    let b = name.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    name.parse().ok()
}

fn read_dir(p: &Path) -> Result<Vec<fs::DirEntry>, LayoutError> {
    match fs::read_dir(p) {
        Ok(rd) => Ok(rd.flatten().collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(LayoutError::Io {
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// Every finished snapshot in namespace `ns` (not its children), newest first.
pub fn list_snapshots(root: &Path, ns: Option<&str>) -> Result<Vec<SnapshotDir>, LayoutError> {
    if !root.join(".chunks").is_dir() {
        return Err(LayoutError::NotADatastore {
            path: root.to_path_buf(),
        });
    }
    let base = namespace_dir(root, ns)?;
    let mut out = Vec::new();
    for t in BACKUP_TYPES {
        for group in read_dir(&base.join(t))? {
            if !group.file_type().is_ok_and(|f| f.is_dir()) {
                continue;
            }
            let Some(id) = group.file_name().to_str().map(str::to_string) else {
                continue;
            };
            for snap in read_dir(&group.path())? {
                let Some(time) = snap.file_name().to_str().and_then(parse_snapshot_time) else {
                    continue;
                };
                let path = snap.path();
                if !path.join("index.json.blob").is_file() {
                    continue;
                }
                out.push(SnapshotDir {
                    backup_type: t.to_string(),
                    backup_id: id.clone(),
                    time,
                    protected: path.join(".protected").exists(),
                    path,
                });
            }
        }
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id().cmp(&b.id())));
    Ok(out)
}

/// Child namespaces of `ns` (one level), for listings.
pub fn list_namespaces(root: &Path, ns: Option<&str>) -> Result<Vec<String>, LayoutError> {
    let base = namespace_dir(root, ns)?;
    let mut out: Vec<String> = read_dir(&base.join("ns"))?
        .into_iter()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| valid_ns_level(n))
        .map(|n| match ns.filter(|p| !p.is_empty()) {
            Some(p) => format!("{p}/{n}"),
            None => n,
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert!(matches!(
            list_snapshots(root, None),
            Err(LayoutError::NotADatastore { .. })
        ));
        fs::create_dir_all(root.join(".chunks")).unwrap();
        for (dir, manifest) in [
            ("vm/101/2026-11-20T02:00:00Z", true),
            ("vm/101/2026-11-21T02:00:00Z", true),
            ("vm/101/2026-11-22T02:00:00Z", false), // still running
            ("ct/200/2026-11-21T03:00:00Z", true),
            ("vm/101/not-a-time", true),
            ("ns/prod/host/web/2026-11-21T04:00:00Z", true),
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
            if manifest {
                fs::write(root.join(dir).join("index.json.blob"), b"").unwrap();
            }
        }
        let ids: Vec<String> = list_snapshots(root, None)
            .unwrap()
            .iter()
            .map(SnapshotDir::id)
            .collect();
        assert_eq!(
            ids,
            vec![
                "ct/200/2026-11-21T03:00:00Z",
                "vm/101/2026-11-21T02:00:00Z",
                "vm/101/2026-11-20T02:00:00Z"
            ]
        );
        let prod: Vec<String> = list_snapshots(root, Some("prod"))
            .unwrap()
            .iter()
            .map(SnapshotDir::id)
            .collect();
        assert_eq!(prod, vec!["host/web/2026-11-21T04:00:00Z"]);
        assert_eq!(list_namespaces(root, None).unwrap(), vec!["prod"]);
        assert!(namespace_dir(root, Some("../etc")).is_err());
        assert!(namespace_dir(root, Some("a/b/c/d/e/f/g/h")).is_err());
        let d = [0xabu8; 32];
        assert!(chunk_path(root, &d).ends_with(format!(".chunks/abab/{}", hex::encode(d))));
    }
}
