//! A sandbox per test: its own config, state, scratch and backups under a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {}", self.stderr))
            })
            .collect()
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn backups(&self, source: &str) -> PathBuf {
        let p = self.path("backups").join(source);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn scratch(&self) -> PathBuf {
        self.path("scratch")
    }

    /// Writes the config: a standard [agent] table plus `body`.
    pub fn config(&self, body: &str) {
        let text = format!(
            "[agent]\nstate_dir = \"state\"\nscratch_dir = \"scratch\"\ntimezone = \"UTC\"\nfree_space_margin = \"1MiB\"\n\n{body}"
        );
        std::fs::write(self.path("lifeboat.toml"), text).unwrap();
    }

    /// A local source named `name` at backups/NAME and a drill of the same name with `extra` drill keys
    /// and check tables.
    pub fn local_drill(&self, name: &str, extra: &str) {
        let body = format!(
            "[sources.{name}]\ntype = \"local\"\npath = \"backups/{name}\"\n\n[drills.{name}]\nsource = \"{name}\"\nrto = \"10m\"\nrpo = \"26h\"\n{extra}\n"
        );
        let existing = std::fs::read_to_string(self.path("lifeboat.toml")).unwrap_or_default();
        if existing.is_empty() {
            self.config(&body);
        } else {
            std::fs::write(self.path("lifeboat.toml"), existing + "\n" + &body).unwrap();
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        c.arg("--config")
            .arg(self.path("lifeboat.toml"))
            .args(args)
            .env_remove("LIFEBOAT_LOG")
            // Hermetic S3 credentials: only what a test sets (never the machine's ~/.aws).
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            );
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().unwrap().into()
    }

    /// Runs one drill with --json; returns the exit code and its report.
    pub fn drill(&self, name: &str) -> (i32, Value) {
        let r = self.run(&["drill", name, "--json"]);
        let mut lines = r.json_lines();
        assert_eq!(
            lines.len(),
            1,
            "one report expected; stdout: {}\nstderr: {}",
            r.stdout,
            r.stderr
        );
        (r.code, lines.remove(0))
    }

    /// The scratch root holds nothing (no run folder, no lease).
    pub fn assert_scratch_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(self.scratch())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "scratch not cleaned up: {left:?}");
    }
}

pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

pub fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    check(report, name)["status"].as_str().unwrap()
}

/// Every path under `root`, for "nothing was created outside" assertions.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
