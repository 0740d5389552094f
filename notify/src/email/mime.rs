//! The mail itself: RFC 5322 headers and a MIME `multipart/alternative` body (RFC 2045/2046) with a plain-text
//! and an HTML part, both UTF-8 in quoted-printable so every line stays under 78 characters and 7-bit clean
//! (no `8BITMIME` or `SMTPUTF8` needed from the server). Non-ASCII subjects and display names become RFC 2047
//! encoded words. Header values are stripped of line breaks: titles are built from backup names, which an
//! attacker may choose, and a newline there would inject headers.
//!
//! Threading: every mail about one alert (`dedup_key`) carries `References` and `In-Reply-To` pointing at the
//! same synthetic thread root `<thread.HASH@lifeboat>`, so mail clients that thread by references (Thunderbird,
//! Apple Mail, mutt) group trigger, reminders and recovery. The root is never sent itself; clients treat it as
//! a missing parent. Each mail keeps its own unique `Message-ID: <id@lifeboat>`.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::model::{Notification, Severity, Transition};
use crate::text::{footer, plain};

/// One address with an optional display name, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mailbox {
    pub name: Option<String>,
    pub addr: String,
}

impl Mailbox {
    /// Parses `a@b.c`, `<a@b.c>` or `Display Name <a@b.c>`.
    pub fn parse(s: &str) -> Result<Mailbox, String> {
        let s = s.trim();
        let (name, addr) = match (s.rfind('<'), s.ends_with('>')) {
            (Some(i), true) => {
                let name = s[..i].trim().trim_matches('"').trim();
                (
                    (!name.is_empty()).then(|| name.to_string()),
                    s[i + 1..s.len() - 1].trim(),
                )
            }
            (None, false) => (None, s),
            _ => {
                return Err(format!(
                    "{s:?} is not an address such as ops@example.com or \"Ops <ops@example.com>\""
                ));
            }
        };
        check_addr(addr)?;
        if let Some(n) = &name
            && n.chars().any(char::is_control)
        {
            return Err(format!("the display name in {s:?} has control characters"));
        }
        Ok(Mailbox {
            name,
            addr: addr.to_string(),
        })
    }

    /// The header form: `addr`, `Name <addr>`, `"Name, Inc." <addr>` or `=?UTF-8?B?…?= <addr>`.
    pub fn header(&self) -> String {
        match &self.name {
            None => self.addr.clone(),
            Some(n)
                if n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b)) =>
            {
                format!("{n} <{}>", self.addr)
            }
            Some(n) if n.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
                format!(
                    "\"{}\" <{}>",
                    n.replace('\\', "\\\\").replace('"', "\\\""),
                    self.addr
                )
            }
            Some(n) => format!("{} <{}>", encode_words(n).join(" "), self.addr),
        }
    }
}

/// An ASCII `local@domain` address: what MAIL FROM / RCPT TO will carry (no SMTPUTF8).
fn check_addr(a: &str) -> Result<(), String> {
    let bad = || format!("{a:?} is not a valid email address (expected local@domain, ASCII only)");
    let (local, domain) = a.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let literal = domain.starts_with('[') && domain.ends_with(']');
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && (literal
            || domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A header value on one line: line breaks and other control characters become spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// RFC 2047 "B" encoded words for `s`, each at most 75 characters, split between characters.
pub(crate) fn encode_words(s: &str) -> Vec<String> {
    // 45 bytes of UTF-8 → 60 base64 characters + 12 for `=?UTF-8?B?` and `?=` = 72 ≤ 75.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
    }
    words
}

/// An unstructured header value (the subject): as is when it is plain ASCII, else encoded words; folded.
pub(crate) fn unstructured(name: &str, value: &str) -> String {
    let value = one_line(value);
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b)) && !value.contains("=?");
    let words: Vec<String> = if plain {
        value.split(' ').map(str::to_string).collect()
    } else {
        encode_words(&value)
    };
    fold(name, &words, " ")
}

/// `Name: w1 w2 …` folded before a word when the line would pass 78 characters.
fn fold(name: &str, words: &[String], sep: &str) -> String {
    let mut out = format!("{name}:");
    let mut line_len = out.len();
    for (i, w) in words.iter().enumerate() {
        let joiner = if i == 0 { " " } else { sep };
        if line_len + joiner.len() + w.len() > 78 && line_len > name.len() + 1 {
            out.push_str("\r\n ");
            line_len = 1;
        } else {
            out.push_str(joiner);
            line_len += joiner.len();
        }
        out.push_str(w);
        line_len += w.len();
    }
    out.push_str("\r\n");
    out
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF hard breaks and lines of at most 76 characters.
pub(crate) fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let normalized = text.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let mut len = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let token = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if len + token.len() > 75 {
                out.push_str("=\r\n");
                len = 0;
            }
            out.push_str(&token);
            len += token.len();
        }
        if li + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn accent(n: &Notification) -> &'static str {
    match (n.transition, n.severity) {
        (Transition::Resolve, _) => "#1a7f37",
        (_, Severity::Critical | Severity::Error) => "#b42318",
        (_, Severity::Warning) => "#9a6700",
        (_, Severity::Info) => "#1f4e9a",
    }
}

/// The HTML part: the same content as the text part, with every check in a table.
pub(crate) fn html(n: &Notification) -> String {
    let e = html_escape;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1b1f24\">\n\
         <h2 style=\"color:{}\">{}</h2>\n<p>{}</p>\n",
        e(&n.title),
        accent(n),
        e(&n.title),
        e(&n.summary)
    );
    if !n.facts.is_empty() {
        h.push_str("<table style=\"border-collapse:collapse\">\n");
        for f in &n.facts {
            let _ = writeln!(
                h,
                "<tr><th align=\"left\" style=\"padding:2px 16px 2px 0;vertical-align:top\">{}</th><td>{}</td></tr>",
                e(&f.label),
                e(&f.value)
            );
        }
        h.push_str("</table>\n");
    }
    if !n.checks.is_empty() {
        h.push_str("<h3>Checks</h3>\n<table style=\"border-collapse:collapse\">\n\
            <tr><th align=\"left\">Check</th><th align=\"left\">Status</th><th align=\"left\">Expected</th><th align=\"left\">Actual</th></tr>\n");
        for c in &n.checks {
            let color = if crate::text::is_bad(c) {
                "#b42318"
            } else {
                "#1a7f37"
            };
            let _ = writeln!(
                h,
                "<tr><td style=\"padding:2px 12px 2px 0\">{}</td><td style=\"padding:2px 12px 2px 0;color:{color};font-weight:bold\">{}</td>\
                 <td style=\"padding:2px 12px 2px 0\"><code>{}</code></td><td><code>{}</code></td></tr>",
                e(&c.name),
                e(&c.status),
                e(&c.expected),
                e(&c.actual)
            );
            if let Some(m) = &c.message {
                let _ = writeln!(
                    h,
                    "<tr><td></td><td colspan=\"3\" style=\"color:#57606a\">{}</td></tr>",
                    e(m)
                );
            }
        }
        h.push_str("</table>\n");
    }
    if !n.details.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Details</h3>\n<pre>{}</pre>",
            e(&n.details.join("\n"))
        );
    }
    if let Some(cmd) = &n.reproduce {
        let _ = writeln!(h, "<h3>Reproduce</h3>\n<pre><code>{}</code></pre>", e(cmd));
    }
    let _ = write!(
        h,
        "<p style=\"color:#57606a;font-size:12px\">{}</p>\n</body></html>\n",
        e(&footer(n))
    );
    h
}

/// A `Message-ID` local part from the notification id (`[A-Za-z0-9._-]`, never empty).
fn id_part(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if clean.is_empty() {
        "lifeboat".to_string()
    } else {
        clean
    }
}

/// The synthetic thread root for an alert's `dedup_key`.
pub(crate) fn thread_id(dedup_key: &str) -> String {
    let h = hex::encode(Sha256::digest(dedup_key.as_bytes()));
    format!("<thread.{}@lifeboat>", &h[..32])
}

/// The whole message (headers and body), CRLF line ends, not yet dot-stuffed.
pub(crate) fn message(n: &Notification, from: &Mailbox, to: &[Mailbox], now: Timestamp) -> Vec<u8> {
    let text = format!("{}\n-- \n{}\n", plain(n, false), footer(n));
    let html = html(n);
    let text_qp = quoted_printable(&text);
    let html_qp = quoted_printable(&html);
    // "=_" cannot occur in quoted-printable output (a literal "=" is always encoded), so this boundary
    // cannot collide with the parts whatever the notification says.
    let seed = format!("{}/{}", n.id, now.as_nanosecond());
    let boundary = format!(
        "=_lifeboat_{}",
        &hex::encode(Sha256::digest(seed.as_bytes()))[..24]
    );

    let mut m = String::new();
    let date = jiff::fmt::rfc2822::to_string(&now.to_zoned(jiff::tz::TimeZone::UTC))
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_string());
    let _ = write!(m, "Date: {date}\r\n");
    m.push_str(&fold("From", &[from.header()], " "));
    let recipients: Vec<String> = to
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i + 1 < to.len() {
                format!("{},", t.header())
            } else {
                t.header()
            }
        })
        .collect();
    m.push_str(&fold("To", &recipients, " "));
    m.push_str(&unstructured("Subject", &n.title));
    let _ = write!(m, "Message-ID: <{}@lifeboat>\r\n", id_part(&n.id));
    if !n.dedup_key.is_empty() {
        let root = thread_id(&n.dedup_key);
        let _ = write!(m, "In-Reply-To: {root}\r\nReferences: {root}\r\n");
    }
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Auto-Submitted: auto-generated\r\n");
    let _ = write!(m, "X-Lifeboat-Event: {}\r\n", n.event.as_str());
    let _ = write!(m, "X-Lifeboat-Severity: {}\r\n", n.severity.as_str());
    if !n.dedup_key.is_empty() {
        m.push_str(&unstructured("X-Lifeboat-Key", &n.dedup_key));
    }
    let _ = write!(
        m,
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    );
    m.push_str("This is a MIME message: a plain-text and an HTML version follow.\r\n");
    for (ctype, body) in [("text/plain", &text_qp), ("text/html", &html_qp)] {
        let _ = write!(
            m,
            "\r\n--{boundary}\r\nContent-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n"
        );
    }
    let _ = write!(m, "\r\n--{boundary}--\r\n");
    m.into_bytes()
}

/// SMTP transparency (RFC 5321 §4.5.2): CRLF line ends, a `.` doubled at the start of a line, and the
/// terminating `.` line.
pub(crate) fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    let mut at_line_start = true;
    let mut i = 0;
    while i < msg.len() {
        let b = msg[i];
        match b {
            b'\r' if msg.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                at_line_start = true;
                continue;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            b'.' if at_line_start => {
                out.extend_from_slice(b"..");
                at_line_start = false;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::sample;

    /// An independent QP decoder (RFC 2045 §6.7 rules), to check the encoder round-trips.
    fn qp_decode(s: &str) -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                    i += 3;
                    continue;
                }
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let text = format!(
            "RTA vs RTO: 4m (RTO 30m) — met\nequals = sign, trailing space \n{}\n.leading dot\nünïcödé {}",
            "x".repeat(200),
            "é".repeat(60)
        );
        let qp = quoted_printable(&text);
        for line in qp.split("\r\n") {
            assert!(line.len() <= 76, "{line:?} is {} long", line.len());
            assert!(!line.ends_with(' ') && !line.ends_with('\t'), "{line:?}");
            assert!(line.is_ascii());
        }
        assert!(qp.contains("=3D sign"), "{qp}");
        assert!(qp.contains("trailing space=20"), "{qp}");
        assert_eq!(qp_decode(&qp), text);
    }

    #[test]
    fn rfc2047_subject() {
        let h = unstructured("Subject", "[lifeboat] FAILED drill app");
        assert_eq!(h, "Subject: [lifeboat] FAILED drill app\r\n");
        let h = unstructured(
            "Subject",
            "[lifeboat] RECOVERED drill Überweisungen — passed again, all fine now",
        );
        assert!(h.starts_with("Subject: =?UTF-8?B?"), "{h}");
        let mut decoded = Vec::new();
        for w in h.trim_start_matches("Subject:").split_whitespace() {
            assert!(w.len() <= 75, "{w}");
            let b64 = w
                .strip_prefix("=?UTF-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            decoded.extend(STANDARD.decode(b64).unwrap());
        }
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "[lifeboat] RECOVERED drill Überweisungen — passed again, all fine now"
        );
        let inj = unstructured("Subject", "x\r\nBcc: victim@example.com");
        assert_eq!(inj.matches("\r\n").count(), 1, "{inj:?}");
        let long = unstructured("Subject", &"word ".repeat(40));
        assert!(long.split("\r\n").all(|l| l.len() <= 78), "{long}");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..c\r\n."),
            b"a\r\n..b\r\n...c\r\n..\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b".x\ny"), b"..x\r\ny\r\n.\r\n".to_vec());
        assert_eq!(
            dot_stuff(b"no dot. here\r\n"),
            b"no dot. here\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn html_is_escaped() {
        let mut n = sample();
        n.summary = "<script>alert('x')</script> & \"q\"".into();
        let h = html(&n);
        assert!(
            h.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"),
            "{h}"
        );
        assert!(!h.contains("<script>"));
    }

    #[test]
    fn mailboxes() {
        let m = Mailbox::parse("Backup Drills <drills@example.com>").unwrap();
        assert_eq!(m.addr, "drills@example.com");
        assert_eq!(m.header(), "Backup Drills <drills@example.com>");
        assert_eq!(
            Mailbox::parse("\"Ops, Inc.\" <o@x.io>").unwrap().header(),
            "\"Ops, Inc.\" <o@x.io>"
        );
        assert!(
            Mailbox::parse("Jörg <j@x.de>")
                .unwrap()
                .header()
                .starts_with("=?UTF-8?B?")
        );
        assert_eq!(
            Mailbox::parse("a@[127.0.0.1]").unwrap().addr,
            "a@[127.0.0.1]"
        );
        for bad in [
            "nobody",
            "a@",
            "@b",
            "a b@c.d",
            "a@b c",
            "jörg@x.de",
            "<a@b.c",
            "a@b.c>\r\nBcc: x",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn message_headers_and_threading() {
        let n = sample();
        let from = Mailbox::parse("lifeboat <lb@example.com>").unwrap();
        let to = vec![
            Mailbox::parse("a@example.com").unwrap(),
            Mailbox::parse("b@example.com").unwrap(),
        ];
        let m = String::from_utf8(message(
            &n,
            &from,
            &to,
            "2026-03-01T02:00:05Z".parse().unwrap(),
        ))
        .unwrap();
        assert!(
            m.starts_with("Date: Sun, 1 Mar 2026 02:00:05 +0000\r\n"),
            "{m}"
        );
        assert!(
            m.contains("\r\nTo: a@example.com, b@example.com\r\n"),
            "{m}"
        );
        assert!(m.contains("\r\nMessage-ID: <n-1.drill.failed@lifeboat>\r\n"));
        let root = thread_id("site/drill/app");
        assert!(m.contains(&format!("\r\nReferences: {root}\r\n")));
        assert!(m.contains(&format!("\r\nIn-Reply-To: {root}\r\n")));
        assert!(m.lines().all(|l| l.len() <= 998));
        assert!(m.is_ascii());
    }
}
