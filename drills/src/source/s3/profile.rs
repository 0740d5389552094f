//! Profiles of the AWS shared credentials file (`~/.aws/credentials`), which aws-cli, rclone, restic and the
//! AWS SDKs already read: an administrator who set up a read-only key for one of them can point lifeboat at
//! the same profile instead of copying the secret into another file.
//!
//! Format (AWS SDKs and Tools reference guide, "Shared config and credentials files"): INI sections named by
//! the profile (`[backup-reader]`; `[profile backup-reader]` as in `~/.aws/config` is accepted too), with
//! `aws_access_key_id`, `aws_secret_access_key` and optionally `aws_session_token`; `#` and `;` start
//! comments. Values are never put in messages.

use std::path::{Path, PathBuf};

/// The keys of one profile.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for ProfileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The shared credentials file lifeboat reads when none is configured: `AWS_SHARED_CREDENTIALS_FILE`, else
/// `$HOME/.aws/credentials`.
pub fn default_file() -> Option<PathBuf> {
    match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".aws/credentials")),
    }
}

/// The profile lifeboat uses when none is configured: `AWS_PROFILE`, else `default`.
pub fn default_profile() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// Reads `profile` from the credentials file `file`.
///
/// # Errors
/// The file cannot be read, has no such profile, or the profile lacks a key; the message names the file,
/// the profile and what to add.
pub fn load(file: &Path, profile: &str) -> Result<ProfileKeys, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read the shared credentials file {}: {e}",
            file.display()
        )
    })?;
    let found = parse(&text, profile).ok_or_else(|| {
        format!(
            "the shared credentials file {} has no profile [{profile}]",
            file.display()
        )
    })?;
    let missing = |key: &str| format!("profile [{profile}] in {} has no {key}", file.display());
    Ok(ProfileKeys {
        access_key_id: found
            .access_key_id
            .ok_or_else(|| missing("aws_access_key_id"))?,
        secret_access_key: found
            .secret_access_key
            .ok_or_else(|| missing("aws_secret_access_key"))?,
        session_token: found.session_token,
    })
}

#[derive(Default)]
struct Found {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

/// The keys of `profile` in `text`, or `None` when there is no such section. A profile that appears twice
/// is merged, later values winning (as the AWS CLI does).
fn parse(text: &str, profile: &str) -> Option<Found> {
    let mut found: Option<Found> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").map_or(name, str::trim_start);
            inside = name == profile;
            if inside {
                found.get_or_insert_with(Found::default);
            }
            continue;
        }
        let (Some(f), Some((key, value))) =
            (found.as_mut().filter(|_| inside), line.split_once('='))
        else {
            continue;
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => f.access_key_id = value,
            "aws_secret_access_key" => f.secret_access_key = value,
            "aws_session_token" => f.session_token = value,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# lifeboat's key, read-only
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[profile backup-reader]
aws_access_key_id=AKIAREADER
; a comment
aws_secret_access_key = reader/secret+with=equals
aws_session_token = token==

[broken]
aws_access_key_id = AKIABROKEN
";

    #[test]
    fn profiles_are_found_by_name_with_or_without_the_profile_prefix() {
        let d = parse(FILE, "default").unwrap();
        assert_eq!(d.access_key_id.as_deref(), Some("AKIADEFAULT"));
        assert_eq!(d.session_token, None);
        let r = parse(FILE, "backup-reader").unwrap();
        assert_eq!(r.access_key_id.as_deref(), Some("AKIAREADER"));
        assert_eq!(
            r.secret_access_key.as_deref(),
            Some("reader/secret+with=equals")
        );
        assert_eq!(r.session_token.as_deref(), Some("token=="));
        assert!(parse(FILE, "nope").is_none());
        assert!(parse("aws_access_key_id = x\n", "default").is_none());
    }

    #[test]
    fn load_names_the_file_and_profile_and_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials");
        std::fs::write(&f, FILE).unwrap();
        let k = load(&f, "backup-reader").unwrap();
        assert_eq!(k.secret_access_key, "reader/secret+with=equals");
        assert!(!format!("{k:?}").contains("reader/secret"));
        let e = load(&f, "broken").unwrap_err();
        assert!(
            e.contains("[broken]") && e.contains("aws_secret_access_key"),
            "{e}"
        );
        let e = load(&f, "nope").unwrap_err();
        assert!(
            e.contains("no profile [nope]") && e.contains("credentials"),
            "{e}"
        );
        let e = load(&dir.path().join("missing"), "default").unwrap_err();
        assert!(e.contains("cannot read the shared credentials file"), "{e}");
    }
}
