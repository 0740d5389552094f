//! The `guest-agent` check: the QEMU guest agent in the restored machine answers, and optionally runs a
//! command with the expected exit code and output.
//!
//! The agent listens on the virtio-serial port `org.qemu.guest_agent.0`, which QEMU exposes as a unix socket
//! in the run folder. Bytes written before the agent runs are queued or lost, so the session starts with
//! `guest-sync-delimited` (the reply is preceded by a 0xFF byte, and stale replies are skipped by their id),
//! repeated until the agent answers or the time limit passes: a guest without an agent is a clear "no guest
//! agent answered" failure, not a hang. Then `guest-ping`, `guest-info` for its version, and for a command
//! `guest-exec` with captured output, polled with `guest-exec-status` (protocol: QEMU's qga/qapi-schema.json).

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Value, json};

use super::boot::secs;
use super::{VmCheckResult, VmCheckStatus, clip, printable};
use crate::error::{Result, VmError};
use crate::machine::Vm;
use crate::qmp::{JsonLines, connect_unix};

/// Most command output kept (stdout and stderr each).
const MAX_OUTPUT: usize = 256 << 10;

/// What to ask the guest agent.
#[derive(Debug, Clone)]
pub struct AgentCheck {
    /// Check name.
    pub name: String,
    /// A command to run in the guest (argv; the first element is the program's path), or only a ping.
    pub exec: Option<Vec<String>>,
    /// Expected exit code of `exec`.
    pub expect_exit: i32,
    /// Pattern stdout + stderr must match.
    pub output: Option<Regex>,
    /// Time limit for the agent to answer and the command to finish.
    pub timeout: Duration,
}

fn sync(lines: &mut JsonLines, deadline: Instant) -> Result<bool> {
    let mut id: u64 = u64::from(std::process::id()) << 20 | 0x1b0a7;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        lines.send_raw(&[0xff])?;
        lines.send(&json!({"execute": "guest-sync-delimited", "arguments": {"id": id}}))?;
        let wait = (Instant::now() + Duration::from_secs(3)).min(deadline);
        while let Some(v) = lines.read_reply(wait)? {
            if v.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn exec(lines: &mut JsonLines, argv: &[String], deadline: Instant) -> Result<Value> {
    let (path, args) = argv
        .split_first()
        .ok_or_else(|| VmError::Spec("guest-agent exec is empty".into()))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let pid = lines
        .execute(
            "guest-exec",
            Some(json!({"path": path, "arg": args, "capture-output": true})),
            left.max(Duration::from_millis(100)),
        )?
        .get("pid")
        .and_then(Value::as_i64)
        .ok_or_else(|| VmError::qmp("guest agent guest-exec", "no pid in the reply"))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(VmError::qmp(
                "guest agent guest-exec-status",
                format!("the command (guest pid {pid}) did not finish in time"),
            ));
        }
        let st = lines.execute(
            "guest-exec-status",
            Some(json!({"pid": pid})),
            left.max(Duration::from_millis(100)),
        )?;
        if st.get("exited").and_then(Value::as_bool) == Some(true) {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Decodes standard base64 (padding optional, whitespace ignored); `None` on invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn output(st: &Value, key: &str) -> Vec<u8> {
    let mut b = st
        .get(key)
        .and_then(Value::as_str)
        .and_then(base64_decode)
        .unwrap_or_default();
    b.truncate(MAX_OUTPUT);
    b
}

/// Talks to the guest agent. Evidence: the command's output, when a command ran.
pub fn run(vm: &Vm, check: &AgentCheck) -> VmCheckResult {
    let t = Instant::now();
    let expected = match &check.exec {
        None => format!("the guest agent answers within {}", secs(check.timeout)),
        Some(argv) => {
            let mut e = format!(
                "the guest agent runs `{}` with exit code {}",
                clip(&argv.join(" "), 60),
                check.expect_exit
            );
            if let Some(o) = &check.output {
                e.push_str(&format!(" and output matching /{}/", o.as_str()));
            }
            e
        }
    };
    let r = VmCheckResult::new(check.name.clone(), "guest-agent", expected, t);
    let Some(socket) = vm.agent_socket() else {
        return r.done(
            VmCheckStatus::Error,
            "the VM has no guest agent channel",
            "the VM was started without the org.qemu.guest_agent.0 port (guest_agent = false)",
            t,
        );
    };
    let deadline = t + check.timeout;
    let stream = loop {
        match connect_unix(&socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline || !vm.is_running() => {
                return r.done(
                    VmCheckStatus::Error,
                    format!("cannot connect to {}: {e}", socket.display()),
                    "QEMU's guest agent socket is not there",
                    t,
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut lines = match JsonLines::new(stream, "guest agent") {
        Ok(l) => l,
        Err(e) => return r.done(VmCheckStatus::Error, "no session", e.to_string(), t),
    };
    match sync(&mut lines, deadline) {
        Ok(true) => {}
        Ok(false) => {
            return r.done(
                VmCheckStatus::Failed,
                format!("no guest agent answered within {}", secs(check.timeout)),
                "the guest has no agent, or it did not start: install and enable qemu-guest-agent in the \
                 machine, or drop this check",
                t,
            );
        }
        // The socket is QEMU's own: what breaks the session is the guest (garbage on its channel) or its end.
        Err(e) => {
            return r.done(
                VmCheckStatus::Failed,
                "the guest agent channel broke",
                e.to_string(),
                t,
            );
        }
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    if let Err(e) = lines.execute("guest-ping", None, left) {
        return r.done(VmCheckStatus::Failed, "guest-ping failed", e.to_string(), t);
    }
    let version = lines
        .execute("guest-info", None, Duration::from_secs(5))
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "unknown version".into());
    let Some(argv) = &check.exec else {
        return r.done(
            VmCheckStatus::Passed,
            format!("guest agent {version} answered guest-ping"),
            "",
            t,
        );
    };
    let st = match exec(&mut lines, argv, deadline) {
        Ok(st) => st,
        Err(VmError::Qmp { what, detail })
            if what.contains("guest-exec") && !detail.contains("in time") =>
        {
            return r.done(
                VmCheckStatus::Failed,
                format!("the agent refused: {detail}"),
                "the command could not be started in the guest (missing program, or guest-exec disabled)",
                t,
            );
        }
        Err(e) => {
            return r.done(
                VmCheckStatus::Failed,
                "the command did not complete",
                e.to_string(),
                t,
            );
        }
    };
    let code = st.get("exitcode").and_then(Value::as_i64);
    let signal = st.get("signal").and_then(Value::as_i64);
    let (out, err) = (output(&st, "out-data"), output(&st, "err-data"));
    let mut both = out.clone();
    both.extend_from_slice(&err);
    let evidence = vm.spec().evidence_dir.join(format!(
        "guest-exec-{}.txt",
        check
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    ));
    let mut file = format!("$ {}\n", argv.join(" ")).into_bytes();
    file.extend_from_slice(&both);
    let _ = std::fs::write(&evidence, &file);
    let text = String::from_utf8_lossy(&both);
    let code_ok = code == Some(i64::from(check.expect_exit));
    let out_ok = check.output.as_ref().is_none_or(|re| re.is_match(&text));
    let actual = match (code, signal) {
        (Some(c), _) => format!("exit code {c}, output \"{}\"", printable(&both, 100)),
        (None, Some(s)) => format!("killed by signal {s}, output \"{}\"", printable(&both, 100)),
        _ => format!("no exit code, output \"{}\"", printable(&both, 100)),
    };
    let message = match (code_ok, out_ok) {
        (true, true) => String::new(),
        (false, _) => format!("expected exit code {}", check.expect_exit),
        (true, false) => "the output does not match the expected pattern".into(),
    };
    let mut r = r.done(
        if code_ok && out_ok {
            VmCheckStatus::Passed
        } else {
            VmCheckStatus::Failed
        },
        actual,
        message,
        t,
    );
    r.evidence.push(evidence);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmp::reply_value;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8K").unwrap(), b"hello\n");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn reply_errors_are_errors() {
        let v = json!({"error": {"class": "GenericError", "desc": "Guest agent command failed"}});
        let e = reply_value("guest agent", "guest-exec", v).unwrap_err();
        assert!(e.to_string().contains("Guest agent command failed"), "{e}");
    }
}
