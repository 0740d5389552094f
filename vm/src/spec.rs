//! What VM to boot, and the QEMU command line for it.
//!
//! The command line is built for a drill, not for a workload: the restored images are attached with
//! `snapshot=on` (QEMU keeps the guest's writes in a temporary overlay, created in the run folder through
//! `TMPDIR`, so the restored image is never written), there is no network unless the drill asks for one (and
//! then user-mode networking with `restrict=on`, so the guest reaches neither the host nor the outside; only
//! the listed guest ports are forwarded, to localhost), the display is a VGA card nobody looks at except
//! `screendump`, the serial console goes to a log file in the evidence folder, QMP listens on a private socket
//! in the run folder, and `-no-reboot` turns a guest reboot (a kernel panic with `panic=N`, SeaBIOS giving up
//! after "No bootable device") into QEMU exiting, which the boot check sees at once.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::disk::{Bus, Disk, DiskFormat, ScsiHw, check_qcow2};
use crate::error::{Result, VmError};
use crate::qemu::Qemu;

/// QMP socket file name in the run folder.
pub const QMP_SOCKET: &str = "qmp.sock";
/// Guest agent socket file name in the run folder.
pub const AGENT_SOCKET: &str = "qga.sock";
/// Serial console log, in the evidence folder.
pub const SERIAL_LOG: &str = "serial.log";
/// The UEFI variable store copy, in the run folder.
pub const UEFI_VARS: &str = "uefi-vars.fd";

/// Machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// i440FX (`pc`), Proxmox's default.
    #[default]
    Pc,
    /// Q35.
    Q35,
}

/// Boot firmware.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Firmware {
    /// SeaBIOS (Proxmox `bios: seabios`, the default).
    #[default]
    Bios,
    /// OVMF (Proxmox `bios: ovmf`).
    Uefi {
        /// The OVMF code image (Debian's `ovmf` package: `/usr/share/OVMF/OVMF_CODE.fd`).
        code: PathBuf,
        /// A variable store template copied into the run folder (`OVMF_VARS.fd`, or a restored
        /// `drive-efidisk0.img`); without it `code` is loaded with `-bios` (a combined `OVMF.fd`).
        vars: Option<PathBuf>,
        /// Copy only this many bytes of `vars`: an EFI disk on LVM or Ceph is rounded up (to 4 MiB), and the
        /// firmware's store is its first 528 KiB (Proxmox hands QEMU the same prefix with `size=`).
        vars_size: Option<u64>,
    },
}

/// The VM's network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// No network card at all (`-nic none`): the default, and the safe choice for a restored machine that may
    /// still believe it is production.
    #[default]
    None,
    /// User-mode networking with `restrict=on` (no route to the host or the outside); each listed guest TCP port
    /// is forwarded from a free port on 127.0.0.1. The guest sees 10.0.2.15/24 with gateway 10.0.2.2.
    User {
        /// Guest TCP ports to forward.
        forwards: Vec<u16>,
    },
    /// A tap on an existing host bridge through `qemu-bridge-helper`: only when a drill asks for it explicitly.
    Bridge {
        /// The bridge, e.g. `vmbr9`.
        bridge: String,
    },
}

/// Acceleration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM when a probe shows it really works here, else TCG.
    #[default]
    Auto,
    /// KVM or an error.
    Kvm,
    /// Software emulation (slow, works everywhere).
    Tcg,
}

impl Accel {
    /// Parses `auto`, `kvm`, `tcg`.
    pub fn parse(s: &str) -> Option<Accel> {
        Some(match s {
            "auto" => Accel::Auto,
            "kvm" => Accel::Kvm,
            "tcg" => Accel::Tcg,
            _ => return None,
        })
    }
}

/// The acceleration actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedAccel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl UsedAccel {
    /// `kvm` or `tcg`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsedAccel::Kvm => "kvm",
            UsedAccel::Tcg => "tcg",
        }
    }
}

/// Everything needed to boot one scratch VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// A name for the process list and logs (the drill's name).
    pub name: String,
    /// QEMU to run.
    pub qemu: Qemu,
    /// Acceleration wanted.
    pub accel: Accel,
    /// Machine type.
    pub machine: Machine,
    /// Firmware.
    pub firmware: Firmware,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Sockets.
    pub sockets: u32,
    /// Disks in boot order (the first one boots).
    pub disks: Vec<Disk>,
    /// SCSI controller for [`Bus::Scsi`] disks.
    pub scsihw: ScsiHw,
    /// Network.
    pub network: Network,
    /// NIC model for [`Network::User`] and [`Network::Bridge`].
    pub nic_model: String,
    /// Adds the virtio-serial channel `org.qemu.guest_agent.0` for the guest agent.
    pub guest_agent: bool,
    /// The VM is killed this long after it was started, whatever happens.
    pub hard_timeout: Duration,
    /// How long teardown waits for QEMU after QMP `quit` before it kills the process group.
    pub grace: Duration,
    /// Most bytes of serial console output: a guest writing more is killed (QEMU's UART does not throttle, so a
    /// flooding guest would otherwise fill the evidence disk). Default 64 MiB.
    pub serial_limit: u64,
    /// Least free space on the run folder's file system: the guest's writes grow the snapshot overlay there,
    /// and a guest that writes without end (a database replaying its log, a filling disk) is stopped before
    /// it fills the host's disk. Default 1 GiB.
    pub min_free: u64,
    /// Private folder for sockets, QEMU's stderr and the snapshot overlay (the run folder).
    pub run_dir: PathBuf,
    /// Where the serial log and screenshots are kept.
    pub evidence_dir: PathBuf,
}

impl VmSpec {
    /// A VM with lifeboat's defaults: automatic acceleration, `pc` machine, SeaBIOS, 1 GiB, one core, no
    /// network, a 10 minute hard timeout.
    pub fn new(name: &str, qemu: Qemu, run_dir: &Path, evidence_dir: &Path) -> VmSpec {
        VmSpec {
            name: name.to_string(),
            qemu,
            accel: Accel::Auto,
            machine: Machine::Pc,
            firmware: Firmware::Bios,
            memory_mib: 1024,
            cores: 1,
            sockets: 1,
            disks: Vec::new(),
            scsihw: ScsiHw::VirtioScsi,
            network: Network::None,
            nic_model: "virtio-net-pci".into(),
            guest_agent: false,
            hard_timeout: Duration::from_secs(600),
            grace: Duration::from_secs(5),
            serial_limit: 64 << 20,
            min_free: 1 << 30,
            run_dir: run_dir.to_path_buf(),
            evidence_dir: evidence_dir.to_path_buf(),
        }
    }

    /// The serial log path.
    pub fn serial_log(&self) -> PathBuf {
        self.evidence_dir.join(SERIAL_LOG)
    }

    /// Checks what QEMU cannot: at least one disk, sane sizes, controller port counts, a forward list without
    /// duplicates.
    pub fn validate(&self) -> Result<()> {
        if self.disks.is_empty() {
            return Err(VmError::Spec("no disk image to boot".into()));
        }
        if !(16..=1 << 22).contains(&self.memory_mib) {
            return Err(VmError::Spec(format!(
                "memory {} MiB is outside 16 MiB..4 TiB",
                self.memory_mib
            )));
        }
        if self.cores == 0 || self.sockets == 0 || self.cores * self.sockets > 256 {
            return Err(VmError::Spec(format!(
                "{} cores × {} sockets is not a CPU count QEMU accepts (1..256)",
                self.cores, self.sockets
            )));
        }
        let count = |b: Bus| self.disks.iter().filter(|d| d.bus == b).count();
        let ide_max = match self.machine {
            Machine::Pc => 4,
            Machine::Q35 => 6,
        };
        if count(Bus::Ide) > ide_max {
            return Err(VmError::Spec(format!(
                "{} IDE disks, the machine has {ide_max} IDE ports",
                count(Bus::Ide)
            )));
        }
        if count(Bus::Sata) > 6 {
            return Err(VmError::Spec(format!(
                "{} SATA disks, one AHCI controller has 6 ports",
                count(Bus::Sata)
            )));
        }
        if let Network::User { forwards } = &self.network {
            let mut f = forwards.clone();
            f.sort_unstable();
            f.dedup();
            if f.len() != forwards.len() || f.contains(&0) {
                return Err(VmError::Spec(format!(
                    "forwarded guest ports {forwards:?} contain 0 or a duplicate"
                )));
            }
        }
        if let Network::Bridge { bridge } = &self.network
            && (bridge.is_empty()
                || !bridge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        {
            return Err(VmError::Spec(format!(
                "bridge name {bridge:?} is not valid"
            )));
        }
        Ok(())
    }

    /// QEMU's arguments. `forwards` maps each guest port of [`Network::User`] to its host port.
    pub fn args(&self, accel: UsedAccel, forwards: &[(u16, u16)]) -> Result<Vec<OsString>> {
        self.validate()?;
        let mut a = Args::default();
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        a.pair("-name", format!("lifeboat-{name}"));
        a.pair(
            "-machine",
            match self.machine {
                Machine::Pc => "pc",
                Machine::Q35 => "q35",
            },
        );
        a.pair("-accel", accel.as_str());
        // TCG's default CPU (qemu64) lacks x86-64-v2, which RHEL 9 and derivatives require: use every feature TCG
        // can emulate. Under KVM, the host's CPU.
        a.pair(
            "-cpu",
            match accel {
                UsedAccel::Kvm => "host",
                UsedAccel::Tcg => "max",
            },
        );
        for d in &self.qemu.firmware_dirs {
            a.pair("-L", d.as_os_str());
        }
        a.pair("-m", self.memory_mib.to_string());
        a.pair(
            "-smp",
            format!(
                "{},sockets={},cores={},threads=1",
                self.cores * self.sockets,
                self.sockets,
                self.cores
            ),
        );
        a.one("-nodefaults");
        a.one("-no-user-config");
        a.one("-no-reboot");
        a.pair("-boot", "menu=off,strict=on");
        a.pair("-display", "none");
        a.pair("-vga", "std");
        a.pair(
            "-chardev",
            opt("file,id=serial0,path=", &self.serial_log(), ""),
        );
        a.pair("-serial", "chardev:serial0");
        // Relative to QEMU's working directory (the run folder): unix socket paths are limited to 108 bytes.
        a.pair(
            "-chardev",
            format!("socket,id=qmp,path={QMP_SOCKET},server=on,wait=off"),
        );
        a.pair("-mon", "chardev=qmp,mode=control");
        match &self.firmware {
            Firmware::Bios => {}
            Firmware::Uefi {
                code, vars: None, ..
            } => a.pair("-bios", code.as_os_str()),
            Firmware::Uefi {
                code,
                vars: Some(_),
                ..
            } => {
                a.pair(
                    "-drive",
                    opt("if=pflash,format=raw,unit=0,readonly=on,file=", code, ""),
                );
                a.pair(
                    "-drive",
                    format!("if=pflash,format=raw,unit=1,file={UEFI_VARS}"),
                );
            }
        }
        self.disk_args(&mut a);
        match &self.network {
            Network::None => a.pair("-nic", "none"),
            Network::User { .. } => {
                let mut netdev = String::from("user,id=net0,restrict=on");
                for (guest, host) in forwards {
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
                }
                a.pair("-netdev", netdev);
                // romfile= : no PXE option ROM, so the firmware never tries a network boot.
                a.pair(
                    "-device",
                    format!("{},netdev=net0,romfile=", self.nic_model),
                );
            }
            Network::Bridge { bridge } => {
                a.pair("-netdev", format!("bridge,id=net0,br={bridge}"));
                a.pair(
                    "-device",
                    format!("{},netdev=net0,romfile=", self.nic_model),
                );
            }
        }
        if self.guest_agent {
            a.pair("-device", "virtio-serial-pci,id=vser0");
            a.pair(
                "-chardev",
                format!("socket,id=qga0,path={AGENT_SOCKET},server=on,wait=off"),
            );
            a.pair(
                "-device",
                "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
            );
        }
        Ok(a.0)
    }

    fn disk_args(&self, a: &mut Args) {
        let mut scsi_controllers = 0usize;
        let (mut ide, mut sata) = (0usize, 0usize);
        for (i, d) in self.disks.iter().enumerate() {
            let id = format!("drive{i}");
            a.pair(
                "-drive",
                opt(
                    "file=",
                    &d.path,
                    &format!(
                        ",format={},if=none,id={id},snapshot=on,discard=ignore",
                        d.format.as_str()
                    ),
                ),
            );
            let device = match d.bus {
                Bus::Virtio => format!("virtio-blk-pci,drive={id}"),
                Bus::Scsi => {
                    let single = self.scsihw == ScsiHw::VirtioScsiSingle;
                    if scsi_controllers == 0 || single {
                        a.pair(
                            "-device",
                            format!("{},id=scsihw{scsi_controllers}", self.scsihw.device()),
                        );
                        scsi_controllers += 1;
                    }
                    format!("scsi-hd,bus=scsihw{}.0,drive={id}", scsi_controllers - 1)
                }
                Bus::Ide => {
                    let dev = match self.machine {
                        Machine::Pc => {
                            format!("ide-hd,bus=ide.{},unit={},drive={id}", ide / 2, ide % 2)
                        }
                        Machine::Q35 => format!("ide-hd,bus=ide.{ide},drive={id}"),
                    };
                    ide += 1;
                    dev
                }
                Bus::Sata => {
                    if sata == 0 {
                        a.pair("-device", "ahci,id=ahci0");
                    }
                    sata += 1;
                    format!("ide-hd,bus=ahci0.{},drive={id}", sata - 1)
                }
            };
            a.pair("-device", format!("{device},bootindex={i}"));
        }
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn one(&mut self, s: &str) {
        self.0.push(s.into());
    }
    fn pair(&mut self, k: &str, v: impl AsRef<OsStr>) {
        self.0.push(k.into());
        self.0.push(v.as_ref().to_os_string());
    }
}

/// `prefix` + `path` with commas doubled (QEMU's option escaping) + `suffix`.
fn opt(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut v = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        v.push(b);
        if b == b',' {
            v.push(b',');
        }
    }
    v.extend_from_slice(suffix.as_bytes());
    OsString::from_vec(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        let q = Qemu {
            path: "/usr/bin/qemu-system-x86_64".into(),
            firmware_dirs: vec!["/usr/share/seabios".into()],
            found_by: "PATH",
        };
        let mut s = VmSpec::new("web 1", q, Path::new("/run/r1"), Path::new("/ev/r1"));
        s.disks.push(Disk {
            name: "scsi0".into(),
            path: "/run/r1/restore/drive,scsi0.img".into(),
            format: DiskFormat::Raw,
            bus: Bus::Scsi,
        });
        s
    }

    fn joined(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn isolated_by_default_and_image_never_written() {
        let s = spec();
        let a = joined(&s.args(UsedAccel::Tcg, &[]).unwrap());
        assert!(a.contains("-nic none"), "{a}");
        assert!(!a.contains("-netdev"), "{a}");
        assert!(
            a.contains(
                "file=/run/r1/restore/drive,,scsi0.img,format=raw,if=none,id=drive0,snapshot=on"
            ),
            "{a}"
        );
        assert!(a.contains("-device virtio-scsi-pci,id=scsihw0"), "{a}");
        assert!(
            a.contains("scsi-hd,bus=scsihw0.0,drive=drive0,bootindex=0"),
            "{a}"
        );
        assert!(a.contains("-no-reboot") && a.contains("-display none") && a.contains("-vga std"));
        assert!(a.contains("-name lifeboat-web_1"), "{a}");
        assert!(a.contains("-L /usr/share/seabios"), "{a}");
        assert!(a.contains("path=/ev/r1/serial.log"), "{a}");
        assert!(a.contains("-accel tcg -cpu max"), "{a}");
    }

    #[test]
    fn user_network_forwards_only_listed_ports_to_localhost() {
        let mut s = spec();
        s.network = Network::User {
            forwards: vec![80, 22],
        };
        let a = joined(&s.args(UsedAccel::Kvm, &[(80, 40001), (22, 40002)]).unwrap());
        assert!(
            a.contains("-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:80,hostfwd=tcp:127.0.0.1:40002-:22"),
            "{a}"
        );
        assert!(a.contains("virtio-net-pci,netdev=net0,romfile="), "{a}");
        assert!(a.contains("-cpu host"), "{a}");
    }

    #[test]
    fn buses_and_boot_order() {
        let mut s = spec();
        for (n, bus) in [
            ("virtio0", Bus::Virtio),
            ("sata0", Bus::Sata),
            ("ide0", Bus::Ide),
            ("ide1", Bus::Ide),
            ("ide2", Bus::Ide),
        ] {
            s.disks.push(Disk {
                name: n.into(),
                path: format!("/d/{n}.img").into(),
                format: DiskFormat::Qcow2,
                bus,
            });
        }
        s.guest_agent = true;
        let a = joined(&s.args(UsedAccel::Tcg, &[]).unwrap());
        assert!(a.contains("virtio-blk-pci,drive=drive1,bootindex=1"), "{a}");
        assert!(a.contains("-device ahci,id=ahci0"), "{a}");
        assert!(
            a.contains("ide-hd,bus=ahci0.0,drive=drive2,bootindex=2"),
            "{a}"
        );
        assert!(
            a.contains("ide-hd,bus=ide.0,unit=0,drive=drive3,bootindex=3"),
            "{a}"
        );
        assert!(
            a.contains("ide-hd,bus=ide.0,unit=1,drive=drive4,bootindex=4"),
            "{a}"
        );
        assert!(
            a.contains("ide-hd,bus=ide.1,unit=0,drive=drive5,bootindex=5"),
            "{a}"
        );
        assert!(a.contains("format=qcow2"), "{a}");
        assert!(a.contains("name=org.qemu.guest_agent.0"), "{a}");
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut s = spec();
        s.disks.clear();
        assert!(s.args(UsedAccel::Tcg, &[]).is_err());
        let mut s = spec();
        s.memory_mib = 1;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.network = Network::User {
            forwards: vec![80, 80],
        };
        assert!(s.validate().is_err());
        let mut s = spec();
        s.network = Network::Bridge {
            bridge: "br0,script=/x".into(),
        };
        assert!(s.validate().is_err());
        let mut s = spec();
        s.cores = 0;
        assert!(s.validate().is_err());
    }
}
