//! The `boot` check: a line matching a pattern appears on the serial console within a time limit.
//!
//! This is the heartbeat of a restored machine (`login:`, a systemd target, an application's "ready" line).
//! The serial log is read as it grows; QEMU exiting first (with `-no-reboot`, a kernel panic or SeaBIOS giving
//! up become an exit) fails the check at once instead of waiting for the limit. The time from QEMU's start to
//! the match is the boot time, a phase of the RTA.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;

use super::{VmCheckResult, VmCheckStatus, clip, printable};
use crate::machine::Vm;
use crate::spec::UsedAccel;

/// Most serial output searched at once; older output is dropped (the pattern is searched as output arrives).
const WINDOW: usize = 256 << 10;
/// Kept when the window is trimmed, so a line split across reads still matches.
const OVERLAP: usize = 4 << 10;

/// What to wait for.
#[derive(Debug, Clone)]
pub struct BootCheck {
    /// Check name.
    pub name: String,
    /// Pattern searched in the serial output.
    pub pattern: Regex,
    /// Longest wait, counted from the check's start (which follows QEMU's start closely).
    pub timeout: Duration,
    /// Set when the run is cancelled (agent shutdown): the wait ends at once with an `error`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl BootCheck {
    /// A boot check named `boot`.
    pub fn new(pattern: Regex, timeout: Duration) -> BootCheck {
        BootCheck {
            name: "boot".into(),
            pattern,
            timeout,
            cancel: None,
        }
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    printable(lines[start..].join("\n").as_bytes(), 300)
}

/// Waits for the pattern. Evidence: the serial log.
pub fn run(vm: &mut Vm, check: &BootCheck) -> VmCheckResult {
    let t = Instant::now();
    let mut r = VmCheckResult::new(
        check.name.clone(),
        "boot",
        format!(
            "a serial console line matching /{}/ within {}",
            check.pattern.as_str(),
            secs(check.timeout)
        ),
        t,
    );
    let log = vm.serial_log();
    r.evidence.push(log.clone());
    let deadline = t + check.timeout;
    let mut offset = 0u64;
    let mut window: Vec<u8> = Vec::new();
    let mut last_status = Instant::now();
    loop {
        // Read what is new.
        if let Ok(mut f) = File::open(&log)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut buf = Vec::new();
            if let Ok(n) = f.take(WINDOW as u64).read_to_end(&mut buf) {
                offset += n as u64;
                window.extend_from_slice(&buf);
            }
        }
        let text = String::from_utf8_lossy(&window).into_owned();
        if let Some(m) = check.pattern.find(&text) {
            let boot = vm.started().elapsed().as_secs_f64();
            r.boot_seconds = Some(boot);
            let line = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
            let end = text[m.end()..]
                .find('\n')
                .map_or(text.len(), |i| m.end() + i);
            return r.done(
                VmCheckStatus::Passed,
                format!(
                    "\"{}\" after {boot:.1} s ({})",
                    printable(&text.as_bytes()[line..end], 120),
                    vm.accel().used.as_str()
                ),
                "",
                t,
            );
        }
        if window.len() > WINDOW {
            let cut = window.len() - OVERLAP;
            window.drain(..cut);
        }
        if let Some(st) = vm.exit_status() {
            let seen = last_lines(&text, 3);
            let (status, why) = if vm.timed_out() {
                (
                    VmCheckStatus::Failed,
                    "the VM's hard timeout ended it before the pattern appeared".to_string(),
                )
            } else if vm.scratch_full() {
                (
                    VmCheckStatus::Error,
                    format!(
                        "the scratch file system had less than {} free (the guest's writes go to an overlay \
                         there), so the VM was stopped to protect the host; free space under the scratch root \
                         or lower `min_free` in the drill's vm table",
                        crate::check::bytes(vm.spec().min_free)
                    ),
                )
            } else if vm.serial_flooded() {
                (
                    VmCheckStatus::Failed,
                    format!(
                        "the guest wrote more than {} to its serial console and was stopped",
                        crate::check::bytes(vm.spec().serial_limit)
                    ),
                )
            } else {
                (
                    VmCheckStatus::Failed,
                    format!(
                        "the VM stopped ({st}) after {:.1} s before the pattern appeared: with -no-reboot a guest \
                         reboot, a kernel panic or firmware finding no bootable disk ends QEMU",
                        vm.started().elapsed().as_secs_f64()
                    ),
                )
            };
            return r.done(
                status,
                if seen.is_empty() {
                    "no serial output".to_string()
                } else {
                    format!("last serial output: {seen}")
                },
                why,
                t,
            );
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let status = vm.status();
            match status.as_str() {
                "internal-error" if vm.accel().used == UsedAccel::Kvm => {
                    vm.note_kvm_failure("a VM stopped with a KVM internal error");
                    return r.done(
                        VmCheckStatus::Error,
                        "QEMU stopped with a KVM internal error",
                        format!(
                            "KVM does not work for this guest on this host ({}); later runs of this process use \
                             TCG, or set accel = \"tcg\"",
                            clip(&vm.stderr_tail(), 200)
                        ),
                        t,
                    );
                }
                "internal-error" => {
                    return r.done(
                        VmCheckStatus::Error,
                        "QEMU stopped with an internal error",
                        clip(&vm.stderr_tail(), 300),
                        t,
                    );
                }
                "guest-panicked" | "shutdown" => {
                    return r.done(
                        VmCheckStatus::Failed,
                        format!(
                            "the guest stopped ({status}); last serial output: {}",
                            last_lines(&text, 3)
                        ),
                        "the restored system halted before it finished booting",
                        t,
                    );
                }
                _ => {}
            }
        }
        if check
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return r.done(
                VmCheckStatus::Error,
                "cancelled while waiting",
                "the run was interrupted before the guest finished booting; it proves nothing",
                t,
            );
        }
        if Instant::now() >= deadline {
            let seen = last_lines(&text, 3);
            return r.done(
                VmCheckStatus::Failed,
                if seen.is_empty() {
                    format!("no serial output in {}", secs(check.timeout))
                } else {
                    format!("no match in {}; last serial output: {seen}", secs(check.timeout))
                },
                "the restored machine did not reach the expected point of its boot: see the screenshot and \
                 serial.log (a damaged boot loader, kernel or root file system; or a guest that does not log to \
                 its serial console: add console=ttyS0 to its kernel command line, or use a screenshot or tcp check)",
                t,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}
