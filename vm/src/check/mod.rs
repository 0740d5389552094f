//! Checks on a running scratch VM: does the restored machine boot, show a screen, answer on its ports, run
//! commands through its guest agent.
//!
//! Each check returns a [`VmCheckResult`] with an expected and an actual value, a duration and evidence files.
//! The status says whose fault a problem is: [`VmCheckStatus::Failed`] when the guest did not do what was
//! expected (the backup does not boot, the service answers 500), [`VmCheckStatus::Error`] when lifeboat could
//! not judge (QEMU died under it, KVM broke, a port was not forwarded). The engine maps these onto its own
//! check results; this crate does not depend on it.

pub mod agent;
pub mod boot;
pub mod net;
pub mod screenshot;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The status of one VM check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmCheckStatus {
    /// The guest did what was expected.
    Passed,
    /// The guest did not: the backup is bad.
    Failed,
    /// The check could not be carried out: lifeboat's problem, the run proves nothing.
    Error,
}

impl VmCheckStatus {
    /// `passed`, `failed`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            VmCheckStatus::Passed => "passed",
            VmCheckStatus::Failed => "failed",
            VmCheckStatus::Error => "error",
        }
    }
}

/// The result of one VM check.
#[derive(Debug, Clone, PartialEq)]
pub struct VmCheckResult {
    /// Name, unique within the run (`boot`, `http :80/`).
    pub name: String,
    /// Kind: `boot`, `screenshot`, `tcp`, `http`, `guest-agent`.
    pub kind: &'static str,
    /// Status.
    pub status: VmCheckStatus,
    /// What was expected, for a person.
    pub expected: String,
    /// What was found, for a person.
    pub actual: String,
    /// Why, and what to do, when not passed.
    pub message: String,
    /// How long the check took.
    pub duration: Duration,
    /// Evidence files.
    pub evidence: Vec<PathBuf>,
    /// For `boot`: seconds from QEMU's start to the marker.
    pub boot_seconds: Option<f64>,
}

impl VmCheckResult {
    pub(crate) fn new(
        name: String,
        kind: &'static str,
        expected: String,
        started: Instant,
    ) -> Self {
        VmCheckResult {
            name,
            kind,
            status: VmCheckStatus::Error,
            expected,
            actual: String::new(),
            message: String::new(),
            duration: started.elapsed(),
            evidence: Vec::new(),
            boot_seconds: None,
        }
    }

    pub(crate) fn done(
        mut self,
        status: VmCheckStatus,
        actual: impl Into<String>,
        message: impl Into<String>,
        started: Instant,
    ) -> Self {
        self.status = status;
        self.actual = actual.into();
        self.message = message.into();
        self.duration = started.elapsed();
        self
    }
}

/// Shortens text for messages to `max` characters, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// Printable form of bytes from a guest (control characters escaped, bounded).
pub(crate) fn printable(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                ' '
            } else if c == '\n' {
                '⏎'
            } else {
                c
            }
        })
        .collect();
    clip(s.trim(), max)
}

/// A byte count for messages: exact when it is a whole number of a unit (`64 MiB`, `512 KiB`, `100 B`),
/// else one decimal in the largest unit that fits (`31.7 GiB`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let exp = (0..UNITS.len())
        .rev()
        .find(|&e| n >= 1u64 << (10 * e))
        .unwrap_or(0);
    let unit = 1u64 << (10 * exp);
    if n.is_multiple_of(unit) {
        format!("{} {}", n / unit, UNITS[exp])
    } else {
        format!("{:.1} {}", n as f64 / unit as f64, UNITS[exp])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_counts_read_well() {
        assert_eq!(super::bytes(100), "100 B");
        assert_eq!(super::bytes(512 << 10), "512 KiB");
        assert_eq!(super::bytes(64 << 20), "64 MiB");
        assert_eq!(super::bytes(1000 << 40), "1000 TiB");
        assert_eq!(super::bytes(34_045_190_144), "31.7 GiB");
        assert_eq!(super::bytes(1536), "1.5 KiB");
    }
}
