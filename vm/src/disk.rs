//! The disk images a scratch VM boots from: their format, the controller they hang off, and the check that a
//! qcow2 image from a backup cannot make QEMU open host files.

use std::path::{Path, PathBuf};

use crate::error::{Result, VmError};

/// Image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// A raw image (what PBS `.img.fidx` archives restore to).
    Raw,
    /// A qcow2 image.
    Qcow2,
}

impl DiskFormat {
    /// QEMU's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    /// Guesses from the first bytes of the file: the qcow2 magic `QFI\xfb`, else raw.
    pub fn detect(path: &Path) -> Result<DiskFormat> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .map_err(|e| VmError::io("cannot open disk image", path, e))?;
        let mut magic = [0u8; 4];
        let n = f
            .read(&mut magic)
            .map_err(|e| VmError::io("cannot read disk image", path, e))?;
        Ok(if n == 4 && &magic == b"QFI\xfb" {
            DiskFormat::Qcow2
        } else {
            DiskFormat::Raw
        })
    }
}

/// Refuses a qcow2 image that names a backing file or an external data file: QEMU would open that host path
/// and show its contents to the guest (an image from a compromised host could name `/etc/shadow` or another
/// VM's disk). A file that does not start with the qcow2 magic is refused too (never let QEMU guess a
/// format). Header layout: QEMU's docs/interop/qcow2.txt (backing_file_offset at byte 8, incompatible feature
/// bit 2 "external data file" at byte 72 in version 3).
pub fn check_qcow2(path: &Path) -> Result<()> {
    use std::io::Read;
    let unsafe_image = |reason: String| VmError::UnsafeImage {
        path: path.to_path_buf(),
        reason,
    };
    let mut h = [0u8; 80];
    let mut f =
        std::fs::File::open(path).map_err(|e| VmError::io("cannot open disk image", path, e))?;
    let mut n = 0;
    while n < h.len() {
        match f.read(&mut h[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(VmError::io("cannot read disk image", path, e)),
        }
    }
    if n < 72 || &h[..4] != b"QFI\xfb" {
        return Err(unsafe_image(
            "not a qcow2 image (no QFI\\xfb header)".into(),
        ));
    }
    let version = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let backing = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    if backing != 0 {
        return Err(unsafe_image(
            "the qcow2 header names a backing file; lifeboat refuses it because QEMU would read that host file"
                .into(),
        ));
    }
    if version >= 3 && n >= 80 {
        let incompatible =
            u64::from_be_bytes([h[72], h[73], h[74], h[75], h[76], h[77], h[78], h[79]]);
        if incompatible & 0b100 != 0 {
            return Err(unsafe_image(
                "the qcow2 image uses an external data file; lifeboat refuses it because QEMU would open that host file"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Which controller a disk hangs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// virtio-blk (`virtio0`).
    Virtio,
    /// A SCSI disk on the [`ScsiHw`] controller (`scsi0`).
    Scsi,
    /// The machine's IDE controller (`ide0`).
    Ide,
    /// An AHCI controller (`sata0`).
    Sata,
}

impl Bus {
    /// Proxmox's prefix (`scsi`, `virtio`, `ide`, `sata`).
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::Virtio => "virtio",
            Bus::Scsi => "scsi",
            Bus::Ide => "ide",
            Bus::Sata => "sata",
        }
    }

    /// Parses Proxmox's prefix.
    pub fn parse(s: &str) -> Option<Bus> {
        Some(match s {
            "virtio" => Bus::Virtio,
            "scsi" => Bus::Scsi,
            "ide" => Bus::Ide,
            "sata" => Bus::Sata,
            _ => return None,
        })
    }
}

/// The SCSI controller model (Proxmox `scsihw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScsiHw {
    /// `virtio-scsi-pci` (Proxmox's default for new VMs).
    #[default]
    VirtioScsi,
    /// `virtio-scsi-single`: one virtio-scsi controller per disk.
    VirtioScsiSingle,
    /// `lsi` (LSI 53C895A, Proxmox's historical default).
    Lsi,
    /// `lsi53c810`.
    Lsi53c810,
    /// `megasas`.
    Megasas,
    /// `pvscsi` (VMware paravirtual).
    Pvscsi,
}

impl ScsiHw {
    /// Parses Proxmox's `scsihw` value.
    pub fn parse(s: &str) -> Option<ScsiHw> {
        Some(match s {
            "virtio-scsi-pci" => ScsiHw::VirtioScsi,
            "virtio-scsi-single" => ScsiHw::VirtioScsiSingle,
            "lsi" => ScsiHw::Lsi,
            "lsi53c810" => ScsiHw::Lsi53c810,
            "megasas" => ScsiHw::Megasas,
            "pvscsi" => ScsiHw::Pvscsi,
            _ => return None,
        })
    }

    pub(crate) fn device(self) -> &'static str {
        match self {
            ScsiHw::VirtioScsi | ScsiHw::VirtioScsiSingle => "virtio-scsi-pci",
            ScsiHw::Lsi => "lsi53c895a",
            ScsiHw::Lsi53c810 => "lsi53c810",
            ScsiHw::Megasas => "megasas",
            ScsiHw::Pvscsi => "pvscsi",
        }
    }
}

/// One disk image to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Name in evidence (`scsi0`, or the image's file name).
    pub name: String,
    /// The restored image (never written).
    pub path: PathBuf,
    /// Its format.
    pub format: DiskFormat,
    /// Its controller.
    pub bus: Bus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_with_a_backing_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = vec![0u8; 104];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[7] = 3;
        let p = tmp.path().join("ok.qcow2");
        std::fs::write(&p, &h).unwrap();
        check_qcow2(&p).unwrap();
        h[15] = 104; // backing_file_offset
        std::fs::write(&p, &h).unwrap();
        let e = check_qcow2(&p).unwrap_err();
        assert!(
            e.is_backup_fault() && e.to_string().contains("backing file"),
            "{e}"
        );
        h[15] = 0;
        h[79] = 4; // external data file
        std::fs::write(&p, &h).unwrap();
        assert!(
            check_qcow2(&p)
                .unwrap_err()
                .to_string()
                .contains("external data file")
        );
        std::fs::write(&p, b"QFI").unwrap();
        assert!(
            check_qcow2(&p)
                .unwrap_err()
                .to_string()
                .contains("not a qcow2")
        );
    }

    #[test]
    fn format_detection() {
        let tmp = tempfile::tempdir().unwrap();
        let q = tmp.path().join("a.qcow2");
        std::fs::write(&q, b"QFI\xfb\0\0\0\x03").unwrap();
        assert_eq!(DiskFormat::detect(&q).unwrap(), DiskFormat::Qcow2);
        let r = tmp.path().join("a.img");
        std::fs::write(&r, b"\0\0").unwrap();
        assert_eq!(DiskFormat::detect(&r).unwrap(), DiskFormat::Raw);
        assert!(DiskFormat::detect(&tmp.path().join("missing")).is_err());
    }
}
