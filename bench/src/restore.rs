//! Restore benchmark: restores and verifies a large tar.zst through the real drill engine and compares it with
//! `zstd -dc FILE | tar -x` followed by `sha256sum` of every restored file, on the same archive in the same run.
//!
//! Usage: `bench-restore [SIZE_MIB ...]` (default `1024 4096`); `LIFEBOAT_BENCH_DIR` picks the work folder
//! (default `target/bench`). Each lifeboat restore runs in a child process so its peak RSS (VmHWM) is the
//! restore's alone; memory must stay flat as the archive grows.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use lifeboat_bench::{drill_once, sizes_and_workdir};
use lifeboat_drills::scratch::remove_tree;
use lifeboat_drills::source::local::{LocalConfig, LocalSource};

/// Child mode: one drill over the folder holding the archive; prints a JSON line of figures.
fn child(folder: &Path, work: &Path) -> anyhow::Result<()> {
    let source = LocalSource::new(
        &LocalConfig {
            path: folder.to_path_buf(),
            glob: None,
        },
        jiff::tz::TimeZone::UTC,
    );
    drill_once(&source, work, &[])
}

fn baseline(archive: &Path, work: &Path) -> anyhow::Result<f64> {
    let out = work.join("baseline");
    let _ = remove_tree(&out);
    std::fs::create_dir_all(&out)?;
    let script = format!(
        "set -e; zstd -q -dc '{}' | tar -x -C '{}'; find '{}' -type f -print0 | xargs -0 sha256sum > /dev/null",
        archive.display(),
        out.display(),
        out.display()
    );
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .context("running the zstd | tar baseline")?;
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("baseline failed ({st}); is the zstd command installed? (apt-get install zstd)");
    }
    remove_tree(&out)?;
    Ok(secs)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(Path::new(&args[2]), Path::new(&args[3]));
    }
    let (sizes, work) = sizes_and_workdir(&args)?;
    println!(
        "restore benchmark: tar.zst (half random, a quarter text, a quarter zeros) → scratch folder, SHA-256 of every file"
    );
    println!(
        "{:>8}  {:>10}  {:>12}  {:>10}  {:>12}  {:>9}  {:>14}",
        "SIZE", "ARCHIVE", "LIFEBOAT", "MiB/s", "BASELINE", "RATIO", "PEAK RSS"
    );
    for mib in sizes {
        let folder = work.join(format!("src-{mib}"));
        std::fs::create_dir_all(&folder)?;
        let archive = folder.join("bench.tar.zst");
        if !archive.exists() {
            eprintln!("writing a {mib} MiB archive to {} …", archive.display());
            lifeboat_fixtures::bench::write_bench_archive(&archive, mib << 20)?;
        }
        let archive_size = std::fs::metadata(&archive)?.len();
        // Warm the page cache the same way for both sides.
        let _ = Command::new("cat")
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .status();
        let out = Command::new(std::env::current_exe()?)
            .arg("--child")
            .arg(&folder)
            .arg(&work)
            .output()?;
        if !out.status.success() {
            bail!(
                "lifeboat restore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let secs = v["seconds"].as_f64().unwrap_or(0.0);
        let bytes = v["bytes"].as_u64().unwrap_or(0);
        let base = baseline(&archive, &work)?;
        println!(
            "{:>5} MiB  {:>6} MiB  {:>10.2} s  {:>10.0}  {:>10.2} s  {:>8.2}x  {:>10} MiB",
            mib,
            archive_size >> 20,
            secs,
            bytes as f64 / (1 << 20) as f64 / secs,
            base,
            base / secs,
            v["peak_rss_kib"].as_u64().unwrap_or(0) / 1024
        );
    }
    println!(
        "RATIO = baseline time / lifeboat time (above 1: lifeboat is faster). Both restore the same archive."
    );
    Ok(())
}
