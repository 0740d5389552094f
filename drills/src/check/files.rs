//! The `files` check: does the restore look like the thing it backs up?
//!
//! Required paths, a minimum file count and total size, glob patterns with minimum counts, and a tolerance
//! against the previous passing run: a restore with 40% fewer files than last night restores fine and is
//! still a sign that something (a job's include list, a ransomware wipe) went wrong.

use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;

use crate::model::{CheckResult, CheckStatus, RestoreStats};
use crate::units::{HumanBytes, Percent, Size};

/// A glob with the minimum number of restored files that must match it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternMin {
    /// Glob over paths relative to the restore root (`**` crosses folders), e.g. `"data/**/*.db"`.
    pub glob: String,
    /// Minimum matching files (default 1).
    #[serde(default = "one")]
    pub min: u64,
}

fn one() -> u64 {
    1
}

/// What to do when the restore shrank beyond `max_shrink`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShrink {
    /// Record a warning; the run still passes.
    #[default]
    Warn,
    /// Fail the run.
    Fail,
}

/// `[[drills.NAME.checks]] type = "files"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Paths that must exist (relative to the restore root; a trailing `/` requires a folder).
    #[serde(default)]
    pub required: Vec<String>,
    /// Minimum number of regular files.
    #[serde(default)]
    pub min_files: Option<u64>,
    /// Minimum total bytes of regular files.
    #[serde(default)]
    pub min_bytes: Option<Size>,
    /// Globs with minimum counts.
    #[serde(default)]
    pub patterns: Vec<PatternMin>,
    /// Largest tolerated drop in file count or bytes against the previous passing run (e.g. `"40%"`).
    #[serde(default)]
    pub max_shrink: Option<Percent>,
    /// `warn` (default) or `fail` when the drop exceeds `max_shrink`.
    #[serde(default)]
    pub on_shrink: OnShrink,
}

fn result(name: &str, ok: bool, expected: String, actual: String, message: String) -> CheckResult {
    let status = if ok {
        CheckStatus::Passed
    } else {
        CheckStatus::Failed
    };
    CheckResult::new(
        name,
        "files",
        status,
        expected,
        actual,
        if ok { String::new() } else { message },
    )
}

/// Counts regular files under `root` matching each pattern, without following symlinks.
fn count_patterns(root: &Path, patterns: &[glob::Pattern]) -> io::Result<Vec<u64>> {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut counts = vec![0u64; patterns.len()];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let t = e.file_type()?;
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                for (i, pat) in patterns.iter().enumerate() {
                    if pat.matches_path_with(rel, opts) {
                        counts[i] += 1;
                    }
                }
            }
        }
    }
    Ok(counts)
}

impl FilesConfig {
    /// Evaluates against the restored tree and its stats; `baseline` is the previous passing run's stats.
    pub fn run(
        &self,
        root: &Path,
        stats: &RestoreStats,
        baseline: Option<&RestoreStats>,
    ) -> Vec<CheckResult> {
        let mut out = Vec::new();
        for req in &self.required {
            let want_dir = req.ends_with('/');
            let rel = req.trim_end_matches('/');
            let meta = fs::symlink_metadata(root.join(rel.trim_start_matches('/')));
            let (ok, actual) = match &meta {
                Ok(m) if want_dir => (
                    m.is_dir(),
                    if m.is_dir() {
                        "folder exists"
                    } else {
                        "exists, not a folder"
                    },
                ),
                Ok(m) if m.is_dir() => (true, "folder exists"),
                Ok(m) if m.file_type().is_symlink() => (true, "symlink exists"),
                Ok(_) => (true, "file exists"),
                Err(_) => (false, "missing"),
            };
            out.push(result(
                &format!("required {req}"),
                ok,
                format!("{req} present"),
                actual.to_string(),
                format!("{req} is missing from the restore: the backup does not contain it (check the backup job's include list)"),
            ));
        }
        if let Some(min) = self.min_files {
            out.push(result(
                "file count",
                stats.files >= min,
                format!("at least {min} files"),
                format!("{} files", stats.files),
                format!(
                    "only {} files restored, at least {min} expected",
                    stats.files
                ),
            ));
        }
        if let Some(Size(min)) = self.min_bytes {
            out.push(result(
                "total size",
                stats.bytes >= min,
                format!("at least {}", HumanBytes(min)),
                HumanBytes(stats.bytes).to_string(),
                format!(
                    "only {} restored, at least {} expected",
                    HumanBytes(stats.bytes),
                    HumanBytes(min)
                ),
            ));
        }
        if !self.patterns.is_empty() {
            let compiled: Vec<glob::Pattern> = self
                .patterns
                .iter()
                .filter_map(|p| glob::Pattern::new(&p.glob).ok())
                .collect();
            match count_patterns(root, &compiled) {
                Ok(counts) => {
                    for (p, n) in self.patterns.iter().zip(counts) {
                        out.push(result(
                            &format!("pattern {}", p.glob),
                            n >= p.min,
                            format!("at least {} files matching {}", p.min, p.glob),
                            format!("{n} files"),
                            format!("{n} files match {}, at least {} expected", p.glob, p.min),
                        ));
                    }
                }
                Err(e) => out.push(CheckResult::new(
                    "patterns",
                    "files",
                    CheckStatus::Error,
                    "restored tree walkable",
                    e.to_string(),
                    "cannot walk the restored folder",
                )),
            }
        }
        if let Some(Percent(max)) = self.max_shrink {
            out.push(shrink(max, self.on_shrink, stats, baseline));
        }
        out
    }
}

fn shrink(
    max: f64,
    on: OnShrink,
    now: &RestoreStats,
    before: Option<&RestoreStats>,
) -> CheckResult {
    let expected = format!(
        "at most {:.0}% fewer files or bytes than the previous passing run",
        max * 100.0
    );
    let Some(before) = before else {
        return CheckResult::new(
            "shrink",
            "files",
            CheckStatus::Passed,
            expected,
            "no previous passing run to compare with".to_string(),
            "",
        );
    };
    let drop = |now: u64, before: u64| {
        if before == 0 {
            0.0
        } else {
            1.0 - now as f64 / before as f64
        }
    };
    let files_drop = drop(now.files, before.files);
    let bytes_drop = drop(now.bytes, before.bytes);
    let actual = format!(
        "{} files ({:+.0}%), {} ({:+.0}%) against {} files, {}",
        now.files,
        -files_drop * 100.0,
        HumanBytes(now.bytes),
        -bytes_drop * 100.0,
        before.files,
        HumanBytes(before.bytes)
    );
    let worst = files_drop.max(bytes_drop);
    let status = match (worst > max, on) {
        (false, _) => CheckStatus::Passed,
        (true, OnShrink::Warn) => CheckStatus::Warning,
        (true, OnShrink::Fail) => CheckStatus::Failed,
    };
    let message = if status == CheckStatus::Passed {
        String::new()
    } else {
        format!(
            "the restore shrank by {:.0}% since the previous passing run: check whether data was deleted or the backup job lost part of its selection",
            worst * 100.0
        )
    };
    CheckResult::new("shrink", "files", status, expected, actual, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(files: u64, bytes: u64) -> RestoreStats {
        RestoreStats {
            files,
            bytes,
            ..RestoreStats::default()
        }
    }

    #[test]
    fn shrink_tolerance() {
        let r = shrink(
            0.4,
            OnShrink::Fail,
            &stats(50, 1000),
            Some(&stats(100, 1000)),
        );
        assert_eq!(r.status, CheckStatus::Failed, "{r:?}");
        let r = shrink(
            0.4,
            OnShrink::Warn,
            &stats(50, 1000),
            Some(&stats(100, 1000)),
        );
        assert_eq!(r.status, CheckStatus::Warning);
        let r = shrink(
            0.4,
            OnShrink::Fail,
            &stats(70, 1000),
            Some(&stats(100, 1000)),
        );
        assert_eq!(r.status, CheckStatus::Passed);
        let r = shrink(0.4, OnShrink::Fail, &stats(70, 1000), None);
        assert_eq!(r.status, CheckStatus::Passed);
    }

    #[test]
    fn required_and_patterns() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("data/sub")).unwrap();
        fs::write(tmp.path().join("data/sub/a.db"), b"x").unwrap();
        fs::write(tmp.path().join("top.db"), b"x").unwrap();
        let cfg = FilesConfig {
            required: vec!["data/".into(), "nope.txt".into()],
            patterns: vec![
                PatternMin {
                    glob: "data/**/*.db".into(),
                    min: 1,
                },
                PatternMin {
                    glob: "*.db".into(),
                    min: 2,
                },
            ],
            ..FilesConfig::default()
        };
        let r = cfg.run(tmp.path(), &stats(2, 2), None);
        let st: Vec<_> = r.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            st,
            vec![
                ("required data/", CheckStatus::Passed),
                ("required nope.txt", CheckStatus::Failed),
                ("pattern data/**/*.db", CheckStatus::Passed),
                ("pattern *.db", CheckStatus::Failed),
            ]
        );
    }
}
