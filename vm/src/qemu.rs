//! Finding QEMU and its firmware.
//!
//! lifeboat does not ship QEMU. It uses, in this order: the binary a drill configures, `LIFEBOAT_QEMU`,
//! `qemu-system-x86_64` on `PATH`, and finally `/opt/lifeboat-qemu/usr/bin/qemu-system-x86_64`, where
//! `scripts/test` unpacks Debian's qemu-system-x86 (on Debian 12 installing it with apt would remove a newer
//! qemu-utils; see ../shared/reference/test-peers.md). A QEMU unpacked away from `/usr` looks for its firmware
//! (SeaBIOS `bios-256k.bin`, VGA BIOS, `kvmvapic.bin`) relative to its own location and fails with "could not
//! load PC BIOS"; the firmware folders then come from the drill's `firmware_dirs`, from
//! `LIFEBOAT_QEMU_FIRMWARE` (colon-separated), or, when neither is set, from the system folders where Debian's
//! `seabios` and `qemu-system-data` packages put them. Each becomes one `-L` option.

use std::env;
use std::path::{Path, PathBuf};

use crate::error::{Result, VmError};

/// Environment variable naming the QEMU binary.
pub const ENV_QEMU: &str = "LIFEBOAT_QEMU";
/// Environment variable naming firmware folders, colon-separated.
pub const ENV_FIRMWARE: &str = "LIFEBOAT_QEMU_FIRMWARE";
/// Where `scripts/test` unpacks qemu-system-x86.
pub const UNPACKED_QEMU: &str = "/opt/lifeboat-qemu/usr/bin/qemu-system-x86_64";
/// The binary looked up on `PATH`.
pub const QEMU_NAME: &str = "qemu-system-x86_64";
/// System folders holding SeaBIOS, QEMU's own ROMs and the iPXE ROMs on Debian.
const SYSTEM_FIRMWARE: [&str; 3] = [
    "/usr/share/seabios",
    "/usr/share/qemu",
    "/usr/lib/ipxe/qemu",
];

/// A QEMU binary to run, with the firmware folders it needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Qemu {
    /// The `qemu-system-x86_64` binary.
    pub path: PathBuf,
    /// Extra firmware folders, each passed as `-L`.
    pub firmware_dirs: Vec<PathBuf>,
    /// How it was found (`configured`, `LIFEBOAT_QEMU`, `PATH`, `/opt/lifeboat-qemu`), for evidence.
    pub found_by: &'static str,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

impl Qemu {
    /// Finds QEMU: `configured`, else `LIFEBOAT_QEMU`, else `PATH`, else the unpacked copy of `scripts/test`.
    /// A configured or `LIFEBOAT_QEMU` path that is not an executable file is an error (no silent fallback to
    /// another QEMU). `firmware_dirs`: see [`Qemu::firmware_for`].
    pub fn find(configured: Option<&Path>, firmware_dirs: &[PathBuf]) -> Result<Qemu> {
        let (path, found_by) = if let Some(p) = configured {
            if !executable(p) {
                return Err(VmError::QemuNotFound {
                    tried: format!("the configured {} (not an executable file)", p.display()),
                });
            }
            (p.to_path_buf(), "configured")
        } else if let Some(p) = env::var_os(ENV_QEMU).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            if !executable(&p) {
                return Err(VmError::QemuNotFound {
                    tried: format!("{ENV_QEMU}={} (not an executable file)", p.display()),
                });
            }
            (p, ENV_QEMU)
        } else if let Some(p) = on_path(QEMU_NAME) {
            (p, "PATH")
        } else if executable(Path::new(UNPACKED_QEMU)) {
            (PathBuf::from(UNPACKED_QEMU), "/opt/lifeboat-qemu")
        } else {
            return Err(VmError::QemuNotFound {
                tried: format!("{ENV_QEMU}, {QEMU_NAME} on PATH, {UNPACKED_QEMU}"),
            });
        };
        let firmware_dirs = Self::firmware_for(&path, firmware_dirs);
        Ok(Qemu {
            path,
            firmware_dirs,
            found_by,
        })
    }

    /// The `-L` folders for `binary`: `configured` when not empty, else `LIFEBOAT_QEMU_FIRMWARE`, else (only
    /// when the binary has no SeaBIOS beside it, i.e. it was unpacked away from `/usr`) the Debian system
    /// firmware folders that exist.
    pub fn firmware_for(binary: &Path, configured: &[PathBuf]) -> Vec<PathBuf> {
        if !configured.is_empty() {
            return configured.to_vec();
        }
        if let Some(v) = env::var_os(ENV_FIRMWARE).filter(|v| !v.is_empty()) {
            return env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        // QEMU relocates its compiled-in data paths relative to its binary: <prefix>/bin → <prefix>/share.
        let prefix = binary.parent().and_then(Path::parent);
        let beside = prefix.is_some_and(|p| {
            p.join("share/seabios/bios-256k.bin").exists()
                || p.join("share/qemu/bios-256k.bin").exists()
        });
        if beside {
            return Vec::new();
        }
        SYSTEM_FIRMWARE
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_path_must_be_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("qemu");
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        let err = Qemu::find(Some(&f), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("not an executable"), "{text}");
        assert!(text.contains("apt-get install qemu-system-x86"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let q = Qemu::find(Some(&f), &[PathBuf::from("/fw")]).unwrap();
        assert_eq!(q.path, f);
        assert_eq!(q.found_by, "configured");
        assert_eq!(q.firmware_dirs, vec![PathBuf::from("/fw")]);
    }

    #[test]
    fn firmware_beside_the_binary_needs_no_l_option() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("share/seabios")).unwrap();
        std::fs::write(tmp.path().join("share/seabios/bios-256k.bin"), b"x").unwrap();
        if env::var_os(ENV_FIRMWARE).is_none() {
            assert!(Qemu::firmware_for(&tmp.path().join("bin/qemu"), &[]).is_empty());
        }
    }
}
