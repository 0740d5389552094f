//! The `email` channel: the configuration checked once (addresses, password, TLS roots) and one SMTP
//! submission per notification. [`mime`] builds the message, [`smtp`] speaks the protocol.

pub(crate) mod mime;
pub(crate) mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;

use crate::config::{EmailConfig, TlsMode};
use crate::error::{ConfigProblem, Delivered, DeliveryError};
use crate::model::Notification;
use crate::secret::{Secret, SecretRef, redact};
use mime::Mailbox;

/// A ready email channel.
pub(crate) struct Mailer {
    host: String,
    port: u16,
    tls: TlsMode,
    tls_config: Arc<rustls::ClientConfig>,
    ca_file: Option<PathBuf>,
    helo: String,
    username: Option<String>,
    password: Option<Secret>,
    password_key: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl Mailer {
    pub fn new(c: &EmailConfig, timeout: Duration) -> Result<Mailer, ConfigProblem> {
        let invalid = |m: String| ConfigProblem::Invalid(m);
        let host = c
            .host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(invalid(format!(
                "host {:?} is not a host name such as smtp.example.com",
                c.host
            )));
        }
        let from = Mailbox::parse(&c.from).map_err(|e| invalid(format!("from: {e}")))?;
        if c.to.is_empty() {
            return Err(invalid(
                "to is empty: list at least one recipient, to = [\"ops@example.com\"]".to_string(),
            ));
        }
        let to =
            c.to.iter()
                .map(|t| Mailbox::parse(t).map_err(|e| invalid(format!("to: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
        let secret = SecretRef {
            key: "password",
            file: c.password_file.as_ref(),
            env: c.password_env.as_ref(),
        };
        let password = secret.load()?;
        match (&c.username, &password) {
            (Some(u), _) if u.trim().is_empty() || u.contains(['\r', '\n', '\0']) => {
                return Err(invalid(
                    "username must be a non-empty single line".to_string(),
                ));
            }
            (Some(_), None) => {
                return Err(invalid(
                    "username is set but no password: add password_file or password_env"
                        .to_string(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "a password is set but no username: add username".to_string(),
                ));
            }
            _ => {}
        }
        if c.tls == TlsMode::None && c.username.is_some() && !is_local(&host) {
            return Err(invalid(format!(
                "tls = \"none\" would send the password to {host} in clear; use tls = \"starttls\" (587) or \"tls\" (465)"
            )));
        }
        let helo = c.helo_name.clone().unwrap_or_else(crate::text::hostname);
        if helo.is_empty() || !helo.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!("helo_name {helo:?} must be a host name")));
        }
        Ok(Mailer {
            tls_config: tls_config(c.ca_file.as_ref())?,
            port: c.port.unwrap_or(c.tls.default_port()),
            host,
            tls: c.tls,
            ca_file: c.ca_file.clone(),
            helo,
            username: c.username.clone(),
            password,
            password_key: secret.source_key(),
            from,
            to,
            timeout,
        })
    }

    /// Builds the message for `n` and submits it.
    pub async fn send(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let message = mime::message(n, &self.from, &self.to, jiff::Timestamp::now());
        let data = mime::dot_stuff(&message);
        let to: Vec<String> = self.to.iter().map(|m| m.addr.clone()).collect();
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.expose(), self.password_key.as_str())),
            _ => None,
        };
        let job = smtp::Job {
            host: &self.host,
            port: self.port,
            tls: self.tls,
            tls_config: &self.tls_config,
            ca_file: self.ca_file.as_deref(),
            helo: &self.helo,
            auth,
            from: &self.from.addr,
            to: &to,
            data: &data,
            timeout: self.timeout,
        };
        let secrets: Vec<&str> = self.password.iter().map(Secret::expose).collect();
        job.run().await.map_err(|mut e| {
            e.message = redact(&e.message, &secrets);
            e
        })
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The TLS client settings: only the certificates in `ca_file` when given, else the platform's verifier.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, ConfigProblem> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigProblem::Client(e.to_string()))?;
    let config = match ca_file {
        Some(path) => {
            let ca_err = |message: String| ConfigProblem::CaFile {
                path: path.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| ca_err(format!("not PEM ({e})")))?;
                roots
                    .add(cert)
                    .map_err(|e| ca_err(format!("unusable certificate ({e})")))?;
            }
            if roots.is_empty() {
                return Err(ca_err(
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| ConfigProblem::Client(format!("system certificate roots: {e}")))?
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailConfig {
        EmailConfig {
            host: "smtp.example.com".into(),
            port: None,
            tls: TlsMode::Starttls,
            username: None,
            password_file: None,
            password_env: None,
            from: "lifeboat@example.com".into(),
            to: vec!["ops@example.com".into()],
            ca_file: None,
            helo_name: None,
            timeout: None,
        }
    }

    #[test]
    fn config_checks() {
        let t = Duration::from_secs(5);
        let m = Mailer::new(&cfg(), t).unwrap();
        assert_eq!(m.port, 587);
        let mut c = cfg();
        c.username = Some("u".into());
        let e = Mailer::new(&c, t).err().unwrap().to_string();
        assert!(e.contains("password_file or password_env"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "pw-1234\n").unwrap();
        c.password_file = Some(pw);
        c.tls = TlsMode::None;
        let e = Mailer::new(&c, t).err().unwrap().to_string();
        assert!(e.contains("in clear"), "{e}");
        c.host = "127.0.0.1".into();
        assert_eq!(Mailer::new(&c, t).unwrap().port, 25);
        let mut c = cfg();
        c.to = vec![];
        assert!(Mailer::new(&c, t).is_err());
        let mut c = cfg();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        c.ca_file = Some(bad);
        let e = Mailer::new(&c, t).err().unwrap().to_string();
        assert!(
            e.contains("ca_file") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
