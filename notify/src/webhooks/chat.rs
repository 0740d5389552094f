//! Chat channels: Slack (Block Kit), Microsoft Teams (an Adaptive Card for the Workflows webhook) and
//! Discord (one embed). All three post JSON to a webhook URL that is itself the secret.
//!
//! Chat messages are read on a phone: they carry the title, the summary, the facts, the checks that did not
//! pass (passed ones are only counted), a few detail lines and the reproduce command, each cut to the
//! service's limits (Slack: header 150, section text 3000, field 2000, 10 fields; Discord: title 256,
//! description 4096, 25 fields of 256/1024, 6000 in all; notifications.md §4.1–4.3). User-controlled text
//! is escaped so a backup named `<!channel>` or `@everyone` cannot ping a whole channel.

use serde_json::{Value, json};

use crate::config::{ChatConfig, DiscordConfig};
use crate::error::{ConfigProblem, DeliveryError};
use crate::http::{Plan, Request};
use crate::model::{Notification, Severity, Transition};
use crate::secret::Secret;
use crate::text::{bad_checks, footer, passed_note, report_url, truncate};
use crate::webhooks::SecretUrl;

/// Detail lines shown in chat at most; the rest are counted.
const MAX_DETAILS: usize = 15;

fn load(c: &ChatConfig) -> Result<SecretUrl, ConfigProblem> {
    SecretUrl::load("url", c.url_file.as_ref(), c.url_env.as_ref())
}

/// Escapes Slack's three control characters (`&`, `<`, `>`), which is all Slack asks for.
pub(crate) fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text for inside a Slack or Discord code span: escaped, with backticks replaced so the span cannot end early.
fn code(s: &str, escape: fn(&str) -> String) -> String {
    escape(&s.replace('`', "'"))
}

/// The emoji that leads a chat title.
fn emoji(n: &Notification) -> &'static str {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) => ":white_check_mark:",
        (_, Severity::Critical | Severity::Error) => ":red_circle:",
        (_, Severity::Warning) => ":warning:",
        (_, Severity::Info) => ":information_source:",
    }
}

fn details_lines(n: &Notification) -> Vec<String> {
    let mut lines: Vec<String> = n.details.iter().take(MAX_DETAILS).cloned().collect();
    if n.details.len() > MAX_DETAILS {
        lines.push(format!(
            "… and {} more lines",
            n.details.len() - MAX_DETAILS
        ));
    }
    lines
}

fn or_dash(s: String) -> String {
    if s.trim().is_empty() {
        "—".to_string()
    } else {
        s
    }
}

/// Slack incoming webhook.
pub(crate) struct Slack {
    url: SecretUrl,
}

impl Slack {
    pub fn new(c: &ChatConfig) -> Result<Slack, ConfigProblem> {
        Ok(Slack { url: load(c)? })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.url.secrets()
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        Ok(Plan::Send(vec![Request::json(
            self.url.url.clone(),
            &slack_payload(n),
        )]))
    }
}

/// The Block Kit message with its `text` fallback.
pub(crate) fn slack_payload(n: &Notification) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "emoji": true,
            "text": truncate(&format!("{} {}", emoji(n), n.title), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&or_dash(slack_escape(&n.summary)), 3000)}}),
    ];
    if !n.facts.is_empty() {
        let fields: Vec<Value> = n
            .facts
            .iter()
            .take(10)
            .map(|f| {
                json!({"type": "mrkdwn", "text": truncate(
                    &format!("*{}*\n{}", slack_escape(&f.label), or_dash(slack_escape(&f.value))), 2000)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let bad: Vec<String> = bad_checks(n)
        .map(|c| {
            let mut s = format!(
                "• *{}*: {}, expected `{}`, actual `{}`",
                slack_escape(&c.name),
                c.status.to_uppercase(),
                code(&c.expected, slack_escape),
                code(&c.actual, slack_escape)
            );
            if let Some(m) = &c.message {
                s.push_str("\n    ");
                s.push_str(&slack_escape(m));
            }
            s
        })
        .collect();
    if !bad.is_empty() {
        let mut text = format!("*Checks that did not pass*\n{}", bad.join("\n"));
        let note = passed_note(n);
        if !note.is_empty() {
            text.push('\n');
            text.push_str(&note);
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}),
        );
    }
    if !n.details.is_empty() {
        let inner = truncate(&code(&details_lines(n).join("\n"), slack_escape), 2990);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{inner}```")}}));
    }
    let mut context = Vec::new();
    if let Some(cmd) = &n.reproduce {
        context.push(json!({"type": "mrkdwn", "text": truncate(&format!("Reproduce: `{}`", code(cmd, slack_escape)), 2000)}));
    }
    if let Some(u) = report_url(n) {
        context.push(json!({"type": "mrkdwn", "text": format!("<{}|Report>", slack_escape(u).replace('|', "%7C"))}));
    }
    context.push(json!({"type": "mrkdwn", "text": truncate(&slack_escape(&footer(n)), 2000)}));
    blocks.push(json!({"type": "context", "elements": context}));
    json!({
        "text": truncate(&format!("{}\n{}", slack_escape(&n.title), slack_escape(&n.summary)), 3000),
        "blocks": blocks,
    })
}

/// Microsoft Teams Workflows webhook.
pub(crate) struct Teams {
    url: SecretUrl,
}

impl Teams {
    pub fn new(c: &ChatConfig) -> Result<Teams, ConfigProblem> {
        Ok(Teams { url: load(c)? })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.url.secrets()
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        Ok(Plan::Send(vec![Request::json(
            self.url.url.clone(),
            &teams_payload(n),
        )]))
    }
}

/// The `{"type":"message","attachments":[Adaptive Card]}` envelope of notifications.md §4.2.
pub(crate) fn teams_payload(n: &Notification) -> Value {
    let color = match (n.transition, n.severity) {
        (Transition::Resolve, _) => "Good",
        (_, Severity::Critical | Severity::Error) => "Attention",
        (_, Severity::Warning) => "Warning",
        (_, Severity::Info) => "Default",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": truncate(&n.title, 500), "weight": "Bolder", "size": "Medium", "wrap": true, "color": color}),
        json!({"type": "TextBlock", "text": truncate(&n.summary, 2000), "wrap": true}),
    ];
    if !n.facts.is_empty() {
        let facts: Vec<Value> = n
            .facts
            .iter()
            .map(|f| json!({"title": truncate(&f.label, 100), "value": truncate(&or_dash(f.value.clone()), 500)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let bad: Vec<Value> = bad_checks(n)
        .map(|c| {
            let mut v = format!(
                "{}: expected {}, actual {}",
                c.status.to_uppercase(),
                c.expected,
                c.actual
            );
            if let Some(m) = &c.message {
                v.push_str(". ");
                v.push_str(m);
            }
            json!({"title": truncate(&c.name, 100), "value": truncate(&v, 1000)})
        })
        .collect();
    if !bad.is_empty() {
        body.push(json!({"type": "TextBlock", "text": "Checks that did not pass", "weight": "Bolder", "wrap": true, "spacing": "Medium"}));
        body.push(json!({"type": "FactSet", "facts": bad}));
    }
    let note = passed_note(n);
    if !note.is_empty() {
        body.push(json!({"type": "TextBlock", "text": note, "isSubtle": true, "wrap": true}));
    }
    for d in details_lines(n) {
        body.push(json!({"type": "TextBlock", "text": truncate(&d, 500), "fontType": "Monospace", "wrap": true, "spacing": "None"}));
    }
    if let Some(cmd) = &n.reproduce {
        body.push(json!({"type": "TextBlock", "text": "Reproduce", "weight": "Bolder", "spacing": "Medium"}));
        body.push(json!({"type": "TextBlock", "text": truncate(cmd, 500), "fontType": "Monospace", "wrap": true}));
    }
    body.push(json!({"type": "TextBlock", "text": footer(n), "isSubtle": true, "size": "Small", "wrap": true}));
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(u) = report_url(n) {
        content["actions"] = json!([{"type": "Action.OpenUrl", "title": "Report", "url": u}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

/// Discord execute-webhook.
pub(crate) struct Discord {
    url: SecretUrl,
    username: Option<String>,
}

impl Discord {
    pub fn new(c: &DiscordConfig) -> Result<Discord, ConfigProblem> {
        if let Some(u) = &c.username
            && (u.trim().is_empty() || u.chars().count() > 80)
        {
            return Err(ConfigProblem::Invalid(
                "username must be 1 to 80 characters".to_string(),
            ));
        }
        Ok(Discord {
            url: SecretUrl::load("url", c.url_file.as_ref(), c.url_env.as_ref())?,
            username: c.username.clone(),
        })
    }

    pub fn secrets(&self) -> Vec<&Secret> {
        self.url.secrets()
    }

    pub fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        Ok(Plan::Send(vec![Request::json(
            self.url.url.clone(),
            &discord_payload(n, self.username.as_deref()),
        )]))
    }
}

/// Backslash-escapes Discord markdown so user text shows as written.
pub(crate) fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '(' | ')'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Embed colour: green when resolved, then by severity.
pub(crate) fn discord_color(n: &Notification) -> u32 {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) => 0x2E_B6_7D,
        (_, Severity::Info) => 0x3B_82_F6,
        (_, Severity::Warning) => 0xF5_9E_0B,
        (_, Severity::Error) => 0xDC_26_26,
        (_, Severity::Critical) => 0x7F_1D_1D,
    }
}

/// One embed; the whole stays inside Discord's 6000-character total.
pub(crate) fn discord_payload(n: &Notification, username: Option<&str>) -> Value {
    let title = truncate(&or_dash(n.title.clone()), 256);
    let foot = truncate(&footer(n), 2048);
    let fields: Vec<(String, String)> = n
        .facts
        .iter()
        .take(25)
        .map(|f| {
            (
                truncate(&f.label, 256),
                truncate(&or_dash(f.value.clone()), 1024),
            )
        })
        .collect();
    let used = title.chars().count()
        + foot.chars().count()
        + fields
            .iter()
            .map(|(a, b)| a.chars().count() + b.chars().count())
            .sum::<usize>();
    let mut desc = discord_escape(&n.summary);
    let bad: Vec<String> = bad_checks(n)
        .map(|c| {
            let mut s = format!(
                "• **{}**: {}, expected `{}`, actual `{}`",
                discord_escape(&c.name),
                c.status.to_uppercase(),
                c.expected.replace('`', "'"),
                c.actual.replace('`', "'")
            );
            if let Some(m) = &c.message {
                s.push_str(" — ");
                s.push_str(&discord_escape(m));
            }
            s
        })
        .collect();
    if !bad.is_empty() {
        desc.push_str("\n\n**Checks that did not pass**\n");
        desc.push_str(&bad.join("\n"));
    }
    let note = passed_note(n);
    if !note.is_empty() {
        desc.push('\n');
        desc.push_str(&note);
    }
    if !n.details.is_empty() {
        desc.push_str("\n```\n");
        desc.push_str(&details_lines(n).join("\n").replace("```", "'''"));
        desc.push_str("\n```");
    }
    if let Some(cmd) = &n.reproduce {
        desc.push_str(&format!("\nReproduce: `{}`", cmd.replace('`', "'")));
    }
    let room = 6000usize.saturating_sub(used).min(4096);
    let desc = close_code_block(truncate(&or_dash(desc), room.saturating_sub(4)));
    let mut embed = json!({
        "title": title,
        "description": desc,
        "color": discord_color(n),
        "timestamp": n.time.to_string(),
        "fields": fields.iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect::<Vec<_>>(),
        "footer": {"text": foot},
    });
    if let Some(u) = report_url(n) {
        embed["url"] = json!(u);
    }
    let mut payload = json!({
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    });
    if let Some(u) = username {
        payload["username"] = json!(u);
    }
    payload
}

/// A cut inside a ``` block would leave the rest of the embed monospaced: close it.
fn close_code_block(mut s: String) -> String {
    if s.matches("```").count() % 2 == 1 {
        s.push_str("```");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckLine;
    use crate::text::tests::sample;

    #[test]
    fn slack_escapes_and_limits() {
        let mut n = sample();
        n.summary = "<!channel> & <@U123> ".repeat(300);
        n.checks[0].actual = "a`b<c>".into();
        let p = slack_payload(&n);
        let s = p["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(s.starts_with("&lt;!channel&gt; &amp; &lt;@U123&gt;"), "{s}");
        assert!(s.chars().count() <= 3000);
        assert!(!p.to_string().contains("<!channel>"));
        let checks = p["blocks"][3]["text"]["text"].as_str().unwrap();
        assert!(checks.contains("actual `a'b&lt;c&gt;`"), "{checks}");
        assert!(p["text"].as_str().unwrap().chars().count() <= 3000);
    }

    #[test]
    fn discord_stays_within_limits_and_mentions_nothing() {
        let mut n = sample();
        n.summary = "@everyone ".repeat(1000);
        n.details = (0..100)
            .map(|i| format!("line {i} {}", "x".repeat(100)))
            .collect();
        n.checks = (0..40)
            .map(|i| CheckLine {
                name: format!("check {i}"),
                status: "failed".into(),
                expected: "e".repeat(200),
                actual: "a".repeat(200),
                message: None,
            })
            .collect();
        let p = discord_payload(&n, Some("lifeboat"));
        let e = &p["embeds"][0];
        let desc = e["description"].as_str().unwrap();
        assert!(desc.chars().count() <= 4096);
        let total = e["title"].as_str().unwrap().chars().count()
            + desc.chars().count()
            + e["footer"]["text"].as_str().unwrap().chars().count()
            + e["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    f["name"].as_str().unwrap().chars().count()
                        + f["value"].as_str().unwrap().chars().count()
                })
                .sum::<usize>();
        assert!(total <= 6000, "{total}");
        assert_eq!(p["allowed_mentions"]["parse"], json!([]));
        assert_eq!(p["username"], "lifeboat");
    }

    #[test]
    fn cut_code_blocks_are_closed() {
        assert_eq!(close_code_block("a\n```\nb…".into()), "a\n```\nb…```");
        assert_eq!(close_code_block("```x```".into()), "```x```");
    }

    #[test]
    fn discord_escape_neutralises_markdown() {
        assert_eq!(
            discord_escape("*bold* _it_ `c`"),
            "\\*bold\\* \\_it\\_ \\`c\\`"
        );
    }
}
