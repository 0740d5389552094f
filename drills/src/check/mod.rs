//! Checks run after a restore, each producing [`crate::model::CheckResult`]s with expected and actual values.
//!
//! Integrity checks (archive structure, archive checksum, `SHA256SUMS` lists) are always on and come from the
//! source and [`integrity`]; `files` and `command` checks are configured per drill.

pub mod command;
pub mod files;
pub mod image;
pub mod integrity;

use serde::Deserialize;

/// A configured check, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CheckConfig {
    /// Tightens the always-on integrity checks.
    Integrity(IntegrityConfig),
    /// Required paths, counts, sizes, patterns and tolerance against the previous passing run.
    Files(files::FilesConfig),
    /// A user command run in the restored folder.
    Command(command::CommandConfig),
}

/// Options for the always-on integrity checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    /// Fail (instead of reporting `unverifiable`) when the backup carries no checksum at all.
    #[serde(default)]
    pub require_checksums: bool,
}
