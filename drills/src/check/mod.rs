//! Checks run after a restore, each producing [`crate::model::CheckResult`]s with expected and actual values.
//!
//! Integrity checks (archive structure, archive checksum, `SHA256SUMS` lists) are always on and come from the
//! source and [`integrity`]; `files` and `command` checks are configured per drill; `boot`, `screenshot`, `tcp`,
//! `http` and `guest-agent` checks run against a booted scratch VM (`target = "vm"`, see [`vm`]).

pub mod command;
pub mod files;
pub mod image;
pub mod integrity;
pub mod vm;

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
    /// A serial console line within a time limit (`target = "vm"`).
    Boot(vm::BootConfig),
    /// A VM screenshot kept as evidence, not blank (`target = "vm"`).
    Screenshot(vm::ScreenshotConfig),
    /// A guest TCP port accepts connections (`target = "vm"`).
    Tcp(vm::TcpConfig),
    /// A guest HTTP endpoint answers as expected (`target = "vm"`).
    Http(vm::HttpConfig),
    /// The QEMU guest agent answers and runs a command (`target = "vm"`).
    GuestAgent(vm::AgentConfig),
}

impl CheckConfig {
    /// Whether the check needs a booted VM (`target = "vm"`).
    pub fn needs_vm(&self) -> bool {
        matches!(
            self,
            CheckConfig::Boot(_)
                | CheckConfig::Screenshot(_)
                | CheckConfig::Tcp(_)
                | CheckConfig::Http(_)
                | CheckConfig::GuestAgent(_)
        )
    }
}

/// Options for the always-on integrity checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    /// Fail (instead of reporting `unverifiable`) when the backup carries no checksum at all.
    #[serde(default)]
    pub require_checksums: bool,
}
