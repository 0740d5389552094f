//! Channel configuration the way the agent reads it: `[notify.NAME]` TOML tables with the routing keys
//! removed, deserialised into `ChannelConfig`, paths resolved against the config folder, validated offline.
//! The TOML below is the documented example for every channel type, so the README cannot drift from what
//! parses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use lifeboat_notify::{Channel, ChannelConfig, EventKind};

pub const EXAMPLE: &str = r#"
[notify.ops-mail]
type = "email"
host = "smtp.example.com"
port = 587
tls = "starttls"                      # or "tls" (port 465), or "none" (local relay, port 25)
username = "lifeboat@example.com"
password_file = "secrets/smtp-password"
from = "Lifeboat <lifeboat@example.com>"
to = ["ops@example.com", "Backup Team <backup-team@example.com>"]
# ca_file = "company-ca.pem"          # trust a private CA instead of the system roots
events = ["drill.failed", "drill.error", "backup.stale", "backup.failed"]
min_severity = "warning"
remind_every = "24h"
digest = "0 8 * * *"

[notify.automation]
type = "webhook"
url = "https://automation.example.com/hooks/lifeboat"
secret_file = "secrets/webhook-secret"   # whsec_… (Standard Webhooks)
headers = { "X-Source" = "lifeboat" }

[notify.slack]
type = "slack"
url_file = "secrets/slack-webhook-url"

[notify.teams]
type = "teams"
url_file = "secrets/teams-workflow-url"

[notify.discord]
type = "discord"
url_file = "secrets/discord-webhook-url"
username = "lifeboat"

[notify.phone]
type = "ntfy"
server = "https://ntfy.sh"
topic = "lifeboat-7f3k2m9qx1"
token_file = "secrets/ntfy-token"
min_severity = "error"

[notify.gotify]
type = "gotify"
server = "https://gotify.example.com"
token_file = "secrets/gotify-token"

[notify.pager]
type = "pagerduty"
routing_key_file = "secrets/pagerduty-routing-key"
events = ["drill.failed", "drill.error", "backup.stale", "backup.failed", "backup.verify_failed"]

[notify.deadman]
type = "healthchecks"
ping_key_file = "secrets/healthchecks-ping-key"
create = true
"#;

const ROUTING: [&str; 5] = [
    "events",
    "min_severity",
    "remind_every",
    "digest",
    "digest_timezone",
];

fn secrets(dir: &Path) {
    let s = dir.join("secrets");
    std::fs::create_dir_all(&s).unwrap();
    for (name, value) in [
        ("smtp-password", "pw"),
        ("webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (
            "slack-webhook-url",
            "https://hooks.slack.com/services/T0/B0/XXXX",
        ),
        (
            "teams-workflow-url",
            "https://prod-00.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=Y",
        ),
        (
            "discord-webhook-url",
            "https://discord.com/api/webhooks/1/abc",
        ),
        ("ntfy-token", "tk_abc"),
        ("gotify-token", "AbC.dEf"),
        ("pagerduty-routing-key", "0123456789abcdef0123456789abcdef"),
        ("healthchecks-ping-key", "fqOOd6-F4MMNuCEnzTU01w"),
    ] {
        std::fs::write(s.join(name), format!("{value}\n")).unwrap();
    }
}

/// What the agent does with one table: take the routing keys out, deserialise the rest.
fn parse(table: &toml::Table) -> Result<ChannelConfig, String> {
    let mut t = table.clone();
    for k in ROUTING {
        t.remove(k);
    }
    toml::Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

fn tables(doc: &str) -> Vec<(String, toml::Table)> {
    let v: toml::Table = doc.parse().unwrap();
    v["notify"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_table().unwrap().clone()))
        .collect()
}

#[test]
fn every_documented_example_parses_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    secrets(dir.path());
    let mut kinds = Vec::new();
    for (name, t) in tables(EXAMPLE) {
        let mut cfg = parse(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
        cfg.resolve_paths(dir.path());
        cfg.validate(&name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Channel::new(&name, &cfg).unwrap();
        kinds.push(cfg.kind());
    }
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "discord",
            "email",
            "gotify",
            "healthchecks",
            "ntfy",
            "pagerduty",
            "slack",
            "teams",
            "webhook"
        ]
    );
}

#[test]
fn validation_messages_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let check = |toml_text: &str| -> String {
        let (name, t) = tables(toml_text).remove(0);
        match parse(&t) {
            Err(e) => e,
            Ok(mut c) => {
                c.resolve_paths(dir.path());
                c.validate(&name).err().unwrap_or_default()
            }
        }
    };
    let e = check(
        "[notify.m]\ntype = \"email\"\nhost = \"h\"\ntls = \"starttls\"\nusername = \"u\"\npassword_file = \"missing-pw\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
    );
    assert!(
        e.contains("password_file") && e.contains("missing-pw") && e.contains("create it"),
        "{e}"
    );
    let e = check("[notify.m]\ntype = \"slack\"\nurl_env = \"LIFEBOAT_SURELY_UNSET_VAR_42\"\n");
    assert!(
        e.contains("LIFEBOAT_SURELY_UNSET_VAR_42") && e.contains("url_env"),
        "{e}"
    );
    let e = check("[notify.m]\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\n");
    assert!(
        e.contains("unknown field `url`"),
        "secret URLs inline are refused: {e}"
    );
    let e =
        check("[notify.m]\ntype = \"email\"\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n");
    assert!(e.contains("missing field `tls`"), "{e}");
    let e = check(
        "[notify.m]\ntype = \"email\"\nhost = \"h\"\ntls = \"none\"\nfrom = \"not an address\"\nto = [\"d@e.f\"]\n",
    );
    assert!(e.contains("from:") && e.contains("not an address"), "{e}");
    let e = check("[notify.m]\ntype = \"ntfy\"\ntopic = \"bad topic!\"\n");
    assert!(e.contains("topic"), "{e}");
    let e = check("[notify.m]\ntype = \"pagerduty\"\n");
    assert!(
        e.contains("routing_key_file or routing_key_env is required"),
        "{e}"
    );
    let e = check("[notify.m]\ntype = \"healthchecks\"\n");
    assert!(
        e.contains("url_file/url_env") && e.contains("ping_key_file"),
        "{e}"
    );
    let e = check("[notify.m]\ntype = \"carrier-pigeon\"\n");
    assert!(e.contains("unknown variant `carrier-pigeon`"), "{e}");
    let e = check("[notify.m]\ntype = \"webhook\"\nurl = \"ftp://x\"\n");
    assert!(e.contains("http:// or https://"), "{e}");
    std::fs::write(dir.path().join("sec"), "not-a-whsec!").unwrap();
    let e = check(
        "[notify.m]\ntype = \"webhook\"\nurl = \"https://x.example\"\nsecret_file = \"sec\"\n",
    );
    assert!(e.contains("whsec_") && !e.contains("not-a-whsec!"), "{e}");
}

#[test]
fn default_events_per_kind() {
    for (name, t) in tables(EXAMPLE) {
        let cfg = parse(&t).unwrap();
        let ev = cfg.default_events();
        if cfg.kind() == "healthchecks" {
            assert_eq!(
                ev,
                [
                    EventKind::DrillStarted,
                    EventKind::DrillPassed,
                    EventKind::DrillFailed,
                    EventKind::DrillError
                ]
            );
        } else {
            assert!(
                !ev.contains(&EventKind::DrillStarted) && !ev.contains(&EventKind::DrillPassed),
                "{name}"
            );
            assert!(
                ev.contains(&EventKind::DrillFailed) && ev.contains(&EventKind::Test),
                "{name}"
            );
        }
    }
}
