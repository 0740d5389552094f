//! Phase one: the file's shape, as serde sees it. Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lifeboat_drills::check::CheckConfig;
use lifeboat_drills::select::Strategy;
use lifeboat_drills::source::SourceConfig;
use lifeboat_drills::target::vm::VmTargetConfig;
use lifeboat_drills::units::{Dur, Size};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<SourceConfig>>,
    #[serde(default)]
    pub drills: BTreeMap<String, Spanned<RawDrill>>,
    #[serde(default)]
    pub reports: BTreeMap<String, Spanned<RawReport>>,
    #[serde(default)]
    pub notify: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    pub watches: BTreeMap<String, Spanned<super::alerting::RawWatch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub schedule: Spanned<String>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub period: Option<Spanned<String>>,
    #[serde(default)]
    pub formats: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub notify: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub state_dir: Option<PathBuf>,
    pub scratch_dir: Option<PathBuf>,
    pub timezone: Option<Spanned<String>>,
    pub max_parallel: Option<usize>,
    pub free_space_margin: Option<Size>,
    pub organisation: Option<String>,
    pub site: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug)]
pub struct RawDrill {
    pub description: Option<String>,
    pub source: Spanned<String>,
    pub rto: Dur,
    pub rpo: Dur,
    pub schedule: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub select: Strategy,
    pub select_span: Option<std::ops::Range<usize>>,
    pub window: Option<Dur>,
    pub glob: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub archives: Option<Spanned<Vec<String>>>,
    pub max_restore_size: Option<Size>,
    pub max_entries: Option<u64>,
    pub max_ratio: Option<u64>,
    pub checks: Vec<CheckConfig>,
    pub enabled: bool,
    pub notify: Option<Spanned<Vec<String>>>,
    pub target: Option<Spanned<String>>,
    pub vm: Option<Spanned<VmTargetConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillFields {
    #[serde(default)]
    description: Option<String>,
    source: Spanned<String>,
    rto: Dur,
    rpo: Dur,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    select: Option<Spanned<Strategy>>,
    #[serde(default)]
    window: Option<Dur>,
    #[serde(default)]
    glob: Option<Spanned<String>>,
    #[serde(default)]
    group: Option<Spanned<String>>,
    #[serde(default)]
    archives: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    max_restore_size: Option<Size>,
    #[serde(default)]
    max_entries: Option<u64>,
    #[serde(default)]
    max_ratio: Option<u64>,
    #[serde(default)]
    checks: Vec<CheckConfig>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    notify: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default)]
    vm: Option<Spanned<VmTargetConfig>>,
}

impl<'de> Deserialize<'de> for RawDrill {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = DrillFields::deserialize(d)?;
        Ok(RawDrill {
            description: f.description,
            source: f.source,
            rto: f.rto,
            rpo: f.rpo,
            schedule: f.schedule,
            timezone: f.timezone,
            select_span: f.select.as_ref().map(Spanned::span),
            select: f.select.map(Spanned::into_inner).unwrap_or_default(),
            window: f.window,
            glob: f.glob,
            group: f.group,
            archives: f.archives,
            max_restore_size: f.max_restore_size,
            max_entries: f.max_entries,
            max_ratio: f.max_ratio,
            checks: f.checks,
            enabled: f.enabled,
            notify: f.notify,
            target: f.target,
            vm: f.vm,
        })
    }
}
