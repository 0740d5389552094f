//! Scratch space with leases, so nothing a run creates outlives it, even after SIGKILL.
//!
//! A run's folder is `SCRATCH/<run_id>/`, and beside it `SCRATCH/<run_id>.lease` (JSON) names the run, the
//! owning process (pid plus its start time, so a recycled pid is not mistaken for the owner) and every process
//! group the run started (check commands, later VMs and databases). The lease is written before the folder
//! is created and removed after it is gone. [`ScratchRoot::sweep`] kills the process groups and removes the
//! folders of leases whose owner is dead; the agent calls it at start-up and before each run, and records
//! those runs as `error` ("interrupted").

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Contents of a lease file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Run id.
    pub run_id: String,
    /// Drill name.
    pub drill: String,
    /// Owning process.
    pub pid: u32,
    /// Start time of the owning process (clock ticks since boot, from `/proc/PID/stat`).
    pub pid_start: Option<u64>,
    /// Process groups started by the run, killed by the sweep.
    #[serde(default)]
    pub process_groups: Vec<i32>,
}

/// A lease whose owner was gone, cleaned up by [`ScratchRoot::sweep`].
#[derive(Debug, Clone)]
pub struct Swept {
    /// The lease.
    pub info: LeaseInfo,
    /// Process groups that were still alive and were killed.
    pub killed: Vec<i32>,
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn owner_alive(info: &LeaseInfo) -> bool {
    match (process_start_time(info.pid), info.pid_start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn kill_group(pgid: i32) -> bool {
    match rustix::process::Pid::from_raw(pgid) {
        Some(pid) => {
            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_ok()
        }
        None => false,
    }
}

/// Removes a folder tree that may contain read-only folders (restored modes are kept owner-writable, but be
/// robust anyway). Never follows symlinks.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        if fs::symlink_metadata(&d)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}

/// The scratch root folder.
#[derive(Debug, Clone)]
pub struct ScratchRoot {
    dir: PathBuf,
}

impl ScratchRoot {
    /// Creates the folder (mode 0700) when missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::DirBuilder::new().recursive(true).create(dir)?;
        Ok(ScratchRoot {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Bytes available to an unprivileged writer on the scratch file system.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let s = rustix::fs::statvfs(&self.dir)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// Takes a lease for a run and creates its folder.
    pub fn lease(&self, run_id: &str, drill: &str) -> io::Result<Lease> {
        let pid = std::process::id();
        let info = LeaseInfo {
            run_id: run_id.to_string(),
            drill: drill.to_string(),
            pid,
            pid_start: process_start_time(pid),
            process_groups: Vec::new(),
        };
        let lease_file = self.dir.join(format!("{run_id}.lease"));
        write_atomic(&lease_file, &info)?;
        let dir = self.dir.join(run_id);
        fs::DirBuilder::new().create(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(Lease {
            dir,
            lease_file,
            info: Mutex::new(info),
            done: false,
        })
    }

    /// Cleans up every lease whose owner is gone; returns them so their runs can be recorded as interrupted.
    pub fn sweep(&self) -> io::Result<Vec<Swept>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("lease") {
                continue;
            }
            let info: LeaseInfo = match fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(i) => i,
                None => {
                    tracing::warn!(lease = %path.display(), "unreadable lease file; removing it and its folder");
                    if let Some(stem) = path.file_stem() {
                        remove_tree(&self.dir.join(stem))?;
                    }
                    fs::remove_file(&path)?;
                    continue;
                }
            };
            if owner_alive(&info) {
                continue;
            }
            let killed: Vec<i32> = info
                .process_groups
                .iter()
                .copied()
                .filter(|g| kill_group(*g))
                .collect();
            remove_tree(&self.dir.join(&info.run_id))?;
            fs::remove_file(&path)?;
            out.push(Swept { info, killed });
        }
        Ok(out)
    }
}

fn write_atomic(path: &Path, info: &LeaseInfo) -> io::Result<()> {
    let tmp = path.with_extension("lease.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(info).map_err(io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// A held lease: the run folder plus its lease file. Dropping it releases (removes) both.
#[derive(Debug)]
pub struct Lease {
    dir: PathBuf,
    lease_file: PathBuf,
    info: Mutex<LeaseInfo>,
    done: bool,
}

impl Lease {
    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn update(&self, f: impl FnOnce(&mut LeaseInfo)) -> io::Result<()> {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut info);
        write_atomic(&self.lease_file, &info)
    }

    /// Records a process group the run started, so a sweep can kill it if this process dies.
    pub fn add_process_group(&self, pgid: i32) -> io::Result<()> {
        self.update(|i| i.process_groups.push(pgid))
    }

    /// Forgets a process group that has exited.
    pub fn remove_process_group(&self, pgid: i32) -> io::Result<()> {
        self.update(|i| i.process_groups.retain(|g| *g != pgid))
    }

    /// Removes the run folder, then the lease.
    pub fn release(mut self) -> io::Result<()> {
        self.done = true;
        remove_tree(&self.dir)?;
        fs::remove_file(&self.lease_file)
    }

    /// Keeps the run folder (for `--keep`) and drops the lease, so sweeps leave the folder alone.
    pub fn keep(mut self) -> io::Result<PathBuf> {
        self.done = true;
        fs::remove_file(&self.lease_file)?;
        Ok(self.dir.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.dir);
            let _ = fs::remove_file(&self.lease_file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lifecycle_and_sweep_of_dead_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let root = ScratchRoot::open(tmp.path()).unwrap();
        let lease = root.lease("r1", "app").unwrap();
        fs::write(lease.dir().join("x"), b"data").unwrap();
        assert!(
            root.sweep().unwrap().is_empty(),
            "a live owner's lease is kept"
        );
        lease.release().unwrap();
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

        // A lease from a dead process (pid start time that cannot match).
        let dead = LeaseInfo {
            run_id: "r2".into(),
            drill: "app".into(),
            pid: std::process::id(),
            pid_start: Some(1),
            process_groups: vec![],
        };
        write_atomic(&tmp.path().join("r2.lease"), &dead).unwrap();
        fs::create_dir(tmp.path().join("r2")).unwrap();
        let swept = root.sweep().unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].info.run_id, "r2");
        assert!(!tmp.path().join("r2").exists());
    }

    #[test]
    fn start_time_of_self() {
        assert!(process_start_time(std::process::id()).is_some());
    }
}
