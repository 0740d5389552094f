//! Small inline SVG charts for the HTML report, written by hand: no scripts, no fonts, no dependencies, so
//! the report stays one file that renders the same in a browser, a PDF printer and an archive years later.
//! Colours come from CSS classes (`pass`, `fail`, `err`, `none`, `obj`) so the page's dark mode applies.

use std::fmt::Write;

use jiff::Timestamp;

/// Chart width in SVG units.
const W: f64 = 640.0;
/// Left margin for axis labels.
const ML: f64 = 56.0;

fn esc(s: &str) -> String {
    super::html::esc(s)
}

/// Seconds as a short human duration for axis labels.
pub fn dur(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

/// One run on the RTA chart.
#[derive(Debug, Clone, Copy)]
pub struct RtaPoint {
    /// Start.
    pub at: Timestamp,
    /// RTA; `None` for runs that did not reach one (drawn as a cross on the axis).
    pub rta: Option<f64>,
    /// Passed.
    pub passed: bool,
}

/// RTA over time against the RTO line. Long series are thinned to the largest RTA per pixel column.
pub fn rta_chart(
    title: &str,
    points: &[RtaPoint],
    from: Timestamp,
    to: Timestamp,
    rto: f64,
) -> String {
    let h = 170.0;
    let (top, bottom) = (14.0, h - 22.0);
    let span = to.duration_since(from).as_secs_f64().max(1.0);
    let ymax = points
        .iter()
        .filter_map(|p| p.rta)
        .fold(rto * 1.25, f64::max)
        .max(1.0);
    let x = |t: Timestamp| {
        ML + (W - ML - 8.0) * (t.duration_since(from).as_secs_f64() / span).clamp(0.0, 1.0)
    };
    let y = |v: f64| bottom - (bottom - top) * (v / ymax).clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="{ML}" y1="{bottom}" x2="{}" y2="{bottom}"/><line class="axis" x1="{ML}" y1="{top}" x2="{ML}" y2="{bottom}"/>"#,
        W - 8.0
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = ymax * frac;
        let _ = write!(
            s,
            r#"<text class="lbl" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            ML - 4.0,
            y(v) + 4.0,
            dur(v)
        );
    }
    let _ = write!(
        s,
        r#"<line class="obj" x1="{ML}" y1="{r:.1}" x2="{}" y2="{r:.1}"/><text class="lbl obj-t" x="{}" y="{:.1}" text-anchor="end">RTO {}</text>"#,
        W - 8.0,
        W - 10.0,
        y(rto) - 3.0,
        dur(rto),
        r = y(rto)
    );
    // Thin to one point per pixel column (the largest RTA, failures kept separately).
    let mut cols: std::collections::BTreeMap<i64, (Option<f64>, bool, bool)> = Default::default();
    for p in points {
        let c = x(p.at).round() as i64;
        let e = cols.entry(c).or_insert((None, true, false));
        if let Some(v) = p.rta {
            e.0 = Some(e.0.map_or(v, |o: f64| o.max(v)));
        }
        e.1 &= p.passed;
        e.2 |= p.rta.is_none();
    }
    for (c, (rta, all_passed, no_rta)) in cols {
        if let Some(v) = rta {
            let class = if v > rto || !all_passed {
                "fail"
            } else {
                "pass"
            };
            let _ = write!(
                s,
                r#"<circle class="{class}" cx="{c}" cy="{:.1}" r="2.6"/>"#,
                y(v)
            );
        }
        if no_rta {
            let _ = write!(
                s,
                r#"<path class="fail-x" d="M{a} {b}l5 5m0 -5l-5 5"/>"#,
                a = c - 2,
                b = bottom - 7.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One day's state on the calendar strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// No run.
    None,
    /// Every run passed.
    Passed,
    /// At least one error, no failure.
    Error,
    /// At least one failure.
    Failed,
}

/// One cell per day, coloured by the worst outcome; a tick every month start (`labels`: (index, text)).
pub fn calendar_strip(title: &str, days: &[Day], labels: &[(usize, String)]) -> String {
    let n = days.len().max(1) as f64;
    let cell = ((W - ML - 8.0) / n).max(1.0);
    let h = 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart strip" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, d) in days.iter().enumerate() {
        let class = match d {
            Day::None => "none",
            Day::Passed => "pass",
            Day::Error => "err",
            Day::Failed => "fail",
        };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{:.2}" y="4" width="{:.2}" height="18"/>"#,
            ML + i as f64 * cell,
            (cell - 0.6).max(0.6)
        );
    }
    for (i, l) in labels {
        let _ = write!(
            s,
            r#"<text class="lbl" x="{:.1}" y="35">{}</text>"#,
            ML + *i as f64 * cell,
            esc(l)
        );
    }
    s.push_str("</svg>");
    s
}

/// Histogram of RPA against the RPO line (20 bins from 0 to max(1.25·RPO, largest RPA)).
pub fn rpa_histogram(title: &str, rpas: &[f64], rpo: f64) -> String {
    let h = 150.0;
    let (top, bottom) = (14.0, h - 22.0);
    let max = rpas.iter().copied().fold(rpo * 1.25, f64::max).max(1.0);
    let bins = 20usize;
    let mut counts = vec![0u64; bins];
    for v in rpas {
        let i = ((v / max) * bins as f64).floor() as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let cmax = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = (W - ML - 8.0) / bins as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="{ML}" y1="{bottom}" x2="{}" y2="{bottom}"/><text class="lbl" x="{}" y="{}" text-anchor="end">{}</text>"#,
        W - 8.0,
        ML - 4.0,
        top + 4.0,
        cmax as u64
    );
    for (i, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        let lo = max * i as f64 / bins as f64;
        let class = if lo >= rpo { "fail" } else { "pass" };
        let bh = (bottom - top) * (*c as f64 / cmax);
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}"><title>{c} runs, RPA {}–{}</title></rect>"#,
            ML + i as f64 * bw + 1.0,
            bottom - bh,
            bw - 2.0,
            dur(lo),
            dur(max * (i + 1) as f64 / bins as f64)
        );
    }
    let rx = ML + (W - ML - 8.0) * (rpo / max).clamp(0.0, 1.0);
    let _ = write!(
        s,
        r#"<line class="obj" x1="{rx:.1}" y1="{top}" x2="{rx:.1}" y2="{bottom}"/><text class="lbl obj-t" x="{:.1}" y="{}">RPO {}</text>"#,
        rx + 3.0,
        top + 8.0,
        dur(rpo)
    );
    let _ = write!(
        s,
        r#"<text class="lbl" x="{ML}" y="{}">0</text><text class="lbl" x="{}" y="{}" text-anchor="end">{}</text>"#,
        h - 6.0,
        W - 8.0,
        h - 6.0,
        dur(max)
    );
    s.push_str("</svg>");
    s
}
