//! Secrets (SMTP passwords, webhook URLs with their tokens, routing keys) come only from a file or an
//! environment variable, never from the configuration text, and must never reach a log line, a `Debug` dump or
//! an error message. [`Secret`] holds one and prints as `<redacted>`; [`redact`] scrubs a message that may have
//! picked one up from a library's error text (reqwest errors, for example, quote the URL they failed on).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ConfigProblem;

/// A secret value. `Debug` and `Display` never show it; [`Secret::expose`] is the only way in.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests and the loaders below).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret comes from, as the config names it (`password_file` / `password_env`).
pub(crate) struct SecretRef<'a> {
    /// The key prefix: `password` for `password_file` / `password_env`.
    pub key: &'static str,
    pub file: Option<&'a PathBuf>,
    pub env: Option<&'a String>,
}

impl SecretRef<'_> {
    /// The config key that was used, for error messages (`password_file`).
    pub fn source_key(&self) -> String {
        match (self.file, self.env) {
            (Some(_), _) => format!("{}_file", self.key),
            (None, Some(_)) => format!("{}_env", self.key),
            (None, None) => format!("{}_file", self.key),
        }
    }

    /// Loads the secret if one is configured. A file's trailing line break is dropped (editors add one);
    /// an empty value is an error because it can only be a mistake.
    pub fn load(&self) -> Result<Option<Secret>, ConfigProblem> {
        let value = match (self.file, self.env) {
            (Some(_), Some(_)) => {
                return Err(ConfigProblem::Invalid(format!(
                    "set either {k}_file or {k}_env, not both",
                    k = self.key
                )));
            }
            (None, None) => return Ok(None),
            (Some(path), None) => read_file(self.key, path)?,
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(ConfigProblem::SecretEnvMissing {
                        key: format!("{}_env", self.key),
                        var: var.clone(),
                    });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigProblem::Invalid(format!(
                        "environment variable {var} (from {}_env) is not valid UTF-8",
                        self.key
                    )));
                }
            },
        };
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.trim().is_empty() {
            return Err(ConfigProblem::Invalid(format!(
                "{} is empty: put the secret in it",
                self.source_key()
            )));
        }
        Ok(Some(Secret(trimmed.to_string())))
    }

    /// Like [`SecretRef::load`] but the secret is required.
    pub fn require(&self) -> Result<Secret, ConfigProblem> {
        self.load()?.ok_or_else(|| {
            ConfigProblem::Invalid(format!(
                "{k}_file or {k}_env is required (secrets are never written in the config itself)",
                k = self.key
            ))
        })
    }
}

fn read_file(key: &str, path: &Path) -> Result<String, ConfigProblem> {
    std::fs::read_to_string(path).map_err(|e| ConfigProblem::SecretFile {
        key: format!("{key}_file"),
        path: path.to_path_buf(),
        source: e,
    })
}

/// Replaces every occurrence of each secret in `text` with `<redacted>`. Secrets shorter than 4 characters
/// are not searched for (they would shred ordinary words, and nobody uses such a secret on purpose).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let t = redact(
            "error for url (https://hooks.example/T1/B2/tok-abc) tok-abc",
            &["https://hooks.example/T1/B2/tok-abc", "tok-abc", "x"],
        );
        assert_eq!(t, "error for url (<redacted>) <redacted>");
    }

    #[test]
    fn file_secret_drops_trailing_newline_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret pass\r\n").unwrap();
        let r = SecretRef {
            key: "password",
            file: Some(&p),
            env: None,
        };
        assert_eq!(r.load().unwrap().unwrap().expose(), "s3cret pass");
        std::fs::write(&p, "\n").unwrap();
        let e = r.load().unwrap_err().to_string();
        assert!(e.contains("password_file is empty"), "{e}");
        let missing = dir.path().join("nope");
        let r = SecretRef {
            key: "password",
            file: Some(&missing),
            env: None,
        };
        let e = r.load().unwrap_err().to_string();
        assert!(e.contains("password_file") && e.contains("nope"), "{e}");
    }

    #[test]
    fn env_secret_missing_names_the_variable() {
        let var = "LIFEBOAT_NOTIFY_TEST_SURELY_UNSET".to_string();
        let r = SecretRef {
            key: "token",
            file: None,
            env: Some(&var),
        };
        let e = r.load().unwrap_err().to_string();
        assert!(
            e.contains("LIFEBOAT_NOTIFY_TEST_SURELY_UNSET") && e.contains("token_env"),
            "{e}"
        );
    }
}
