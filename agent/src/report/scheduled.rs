//! Reports the agent writes on a schedule (`[reports.NAME]`): resolved against the clock when they fire,
//! written to `STATE_DIR/reports/NAME-PERIOD.EXT` atomically (temporary file, then rename), so a reader
//! never sees half a report. `notify` channels are validated by the configuration but not yet delivered:
//! alert channels come with the alerts feature; the written files are the deliverable until then.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::period::Period;
use super::{ReportError, build};
use crate::config::{Config, ReportJob};
use crate::store::Store;

/// Writes `text` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ReportError> {
    let werr = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp-{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e)
    })
}

/// Generates `job` as of `now` and writes every format; returns the files written.
pub fn run(
    config: &Config,
    store: &Store,
    job: &ReportJob,
    now: Timestamp,
) -> Result<Vec<PathBuf>, ReportError> {
    let period = Period::parse(&job.period, &job.schedule.tz, now)?;
    let report = build::build(config, store, &period, now)?;
    let dir = config.state_dir.join("reports");
    let mut out = Vec::new();
    for f in &job.formats {
        let path = dir.join(format!("{}-{}.{}", job.name, period.label, f.as_str()));
        write_atomic(&path, &f.render(&report)?)?;
        out.push(path);
    }
    Ok(out)
}
