//! A small SMTP submission client (RFC 5321) on tokio and tokio-rustls: greeting, `EHLO` (falling back to
//! `HELO`), `STARTTLS` (RFC 3207) or TLS from the first byte, `AUTH PLAIN` (RFC 4616) or `AUTH LOGIN` when only
//! that is offered, `MAIL FROM`, one `RCPT TO` per recipient, `DATA` with dot-stuffing, `QUIT`.
//!
//! Written here rather than taken from a mail crate because lifeboat needs every failure classified for the
//! outbox (4xx and network trouble: retry; 5xx, refused logins, untrusted certificates: a human must act), and
//! needs those messages to name the setting to fix without ever quoting the password.
//!
//! Hostile-server hygiene: reply lines are bounded (2 KiB, 100 lines), and after `STARTTLS` any bytes the
//! server sent before the handshake are refused rather than read as if protected (the CVE-2011-0411 class of
//! command injection).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::TlsMode;
use crate::error::{Delivered, DeliveryError};
use crate::http::certificate_problem;

const MAX_LINE: u64 = 2048;
const MAX_LINES: usize = 100;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One SMTP reply: the code and its text lines.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    fn class(&self) -> u16 {
        self.code / 100
    }

    /// `550 5.1.1 no such user` (first line only, for messages).
    pub fn short(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.first().map(String::as_str).unwrap_or("")
        )
        .trim_end()
        .to_string()
    }
}

/// Everything one delivery needs, borrowed from the mailer.
pub(crate) struct Job<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_config: &'a Arc<rustls::ClientConfig>,
    pub ca_file: Option<&'a std::path::Path>,
    pub helo: &'a str,
    pub auth: Option<(&'a str, &'a str, &'a str)>,
    pub from: &'a str,
    pub to: &'a [String],
    pub data: &'a [u8],
    pub timeout: Duration,
}

struct Session<'a> {
    job: &'a Job<'a>,
    io: BufReader<Box<dyn Stream>>,
    label: String,
}

impl Job<'_> {
    fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connects, submits the message, and says how it went.
    pub async fn run(&self) -> Result<Delivered, DeliveryError> {
        let label = self.label();
        let tcp =
            match tokio::time::timeout(self.timeout, TcpStream::connect((self.host, self.port)))
                .await
            {
                Err(_) => {
                    return Err(DeliveryError::transient(format!(
                        "{label}: no connection within {}s; will retry",
                        self.timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => {
                    return Err(DeliveryError::transient(format!(
                        "{label}: cannot connect ({e}); will retry"
                    )));
                }
                Ok(Ok(s)) => s,
            };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if self.tls == TlsMode::Tls {
            Box::new(self.handshake(tcp, &label).await?)
        } else {
            Box::new(tcp)
        };
        let mut s = Session {
            job: self,
            io: BufReader::new(stream),
            label,
        };
        let result = s.converse().await;
        if result.is_ok() {
            // Politeness only: the message is accepted whatever QUIT does.
            let _ = tokio::time::timeout(Duration::from_secs(5), s.command("QUIT")).await;
        }
        result
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: S,
        label: &str,
    ) -> Result<tokio_rustls::client::TlsStream<S>, DeliveryError> {
        let name = ServerName::try_from(self.host.to_string()).map_err(|_| {
            DeliveryError::permanent(format!(
                "{label}: {:?} is not a valid TLS server name",
                self.host
            ))
        })?;
        let connector = tokio_rustls::TlsConnector::from(self.tls_config.clone());
        match tokio::time::timeout(self.timeout, connector.connect(name, io)).await {
            Err(_) => Err(DeliveryError::transient(format!(
                "{label}: TLS handshake did not finish within {}s; will retry",
                self.timeout.as_secs()
            ))),
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(self.tls_error(label, &e)),
        }
    }

    fn tls_error(&self, label: &str, e: &std::io::Error) -> DeliveryError {
        if let Some(cert) = certificate_problem(e) {
            let hint = match self.ca_file {
                Some(p) => format!(
                    "the server's certificate is not signed by the CA in ca_file {}",
                    p.display()
                ),
                None => format!(
                    "it is not trusted by the system's roots; set ca_file to the PEM of the CA that signed it, or check that host {:?} is the name in the certificate",
                    self.host
                ),
            };
            return DeliveryError::permanent(format!(
                "{label}: TLS certificate rejected ({cert}): {hint}"
            ));
        }
        let tls_level = e
            .get_ref()
            .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some());
        if tls_level {
            DeliveryError::permanent(format!(
                "{label}: TLS handshake failed ({e}); check tls = \"{}\" against the port (465 is usually tls, 587 starttls)",
                self.tls
            ))
        } else {
            DeliveryError::transient(format!(
                "{label}: connection lost during the TLS handshake ({e}); will retry"
            ))
        }
    }
}

impl Session<'_> {
    async fn converse(&mut self) -> Result<Delivered, DeliveryError> {
        let greeting = self.read_reply("the greeting").await?;
        self.expect(&greeting, 2, "the greeting")?;
        let mut caps = self.ehlo().await?;
        if self.job.tls == TlsMode::Starttls {
            if !caps.iter().any(|c| c == "STARTTLS") {
                return Err(DeliveryError::permanent(format!(
                    "{}: the server does not offer STARTTLS; use tls = \"tls\" (port 465) or, for a trusted local relay only, tls = \"none\"",
                    self.label
                )));
            }
            let r = self.command("STARTTLS").await?;
            self.expect(&r, 2, "STARTTLS")?;
            if !self.io.buffer().is_empty() {
                return Err(DeliveryError::permanent(format!(
                    "{}: the server sent data before the TLS handshake (possible injection); refusing",
                    self.label
                )));
            }
            self.upgrade().await?;
            caps = self.ehlo().await?;
        }
        if let Some((user, pass, key)) = self.job.auth {
            self.login(&caps, user, pass, key).await?;
        }
        let r = self
            .command(&format!("MAIL FROM:<{}>", self.job.from))
            .await?;
        self.expect(&r, 2, &format!("MAIL FROM <{}>", self.job.from))?;
        let mut refused = Vec::new();
        for to in self.job.to {
            let r = self.command(&format!("RCPT TO:<{to}>")).await?;
            if r.class() != 2 {
                refused.push((to.clone(), r));
            }
        }
        if refused.len() == self.job.to.len() {
            let list = refused
                .iter()
                .map(|(a, r)| format!("{a} ({})", r.short()))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = self.command("RSET").await;
            let msg = format!("{}: every recipient was refused: {list}", self.label);
            return Err(if refused.iter().any(|(_, r)| r.class() == 4) {
                DeliveryError::transient(format!("{msg}; will retry"))
            } else {
                DeliveryError::permanent(format!("{msg}; check `to`"))
            });
        }
        let r = self.command("DATA").await?;
        self.expect(&r, 3, "DATA")?;
        self.write(self.job.data).await?;
        let r = self.read_reply("the end of the message").await?;
        self.expect(&r, 2, "the message")?;
        let mut detail = r.short();
        if !refused.is_empty() {
            let list = refused
                .iter()
                .map(|(a, r)| format!("{a} ({})", r.short()))
                .collect::<Vec<_>>()
                .join(", ");
            detail.push_str(&format!("; refused recipients: {list}"));
            tracing::warn!(server = %self.label, refused = %list, "some recipients were refused");
        }
        Ok(Delivered::new(detail))
    }

    async fn ehlo(&mut self) -> Result<Vec<String>, DeliveryError> {
        let r = self.command(&format!("EHLO {}", self.job.helo)).await?;
        if r.class() == 2 {
            return Ok(r
                .lines
                .iter()
                .skip(1)
                .map(|l| l.trim().to_ascii_uppercase())
                .collect());
        }
        if r.class() == 5 && self.job.tls == TlsMode::None && self.job.auth.is_none() {
            let r = self.command(&format!("HELO {}", self.job.helo)).await?;
            self.expect(&r, 2, "HELO")?;
            return Ok(Vec::new());
        }
        self.expect(&r, 2, "EHLO")?;
        Ok(Vec::new())
    }

    async fn upgrade(&mut self) -> Result<(), DeliveryError> {
        let placeholder: Box<dyn Stream> = Box::new(tokio::io::duplex(1).0);
        let plain = std::mem::replace(&mut self.io, BufReader::new(placeholder)).into_inner();
        let tls = self.job.handshake(plain, &self.label).await?;
        self.io = BufReader::new(Box::new(tls));
        Ok(())
    }

    async fn login(
        &mut self,
        caps: &[String],
        user: &str,
        pass: &str,
        key: &str,
    ) -> Result<(), DeliveryError> {
        let mechs: Vec<&str> = caps
            .iter()
            .filter_map(|c| c.strip_prefix("AUTH ").or_else(|| c.strip_prefix("AUTH=")))
            .flat_map(str::split_whitespace)
            .collect();
        let refused = |r: &Reply, label: &str| {
            let what = format!("{label} rejected the login for {user} ({})", r.short());
            match r.code {
                535 | 534 | 530 | 538 => {
                    DeliveryError::permanent(format!("{what}: check username and {key}"))
                }
                c if c / 100 == 4 => DeliveryError::transient(format!("{what}; will retry")),
                _ => DeliveryError::permanent(format!("{what}: check username and {key}")),
            }
        };
        let r = if mechs.contains(&"PLAIN") {
            let token = STANDARD.encode(format!("\0{user}\0{pass}"));
            self.command_secret(&format!("AUTH PLAIN {token}"), "AUTH PLAIN")
                .await?
        } else if mechs.contains(&"LOGIN") {
            let r = self.command("AUTH LOGIN").await?;
            if r.code != 334 {
                return Err(refused(&r, &self.label));
            }
            let r = self
                .command_secret(&STANDARD.encode(user), "the AUTH LOGIN user name")
                .await?;
            if r.code != 334 {
                return Err(refused(&r, &self.label));
            }
            self.command_secret(&STANDARD.encode(pass), "the AUTH LOGIN password")
                .await?
        } else if mechs.is_empty() {
            return Err(DeliveryError::permanent(format!(
                "{}: the server offers no AUTH{}; remove username or use the submission port",
                self.label,
                if self.job.tls == TlsMode::None {
                    " (many servers offer it only over TLS)"
                } else {
                    ""
                }
            )));
        } else {
            return Err(DeliveryError::permanent(format!(
                "{}: the server offers AUTH {} but lifeboat speaks PLAIN and LOGIN only",
                self.label,
                mechs.join(" ")
            )));
        };
        if r.code == 235 {
            Ok(())
        } else {
            Err(refused(&r, &self.label))
        }
    }

    fn expect(&self, r: &Reply, class: u16, what: &str) -> Result<(), DeliveryError> {
        if r.class() == class {
            return Ok(());
        }
        let msg = format!("{}: {what} was refused ({})", self.label, r.short());
        Err(if r.class() == 4 {
            DeliveryError::transient(format!("{msg}; will retry"))
        } else {
            DeliveryError::permanent(msg)
        })
    }

    async fn command(&mut self, line: &str) -> Result<Reply, DeliveryError> {
        let verb = line.split(' ').next().unwrap_or(line).to_string();
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(&verb).await
    }

    /// A command that carries credentials: errors name `what`, never the line.
    async fn command_secret(&mut self, line: &str, what: &str) -> Result<Reply, DeliveryError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(what).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), DeliveryError> {
        let t = self.job.timeout;
        let io = self.io.get_mut();
        let w = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(t, w).await {
            Err(_) => Err(DeliveryError::transient(format!(
                "{}: sending timed out after {}s; will retry",
                self.label,
                t.as_secs()
            ))),
            Ok(Err(e)) => Err(DeliveryError::transient(format!(
                "{}: connection lost while sending ({e}); will retry",
                self.label
            ))),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, what: &str) -> Result<Reply, DeliveryError> {
        let t = self.job.timeout;
        match tokio::time::timeout(t, read_reply(&mut self.io)).await {
            Err(_) => Err(DeliveryError::transient(format!(
                "{}: no answer to {what} within {}s; will retry{}",
                self.label,
                t.as_secs(),
                if what == "the greeting" && self.job.tls != TlsMode::Tls {
                    " (if this port expects TLS from the first byte, such as 465, set tls = \"tls\")"
                } else {
                    ""
                }
            ))),
            Ok(Err(ReadError::Io(e))) => Err(DeliveryError::transient(format!(
                "{}: connection lost waiting for the answer to {what} ({e}); will retry",
                self.label
            ))),
            Ok(Err(ReadError::Protocol(m))) => Err(DeliveryError::permanent(format!(
                "{}: the answer to {what} is not SMTP ({m}); check host, port and tls",
                self.label
            ))),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

enum ReadError {
    Io(std::io::Error),
    Protocol(String),
}

/// Reads one (possibly multi-line) reply: `250-first`, `250-second`, `250 last`.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R) -> Result<Reply, ReadError> {
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let mut buf = Vec::new();
        let n = (&mut *io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        if !buf.ends_with(b"\n") {
            return Err(ReadError::Protocol(format!(
                "a reply line longer than {MAX_LINE} bytes"
            )));
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']);
        let head = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c));
        let Some(c) = head else {
            let shown: String = line.chars().take(60).filter(|c| !c.is_control()).collect();
            return Err(ReadError::Protocol(format!("got {shown:?}")));
        };
        if code.is_some_and(|k| k != c) {
            return Err(ReadError::Protocol(
                "reply codes change inside one reply".to_string(),
            ));
        }
        code = Some(c);
        let sep = line.as_bytes().get(3).copied();
        lines.push(line.get(4..).unwrap_or("").to_string());
        match sep {
            Some(b'-') if lines.len() < MAX_LINES => continue,
            Some(b'-') => {
                return Err(ReadError::Protocol(format!(
                    "a reply of more than {MAX_LINES} lines"
                )));
            }
            _ => return Ok(Reply { code: c, lines }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_replies() {
        let mut r = &b"250-mail.example.com hello\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"[..];
        let reply = read_reply(&mut r).await.ok().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(
            reply.lines,
            vec!["mail.example.com hello", "STARTTLS", "AUTH PLAIN LOGIN"]
        );
        let mut r = &b"535 5.7.8 Authentication credentials invalid\r\n"[..];
        assert_eq!(
            read_reply(&mut r).await.ok().unwrap().short(),
            "535 5.7.8 Authentication credentials invalid"
        );
        let mut r = &b"HTTP/1.1 400 Bad Request\r\n"[..];
        assert!(matches!(
            read_reply(&mut r).await,
            Err(ReadError::Protocol(_))
        ));
        let long = format!("250 {}\r\n", "x".repeat(5000));
        let mut r = long.as_bytes();
        assert!(matches!(
            read_reply(&mut r).await,
            Err(ReadError::Protocol(_))
        ));
        let mut r = &b"250-a\r\n"[..];
        assert!(matches!(read_reply(&mut r).await, Err(ReadError::Io(_))));
    }
}
