//! Checksum lists: parsing `SHA256SUMS` / `*.sha256` files and verifying a restore against them.
//!
//! Verification never re-reads restored data: the sink hashed every file while writing it into the manifest,
//! so this module streams the manifest once and looks up only the paths the lists name (memory grows with
//! the size of the lists, not of the backup).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::extract::path::RelPath;
use crate::model::{CheckResult, CheckStatus};

/// Largest checksum list read (a list is text; a larger one is suspicious).
const MAX_LIST: u64 = 256 << 20;
/// How many mismatches are named in a message (all are in the evidence file).
const NAMED: usize = 5;

/// One line of a checksum list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumEntry {
    /// Expected SHA-256.
    pub digest: [u8; 32],
    /// File name as written in the list (`None` for a bare-hash sidecar).
    pub name: Option<Vec<u8>>,
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            out.push(match s[i + 1] {
                b'n' => b'\n',
                b'r' => b'\r',
                c => c,
            });
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn digest(hex_text: &[u8]) -> Option<[u8; 32]> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut d).ok()?;
    Some(d)
}

/// Parses GNU (`HASH  name`, `HASH *name`, `\HASH  escaped`), BSD (`SHA256 (name) = HASH`) and bare-hash lines.
/// Lines that are none of these (comments, other algorithms) are skipped.
pub fn parse_sums(text: &[u8]) -> Vec<SumEntry> {
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"SHA256 (") {
            if let Some(pos) = rest.windows(4).rposition(|w| w == b") = ")
                && let Some(d) = digest(rest[pos + 4..].trim_ascii())
            {
                out.push(SumEntry {
                    digest: d,
                    name: Some(rest[..pos].to_vec()),
                });
            }
            continue;
        }
        let (escaped, line) = match line.strip_prefix(b"\\") {
            Some(l) => (true, l),
            None => (false, line),
        };
        if line.len() < 64 {
            continue;
        }
        let Some(d) = digest(&line[..64]) else {
            continue;
        };
        let rest = &line[64..];
        if rest.trim_ascii().is_empty() {
            out.push(SumEntry {
                digest: d,
                name: None,
            });
            continue;
        }
        let name = if let Some(n) = rest
            .strip_prefix(b"  ")
            .or_else(|| rest.strip_prefix(b" *"))
        {
            n
        } else if let Some(n) = rest.strip_prefix(b" ") {
            n
        } else {
            continue;
        };
        let name = if escaped {
            unescape(name)
        } else {
            name.to_vec()
        };
        out.push(SumEntry {
            digest: d,
            name: Some(name),
        });
    }
    out
}

/// Reads a checksum list, bounded and without following a symlink.
pub fn read_list(path: &Path) -> io::Result<Vec<u8>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_LIST).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Looks up the digest a list in `dir` gives for the file `name`: `name.sha256` first, then `SHA256SUMS`.
pub fn sidecar_digest(dir: &Path, name: &str) -> Option<([u8; 32], String)> {
    let side = format!("{name}.sha256");
    if let Ok(text) = read_list(&dir.join(&side)) {
        let entries = parse_sums(&text);
        let hit = entries.iter().find(|e| match &e.name {
            None => true,
            Some(n) => n == name.as_bytes() || n.ends_with(format!("/{name}").as_bytes()),
        });
        if let Some(e) = hit {
            return Some((e.digest, side));
        }
    }
    for list in ["SHA256SUMS", "sha256sums", "SHA256SUMS.txt"] {
        if let Ok(text) = read_list(&dir.join(list)) {
            let hit = parse_sums(&text)
                .into_iter()
                .find(|e| e.name.as_deref() == Some(name.as_bytes()));
            if let Some(e) = hit {
                return Some((e.digest, list.to_string()));
            }
        }
    }
    None
}

fn parse_manifest_line(line: &[u8]) -> Option<([u8; 32], Vec<u8>)> {
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(l) => (true, l),
        None => (false, line),
    };
    let d = digest(line.get(..64)?)?;
    let name = line.get(66..)?;
    Some((
        d,
        if escaped {
            unescape(name)
        } else {
            name.to_vec()
        },
    ))
}

/// Verifies every checksum list found in the restored tree against the restore manifest.
///
/// `lists` are paths relative to `root`. Returns `None` when there is no list at all.
pub fn verify_tree_sums(
    root: &Path,
    lists: &[std::path::PathBuf],
    manifest: &Path,
) -> Option<CheckResult> {
    if lists.is_empty() {
        return None;
    }
    // normalized path -> (expected digest, list it came from)
    let mut want: HashMap<Vec<u8>, ([u8; 32], String)> = HashMap::new();
    let mut problems: Vec<String> = Vec::new();
    for list in lists {
        let shown = list.display().to_string();
        let text = match read_list(&root.join(list)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{shown}: cannot be read ({e})"));
                continue;
            }
        };
        let base = list.parent().map(Path::to_path_buf).unwrap_or_default();
        let file_name = list
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in parse_sums(&text) {
            let name = match e.name {
                Some(n) => n,
                // A bare `foo.sha256` covers `foo`.
                None => match file_name.strip_suffix(".sha256") {
                    Some(stem) => stem.as_bytes().to_vec(),
                    None => continue,
                },
            };
            let mut joined = std::os::unix::ffi::OsStrExt::as_bytes(base.as_os_str()).to_vec();
            if !joined.is_empty() {
                joined.push(b'/');
            }
            joined.extend_from_slice(&name);
            match RelPath::parse(&joined) {
                Ok(p) => {
                    want.insert(p.normalized(), (e.digest, shown.clone()));
                }
                Err(_) => problems.push(format!(
                    "{shown} lists {:?}, which points outside the backup",
                    String::from_utf8_lossy(&name)
                )),
            }
        }
    }
    let listed = want.len();
    let mut matched = 0usize;
    if let Ok(f) = File::open(manifest) {
        for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
            let Some((d, path)) = parse_manifest_line(&line) else {
                continue;
            };
            if let Some((expected, list)) = want.remove(&path) {
                if expected == d {
                    matched += 1;
                } else {
                    problems.push(format!(
                        "{} differs from {list}: expected {}, restored {}",
                        String::from_utf8_lossy(&path),
                        hex::encode(expected),
                        hex::encode(d)
                    ));
                }
            }
        }
    }
    let mut missing: Vec<_> = want.into_iter().collect();
    missing.sort();
    for (path, (_, list)) in missing {
        problems.push(format!(
            "{} is listed in {list} but not in the backup",
            String::from_utf8_lossy(&path)
        ));
    }
    let names = lists
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let expected = format!("{listed} files match {names}");
    let mut r = if problems.is_empty() {
        CheckResult::new(
            "sha256sums",
            "integrity",
            CheckStatus::Passed,
            expected,
            format!("{matched} match"),
            "",
        )
    } else {
        let shown: Vec<_> = problems.iter().take(NAMED).cloned().collect();
        let more = problems.len().saturating_sub(NAMED);
        CheckResult::new(
            "sha256sums",
            "integrity",
            CheckStatus::Failed,
            expected,
            format!("{matched} match, {} problem(s)", problems.len()),
            format!(
                "{}{}; the backup's content does not match its own checksum list: restore from another copy and find out what changed it",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ),
        )
    };
    r.evidence = lists.iter().map(|l| root.join(l)).collect();
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn formats() {
        let text =
            format!("{H}  a.txt\n{H} *b.bin\n\\{H}  c\\nd\nSHA256 (e f) = {H}\n# comment\n{H}\n");
        let e = parse_sums(text.as_bytes());
        let names: Vec<_> = e.iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                Some(b"a.txt".to_vec()),
                Some(b"b.bin".to_vec()),
                Some(b"c\nd".to_vec()),
                Some(b"e f".to_vec()),
                None
            ]
        );
        assert!(parse_sums(b"zz  nothex").is_empty());
    }
}
