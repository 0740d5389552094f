//! A small synchronous client for QEMU's JSON line protocols: QMP (the machine monitor) and the guest agent
//! protocol (the same framing on another socket).
//!
//! Both speak one JSON object per line over a unix socket. QMP greets, must be switched to command mode with
//! `qmp_capabilities`, and interleaves asynchronous events (`{"event": ...}`) with replies, which are skipped
//! here. Every read has a timeout and every line a size bound, so a wedged QEMU or a hostile guest agent can
//! neither hang nor exhaust lifeboat.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Result, VmError};

/// Longest reply line accepted (a guest-exec-status with captured output can be large).
const MAX_LINE: u64 = 16 << 20;

/// Connects to a unix socket, also when its path is longer than the 108 bytes `sun_path` allows: the
/// folder is then opened and the socket reached through `/proc/self/fd/N/NAME`.
pub fn connect_unix(path: &Path) -> std::io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().len() < 100 {
        return UnixStream::connect(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixStream::connect(path);
    };
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    use std::os::fd::AsRawFd;
    let short = Path::new("/proc/self/fd")
        .join(fd.as_raw_fd().to_string())
        .join(name);
    UnixStream::connect(short)
}

/// One connection speaking QEMU's JSON line framing.
pub struct JsonLines {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    what: &'static str,
}

impl JsonLines {
    /// Wraps a connected stream; `what` names the peer in errors (`QMP`, `guest agent`).
    pub fn new(stream: UnixStream, what: &'static str) -> Result<JsonLines> {
        let writer = stream
            .try_clone()
            .map_err(|e| VmError::qmp(what, format!("cannot clone the socket: {e}")))?;
        Ok(JsonLines {
            reader: BufReader::new(stream),
            writer,
            what,
        })
    }

    /// Sends one object.
    pub fn send(&mut self, v: &Value) -> Result<()> {
        let mut line = v.to_string();
        line.push('\n');
        self.writer
            .set_write_timeout(Some(Duration::from_secs(10)))
            .and_then(|_| self.writer.write_all(line.as_bytes()))
            .map_err(|e| VmError::qmp(self.what, format!("cannot send {v}: {e}")))
    }

    /// Sends raw bytes (the guest agent's resynchronisation byte).
    pub fn send_raw(&mut self, b: &[u8]) -> Result<()> {
        self.writer
            .write_all(b)
            .map_err(|e| VmError::qmp(self.what, format!("cannot send: {e}")))
    }

    /// Reads one line, waiting at most until `deadline`. `Ok(None)` when the deadline passed first.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| VmError::qmp(self.what, e.to_string()))?;
            let limit = MAX_LINE.saturating_sub(buf.len() as u64);
            match (&mut self.reader).take(limit).read_until(b'\n', &mut buf) {
                Ok(0) if buf.is_empty() => {
                    return Err(VmError::qmp(self.what, "the connection was closed"));
                }
                Ok(_) if buf.ends_with(b"\n") => return Ok(Some(buf)),
                Ok(_) if buf.len() as u64 >= MAX_LINE => {
                    return Err(VmError::qmp(
                        self.what,
                        format!("a reply line is longer than {MAX_LINE} bytes"),
                    ));
                }
                Ok(0) => return Err(VmError::qmp(self.what, "the connection was closed")),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VmError::qmp(self.what, format!("read: {e}"))),
            }
        }
    }

    /// Reads objects until one that is not an event arrives. `Ok(None)` on timeout.
    pub fn read_reply(&mut self, deadline: Instant) -> Result<Option<Value>> {
        loop {
            let Some(line) = self.read_line(deadline)? else {
                return Ok(None);
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{fffd}');
            if text.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(text).map_err(|e| {
                VmError::qmp(
                    self.what,
                    format!("not JSON ({e}): {}", crate::check::clip(text, 200)),
                )
            })?;
            if v.get("event").is_some() {
                continue;
            }
            return Ok(Some(v));
        }
    }

    /// Executes `cmd` with `args` and returns its `return` value; a QMP `error` reply is an error.
    pub fn execute(&mut self, cmd: &str, args: Option<Value>, timeout: Duration) -> Result<Value> {
        let mut msg = json!({ "execute": cmd });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        self.send(&msg)?;
        let deadline = Instant::now() + timeout;
        match self.read_reply(deadline)? {
            None => Err(VmError::qmp(
                format!("{} {cmd}", self.what),
                format!("no reply within {timeout:?}"),
            )),
            Some(v) => reply_value(self.what, cmd, v),
        }
    }
}

/// Extracts `return` from a reply or turns `error` into an error.
pub fn reply_value(what: &str, cmd: &str, mut v: Value) -> Result<Value> {
    if let Some(r) = v.get_mut("return") {
        return Ok(r.take());
    }
    let desc = v
        .pointer("/error/desc")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::check::clip(&v.to_string(), 200));
    Err(VmError::qmp(format!("{what} {cmd}"), desc))
}

/// A QMP session with a running QEMU.
pub struct Qmp {
    lines: JsonLines,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and enters command mode.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let stream = connect_unix(socket)
            .map_err(|e| VmError::qmp("connect", format!("{}: {e}", socket.display())))?;
        let mut lines = JsonLines::new(stream, "QMP")?;
        let deadline = Instant::now() + timeout;
        match lines.read_reply(deadline)? {
            Some(v) if v.get("QMP").is_some() => {}
            Some(v) => {
                return Err(VmError::qmp(
                    "greeting",
                    crate::check::clip(&v.to_string(), 200),
                ));
            }
            None => return Err(VmError::qmp("greeting", "nothing within the timeout")),
        }
        let mut q = Qmp { lines };
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    /// Executes a command (10 s timeout).
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value> {
        self.lines.execute(cmd, args, Duration::from_secs(10))
    }

    /// `query-status`'s `status` (`running`, `paused`, `internal-error`, `guest-panicked`, `shutdown`...).
    pub fn status(&mut self) -> Result<String> {
        let v = self.execute("query-status", None)?;
        Ok(v.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }
}
