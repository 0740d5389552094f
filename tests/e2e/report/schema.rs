//! The JSON and CSV reports against `docs/report-schema.md`: every documented field has its documented type,
//! nothing undocumented appears, one CSV row per run.

use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use super::{seed, ts};
use crate::util::Sandbox;

/// Documented fields: `| \`path\` | type |` rows of docs/report-schema.md.
fn documented_fields() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report-schema.md"),
    )
    .unwrap();
    doc.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.len() < 4 || !cells[1].starts_with('`') || !cells[1].ends_with('`') {
                return None;
            }
            let path = cells[1].trim_matches('`');
            let known = [
                "string",
                "number",
                "integer",
                "boolean",
                "array",
                "object",
                "timestamp",
                "null",
            ];
            if !cells[2].split(" or ").all(|t| known.contains(&t.trim())) {
                return None;
            }
            Some((path.to_string(), cells[2].to_string()))
        })
        .collect()
}

fn type_ok(v: &Value, ty: &str) -> bool {
    ty.split(" or ").any(|t| match t.trim() {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        "timestamp" => v.as_str().is_some_and(|s| s.parse::<Timestamp>().is_ok()),
        other => panic!("unknown type {other:?} in docs/report-schema.md"),
    })
}

/// Every value at `path` (`runs[].checks[].name` visits each element).
fn values_at<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    if v.is_null() {
        return;
    }
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (key, each) = match head.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (head, false),
    };
    let Some(x) = v.get(key) else {
        panic!("documented field {key:?} missing in {v}");
    };
    let items: Vec<&Value> = if each {
        x.as_array().unwrap().iter().collect()
    } else {
        vec![x]
    };
    for it in items {
        match rest {
            Some(r) => values_at(it, r, out),
            None => out.push(it),
        }
    }
}

/// Every leaf path of a JSON value, arrays as `[]`.
fn leaf_paths(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                leaf_paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                leaf_paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn json_and_csv_follow_the_documented_schema() {
    let sb = Sandbox::new();
    let runs = seed(&sb, true);
    let in_q3 = runs
        .iter()
        .filter(|r| r.started_at >= ts("2026-07-01T00:00:00Z"))
        .count();
    assert_eq!(in_q3, 103);

    let out = sb.run(&["report", "--period", "2026-Q3", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "lifeboat.report/v1");
    assert_eq!(doc["runs"].as_array().unwrap().len(), 103);
    let fields = documented_fields();
    assert!(
        fields.len() > 60,
        "schema doc lists {} fields",
        fields.len()
    );
    for (path, ty) in &fields {
        let mut vals = Vec::new();
        values_at(&doc, path, &mut vals);
        for v in vals {
            assert!(type_ok(v, ty), "{path}: {v} is not {ty}");
        }
    }
    // And nothing undocumented.
    let mut seen = std::collections::BTreeSet::new();
    leaf_paths(&doc, "", &mut seen);
    let documented: std::collections::BTreeSet<String> =
        fields.iter().map(|f| f.0.clone()).collect();
    let undocumented: Vec<&String> = seen.iter().filter(|p| !documented.contains(*p)).collect();
    assert!(
        undocumented.is_empty(),
        "undocumented JSON fields: {undocumented:?}"
    );

    let csv = sb.run(&["report", "--period", "2026-Q3", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let rows = parse_csv(&csv.stdout);
    assert_eq!(rows.len(), 1 + 103, "a header and one row per run");
    assert_eq!(rows[0], lifeboat::report::csv::COLUMNS);
    let doc_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report-schema.md"),
    )
    .unwrap();
    for c in lifeboat::report::csv::COLUMNS {
        assert!(
            doc_text.contains(&format!("| `{c}` |")) || doc_text.contains(&format!("`{c}`")),
            "CSV column {c} undocumented"
        );
    }
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for (row, rec) in rows[1..].iter().zip(doc["runs"].as_array().unwrap()) {
        assert_eq!(row.len(), rows[0].len());
        assert_eq!(row[col("run_id")], rec["run_id"].as_str().unwrap());
        assert_eq!(row[col("outcome")], rec["outcome"].as_str().unwrap());
        for numeric in ["rto_seconds", "rpo_seconds", "checks_total", "ledger_seq"] {
            row[col(numeric)]
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{numeric} {:?}", row[col(numeric)]));
        }
        assert!(["", "true", "false"].contains(&row[col("rto_met")].as_str()));
        assert!(row[col("started_at")].parse::<Timestamp>().is_ok());
    }
    // --from/--to and --period 2026-07 select subsets; bad periods are usage errors.
    let july = sb.run(&[
        "report",
        "--from",
        "2026-07-01",
        "--to",
        "2026-07-31",
        "--format",
        "csv",
    ]);
    // July: 31 web nights, db on Jul 5, 12, 19 (the agent was down on the 26th), nas on Jul 1.
    assert_eq!(parse_csv(&july.stdout).len(), 1 + 31 + 3 + 1);
    let bad = sb.run(&["report", "--period", "2026-Q5"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// RFC 4180 reader for the test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}
