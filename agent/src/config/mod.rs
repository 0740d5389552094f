//! The configuration file: one TOML file, parsed in two phases.
//!
//! Phase one is serde into raw structs that reject unknown keys and wrong types (with the file, line and
//! column toml reports). Phase two validates what serde cannot: references between tables (a drill's
//! `source`), durations, time zones and cron lines, again with line and column, and resolves relative paths
//! against the configuration file's folder. Everything after loading works on the validated [`Config`].

mod alerting;
mod raw;

pub use alerting::{DEFAULT_REMIND, NotifyChannel, Watch};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use lifeboat_drills::check::CheckConfig;
use lifeboat_drills::extract::Limits;
use lifeboat_drills::select::{Selection, Strategy};
use lifeboat_drills::source::SourceConfig;
use sha2::{Digest, Sha256};

/// Default configuration path.
pub const DEFAULT_PATH: &str = "/etc/lifeboat/lifeboat.toml";

/// One problem in the configuration, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The configuration could not be loaded. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read configuration {path}: {source}; pass --config FILE or set LIFEBOAT_CONFIG"
    )]
    Read {
        /// Path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The file has problems.
    #[error("{}", render(path, problems))]
    Invalid {
        /// Path.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn render(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match (p.line, p.column) {
            (Some(l), Some(c)) => {
                out.push_str(&format!("{}:{l}:{c}: {}", path.display(), p.message))
            }
            _ => out.push_str(&format!("{}: {}", path.display(), p.message)),
        }
    }
    out
}

/// Converts a byte offset into 1-based line and column.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

/// A drill's schedule: a crontab line in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The line as written.
    pub expr: String,
    /// Parsed.
    pub cron: Cron,
    /// Zone the line is read in.
    pub tz: TimeZone,
}

impl Schedule {
    /// The first instant strictly after `t`.
    pub fn next_after(&self, t: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let z = t.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// Parses a strict 5-field crontab line (no seconds, no year), Vixie semantics (0 and 7 = Sunday).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "schedule {expr:?} has {fields} fields; expected a standard 5-field crontab line \"minute hour day-of-month month day-of-week\" such as \"0 3 * * *\""
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("invalid schedule {expr:?}: {e}; expected a 5-field crontab line such as \"0 3 * * *\" or \"*/15 * * * *\""))
}

/// A drill, validated.
#[derive(Debug, Clone)]
pub struct Drill {
    /// Name (the table key).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Source name (exists in [`Config::sources`]).
    pub source: String,
    /// RTO.
    pub rto: Duration,
    /// RPO.
    pub rpo: Duration,
    /// When the agent runs it (`None`: only on demand).
    pub schedule: Option<Schedule>,
    /// Snapshot selection.
    pub selection: Selection,
    /// Restore bounds.
    pub limits: Limits,
    /// Checks.
    pub checks: Vec<CheckConfig>,
    /// Archives to restore (PBS sources); empty = every archive of the snapshot.
    pub archives: Vec<String>,
    /// `false`: skipped by `--all` and the agent.
    pub enabled: bool,
    /// Alert channels told about this drill's runs (`notify = ["ops"]`); `None` = every channel.
    pub notify: Option<Vec<String>>,
    /// `target = "vm"`: how to boot the restored disk images (`[drills.NAME.vm]`); `None`: the scratch folder.
    pub vm: Option<lifeboat_drills::target::vm::VmTargetConfig>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (reports show which configuration produced a run).
    pub sha256: String,
    /// History database and evidence.
    pub state_dir: PathBuf,
    /// Scratch root.
    pub scratch_dir: PathBuf,
    /// Default zone for schedules and for timestamps in names without a zone.
    pub timezone: TimeZone,
    /// Most drills running at once in the agent.
    pub max_parallel: usize,
    /// Free space kept in reserve on the scratch file system.
    pub free_space_margin: u64,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Drills by name.
    pub drills: BTreeMap<String, Drill>,
    /// Organisation named in report headers (`[agent] organisation`).
    pub organisation: Option<String>,
    /// Site named in report headers (`[agent] site`).
    pub site: Option<String>,
    /// Scheduled reports by name (`[reports.NAME]`).
    pub reports: BTreeMap<String, ReportJob>,
    /// Alert channels by name (`[notify.NAME]`).
    pub channels: BTreeMap<String, NotifyChannel>,
    /// Watches by name (`[watches.NAME]`).
    pub watches: BTreeMap<String, Watch>,
}

/// A scheduled report, validated.
#[derive(Debug, Clone)]
pub struct ReportJob {
    /// Name (the table key).
    pub name: String,
    /// When the agent writes it.
    pub schedule: Schedule,
    /// Period spec (`previous-quarter`, `2026-Q3`, ...), resolved when the report runs.
    pub period: String,
    /// Formats written.
    pub formats: Vec<crate::report::Format>,
    /// Alert channels told when the report is written (`report.generated`).
    pub notify: Vec<String>,
}

struct Ctx<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    /// The zone named at `z`, else `default`; an unknown name is a problem (and UTC meanwhile).
    fn zone_or(&mut self, z: Option<&toml::Spanned<String>>, default: &TimeZone) -> TimeZone {
        match z {
            Some(z) => zone(z.get_ref()).unwrap_or_else(|m| {
                self.at(z.span(), m);
                TimeZone::UTC
            }),
            None => default.clone(),
        }
    }

    /// The crontab line at `expr` in `tz`; a bad line is a problem of `owner` (`drill app`).
    fn schedule(
        &mut self,
        owner: &str,
        expr: &toml::Spanned<String>,
        tz: &TimeZone,
    ) -> Option<Schedule> {
        match parse_cron(expr.get_ref()) {
            Ok(cron) => Some(Schedule {
                expr: expr.get_ref().clone(),
                cron,
                tz: tz.clone(),
            }),
            Err(m) => {
                self.at(expr.span(), format!("{owner}: {m}"));
                None
            }
        }
    }

    fn at(&mut self, span: std::ops::Range<usize>, message: String) {
        let (l, c) = line_col(self.text, span.start);
        self.problems.push(Problem {
            line: Some(l),
            column: Some(c),
            message,
        });
    }
}

fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}; expected an IANA zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"")
    })
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        // Resolve relative paths against an absolute folder, so the agent does not depend on its cwd.
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut c = Config::parse(&abs, &text).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            },
            other => other,
        })?;
        c.path = path.to_path_buf();
        Ok(c)
    }

    /// Validates configuration text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let raw: raw::RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let (line, column) = match e.span() {
                    Some(s) => {
                        let (l, c) = line_col(text, s.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                return Err(invalid(vec![Problem {
                    line,
                    column,
                    message: e.message().trim().to_string(),
                }]));
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut cx = Ctx {
            text,
            problems: Vec::new(),
        };

        let timezone = match &raw.agent.timezone {
            Some(z) => zone(z.get_ref()).unwrap_or_else(|m| {
                cx.at(z.span(), m);
                TimeZone::UTC
            }),
            None => TimeZone::system(),
        };
        let mut sources = BTreeMap::new();
        for (name, s) in raw.sources {
            let span = s.span();
            let mut cfg = s.into_inner();
            match &mut cfg {
                SourceConfig::Local(l) => {
                    l.path = resolve(&l.path);
                    if let Some(g) = &l.glob
                        && let Err(e) = glob::Pattern::new(g)
                    {
                        cx.at(
                            span.clone(),
                            format!("source {name}: invalid glob {g:?}: {e}"),
                        );
                    }
                }
                SourceConfig::Pbs(p) => {
                    p.password_file = p.password_file.as_deref().map(resolve);
                    p.encryption_key_file = p.encryption_key_file.as_deref().map(resolve);
                    if let Err(e) = p.validate() {
                        cx.at(span.clone(), format!("source {name}: {e}"));
                    }
                }
                SourceConfig::S3(c) => {
                    c.access_key_id_file = c.access_key_id_file.as_deref().map(resolve);
                    c.secret_access_key_file = c.secret_access_key_file.as_deref().map(resolve);
                    c.session_token_file = c.session_token_file.as_deref().map(resolve);
                    c.ca_file = c.ca_file.as_deref().map(resolve);
                    c.credentials_file = c.credentials_file.as_deref().map(resolve);
                    if let Err(e) = c.validate() {
                        cx.at(span.clone(), format!("source {name}: {e}"));
                    }
                }
                SourceConfig::PbsDatastore(p) => {
                    p.path = resolve(&p.path);
                    p.encryption_key_file = p.encryption_key_file.as_deref().map(resolve);
                    if let Err(e) = lifeboat_drills::pbs::datastore::namespace_dir(
                        &p.path,
                        p.namespace.as_deref(),
                    ) {
                        cx.at(span.clone(), format!("source {name}: {e}"));
                    }
                }
            }
            sources.insert(name, cfg);
        }
        let channels = alerting::channels(raw.notify, &base, &timezone, &mut cx);
        let watches = alerting::watches(raw.watches, &sources, &channels, &timezone, &mut cx);
        let mut drills = BTreeMap::new();
        for (name, d) in raw.drills {
            let d = d.into_inner();
            if let Some(n) = &d.notify {
                alerting::check_channel_list(&format!("drill {name}"), n, &channels, &mut cx);
            }
            if !sources.contains_key(d.source.get_ref()) {
                let known: Vec<&str> = sources.keys().map(String::as_str).collect();
                cx.at(
                    d.source.span(),
                    format!(
                        "drill {name}: source {:?} is not defined; defined sources: {}",
                        d.source.get_ref(),
                        if known.is_empty() {
                            "none (add a [sources.NAME] table)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            let is_pbs = matches!(
                sources.get(d.source.get_ref()),
                Some(SourceConfig::PbsDatastore(_) | SourceConfig::Pbs(_))
            );
            if let Some(g) = &d.group {
                let parts: Vec<&str> = g.get_ref().split('/').collect();
                if !is_pbs {
                    cx.at(g.span(), format!("drill {name}: `group` applies to PBS sources only; use `glob` to pick snapshots of other sources"));
                } else if parts.len() != 2
                    || !["vm", "ct", "host"].contains(&parts[0])
                    || parts[1].is_empty()
                {
                    cx.at(g.span(), format!("drill {name}: group {:?} is not TYPE/ID; expected e.g. \"vm/101\", \"ct/200\" or \"host/web1\"", g.get_ref()));
                }
            }
            if let Some(a) = &d.archives
                && !is_pbs
            {
                cx.at(
                    a.span(),
                    format!("drill {name}: `archives` applies to PBS sources only"),
                );
            }
            let tz = cx.zone_or(d.timezone.as_ref(), &timezone);
            let schedule = d
                .schedule
                .as_ref()
                .and_then(|s| cx.schedule(&format!("drill {name}"), s, &tz));
            let glob = d
                .glob
                .as_ref()
                .and_then(|g| match glob::Pattern::new(g.get_ref()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cx.at(
                            g.span(),
                            format!("drill {name}: invalid glob {:?}: {e}", g.get_ref()),
                        );
                        None
                    }
                });
            if d.window.is_some() && d.select == Strategy::Latest {
                cx.at(
                    d.select_span.clone().unwrap_or(0..0),
                    format!("drill {name}: `window` only applies to select = \"oldest-within\" or \"random-within\""),
                );
            }
            let defaults = Limits::default();
            let limits = Limits {
                max_bytes: d.max_restore_size.map_or(defaults.max_bytes, |s| s.0),
                max_entries: d.max_entries.unwrap_or(defaults.max_entries),
                max_ratio: d.max_ratio.unwrap_or(defaults.max_ratio),
                ..defaults
            };
            let vm = match d.target.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
                None | Some(("directory", _)) => {
                    if let Some(v) = &d.vm {
                        cx.at(
                            v.span(),
                            format!(
                                "drill {name}: a [drills.{name}.vm] table needs target = \"vm\""
                            ),
                        );
                    }
                    None
                }
                Some(("vm", _)) => {
                    let mut v =
                        d.vm.as_ref()
                            .map(|v| v.get_ref().clone())
                            .unwrap_or_default();
                    v.qemu = v.qemu.as_deref().map(resolve);
                    v.ovmf_code = v.ovmf_code.as_deref().map(resolve);
                    v.ovmf_vars = v.ovmf_vars.as_deref().map(resolve);
                    v.firmware_dirs = v.firmware_dirs.iter().map(|p| resolve(p)).collect();
                    Some(v)
                }
                Some((other, span)) => {
                    cx.at(span, format!("drill {name}: target {other:?} is not known; use \"directory\" (the default) or \"vm\""));
                    None
                }
            };
            if let Err(m) = lifeboat_drills::target::vm::validate(vm.as_ref(), &d.checks) {
                let span =
                    d.vm.as_ref()
                        .map(|v| v.span())
                        .or_else(|| d.target.as_ref().map(|t| t.span()))
                        .unwrap_or_else(|| d.source.span());
                cx.at(span, format!("drill {name}: {m}"));
            }
            for c in &d.checks {
                if let CheckConfig::Files(f) = c {
                    for p in &f.patterns {
                        if let Err(e) = glob::Pattern::new(&p.glob) {
                            cx.problems.push(Problem {
                                line: None,
                                column: None,
                                message: format!(
                                    "drill {name}: invalid glob {:?} in a files check: {e}",
                                    p.glob
                                ),
                            });
                        }
                    }
                }
            }
            drills.insert(
                name.clone(),
                Drill {
                    name,
                    description: d.description,
                    source: d.source.into_inner(),
                    rto: d.rto.0,
                    rpo: d.rpo.0,
                    schedule,
                    selection: Selection {
                        strategy: d.select,
                        window: d.window.map(|w| w.0),
                        glob,
                        group: d.group.map(toml::Spanned::into_inner),
                    },
                    archives: d
                        .archives
                        .map(toml::Spanned::into_inner)
                        .unwrap_or_default(),
                    limits,
                    checks: d.checks,
                    enabled: d.enabled,
                    notify: d.notify.map(toml::Spanned::into_inner),
                    vm,
                },
            );
        }
        let mut reports = BTreeMap::new();
        for (name, r) in raw.reports {
            let r = r.into_inner();
            let tz = cx.zone_or(r.timezone.as_ref(), &timezone);
            let schedule = cx.schedule(&format!("report {name}"), &r.schedule, &tz);
            let period = r
                .period
                .as_ref()
                .map_or_else(|| "previous-quarter".to_string(), |p| p.get_ref().clone());
            if let Err(e) =
                crate::report::period::Period::parse(&period, &tz, jiff::Timestamp::now())
            {
                let span = r.period.as_ref().map_or(0..0, toml::Spanned::span);
                cx.at(span, format!("report {name}: {e}"));
            }
            let mut formats = Vec::new();
            match &r.formats {
                None => formats.extend([
                    crate::report::Format::Html,
                    crate::report::Format::Csv,
                    crate::report::Format::Json,
                ]),
                Some(f) => {
                    for w in f.get_ref() {
                        match crate::report::Format::parse(w) {
                            Some(x) if !formats.contains(&x) => formats.push(x),
                            Some(_) => {}
                            None => cx.at(
                                f.span(),
                                format!("report {name}: unknown format {w:?}; expected \"html\", \"csv\" or \"json\""),
                            ),
                        }
                    }
                    if f.get_ref().is_empty() {
                        cx.at(f.span(), format!("report {name}: `formats` is empty; list at least one of \"html\", \"csv\", \"json\""));
                    }
                }
            }
            let notify = r
                .notify
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_default();
            if let Some(n) = &r.notify {
                alerting::check_channel_list(&format!("report {name}"), n, &channels, &mut cx);
            }
            if let Some(schedule) = schedule {
                reports.insert(
                    name.clone(),
                    ReportJob {
                        name,
                        schedule,
                        period,
                        formats,
                        notify,
                    },
                );
            }
        }
        if !cx.problems.is_empty() {
            return Err(invalid(cx.problems));
        }
        let agent = raw.agent;
        Ok(Config {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            state_dir: resolve(
                &agent
                    .state_dir
                    .unwrap_or_else(|| PathBuf::from("/var/lib/lifeboat")),
            ),
            scratch_dir: resolve(
                &agent
                    .scratch_dir
                    .unwrap_or_else(|| PathBuf::from("/var/tmp/lifeboat")),
            ),
            timezone,
            max_parallel: agent.max_parallel.unwrap_or(1).max(1),
            free_space_margin: agent.free_space_margin.map_or(256 << 20, |s| s.0),
            sources,
            drills,
            organisation: agent.organisation,
            site: agent.site,
            reports,
            channels,
            watches,
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

#[cfg(test)]
mod tests;
