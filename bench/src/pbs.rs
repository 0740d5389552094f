//! PBS restore benchmark: restores a VM image (half zero chunks, half random chunks, 4 MiB each) from the
//! PBS-compatible test server over loopback (TLS, reader protocol over HTTP/2, every chunk verified) and
//! compares it with reading and SHA-256-hashing the same chunk files straight from disk, in the same run.
//! Also restores the same snapshot through the `pbs-datastore` source (disk, no network).
//!
//! Usage: `bench-pbs [SIZE_MIB ...]` (default `1024 4096`); `LIFEBOAT_BENCH_DIR` picks the work folder.
//! Each restore runs in a child process so its peak RSS (VmHWM) is the restore's alone.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use lifeboat_bench::{drill_once, sizes_and_workdir};
use lifeboat_drills::pbs::crypt::sha256;
use lifeboat_drills::pbs::datastore::chunk_path;
use lifeboat_drills::source::SourceConfig;
use lifeboat_fixtures::pbs::{Datastore, VM_CHUNK};
use lifeboat_fixtures::pbs_server::{Role, ServerConfig, Token, start};

const SECRET: &str = "bench-secret";

fn build_store(root: &Path, mib: u64) -> anyhow::Result<()> {
    if root.join(".chunks").is_dir() {
        return Ok(());
    }
    eprintln!("writing a {mib} MiB VM snapshot to {} …", root.display());
    let store = Datastore::create(root)?;
    let mut s = store.snapshot(None, "vm", "900", 1_795_000_000, None);
    s.blob(
        "qemu-server.conf.blob",
        b"memory: 2048\nscsi0: local:vm-900-disk-0\n",
    );
    let size = mib << 20;
    s.fixed_streamed("drive-scsi0.img.fidx", size, VM_CHUNK, |i, len| {
        if i == 0 {
            // An MBR with one Linux partition over the whole disk, ext4 superblock magic at its start.
            let mut c = vec![0u8; len];
            let sectors = (size / 512 - 2048) as u32;
            c[446 + 4] = 0x83;
            c[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
            c[446 + 12..446 + 16].copy_from_slice(&sectors.to_le_bytes());
            c[510] = 0x55;
            c[511] = 0xaa;
            c[(1 << 20) + 1080..(1 << 20) + 1082].copy_from_slice(&0xEF53u16.to_le_bytes());
            c
        } else if i % 2 == 0 {
            vec![0u8; len]
        } else {
            lifeboat_fixtures::noise(i + 1, len)
        }
    });
    s.finish();
    Ok(())
}

/// Child mode: restore through the given source configuration (JSON) and print figures.
fn child(source_json: &str, work: &Path) -> anyhow::Result<()> {
    let cfg: SourceConfig = serde_json::from_str(source_json)?;
    let source = cfg.build(&jiff::tz::TimeZone::UTC);
    drill_once(source.as_ref(), work, &["drive-scsi0.img".to_string()])
}

fn measure(source: &serde_json::Value, work: &Path) -> anyhow::Result<(f64, u64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(source.to_string())
        .arg(work)
        .env("PBS_PASSWORD", SECRET)
        .output()?;
    if !out.status.success() {
        bail!("restore failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((
        v["seconds"].as_f64().unwrap_or(0.0),
        v["bytes"].as_u64().unwrap_or(0),
        v["peak_rss_kib"].as_u64().unwrap_or(0),
    ))
}

/// Baseline: read and SHA-256 every distinct chunk file of the image from disk.
fn baseline(root: &Path) -> anyhow::Result<(f64, usize)> {
    let snap = lifeboat_drills::pbs::datastore::list_snapshots(root, None)?;
    let dir = &snap.first().context("no snapshot")?.path;
    let index = lifeboat_drills::pbs::index::FixedIndex::parse(
        "drive-scsi0.img.fidx",
        &std::fs::read(dir.join("drive-scsi0.img.fidx"))?,
    )?;
    let distinct: HashSet<[u8; 32]> = index.digests().iter().copied().collect();
    let t = Instant::now();
    for d in &distinct {
        let _ = sha256(&std::fs::read(chunk_path(root, d))?);
    }
    Ok((t.elapsed().as_secs_f64(), index.chunk_count()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], Path::new(&args[3]));
    }
    let (sizes, work) = sizes_and_workdir(&args)?;
    println!(
        "PBS restore benchmark: VM image, half zero and half random 4 MiB chunks, every chunk verified"
    );
    println!(
        "{:>9}  {:>9}  {:>11}  {:>8}  {:>9}  {:>11}  {:>8}  {:>10}  {:>12}",
        "SIZE", "VIA", "LIFEBOAT", "MiB/s", "chunks/s", "DISK READ", "RATIO", "PEAK RSS", ""
    );
    for mib in sizes {
        let root = work.join(format!("pbs-{mib}"));
        build_store(&root, mib)?;
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("cat {}/.chunks/*/* > /dev/null", root.display()))
            .status();
        let (base, chunks) = baseline(&root)?;
        let server = start(ServerConfig {
            datastores: vec![("store1".into(), root.clone())],
            tokens: vec![Token {
                id: "bench@pbs!lifeboat".into(),
                secret: SECRET.into(),
                acl: vec![("/datastore".into(), Role::DatastoreReader)],
            }],
            tasks: vec![],
            faults: Default::default(),
        })?;
        let remote = serde_json::json!({"type": "pbs", "repository": format!("bench@pbs!lifeboat@127.0.0.1:{}:store1", server.port()), "fingerprint": server.fingerprint});
        let disk = serde_json::json!({"type": "pbs-datastore", "path": root});
        for (via, src) in [("loopback", &remote), ("disk", &disk)] {
            let (secs, bytes, rss) = measure(src, &work)?;
            println!(
                "{:>5} MiB  {:>9}  {:>9.2} s  {:>8.0}  {:>9.0}  {:>9.2} s  {:>7.2}x  {:>6} MiB",
                mib,
                via,
                secs,
                bytes as f64 / (1 << 20) as f64 / secs,
                chunks as f64 / secs,
                base,
                base / secs,
                rss / 1024
            );
        }
        server.shutdown();
    }
    println!(
        "DISK READ = reading and SHA-256-hashing the image's distinct chunk files from disk (no network, no decode,"
    );
    println!(
        "no write); RATIO = DISK READ time / lifeboat time. chunks/s counts index entries (zero chunks included)."
    );
    Ok(())
}
