//! Reading a Proxmox VE `qemu-server.conf` (the `qemu-server.conf.blob` of a PBS VM snapshot) into what a
//! scratch VM needs: memory, CPUs, firmware, machine type, SCSI controller and the disks in boot order with
//! the PBS archive each was backed up to (`scsi0` → `drive-scsi0.img`).
//!
//! The file is `key: value` lines; `#` lines are the description (and vzdump's `#qmdump#map:` lines); a `[name]`
//! line starts a snapshot or pending section, which describes another state of the VM and is not read. Values
//! of disks are property strings (`local-lvm:vm-101-disk-0,size=32G,iothread=1`). Unknown keys are ignored,
//! and a file from a compromised host may be anything: parsing never fails or panics, it returns what it could
//! understand plus warnings. Format: qemu-server's `PVE/QemuServer.pm` (`parse_vm_config`, `parse_drive`,
//! `parse_boot_order`).

use crate::spec::{Bus, Machine, ScsiHw};

/// A disk line of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfDisk {
    /// The key (`scsi0`).
    pub key: String,
    /// Controller.
    pub bus: Bus,
    /// The PBS archive name of its image (`drive-scsi0.img`).
    pub archive: String,
    /// The volume (`local-lvm:vm-101-disk-0`).
    pub volume: String,
    /// `media=cdrom`: a CD-ROM, not backed up.
    pub cdrom: bool,
    /// `backup=0` excludes the disk from backups.
    pub backup: bool,
}

/// Firmware named by `bios:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfFirmware {
    /// `seabios` (the default).
    SeaBios,
    /// `ovmf`.
    Ovmf,
}

/// What a scratch VM takes from a `qemu-server.conf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmConfig {
    /// `name:`.
    pub name: Option<String>,
    /// `memory:` in MiB.
    pub memory_mib: Option<u32>,
    /// `cores:`.
    pub cores: Option<u32>,
    /// `sockets:`.
    pub sockets: Option<u32>,
    /// `bios:`.
    pub firmware: Option<ConfFirmware>,
    /// `machine:` (`pc…` or `q35…`).
    pub machine: Option<Machine>,
    /// `scsihw:`.
    pub scsihw: Option<ScsiHw>,
    /// `agent:` enabled.
    pub agent: bool,
    /// Hard disks (not CD-ROMs), boot devices first in boot order, then the others in key order.
    pub disks: Vec<ConfDisk>,
    /// The EFI variable disk's archive (`drive-efidisk0.img`), when there is one.
    pub efidisk: Option<String>,
    /// Lines that could not be understood (for evidence, never fatal).
    pub warnings: Vec<String>,
}

fn disk_key(key: &str) -> Option<(Bus, u32)> {
    let split = key.find(|c: char| c.is_ascii_digit())?;
    let (prefix, num) = key.split_at(split);
    let bus = Bus::parse(prefix)?;
    let n: u32 = num.parse().ok()?;
    let max = match bus {
        Bus::Ide => 3,
        Bus::Sata => 5,
        Bus::Scsi => 30,
        Bus::Virtio => 15,
    };
    (n <= max && num.len() <= 2 && !(num.len() > 1 && num.starts_with('0'))).then_some((bus, n))
}

/// Splits a property string `volume,k=v,k2=v2`: the first element may be a bare value (the volume).
fn props(value: &str) -> (Option<&str>, Vec<(&str, &str)>) {
    let mut first = None;
    let mut kv = Vec::new();
    for (i, part) in value.split(',').enumerate() {
        match part.split_once('=') {
            Some((k, v)) => {
                if i == 0 && k == "file" {
                    first = Some(v);
                } else {
                    kv.push((k.trim(), v.trim()));
                }
            }
            None if i == 0 => first = Some(part.trim()),
            None => {}
        }
    }
    (first, kv)
}

fn number(value: &str, key: &str) -> Option<u32> {
    // `memory: 2048` or (PVE 8.1+) `memory: current=2048`.
    let v = value
        .split(',')
        .find_map(|p| match p.split_once('=') {
            Some((k, v)) if k == key || k == "current" => Some(v),
            Some(_) => None,
            None => Some(p),
        })?
        .trim();
    v.parse().ok().filter(|n| *n > 0)
}

/// Parses the configuration. Never fails: what is not understood becomes a warning.
pub fn parse(text: &[u8]) -> VmConfig {
    let text = String::from_utf8_lossy(text);
    let mut c = VmConfig::default();
    let mut disks: Vec<(ConfDisk, u32)> = Vec::new();
    let mut boot_order: Vec<String> = Vec::new();
    let mut bootdisk: Option<String> = None;
    for (no, raw) in text.lines().enumerate().take(100_000) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            break; // snapshot / pending sections describe other states of the VM
        }
        let Some((key, value)) = line.split_once(':') else {
            c.warnings
                .push(format!("line {}: not `key: value`", no + 1));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "name" => c.name = Some(crate::check::clip(value, 64)),
            "memory" => match number(value, "current") {
                Some(m) => c.memory_mib = Some(m),
                None => c
                    .warnings
                    .push(format!("line {}: memory {value:?}", no + 1)),
            },
            "cores" => c.cores = number(value, "cores"),
            "sockets" => c.sockets = number(value, "sockets"),
            "bios" => {
                c.firmware = match value {
                    "seabios" => Some(ConfFirmware::SeaBios),
                    "ovmf" => Some(ConfFirmware::Ovmf),
                    _ => {
                        c.warnings.push(format!("line {}: bios {value:?}", no + 1));
                        None
                    }
                }
            }
            "machine" => {
                let (ty, _) = props(value);
                let ty = ty.unwrap_or_default();
                c.machine = if ty.contains("q35") {
                    Some(Machine::Q35)
                } else if ty.starts_with("pc") || ty.contains("i440fx") {
                    Some(Machine::Pc)
                } else {
                    None
                };
            }
            "scsihw" => {
                c.scsihw = ScsiHw::parse(value);
                if c.scsihw.is_none() {
                    c.warnings
                        .push(format!("line {}: scsihw {value:?}", no + 1));
                }
            }
            "agent" => {
                let (first, kv) = props(value);
                let on = |v: &str| matches!(v, "1" | "yes" | "on" | "true");
                c.agent = first.is_some_and(on) || kv.iter().any(|(k, v)| *k == "enabled" && on(v));
            }
            "boot" => {
                let (first, kv) = props(value);
                if let Some(order) = kv.iter().find(|(k, _)| *k == "order").map(|(_, v)| *v) {
                    boot_order = order
                        .split(';')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                } else if first.is_some_and(|f| f.chars().all(|ch| "acdn".contains(ch))) {
                    // legacy `boot: cdn` (device classes); `bootdisk:` names the disk
                } else {
                    c.warnings.push(format!("line {}: boot {value:?}", no + 1));
                }
            }
            "bootdisk" => bootdisk = Some(value.to_string()),
            "efidisk0" => c.efidisk = Some("drive-efidisk0.img".into()),
            _ => {
                let Some((bus, n)) = disk_key(key) else {
                    continue; // net0, ostype, smbios1, unused0, ... : not needed to boot
                };
                let (volume, kv) = props(value);
                let volume = volume.unwrap_or_default().to_string();
                let cdrom = kv.iter().any(|(k, v)| *k == "media" && *v == "cdrom")
                    || volume == "none"
                    || volume == "cdrom";
                let backup = !kv
                    .iter()
                    .any(|(k, v)| *k == "backup" && matches!(*v, "0" | "no" | "off" | "false"));
                disks.push((
                    ConfDisk {
                        key: key.to_string(),
                        bus,
                        archive: format!("drive-{key}.img"),
                        volume,
                        cdrom,
                        backup,
                    },
                    n,
                ));
            }
        }
    }
    if boot_order.is_empty()
        && let Some(b) = bootdisk
    {
        boot_order.push(b);
    }
    disks.retain(|(d, _)| !d.cdrom);
    let bus_rank = |b: Bus| match b {
        Bus::Ide => 0,
        Bus::Sata => 1,
        Bus::Scsi => 2,
        Bus::Virtio => 3,
    };
    disks.sort_by_key(|(d, n)| {
        let pos = boot_order
            .iter()
            .position(|k| *k == d.key)
            .unwrap_or(usize::MAX);
        (pos, bus_rank(d.bus), *n)
    });
    c.disks = disks.into_iter().map(|(d, _)| d).collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_config() {
        let conf = b"#Web server\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\nagent: 1,fstrim_cloned_disks=1\n\
bios: ovmf\nboot: order=virtio1;ide2;scsi0;net0\ncores: 4\nefidisk0: local-lvm:vm-101-disk-9,efitype=4m,size=4M\n\
ide2: local:iso/debian-12.iso,media=cdrom,size=600M\nmachine: pc-q35-8.1\nmemory: 4096\nname: web1\n\
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0\nscsi0: local-lvm:vm-101-disk-0,iothread=1,size=32G\n\
scsi1: local-lvm:vm-101-disk-2,backup=0,size=100G\nscsihw: virtio-scsi-single\nsockets: 2\n\
virtio1: local-lvm:vm-101-disk-1,size=8G\nsata0: local-lvm:vm-101-disk-3,size=1G\nfrobnicate: yes\n\
\n[before-upgrade]\nmemory: 1024\nscsi5: local-lvm:vm-101-disk-7\n";
        let c = parse(conf);
        assert_eq!(c.name.as_deref(), Some("web1"));
        assert_eq!(
            (c.memory_mib, c.cores, c.sockets),
            (Some(4096), Some(4), Some(2))
        );
        assert_eq!(c.firmware, Some(ConfFirmware::Ovmf));
        assert_eq!(c.machine, Some(Machine::Q35));
        assert_eq!(c.scsihw, Some(ScsiHw::VirtioScsiSingle));
        assert!(c.agent);
        assert_eq!(c.efidisk.as_deref(), Some("drive-efidisk0.img"));
        let keys: Vec<&str> = c.disks.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["virtio1", "scsi0", "sata0", "scsi1"]);
        assert_eq!(c.disks[1].archive, "drive-scsi0.img");
        assert_eq!(c.disks[1].bus, Bus::Scsi);
        assert_eq!(c.disks[1].volume, "local-lvm:vm-101-disk-0");
        assert!(!c.disks[3].backup);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn legacy_and_new_forms() {
        let c =
            parse(b"bootdisk: sata1\nsata0: a:b\nsata1: a:c\nmemory: current=2048\nboot: cdn\n");
        assert_eq!(c.memory_mib, Some(2048));
        assert_eq!(c.disks[0].key, "sata1");
        assert_eq!(c.disks[0].bus, Bus::Sata);
        let c = parse(b"scsi0: file=local:vm-1-disk-0,size=1G\nide0: local:x,size=1G\n");
        assert_eq!(
            c.disks[0].key, "ide0",
            "without a boot order IDE comes first"
        );
        assert_eq!(c.disks[1].volume, "local:vm-1-disk-0");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7u64;
        for len in [0usize, 1, 7, 100, 4000] {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pick = b"scsi0:ide9 memory=,;[]#\n\xff\x00123order";
                b.push(pick[(seed >> 33) as usize % pick.len()]);
            }
            let _ = parse(&b);
        }
        let c = parse(b"memory: lots\nscsi99: x\nscsi01: y\nvirtio: z\nno colon here\ncores: -1\n");
        assert!(c.disks.is_empty());
        assert_eq!(c.memory_mib, None);
        assert_eq!(c.cores, None);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }
}
