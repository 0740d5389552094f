//! Disk-image inspection: is there a readable partition table, and what file systems do its partitions hold?
//!
//! A VM disk whose chunks all verify can still be useless (a zeroed boot sector, a table pointing past the end
//! of the disk). Booting it is the strongest proof (the `vm` target); reading the partition table and the
//! file-system signatures is the cheap one, done on every image restore and kept as evidence. Only a few
//! sectors per partition are read (positioned reads), so sparse multi-terabyte images are inspected in
//! milliseconds. Layouts: MBR (boot signature 0x55AA at 510, four 16-byte entries at 446), GPT (UEFI spec
//! §5.3: "EFI PART" header at LBA 1 with a CRC-32 over the header), and well-known superblock magics.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;

use crate::model::{CheckResult, CheckStatus};
use crate::units::HumanBytes;

const SECTOR: u64 = 512;

/// One partition found in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// 1-based index in the table.
    pub index: usize,
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// MBR type byte (`0x83`) or GPT type GUID.
    pub kind: String,
    /// Recognized file system, if any.
    pub fs: Option<String>,
}

/// What an image holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// Image size in bytes.
    pub size: u64,
    /// `mbr`, `gpt` or `none`.
    pub table: String,
    /// Partitions (empty without a table).
    pub partitions: Vec<Partition>,
    /// A file system on the whole disk (no table), if any.
    pub whole_disk_fs: Option<String>,
    /// Problems found (entries past the end of the disk, a bad GPT CRC).
    pub problems: Vec<String>,
}

fn read_at(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf.truncate(got);
    buf
}

fn le16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}
fn at(b: &[u8], o: usize, magic: &[u8]) -> bool {
    b.get(o..o + magic.len()) == Some(magic)
}

/// Recognizes a file system (or volume format) from the bytes at the start of a partition.
pub fn detect_fs(f: &File, start: u64) -> Option<String> {
    let head = read_at(f, start, 70 * 1024);
    let name = if at(&head, 0, b"LUKS\xba\xbe") {
        "LUKS"
    } else if at(&head, 0, b"XFSB") {
        "xfs"
    } else if at(&head, 0, b"hsqs") {
        "squashfs"
    } else if at(&head, 3, b"NTFS    ") {
        "ntfs"
    } else if at(&head, 3, b"EXFAT   ") {
        "exfat"
    } else if le16(&head, 1080) == Some(0xEF53) {
        // ext2/3/4 superblock at 1024, s_magic at +56 (linux/fs/ext4/ext4.h).
        "ext2/3/4"
    } else if at(&head, 0x10040, b"_BHRfS_M") {
        "btrfs"
    } else if at(&head, 536, b"LVM2 001") {
        "LVM2 PV"
    } else if at(&head, 4086, b"SWAPSPACE2") {
        "swap"
    } else if at(&head, 82, b"FAT32   ") && at(&head, 510, b"\x55\xaa") {
        "vfat (FAT32)"
    } else if (at(&head, 54, b"FAT16   ") || at(&head, 54, b"FAT12   "))
        && at(&head, 510, b"\x55\xaa")
    {
        "vfat (FAT12/16)"
    } else if at(&head, 0, b"\x00\x00\x00\x00") && at(&head, 32769, b"CD001") {
        "iso9660"
    } else {
        return None;
    };
    Some(name.to_string())
}

fn guid(b: &[u8]) -> String {
    // Mixed-endian GUID text form (UEFI spec appendix A).
    if b.len() < 16 {
        return String::new();
    }
    format!(
        "{:08X}-{:04X}-{:04X}-{}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        hex::encode_upper(&b[8..10]),
        hex::encode_upper(&b[10..16])
    )
}

fn gpt(f: &File, size: u64, r: &mut ImageReport) -> bool {
    let hdr = read_at(f, SECTOR, SECTOR as usize);
    if !at(&hdr, 0, b"EFI PART") {
        return false;
    }
    r.table = "gpt".into();
    let hsize = le32(&hdr, 12).unwrap_or(92).clamp(92, 512) as usize;
    if let (Some(stored), Some(body)) = (le32(&hdr, 16), hdr.get(..hsize)) {
        let mut copy = body.to_vec();
        copy[16..20].fill(0);
        if crc32fast::hash(&copy) != stored {
            r.problems.push("the GPT header CRC does not match".into());
        }
    }
    let lba = le64(&hdr, 72).unwrap_or(2);
    let count = le32(&hdr, 80).unwrap_or(0).min(1024) as usize;
    let esize = le32(&hdr, 84).unwrap_or(128).clamp(128, 4096) as usize;
    let table = read_at(f, lba.saturating_mul(SECTOR), count * esize);
    for i in 0..count {
        let Some(e) = table.get(i * esize..(i + 1) * esize) else {
            break;
        };
        if e[..16].iter().all(|b| *b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32).unwrap_or(0), le64(e, 40).unwrap_or(0));
        let start = first.saturating_mul(SECTOR);
        let len = last
            .saturating_sub(first)
            .saturating_add(1)
            .saturating_mul(SECTOR);
        if last < first || start.saturating_add(len) > size {
            r.problems.push(format!(
                "GPT partition {} ends past the end of the disk",
                i + 1
            ));
        }
        r.partitions.push(Partition {
            index: i + 1,
            start,
            size: len,
            kind: guid(e),
            fs: detect_fs(f, start),
        });
    }
    true
}

/// Inspects the image at `path`.
pub fn inspect(path: &Path) -> std::io::Result<ImageReport> {
    let f = File::open(path)?;
    let size = f.metadata()?.len();
    let mut r = ImageReport {
        size,
        table: "none".into(),
        partitions: vec![],
        whole_disk_fs: None,
        problems: vec![],
    };
    let mbr = read_at(&f, 0, SECTOR as usize);
    let boot_sig = at(&mbr, 510, b"\x55\xaa");
    let protective = boot_sig && (0..4).any(|i| mbr.get(446 + i * 16 + 4) == Some(&0xEE));
    if (protective || !boot_sig) && gpt(&f, size, &mut r) {
        return Ok(r);
    }
    // A FAT/NTFS boot sector also ends in 0x55AA: a file system on the whole disk wins over a fake table.
    if let Some(fs) = detect_fs(&f, 0) {
        r.whole_disk_fs = Some(fs);
        return Ok(r);
    }
    if boot_sig {
        r.table = "mbr".into();
        for i in 0..4 {
            let Some(e) = mbr.get(446 + i * 16..446 + (i + 1) * 16) else {
                break;
            };
            let kind = e[4];
            if kind == 0 {
                continue;
            }
            let start = u64::from(le32(e, 8).unwrap_or(0)) * SECTOR;
            let len = u64::from(le32(e, 12).unwrap_or(0)) * SECTOR;
            if start.saturating_add(len) > size {
                r.problems.push(format!(
                    "MBR partition {} ends past the end of the disk",
                    i + 1
                ));
            }
            let fs = if matches!(kind, 0x05 | 0x0f | 0x85) {
                None
            } else {
                detect_fs(&f, start)
            };
            r.partitions.push(Partition {
                index: i + 1,
                start,
                size: len,
                kind: format!("0x{kind:02x}"),
                fs,
            });
        }
    }
    Ok(r)
}

/// What a restored `drive-*.img` of a VM snapshot is. Proxmox backs up a UEFI VM's variable store
/// (`efidisk0`) and its TPM state (`tpmstate0`) next to its disks; neither holds a partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveKind {
    /// A disk: partition table or file system expected.
    Disk,
    /// `drive-efidisk*.img`: an OVMF variable store (a UEFI firmware volume).
    EfiVars,
    /// `drive-tpmstate*.img`: swtpm's state, opaque.
    TpmState,
}

impl DriveKind {
    /// By archive name (`drive-efidisk0.img`, `drive-efidisk0.img.fidx`, ...).
    pub fn of(archive: &str) -> DriveKind {
        if archive.starts_with("drive-efidisk") {
            DriveKind::EfiVars
        } else if archive.starts_with("drive-tpmstate") {
            DriveKind::TpmState
        } else {
            DriveKind::Disk
        }
    }
}

/// Offset of the `_FVH` signature in an EFI firmware volume header (UEFI PI spec, vol. 3, §3.2.1
/// EFI_FIRMWARE_VOLUME_HEADER: 16-byte zero vector, 16-byte file system GUID, 8-byte length, then the
/// signature).
pub const FV_SIGNATURE_OFFSET: u64 = 40;

/// Whether the file at `path` starts with a UEFI firmware volume header (an OVMF variable store).
pub fn is_firmware_volume(path: &Path) -> bool {
    File::open(path)
        .map(|f| at(&read_at(&f, 0, 64), FV_SIGNATURE_OFFSET as usize, b"_FVH"))
        .unwrap_or(false)
}

/// The check for a restored drive image, by what it is: a disk needs a partition table or file system
/// ([`disk_check`]); an EFI disk needs a firmware volume header; TPM state gets no content check (its chunks
/// were verified; `None`).
pub fn image_check(name: &str, path: &Path, expected_size: Option<u64>) -> Option<CheckResult> {
    match DriveKind::of(name.rsplit(' ').next().unwrap_or(name)) {
        DriveKind::Disk => Some(disk_check(name, path, expected_size)),
        DriveKind::TpmState => None,
        DriveKind::EfiVars => {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let (status, actual, detail) = if is_firmware_volume(path) {
                (
                    CheckStatus::Passed,
                    format!(
                        "{}, UEFI firmware volume (OVMF variable store)",
                        HumanBytes(size)
                    ),
                    String::new(),
                )
            } else {
                (
                    CheckStatus::Failed,
                    format!("{}, no firmware volume header", HumanBytes(size)),
                    "the EFI disk holds no UEFI variable store (no _FVH signature at byte 40): the VM's boot \
                     entries are lost; it would start with default variables"
                        .to_string(),
                )
            };
            Some(CheckResult::new(
                name,
                "integrity",
                status,
                "a UEFI variable store (firmware volume header)",
                actual,
                detail,
            ))
        }
    }
}

/// Turns an inspection into a check result: a table or a whole-disk file system must be found, without
/// problems; the file systems found are the evidence.
pub fn disk_check(name: &str, path: &Path, expected_size: Option<u64>) -> CheckResult {
    let r = match inspect(path) {
        Ok(r) => r,
        Err(e) => {
            return CheckResult::new(
                name,
                "integrity",
                CheckStatus::Error,
                "a readable disk image",
                e.to_string(),
                "cannot read the restored image",
            );
        }
    };
    let mut problems = r.problems.clone();
    if let Some(want) = expected_size
        && want != r.size
    {
        problems.push(format!(
            "the image is {} bytes, the backup says {want}",
            r.size
        ));
    }
    let found = match (&r.whole_disk_fs, r.partitions.is_empty()) {
        (Some(fs), _) => format!(
            "{}, no partition table, {fs} on the whole disk",
            HumanBytes(r.size)
        ),
        (None, false) => format!(
            "{}, {} table: {}",
            HumanBytes(r.size),
            r.table.to_uppercase(),
            r.partitions
                .iter()
                .map(|p| format!(
                    "#{} {} {}",
                    p.index,
                    HumanBytes(p.size),
                    p.fs.as_deref().unwrap_or("unknown fs")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, true) => {
            problems.push("no partition table and no file system found: the boot sector may be zeroed or overwritten".into());
            format!("{}, nothing recognizable", HumanBytes(r.size))
        }
    };
    let status = if problems.is_empty() {
        CheckStatus::Passed
    } else {
        CheckStatus::Failed
    };
    CheckResult::new(
        name,
        "integrity",
        status,
        "a readable partition table (MBR/GPT) or file system",
        found,
        problems.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_at(f: &File, off: u64, data: &[u8]) {
        f.write_all_at(data, off).unwrap();
    }

    #[test]
    fn mbr_with_ext4_and_fat() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("disk.img");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        let mut mbr = vec![0u8; 512];
        // Partition 1: FAT32 at 1 MiB, 8 MiB; partition 2: Linux at 9 MiB, 32 MiB.
        for (i, (kind, start, len)) in [(0x0cu8, 2048u32, 16384u32), (0x83, 18432, 65536)]
            .iter()
            .enumerate()
        {
            let e = 446 + i * 16;
            mbr[e + 4] = *kind;
            mbr[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            mbr[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        write_at(&f, 0, &mbr);
        write_at(&f, (2048 * 512) + 82, b"FAT32   ");
        write_at(&f, (2048 * 512) + 510, &[0x55, 0xaa]);
        write_at(&f, (18432 * 512) + 1080, &0xEF53u16.to_le_bytes());
        let r = inspect(&p).unwrap();
        assert_eq!(r.table, "mbr");
        let fs: Vec<_> = r.partitions.iter().map(|p| p.fs.clone()).collect();
        assert_eq!(
            fs,
            vec![Some("vfat (FAT32)".into()), Some("ext2/3/4".into())]
        );
        assert_eq!(
            disk_check("image", &p, Some(64 << 20)).status,
            CheckStatus::Passed
        );
        assert_eq!(disk_check("image", &p, Some(1)).status, CheckStatus::Failed);
        // Zero the boot sector: nothing recognizable any more.
        write_at(&f, 0, &[0u8; 512]);
        let c = disk_check("image", &p, None);
        assert_eq!(c.status, CheckStatus::Failed);
        assert!(c.message.contains("boot sector"), "{c:?}");
    }

    #[test]
    fn efi_disks_need_a_firmware_volume_and_tpm_state_gets_no_content_check() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("drive-efidisk0.img");
        let f = File::create(&p).unwrap();
        f.set_len(540_672).unwrap();
        // Zeroed: the variable store is gone.
        let c = image_check("image drive-efidisk0.img", &p, None).unwrap();
        assert_eq!(c.status, CheckStatus::Failed, "{c:?}");
        assert!(c.message.contains("_FVH"), "{c:?}");
        write_at(&f, FV_SIGNATURE_OFFSET, b"_FVH");
        let c = image_check("image drive-efidisk0.img", &p, None).unwrap();
        assert_eq!(c.status, CheckStatus::Passed, "{c:?}");
        assert!(c.actual.contains("UEFI firmware volume"), "{c:?}");
        // The same bytes as a disk would fail: the kind comes from the archive name.
        assert_eq!(
            image_check("image drive-scsi0.img", &p, None).map(|c| c.status),
            Some(CheckStatus::Failed)
        );
        assert!(image_check("image drive-tpmstate0-backup.img", &p, None).is_none());
    }

    #[test]
    fn gpt_with_crc_and_whole_disk_fs() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("gpt.img");
        let f = File::create(&p).unwrap();
        f.set_len(16 << 20).unwrap();
        let mut mbr = vec![0u8; 512];
        mbr[446 + 4] = 0xEE;
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        write_at(&f, 0, &mbr);
        let mut entry = vec![0u8; 128];
        entry[..16].copy_from_slice(&[0xaf; 16]);
        entry[32..40].copy_from_slice(&2048u64.to_le_bytes());
        entry[40..48].copy_from_slice(&30000u64.to_le_bytes());
        write_at(&f, 2 * 512, &entry);
        let mut hdr = vec![0u8; 92];
        hdr[..8].copy_from_slice(b"EFI PART");
        hdr[12..16].copy_from_slice(&92u32.to_le_bytes());
        hdr[72..80].copy_from_slice(&2u64.to_le_bytes());
        hdr[80..84].copy_from_slice(&128u32.to_le_bytes());
        hdr[84..88].copy_from_slice(&128u32.to_le_bytes());
        let crc = crc32fast::hash(&hdr);
        hdr[16..20].copy_from_slice(&crc.to_le_bytes());
        write_at(&f, 512, &hdr);
        write_at(&f, 2048 * 512, b"XFSB");
        let r = inspect(&p).unwrap();
        assert_eq!(r.table, "gpt");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.partitions[0].fs.as_deref(), Some("xfs"));
        write_at(&f, 512 + 20, b"x");
        assert!(
            inspect(&p)
                .unwrap()
                .problems
                .iter()
                .any(|p| p.contains("CRC"))
        );

        let whole = tmp.path().join("whole.img");
        let g = File::create(&whole).unwrap();
        g.set_len(1 << 20).unwrap();
        write_at(&g, 1080, &0xEF53u16.to_le_bytes());
        assert_eq!(
            inspect(&whole).unwrap().whole_disk_fs.as_deref(),
            Some("ext2/3/4")
        );
    }
}
