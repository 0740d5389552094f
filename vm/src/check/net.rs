//! The `tcp` and `http` checks: the guest's services answer through the ports forwarded to localhost.
//!
//! QEMU's user-mode network accepts a connection on the forwarded host port before it knows whether the guest
//! listens: when the guest refuses, the host side is closed right after the connect. So a TCP port counts as
//! open only when the connection survives a short wait (or delivers data, or the expected banner). Both checks
//! retry connection-level failures until their time limit (a service may start seconds after the boot marker);
//! a complete HTTP answer is final, whatever its status.
//!
//! The HTTP client is deliberately tiny (one `GET`, `Connection: close`, `Content-Length`, chunked or read to
//! the end, bounded at 1 MiB): a probe, not a browser.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use regex::Regex;

use super::boot::secs;
use super::{VmCheckResult, VmCheckStatus, clip, printable};
use crate::machine::Vm;

/// Largest HTTP response read.
const MAX_RESPONSE: usize = 1 << 20;
/// How long a connection must stay open to count as accepted by the guest.
const SETTLE: Duration = Duration::from_millis(1500);

/// A TCP port that must accept connections.
#[derive(Debug, Clone)]
pub struct TcpCheck {
    /// Check name.
    pub name: String,
    /// Guest port (must be forwarded).
    pub port: u16,
    /// Optional banner the service must send first (e.g. `^SSH-2\.0-`).
    pub banner: Option<Regex>,
    /// Longest time to keep trying.
    pub timeout: Duration,
}

/// An HTTP GET whose status (and optionally body) must match.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// Check name.
    pub name: String,
    /// Guest port (must be forwarded).
    pub port: u16,
    /// Request path, e.g. `/health`.
    pub path: String,
    /// `Host` header (default `localhost`).
    pub host: Option<String>,
    /// Expected status.
    pub expect_status: u16,
    /// Optional pattern the body must match.
    pub body: Option<Regex>,
    /// Longest time to keep trying.
    pub timeout: Duration,
}

fn no_forward(r: VmCheckResult, vm: &Vm, port: u16, t: Instant) -> VmCheckResult {
    let have: Vec<String> = vm.forwards().iter().map(|(g, _)| g.to_string()).collect();
    r.done(
        VmCheckStatus::Error,
        format!("guest port {port} is not forwarded"),
        format!(
            "add {port} to the drill's vm.forwards (network = \"user\"); forwarded now: [{}]",
            have.join(", ")
        ),
        t,
    )
}

fn connect(port: u16, left: Duration) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(
        &addr,
        left.clamp(Duration::from_millis(10), Duration::from_secs(5)),
    )
}

/// Probes a TCP port.
pub fn tcp(vm: &Vm, check: &TcpCheck) -> VmCheckResult {
    let t = Instant::now();
    let expected = match &check.banner {
        Some(b) => format!(
            "guest port {} accepts a connection and sends /{}/ within {}",
            check.port,
            b.as_str(),
            secs(check.timeout)
        ),
        None => format!(
            "guest port {} accepts a connection within {}",
            check.port,
            secs(check.timeout)
        ),
    };
    let r = VmCheckResult::new(check.name.clone(), "tcp", expected, t);
    let Some(hp) = vm.host_port(check.port) else {
        return no_forward(r, vm, check.port, t);
    };
    let deadline = t + check.timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if !vm.is_running() {
            return r.done(
                VmCheckStatus::Failed,
                "the VM is no longer running",
                "QEMU exited before the port answered",
                t,
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match connect(hp, left) {
            Err(e) => last = format!("connect: {e}"),
            Ok(mut s) => {
                let mut got = Vec::new();
                let wait_until = match &check.banner {
                    Some(_) => deadline,
                    None => (Instant::now() + SETTLE).min(deadline),
                };
                let outcome = loop {
                    let left = wait_until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break if check.banner.is_none() {
                            Some(true)
                        } else {
                            None
                        };
                    }
                    let _ = s.set_read_timeout(Some(left));
                    let mut buf = [0u8; 1024];
                    match s.read(&mut buf) {
                        Ok(0) => break None,
                        Ok(n) => {
                            got.extend_from_slice(&buf[..n]);
                            match &check.banner {
                                None => break Some(true),
                                Some(re) if re.is_match(&String::from_utf8_lossy(&got)) => {
                                    break Some(true);
                                }
                                Some(_) if got.len() > 64 << 10 => break Some(false),
                                Some(_) => {}
                            }
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break None,
                    }
                };
                let _ = s.shutdown(Shutdown::Both);
                match outcome {
                    Some(true) => {
                        let actual = if got.is_empty() {
                            format!(
                                "connection accepted (localhost:{hp} → guest:{})",
                                check.port
                            )
                        } else {
                            format!("connection accepted, sent \"{}\"", printable(&got, 120))
                        };
                        return r.done(VmCheckStatus::Passed, actual, "", t);
                    }
                    Some(false) => {
                        return r.done(
                            VmCheckStatus::Failed,
                            format!("sent \"{}\"", printable(&got, 160)),
                            "the service answered, but not with the expected banner",
                            t,
                        );
                    }
                    None if got.is_empty() => {
                        last = "the guest closed or refused the connection".into();
                    }
                    None => last = format!("sent \"{}\" and closed", printable(&got, 160)),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    r.done(
        VmCheckStatus::Failed,
        last,
        format!(
            "nothing accepted connections on guest port {} within {}: the service did not start",
            check.port,
            secs(check.timeout)
        ),
        t,
    )
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header lines.
    pub headers: Vec<(String, String)>,
    /// Body (decoded from chunked transfer encoding).
    pub body: Vec<u8>,
}

/// Parses a complete HTTP/1.x response (read until the connection closed). Never panics on bad bytes.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "no end of the response head".to_string())?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP/1 status line: {}",
            clip(status_line, 80)
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("bad status line: {}", clip(status_line, 80)))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let rest = &raw[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        reason,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body: no chunk size line")?;
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunked body: bad chunk size {:?}", clip(size_text, 20)))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = b.get(..size).ok_or("chunked body: truncated chunk")?;
        out.extend_from_slice(chunk);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

fn get(port: u16, check: &HttpCheck, deadline: Instant) -> Result<Vec<u8>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut s = connect(port, left).map_err(|e| format!("connect: {e}"))?;
    let host = check.host.as_deref().unwrap_or("localhost");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lifeboat-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.path
    );
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete response ({} bytes so far)", raw.len()));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() >= MAX_RESPONSE {
                    raw.truncate(MAX_RESPONSE);
                    return Ok(raw);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if !raw.is_empty() => {
                tracing::debug!("HTTP probe read ended with {e} after {} bytes", raw.len());
                return Ok(raw);
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Probes an HTTP endpoint. Evidence: the response (head and up to 64 KiB of body) in the evidence folder.
pub fn http(vm: &Vm, check: &HttpCheck) -> VmCheckResult {
    let t = Instant::now();
    let mut expected = format!(
        "GET {} on guest port {} answers {}",
        check.path, check.port, check.expect_status
    );
    if let Some(b) = &check.body {
        expected.push_str(&format!(" with a body matching /{}/", b.as_str()));
    }
    let r = VmCheckResult::new(check.name.clone(), "http", expected, t);
    if !check.path.starts_with('/') || check.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return r.done(
            VmCheckStatus::Error,
            format!("path {:?}", check.path),
            "the request path must start with / and contain no spaces or control characters",
            t,
        );
    }
    let Some(hp) = vm.host_port(check.port) else {
        return no_forward(r, vm, check.port, t);
    };
    let deadline = t + check.timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if !vm.is_running() {
            return r.done(
                VmCheckStatus::Failed,
                "the VM is no longer running",
                "QEMU exited before the service answered",
                t,
            );
        }
        match get(hp, check, deadline) {
            Ok(raw) if raw.is_empty() => {
                last = "the guest closed the connection without answering".into()
            }
            Ok(raw) => {
                let evidence = vm.spec().evidence_dir.join(format!(
                    "http-{}.txt",
                    check
                        .name
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect::<String>()
                ));
                let _ = std::fs::write(&evidence, &raw[..raw.len().min(64 << 10)]);
                let mut r = match parse_response(&raw) {
                    Err(e) => r.done(
                        VmCheckStatus::Failed,
                        format!(
                            "not an HTTP response: {e}; got \"{}\"",
                            printable(&raw, 120)
                        ),
                        "something answered on the port, but not HTTP",
                        t,
                    ),
                    Ok(resp) => {
                        let status_ok = resp.status == check.expect_status;
                        let body_text = String::from_utf8_lossy(&resp.body);
                        let body_ok = check.body.as_ref().is_none_or(|re| re.is_match(&body_text));
                        let actual = format!(
                            "{} {}, {} byte body \"{}\"",
                            resp.status,
                            resp.reason,
                            resp.body.len(),
                            printable(&resp.body, 80)
                        );
                        let message = match (status_ok, body_ok) {
                            (true, true) => String::new(),
                            (false, _) => format!(
                                "the service answered {} instead of {}",
                                resp.status, check.expect_status
                            ),
                            (true, false) => "the body does not match the expected pattern".into(),
                        };
                        r.done(
                            if status_ok && body_ok {
                                VmCheckStatus::Passed
                            } else {
                                VmCheckStatus::Failed
                            },
                            actual,
                            message,
                            t,
                        )
                    }
                };
                r.evidence.push(evidence);
                return r;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    r.done(
        VmCheckStatus::Failed,
        last,
        format!(
            "no HTTP answer on guest port {} within {}: the service did not start",
            check.port,
            secs(check.timeout)
        ),
        t,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), &r.body[..]),
            (200, "OK", &b"hello"[..])
        );
        let r = parse_response(
            b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfail\r\n3;x=y\r\ned!\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"failed!"[..]));
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nno").unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"no"[..]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 20\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
