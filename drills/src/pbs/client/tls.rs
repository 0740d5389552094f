//! TLS for PBS: strict certificate pinning or normal CA validation, and HTTP/1.1 only.
//!
//! PBS installs a self-signed certificate, so users pin its SHA-256 fingerprint (pbs-protocol.md §1.3).
//! lifeboat's pin is strict: the leaf certificate's DER hash must equal the pin whatever the chain says (the
//! official client consults the pin only when chain validation fails). Handshake signatures are still
//! verified with the crypto provider, so a server must hold the pinned certificate's private key. The host
//! name is not checked against a pinned certificate: the pin already names exactly one certificate.
//!
//! ALPN offers only `http/1.1`: the reader protocol is an HTTP/1.1 Upgrade that PBS refuses on HTTP/2
//! (§1.3), and the API needs nothing more.
//!
//! A mismatch is recorded in a `PinSlot` shared with the client, so the error can print the fingerprint
//! the server presented however deeply reqwest/hyper wrap the handshake error.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, OtherError, SignatureScheme};

use crate::pbs::crypt::{Fingerprint, sha256};

/// How the server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Strict pin: SHA-256 of the leaf certificate's DER (PBS's `fingerprint`, PBS_FINGERPRINT).
    Fingerprint(Fingerprint),
    /// Normal validation against the system's certificate authorities (a PBS with a CA-signed certificate).
    System,
}

/// The fingerprint PBS shows for a certificate: SHA-256 of its DER encoding (§1.3).
pub fn certificate_fingerprint(der: &[u8]) -> Fingerprint {
    Fingerprint(sha256(der))
}

/// The last fingerprint a server presented that did not match the pin.
#[derive(Debug, Clone, Default)]
pub(crate) struct PinSlot(Arc<Mutex<Option<Fingerprint>>>);

impl PinSlot {
    fn record(&self, presented: Fingerprint) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(presented);
        }
    }

    /// The recorded mismatch, if any.
    pub(crate) fn get(&self) -> Option<Fingerprint> {
        self.0.lock().ok().and_then(|slot| *slot)
    }
}

/// A pin mismatch, carried inside the rustls error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PinMismatch {
    pub(crate) presented: Fingerprint,
    pub(crate) expected: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint {} does not match the pinned {}",
            self.presented, self.expected
        )
    }
}

impl StdError for PinMismatch {}

/// Accepts exactly the pinned leaf certificate and checks handshake signatures.
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
    slot: PinSlot,
}

impl PinnedVerifier {
    pub(crate) fn new(expected: Fingerprint, provider: Arc<CryptoProvider>, slot: PinSlot) -> Self {
        PinnedVerifier {
            expected,
            provider,
            slot,
        }
    }

    /// The pin check on its own: `Err` carries both fingerprints.
    pub(crate) fn check(&self, leaf_der: &[u8]) -> Result<(), PinMismatch> {
        let presented = certificate_fingerprint(leaf_der);
        if presented == self.expected {
            Ok(())
        } else {
            self.slot.record(presented);
            Err(PinMismatch {
                presented,
                expected: self.expected,
            })
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.check(end_entity.as_ref()) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(mismatch) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(mismatch)),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls configuration pinning `expected`, offering ALPN `http/1.1` only. It is built with an explicit
/// aws-lc-rs provider (the one reqwest uses), so no process-wide default provider is needed.
pub(crate) fn pinned_config(
    expected: Fingerprint,
    slot: PinSlot,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedVerifier::new(expected, provider.clone(), slot));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a TLS failure in an error chain was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// Our pin did not match.
    Mismatch(PinMismatch),
    /// Any other rustls error.
    Other(String),
}

/// Finds a rustls error in `err`'s chain. `io::Error` hides its payload from `source()`, so the walk also
/// looks inside with `get_ref()`.
pub(crate) fn find_tls_failure(err: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    let mut depth = 0;
    while let Some(e) = next {
        depth += 1;
        if depth > 32 {
            break;
        }
        if let Some(found) = as_tls_failure(e) {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(found) = find_tls_failure(inner) {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

fn as_tls_failure(e: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    if let Some(m) = e.downcast_ref::<PinMismatch>() {
        return Some(TlsFailure::Mismatch(*m));
    }
    let rustls_error = e.downcast_ref::<rustls::Error>()?;
    if let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) =
        rustls_error
        && let Some(m) = inner.downcast_ref::<PinMismatch>()
    {
        return Some(TlsFailure::Mismatch(*m));
    }
    Some(TlsFailure::Other(rustls_error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    #[test]
    fn pin_compares_the_leaf_der_hash_and_records_mismatches() {
        let der = b"not really a certificate, only its bytes are hashed";
        let good = certificate_fingerprint(der);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let slot = PinSlot::default();
        let v = PinnedVerifier::new(good, provider.clone(), slot.clone());
        let cert = CertificateDer::from(der.to_vec());
        let name = ServerName::try_from("pbs.example").unwrap();
        assert!(
            v.verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert_eq!(slot.get(), None);

        let v = PinnedVerifier::new(fp(7), provider, slot.clone());
        let err = v
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert_eq!(slot.get(), Some(good));
        let found = find_tls_failure(&err).unwrap();
        assert_eq!(
            found,
            TlsFailure::Mismatch(PinMismatch {
                presented: good,
                expected: fp(7)
            })
        );
        // Wrapped in io::Error the way tokio-rustls reports it, and then in another error.
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Wrap(#[source] std::io::Error);
        let wrapped = Wrap(io);
        assert!(matches!(
            find_tls_failure(&wrapped),
            Some(TlsFailure::Mismatch(m)) if m.presented == good
        ));
        let other = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(matches!(
            find_tls_failure(&other),
            Some(TlsFailure::Other(_))
        ));
        assert_eq!(find_tls_failure(&std::io::Error::other("plain")), None);
    }

    #[test]
    fn signatures_are_still_verified() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let v = PinnedVerifier::new(fp(1), provider, PinSlot::default());
        // The provider's schemes are offered (the signatures themselves are checked in the e2e tests,
        // where a real handshake happens; rustls does not let tests build a signature struct).
        let schemes = v.supported_verify_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(schemes.contains(&SignatureScheme::ED25519));
    }

    #[test]
    fn config_offers_http1_only() {
        let c = pinned_config(fp(1), PinSlot::default()).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
