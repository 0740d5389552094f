//! Turning an entry name from a backup into a safe relative path.
//!
//! Rules: `.` and empty components are dropped, `..` anywhere and a leading `/` are refused (the run becomes
//! `failed` and the entry is named), components longer than 255 bytes and names with NUL are refused. The
//! result only ever has normal components, so `root.join(result)` stays under `root` as long as no component
//! on disk is a symlink, which [`super::RestoreSink`] checks separately.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::RestoreError;

/// A validated relative path: only normal components, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    components: Vec<Vec<u8>>,
    display: String,
}

impl RelPath {
    /// Validates raw entry-name bytes.
    pub fn parse(raw: &[u8]) -> Result<RelPath, RestoreError> {
        let display = String::from_utf8_lossy(raw).into_owned();
        let unsafe_entry = |reason: &str| RestoreError::Unsafe {
            entry: display.clone(),
            reason: reason.to_string(),
        };
        if raw.contains(&0) {
            return Err(unsafe_entry("name contains a NUL byte"));
        }
        if raw.first() == Some(&b'/') {
            return Err(unsafe_entry(
                "absolute path (would be written outside the restore folder)",
            ));
        }
        if raw.len() > 4096 {
            return Err(unsafe_entry("path longer than 4096 bytes"));
        }
        let mut components = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    return Err(unsafe_entry(
                        "path contains `..` (would escape the restore folder)",
                    ));
                }
                c if c.len() > 255 => {
                    return Err(unsafe_entry("a path component is longer than 255 bytes"));
                }
                c => components.push(c.to_vec()),
            }
        }
        if components.is_empty() {
            return Err(unsafe_entry("empty path"));
        }
        Ok(RelPath {
            components,
            display,
        })
    }

    /// Builds from an already-relative path (folder walks).
    pub fn from_path(p: &std::path::Path) -> Result<RelPath, RestoreError> {
        RelPath::parse(p.as_os_str().as_bytes())
    }

    /// `prefix/self`: both are already validated, so the result is too.
    pub fn under(&self, prefix: &RelPath) -> RelPath {
        let mut components = prefix.components.clone();
        components.extend(self.components.iter().cloned());
        RelPath {
            components,
            display: format!("{}/{}", prefix.display, self.display),
        }
    }

    /// The name as the backup spelled it, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.components.len()
    }

    /// Never true: a `RelPath` has at least one component.
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// The path of the first `n` components.
    pub fn prefix(&self, n: usize) -> PathBuf {
        self.components[..n.min(self.components.len())]
            .iter()
            .map(|c| OsStr::from_bytes(c))
            .collect()
    }

    /// The whole relative path.
    pub fn to_path(&self) -> PathBuf {
        self.prefix(self.components.len())
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        self.components.last().map_or(&[], Vec::as_slice)
    }

    /// The normalized path as bytes (`a/b/c`), as written into manifests.
    pub fn normalized(&self) -> Vec<u8> {
        self.components.join(&b'/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        let p = RelPath::parse(b"./etc//app.conf").unwrap();
        assert_eq!(p.normalized(), b"etc/app.conf");
        assert_eq!(p.len(), 2);
        assert_eq!(p.prefix(1), PathBuf::from("etc"));
    }

    #[test]
    fn under_prefix() {
        let p = RelPath::parse(b"etc/hostname")
            .unwrap()
            .under(&RelPath::parse(b"root").unwrap());
        assert_eq!(p.normalized(), b"root/etc/hostname");
        assert_eq!(p.display(), "root/etc/hostname");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"/etc/passwd",
            b"",
            b"./",
            b"a/\0b",
        ] {
            let err = RelPath::parse(bad).unwrap_err();
            assert!(matches!(err, RestoreError::Unsafe { .. }), "{bad:?}");
        }
        let long = vec![b'a'; 256];
        assert!(RelPath::parse(&long).is_err());
    }
}
