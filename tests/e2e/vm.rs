//! Scratch VMs (`target = "vm"`): the `lifeboat` binary restores a PBS VM snapshot from the PBS test server (or
//! an image file from a local folder), boots it in real QEMU (TCG here: KVM does not work on these machines)
//! and checks the running guest. The guest is the fixture image of `fixtures/vm/build-image.sh`: it prints
//! `LIFEBOAT-GUEST-READY` on its serial console, serves `/index.html` (200) and `/cgi-bin/fail` (500) on port 80
//! and runs qemu-ga. QEMU must be installed (`bash scripts/test` does it); these tests never skip.
//!
//! The boots are serialised (two cores: parallel TCG guests would only measure each other).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lifeboat_fixtures::pbs::{Datastore, uefi_vm_snapshot_from_image, vm_snapshot_from_image};
use lifeboat_fixtures::pbs_server::{Faults, Role, Running, ServerConfig, Token, start};
use serde_json::Value;

use crate::util::{Sandbox, check, status};

const SECRET: &str = "vm-token-secret";
const MARKER: &str = "LIFEBOAT-GUEST-READY";

fn one_vm_at_a_time() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

fn fixture_image() -> PathBuf {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm-fixture");
    lifeboat_fixtures::bootable_image(&out).expect("fixtures/vm/build-image.sh")
}

fn zeroed_image(sb: &Sandbox) -> PathBuf {
    let mut b = std::fs::read(fixture_image()).unwrap();
    b[..512].fill(0);
    let p = sb.path("zeroed.img");
    std::fs::write(&p, b).unwrap();
    p
}

/// A PBS test server with VM 101 made from `image` (256 MiB, 1 core in its qemu-server.conf), and a drill
/// `web` with `target = "vm"` and the given vm table keys and checks.
fn pbs_vm_drill(sb: &Sandbox, image: &Path, vm: &str, checks: &str) -> Running {
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot_from_image(&store, None, "101", 2.0, image, 256, 1).unwrap();
    serve_vm_drill(sb, "101", vm, checks)
}

/// Serves the datastore `sb/store` and configures the drill `web` on `vm/ID` (see [`pbs_vm_drill`]).
fn serve_vm_drill(sb: &Sandbox, id: &str, vm: &str, checks: &str) -> Running {
    let srv = start(ServerConfig {
        datastores: vec![("store1".into(), sb.path("store"))],
        tokens: vec![Token {
            id: "drill@pbs!lifeboat".into(),
            secret: SECRET.into(),
            acl: vec![("/datastore/store1".into(), Role::DatastoreReader)],
        }],
        tasks: vec![],
        faults: Faults::default(),
    })
    .unwrap();
    std::fs::write(sb.path("pbs-token"), format!("{SECRET}\n")).unwrap();
    sb.config(&format!(
        "[sources.pbs]\ntype = \"pbs\"\nrepository = \"drill@pbs!lifeboat@127.0.0.1:{}:store1\"\nfingerprint = \"{}\"\n\
         password_file = \"pbs-token\"\n\n[drills.web]\nsource = \"pbs\"\ngroup = \"vm/{id}\"\ntarget = \"vm\"\n\
         rto = \"10m\"\nrpo = \"26h\"\n\n[drills.web.vm]\naccel = \"auto\"\ntimeout = \"5m\"\n{vm}\n{checks}",
        srv.port(),
        srv.fingerprint
    ));
    srv
}

const BOOT: &str = "[[drills.web.checks]]\ntype = \"boot\"\npattern = \"LIFEBOAT-GUEST-READY\"\ntimeout = \"2m\"\n";

/// The fixture image as a snapshot of the local folder source `images`, and a drill `images` booting it
/// under TCG with 256 MiB, the extra `vm` table keys, a boot check for `pattern` and `checks`. Returns the
/// image's file name.
fn local_image_drill(sb: &Sandbox, vm: &str, pattern: &str, checks: &str) -> String {
    let name = lifeboat_fixtures::stamped("web-", 3.0, ".img");
    std::fs::copy(fixture_image(), sb.backups("images").join(&name)).unwrap();
    sb.local_drill(
        "images",
        &format!(
            "target = \"vm\"\n[drills.images.vm]\naccel = \"tcg\"\nmemory = \"256MiB\"\n{vm}\
             [[drills.images.checks]]\ntype = \"boot\"\npattern = \"{pattern}\"\ntimeout = \"2m\"\n{checks}"
        ),
    );
    name
}

/// Live (not zombie) QEMU processes whose command line mentions the sandbox.
fn qemu_processes(sb: &Sandbox) -> Vec<i32> {
    let marker = sb.dir.path().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if cmd.contains("qemu-system") && cmd.contains(&marker) && !zombie {
            out.push(pid);
        }
    }
    out
}

fn phase(r: &Value, name: &str) -> f64 {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {r:#}"))["seconds"]
        .as_f64()
        .unwrap()
}

fn evidence(c: &Value) -> Vec<PathBuf> {
    c["evidence"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| PathBuf::from(p.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pbs_vm_snapshot_boots_answers_http_and_passes_with_boot_time_recorded() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let srv = pbs_vm_drill(
        &sb,
        &fixture_image(),
        "network = \"user\"\n",
        &format!(
            "{BOOT}[[drills.web.checks]]\ntype = \"screenshot\"\n\
             [[drills.web.checks]]\ntype = \"http\"\nport = 80\npath = \"/index.html\"\nbody = \"^lifeboat guest ok\"\n\
             [[drills.web.checks]]\ntype = \"guest-agent\"\nexec = [\"/bin/cat\", \"/www/index.html\"]\noutput = \"guest ok\"\n"
        ),
    );
    let (code, r) = sb.drill("web");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"], "passed");
    for c in [
        "image drive-scsi0.img",
        "boot",
        "screenshot",
        "http :80/index.html",
    ] {
        assert_eq!(status(&r, c), "passed", "{c}: {r:#}");
    }
    assert_eq!(
        status(&r, "guest-agent: /bin/cat /www/index.html"),
        "passed"
    );
    let boot = check(&r, "boot");
    let actual = boot["actual"].as_str().unwrap();
    assert!(
        actual.contains(MARKER) && actual.contains("scsi0 (scsi) from qemu-server.conf"),
        "{actual}"
    );
    assert!(
        actual.contains("256 MiB"),
        "memory from qemu-server.conf: {actual}"
    );
    // Boot is a phase of its own and part of the RTA.
    let (restore, boot_s, checks) = (phase(&r, "restore"), phase(&r, "boot"), phase(&r, "checks"));
    let rta = r["rta_seconds"].as_f64().unwrap();
    eprintln!(
        "RTA {rta:.2} s: select {:.3} + restore {restore:.2} + boot {boot_s:.2} + checks {checks:.2} (teardown {:.2} after)",
        phase(&r, "select"),
        phase(&r, "teardown")
    );
    assert!(
        boot_s > 0.5 && rta >= restore + boot_s + checks - 0.05,
        "{r:#}"
    );
    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["select", "restore", "boot", "checks", "teardown"]);
    // Evidence: the serial log with the marker, the PNG, the exact QEMU command line.
    let serial = &evidence(boot)[0];
    assert!(std::fs::read_to_string(serial).unwrap().contains(MARKER));
    let png = &evidence(check(&r, "screenshot"))[0];
    assert!(
        std::fs::read(png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );
    let cmd = std::fs::read_to_string(serial.with_file_name("qemu-command.txt")).unwrap();
    for want in [
        "snapshot=on",
        "restrict=on",
        "-m 256",
        "-no-reboot",
        "scsi-hd",
        "org.qemu.guest_agent.0",
    ] {
        assert!(cmd.contains(want), "{want} in {cmd}");
    }
    assert!(qemu_processes(&sb).is_empty(), "QEMU stopped after the run");
    sb.assert_scratch_empty();
    srv.shutdown();
}

/// A Proxmox `bios: ovmf` VM: OVMF from Debian's `ovmf` package with the VM's own variable store (its
/// backed-up EFI disk, written to a copy: the restored one stays as restored), q35 from the configuration,
/// and the fixture image started through its `\EFI\BOOT\BOOTX64.EFI`.
#[test]
fn uefi_vm_snapshot_boots_under_ovmf_with_its_own_efi_disk() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    // On LVM the EFI disk is rounded up to 4 MiB; its first 528 KiB are the variable store.
    let mut vars = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.fd").unwrap();
    vars.resize(4 << 20, 0);
    std::fs::write(sb.path("efidisk.img"), vars).unwrap();
    uefi_vm_snapshot_from_image(
        &store,
        "102",
        2.0,
        &fixture_image(),
        &sb.path("efidisk.img"),
    )
    .unwrap();
    let srv = serve_vm_drill(&sb, "102", "", BOOT);
    let (code, r) = sb.drill("web");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(status(&r, "image drive-efidisk0.img"), "passed", "{r:#}");
    let boot = check(&r, "boot");
    let actual = boot["actual"].as_str().unwrap();
    assert!(
        actual.contains(MARKER)
            && actual.contains("OVMF with the VM's EFI disk drive-efidisk0.img"),
        "{actual}"
    );
    let serial = std::fs::read_to_string(&evidence(boot)[0]).unwrap();
    assert!(
        serial.contains("BdsDxe"),
        "OVMF's boot manager ran: {serial}"
    );
    let cmd =
        std::fs::read_to_string(evidence(boot)[0].with_file_name("qemu-command.txt")).unwrap();
    for want in [
        "if=pflash,format=raw,unit=0,readonly=on",
        "OVMF_CODE_4M.fd",
        "uefi-vars.fd",
        "q35",
    ] {
        assert!(cmd.contains(want), "{want} in {cmd}");
    }
    eprintln!("UEFI boot under TCG: {:.2} s", phase(&r, "boot"));
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
    srv.shutdown();
}

#[test]
fn zeroed_boot_sector_fails_at_the_boot_check_with_the_screenshot_as_evidence() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let img = zeroed_image(&sb);
    let srv = pbs_vm_drill(
        &sb,
        &img,
        "network = \"user\"\n",
        "[[drills.web.checks]]\ntype = \"boot\"\npattern = \"LIFEBOAT-GUEST-READY\"\ntimeout = \"12s\"\n\
         [[drills.web.checks]]\ntype = \"http\"\npath = \"/index.html\"\n",
    );
    let t = Instant::now();
    let (code, r) = sb.drill("web");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["outcome"], "failed");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "the boot check's limit ends the wait"
    );
    assert_eq!(status(&r, "boot"), "failed");
    assert_eq!(
        status(&r, "image drive-scsi0.img"),
        "failed",
        "the boot sector check agrees"
    );
    let boot = check(&r, "boot");
    let shots: Vec<PathBuf> = evidence(boot)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(shots.len(), 1, "{boot:#}");
    assert!(
        std::fs::metadata(&shots[0]).unwrap().len() > 1000,
        "a real screenshot"
    );
    assert_eq!(
        status(&r, "http :80/index.html"),
        "unverifiable",
        "probes of a VM that did not boot are not run"
    );
    assert!(r["rta_seconds"].is_null());
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
    srv.shutdown();
}

#[test]
fn http_probe_answered_with_500_fails_the_drill() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let srv = pbs_vm_drill(
        &sb,
        &fixture_image(),
        "network = \"user\"\nmemory = \"192MiB\"\n",
        &format!(
            "{BOOT}[[drills.web.checks]]\ntype = \"http\"\npath = \"/cgi-bin/fail\"\ntimeout = \"30s\"\n"
        ),
    );
    let (code, r) = sb.drill("web");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(status(&r, "boot"), "passed");
    assert!(
        check(&r, "boot")["actual"]
            .as_str()
            .unwrap()
            .contains("192 MiB"),
        "drill override"
    );
    let http = check(&r, "http :80/cgi-bin/fail");
    assert_eq!(http["status"], "failed");
    assert!(
        http["actual"].as_str().unwrap().starts_with("500"),
        "{http:#}"
    );
    assert!(r["error"].as_str().unwrap().contains("500"), "{r:#}");
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
    srv.shutdown();
}

#[test]
fn sigkilled_lifeboat_during_boot_leaves_no_qemu_after_the_next_start() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let srv = pbs_vm_drill(
        &sb,
        &fixture_image(),
        "",
        "[[drills.web.checks]]\ntype = \"boot\"\npattern = \"never printed\"\ntimeout = \"5m\"\n",
    );
    let mut child = sb
        .command(&["drill", "web", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run's lease names QEMU's process group.
    let start = Instant::now();
    let pgid = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no QEMU process group in a lease"
        );
        let found = std::fs::read_dir(sb.scratch())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "lease"))
            .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
            .flat_map(|v| {
                v["process_groups"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|g| g.as_i64())
            })
            .map(|g| g as i32)
            .find(|g| {
                qemu_processes(&sb).contains(g) && {
                    let cmd = std::fs::read(format!("/proc/{g}/cmdline")).unwrap_or_default();
                    String::from_utf8_lossy(&cmd).contains("serial.log")
                }
            });
        if let Some(g) = found {
            break g;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500)); // mid-boot
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        qemu_processes(&sb),
        vec![pgid],
        "QEMU outlived the killed agent"
    );

    let h = sb.run(&["history", "--json"]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    let runs = h.json_lines();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "error");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{:#}",
        runs[0]
    );
    let start = Instant::now();
    while !qemu_processes(&sb).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the sweep did not kill QEMU"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.assert_scratch_empty();
    srv.shutdown();
}

#[test]
fn image_file_from_a_local_folder_boots_without_network() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let name = local_image_drill(
        &sb,
        "",
        "LIFEBOAT-GUEST-READY nics: lo ",
        "[[drills.images.checks]]\ntype = \"screenshot\"\n",
    );
    let (code, r) = sb.drill("images");
    assert_eq!(code, 0, "{r:#}");
    let actual = check(&r, "boot")["actual"].as_str().unwrap();
    assert!(actual.contains(&format!("{name} on sata")), "{actual}");
    assert!(actual.contains("(tcg)"), "{actual}");
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
}

/// The guest's writes land in an overlay on the scratch file system; with less free than `min_free` the VM
/// does not start (and a running one is stopped: `vm/tests/qemu.rs`). Not the backup's fault: an `error`,
/// saying what to do.
#[test]
fn a_vm_that_would_fill_the_scratch_disk_is_stopped_as_an_error() {
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    // No file system here has 1000 TiB free.
    local_image_drill(&sb, "min_free = \"1000TiB\"\n", MARKER, "");
    let t = Instant::now();
    let (code, r) = sb.drill("images");
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["outcome"], "error");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("less than the VM's reserve of 1000 TiB") && msg.contains("min_free"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
}

/// A raw disk image kept in a bucket (vzdump-style exports, images pushed with rclone): downloaded with its
/// stored checksum verified, then booted like any other image.
#[test]
fn disk_image_object_from_s3_boots() {
    use lifeboat_fixtures::s3::{ACCESS_KEY, SECRET_KEY, Weed};
    let _g = one_vm_at_a_time();
    let sb = Sandbox::new();
    let w = Weed::start(&sb.path("weed"));
    let up = w.uploader();
    up.create_bucket("images").unwrap();
    let key = lifeboat_fixtures::stamped("web/web-", 3.0, ".img");
    let image = std::fs::read(fixture_image()).unwrap();
    up.put("images", &key, &image).unwrap();
    std::fs::write(sb.path("key-id"), ACCESS_KEY).unwrap();
    std::fs::write(sb.path("secret"), SECRET_KEY).unwrap();
    sb.config(&format!(
        "[sources.bucket]\ntype = \"s3\"\nendpoint = \"{}\"\nbucket = \"images\"\nprefix = \"web/\"\n\
         access_key_id_file = \"key-id\"\nsecret_access_key_file = \"secret\"\n\n\
         [drills.web]\nsource = \"bucket\"\ntarget = \"vm\"\nrto = \"10m\"\nrpo = \"26h\"\n\
         [drills.web.vm]\naccel = \"tcg\"\nmemory = \"256MiB\"\n{BOOT}",
        w.endpoint()
    ));
    let (code, r) = sb.drill("web");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(status(&r, "s3 etag"), "passed", "{r:#}");
    let actual = check(&r, "boot")["actual"].as_str().unwrap();
    assert!(
        actual.contains(MARKER) && actual.contains(key.trim_start_matches("web/")),
        "{actual}"
    );
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
}

#[test]
fn qcow2_naming_a_host_backing_file_fails_without_booting() {
    let sb = Sandbox::new();
    let mut h = vec![0u8; 512];
    h[..4].copy_from_slice(b"QFI\xfb");
    h[7] = 3;
    h[15] = 200; // backing_file_offset
    h[19] = 11; // backing_file_size
    h[200..211].copy_from_slice(b"/etc/shadow");
    std::fs::write(
        sb.backups("images")
            .join(lifeboat_fixtures::stamped("evil-", 1.0, ".qcow2")),
        h,
    )
    .unwrap();
    sb.local_drill(
        "images",
        "target = \"vm\"\n[[drills.images.checks]]\ntype = \"boot\"\npattern = \"login:\"\n",
    );
    let (code, r) = sb.drill("images");
    assert_eq!(code, 1, "the backup is at fault: {r:#}");
    let boot = check(&r, "boot");
    assert_eq!(boot["status"], "failed");
    assert!(
        boot["message"].as_str().unwrap().contains("backing file"),
        "{boot:#}"
    );
    assert!(qemu_processes(&sb).is_empty());
    sb.assert_scratch_empty();
}

#[test]
fn missing_qemu_is_an_error_that_says_how_to_install_it() {
    let sb = Sandbox::new();
    std::fs::copy(
        fixture_image(),
        sb.backups("images")
            .join(lifeboat_fixtures::stamped("web-", 1.0, ".img")),
    )
    .unwrap();
    sb.local_drill(
        "images",
        "target = \"vm\"\n[drills.images.vm]\nqemu = \"/nonexistent/qemu-system-x86_64\"\n\
         [[drills.images.checks]]\ntype = \"boot\"\npattern = \"login:\"\n",
    );
    let (code, r) = sb.drill("images");
    assert_eq!(code, 3, "lifeboat's environment, not the backup: {r:#}");
    assert_eq!(r["outcome"], "error");
    assert_eq!(status(&r, "boot"), "error");
    let err = r["error"].as_str().unwrap();
    assert!(err.contains("apt-get install qemu-system-x86"), "{err}");
    sb.assert_scratch_empty();
}

#[test]
fn vm_configuration_mistakes_are_configuration_errors() {
    for (extra, says) in [
        (
            "[[drills.app.checks]]\ntype = \"http\"\nport = 80\n",
            "set target = \"vm\"",
        ),
        ("target = \"vmm\"\n", "target \"vmm\" is not known"),
        (
            "[drills.app.vm]\nmemory = \"1GiB\"\n",
            "needs target = \"vm\"",
        ),
        (
            "target = \"vm\"\n[[drills.app.checks]]\ntype = \"tcp\"\nport = 22\n",
            "set network = \"user\"",
        ),
        (
            "target = \"vm\"\n[drills.app.vm]\naccel = \"fast\"\n",
            "unknown variant `fast`",
        ),
        (
            "target = \"vm\"\n[drills.app.vm]\nmemroy = \"1GiB\"\n",
            "unknown field `memroy`",
        ),
        (
            "target = \"vm\"\n[[drills.app.checks]]\ntype = \"boot\"\npattern = \"(\"\n",
            "invalid regular expression",
        ),
    ] {
        let sb = Sandbox::new();
        sb.local_drill("app", extra);
        let r = sb.run(&["check-config"]);
        assert_eq!(r.code, 2, "{extra}: {}", r.stdout);
        assert!(r.stderr.contains(says), "{extra}: {}", r.stderr);
        assert!(
            r.stderr.contains("lifeboat.toml:"),
            "file:line:column: {}",
            r.stderr
        );
    }
}
