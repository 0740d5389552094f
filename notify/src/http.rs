//! Everything the HTTP channels share: one reqwest client per channel (timeout, no redirects, optional
//! private CA), the request each channel renders, and the one place where an HTTP answer becomes
//! [`Delivered`] or a classified [`DeliveryError`].
//!
//! Classification follows the Standard Webhooks delivery guidance (notifications.md §4.8), which the chat
//! services agree with in practice: 2xx delivered; 3xx is a failure and is not followed (a redirect would
//! carry the request, and its secret URL, somewhere nobody configured); 408/425/429/5xx, timeouts and
//! connection errors are transient, honouring `Retry-After`; 410 means the endpoint was removed; any other
//! 4xx means the request or its credentials are wrong, which retrying cannot fix. Certificate problems are
//! permanent too: they need a `ca_file` or a fixed server, not patience.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};

use crate::config::ChannelConfig;
use crate::error::{ConfigProblem, Delivered, DeliveryError, Retry};
use crate::model::Notification;
use crate::secret::{Secret, redact};
use crate::webhooks::{chat, healthchecks, pagerduty, push, webhook};

/// Longest `Retry-After` honoured; a receiver asking for more is waited on for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of an answer's body is read (for the error message or the detail).
const BODY_PEEK: usize = 8 * 1024;

/// One HTTP request a channel wants sent.
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// A POST of a JSON document.
    pub fn json(url: Url, body: &serde_json::Value) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Request {
            method: Method::POST,
            url,
            headers,
            body: body.to_string().into_bytes(),
        }
    }
}

/// What a channel makes of one notification.
pub(crate) enum Plan {
    /// Send these requests in order; the last answer is the delivery's detail.
    Send(Vec<Request>),
    /// Nothing to send for this event on this channel; the text says why.
    Skip(String),
}

enum Target {
    Webhook(webhook::Webhook),
    Slack(chat::Slack),
    Teams(chat::Teams),
    Discord(chat::Discord),
    Ntfy(push::Ntfy),
    Gotify(push::Gotify),
    Pagerduty(pagerduty::Pagerduty),
    Healthchecks(healthchecks::Healthchecks),
}

/// An HTTP channel: its client and its renderer.
pub(crate) struct HttpChannel {
    client: reqwest::Client,
    target: Target,
    ca_file: Option<PathBuf>,
    timeout: Duration,
}

impl HttpChannel {
    /// Builds the renderer (secrets loaded) and the client.
    pub fn new(cfg: &ChannelConfig, timeout: Duration) -> Result<HttpChannel, ConfigProblem> {
        let (target, ca_file) = match cfg {
            ChannelConfig::Email(_) => {
                return Err(ConfigProblem::Invalid(
                    "email is not an HTTP channel".to_string(),
                ));
            }
            ChannelConfig::Webhook(c) => (
                Target::Webhook(webhook::Webhook::new(c)?),
                c.ca_file.clone(),
            ),
            ChannelConfig::Slack(c) => (Target::Slack(chat::Slack::new(c)?), None),
            ChannelConfig::Teams(c) => (Target::Teams(chat::Teams::new(c)?), None),
            ChannelConfig::Discord(c) => (Target::Discord(chat::Discord::new(c)?), None),
            ChannelConfig::Ntfy(c) => (Target::Ntfy(push::Ntfy::new(c)?), c.ca_file.clone()),
            ChannelConfig::Gotify(c) => (Target::Gotify(push::Gotify::new(c)?), c.ca_file.clone()),
            ChannelConfig::Pagerduty(c) => (Target::Pagerduty(pagerduty::Pagerduty::new(c)?), None),
            ChannelConfig::Healthchecks(c) => (
                Target::Healthchecks(healthchecks::Healthchecks::new(c)?),
                c.ca_file.clone(),
            ),
        };
        let client = client(timeout, ca_file.as_deref())?;
        Ok(HttpChannel {
            client,
            target,
            ca_file,
            timeout,
        })
    }

    fn plan(&self, n: &Notification) -> Result<Plan, DeliveryError> {
        match &self.target {
            Target::Webhook(t) => t.plan(n),
            Target::Slack(t) => t.plan(n),
            Target::Teams(t) => t.plan(n),
            Target::Discord(t) => t.plan(n),
            Target::Ntfy(t) => t.plan(n),
            Target::Gotify(t) => t.plan(n),
            Target::Pagerduty(t) => t.plan(n),
            Target::Healthchecks(t) => t.plan(n),
        }
    }

    fn secrets(&self) -> Vec<&Secret> {
        match &self.target {
            Target::Webhook(t) => t.secrets(),
            Target::Slack(t) => t.secrets(),
            Target::Teams(t) => t.secrets(),
            Target::Discord(t) => t.secrets(),
            Target::Ntfy(t) => t.secrets(),
            Target::Gotify(t) => t.secrets(),
            Target::Pagerduty(t) => t.secrets(),
            Target::Healthchecks(t) => t.secrets(),
        }
    }

    /// Renders and sends; every request of the plan must succeed.
    pub async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let secrets: Vec<&str> = self.secrets().into_iter().map(Secret::expose).collect();
        let scrub = |mut e: DeliveryError| {
            e.message = redact(&e.message, &secrets);
            e
        };
        let requests = match self.plan(n).map_err(scrub)? {
            Plan::Skip(why) => return Ok(Delivered::new(why)),
            Plan::Send(r) => r,
        };
        let mut details = Vec::new();
        for r in requests {
            let d = self.send(r).await.map_err(scrub)?;
            details.push(redact(&d.detail, &secrets));
        }
        Ok(Delivered::new(details.join("; ")))
    }

    async fn send(&self, r: Request) -> Result<Delivered, DeliveryError> {
        let site = site(&r.url);
        let method = r.method.clone();
        let resp = self
            .client
            .request(r.method, r.url)
            .headers(r.headers)
            .body(r.body)
            .send()
            .await
            .map_err(|e| self.transport_error(&method, &site, &e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| Url::parse(l).ok())
            .map(|u| self::site(&u));
        let body = peek_body(resp).await;
        let line = first_line(&body);
        classify(
            status.as_u16(),
            &method,
            &site,
            &line,
            retry_after,
            location,
        )
    }

    fn transport_error(&self, method: &Method, site: &str, e: &reqwest::Error) -> DeliveryError {
        if let Some(cert) = certificate_problem(e) {
            let hint = match &self.ca_file {
                Some(p) => format!("the server's certificate is not signed by the CA in ca_file {}", p.display()),
                None => "set ca_file to the PEM of the CA that signed the server's certificate, or fix the server's certificate".to_string(),
            };
            return DeliveryError::permanent(format!(
                "{method} {site}: TLS certificate rejected ({cert}): {hint}"
            ));
        }
        let cause = root_cause(e);
        if e.is_timeout() {
            DeliveryError::transient(format!(
                "{method} {site}: no answer within {}s; will retry",
                self.timeout.as_secs()
            ))
        } else if e.is_connect() {
            DeliveryError::transient(format!(
                "{method} {site}: cannot connect ({cause}); will retry"
            ))
        } else if e.is_builder() {
            DeliveryError::permanent(format!("{method} {site}: invalid request ({cause})"))
        } else {
            DeliveryError::transient(format!("{method} {site}: {cause}; will retry"))
        }
    }
}

/// Builds the client: timeout, no redirects, and either the system roots or only the CAs in `ca_file`.
pub(crate) fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, ConfigProblem> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| ConfigProblem::CaFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigProblem::CaFile {
                path: path.to_path_buf(),
                message: format!("not a PEM certificate bundle: {e}"),
            })?;
        if certs.is_empty() {
            return Err(ConfigProblem::CaFile {
                path: path.to_path_buf(),
                message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
            });
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| ConfigProblem::Client(e.to_string()))
}

/// Parses an http(s) URL from the config (or from a secret: then the message does not quote it).
pub(crate) fn parse_url(key: &str, value: &str, secret: bool) -> Result<Url, ConfigProblem> {
    let shown = if secret {
        String::new()
    } else {
        format!(" {value:?}")
    };
    let url = Url::parse(value.trim()).map_err(|e| {
        ConfigProblem::Invalid(format!(
            "{key}{shown} is not a URL ({e}); expected https://host/path"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigProblem::Invalid(format!(
            "{key}{shown} must be an http:// or https:// URL with a host"
        )));
    }
    Ok(url)
}

/// `https://host:port`, the part of a URL that is safe to show.
pub(crate) fn site(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn classify(
    status: u16,
    method: &Method,
    site: &str,
    line: &str,
    retry_after: Option<Duration>,
    location: Option<String>,
) -> Result<Delivered, DeliveryError> {
    let said = if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    };
    match status {
        200..=299 => {
            let mut d = format!("HTTP {status}");
            if !line.is_empty() && line.chars().count() <= 120 {
                d.push_str(&said);
            }
            Ok(Delivered::new(d))
        }
        300..=399 => Err(DeliveryError::permanent(format!(
            "{method} {site}: HTTP {status} redirect{} not followed; configure the final URL",
            location.map(|l| format!(" to {l}")).unwrap_or_default()
        ))),
        408 | 425 | 429 | 500..=599 => Err(DeliveryError {
            retry: Retry::Transient { after: retry_after },
            message: format!(
                "{method} {site}: HTTP {status}{said}; will retry{}",
                retry_after
                    .map(|d| format!(" after {}s as asked", d.as_secs()))
                    .unwrap_or_default()
            ),
        }),
        410 => Err(DeliveryError::permanent(format!(
            "{method} {site}: HTTP 410 Gone{said}: the endpoint was removed; replace the URL or remove the channel"
        ))),
        401 | 403 => Err(DeliveryError::permanent(format!(
            "{method} {site}: HTTP {status}{said}: the credentials (token, key or URL) were refused; check the channel's *_file / *_env"
        ))),
        404 => Err(DeliveryError::permanent(format!(
            "{method} {site}: HTTP 404{said}: no such endpoint; check the URL"
        ))),
        _ => Err(DeliveryError::permanent(format!(
            "{method} {site}: HTTP {status}{said}: the receiver refused the request"
        ))),
    }
}

/// Seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`), capped at a day.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
        let now = jiff::Timestamp::now();
        let secs = at.as_second() - now.as_second();
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    };
    Some(d.min(MAX_RETRY_AFTER))
}

async fn peek_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < BODY_PEEK {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(BODY_PEEK);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The first non-empty line, at most 200 characters, control characters removed.
fn first_line(body: &str) -> String {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    crate::text::truncate(&clean, 200)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

/// The rustls certificate error somewhere in the chain, if that is what went wrong. (`io::Error::source`
/// skips the wrapped error itself, so wrapped errors are opened explicitly.)
pub(crate) fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = tls_error(err) {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = certificate_problem(inner)
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    match err.downcast_ref::<rustls::Error>()? {
        e @ (rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType) => Some(e.to_string()),
        _ => None,
    }
}

/// A header name and value from the config, checked.
pub(crate) fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigProblem> {
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ConfigProblem::Invalid(format!(
            "header name {name:?} is not a valid HTTP header name"
        ))
    })?;
    let v = HeaderValue::from_str(value).map_err(|_| {
        ConfigProblem::Invalid(format!(
            "header {name}: the value has characters HTTP does not allow"
        ))
    })?;
    Ok((n, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(300);
        let http_date =
            jiff::fmt::rfc2822::to_string(&later.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        let d = parse_retry_after(&http_date).unwrap();
        assert!((295..=300).contains(&d.as_secs()), "{http_date} → {d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn classification() {
        let m = Method::POST;
        assert_eq!(
            classify(204, &m, "s", "", None, None).unwrap().detail,
            "HTTP 204"
        );
        assert_eq!(
            classify(200, &m, "s", "ok", None, None).unwrap().detail,
            "HTTP 200: ok"
        );
        let e = classify(503, &m, "s", "down", Some(Duration::from_secs(7)), None).unwrap_err();
        assert_eq!(
            e.retry,
            Retry::Transient {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(429, &m, "s", "", None, None).unwrap_err().retry,
            Retry::Transient { after: None }
        );
        let e = classify(410, &m, "s", "gone", None, None).unwrap_err();
        assert_eq!(e.retry, Retry::Permanent);
        assert!(e.message.contains("410 Gone: gone"), "{}", e.message);
        let e = classify(302, &m, "s", "", None, Some("https://elsewhere".into())).unwrap_err();
        assert_eq!(e.retry, Retry::Permanent);
        assert!(e.message.contains("not followed"), "{}", e.message);
        assert_eq!(
            classify(400, &m, "s", "bad", None, None).unwrap_err().retry,
            Retry::Permanent
        );
    }

    #[test]
    fn site_hides_path_and_query() {
        let u = Url::parse("https://hooks.slack.com/services/T0/B0/secret?x=1").unwrap();
        assert_eq!(site(&u), "https://hooks.slack.com");
        let u = Url::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(site(&u), "http://127.0.0.1:8080");
    }

    #[test]
    fn first_line_is_clean_and_short() {
        assert_eq!(
            first_line("\n  invalid_payload \r\nmore"),
            "invalid_payload"
        );
        assert!(first_line(&"x".repeat(500)).chars().count() <= 200);
    }

    #[test]
    fn secret_urls_are_not_quoted_in_errors() {
        let e = parse_url("url_file", "not a url with tok-123", true)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("tok-123"), "{e}");
        let e = parse_url("url", "ftp://x", false).unwrap_err().to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }
}
