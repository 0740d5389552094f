//! `target = "vm"`: boot what a snapshot restored and check the running machine.
//!
//! The disks come from the restore folder: a PBS VM snapshot restores its `drive-*.img` archives and
//! `qemu-server.conf`, which says the boot order, the bus of each disk, memory, CPUs, firmware and SCSI
//! controller (the drill's `[drills.NAME.vm]` table overrides them); any other snapshot contributes its
//! `.img`/`.raw`/`.qcow2` files, attached in name order on `bus` (SATA by default: every OS has an AHCI
//! driver, not every OS has virtio). QEMU's process group is recorded in the run's lease before the guest runs,
//! so a sweep after a crash of lifeboat kills it; teardown always stops it.
//!
//! Outcomes keep blame where it belongs: QEMU missing or refusing to start is an `error` (the drill proves
//! nothing); a restored machine that does not boot, shows a blank screen or fails a probe is `failed`; an unsafe
//! image (a qcow2 naming a host file) is `failed`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use lifeboat_vm::check::{agent, boot, net, screenshot};
use lifeboat_vm::conf::{self, ConfFirmware, VmConfig};
use lifeboat_vm::{Accel, Bus, Disk, DiskFormat, Firmware, Machine, Network, Qemu, Vm, VmSpec};
use serde::Deserialize;

use crate::check::CheckConfig;
use crate::check::vm::to_result;
use crate::extract::CancelFlag;
use crate::model::{CheckResult, CheckStatus, Outcome};
use crate::scratch::Lease;
use crate::units::{Dur, Size};

/// Default hard limit on a scratch VM's life.
const HARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);
/// OVMF as Debian's `ovmf` package installs it (Proxmox's default `efitype=4m`).
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// `accel`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelName {
    /// KVM when a probe shows it works, else TCG.
    #[default]
    Auto,
    /// KVM or an error.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// `firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirmwareName {
    /// SeaBIOS.
    Bios,
    /// OVMF.
    Uefi,
}

/// `machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineName {
    /// i440FX.
    Pc,
    /// Q35.
    Q35,
}

/// `network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkName {
    /// No network card (the default).
    #[default]
    None,
    /// Restricted user-mode network, probe ports forwarded to localhost.
    User,
    /// A host bridge (explicit only).
    Bridge,
}

/// `bus` for images without a `qemu-server.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusName {
    /// virtio-blk.
    Virtio,
    /// virtio-scsi.
    Scsi,
    /// IDE.
    Ide,
    /// AHCI.
    Sata,
}

/// `[drills.NAME.vm]`: how to boot the restored machine. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmTargetConfig {
    /// `qemu-system-x86_64` to use (else `LIFEBOAT_QEMU`, `PATH`, `/opt/lifeboat-qemu`).
    #[serde(default)]
    pub qemu: Option<PathBuf>,
    /// Firmware folders passed as `-L` (else `LIFEBOAT_QEMU_FIRMWARE`, else automatic).
    #[serde(default)]
    pub firmware_dirs: Vec<PathBuf>,
    /// `auto` (default), `kvm`, `tcg`.
    #[serde(default)]
    pub accel: AccelName,
    /// Memory, e.g. `"2GiB"` (else the snapshot's `qemu-server.conf`, else 1 GiB).
    #[serde(default)]
    pub memory: Option<Size>,
    /// Cores per socket (else the configuration's, else 1).
    #[serde(default)]
    pub cores: Option<u32>,
    /// Sockets (else the configuration's, else 1).
    #[serde(default)]
    pub sockets: Option<u32>,
    /// `bios` or `uefi` (else the configuration's `bios:`, else `bios`).
    #[serde(default)]
    pub firmware: Option<FirmwareName>,
    /// OVMF code image for `uefi` (default `/usr/share/OVMF/OVMF_CODE_4M.fd`).
    #[serde(default)]
    pub ovmf_code: Option<PathBuf>,
    /// OVMF variable template for `uefi` when the snapshot has no EFI disk (default `OVMF_VARS_4M.fd`).
    #[serde(default)]
    pub ovmf_vars: Option<PathBuf>,
    /// `pc` or `q35` (else the configuration's `machine:`, else `pc`).
    #[serde(default)]
    pub machine: Option<MachineName>,
    /// `none` (default), `user`, `bridge`.
    #[serde(default)]
    pub network: NetworkName,
    /// Guest TCP ports forwarded to localhost with `network = "user"` (ports of `tcp`/`http` checks are added).
    #[serde(default)]
    pub forwards: Vec<u16>,
    /// The host bridge for `network = "bridge"`.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Bus of image files without a `qemu-server.conf` (default `sata`).
    #[serde(default)]
    pub bus: Option<BusName>,
    /// Hard limit on the VM's life (default 15m): QEMU is killed then, whatever runs.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Least free space kept on the scratch file system, where the guest's writes go (default 1GiB): QEMU
    /// is killed (an `error`) when the guest's writes eat into it.
    #[serde(default)]
    pub min_free: Option<Size>,
    /// Add the guest agent channel (default: when a `guest-agent` check exists or the configuration says
    /// `agent: 1`).
    #[serde(default)]
    pub guest_agent: Option<bool>,
}

/// Checks a drill's target and checks together; the message is for a configuration error.
pub fn validate(vm: Option<&VmTargetConfig>, checks: &[CheckConfig]) -> Result<(), String> {
    let Some(vm) = vm else {
        return match checks.iter().find(|c| c.needs_vm()) {
            Some(_) => Err(
                "boot, screenshot, tcp, http and guest-agent checks need a booted VM: set target = \"vm\""
                    .into(),
            ),
            None => Ok(()),
        };
    };
    if checks
        .iter()
        .filter(|c| matches!(c, CheckConfig::Boot(_)))
        .count()
        > 1
    {
        return Err("only one boot check per drill".into());
    }
    let probes = checks
        .iter()
        .any(|c| matches!(c, CheckConfig::Tcp(_) | CheckConfig::Http(_)));
    match vm.network {
        NetworkName::None if probes => Err(
            "tcp and http checks reach the guest through forwarded ports: set network = \"user\" in the drill's vm table"
                .into(),
        ),
        NetworkName::None | NetworkName::Bridge if !vm.forwards.is_empty() => {
            Err("forwards apply to network = \"user\" only".into())
        }
        NetworkName::Bridge if vm.bridge.as_deref().is_none_or(str::is_empty) => {
            Err("network = \"bridge\" needs bridge = \"NAME\" (an existing host bridge)".into())
        }
        NetworkName::Bridge if probes => Err(
            "tcp and http checks need network = \"user\" (with a bridge the guest has no forwarded ports)".into(),
        ),
        _ if vm.bridge.is_some() && vm.network != NetworkName::Bridge => {
            Err("bridge applies to network = \"bridge\" only".into())
        }
        _ if vm.forwards.contains(&0) => Err("forwards: 0 is not a port".into()),
        _ if vm.cores == Some(0) || vm.sockets == Some(0) => {
            Err("cores and sockets start at 1".into())
        }
        _ if vm.memory.is_some_and(|m| m.0 < 16 << 20) => Err("memory below 16MiB".into()),
        _ => Ok(()),
    }
}

/// Where a run's VM lives and who to tell about its processes.
pub struct VmContext<'a> {
    /// Drill name.
    pub drill: &'a str,
    /// The restore folder.
    pub restore_root: &'a Path,
    /// A private folder for sockets and the snapshot overlay.
    pub run_dir: &'a Path,
    /// Evidence folder.
    pub evidence_dir: &'a Path,
    /// The run's lease (process groups).
    pub lease: &'a Lease,
    /// Agent shutdown.
    pub cancel: &'a CancelFlag,
}

/// A run's VM after the boot phase.
pub struct RunningVm {
    vm: Vm,
    booted: bool,
    screenshot_done: bool,
}

/// Why the boot phase ended the run: outcome and message.
pub type Stop = (Outcome, String);

fn lease_hook(lease: &Lease) -> impl FnMut(i32, bool) -> std::io::Result<()> + '_ {
    move |pgid, started| {
        if started {
            lease.add_process_group(pgid)
        } else {
            lease.remove_process_group(pgid)
        }
    }
}

fn read_conf(path: &Path) -> Option<VmConfig> {
    let f = fs::File::open(path).ok()?;
    let mut b = Vec::new();
    f.take(1 << 20).read_to_end(&mut b).ok()?;
    Some(conf::parse(&b))
}

fn to_bus(b: BusName) -> Bus {
    match b {
        BusName::Virtio => Bus::Virtio,
        BusName::Scsi => Bus::Scsi,
        BusName::Ide => Bus::Ide,
        BusName::Sata => Bus::Sata,
    }
}

/// The disks to boot: from `qemu-server.conf` when the snapshot has one, else every image file.
fn find_disks(
    cfg: &VmTargetConfig,
    root: &Path,
    conf: Option<&VmConfig>,
) -> Result<(Vec<Disk>, String), Stop> {
    if let Some(conf) = conf {
        let mut disks = Vec::new();
        let mut missing = Vec::new();
        for d in conf.disks.iter().filter(|d| d.backup) {
            let path = root.join(&d.archive);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                disks.push(Disk {
                    name: d.key.clone(),
                    path,
                    format: DiskFormat::Raw,
                    bus: d.bus,
                });
            } else {
                missing.push(d.archive.clone());
            }
        }
        if disks.is_empty() {
            return Err((
                Outcome::Failed,
                format!(
                    "qemu-server.conf names no disk whose image the snapshot restored (missing: {}); if the drill \
                     restricts `archives`, include the boot disk",
                    if missing.is_empty() {
                        "none named".into()
                    } else {
                        missing.join(", ")
                    }
                ),
            ));
        }
        let mut note = format!(
            "{} from qemu-server.conf",
            disks
                .iter()
                .map(|d| format!("{} ({})", d.name, d.bus.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !missing.is_empty() {
            note.push_str(&format!("; not restored: {}", missing.join(", ")));
        }
        return Ok((disks, note));
    }
    let bus = to_bus(cfg.bus.unwrap_or(BusName::Sata));
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(root)
        .map_err(|e| {
            (
                Outcome::Error,
                format!("cannot read {}: {e}", root.display()),
            )
        })?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .filter(|(n, _)| {
            let l = n.to_ascii_lowercase();
            l.ends_with(".img") || l.ends_with(".raw") || l.ends_with(".qcow2")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err((
            Outcome::Error,
            "target = \"vm\" needs a snapshot with disk images (a PBS VM snapshot, or .img/.raw/.qcow2 files); \
             this one restored none"
                .into(),
        ));
    }
    let disks: Vec<Disk> = files
        .into_iter()
        .map(|(name, path)| Disk {
            format: if name.to_ascii_lowercase().ends_with(".qcow2") {
                DiskFormat::Qcow2
            } else {
                DiskFormat::Raw
            },
            name,
            path,
            bus,
        })
        .collect();
    let note = format!(
        "{} on {}",
        disks
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        bus.as_str()
    );
    Ok((disks, note))
}

/// The firmware, and how it is described in the boot check (which variable store a UEFI guest starts with
/// matters: its own EFI disk keeps its boot entries, a fresh store falls back to `\EFI\BOOT\BOOTX64.EFI`).
fn firmware(
    cfg: &VmTargetConfig,
    conf: Option<&VmConfig>,
    root: &Path,
) -> Result<(Firmware, String), Stop> {
    let uefi = match cfg.firmware {
        Some(f) => f == FirmwareName::Uefi,
        None => conf.and_then(|c| c.firmware) == Some(ConfFirmware::Ovmf),
    };
    if !uefi {
        return Ok((Firmware::Bios, "SeaBIOS".into()));
    }
    let code = cfg.ovmf_code.clone().unwrap_or_else(|| OVMF_CODE.into());
    if !code.is_file() {
        return Err((
            Outcome::Error,
            format!(
                "UEFI firmware {} not found: install OVMF (`apt-get install ovmf`) or set ovmf_code in the drill's vm table",
                code.display()
            ),
        ));
    }
    let template = cfg.ovmf_vars.clone().unwrap_or_else(|| OVMF_VARS.into());
    let template_len = fs::metadata(&template).map(|m| m.len()).ok();
    // The VM's own variables (boot entries) when its EFI disk was backed up, holds a variable store and is
    // at least the firmware's store size (on LVM/Ceph it is rounded up: its first bytes are the store).
    let efidisk = conf.and_then(|c| c.efidisk.as_ref());
    let own = efidisk.map(|n| root.join(n)).filter(|p| {
        template_len.is_some_and(|want| fs::metadata(p).is_ok_and(|m| m.len() >= want))
            && crate::check::image::is_firmware_volume(p)
    });
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let described = match (&own, efidisk, template_len) {
        (Some(p), _, _) => format!("OVMF with the VM's EFI disk {}", name(p)),
        (None, Some(d), Some(_)) => format!(
            "OVMF with a fresh variable store {} ({d} not restored, too small or not a variable store)",
            name(&template)
        ),
        (None, None, Some(_)) => format!("OVMF with a fresh variable store {}", name(&template)),
        (None, _, None) => format!("OVMF ({} alone, no variable store)", name(&code)),
    };
    let vars_size = own.as_ref().and(template_len);
    let vars = own.or_else(|| template_len.map(|_| template));
    Ok((
        Firmware::Uefi {
            code,
            vars,
            vars_size,
        },
        described,
    ))
}

fn spec(
    cfg: &VmTargetConfig,
    checks: &[CheckConfig],
    ctx: &VmContext<'_>,
) -> Result<(VmSpec, String), Stop> {
    let qemu = Qemu::find(cfg.qemu.as_deref(), &cfg.firmware_dirs)
        .map_err(|e| (Outcome::Error, e.to_string()))?;
    let conf = read_conf(&ctx.restore_root.join("qemu-server.conf"));
    let (disks, note) = find_disks(cfg, ctx.restore_root, conf.as_ref())?;
    let mut s = VmSpec::new(ctx.drill, qemu, ctx.run_dir, ctx.evidence_dir);
    s.disks = disks;
    s.accel = match cfg.accel {
        AccelName::Auto => Accel::Auto,
        AccelName::Kvm => Accel::Kvm,
        AccelName::Tcg => Accel::Tcg,
    };
    let c = conf.as_ref();
    s.memory_mib = cfg
        .memory
        .map(|m| u32::try_from(m.0 >> 20).unwrap_or(u32::MAX))
        .or_else(|| c.and_then(|c| c.memory_mib))
        .unwrap_or(1024);
    s.cores = cfg.cores.or_else(|| c.and_then(|c| c.cores)).unwrap_or(1);
    s.sockets = cfg
        .sockets
        .or_else(|| c.and_then(|c| c.sockets))
        .unwrap_or(1);
    s.machine = match cfg.machine {
        Some(MachineName::Pc) => Machine::Pc,
        Some(MachineName::Q35) => Machine::Q35,
        None => c.and_then(|c| c.machine).unwrap_or_default(),
    };
    s.scsihw = c.and_then(|c| c.scsihw).unwrap_or_default();
    let (fw, firmware_note) = firmware(cfg, c, ctx.restore_root)?;
    s.firmware = fw;
    s.network = match cfg.network {
        NetworkName::None => Network::None,
        NetworkName::Bridge => Network::Bridge {
            bridge: cfg.bridge.clone().unwrap_or_default(),
        },
        NetworkName::User => {
            let mut f = cfg.forwards.clone();
            for ch in checks {
                match ch {
                    CheckConfig::Tcp(t) => f.push(t.port),
                    CheckConfig::Http(h) => f.push(h.port),
                    _ => {}
                }
            }
            f.sort_unstable();
            f.dedup();
            Network::User { forwards: f }
        }
    };
    s.guest_agent = cfg.guest_agent.unwrap_or_else(|| {
        c.is_some_and(|c| c.agent)
            || checks
                .iter()
                .any(|ch| matches!(ch, CheckConfig::GuestAgent(_)))
    });
    s.hard_timeout = cfg.timeout.map_or(HARD_TIMEOUT, |d| d.0);
    if let Some(m) = cfg.min_free {
        s.min_free = m.0;
    }
    let note = format!(
        "{note}; {} MiB, {} CPU(s), {firmware_note}",
        s.memory_mib,
        s.cores * s.sockets,
    );
    Ok((s, note))
}

/// Starts the VM and runs the `boot` check (with a screenshot as evidence when it fails). Results go to
/// `results`; `Err` ends the run with that outcome.
pub fn boot(
    cfg: &VmTargetConfig,
    checks: &[CheckConfig],
    ctx: &VmContext<'_>,
    results: &mut Vec<CheckResult>,
) -> Result<RunningVm, Stop> {
    let boot_cfg = checks.iter().find_map(|c| match c {
        CheckConfig::Boot(b) => Some(b),
        _ => None,
    });
    let fail_start =
        |results: &mut Vec<CheckResult>, status: CheckStatus, actual: &str, why: &str| {
            results.push(CheckResult::new(
                boot_cfg
                    .and_then(|b| b.name.clone())
                    .unwrap_or_else(|| "boot".into()),
                "boot",
                status,
                "the restored machine starts in QEMU",
                actual,
                why,
            ));
        };
    let (spec, note) = match spec(cfg, checks, ctx) {
        Ok(s) => s,
        Err((outcome, why)) => {
            let status = if outcome == Outcome::Failed {
                CheckStatus::Failed
            } else {
                CheckStatus::Error
            };
            fail_start(results, status, "not started", &why);
            return Err((outcome, why));
        }
    };
    let mut hook = lease_hook(ctx.lease);
    let mut vm = match Vm::start(&spec, &mut hook) {
        Ok(vm) => vm,
        Err(e) => {
            let why = e.to_string();
            if e.is_backup_fault() {
                fail_start(results, CheckStatus::Failed, "not started", &why);
                return Err((Outcome::Failed, why));
            }
            fail_start(results, CheckStatus::Error, "QEMU did not start", &why);
            return Err((
                Outcome::Error,
                format!("the scratch VM could not be started: {why}"),
            ));
        }
    };
    tracing::info!(drill = ctx.drill, pgid = vm.pgid(), accel = %vm.accel().reason, disks = %note, "scratch VM booting");
    let mut booted = true;
    let mut screenshot_done = false;
    if let Some(b) = boot_cfg {
        let mut check = b.check();
        check.cancel = Some(ctx.cancel.clone());
        let r = boot::run(&mut vm, &check);
        booted = r.status == lifeboat_vm::check::VmCheckStatus::Passed;
        let mut result = to_result(r);
        if booted {
            result.actual = format!("{}; {note}", result.actual);
        } else {
            result.expected = format!("{} ({note})", result.expected);
        }
        if !booted && vm.is_running() {
            // What the screen shows is the best evidence of why: keep it with the boot check.
            let configured = checks.iter().find_map(|c| match c {
                CheckConfig::Screenshot(s) => Some(s.check()),
                _ => None,
            });
            match configured {
                Some(sc) => {
                    let shot = to_result(screenshot::run(&mut vm, &sc));
                    result.evidence.extend(shot.evidence.iter().cloned());
                    results.push(result);
                    results.push(shot);
                    screenshot_done = true;
                }
                None => {
                    let png = ctx.evidence_dir.join("boot-failed.png");
                    match screenshot::take(&mut vm, &png) {
                        Ok(s) => result.evidence.push(s.png),
                        Err(e) => result.message.push_str(&format!(" (no screenshot: {e})")),
                    }
                    results.push(result);
                }
            }
        } else {
            results.push(result);
        }
    }
    Ok(RunningVm {
        vm,
        booted,
        screenshot_done,
    })
}

/// Runs the other VM checks in their configured order (not run, and said so, when the VM did not boot).
pub fn run_checks(
    run: &mut RunningVm,
    checks: &[CheckConfig],
    cancel: &CancelFlag,
    results: &mut Vec<CheckResult>,
) {
    for c in checks {
        let name_kind = match c {
            CheckConfig::Screenshot(s) if !run.screenshot_done => (s.check().name, "screenshot"),
            CheckConfig::Tcp(t) => (t.check().name, "tcp"),
            CheckConfig::Http(h) => (h.check().name, "http"),
            CheckConfig::GuestAgent(a) => (a.check().name, "guest-agent"),
            _ => continue,
        };
        if !run.booted {
            results.push(CheckResult::new(
                name_kind.0,
                name_kind.1,
                CheckStatus::Unverifiable,
                "a booted VM",
                "not run",
                "the VM did not boot",
            ));
            continue;
        }
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            results.push(CheckResult::new(
                name_kind.0,
                name_kind.1,
                CheckStatus::Error,
                "a booted VM",
                "not run",
                "the run was cancelled",
            ));
            continue;
        }
        let r = match c {
            CheckConfig::Screenshot(s) => screenshot::run(&mut run.vm, &s.check()),
            CheckConfig::Tcp(t) => net::tcp(&run.vm, &t.check()),
            CheckConfig::Http(h) => net::http(&run.vm, &h.check()),
            CheckConfig::GuestAgent(a) => agent::run(&run.vm, &a.check()),
            _ => continue,
        };
        results.push(to_result(r));
    }
}

/// Stops QEMU (QMP quit, then SIGKILL of its process group) and forgets its group in the lease.
pub fn teardown(run: RunningVm, lease: &Lease) {
    let mut hook = lease_hook(lease);
    let r = run.vm.teardown(&mut hook);
    tracing::info!(pgid = r.pgid, how = r.how, seconds = r.seconds, status = %r.status, "scratch VM stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> CheckConfig {
        CheckConfig::Http(serde_json::from_value(serde_json::json!({"port": 8080})).unwrap())
    }

    #[test]
    fn validation() {
        let user = VmTargetConfig {
            network: NetworkName::User,
            ..Default::default()
        };
        assert!(
            validate(None, &[http()])
                .unwrap_err()
                .contains("target = \"vm\"")
        );
        assert!(
            validate(Some(&VmTargetConfig::default()), &[http()])
                .unwrap_err()
                .contains("network = \"user\"")
        );
        validate(Some(&user), &[http()]).unwrap();
        let bridge = VmTargetConfig {
            network: NetworkName::Bridge,
            ..Default::default()
        };
        assert!(
            validate(Some(&bridge), &[])
                .unwrap_err()
                .contains("bridge = ")
        );
        let forwards = VmTargetConfig {
            forwards: vec![22],
            ..Default::default()
        };
        assert!(validate(Some(&forwards), &[]).is_err());
    }

    #[test]
    fn disks_from_image_files_and_from_the_vm_configuration() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("b.qcow2"), b"x").unwrap();
        fs::write(root.join("a.img"), b"x").unwrap();
        fs::write(root.join("notes.txt"), b"x").unwrap();
        let (d, note) = find_disks(&VmTargetConfig::default(), root, None).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].name.as_str(), d[0].format, d[0].bus),
            ("a.img", DiskFormat::Raw, Bus::Sata)
        );
        assert_eq!(d[1].format, DiskFormat::Qcow2);
        assert!(note.contains("sata"), "{note}");

        fs::write(root.join("drive-virtio1.img"), b"x").unwrap();
        let conf = conf::parse(b"boot: order=virtio1\nvirtio1: l:v1\nscsi0: l:v0\n");
        let (d, note) = find_disks(&VmTargetConfig::default(), root, Some(&conf)).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].name.as_str(), d[0].bus), ("virtio1", Bus::Virtio));
        assert!(note.contains("not restored: drive-scsi0.img"), "{note}");
        let conf = conf::parse(b"scsi0: l:v0\n");
        let (outcome, why) = find_disks(&VmTargetConfig::default(), root, Some(&conf)).unwrap_err();
        assert_eq!(outcome, Outcome::Failed);
        assert!(why.contains("drive-scsi0.img"), "{why}");
        let empty = tempfile::tempdir().unwrap();
        let (outcome, _) = find_disks(&VmTargetConfig::default(), empty.path(), None).unwrap_err();
        assert_eq!(outcome, Outcome::Error);
    }
}
