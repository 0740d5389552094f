//! The JSON rendering: the [`Report`](super::model::Report) value itself, pretty-printed, so machine
//! consumers (GRC tools) read exactly what the HTML shows. Schema: `docs/report-schema.md`.

use super::model::Report;

/// Pretty JSON with a trailing newline.
pub fn render(r: &Report) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(r)?;
    s.push('\n');
    Ok(s)
}
