use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/lifeboat/test.toml"), text)
}

const GOOD: &str = r#"
[agent]
state_dir = "state"
scratch_dir = "/var/tmp/lb"
timezone = "Europe/Berlin"

[sources.nas]
type = "local"
path = "backups/app"

[drills.app]
source = "nas"
rto = "30m"
rpo = "26h"
schedule = "0 3 * * *"
select = "random-within"
window = "7d"

[[drills.app.checks]]
type = "files"
required = ["etc/app.conf"]
min_files = 3
max_shrink = "40%"

[[drills.app.checks]]
type = "command"
run = "test -s data/app.db"
timeout = "1m"
"#;

#[test]
fn good_config_resolves_paths_and_units() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/etc/lifeboat/state"));
    assert_eq!(c.scratch_dir, PathBuf::from("/var/tmp/lb"));
    let d = &c.drills["app"];
    assert_eq!(d.rpo, Duration::from_secs(26 * 3600));
    assert_eq!(d.selection.strategy, Strategy::RandomWithin);
    assert_eq!(d.checks.len(), 2);
    match &c.sources["nas"] {
        SourceConfig::Local(l) => assert_eq!(l.path, PathBuf::from("/etc/lifeboat/backups/app")),
        other => panic!("{other:?}"),
    }
}

fn problems(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn unknown_key_is_located() {
    let text = GOOD.replace("rpo = \"26h\"", "rpo = \"26h\"\nsorce = \"x\"");
    let e = problems(&text);
    assert!(e.starts_with("/etc/lifeboat/test.toml:15:1: "), "{e}");
    assert!(e.contains("unknown field `sorce`"), "{e}");
}

#[test]
fn bad_duration_is_located() {
    let e = problems(&GOOD.replace("rto = \"30m\"", "rto = \"30 minutes please\""));
    assert!(e.contains("test.toml:13:7: duration"), "{e}");
    assert!(e.contains("units: s, m, h, d, w"), "{e}");
}

#[test]
fn missing_source_is_located() {
    let e = problems(&GOOD.replace("source = \"nas\"", "source = \"nass\""));
    assert!(
        e.contains(
            "test.toml:12:10: drill app: source \"nass\" is not defined; defined sources: nas"
        ),
        "{e}"
    );
}

#[test]
fn bad_cron_is_located() {
    let e = problems(&GOOD.replace("0 3 * * *", "0 0 3 * * *"));
    assert!(e.contains("test.toml:15:12:"), "{e}");
    assert!(e.contains("6 fields"), "{e}");
    let e = problems(&GOOD.replace("0 3 * * *", "61 3 * * *"));
    assert!(e.contains("invalid schedule"), "{e}");
}

#[test]
fn wrong_type_and_bad_zone() {
    let e = problems(&GOOD.replace("min_files = 3", "min_files = \"three\""));
    assert!(e.contains("test.toml:"), "{e}");
    let e = problems(&GOOD.replace("Europe/Berlin", "Mars/Olympus"));
    assert!(
        e.contains("test.toml:5:12: unknown time zone \"Mars/Olympus\""),
        "{e}"
    );
}

#[test]
fn unknown_check_type_and_source_type() {
    let e = problems(&GOOD.replace("type = \"files\"", "type = \"filez\""));
    assert!(e.contains("filez"), "{e}");
    let e = problems(&GOOD.replace("type = \"local\"", "type = \"ftp\""));
    assert!(e.contains("ftp") && e.contains("local"), "{e}");
}

#[test]
fn unknown_key_inside_source_and_check() {
    let e = problems(&GOOD.replace("path = \"backups/app\"", "path = \"backups/app\"\npaht = 1"));
    assert!(e.contains("paht"), "{e}");
    let e = problems(&GOOD.replace("min_files = 3", "min_filez = 3"));
    assert!(e.contains("min_filez"), "{e}");
}

#[test]
fn cron_is_vixie() {
    let c = parse_cron("0 3 * * 0").unwrap();
    let z = jiff::civil::date(2026, 11, 21)
        .at(12, 0, 0, 0)
        .in_tz("UTC")
        .unwrap();
    let next = c.find_next_occurrence(&z, false).unwrap();
    assert_eq!(next.weekday(), jiff::civil::Weekday::Sunday);
}

#[test]
fn reports_and_organisation() {
    let text = GOOD.replace(
        "timezone = \"Europe/Berlin\"\n",
        "timezone = \"Europe/Berlin\"\norganisation = \"Example GmbH\"\nsite = \"Berlin DC1\"\n",
    ) + r#"
[reports.quarterly]
schedule = "0 6 1 1,4,7,10 *"
period = "previous-quarter"
formats = ["html", "csv", "json"]
notify = ["compliance-team"]

[notify.compliance-team]
type = "webhook"
url = "https://hooks.example.com/lifeboat"

[reports.monthly]
schedule = "0 6 1 * *"
period = "previous-month"
formats = ["csv"]
"#;
    let c = parse(&text).unwrap();
    assert_eq!(c.organisation.as_deref(), Some("Example GmbH"));
    assert_eq!(c.site.as_deref(), Some("Berlin DC1"));
    let q = &c.reports["quarterly"];
    assert_eq!(q.formats.len(), 3);
    assert_eq!(q.notify, vec!["compliance-team".to_string()]);
    assert_eq!(q.schedule.tz.iana_name(), Some("Europe/Berlin"));
    assert_eq!(
        c.reports["monthly"].formats,
        vec![crate::report::Format::Csv]
    );
}

#[test]
fn bad_report_tables_are_located() {
    let text = GOOD.to_string()
        + r#"
[reports.q]
schedule = "0 6 1 1,4,7,10 *"
period = "last-week"
formats = ["pdf"]
notify = ["ops team"]
"#;
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("report q: period \"last-week\""), "{e}");
    assert!(e.contains("unknown format \"pdf\""), "{e}");
    assert!(e.contains("notify channel \"ops team\""), "{e}");
    // Every problem has a line number.
    assert_eq!(
        e.lines()
            .filter(|l| l.starts_with("/etc/lifeboat/test.toml:"))
            .count(),
        3,
        "{e}"
    );
    let e = parse(&(GOOD.to_string() + "[reports.q]\nschedule = \"0 6\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("report q:") && e.contains("5-field"), "{e}");
    let e =
        parse(&(GOOD.to_string() + "[reports.q]\nschedule = \"0 6 * * *\"\nformat = [\"csv\"]\n"))
            .unwrap_err()
            .to_string();
    assert!(e.contains("unknown field `format`"), "{e}");
}

/// The shipped example is what users copy: every section of it must parse (files it names need not exist
/// here; `check-config` reads those on the real host).
#[test]
fn the_example_configuration_parses() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("../../../examples/lifeboat.toml");
    // The secret files it names, with placeholder contents, in a folder of our own.
    for f in text.split("\"/etc/lifeboat/").skip(1) {
        let name = f.split('"').next().unwrap();
        // 32 characters: also the shape of a PagerDuty integration key.
        std::fs::write(dir.path().join(name), "0123456789abcdef0123456789abcdef\n").unwrap();
    }
    let etc = format!("{}/", dir.path().display());
    let text = text.replace("/etc/lifeboat/", &etc);
    let c = parse(&text).unwrap_or_else(|e| panic!("examples/lifeboat.toml: {e}"));
    for name in ["app", "erp-vm", "erp-boot", "web-ct", "postgres-offsite"] {
        assert!(c.drills.contains_key(name), "drill {name}");
    }
}
