//! Checks on a booted scratch VM (`target = "vm"`): their configuration as a drill writes it, and the mapping of
//! the VM machinery's results ([`lifeboat_vm::check`]) onto the engine's [`CheckResult`]s.
//!
//! The checks themselves live in the `lifeboat-vm` crate (it knows QEMU, QMP and the guest agent and nothing of
//! drills); this module only reads TOML, compiles patterns at configuration time (a bad regex is a
//! configuration error with a line number, not a failed run) and names results.

use std::time::Duration;

use lifeboat_vm::check::VmCheckResult;
use lifeboat_vm::check::VmCheckStatus;
use lifeboat_vm::check::agent::AgentCheck;
use lifeboat_vm::check::boot::BootCheck;
use lifeboat_vm::check::net::{HttpCheck, TcpCheck};
use lifeboat_vm::check::screenshot::ScreenshotCheck;
use lifeboat_vm::regex::Regex;
use serde::Deserialize;

use crate::model::{CheckResult, CheckStatus};
use crate::units::Dur;

/// Default time for the guest to boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time for a probe to succeed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// A regular expression compiled when the configuration is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

/// `type = "boot"`: a serial console line matching `pattern` within `timeout`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// Name in results (default `boot`).
    #[serde(default)]
    pub name: Option<String>,
    /// Pattern on the serial console, e.g. `"login:"`.
    pub pattern: Pattern,
    /// Longest boot (default 5m).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// `type = "screenshot"`: the screen, kept as PNG evidence, must not be blank.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenshotConfig {
    /// Name in results (default `screenshot`).
    #[serde(default)]
    pub name: Option<String>,
    /// Fewest distinct colours (default 2).
    #[serde(default)]
    pub min_colours: Option<usize>,
    /// Smallest share of non-background pixels, 0..1 (default 0.0005).
    #[serde(default)]
    pub min_fraction: Option<f64>,
}

/// `type = "tcp"`: a guest port accepts connections (through a forwarded port).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Name in results (default `tcp :PORT`).
    #[serde(default)]
    pub name: Option<String>,
    /// Guest port.
    pub port: u16,
    /// Banner the service must send first, e.g. `"^SSH-2\\.0-"`.
    #[serde(default)]
    pub banner: Option<Pattern>,
    /// Longest wait (default 2m).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

fn port_80() -> u16 {
    80
}
fn slash() -> String {
    "/".into()
}
fn status_200() -> u16 {
    200
}

/// `type = "http"`: a GET through a forwarded port answers the expected status (and body).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Name in results (default `http :PORT/PATH`).
    #[serde(default)]
    pub name: Option<String>,
    /// Guest port (default 80).
    #[serde(default = "port_80")]
    pub port: u16,
    /// Path (default `/`).
    #[serde(default = "slash")]
    pub path: String,
    /// `Host` header (default `localhost`).
    #[serde(default)]
    pub host: Option<String>,
    /// Expected status (default 200).
    #[serde(default = "status_200")]
    pub expect_status: u16,
    /// Pattern the body must match.
    #[serde(default)]
    pub body: Option<Pattern>,
    /// Longest wait for an answer (default 2m).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// `type = "guest-agent"`: the QEMU guest agent answers, and optionally runs a command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Name in results (default `guest-agent`).
    #[serde(default)]
    pub name: Option<String>,
    /// Command to run in the guest as an argument list (first: the program's absolute path).
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    /// Expected exit code (default 0).
    #[serde(default)]
    pub expect_exit: i32,
    /// Pattern stdout + stderr must match.
    #[serde(default)]
    pub output: Option<Pattern>,
    /// Longest wait (default 2m).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

impl BootConfig {
    /// The check for the VM machinery.
    pub fn check(&self) -> BootCheck {
        BootCheck {
            name: self.name.clone().unwrap_or_else(|| "boot".into()),
            pattern: self.pattern.0.clone(),
            timeout: self.timeout.map_or(BOOT_TIMEOUT, |d| d.0),
            cancel: None,
        }
    }
}

impl ScreenshotConfig {
    /// The check for the VM machinery.
    pub fn check(&self) -> ScreenshotCheck {
        let d = ScreenshotCheck::default();
        let name = self.name.clone().unwrap_or(d.name);
        let file_name = if name == "screenshot" {
            d.file_name
        } else {
            format!(
                "{}.png",
                name.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect::<String>()
            )
        };
        ScreenshotCheck {
            name,
            file_name,
            min_colours: self.min_colours.unwrap_or(d.min_colours),
            min_fraction: self.min_fraction.unwrap_or(d.min_fraction),
        }
    }
}

impl TcpConfig {
    /// The check for the VM machinery.
    pub fn check(&self) -> TcpCheck {
        TcpCheck {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("tcp :{}", self.port)),
            port: self.port,
            banner: self.banner.as_ref().map(|p| p.0.clone()),
            timeout: self.timeout.map_or(PROBE_TIMEOUT, |d| d.0),
        }
    }
}

impl HttpConfig {
    /// The check for the VM machinery.
    pub fn check(&self) -> HttpCheck {
        HttpCheck {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("http :{}{}", self.port, self.path)),
            port: self.port,
            path: self.path.clone(),
            host: self.host.clone(),
            expect_status: self.expect_status,
            body: self.body.as_ref().map(|p| p.0.clone()),
            timeout: self.timeout.map_or(PROBE_TIMEOUT, |d| d.0),
        }
    }
}

impl AgentConfig {
    /// The check for the VM machinery.
    pub fn check(&self) -> AgentCheck {
        AgentCheck {
            name: self.name.clone().unwrap_or_else(|| match &self.exec {
                Some(argv) => format!("guest-agent: {}", crate::check::vm::short(&argv.join(" "))),
                None => "guest-agent".into(),
            }),
            exec: self.exec.clone(),
            expect_exit: self.expect_exit,
            output: self.output.as_ref().map(|p| p.0.clone()),
            timeout: self.timeout.map_or(PROBE_TIMEOUT, |d| d.0),
        }
    }
}

fn short(s: &str) -> String {
    lifeboat_vm::check::clip(s, 40)
}

/// The engine's form of a VM check result.
pub fn to_result(r: VmCheckResult) -> CheckResult {
    let mut c = CheckResult::new(
        r.name,
        r.kind,
        match r.status {
            VmCheckStatus::Passed => CheckStatus::Passed,
            VmCheckStatus::Failed => CheckStatus::Failed,
            VmCheckStatus::Error => CheckStatus::Error,
        },
        r.expected,
        r.actual,
        r.message,
    );
    c.seconds = r.duration.as_secs_f64();
    c.evidence = r.evidence;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::CheckConfig;

    #[derive(Deserialize)]
    struct T {
        checks: Vec<CheckConfig>,
    }

    #[test]
    fn vm_checks_from_configuration() {
        let t: T = serde_json::from_value(serde_json::json!({"checks": [
            {"type": "boot", "pattern": "login:", "timeout": "90s"},
            {"type": "screenshot"},
            {"type": "http", "path": "/health", "body": "ok"},
            {"type": "tcp", "port": 22, "banner": "^SSH-2\\.0-"},
            {"type": "guest-agent", "exec": ["/bin/systemctl", "is-system-running"], "output": "running"},
        ]}))
        .unwrap();
        let names: Vec<String> = t
            .checks
            .iter()
            .map(|c| match c {
                CheckConfig::Boot(b) => {
                    assert_eq!(b.check().timeout, Duration::from_secs(90));
                    b.check().name
                }
                CheckConfig::Screenshot(s) => s.check().file_name,
                CheckConfig::Http(h) => {
                    assert_eq!((h.port, h.expect_status), (80, 200));
                    h.check().name
                }
                CheckConfig::Tcp(t) => t.check().name,
                CheckConfig::GuestAgent(a) => a.check().name,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "boot",
                "screenshot.png",
                "http :80/health",
                "tcp :22",
                "guest-agent: /bin/systemctl is-system-running"
            ]
        );
        let bad: Result<T, _> = serde_json::from_value(
            serde_json::json!({"checks": [{"type": "boot", "pattern": "("}]}),
        );
        let e = bad.err().unwrap().to_string();
        assert!(e.contains("invalid regular expression"), "{e}");
    }
}
