//! Names and hardlinks: what keeps an archive's paths inside the restore folder and its links honest.
//!
//! A file name is one path component (§4.3, upstream pxar `util::validate_filename`): anything that could climb out of
//! the restore folder or into another one (`..`, `.`, `/`, NUL, empty) is refused as unsafe, before any entry
//! is yielded. A HARDLINK names its target twice, by path and by a byte offset back to the target's FILENAME
//! (§4.4); extraction uses the path, a random-access reader the offset, so both must agree and must name a
//! regular file seen earlier. [`FileIndex`] remembers, per regular file, only its position and a keyed hash of
//! its path (16 bytes), so the check costs no path storage.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::error::{PxarError, StreamKind, invalid};
use super::format::{Header, le_u64};

/// Checks a FILENAME item's content and returns the name without its NUL. `dir` is the parent's path, for
/// the message.
pub(crate) fn validate_filename<'a>(
    raw: &'a [u8],
    pos: u64,
    dir: &[u8],
) -> Result<&'a [u8], PxarError> {
    let Some(name) = raw.strip_suffix(&[0]) else {
        return Err(invalid(
            pos,
            "a NUL-terminated file name",
            "no terminating NUL",
        ));
    };
    let reason = if name.is_empty() {
        "empty file name"
    } else if name.contains(&0) {
        "file name contains a NUL byte"
    } else if name.contains(&b'/') {
        "file name contains `/` (would place the entry in another folder)"
    } else if name == b".." {
        "file name `..` (would escape the restore folder)"
    } else if name == b"." {
        "file name `.` (would replace its own folder)"
    } else {
        return Ok(name);
    };
    let mut shown = String::from_utf8_lossy(dir).into_owned();
    if !shown.is_empty() {
        shown.push('/');
    }
    shown.push_str(&String::from_utf8_lossy(name));
    Err(PxarError::Unsafe {
        stream: StreamKind::Archive,
        offset: pos,
        path: shown,
        reason: reason.to_string(),
    })
}

/// Why a hardlink target path is not a plain relative path (`None` if it is).
fn unsafe_link_target(target: &[u8]) -> Option<&'static str> {
    if target.is_empty() {
        return Some("is empty");
    }
    if target.contains(&0) {
        return Some("contains a NUL byte");
    }
    if target.first() == Some(&b'/') {
        return Some("is absolute (would link to a file outside the restore folder)");
    }
    target.split(|b| *b == b'/').find_map(|c| match c {
        b".." => Some("contains `..` (would escape the restore folder)"),
        b"" | b"." => Some("has an empty or `.` component"),
        _ => None,
    })
}

/// Position and path hash of every regular file read so far, in archive order.
pub(crate) struct FileIndex {
    files: Vec<(u64, u64)>,
    hasher: RandomState,
}

impl FileIndex {
    pub(crate) fn new() -> Self {
        FileIndex {
            files: Vec::new(),
            // keyed per decoder, so a crafted archive cannot aim for a path hash collision
            hasher: RandomState::new(),
        }
    }

    /// Records a regular file whose FILENAME header is at `pos` (positions only grow).
    pub(crate) fn register(&mut self, pos: u64, path: &[u8]) {
        self.files.push((pos, self.hasher.hash_one(path)));
    }

    /// Parses the content `c` of the HARDLINK item `h` of the entry whose FILENAME is at `fname_pos` and
    /// whose own path is `path`, and checks it. Returns the target path and the raw offset.
    pub(crate) fn verify_hardlink(
        &self,
        h: &Header,
        c: &[u8],
        fname_pos: u64,
        path: &[u8],
    ) -> Result<(Vec<u8>, u64), PxarError> {
        let link_offset = le_u64(c, 0);
        let Some(target) = c.get(8..).and_then(|t| t.strip_suffix(&[0])) else {
            return Err(invalid(
                h.pos,
                "a HARDLINK item holding an offset and a NUL-terminated target path",
                format!("{} content bytes without that shape", c.len()),
            ));
        };
        if let Some(reason) = unsafe_link_target(target) {
            return Err(PxarError::Unsafe {
                stream: StreamKind::Archive,
                offset: h.pos,
                path: format!(
                    "{} -> {}",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(target)
                ),
                reason: format!("hardlink target {reason}"),
            });
        }
        let target_pos = fname_pos
            .checked_sub(link_offset)
            .filter(|_| link_offset > 0);
        let found = target_pos.and_then(|p| {
            self.files
                .binary_search_by_key(&p, |(pos, _)| *pos)
                .ok()
                .and_then(|i| self.files.get(i))
        });
        match (target_pos, found) {
            (Some(_), Some((_, hash))) if *hash == self.hasher.hash_one(target) => {
                Ok((target.to_vec(), link_offset))
            }
            (Some(p), Some(_)) => Err(invalid(
                h.pos,
                format!("a hardlink target path naming the regular file at byte {p} it points to"),
                format!("target {:?}", String::from_utf8_lossy(target)),
            )),
            _ => Err(invalid(
                h.pos,
                "a hardlink offset pointing back at a regular file earlier in the archive",
                format!(
                    "offset {link_offset} (byte {}) for target {:?}",
                    target_pos.map_or_else(|| "before the archive".to_string(), |p| p.to_string()),
                    String::from_utf8_lossy(target)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        assert_eq!(validate_filename(b"ok.txt\0", 0, b"").unwrap(), b"ok.txt");
        assert_eq!(validate_filename(b"...\0", 0, b"").unwrap(), b"...");
        for bad in [&b"..\0"[..], b".\0", b"\0", b"a/b\0", b"a\0b\0"] {
            assert!(
                matches!(
                    validate_filename(bad, 7, b"d"),
                    Err(PxarError::Unsafe { offset: 7, .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_filename(b"no-nul", 0, b""),
            Err(PxarError::Invalid { .. })
        ));
    }

    #[test]
    fn link_targets() {
        assert_eq!(unsafe_link_target(b"docs/a.txt"), None);
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../x",
            b"a/../../x",
            b"a//b",
            b"./a",
            b"a\0",
        ] {
            assert!(unsafe_link_target(bad).is_some(), "{bad:?}");
        }
    }
}
