//! A running scratch VM: the QEMU process, its QMP session, its hard timeout and its teardown.
//!
//! QEMU runs in its own process group (so one `kill(-pgid)` ends it and anything it started, e.g. a bridge
//! helper), whose id is handed to the caller before anything else happens so the run's lease can name it and
//! a sweep after a crash of lifeboat can kill it. A watchdog thread kills the group when the hard timeout
//! passes, whatever the checks are doing. Teardown asks QEMU to `quit` over QMP, waits a grace period, then
//! kills the group; [`Drop`] does the same without the politeness, so no code path leaves QEMU running.
//!
//! The child is only ever reaped under the same lock the watchdog takes before it kills, so the watchdog can
//! never signal a process group whose id was recycled after QEMU exited.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accel::{self, AccelChoice};
use crate::error::{Result, VmError};
use crate::qmp::Qmp;
use crate::spec::{AGENT_SOCKET, Firmware, Network, QMP_SOCKET, UEFI_VARS, VmSpec};

/// QEMU's standard error, kept in the evidence folder.
pub const STDERR_LOG: &str = "qemu-stderr.log";
/// The command line, kept in the evidence folder.
pub const COMMAND_FILE: &str = "qemu-command.txt";
/// How long QEMU gets to open its QMP socket.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Told when a process group starts (`true`) and ends (`false`); the engine records it in the run's lease.
pub type GroupHook<'a> = &'a mut dyn FnMut(i32, bool) -> std::io::Result<()>;

struct Proc {
    child: Child,
    exit: Option<ExitStatus>,
}

impl Proc {
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.exit = Some(st);
        }
        self.exit
    }
}

fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Why the watchdog killed QEMU.
const KILLED_TIMEOUT: u8 = 1;
const KILLED_SERIAL: u8 = 2;
const KILLED_DISK: u8 = 3;

/// What the watchdog enforces besides the hard deadline.
struct Limits {
    /// The serial log and its most bytes.
    serial: (PathBuf, u64),
    /// The run folder (where the snapshot overlay grows) and the least free space on its file system.
    free: (PathBuf, u64),
}

/// Free bytes for unprivileged users on the file system of `dir` (`None` when it cannot be asked).
fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Kills the process group at the hard deadline, when the serial log passes its limit (a guest flooding
/// its console would otherwise fill the evidence disk: QEMU's UART does not throttle), or when the guest's
/// writes leave less than the reserve free on the scratch file system, unless cancelled first.
struct Watchdog {
    cancel: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn start(
        proc_: Arc<Mutex<Proc>>,
        pgid: i32,
        limit: Duration,
        limits: Limits,
        killed: Arc<AtomicU8>,
    ) -> std::io::Result<Watchdog> {
        let cancel = Arc::new((Mutex::new(false), Condvar::new()));
        let c = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("lifeboat-vm-watchdog".into())
            .spawn(move || {
                let deadline = Instant::now() + limit;
                let (lock, cv) = &*c;
                let mut stop = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !*stop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (serial, max) = &limits.serial;
                    let flooded = fs::metadata(serial).is_ok_and(|m| m.len() > *max);
                    let (dir, reserve) = &limits.free;
                    let full = free_bytes(dir).is_some_and(|f| f < *reserve);
                    if left.is_zero() || flooded || full {
                        let mut p = proc_.lock().unwrap_or_else(|p| p.into_inner());
                        if p.poll().is_none() {
                            let why = if flooded {
                                KILLED_SERIAL
                            } else if full {
                                KILLED_DISK
                            } else {
                                KILLED_TIMEOUT
                            };
                            tracing::warn!(
                                pgid,
                                flooded,
                                full,
                                "scratch VM hit a hard limit; killing it"
                            );
                            killed.store(why, Ordering::SeqCst);
                            kill_group(pgid);
                        }
                        return;
                    }
                    stop = cv
                        .wait_timeout(stop, left.min(Duration::from_secs(1)))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            })?;
        Ok(Watchdog {
            cancel,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        {
            let (lock, cv) = &*self.cancel;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TeardownReport {
    /// The process group that was ended.
    pub pgid: i32,
    /// `quit` (QEMU obeyed QMP quit), `killed` (SIGKILL after the grace period), `exited` (it had already
    /// stopped), `timeout` (the hard timeout killed it), `serial-limit` (killed for flooding its console),
    /// `disk-limit` (killed when the scratch file system ran low).
    pub how: &'static str,
    /// Time teardown took.
    pub seconds: f64,
    /// QEMU's exit status, as text.
    pub status: String,
}

/// A running scratch VM. Dropping it kills QEMU.
pub struct Vm {
    spec: VmSpec,
    proc_: Arc<Mutex<Proc>>,
    pgid: i32,
    qmp: Option<Qmp>,
    started: Instant,
    accel: AccelChoice,
    forwards: Vec<(u16, u16)>,
    watchdog: Watchdog,
    killed: Arc<AtomicU8>,
    reaped: bool,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| VmError::io("cannot resolve", p, e))
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Bound together so they differ, released just before QEMU binds them (a start that loses the race is
    // retried with new ports).
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| VmError::io("cannot reserve a localhost port for", "127.0.0.1", e))?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| VmError::io("cannot read a reserved port of", "127.0.0.1", e))
        })
        .collect()
}

fn tail(path: &Path, max: usize) -> String {
    let b = fs::read(path).unwrap_or_default();
    let start = b.len().saturating_sub(max);
    String::from_utf8_lossy(&b[start..])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Vm {
    /// Starts QEMU for `spec`: chooses the accelerator (probing KVM once per process when `auto`), spawns QEMU
    /// in a new process group, tells `hook` its id, arms the hard timeout and connects QMP. Errors are
    /// lifeboat's (QEMU missing, refused its options, no QMP): the guest has not been judged yet.
    pub fn start(spec: &VmSpec, hook: GroupHook<'_>) -> Result<Vm> {
        spec.validate()?;
        let mut spec = spec.clone();
        spec.run_dir = absolute(&spec.run_dir)?;
        spec.evidence_dir = absolute(&spec.evidence_dir)?;
        for d in &mut spec.disks {
            d.path = absolute(&d.path)?;
            if !d.path.is_file() {
                return Err(VmError::Spec(format!(
                    "disk image {} does not exist",
                    d.path.display()
                )));
            }
            if d.format == crate::spec::DiskFormat::Qcow2 {
                crate::spec::check_qcow2(&d.path)?;
            }
        }
        for dir in [&spec.run_dir, &spec.evidence_dir] {
            fs::create_dir_all(dir).map_err(|e| VmError::io("cannot create", dir.clone(), e))?;
        }
        let choice = accel::choose(&spec.qemu, spec.accel, &spec.run_dir, hook)?;
        if let Firmware::Uefi {
            vars: Some(vars),
            vars_size,
            ..
        } = &spec.firmware
        {
            let to = spec.run_dir.join(UEFI_VARS);
            copy_prefix(vars, &to, vars_size.unwrap_or(u64::MAX))
                .map_err(|e| VmError::io("cannot copy the UEFI variables", vars, e))?;
        }
        let scratch_full = || VmError::ScratchFull {
            dir: spec.run_dir.clone(),
            free: free_bytes(&spec.run_dir).map_or_else(|| "?".into(), crate::check::bytes),
            reserve: crate::check::bytes(spec.min_free),
        };
        if free_bytes(&spec.run_dir).is_some_and(|f| f < spec.min_free) {
            return Err(scratch_full());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn(&spec, &choice, hook) {
                Err(VmError::StartFailed { .. })
                    if free_bytes(&spec.run_dir).is_some_and(|f| f < spec.min_free) =>
                {
                    return Err(scratch_full());
                }
                Err(VmError::StartFailed { stderr, .. })
                    if attempt < 4 && stderr.contains("host forwarding rule") =>
                {
                    tracing::debug!(%stderr, "forwarded port was taken; retrying with new ports");
                }
                other => return other,
            }
        }
    }

    fn spawn(spec: &VmSpec, choice: &AccelChoice, hook: GroupHook<'_>) -> Result<Vm> {
        let forwards: Vec<(u16, u16)> = match &spec.network {
            Network::User { forwards } => forwards
                .iter()
                .copied()
                .zip(free_ports(forwards.len())?)
                .collect(),
            _ => Vec::new(),
        };
        let args = spec.args(choice.used, &forwards)?;
        for s in [QMP_SOCKET, AGENT_SOCKET] {
            let _ = fs::remove_file(spec.run_dir.join(s));
        }
        let stderr_path = spec.evidence_dir.join(STDERR_LOG);
        let stderr = fs::File::create(&stderr_path)
            .map_err(|e| VmError::io("cannot create", &stderr_path, e))?;
        let mut line = shell_quote(&spec.qemu.path.to_string_lossy());
        for a in &args {
            line.push(' ');
            line.push_str(&shell_quote(&a.to_string_lossy()));
        }
        let cmd_file = spec.evidence_dir.join(COMMAND_FILE);
        fs::write(
            &cmd_file,
            format!(
                "# accelerator: {}\n# cd {}\n{line}\n",
                choice.reason,
                spec.run_dir.display()
            ),
        )
        .map_err(|e| VmError::io("cannot write", &cmd_file, e))?;

        let started = Instant::now();
        let child = Command::new(&spec.qemu.path)
            .args(&args)
            .current_dir(&spec.run_dir)
            // snapshot=on puts the guest's writes in a temporary file under TMPDIR: keep it in the run folder.
            .env("TMPDIR", &spec.run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| VmError::Spawn {
                path: spec.qemu.path.clone(),
                source: e,
            })?;
        let pgid = child.id() as i32;
        let proc_ = Arc::new(Mutex::new(Proc { child, exit: None }));
        let killed = Arc::new(AtomicU8::new(0));
        let watchdog = match Watchdog::start(
            proc_.clone(),
            pgid,
            spec.hard_timeout,
            Limits {
                serial: (spec.serial_log(), spec.serial_limit),
                free: (spec.run_dir.clone(), spec.min_free),
            },
            killed.clone(),
        ) {
            Ok(w) => w,
            Err(e) => {
                // No hard timeout means no start.
                let mut p = proc_.lock().unwrap_or_else(|p| p.into_inner());
                kill_group(pgid);
                let _ = p.child.wait();
                return Err(VmError::io(
                    "cannot start the watchdog thread for",
                    &spec.qemu.path,
                    e,
                ));
            }
        };
        let mut vm = Vm {
            spec: spec.clone(),
            proc_,
            pgid,
            qmp: None,
            started,
            accel: choice.clone(),
            forwards,
            watchdog,
            killed,
            reaped: false,
        };
        if let Err(e) = hook(pgid, true) {
            vm.kill_now();
            let _ = hook(pgid, false);
            return Err(VmError::Register { pgid, source: e });
        }
        tracing::info!(pgid, accel = vm.accel.used.as_str(), vm = %spec.name, "scratch VM started");
        let socket = spec.run_dir.join(QMP_SOCKET);
        loop {
            if let Some(st) = vm.exit_status() {
                let _ = vm.finish(hook);
                return Err(VmError::StartFailed {
                    status: st.to_string(),
                    stderr: tail(&stderr_path, 2000),
                });
            }
            if socket.exists() {
                match Qmp::connect(&socket, Duration::from_secs(10)) {
                    Ok(q) => {
                        vm.qmp = Some(q);
                        return Ok(vm);
                    }
                    Err(e) if started.elapsed() > START_LIMIT => {
                        let _ = vm.finish(hook);
                        return Err(e);
                    }
                    Err(_) => {}
                }
            } else if started.elapsed() > START_LIMIT {
                let _ = vm.finish(hook);
                return Err(VmError::qmp(
                    "connect",
                    format!(
                        "QEMU did not open {} within {START_LIMIT:?}",
                        socket.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process group id (also QEMU's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The description the VM was started from (paths made absolute).
    pub fn spec(&self) -> &VmSpec {
        &self.spec
    }

    /// The accelerator used and why.
    pub fn accel(&self) -> &AccelChoice {
        &self.accel
    }

    /// When QEMU was spawned (boot time is measured from here).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The serial console log.
    pub fn serial_log(&self) -> PathBuf {
        self.spec.serial_log()
    }

    /// The guest agent socket, when the VM has the channel.
    pub fn agent_socket(&self) -> Option<PathBuf> {
        self.spec
            .guest_agent
            .then(|| self.spec.run_dir.join(AGENT_SOCKET))
    }

    /// (guest port, localhost port) pairs of a user-mode network.
    pub fn forwards(&self) -> &[(u16, u16)] {
        &self.forwards
    }

    /// The localhost port forwarded to `guest_port`.
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
    }

    /// QEMU's exit status once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.proc_.lock().unwrap_or_else(|p| p.into_inner()).poll()
    }

    /// Whether QEMU is still running.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Whether the hard timeout killed QEMU.
    pub fn timed_out(&self) -> bool {
        self.killed.load(Ordering::SeqCst) == KILLED_TIMEOUT
    }

    /// Whether QEMU was killed because the guest wrote more than [`VmSpec::serial_limit`] to its serial
    /// console.
    pub fn serial_flooded(&self) -> bool {
        self.killed.load(Ordering::SeqCst) == KILLED_SERIAL
    }

    /// Whether QEMU was killed because the scratch file system had less than [`VmSpec::min_free`] free.
    pub fn scratch_full(&self) -> bool {
        self.killed.load(Ordering::SeqCst) == KILLED_DISK
    }

    /// The end of QEMU's standard error (for messages).
    pub fn stderr_tail(&self) -> String {
        tail(&self.spec.evidence_dir.join(STDERR_LOG), 1500)
    }

    /// The QMP session (reconnected when an earlier exchange broke it).
    pub fn qmp(&mut self) -> Result<&mut Qmp> {
        if self.qmp.is_none() {
            if !self.is_running() {
                return Err(VmError::qmp("connect", "QEMU is no longer running"));
            }
            self.qmp = Some(Qmp::connect(
                &self.spec.run_dir.join(QMP_SOCKET),
                Duration::from_secs(5),
            )?);
        }
        self.qmp
            .as_mut()
            .ok_or_else(|| VmError::qmp("connect", "no session"))
    }

    /// Runs a QMP command; a broken session is dropped so the next call reconnects.
    pub fn qmp_execute(
        &mut self,
        cmd: &str,
        args: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let r = self.qmp()?.execute(cmd, args);
        if let Err(VmError::Qmp { detail, .. }) = &r
            && (detail.contains("closed")
                || detail.contains("no reply")
                || detail.contains("read:"))
        {
            self.qmp = None;
        }
        r
    }

    /// `query-status` (`running`, `internal-error`, `guest-panicked`, ...), or `exited` when QEMU is gone.
    pub fn status(&mut self) -> String {
        if !self.is_running() {
            return "exited".into();
        }
        match self.qmp_execute("query-status", None) {
            Ok(v) => v
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("unknown")
                .to_string(),
            Err(_) if !self.is_running() => "exited".into(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// Tells the process-wide KVM cache that KVM failed after all (QEMU reported an internal error).
    pub fn note_kvm_failure(&self, why: &str) {
        accel::mark_kvm_broken(&self.spec.qemu.path, why);
    }

    fn kill_now(&mut self) {
        self.watchdog.stop();
        let mut p = self.proc_.lock().unwrap_or_else(|p| p.into_inner());
        if p.poll().is_none() {
            kill_group(self.pgid);
        }
        if p.exit.is_none()
            && let Ok(st) = p.child.wait()
        {
            p.exit = Some(st);
        }
        self.reaped = true;
    }

    /// Stops QEMU: QMP `quit`, up to the grace period to exit, then SIGKILL to the whole process group. The
    /// hook is told the group ended. Always succeeds in stopping QEMU.
    pub fn teardown(mut self, hook: GroupHook<'_>) -> TeardownReport {
        self.finish(hook)
    }

    fn finish(&mut self, hook: GroupHook<'_>) -> TeardownReport {
        let t = Instant::now();
        self.watchdog.stop();
        let how = if self.timed_out() {
            "timeout"
        } else if self.serial_flooded() {
            "serial-limit"
        } else if self.scratch_full() {
            "disk-limit"
        } else if !self.is_running() {
            "exited"
        } else {
            if let Some(q) = self.qmp.as_mut() {
                let _ = q.execute("quit", None);
            }
            let deadline = Instant::now() + self.spec.grace;
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.is_running() { "killed" } else { "quit" }
        };
        self.qmp = None;
        self.kill_now();
        let status = self
            .proc_
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .exit
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        let _ = hook(self.pgid, false);
        for s in [QMP_SOCKET, AGENT_SOCKET] {
            let _ = fs::remove_file(self.spec.run_dir.join(s));
        }
        tracing::info!(pgid = self.pgid, how, "scratch VM stopped");
        TeardownReport {
            pgid: self.pgid,
            how,
            seconds: t.elapsed().as_secs_f64(),
            status,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_now();
        }
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Copies at most `len` bytes of `from` to a new file `to` (the guest writes the copy, never the original).
fn copy_prefix(from: &Path, to: &Path, len: u64) -> std::io::Result<u64> {
    use std::io::Read;
    let mut src = fs::File::open(from)?.take(len);
    let mut dst = fs::File::create(to)?;
    std::io::copy(&mut src, &mut dst)
}
