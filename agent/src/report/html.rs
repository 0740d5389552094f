//! The HTML rendering: one self-contained file (inline CSS and SVG, no scripts, no web fonts, nothing
//! fetched) that reads on screen, follows the system's dark mode and prints to A4 with one section per page
//! group. It is rendered from the same [`Report`] value as the JSON, section by section in the order an
//! auditor reads: header, summary, scope and coverage, charts, KPIs, exceptions, backup health, run
//! records, ledger.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::model::{Kpi, Report, RunRecord};
use super::svg::{self, Day, RtaPoint, dur};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root{--fg:#1b1f24;--bg:#fff;--muted:#5b6470;--line:#d5dae0;--pass:#1a7f37;--fail:#cf222e;--err:#bc4c00;--none:#d0d7de;--card:#f6f8fa}
@media (prefers-color-scheme: dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9aa5b1;--line:#30363d;--pass:#3fb950;--fail:#f85149;--err:#db8b3a;--none:#30363d;--card:#161b22}}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid var(--line);padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:18px 0 6px}
.muted{color:var(--muted)}.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;word-break:break-all}.mono.sched{white-space:nowrap;word-break:normal}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--card);font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr{break-inside:avoid}thead{display:table-header-group}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:12px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px}.card b{display:block;font-size:22px}
.ok{color:var(--pass);font-weight:600}.bad{color:var(--fail);font-weight:600}.warn{color:var(--err);font-weight:600}
.chart{width:100%;height:auto;display:block;margin:4px 0 10px}.chart .axis{stroke:var(--muted);stroke-width:1}
.chart .lbl{fill:var(--muted);font-size:10px}.chart .obj{stroke:var(--fail);stroke-width:1.5;stroke-dasharray:5 3}.chart .obj-t{fill:var(--fail)}
.chart .pass{fill:var(--pass)}.chart .fail{fill:var(--fail)}.chart .err{fill:var(--err)}.chart .none{fill:var(--none)}
.chart .fail-x{stroke:var(--fail);stroke-width:1.5;fill:none}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.asset{break-inside:avoid}
details summary{cursor:pointer}
@page{size:A4;margin:14mm 12mm}
@media print{body{max-width:none;padding:0;font-size:10.5px}section{break-before:page}section.first{break-before:auto}.card b{font-size:16px}details{display:block}details>summary{display:none}}
"#;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{:.1}%", x * 100.0))
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), dur)
}

fn met(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => r#"<span class="ok">met</span>"#,
        Some(false) => r#"<span class="bad">breached</span>"#,
        None => r#"<span class="muted">–</span>"#,
    }
}

fn outcome(o: &str) -> String {
    let class = match o {
        "passed" => "ok",
        "failed" => "bad",
        "error" => "warn",
        _ => "muted",
    };
    format!(r#"<span class="{class}">{}</span>"#, esc(o))
}

fn when(t: jiff::Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn kpi_row(out: &mut String, label: &str, k: &Kpi, rto: Option<f64>) {
    let _ = write!(
        out,
        r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
        esc(label),
        k.planned,
        k.run,
        k.passed,
        k.failed,
        k.error,
        pct(k.pass_rate),
        secs(k.rta_median_seconds),
        secs(k.rta_p95_seconds),
        secs(k.rta_max_seconds),
        rto.map_or_else(|| "–".into(), dur),
        pct(k.rpo_compliance),
    );
}

const KPI_HEAD: &str = r#"<thead><tr><th></th><th class="n">planned</th><th class="n">run</th><th class="n">passed</th><th class="n">failed</th><th class="n">error</th><th class="n">pass rate</th><th class="n">median RTA</th><th class="n">p95 RTA</th><th class="n">max RTA</th><th class="n">RTO</th><th class="n">RPO compliance</th></tr></thead>"#;

fn days_of(r: &Report, tz: &TimeZone) -> Vec<Date> {
    let first = r.header.period.from.to_zoned(tz.clone()).date();
    let last = r.header.period.to.to_zoned(tz.clone()).date();
    let mut v = Vec::new();
    let mut d = first;
    while d < last && v.len() < 3700 {
        v.push(d);
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    v
}

fn asset_charts(out: &mut String, r: &Report, tz: &TimeZone, runs: &[&RunRecord], drill: &str) {
    let Some(a) = r.coverage.assets.iter().find(|a| a.drill == drill) else {
        return;
    };
    let p = &r.header.period;
    let pts: Vec<RtaPoint> = runs
        .iter()
        .map(|x| RtaPoint {
            at: x.started_at,
            rta: x.rta_seconds,
            passed: x.outcome == "passed",
        })
        .collect();
    let days = days_of(r, tz);
    let mut worst: BTreeMap<Date, Day> = BTreeMap::new();
    for x in runs {
        let d = x.started_at.to_zoned(tz.clone()).date();
        let s = match x.outcome.as_str() {
            "passed" => Day::Passed,
            "failed" => Day::Failed,
            "error" => Day::Error,
            _ => Day::None,
        };
        let e = worst.entry(d).or_insert(Day::None);
        let rank = |d: Day| match d {
            Day::None => 0,
            Day::Passed => 1,
            Day::Error => 2,
            Day::Failed => 3,
        };
        if rank(s) > rank(*e) {
            *e = s;
        }
    }
    let strip: Vec<Day> = days
        .iter()
        .map(|d| worst.get(d).copied().unwrap_or(Day::None))
        .collect();
    let labels: Vec<(usize, String)> = days
        .iter()
        .enumerate()
        .filter(|(_, d)| d.day() == 1 || days.len() <= 14)
        .map(|(i, d)| (i, d.strftime("%b %d").to_string()))
        .collect();
    let rpas: Vec<f64> = runs.iter().filter_map(|x| x.rpa_seconds).collect();
    let _ = write!(
        out,
        r#"<div class="asset"><h3>{} <span class="muted">RTO {}, RPO {}, {} runs</span></h3>"#,
        esc(drill),
        dur(a.rto_seconds),
        dur(a.rpo_seconds),
        runs.len()
    );
    out.push_str(&svg::rta_chart(
        &format!("{drill}: RTA per run against the RTO"),
        &pts,
        p.from,
        p.to,
        a.rto_seconds,
    ));
    out.push_str(&svg::calendar_strip(
        &format!("{drill}: worst outcome per day"),
        &strip,
        &labels,
    ));
    out.push_str(&svg::rpa_histogram(
        &format!("{drill}: RPA distribution against the RPO"),
        &rpas,
        a.rpo_seconds,
    ));
    out.push_str("</div>");
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let h = &r.header;
    let tz = TimeZone::get(&h.period.timezone).unwrap_or(TimeZone::UTC);
    let mut o = String::with_capacity(4096 + r.runs.len() * 600);
    let title = format!(
        "Restore drill compliance report {}{}",
        h.period.label,
        h.organisation
            .as_deref()
            .map(|x| format!(" — {x}"))
            .unwrap_or_default()
    );
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark"><meta name="generator" content="{}"><title>{}</title><style>{CSS}</style></head><body>"#,
        esc(&h.generator),
        esc(&title)
    );
    // Header.
    let ledger_state = if h.ledger.intact {
        r#"<span class="ok">intact</span>"#.to_string()
    } else {
        format!(
            r#"<span class="bad">BROKEN</span>{}"#,
            h.ledger
                .first_break
                .as_ref()
                .map(|b| format!(
                    " at entry #{} (run {}): {}",
                    b.seq,
                    esc(&b.run_id),
                    esc(&b.problem)
                ))
                .unwrap_or_default()
        )
    };
    let _ = write!(
        o,
        r#"<section class="first"><h1>{}</h1><p class="muted">RTO/RPO restore drill evidence (ISO/IEC 27001 A.8.13, A.5.30; SOC 2 A1.2, A1.3; NIS2 CIR 4.2.3, 4.2.6; DORA Art. 12; CIS 11.5; NIST CP-4, CP-9(2))</p>
<table><tbody>
<tr><th>Organisation</th><td>{}</td><th>Site</th><td>{}</td></tr>
<tr><th>Period</th><td>{} — {} to {} ({}, end exclusive){}</td><th>Generated</th><td>{} UTC</td></tr>
<tr><th>Generator</th><td>{}</td><th>Configuration</th><td class="mono">{}<br>sha256 {}</td></tr>
<tr><th>Evidence ledger</th><td colspan="3">{ledger_state}, {} entries; head <span class="mono">{}</span></td></tr>
</tbody></table>"#,
        esc(&title),
        esc(h
            .organisation
            .as_deref()
            .unwrap_or("(not set: [agent] organisation)")),
        esc(h.site.as_deref().unwrap_or("(not set: [agent] site)")),
        esc(&h.period.label),
        when(h.period.from, &tz),
        when(h.period.to, &tz),
        esc(&h.period.timezone),
        if h.period.as_of < h.period.to {
            format!(", figures as of {}", when(h.period.as_of, &tz))
        } else {
            String::new()
        },
        h.generated_at.strftime("%Y-%m-%d %H:%M:%S"),
        esc(&h.generator),
        esc(&h.config_path),
        esc(&h.config_sha256),
        h.ledger.entries,
        esc(h.ledger.head_hash.as_deref().unwrap_or("(empty)")),
    );
    // Summary cards.
    let k = &r.kpis.overall;
    let c = &r.coverage;
    let _ = write!(
        o,
        r#"<div class="cards"><div class="card">Assets drilled<b>{} / {}</b></div><div class="card">Drills planned / run / passed<b>{} / {} / {}</b></div><div class="card">Pass rate<b>{}</b></div><div class="card">RPO compliance<b>{}</b></div><div class="card">Exceptions<b>{}</b></div></div></section>"#,
        c.assets_drilled,
        c.assets_in_scope,
        k.planned,
        k.run,
        k.passed,
        pct(k.pass_rate),
        pct(k.rpo_compliance),
        r.exceptions.len()
    );
    // Scope and coverage.
    o.push_str(r#"<section><h2>Scope and coverage</h2><table><thead><tr><th>asset (drill)</th><th>source</th><th class="n">RTO</th><th class="n">RPO</th><th>schedule</th><th class="n">planned</th><th class="n">run</th><th class="n">passed</th><th>sampling</th></tr></thead><tbody>"#);
    for a in &c.assets {
        let _ = write!(
            o,
            r#"<tr><td>{}{}<br><span class="muted">{}</span></td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="mono sched">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            esc(&a.drill),
            if !a.configured {
                " <span class=\"muted\">(removed from configuration)</span>"
            } else if !a.enabled {
                " <span class=\"muted\">(disabled: out of scope)</span>"
            } else {
                ""
            },
            esc(a.description.as_deref().unwrap_or("")),
            esc(&a.source),
            dur(a.rto_seconds),
            dur(a.rpo_seconds),
            a.schedule.as_deref().map_or_else(
                || "on demand".to_string(),
                |s| format!(
                    "{} {}",
                    esc(s),
                    esc(a.schedule_timezone.as_deref().unwrap_or(""))
                )
            ),
            a.planned,
            a.run,
            if a.passed == 0 && a.enabled {
                format!(r#"<span class="bad">{}</span>"#, a.passed)
            } else {
                a.passed.to_string()
            },
            esc(&match a.select_window_seconds {
                Some(w) => format!("{} (window {})", a.select, dur(w)),
                None => a.select.clone(),
            }),
        );
    }
    let never = if c.assets_never_drilled.is_empty() {
        "none".to_string()
    } else {
        esc(&c.assets_never_drilled.join(", "))
    };
    let _ = write!(
        o,
        r#"</tbody></table><p>In scope: <b>{}</b> assets (enabled drills); drilled in the period: <b>{}</b>; with a passed drill: <b>{}</b>. Never drilled in the period: <b class="{}">{never}</b>. Planned runs are the instants each drill's schedule produces in the period; the sampling column is the snapshot selection (CIS 11.5, NIST CP-9(2)).</p></section>"#,
        c.assets_in_scope,
        c.assets_drilled,
        c.assets_passed,
        if c.assets_never_drilled.is_empty() {
            "ok"
        } else {
            "bad"
        },
    );
    // Charts.
    o.push_str(r#"<section><h2>Restore time and recovery point per asset</h2><p class="legend muted">dots: RTA per run (<span style="background:var(--pass)"></span>passed <span style="background:var(--fail)"></span>failed or over RTO; × no RTA); dashed: the objective. Strip: worst outcome per day (<span style="background:var(--pass)"></span>passed <span style="background:var(--fail)"></span>failed <span style="background:var(--err)"></span>error <span style="background:var(--none)"></span>no run). Bars: RPA distribution.</p>"#);
    let mut by_drill: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for x in &r.runs {
        by_drill.entry(x.drill.as_str()).or_default().push(x);
    }
    for a in &c.assets {
        let runs = by_drill.get(a.drill.as_str()).cloned().unwrap_or_default();
        asset_charts(&mut o, r, &tz, &runs, &a.drill);
    }
    o.push_str("</section>");
    // KPIs.
    let _ = write!(
        o,
        r#"<section><h2>Key figures</h2><table>{KPI_HEAD}<tbody>"#
    );
    for a in &r.kpis.assets {
        kpi_row(&mut o, &a.drill, &a.kpi, Some(a.rto_seconds));
    }
    kpi_row(&mut o, "all in-scope assets", k, None);
    let prev = &r.kpis.previous;
    kpi_row(
        &mut o,
        &format!("previous period {}", prev.period.label),
        &prev.overall,
        None,
    );
    let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} points", (a - b) * 100.0),
        _ => "–".into(),
    };
    let _ = write!(
        o,
        r#"</tbody></table><p>Compared with {}: pass rate {}, RPO compliance {}. Pass rate = passed / (passed + failed + error). Median and p95 (nearest rank) over runs that reached an RTA. <b>Time-weighted RPO compliance</b>: the share of the period (up to the time of generation) during which the newest good backup — the newest snapshot restored by a passed run that had finished by then, earlier periods included — was no older than the RPO.</p></section>"#,
        esc(&prev.period.label),
        delta(k.pass_rate, prev.overall.pass_rate),
        delta(k.rpo_compliance, prev.overall.rpo_compliance),
    );
    // Exceptions.
    o.push_str(r#"<section><h2>Exceptions</h2>"#);
    if r.exceptions.is_empty() {
        o.push_str("<p class=\"ok\">No failed or error runs in the period.</p>");
    } else {
        o.push_str(r#"<p><b>failed</b>: the backup or an objective is bad, act on the backup; <b>error</b>: the drill could not run and proves nothing, act on lifeboat's environment.</p><table><thead><tr><th>started</th><th>drill</th><th>class</th><th>cause</th><th>what happened</th><th>later pass</th></tr></thead><tbody>"#);
        for e in &r.exceptions {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<br><span class="mono muted">{}</span></td><td>{}</td></tr>"#,
                when(e.started_at, &tz),
                esc(&e.drill),
                outcome(&e.failure_class),
                esc(e.cause.as_deref().unwrap_or("")),
                esc(e.error.as_deref().unwrap_or("")),
                esc(&e.run_id),
                match (&e.resolved_by, e.resolved_at) {
                    (Some(id), Some(at)) => format!(
                        r#"<span class="ok">yes</span>, {} <span class="mono muted">{}</span>"#,
                        when(at, &tz),
                        esc(id)
                    ),
                    _ => r#"<span class="bad">no</span>"#.to_string(),
                }
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section>");
    // Backup health.
    let _ = write!(
        o,
        r#"<section><h2>Backup health</h2><p class="muted">{}: backup-system watches (freshness, failed jobs, server-side verification) are not part of this lifeboat version, so this section has no data rather than invented figures. Restore drills above are the evidence for this period.</p></section>"#,
        esc(&r.backup_health.status)
    );
    // Runs.
    let _ = write!(
        o,
        r#"<section><h2>Run records ({})</h2><table><thead><tr><th>run</th><th>snapshot</th><th>target</th><th class="n">RTA / RTO</th><th class="n">RPA / RPO</th><th>outcome</th><th>checks and evidence</th></tr></thead><tbody>"#,
        r.runs.len()
    );
    for x in &r.runs {
        let _ = write!(
            o,
            r#"<tr><td>{}<br><b>{}</b><br><span class="mono muted">{}</span></td><td><span class="mono">{}</span><br>{}</td><td>{}</td><td class="n">{} / {}<br>{}</td><td class="n">{} / {}<br>{}</td><td>{}{}</td><td><details><summary>{} checks, {} evidence files</summary><ul>"#,
            when(x.started_at, &tz),
            esc(&x.drill),
            esc(&x.run_id),
            esc(x.snapshot_id.as_deref().unwrap_or("–")),
            x.snapshot_time.map(|t| when(t, &tz)).unwrap_or_default(),
            esc(&x.target),
            secs(x.rta_seconds),
            dur(x.rto_seconds),
            met(x.rto_met),
            secs(x.rpa_seconds),
            dur(x.rpo_seconds),
            met(x.rpo_met),
            outcome(&x.outcome),
            x.cause
                .as_deref()
                .map(|c| format!(" <span class=\"muted\">({})</span>", esc(c)))
                .unwrap_or_default(),
            x.checks.len(),
            x.evidence.len(),
        );
        for ch in &x.checks {
            let _ = write!(
                o,
                r#"<li>{} <b>{}</b> ({}): expected {}; actual {}</li>"#,
                outcome(&ch.status),
                esc(&ch.name),
                esc(&ch.kind),
                esc(&ch.expected),
                esc(&ch.actual)
            );
        }
        for ev in &x.evidence {
            let _ = write!(
                o,
                r#"<li class="mono">{} sha256 {}</li>"#,
                esc(&ev.path),
                esc(ev.sha256.as_deref().unwrap_or("(missing when recorded)"))
            );
        }
        let _ = write!(
            o,
            r#"</ul>ledger #{} <span class="mono">{}</span></details></td></tr>"#,
            x.ledger_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "–".into()),
            esc(x.ledger_hash.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</tbody></table>");
    if let Some(first) = r.runs.first() {
        let _ = write!(
            o,
            r#"<p class="muted">Isolation: {}.</p>"#,
            esc(&first.isolation)
        );
    }
    o.push_str("</section>");
    let _ = writeln!(
        o,
        r#"<section><h2>Evidence ledger and sign-off</h2><p>Every finished run is recorded in a hash chain: <span class="mono">entry_hash = sha256(prev_hash ‖ canonical_json(record))</span>. Verify with <span class="mono">lifeboat verify-ledger --head {}</span>; the first edited, deleted or reordered record is named, and a chain rewritten since this report no longer contains this head.</p><table><tbody><tr><th>Reviewed by</th><td style="height:40px"></td><th>Date</th><td></td></tr><tr><th>Approved by</th><td style="height:40px"></td><th>Date</th><td></td></tr></tbody></table></section></body></html>"#,
        esc(h.ledger.head_hash.as_deref().unwrap_or("HASH"))
    );
    o
}
