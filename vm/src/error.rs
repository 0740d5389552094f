//! Errors of the VM machinery.
//!
//! Every [`VmError`] means lifeboat could not run the VM part of a drill (QEMU missing, not startable, its
//! control socket silent): the run is an `error` and proves nothing about the backup. What the guest does
//! wrong (it does not boot, a probe fails) is never an error here: it is a failed check result (see
//! [`crate::check`]). Keeping the two apart is what lets the person paged at 3 a.m. tell "your backup does not
//! boot" from "the drill could not run".

use std::io;
use std::path::PathBuf;

/// How to get QEMU, said wherever it is missing.
pub const INSTALL_HINT: &str = "install QEMU (Debian/Ubuntu: `apt-get install qemu-system-x86`; in a lifeboat \
     checkout `bash scripts/test` installs it under /opt/lifeboat-qemu without touching qemu-img) or point \
     lifeboat at it with `qemu = \"/path/to/qemu-system-x86_64\"` in the drill's [vm] table or LIFEBOAT_QEMU";

/// Why the VM machinery could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// No QEMU binary was found.
    #[error("QEMU not found (looked for {tried}): {INSTALL_HINT}")]
    QemuNotFound {
        /// Where it looked, for the person reading the error.
        tried: String,
    },
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// QEMU could not be executed at all.
    #[error("cannot execute QEMU {}: {source}; {INSTALL_HINT}", path.display())]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The scratch file system has (or, while QEMU started, got) less free space than the VM's reserve.
    #[error(
        "the scratch file system at {} has {free} free, less than the VM's reserve of {reserve} (the guest's writes go to an overlay there); free space under the scratch root or lower `min_free` in the drill's vm table",
        dir.display()
    )]
    ScratchFull {
        /// The run folder.
        dir: PathBuf,
        /// Free space, as text.
        free: String,
        /// The reserve, as text.
        reserve: String,
    },
    /// QEMU exited while starting (bad option, missing firmware, port in use...).
    #[error("QEMU exited while starting ({status}): {stderr}")]
    StartFailed {
        /// Exit status as text.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// KVM was demanded but does not work on this host.
    #[error(
        "accel = \"kvm\" was configured but KVM does not work here ({reason}); use accel = \"auto\" (falls back to TCG) or \"tcg\""
    )]
    KvmUnavailable {
        /// What the probe saw.
        reason: String,
    },
    /// The QMP control socket misbehaved.
    #[error("QMP {what}: {detail}")]
    Qmp {
        /// Which exchange.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The VM description cannot be turned into a QEMU command line.
    #[error("invalid VM description: {0}")]
    Spec(String),
    /// A restored image is unsafe to hand to QEMU (a qcow2 naming a backing or external data file would make
    /// QEMU read host files into the guest). The backup is at fault: the run is `failed`.
    #[error("unsafe disk image {}: {reason}", path.display())]
    UnsafeImage {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run could not record the QEMU process group in its lease, so a crash could leave QEMU behind.
    #[error("could not record QEMU's process group {pgid} in the run's lease: {source}")]
    Register {
        /// The process group.
        pgid: i32,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl VmError {
    /// Whether the backup, not lifeboat's environment, is at fault.
    pub fn is_backup_fault(&self) -> bool {
        matches!(self, VmError::UnsafeImage { .. })
    }

    /// Builds an [`VmError::Io`].
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        VmError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`VmError::Qmp`].
    pub fn qmp(what: impl Into<String>, detail: impl Into<String>) -> Self {
        VmError::Qmp {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = VmError> = std::result::Result<T, E>;
