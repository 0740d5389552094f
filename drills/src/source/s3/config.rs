//! `[sources.NAME] type = "s3"`: the keys, their offline validation (for `check-config`) and where the
//! credentials come from, first found wins:
//! 1. `access_key_id_file` + `secret_access_key_file` (+ `session_token_file`);
//! 2. `profile` / `credentials_file`: a profile of the AWS shared credentials file, when configured;
//! 3. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 4. the profile `AWS_PROFILE` (else `default`) of `AWS_SHARED_CREDENTIALS_FILE` (else
//!    `~/.aws/credentials`), when that file exists — the order of the AWS SDKs' own chain.

use std::path::PathBuf;

use lifeboat_s3::Credentials;
use serde::Deserialize;

use super::profile::{self, ProfileKeys};

/// URL style, as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressingConfig {
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    Virtual,
}

fn yes() -> bool {
    true
}

/// `[sources.NAME] type = "s3"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL (`https://s3.us-west-004.backblazeb2.com`); omit for AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (`us-west-004`); default `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Key prefix below which the snapshots are (`"postgres/"`); default the whole bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Only snapshots whose name (below `prefix`) matches, e.g. `"db-*.dump"`.
    #[serde(default)]
    pub glob: Option<String>,
    /// `"path"` or `"virtual"`; default virtual-hosted for AWS, path-style for a custom endpoint.
    #[serde(default)]
    pub addressing: Option<AddressingConfig>,
    /// File holding the access key id; default `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key; default `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// File holding a session token (temporary credentials); default `AWS_SESSION_TOKEN`.
    #[serde(default)]
    pub session_token_file: Option<PathBuf>,
    /// Profile of the AWS shared credentials file to use (`backup-reader`).
    #[serde(default)]
    pub profile: Option<String>,
    /// The shared credentials file; default `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM file of extra CA certificates (a self-hosted server with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Verify ETags as MD5s (turn off for a store whose ETags are not MD5s of the content).
    #[serde(default = "yes")]
    pub verify_etag: bool,
    /// Retries after a transient failure (per request; a download resets the count when it progresses).
    #[serde(default)]
    pub retries: Option<u32>,
}

impl S3Config {
    /// Checks what can be checked without the network (for `check-config`): bucket name, endpoint URL,
    /// region, glob, and that credential and CA files are readable.
    pub fn validate(&self) -> Result<(), String> {
        lifeboat_s3::client::validate_bucket(&self.bucket)?;
        if let Some(e) = &self.endpoint {
            lifeboat_s3::client::validate_endpoint(e)?;
        }
        if self
            .region
            .as_deref()
            .is_some_and(|r| r.trim().is_empty() || r.contains('/'))
        {
            return Err("`region` must be a region name like \"us-east-1\"".to_string());
        }
        if let Some(g) = &self.glob {
            glob::Pattern::new(g).map_err(|e| format!("invalid glob {g:?}: {e}"))?;
        }
        match (&self.access_key_id_file, &self.secret_access_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    "set both access_key_id_file and secret_access_key_file (or neither, to use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                        .to_string(),
                );
            }
            (Some(_), Some(_)) if self.uses_profile() => {
                return Err(
                    "set either the key files (access_key_id_file, secret_access_key_file) or `profile` / `credentials_file`, not both"
                        .to_string(),
                );
            }
            _ => {}
        }
        if self.uses_profile() {
            self.profile_keys()?;
        }
        for (key, f) in [
            ("access_key_id_file", &self.access_key_id_file),
            ("secret_access_key_file", &self.secret_access_key_file),
            ("session_token_file", &self.session_token_file),
        ] {
            if let Some(p) = f {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("{key} {}: cannot be read: {e}", p.display()))?;
                if text.trim().is_empty() {
                    return Err(format!("{key} {} is empty", p.display()));
                }
            }
        }
        if let Some(p) = &self.ca_file {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("ca_file {}: cannot be read: {e}", p.display()))?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!("ca_file {} holds no PEM certificate", p.display()));
            }
        }
        Ok(())
    }

    pub(super) fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("")
    }

    /// Whether the configuration names a shared-credentials profile or file.
    fn uses_profile(&self) -> bool {
        self.profile.is_some() || self.credentials_file.is_some()
    }

    /// The configured (or default) profile of the configured (or default) shared credentials file.
    fn profile_keys(&self) -> Result<ProfileKeys, String> {
        let file = self
            .credentials_file
            .clone()
            .or_else(profile::default_file)
            .ok_or("no shared credentials file: set `credentials_file` (HOME is not set)")?;
        let name = self
            .profile
            .clone()
            .unwrap_or_else(profile::default_profile);
        profile::load(&file, &name)
    }

    pub(super) fn credentials(&self) -> Result<Credentials, String> {
        let read = |key: &str, p: &PathBuf| {
            std::fs::read_to_string(p)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("cannot read {key} {}: {e}", p.display()))
        };
        if let (Some(i), Some(s)) = (&self.access_key_id_file, &self.secret_access_key_file) {
            let token = match &self.session_token_file {
                Some(p) => read("session_token_file", p)?,
                None => String::new(),
            };
            return Ok(Credentials::new(
                read("access_key_id_file", i)?,
                read("secret_access_key_file", s)?,
            )
            .with_session_token(token));
        }
        let from_profile = |k: ProfileKeys| {
            Credentials::new(k.access_key_id, k.secret_access_key)
                .with_session_token(k.session_token.unwrap_or_default())
        };
        if self.uses_profile() {
            return self.profile_keys().map(from_profile);
        }
        let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
        if !id.is_empty() && !secret.is_empty() {
            let token = std::env::var("AWS_SESSION_TOKEN").unwrap_or_default();
            return Ok(Credentials::new(id, secret).with_session_token(token));
        }
        if profile::default_file().is_some_and(|f| f.is_file()) {
            return self.profile_keys().map(from_profile);
        }
        Err(format!(
            "no S3 credentials: set access_key_id_file and secret_access_key_file in the source, or `profile` \
             (a profile of {}), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            profile::default_file().map_or_else(
                || "~/.aws/credentials".to_string(),
                |f| f.display().to_string()
            )
        ))
    }
}
