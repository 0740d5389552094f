//! Choosing between KVM and TCG by trying KVM, not by trusting `/dev/kvm`.
//!
//! A `/dev/kvm` that opens is not a KVM that boots: on nested or paravirtual hosts (e.g. a kvm-pvm guest
//! kernel) QEMU starts, SeaBIOS begins, and the first protected-mode `iret` ends in "KVM internal error.
//! Suberror: 1 / emulation failure", after which QEMU sits paused forever (../shared/reference/test-peers.md).
//! So `auto` boots a 512-byte probe under KVM: a boot sector that switches to 32-bit protected mode, takes a
//! software interrupt through an IDT (the `iret` that fails on such hosts) and then writes to an
//! `isa-debug-exit` port, which ends QEMU with status `(0x2a << 1) | 1 = 85`. Anything else (no exit within the
//! limit, "KVM internal error" on stderr, another status) means KVM does not work and TCG is used. The answer is
//! cached per QEMU binary for the life of the process.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, VmError};
use crate::qemu::Qemu;
use crate::spec::{Accel, UsedAccel};

/// How long the probe may take (it needs about 0.1 s under TCG, 1.5 s under working KVM).
const PROBE_LIMIT: Duration = Duration::from_secs(15);
/// Exit status of the probe when it reached its end.
const PROBE_OK: i32 = 85;

/// The probe's boot sector. Assembled with GNU as from:
/// ```text
/// .code16                       cli; xor ax,ax; mov ds,ax; lgdtl gdtr; cr0 |= 1; ljmpl $8, pm32
/// .code32 pm32:                 ds = es = ss = 0x10; esp = 0x7000; lidt idtr; int $0x20
///                               mov $0x2a,%al; outb %al,$0xf4; 1: hlt; jmp 1b
/// handler (0x7c3c):             iret
/// gdt (0x7c40):                 null, code 0x00cf9a000000ffff, data 0x00cf92000000ffff; gdtr (0x7c58)
/// idt (0x7c5e):                 33 entries, entry 0x20 = interrupt gate 0x08:0x7c3c; idtr (0x7d66)
/// ```
pub fn probe_boot_sector() -> [u8; 512] {
    const CODE: [u8; 61] = [
        0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x66, 0x0f, 0x01, 0x16, 0x58, 0x7c, 0x0f, 0x20, 0xc0, 0x66,
        0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x1d, 0x7c, 0x00, 0x00, 0x08, 0x00, 0x66,
        0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x70, 0x00, 0x00, 0x0f,
        0x01, 0x1d, 0x66, 0x7d, 0x00, 0x00, 0xcd, 0x20, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
        0xcf,
    ];
    const GDT: [u8; 30] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xcf, 0, 0xff, 0xff, 0, 0, 0, 0x92,
        0xcf, 0, // gdtr: limit 23, base 0x7c40
        0x17, 0x00, 0x40, 0x7c, 0x00, 0x00,
    ];
    let mut s = [0u8; 512];
    s[..CODE.len()].copy_from_slice(&CODE);
    s[0x40..0x40 + GDT.len()].copy_from_slice(&GDT);
    // IDT entry 0x20 at 0x5e + 0x20 * 8: offset 0x7c3c, selector 8, type 0x8e (32-bit interrupt gate).
    s[0x15e..0x166].copy_from_slice(&[0x3c, 0x7c, 0x08, 0x00, 0x00, 0x8e, 0x00, 0x00]);
    // idtr: limit 0x21 * 8 - 1, base 0x7c5e.
    s[0x166..0x16c].copy_from_slice(&[0x07, 0x01, 0x5e, 0x7c, 0x00, 0x00]);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// The outcome of choosing an accelerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// What to use.
    pub used: UsedAccel,
    /// Why, for evidence ("kvm probe passed in 1.4 s", "kvm: /dev/kvm: Permission denied; using tcg").
    pub reason: String,
}

type ProbeCache = Mutex<HashMap<PathBuf, Arc<Mutex<Option<Result<String, String>>>>>>;

fn cache() -> &'static ProbeCache {
    static CACHE: std::sync::OnceLock<ProbeCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Forgets that KVM works with `qemu` (after a VM under KVM hit an internal error anyway).
pub fn mark_kvm_broken(qemu: &Path, why: &str) {
    let slot = {
        let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
        map.entry(qemu.to_path_buf()).or_default().clone()
    };
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(why.to_string()));
}

/// Resolves `wanted` for `qemu`. `work_dir` receives the probe's disk; `on_spawn(pgid, started)` is told when
/// the probe's process group starts (`true`) and ends (`false`) so a crash of lifeboat cannot leave it paused
/// forever.
pub fn choose(
    qemu: &Qemu,
    wanted: Accel,
    work_dir: &Path,
    on_spawn: &mut dyn FnMut(i32, bool) -> std::io::Result<()>,
) -> Result<AccelChoice> {
    if wanted == Accel::Tcg {
        return Ok(AccelChoice {
            used: UsedAccel::Tcg,
            reason: "tcg (configured)".into(),
        });
    }
    let slot = {
        let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
        map.entry(qemu.path.clone()).or_default().clone()
    };
    // One probe per binary at a time; later callers wait for and reuse its answer.
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(probe_kvm(qemu, work_dir, on_spawn)?);
    }
    let answer = guard.clone().unwrap_or_else(|| Err("not probed".into()));
    drop(guard);
    match (answer, wanted) {
        (Ok(how), _) => Ok(AccelChoice {
            used: UsedAccel::Kvm,
            reason: format!("kvm ({how})"),
        }),
        (Err(why), Accel::Kvm) => Err(VmError::KvmUnavailable { reason: why }),
        (Err(why), _) => Ok(AccelChoice {
            used: UsedAccel::Tcg,
            reason: format!("tcg (KVM does not work here: {why})"),
        }),
    }
}

/// Ok(description) when KVM booted the probe, Err(reason) when it did not. An `Err` of the outer result means
/// the probe itself could not run (QEMU not executable, work folder not writable).
fn probe_kvm(
    qemu: &Qemu,
    work_dir: &Path,
    on_spawn: &mut dyn FnMut(i32, bool) -> std::io::Result<()>,
) -> Result<Result<String, String>> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Ok(Err(format!("/dev/kvm: {e}")));
    }
    let disk = work_dir.join("kvm-probe.img");
    std::fs::write(&disk, probe_boot_sector())
        .map_err(|e| VmError::io("cannot write the KVM probe disk", &disk, e))?;
    let mut cmd = Command::new(&qemu.path);
    cmd.args([
        "-accel",
        "kvm",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .args(["-no-reboot", "-m", "16", "-vga", "std"]);
    for d in &qemu.firmware_dirs {
        cmd.arg("-L").arg(d);
    }
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-drive")
        .arg(format!("file={},format=raw,snapshot=on", "kvm-probe.img"))
        .current_dir(work_dir)
        .env("TMPDIR", work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| VmError::Spawn {
        path: qemu.path.clone(),
        source: e,
    })?;
    let pgid = child.id() as i32;
    let registered = on_spawn(pgid, true);
    let stderr = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = child.stderr.take().map(|mut err| {
        let buf = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                if b.len() < 64 << 10 {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
        })
    });
    let verdict = loop {
        if let Err(e) = &registered {
            break Err(format!("could not record the probe in the lease: {e}"));
        }
        match child.try_wait() {
            Ok(Some(st)) => {
                break match st.code() {
                    Some(PROBE_OK) => Ok(format!(
                        "probe booted in {:.1} s",
                        started.elapsed().as_secs_f64()
                    )),
                    _ => Err(format!("the probe VM ended with {st}")),
                };
            }
            Ok(None) => {}
            Err(e) => break Err(format!("waiting for the probe: {e}")),
        }
        let text =
            String::from_utf8_lossy(&stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        if text.contains("KVM internal error") || text.contains("emulation failure") {
            break Err("the probe VM stopped with \"KVM internal error\"".into());
        }
        if started.elapsed() > PROBE_LIMIT {
            break Err(format!(
                "the probe VM did not finish within {} s",
                PROBE_LIMIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
    if let Some(r) = reader {
        let _ = r.join();
    }
    let _ = on_spawn(pgid, false);
    let _ = std::fs::remove_file(&disk);
    let verdict = verdict.map_err(|why| {
        let text = String::from_utf8_lossy(&stderr.lock().unwrap_or_else(|p| p.into_inner()))
            .lines()
            .find(|l| !l.contains("warning:"))
            .map(|l| format!("{why}: {l}"))
            .unwrap_or(why);
        crate::check::clip(&text, 300)
    });
    tracing::info!(qemu = %qemu.path.display(), result = ?verdict, "KVM probe");
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sector_is_a_boot_sector() {
        let s = probe_boot_sector();
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert_eq!(s[0x3c], 0xcf, "iret at the handler address");
        assert_eq!(&s[0x58..0x5e], &[0x17, 0x00, 0x40, 0x7c, 0x00, 0x00]);
    }
}
