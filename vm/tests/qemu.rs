//! The VM machinery against real QEMU (TCG) booting the fixture image of `fixtures/vm/build-image.sh`: a
//! busybox guest whose init prints `LIFEBOAT-GUEST-READY nics: ...` on the serial console, serves
//! `/index.html` (200) and `/cgi-bin/fail` (500) on port 80 and runs qemu-ga when it has the channel.
//!
//! QEMU must be installed (`bash scripts/test` installs it): these tests never skip. The boots are serialised
//! (two cores; boot times stay meaningful).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use lifeboat_vm::check::agent::{self, AgentCheck};
use lifeboat_vm::check::boot::{self, BootCheck};
use lifeboat_vm::check::net::{self, HttpCheck, TcpCheck};
use lifeboat_vm::check::screenshot::{self, ScreenshotCheck};
use lifeboat_vm::check::{VmCheckResult, VmCheckStatus};
use lifeboat_vm::{Accel, Bus, Disk, DiskFormat, Network, Qemu, UsedAccel, Vm, VmError, VmSpec};
use regex::Regex;

const MARKER: &str = "LIFEBOAT-GUEST-READY";

fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The fixture image, built once (cached across runs in target/vm-fixture).
fn image() -> PathBuf {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let out = workspace().join("target/vm-fixture");
        let st = std::process::Command::new("bash")
            .arg(workspace().join("fixtures/vm/build-image.sh"))
            .arg(&out)
            .status()
            .expect("run build-image.sh");
        assert!(st.success(), "fixtures/vm/build-image.sh failed");
        out.join("disk.img")
    })
    .clone()
}

fn qemu() -> Qemu {
    Qemu::find(None, &[])
        .expect("QEMU must be installed for these tests (bash scripts/test installs it)")
}

struct Dirs {
    _tmp: tempfile::TempDir,
    run: PathBuf,
    evidence: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let evidence = tmp.path().join("evidence");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&evidence).unwrap();
    Dirs {
        _tmp: tmp,
        run,
        evidence,
    }
}

fn spec(d: &Dirs, disk: &Path) -> VmSpec {
    let mut s = VmSpec::new("test vm", qemu(), &d.run, &d.evidence);
    s.accel = Accel::Tcg;
    s.memory_mib = 256;
    s.disks.push(Disk {
        name: "scsi0".into(),
        path: disk.to_path_buf(),
        format: DiskFormat::Raw,
        bus: Bus::Scsi,
    });
    s
}

fn boot_check(timeout: u64) -> BootCheck {
    BootCheck::new(Regex::new(MARKER).unwrap(), Duration::from_secs(timeout))
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/PID; count it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn assert_status(r: &VmCheckResult, want: VmCheckStatus) {
    assert_eq!(r.status, want, "{}: expected {:?}: {r:#?}", r.name, want);
}

/// Hook recording what the engine would put in the lease.
#[derive(Default)]
struct Groups(Vec<(i32, bool)>);

impl Groups {
    fn hook(&mut self) -> impl FnMut(i32, bool) -> std::io::Result<()> + '_ {
        |g, started| {
            self.0.push((g, started));
            Ok(())
        }
    }
}

fn png_pixels(png: &[u8]) -> (u32, u32, Vec<u8>) {
    use std::io::Read;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (mut pos, mut w, mut h, mut z) = (8usize, 0, 0, Vec::new());
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(&data[8..10], &[8, 2], "8-bit RGB");
            }
            b"IDAT" => z.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&z[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), (h * (w * 3 + 1)) as usize);
    (w, h, raw)
}

#[test]
fn boots_answers_probes_and_shows_a_screen() {
    let _g = serial();
    let img = image();
    let before = std::fs::read(&img).unwrap();
    let d = dirs();
    let mut s = spec(&d, &img);
    s.network = Network::User {
        forwards: vec![80, 81],
    };
    s.guest_agent = true;
    let mut groups = Groups::default();
    let mut vm = Vm::start(&s, &mut groups.hook()).expect("QEMU starts");
    let pid = vm.pgid();
    assert!(alive(pid));
    assert_eq!(
        groups.0,
        vec![(pid, true)],
        "the process group is registered at once"
    );
    assert_eq!(vm.accel().used, UsedAccel::Tcg);

    let b = boot::run(&mut vm, &boot_check(90));
    assert_status(&b, VmCheckStatus::Passed);
    let secs = b.boot_seconds.expect("boot time measured");
    eprintln!("boot-to-marker under TCG: {secs:.2} s ({})", b.actual);
    assert!(secs > 0.3 && secs < 90.0, "{secs}");
    assert!(
        b.actual.contains(MARKER) && b.actual.contains("eth0"),
        "{}",
        b.actual
    );
    assert_eq!(b.evidence, vec![d.evidence.join("serial.log")]);

    let ok = net::http(
        &vm,
        &HttpCheck {
            name: "http index".into(),
            port: 80,
            path: "/index.html".into(),
            host: None,
            expect_status: 200,
            body: Some(Regex::new("^lifeboat guest ok").unwrap()),
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&ok, VmCheckStatus::Passed);
    assert!(ok.actual.starts_with("200 OK"), "{}", ok.actual);
    let evidence = std::fs::read_to_string(&ok.evidence[0]).unwrap();
    assert!(evidence.starts_with("HTTP/1.1 200 OK"), "{evidence}");

    let wrong_body = net::http(
        &vm,
        &HttpCheck {
            name: "http body".into(),
            port: 80,
            path: "/index.html".into(),
            host: None,
            expect_status: 200,
            body: Some(Regex::new("welcome to nginx").unwrap()),
            timeout: Duration::from_secs(10),
        },
    );
    assert_status(&wrong_body, VmCheckStatus::Failed);

    let t = Instant::now();
    let five_hundred = net::http(
        &vm,
        &HttpCheck {
            name: "http fail".into(),
            port: 80,
            path: "/cgi-bin/fail".into(),
            host: None,
            expect_status: 200,
            body: None,
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&five_hundred, VmCheckStatus::Failed);
    assert!(
        five_hundred.actual.starts_with("500"),
        "{}",
        five_hundred.actual
    );
    assert!(
        five_hundred.message.contains("500 instead of 200"),
        "{}",
        five_hundred.message
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a complete answer is final, no retry until the timeout"
    );

    let tcp_open = net::tcp(
        &vm,
        &TcpCheck {
            name: "tcp 80".into(),
            port: 80,
            banner: None,
            timeout: Duration::from_secs(10),
        },
    );
    assert_status(&tcp_open, VmCheckStatus::Passed);
    // Port 81 is forwarded but nothing listens in the guest: user-mode networking accepts on the host side and
    // then closes, which must not count as open.
    let tcp_closed = net::tcp(
        &vm,
        &TcpCheck {
            name: "tcp 81".into(),
            port: 81,
            banner: None,
            timeout: Duration::from_secs(4),
        },
    );
    assert_status(&tcp_closed, VmCheckStatus::Failed);
    let not_forwarded = net::tcp(
        &vm,
        &TcpCheck {
            name: "tcp 22".into(),
            port: 22,
            banner: None,
            timeout: Duration::from_secs(2),
        },
    );
    assert_status(&not_forwarded, VmCheckStatus::Error);

    let shot = screenshot::run(&mut vm, &ScreenshotCheck::default());
    assert_status(&shot, VmCheckStatus::Passed);
    let png = std::fs::read(d.evidence.join("screenshot.png")).unwrap();
    let (w, h, raw) = png_pixels(&png);
    assert_eq!((w, h), (720, 400), "VGA text mode");
    let row = (w * 3 + 1) as usize;
    let lit = raw
        .chunks(row)
        .flat_map(|r| r[1..].chunks(3))
        .filter(|p| p.iter().any(|&c| c > 0x40))
        .count();
    assert!(lit > 500, "text on the console: {lit} lit pixels");

    let ping = agent::run(
        &vm,
        &AgentCheck {
            name: "agent ping".into(),
            exec: None,
            expect_exit: 0,
            output: None,
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&ping, VmCheckStatus::Passed);
    let exec = agent::run(
        &vm,
        &AgentCheck {
            name: "agent exec".into(),
            exec: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat /www/index.html; exit 3".into(),
            ]),
            expect_exit: 3,
            output: Some(Regex::new("lifeboat guest ok").unwrap()),
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&exec, VmCheckStatus::Passed);
    let exec_wrong = agent::run(
        &vm,
        &AgentCheck {
            name: "agent exec exit".into(),
            exec: Some(vec!["/bin/false".into()]),
            expect_exit: 0,
            output: None,
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&exec_wrong, VmCheckStatus::Failed);
    assert!(
        exec_wrong.actual.contains("exit code 1"),
        "{}",
        exec_wrong.actual
    );

    let td = vm.teardown(&mut groups.hook());
    assert_eq!(td.how, "quit", "QEMU obeys QMP quit: {td:?}");
    assert!(!alive(pid), "no QEMU left");
    assert_eq!(groups.0, vec![(pid, true), (pid, false)]);
    assert!(
        before == std::fs::read(&img).unwrap(),
        "the restored image was never written"
    );
}

#[test]
fn a_guest_flooding_its_serial_console_is_stopped() {
    let _g = serial();
    let d = dirs();
    let mut s = spec(&d, &image());
    s.guest_agent = true;
    s.serial_limit = 256 << 10;
    let mut groups = Groups::default();
    let mut vm = Vm::start(&s, &mut groups.hook()).unwrap();
    assert_status(&boot::run(&mut vm, &boot_check(90)), VmCheckStatus::Passed);
    let flood = agent::run(
        &vm,
        &AgentCheck {
            name: "flood".into(),
            exec: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat /dev/urandom > /dev/ttyS0 2>/dev/null < /dev/null &".into(),
            ]),
            expect_exit: 0,
            output: None,
            timeout: Duration::from_secs(30),
        },
    );
    assert_status(&flood, VmCheckStatus::Passed);
    let t = Instant::now();
    while vm.is_running() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the flooding guest was not stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(vm.serial_flooded() && !vm.timed_out());
    let td = vm.teardown(&mut groups.hook());
    assert_eq!(td.how, "serial-limit");
    assert!(!alive(td.pgid));
}

/// A guest writing without end grows its snapshot overlay in the run folder; when the scratch file system's
/// free space falls below the reserve QEMU is killed and the boot check is an `error` that says why. The
/// test eats the space itself (fallocate beside the overlay): same file system, same watchdog path.
#[test]
fn a_vm_eating_into_the_scratch_reserve_is_stopped_as_an_error() {
    let _g = serial();
    let d = dirs();
    let free = |dir: &Path| {
        let s = rustix::fs::statvfs(dir).unwrap();
        s.f_bavail * s.f_frsize
    };
    let mut s = spec(&d, &image());
    s.min_free = free(&d.run) - (512 << 20);
    // Too little free already: refused before QEMU starts.
    let mut greedy = s.clone();
    greedy.min_free = free(&d.run) + (1 << 40);
    let mut groups = Groups::default();
    match Vm::start(&greedy, &mut groups.hook()) {
        Err(e @ lifeboat_vm::VmError::ScratchFull { .. }) => {
            assert!(e.to_string().contains("min_free"), "{e}");
        }
        Err(e) => panic!("expected ScratchFull, got {e}"),
        Ok(_) => panic!("expected ScratchFull, the VM started"),
    }
    let mut vm = Vm::start(&s, &mut groups.hook()).unwrap();
    let hog = std::fs::File::create(d.run.join("hog")).unwrap();
    rustix::fs::fallocate(&hog, rustix::fs::FallocateFlags::empty(), 0, 1 << 30).unwrap();
    let r = boot::run(&mut vm, &boot_check(90));
    assert_status(&r, VmCheckStatus::Error);
    assert!(r.message.contains("min_free"), "{r:?}");
    assert!(vm.scratch_full() && !vm.timed_out());
    let td = vm.teardown(&mut groups.hook());
    assert_eq!(td.how, "disk-limit");
    assert!(!alive(td.pgid));
}

#[test]
fn no_network_means_no_nic_and_no_agent_channel() {
    let _g = serial();
    let d = dirs();
    let s = spec(&d, &image());
    let mut groups = Groups::default();
    let mut vm = Vm::start(&s, &mut groups.hook()).unwrap();
    let b = boot::run(&mut vm, &boot_check(90));
    assert_status(&b, VmCheckStatus::Passed);
    let log = std::fs::read_to_string(d.evidence.join("serial.log")).unwrap();
    let line = log.lines().find(|l| l.contains(MARKER)).unwrap();
    assert_eq!(
        line.trim(),
        format!("{MARKER} nics: lo"),
        "the guest sees no network card"
    );
    let cmd = std::fs::read_to_string(d.evidence.join("qemu-command.txt")).unwrap();
    assert!(
        cmd.contains("-nic none") && !cmd.contains("-netdev"),
        "{cmd}"
    );
    let a = agent::run(
        &vm,
        &AgentCheck {
            name: "agent".into(),
            exec: None,
            expect_exit: 0,
            output: None,
            timeout: Duration::from_secs(2),
        },
    );
    assert_status(&a, VmCheckStatus::Error);
    let pid = vm.pgid();
    drop(vm); // the Drop guard alone must end QEMU
    assert!(!alive(pid));
}

fn zeroed_copy(dir: &Path) -> PathBuf {
    let mut b = std::fs::read(image()).unwrap();
    b[..512].fill(0);
    let p = dir.join("zeroed.img");
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn zeroed_boot_sector_fails_the_boot_check_with_a_screenshot() {
    let _g = serial();
    let d = dirs();
    let disk = zeroed_copy(&d.run);
    let s = spec(&d, &disk);
    let mut groups = Groups::default();
    let mut vm = Vm::start(&s, &mut groups.hook()).unwrap();
    let t = Instant::now();
    let b = boot::run(&mut vm, &boot_check(8));
    assert_status(&b, VmCheckStatus::Failed);
    assert!(t.elapsed() >= Duration::from_secs(8) && t.elapsed() < Duration::from_secs(15));
    assert!(b.boot_seconds.is_none());
    assert!(
        b.actual.contains("no serial output") || b.actual.contains("no match"),
        "{}",
        b.actual
    );
    // The firmware's complaint is on the screen: kept as evidence, and not blank.
    let shot = screenshot::take(&mut vm, &d.evidence.join("boot-failed.png")).unwrap();
    assert!(shot.colours >= 2 && shot.foreground > 0.001, "{shot:?}");
    assert!(d.evidence.join("boot-failed.png").exists());
    let td = vm.teardown(&mut groups.hook());
    assert!(!alive(td.pgid));
}

#[test]
fn hard_timeout_kills_qemu() {
    let _g = serial();
    let d = dirs();
    let disk = zeroed_copy(&d.run);
    let mut s = spec(&d, &disk);
    s.hard_timeout = Duration::from_secs(3);
    let mut groups = Groups::default();
    let mut vm = Vm::start(&s, &mut groups.hook()).unwrap();
    let pid = vm.pgid();
    let t = Instant::now();
    let b = boot::run(&mut vm, &boot_check(60));
    assert_status(&b, VmCheckStatus::Failed);
    assert!(b.message.contains("hard timeout"), "{}", b.message);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopped by the hard timeout, not the boot timeout"
    );
    assert!(vm.timed_out());
    let shot = screenshot::run(&mut vm, &ScreenshotCheck::default());
    assert_status(&shot, VmCheckStatus::Error);
    let td = vm.teardown(&mut groups.hook());
    assert_eq!(td.how, "timeout");
    assert!(!alive(pid), "no QEMU process remains");
    assert_eq!(groups.0, vec![(pid, true), (pid, false)]);
}

#[test]
fn qemu_refusing_its_options_is_an_error_and_leaves_nothing() {
    let _g = serial();
    let d = dirs();
    let mut s = spec(&d, &image());
    s.network = Network::User { forwards: vec![80] };
    s.nic_model = "no-such-nic".into();
    let mut groups = Groups::default();
    let err = match Vm::start(&s, &mut groups.hook()) {
        Err(e) => e,
        Ok(_) => panic!("QEMU accepted a bogus device"),
    };
    assert!(matches!(err, VmError::StartFailed { .. }), "{err}");
    assert!(err.to_string().contains("no-such-nic"), "{err}");
    assert_eq!(groups.0.len(), 2);
    assert!(!alive(groups.0[0].0));
    // A missing image is refused before QEMU runs.
    let mut s = spec(&d, &d.run.join("missing.img"));
    s.network = Network::None;
    assert!(matches!(
        Vm::start(&s, &mut groups.hook()),
        Err(VmError::Spec(_))
    ));
}

#[test]
fn kvm_is_probed_once_and_never_silently_replaced_when_demanded() {
    let _g = serial();
    let d = dirs();
    let q = qemu();
    let mut none = |_: i32, _: bool| Ok(());
    let first = lifeboat_vm::accel::choose(&q, Accel::Auto, &d.run, &mut none).unwrap();
    eprintln!("accel auto: {first:?}");
    let t = Instant::now();
    let again = lifeboat_vm::accel::choose(&q, Accel::Auto, &d.run, &mut none).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "the probe result is cached"
    );
    assert_eq!(first, again);
    let demanded = lifeboat_vm::accel::choose(&q, Accel::Kvm, &d.run, &mut none);
    match first.used {
        UsedAccel::Kvm => assert_eq!(demanded.unwrap().used, UsedAccel::Kvm),
        UsedAccel::Tcg => {
            assert!(
                first.reason.contains("KVM does not work"),
                "{}",
                first.reason
            );
            assert!(matches!(demanded, Err(VmError::KvmUnavailable { .. })));
        }
    }
    let tcg = lifeboat_vm::accel::choose(&q, Accel::Tcg, &d.run, &mut none).unwrap();
    assert_eq!(tcg.used, UsedAccel::Tcg);
    assert!(!d.run.join("kvm-probe.img").exists(), "the probe cleans up");
}
