//! lifeboat's scratch VMs: boot restored disk images in an isolated QEMU, check that the machine works, and
//! keep the evidence.
//!
//! A disk image whose chunks all verify can still fail to boot (a broken boot loader, an fstab naming a
//! missing disk, a file system caught mid-write). This crate boots it the way the commercial tools' "verified
//! backup" features do: no network (or a restricted one with only probe ports forwarded to localhost), the
//! image never written, a serial console log and a VGA screenshot as evidence, probes of the guest's
//! services, a hard timeout, and a teardown that always ends QEMU.
//!
//! It is synchronous (threads, std sockets) and knows nothing of the drill engine: [`machine::Vm`] is started
//! from a [`spec::VmSpec`], the engine registers its process group in the run's lease through a hook, runs the
//! [`check`]s and maps their results onto its own. [`conf`] reads the Proxmox `qemu-server.conf` that PBS VM
//! snapshots carry.
//!
//! Whose fault a problem is stays explicit throughout: a [`VmError`] (QEMU missing, would not start) makes a
//! run an `error`; a guest that does not boot or answer is a failed [`check::VmCheckResult`].

pub mod accel;
pub mod check;
pub mod conf;
pub mod disk;
pub mod error;
pub mod machine;
pub mod qemu;
pub mod qmp;
pub mod spec;

pub use error::{INSTALL_HINT, VmError};
pub use machine::{TeardownReport, Vm};
pub use qemu::Qemu;
/// The regular expression crate the checks take patterns from (so callers need not depend on it themselves).
pub use regex;
pub use spec::{
    Accel, Bus, Disk, DiskFormat, Firmware, Machine, Network, ScsiHw, UsedAccel, VmSpec,
};
