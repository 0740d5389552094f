//! Slack, Teams, Discord, ntfy, Gotify, PagerDuty and healthchecks against a real recording HTTP receiver:
//! every payload checked field by field against `shared/reference/notifications.md` (§ numbers below).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{at, channel, failed, info, secret_file};
use lifeboat_fixtures::http_sink::{HttpSink, Reply};
use lifeboat_notify::{EventKind, Retry, Severity, Transition};
use serde_json::json;

const ROUTING_KEY: &str = "R0123456789abcdefABCDEF012345678";

/// §4.1: `text` fallback, Block Kit header / section / fields / context, `&<>` escaped.
#[tokio::test]
async fn slack_block_kit() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let url = sink.url("/services/T000/B000/XXXXSECRET");
    let ch = channel(json!({"type": "slack", "url_file": secret_file(dir.path(), "slack", &url)}));
    let n = failed("s1");
    ch.deliver(&n).await.unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.path, "/services/T000/B000/XXXXSECRET");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let p = r.json();
    let text = p["text"].as_str().unwrap();
    assert!(
        text.starts_with("[lifeboat] FAILED drill app: integrity: archive checksum\nFAILED:"),
        "{text}"
    );
    assert!(
        text.contains("checksum &lt;mismatch&gt; &amp; more"),
        "{text}"
    );
    let blocks = p["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":red_circle: [lifeboat] FAILED drill app: integrity: archive checksum"
    );
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .ends_with("checksum &lt;mismatch&gt; &amp; more")
    );
    let fields = blocks[2]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 4);
    assert_eq!(
        fields[2],
        json!({"type": "mrkdwn", "text": "*RTA vs RTO*\n4m 12s (RTO 30m) — met"})
    );
    let checks = blocks[3]["text"]["text"].as_str().unwrap();
    assert!(checks.starts_with("*Checks that did not pass*\n• *integrity: archive checksum*: FAILED, expected `sha256 9f2c`, actual `sha256 0b7e`"), "{checks}");
    assert!(checks.contains("1 other check passed."));
    assert!(
        !checks.contains("file count"),
        "passed checks are only counted"
    );
    assert_eq!(
        blocks[4]["text"]["text"],
        "```restore log: 24 files, 1 mismatch```"
    );
    let ctx = &blocks[5];
    assert_eq!(ctx["type"], "context");
    assert_eq!(
        ctx["elements"][0]["text"],
        "Reproduce: `lifeboat --config /etc/lifeboat/lifeboat.toml drill app`"
    );
    for b in blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(t.chars().count() <= 3000);
        }
    }
}

/// §4.2: `{"type":"message","attachments":[{contentType adaptive, contentUrl null, content: AdaptiveCard 1.4}]}`.
#[tokio::test]
async fn teams_adaptive_card() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start_with([Reply::status(202)]).unwrap();
    let url = sink.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIGSECRET");
    let ch = channel(json!({"type": "teams", "url_file": secret_file(dir.path(), "teams", &url)}));
    let mut n = failed("t1");
    n.data["report_url"] = json!("https://reports.example.com/q1.html");
    assert_eq!(ch.deliver(&n).await.unwrap().detail, "HTTP 202");
    let r = &sink.requests()[0];
    assert_eq!(r.query.as_deref(), Some("api-version=1&sig=SIGSECRET"));
    let p = r.json();
    assert_eq!(p["type"], "message");
    let a = &p["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(a["contentUrl"].is_null() && a.as_object().unwrap().contains_key("contentUrl"));
    let c = &a["content"];
    assert_eq!(
        c["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(c["type"], "AdaptiveCard");
    assert_eq!(c["version"], "1.4");
    let body = c["body"].as_array().unwrap();
    assert_eq!(body[0]["type"], "TextBlock");
    assert_eq!(body[0]["text"], n.title.as_str());
    assert_eq!(body[0]["weight"], "Bolder");
    assert_eq!(body[0]["size"], "Medium");
    assert_eq!(body[0]["wrap"], true);
    assert_eq!(body[0]["color"], "Attention");
    assert_eq!(body[1]["text"], n.summary.as_str());
    assert_eq!(body[2]["type"], "FactSet");
    assert_eq!(
        body[2]["facts"][3],
        json!({"title": "RPA vs RPO", "value": "26h (RPO 24h) — MISSED"})
    );
    let checks = body
        .iter()
        .filter(|b| b["type"] == "FactSet")
        .nth(1)
        .unwrap();
    assert_eq!(
        checks["facts"][0],
        json!({"title": "integrity: archive checksum", "value": "FAILED: expected sha256 9f2c, actual sha256 0b7e. data/app.db differs"})
    );
    assert!(body.iter().any(|b| b["fontType"] == "Monospace"
        && b["text"] == "lifeboat --config /etc/lifeboat/lifeboat.toml drill app"));
    assert_eq!(
        c["actions"],
        json!([{"type": "Action.OpenUrl", "title": "Report", "url": "https://reports.example.com/q1.html"}])
    );

    sink.clear();
    ch.deliver(&at(failed("t2"), "t2", Transition::Resolve))
        .await
        .unwrap();
    let c = &sink.requests()[0].json()["attachments"][0]["content"];
    assert_eq!(c["body"][0]["color"], "Good");
    assert!(c.get("actions").is_none(), "no report, no action");
}

/// §4.3: one embed, colour by severity, limits, no mentions.
#[tokio::test]
async fn discord_embed() {
    let sink = HttpSink::start_with([Reply::status(204)]).unwrap();
    // The URL may also come from the environment; this test uses a file.
    let dir = tempfile::tempdir().unwrap();
    let url = sink.url("/api/webhooks/123/TOKEN");
    let ch = channel(
        json!({"type": "discord", "url_file": secret_file(dir.path(), "d", &url), "username": "lifeboat"}),
    );
    let mut n = failed("d1");
    n.summary.push_str(" @everyone *now*");
    assert_eq!(ch.deliver(&n).await.unwrap().detail, "HTTP 204");
    let p = sink.requests()[0].json();
    assert_eq!(p["username"], "lifeboat");
    assert_eq!(p["allowed_mentions"], json!({"parse": []}));
    assert!(p.get("content").is_none());
    let e = &p["embeds"][0];
    assert_eq!(e["title"], n.title.as_str());
    assert_eq!(e["color"], 0x7F1D1D);
    assert_eq!(e["timestamp"], "2026-03-01T02:00:00Z");
    let d = e["description"].as_str().unwrap();
    assert!(d.contains("@everyone \\*now\\*"), "markdown escaped: {d}");
    assert!(d.contains("• **integrity: archive checksum**: FAILED, expected `sha256 9f2c`, actual `sha256 0b7e`"), "{d}");
    assert!(
        d.contains("Reproduce: `lifeboat --config /etc/lifeboat/lifeboat.toml drill app`"),
        "{d}"
    );
    assert_eq!(
        e["fields"][0],
        json!({"name": "Drill", "value": "app", "inline": true})
    );
    assert!(
        e["footer"]["text"]
            .as_str()
            .unwrap()
            .contains("drill.failed")
    );

    let colours = [
        (Severity::Warning, 0xF59E0B),
        (Severity::Error, 0xDC2626),
        (Severity::Info, 0x3B82F6),
    ];
    for (sev, colour) in colours {
        let mut n = failed("d2");
        n.severity = sev;
        ch.deliver(&n).await.unwrap();
        assert_eq!(
            sink.requests().last().unwrap().json()["embeds"][0]["color"],
            colour
        );
    }
    ch.deliver(&at(failed("d3"), "d3", Transition::Resolve))
        .await
        .unwrap();
    assert_eq!(
        sink.requests().last().unwrap().json()["embeds"][0]["color"],
        0x2EB67D
    );
}

/// §4.4: JSON publish to the server root with topic, title, message, priority, tags; bearer token.
#[tokio::test]
async fn ntfy_publish() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let ch = channel(json!({
        "type": "ntfy", "server": sink.url(""), "topic": "lifeboat-alerts_7x",
        "token_file": secret_file(dir.path(), "tok", "tk_secrettoken123"), "tags": ["prod"],
    }));
    ch.deliver(&failed("n1")).await.unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/");
    assert_eq!(r.header("authorization"), Some("Bearer tk_secrettoken123"));
    let p = r.json();
    assert_eq!(p["topic"], "lifeboat-alerts_7x");
    assert_eq!(
        p["title"],
        "[lifeboat] FAILED drill app: integrity: archive checksum"
    );
    assert_eq!(p["priority"], 5);
    assert_eq!(
        p["tags"],
        json!(["rotating_light", "lifeboat", "drill.failed", "prod"])
    );
    let m = p["message"].as_str().unwrap();
    assert!(m.starts_with("FAILED: the backup is bad"), "{m}");
    assert!(
        m.contains("expected: sha256 9f2c") && m.contains("Reproduce:\n  lifeboat"),
        "{m}"
    );

    let mut w = failed("n2");
    w.severity = Severity::Warning;
    w.event = EventKind::BackupStale;
    ch.deliver(&w).await.unwrap();
    let p = sink.requests()[1].json();
    assert_eq!(p["priority"], 4);
    assert_eq!(p["tags"][0], "warning");
    ch.deliver(&at(failed("n3"), "n3", Transition::Resolve))
        .await
        .unwrap();
    let p = sink.requests()[2].json();
    assert_eq!(p["priority"], 3);
    assert_eq!(p["tags"][0], "white_check_mark");
}

/// §4.5: POST {server}/message, token in X-Gotify-Key, Markdown extra, priority 0–10.
#[tokio::test]
async fn gotify_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let ch = channel(json!({
        "type": "gotify", "server": sink.url("/gotify"),
        "token_file": secret_file(dir.path(), "tok", "AppTokenXYZ.123"),
    }));
    ch.deliver(&failed("g1")).await.unwrap();
    let r = &sink.requests()[0];
    assert_eq!(r.path, "/gotify/message");
    assert_eq!(r.query, None, "the token is not in the URL");
    assert_eq!(r.header("x-gotify-key"), Some("AppTokenXYZ.123"));
    let p = r.json();
    assert_eq!(
        p["title"],
        "[lifeboat] FAILED drill app: integrity: archive checksum"
    );
    assert_eq!(p["priority"], 10);
    assert_eq!(
        p["extras"]["client::display"]["contentType"],
        "text/markdown"
    );
    let m = p["message"].as_str().unwrap();
    assert!(m.starts_with("FAILED: the backup is bad"), "{m}");
    assert!(m.contains("checksum \\<mismatch\\> & more"), "{m}");
    assert!(
        m.contains("- **RTA vs RTO:** 4m 12s (RTO 30m) — met"),
        "{m}"
    );
    assert!(m.contains("- **integrity: archive checksum**: FAILED, expected `sha256 9f2c`, actual `sha256 0b7e`"), "{m}");
    let mut e = failed("g2");
    e.severity = Severity::Error;
    ch.deliver(&e).await.unwrap();
    assert_eq!(sink.requests()[1].json()["priority"], 8);
}

/// §4.6: trigger → resolve with the same dedup_key and routing_key; info is not sent; test = trigger+resolve.
#[tokio::test]
async fn pagerduty_trigger_remind_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start_with([
        Reply::status(202).body("{\"status\":\"success\",\"message\":\"Event processed\",\"dedup_key\":\"site-a/drill/app\"}"),
    ])
    .unwrap();
    sink.set_default(Reply::status(202).body("{\"status\":\"success\"}"));
    let ch = channel(json!({
        "type": "pagerduty", "url": sink.url("/v2/enqueue"), "source": "backup-host-1",
        "routing_key_file": secret_file(dir.path(), "pd", ROUTING_KEY),
    }));
    let d = ch.deliver(&failed("p1")).await.unwrap();
    assert!(d.detail.starts_with("HTTP 202"), "{}", d.detail);
    ch.deliver(&at(failed("p2"), "p2", Transition::Remind))
        .await
        .unwrap();
    ch.deliver(&at(failed("p3"), "p3", Transition::Resolve))
        .await
        .unwrap();
    let r = sink.requests();
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| x.path == "/v2/enqueue"));
    let t = r[0].json();
    assert_eq!(t["routing_key"], ROUTING_KEY);
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], "site-a/drill/app");
    let pl = &t["payload"];
    assert_eq!(
        pl["summary"],
        "[lifeboat] FAILED drill app: integrity: archive checksum"
    );
    assert_eq!(pl["source"], "backup-host-1");
    assert_eq!(pl["severity"], "critical");
    assert_eq!(pl["timestamp"], "2026-03-01T02:00:00Z");
    assert_eq!(pl["component"], "app");
    assert_eq!(pl["group"], "site-a");
    assert_eq!(pl["class"], "drill.failed");
    assert_eq!(
        pl["custom_details"]["facts"]["RPA vs RPO"],
        "26h (RPO 24h) — MISSED"
    );
    assert_eq!(
        pl["custom_details"]["failing_checks"][0],
        "integrity: archive checksum: FAILED (expected sha256 9f2c, actual sha256 0b7e): data/app.db differs"
    );
    assert_eq!(
        pl["custom_details"]["reproduce"],
        "lifeboat --config /etc/lifeboat/lifeboat.toml drill app"
    );
    assert_eq!(t["client"], "lifeboat");
    let remind = r[1].json();
    assert_eq!(remind["event_action"], "trigger");
    assert_eq!(remind["dedup_key"], "site-a/drill/app");
    let res = r[2].json();
    assert_eq!(
        res,
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "site-a/drill/app"})
    );

    let d = ch
        .deliver(&info("p4", EventKind::DrillPassed))
        .await
        .unwrap();
    assert!(d.detail.starts_with("skipped"), "{}", d.detail);
    assert_eq!(
        sink.requests().len(),
        3,
        "information is not sent to PagerDuty"
    );

    ch.deliver(&info("p5", EventKind::Test)).await.unwrap();
    let r = sink.requests();
    assert_eq!(r.len(), 5);
    let (a, b) = (r[3].json(), r[4].json());
    assert_eq!(
        (a["event_action"].as_str(), b["event_action"].as_str()),
        (Some("trigger"), Some("resolve"))
    );
    assert_eq!(a["payload"]["severity"], "info");
    assert_eq!(a["dedup_key"], b["dedup_key"]);
    assert_eq!(a["dedup_key"], "lifeboat-test/p5");
}

/// A rejected routing key is permanent and the key is not in the message.
#[tokio::test]
async fn pagerduty_rejection_hides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start_with([Reply::status(400)
        .body(&format!("{{\"status\":\"invalid event\",\"message\":\"Event object is invalid\",\"errors\":[\"routing_key {ROUTING_KEY} unknown\"]}}"))])
    .unwrap();
    let ch = channel(json!({"type": "pagerduty", "url": sink.url("/v2/enqueue"),
                            "routing_key_file": secret_file(dir.path(), "pd", ROUTING_KEY)}));
    let e = ch.deliver(&failed("p6")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(
        e.message.contains("HTTP 400") && e.message.contains("invalid event"),
        "{}",
        e.message
    );
    assert!(!e.message.contains(ROUTING_KEY), "{}", e.message);
}

/// §4.7, ping-URL form: start → /start, passed → base, failed/error → /fail with a body ≤ 10 000 bytes,
/// test → /log, anything else is not a ping.
#[tokio::test]
async fn healthchecks_ping_url() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let uuid = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";
    let url = sink.url(&format!("/{uuid}"));
    let ch =
        channel(json!({"type": "healthchecks", "url_file": secret_file(dir.path(), "hc", &url)}));
    ch.deliver(&info("h1", EventKind::DrillStarted))
        .await
        .unwrap();
    ch.deliver(&info("h2", EventKind::DrillPassed))
        .await
        .unwrap();
    let mut big = failed("h3");
    big.details = vec!["x".repeat(20_000)];
    ch.deliver(&big).await.unwrap();
    let mut err = failed("h4");
    err.event = EventKind::DrillError;
    err.summary = "ERROR: the drill could not run, so it proves nothing either way.".into();
    ch.deliver(&err).await.unwrap();
    ch.deliver(&info("h5", EventKind::Test)).await.unwrap();
    let skipped = ch
        .deliver(&info("h6", EventKind::BackupStale))
        .await
        .unwrap();
    assert!(skipped.detail.starts_with("skipped"), "{}", skipped.detail);
    let r = sink.requests();
    let paths: Vec<&str> = r.iter().map(|x| x.path.as_str()).collect();
    let base = format!("/{uuid}");
    assert_eq!(
        paths,
        vec![
            format!("{base}/start"),
            base.clone(),
            format!("{base}/fail"),
            format!("{base}/fail"),
            format!("{base}/log")
        ]
    );
    assert!(r.iter().all(|x| x.method == "POST"));
    assert!(r[0].text().contains("drill.started"), "{}", r[0].text());
    assert!(r[2].body.len() <= 10_000, "{}", r[2].body.len());
    assert!(
        r[2].text().starts_with("[lifeboat] FAILED drill app"),
        "{}",
        r[2].text()
    );
    assert!(r[2].text().contains("expected: sha256 9f2c"));
    assert!(
        r[3].text().contains("ERROR: the drill could not run"),
        "error is spelled out, not folded into failed"
    );
    assert_eq!(
        r[2].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

/// §4.7, slug form: `<server>/<ping-key>/<slug>[/fail]?create=1`.
#[tokio::test]
async fn healthchecks_ping_key_and_slug() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let ch = channel(json!({
        "type": "healthchecks", "server": sink.url(""), "create": true,
        "ping_key_file": secret_file(dir.path(), "pk", "fqOOd6-F4MMNuCEnzTU01w"),
    }));
    let mut n = failed("k1");
    n.asset = "pbs/vm/101".into();
    ch.deliver(&n).await.unwrap();
    let mut ok = info("k2", EventKind::DrillPassed);
    ok.asset = "pbs/vm/101".into();
    ch.deliver(&ok).await.unwrap();
    let r = sink.requests();
    assert_eq!(r[0].path, "/fqOOd6-F4MMNuCEnzTU01w/pbs-vm-101/fail");
    assert_eq!(r[0].query.as_deref(), Some("create=1"));
    assert_eq!(r[1].path, "/fqOOd6-F4MMNuCEnzTU01w/pbs-vm-101");
}

/// Every chat/push channel: 503 → transient, 429 + Retry-After → transient with the delay, 410 → permanent.
#[tokio::test]
async fn shared_classification_for_every_http_channel() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        "slack",
        "teams",
        "discord",
        "ntfy",
        "gotify",
        "pagerduty",
        "healthchecks",
    ] {
        let sink = HttpSink::start_with([
            Reply::status(503),
            Reply::status(429).header("Retry-After", "30"),
            Reply::status(410).body("Gone"),
        ])
        .unwrap();
        let url_file = secret_file(dir.path(), kind, &sink.url("/hook/TOKEN123"));
        let cfg = match kind {
            "ntfy" => json!({"type": kind, "server": sink.url(""), "topic": "t"}),
            "gotify" => {
                json!({"type": kind, "server": sink.url(""), "token_file": secret_file(dir.path(), "gt", "tok-gotify")})
            }
            "pagerduty" => {
                json!({"type": kind, "url": sink.url("/v2/enqueue"), "routing_key_file": secret_file(dir.path(), "pk", ROUTING_KEY)})
            }
            _ => json!({"type": kind, "url_file": url_file}),
        };
        let ch = channel(cfg);
        let n = failed("x");
        let e = ch.deliver(&n).await.unwrap_err();
        assert_eq!(e.retry, Retry::Transient { after: None }, "{kind}: {e}");
        let e = ch.deliver(&n).await.unwrap_err();
        assert_eq!(
            e.retry,
            Retry::Transient {
                after: Some(std::time::Duration::from_secs(30))
            },
            "{kind}: {e}"
        );
        let e = ch.deliver(&n).await.unwrap_err();
        assert_eq!(e.retry, Retry::Permanent, "{kind}: {e}");
        assert!(!e.message.contains("TOKEN123"), "{kind}: {}", e.message);
        assert_eq!(sink.requests().len(), 3, "{kind}");
    }
}
