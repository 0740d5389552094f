//! PBS encryption keys: chunk digests, key fingerprints, manifest signatures and key files.
//!
//! A PBS client with an encryption key derives a second key from it (`id_key`) that namespaces chunk
//! digests, names the key (its fingerprint) and signs manifests. A restore drill needs all three to prove an
//! encrypted backup is whole: without the key an encrypted chunk can only be CRC-checked. Every fact here comes
//! from `pbs-protocol.md` §3.2 and §3.5 (upstream: proxmox-backup `pbs-tools/src/crypt_config.rs` and
//! `pbs-key-config/src/lib.rs`).
//!
//! Key material never appears in `Debug` output or error messages, and is overwritten when dropped (best
//! effort: without `unsafe` the compiler may still have left copies elsewhere).

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::consts::U16;
use aes_gcm::{KeyInit, Nonce, Tag};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `SHA-256("Proxmox Backup Encryption Key Fingerprint")`, hashed with the `id_key` to make the key
/// fingerprint (pbs-protocol.md §3.5, from proxmox-backup `pbs-tools/src/crypt_config.rs`).
pub const FINGERPRINT_INPUT: [u8; 32] = [
    110, 208, 239, 119, 71, 31, 255, 77, 85, 199, 168, 254, 74, 157, 182, 33, 97, 64, 127, 19, 76,
    114, 93, 223, 48, 153, 45, 37, 236, 69, 237, 38,
];

/// PBKDF2 salt and iteration count of the `id_key` (pbs-protocol.md §3.2, `CryptConfig::new`).
const ID_KEY_SALT: &[u8] = b"_id_key";
const ID_KEY_ITERATIONS: u32 = 10;

/// Shortest passphrase a key file accepts (pbs-protocol.md §3.5, `KeyConfig::decrypt`).
pub const MIN_PASSPHRASE_LEN: usize = 5;

/// Most memory scrypt may use for a key file: upstream passes `1025 * 1024 * 1024` as OpenSSL's `maxmem`
/// (proxmox-backup `pbs-key-config/src/lib.rs`, `KeyDerivationConfig::derive_key`).
const SCRYPT_MAX_MEMORY: u128 = 1025 * 1024 * 1024;

/// Most PBKDF2 iterations accepted from a key file. Upstream writes 65535; the cap only stops a hostile
/// key file from keeping the agent busy for hours.
const PBKDF2_MAX_ITERATIONS: u64 = 10_000_000;

/// AES-256-GCM with the 16-byte IV PBS uses (pbs-protocol.md §3.1: J0 is derived through GHASH, as OpenSSL
/// does for IVs that are not 12 bytes).
type Aes256Gcm16 = aes_gcm::AesGcm<aes_gcm::aes::Aes256, U16>;

/// SHA-256 of `data`: the digest of an unencrypted chunk (pbs-protocol.md §3.2) and the checksum of blobs in
/// the manifest (§3.5).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// AES-256-GCM failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The tag does not match: the ciphertext, IV or tag were altered, or the key is not the one used to encrypt.
    #[error("AES-256-GCM authentication failed: the data were altered or the key is wrong")]
    Authentication,
    /// The input exceeds what AES-GCM can process.
    #[error("input too long for AES-256-GCM")]
    TooLong,
}

/// Encrypts `plaintext` with AES-256-GCM (16-byte IV, empty AAD) and returns `(ciphertext, tag)`.
fn aes_gcm_encrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    plaintext: &[u8],
) -> Result<(Vec<u8>, [u8; 16]), AeadError> {
    let cipher = Aes256Gcm16::new(&(*key).into());
    let nonce: Nonce<U16> = (*iv).into();
    let mut buffer = plaintext.to_vec();
    let tag: Tag<U16> = cipher
        .encrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into())
        .map_err(|_| AeadError::TooLong)?;
    Ok((buffer, tag.into()))
}

/// Decrypts and authenticates AES-256-GCM `ciphertext` (16-byte IV, empty AAD).
fn aes_gcm_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    tag: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, AeadError> {
    let cipher = Aes256Gcm16::new(&(*key).into());
    let nonce: Nonce<U16> = (*iv).into();
    let tag: Tag<U16> = (*tag).into();
    let mut buffer = ciphertext.to_vec();
    cipher
        .decrypt_inout_detached(&nonce, b"", buffer.as_mut_slice().into(), &tag)
        .map_err(|_| AeadError::Authentication)?;
    Ok(buffer)
}

/// Overwrites secret bytes (best effort; see the module comment).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// An encryption key and the `id_key` derived from it: decrypts chunks and blobs, computes encrypted-chunk
/// digests, names the key and signs manifests.
///
/// `Debug` shows the fingerprint only.
#[derive(Clone)]
pub struct CryptConfig {
    enc_key: [u8; 32],
    id_key: [u8; 32],
}

impl CryptConfig {
    /// Builds the configuration for a raw 32-byte encryption key:
    /// `id_key = PBKDF2-HMAC-SHA256(enc_key, b"_id_key", 10 iterations, 32 bytes)` (pbs-protocol.md §3.2).
    pub fn new(enc_key: [u8; 32]) -> Self {
        let mut id_key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&enc_key, ID_KEY_SALT, ID_KEY_ITERATIONS, &mut id_key);
        CryptConfig { enc_key, id_key }
    }

    /// Digest of an encrypted chunk: `SHA-256(plaintext || id_key)` (pbs-protocol.md §3.2).
    pub fn compute_digest(&self, data: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(data);
        hasher.update(self.id_key);
        hasher.finalize().into()
    }

    /// The key fingerprint: `SHA-256(FINGERPRINT_INPUT || id_key)` (pbs-protocol.md §3.5).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(self.compute_digest(&FINGERPRINT_INPUT))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC pads keys shorter than the hash block (64 bytes for SHA-256) with zeros (RFC 2104, section 2),
        // so padding here gives the same MAC as keying with the 32-byte id_key, without a fallible constructor.
        let mut padded = [0u8; 64];
        let (head, _) = padded.split_at_mut(32);
        head.copy_from_slice(&self.id_key);
        let mac = Hmac::<Sha256>::new(&padded.into());
        wipe(&mut padded);
        mac
    }

    /// `HMAC-SHA256(id_key, data)`: the manifest signature over its canonical JSON (pbs-protocol.md §3.5).
    pub fn compute_auth_tag(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is `HMAC-SHA256(id_key, data)`, compared in constant time.
    pub fn verify_auth_tag(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }

    /// Encrypts `plaintext` with the key and `iv` (AES-256-GCM, 16-byte IV, empty AAD; pbs-protocol.md §3.1)
    /// and returns `(ciphertext, tag)`. The caller chooses the IV: never reuse one with the same key.
    pub fn encrypt(
        &self,
        iv: &[u8; 16],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, [u8; 16]), AeadError> {
        aes_gcm_encrypt(&self.enc_key, iv, plaintext)
    }

    /// Decrypts and authenticates `ciphertext` (AES-256-GCM, 16-byte IV, empty AAD; pbs-protocol.md §3.1).
    pub fn decrypt(
        &self,
        iv: &[u8; 16],
        tag: &[u8; 16],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        aes_gcm_decrypt(&self.enc_key, iv, tag, ciphertext)
    }
}

impl fmt::Debug for CryptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptConfig")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Drop for CryptConfig {
    fn drop(&mut self) {
        wipe(&mut self.enc_key);
        wipe(&mut self.id_key);
    }
}

/// A key fingerprint: 32 bytes, shown as colon-separated lowercase hex (pbs-protocol.md §3.5). It names a key
/// without revealing it, so it may be logged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short form PBS shows in lists: the first 8 bytes, colon hex.
    pub fn short(&self) -> String {
        colon_hex(self.0.get(..8).unwrap_or(&[]))
    }
}

fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&colon_hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint string is not 32 colon-separated hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a key fingerprint: expected 32 colon-separated hex bytes like `4c:f7:…:3d`"
)]
pub struct FingerprintParseError {
    /// The rejected text (fingerprints are not secret), cut to 200 characters.
    pub input: String,
}

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    /// Parses colon-separated hex, case-insensitive (pbs-protocol.md §5.1, fingerprint schema).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || FingerprintParseError {
            input: s.chars().take(200).collect(),
        };
        let mut bytes = [0u8; 32];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(error)?;
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(error());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| error())?;
        }
        if parts.next().is_some() {
            return Err(error());
        }
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Base64 (standard alphabet, padded) for byte fields of key files, as upstream's
/// `proxmox_serde::bytes_as_base64`.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// How a key file derives the key that wraps the encryption key from a passphrase (pbs-protocol.md §3.5,
/// upstream `KeyDerivationConfig`; JSON `{"Scrypt":{…}}` or `{"PBKDF2":{…}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kdf {
    /// scrypt with cost `n` (a power of two), block size `r` and parallelism `p`. Upstream writes
    /// `n = 65536, r = 8, p = 1` with a 32-byte random salt.
    Scrypt {
        /// CPU/memory cost, a power of two.
        n: u64,
        /// Block size.
        r: u64,
        /// Parallelism.
        p: u64,
        /// Salt.
        #[serde(with = "base64_bytes")]
        salt: Vec<u8>,
    },
    /// PBKDF2-HMAC-SHA256 with `iter` iterations. Upstream writes `iter = 65535`.
    #[serde(rename = "PBKDF2")]
    Pbkdf2 {
        /// Iteration count.
        iter: u64,
        /// Salt.
        #[serde(with = "base64_bytes")]
        salt: Vec<u8>,
    },
}

impl Kdf {
    /// Derives the 32-byte wrapping key from `passphrase`, refusing parameters that are invalid or would
    /// need more than upstream's memory limit (1025 MiB for scrypt).
    pub fn derive_key(&self, passphrase: &[u8]) -> Result<[u8; 32], KeyError> {
        let mut key = [0u8; 32];
        match self {
            Kdf::Scrypt { n, r, p, salt } => {
                let params = scrypt_params(*n, *r, *p)?;
                scrypt::scrypt(passphrase, salt, &params, &mut key).map_err(|e| {
                    KeyError::KdfParameters {
                        detail: format!("scrypt refused to run: {e}"),
                    }
                })?;
            }
            Kdf::Pbkdf2 { iter, salt } => {
                if *iter == 0 || *iter > PBKDF2_MAX_ITERATIONS {
                    return Err(KeyError::KdfParameters {
                        detail: format!(
                            "PBKDF2 iteration count {iter} is outside 1..={PBKDF2_MAX_ITERATIONS}"
                        ),
                    });
                }
                let rounds = u32::try_from(*iter).map_err(|_| KeyError::KdfParameters {
                    detail: format!("PBKDF2 iteration count {iter} is too large"),
                })?;
                pbkdf2::pbkdf2_hmac::<Sha256>(passphrase, salt, rounds, &mut key);
            }
        }
        Ok(key)
    }
}

/// Validates scrypt parameters before handing them to the `scrypt` crate (whose own checks can overflow).
fn scrypt_params(n: u64, r: u64, p: u64) -> Result<scrypt::Params, KeyError> {
    let bad = |detail: String| KeyError::KdfParameters { detail };
    if n < 2 || !n.is_power_of_two() {
        return Err(bad(format!(
            "scrypt n = {n} is not a power of two of at least 2"
        )));
    }
    if r == 0 || p == 0 {
        return Err(bad(format!(
            "scrypt r = {r} and p = {p} must both be at least 1"
        )));
    }
    // Memory as OpenSSL estimates it: 128 * r * (n + p) bytes (V plus B).
    let memory = (u128::from(n) + u128::from(p))
        .saturating_mul(u128::from(r))
        .saturating_mul(128);
    if memory > SCRYPT_MAX_MEMORY {
        return Err(bad(format!(
            "scrypt n = {n}, r = {r}, p = {p} needs {memory} bytes of memory, more than the {SCRYPT_MAX_MEMORY} \
             upstream allows"
        )));
    }
    // RFC 7914: p <= (2^32 - 1) * 32 / (128 * r), which the scrypt crate checks as r * p < 2^30.
    if u128::from(r) * u128::from(p) >= 1 << 30 {
        return Err(bad(format!("scrypt r * p = {r} * {p} is too large")));
    }
    let log_n = u8::try_from(n.trailing_zeros())
        .map_err(|_| bad(format!("scrypt n = {n} is too large")))?;
    let r = u32::try_from(r).map_err(|_| bad(format!("scrypt r = {r} is too large")))?;
    let p = u32::try_from(p).map_err(|_| bad(format!("scrypt p = {p} is too large")))?;
    scrypt::Params::new(log_n, r, p).map_err(|e| bad(format!("scrypt parameters rejected: {e}")))
}

/// Why a key file could not give a key. A key file is configuration, not backup data: none of these means the
/// backup is bad.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file is not the JSON PBS writes.
    #[error("key file is not a PBS key file: {detail}")]
    Format {
        /// The parser's complaint (line and column included).
        detail: String,
    },
    /// The key is protected by a passphrase and none was given.
    #[error("the key file is protected by a passphrase{}; configure the passphrase", hint_suffix(.hint))]
    PassphraseRequired {
        /// The hint stored in the key file.
        hint: Option<String>,
    },
    /// The passphrase is shorter than PBS allows.
    #[error("the passphrase is {len} bytes; PBS passphrases have at least {min} bytes")]
    PassphraseTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The key derivation parameters are invalid or too expensive.
    #[error("key file has unusable key derivation parameters: {detail}")]
    KdfParameters {
        /// Which parameter and why.
        detail: String,
    },
    /// The `data` field has the wrong length.
    #[error("key file `data` is {actual} bytes after base64 decoding, expected {expected}")]
    DataLength {
        /// Expected length: 32 (plain key) or 64 (IV, tag and encrypted key).
        expected: usize,
        /// Found length.
        actual: usize,
    },
    /// The wrapped key does not decrypt with the passphrase.
    #[error("cannot decrypt the key: wrong passphrase{}", hint_suffix(.hint))]
    WrongPassphrase {
        /// The hint stored in the key file.
        hint: Option<String>,
    },
    /// The key does not have the fingerprint the key file states.
    #[error("key file says fingerprint {stored}, but the key it contains has fingerprint {actual}")]
    FingerprintMismatch {
        /// Stated in the file.
        stored: Fingerprint,
        /// Computed from the key.
        actual: Fingerprint,
    },
    /// Encrypting a key for a new key file failed.
    #[error("cannot write the key file: {detail}")]
    Encode {
        /// What failed.
        detail: String,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(hint) => format!(" (hint: {hint:?})"),
        None => String::new(),
    }
}

/// A PBS key file (pbs-protocol.md §3.5, upstream `pbs-key-config` `KeyConfig`):
/// `{"kdf": null | {"Scrypt":…} | {"PBKDF2":…}, "created", "modified", "data", "fingerprint"?, "hint"?}`.
///
/// With `kdf` null, `data` is the raw 32-byte key; otherwise it is `iv[16] || tag[16] || AES-256-GCM(derived
/// key, raw key)`. `Debug` never shows `data`.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyConfig {
    /// Key derivation, or `None` when `data` holds the key in the clear.
    pub kdf: Option<Kdf>,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Modification time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// The key, plain or wrapped (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// Fingerprint of the key inside, checked after decryption when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Passphrase hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("kdf", &self.kdf)
            .field("created", &self.created)
            .field("modified", &self.modified)
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .field("fingerprint", &self.fingerprint)
            .field("hint", &self.hint)
            .finish()
    }
}

impl Drop for KeyConfig {
    fn drop(&mut self) {
        wipe(&mut self.data);
    }
}

impl KeyConfig {
    /// Parses a key file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        serde_json::from_slice(bytes).map_err(|e| KeyError::Format {
            detail: e.to_string(),
        })
    }

    /// Whether decrypting needs a passphrase.
    pub fn needs_passphrase(&self) -> bool {
        self.kdf.is_some()
    }

    /// Recovers the key: decodes it (no KDF) or unwraps it with `passphrase`, then checks the stored fingerprint.
    pub fn decrypt(&self, passphrase: Option<&[u8]>) -> Result<CryptConfig, KeyError> {
        let mut raw = match &self.kdf {
            None => {
                <[u8; 32]>::try_from(self.data.as_slice()).map_err(|_| KeyError::DataLength {
                    expected: 32,
                    actual: self.data.len(),
                })?
            }
            Some(kdf) => self.unwrap_key(kdf, passphrase)?,
        };
        let config = CryptConfig::new(raw);
        wipe(&mut raw);
        let actual = config.fingerprint();
        if let Some(stored) = self.fingerprint
            && stored != actual
        {
            return Err(KeyError::FingerprintMismatch { stored, actual });
        }
        Ok(config)
    }

    fn unwrap_key(&self, kdf: &Kdf, passphrase: Option<&[u8]>) -> Result<[u8; 32], KeyError> {
        let passphrase = passphrase.ok_or_else(|| KeyError::PassphraseRequired {
            hint: self.hint.clone(),
        })?;
        if passphrase.len() < MIN_PASSPHRASE_LEN {
            return Err(KeyError::PassphraseTooShort {
                len: passphrase.len(),
                min: MIN_PASSPHRASE_LEN,
            });
        }
        // iv[16] | tag[16] | ciphertext[32]: GCM ciphertext is as long as the 32-byte key.
        let wrong_length = || KeyError::DataLength {
            expected: 64,
            actual: self.data.len(),
        };
        let (iv, rest) = self
            .data
            .split_first_chunk::<16>()
            .ok_or_else(wrong_length)?;
        let (tag, ciphertext) = rest.split_first_chunk::<16>().ok_or_else(wrong_length)?;
        if ciphertext.len() != 32 {
            return Err(wrong_length());
        }
        let mut derived = kdf.derive_key(passphrase)?;
        let result = aes_gcm_decrypt(&derived, iv, tag, ciphertext);
        wipe(&mut derived);
        let mut plain = result.map_err(|_| KeyError::WrongPassphrase {
            hint: self.hint.clone(),
        })?;
        let key = <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| wrong_length());
        wipe(&mut plain);
        key
    }

    /// A key file holding `key` in the clear (upstream `KeyConfig::without_password`), with its fingerprint.
    pub fn new_plain(key: &[u8; 32], created: &str) -> Self {
        KeyConfig {
            kdf: None,
            created: Some(created.to_owned()),
            modified: Some(created.to_owned()),
            data: key.to_vec(),
            fingerprint: Some(CryptConfig::new(*key).fingerprint()),
            hint: None,
        }
    }

    /// A key file holding `key` wrapped with a key derived from `passphrase` by `kdf`, encrypted with `iv`
    /// (upstream `KeyConfig::with_key`, which chooses the salt and IV at random).
    pub fn new_encrypted(
        key: &[u8; 32],
        passphrase: &[u8],
        kdf: Kdf,
        iv: &[u8; 16],
        created: &str,
    ) -> Result<Self, KeyError> {
        if passphrase.len() < MIN_PASSPHRASE_LEN {
            return Err(KeyError::PassphraseTooShort {
                len: passphrase.len(),
                min: MIN_PASSPHRASE_LEN,
            });
        }
        let mut derived = kdf.derive_key(passphrase)?;
        let result = aes_gcm_encrypt(&derived, iv, key);
        wipe(&mut derived);
        let (ciphertext, tag) = result.map_err(|e| KeyError::Encode {
            detail: e.to_string(),
        })?;
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(iv);
        data.extend_from_slice(&tag);
        data.extend_from_slice(&ciphertext);
        Ok(KeyConfig {
            kdf: Some(kdf),
            created: Some(created.to_owned()),
            modified: Some(created.to_owned()),
            data,
            fingerprint: Some(CryptConfig::new(*key).fingerprint()),
            hint: None,
        })
    }

    /// The key file as JSON, the way upstream stores it (compact).
    pub fn to_json(&self) -> Result<String, KeyError> {
        serde_json::to_string(self).map_err(|e| KeyError::Encode {
            detail: e.to_string(),
        })
    }
}

/// The base64 text of a key, for tests and fixtures that build key files by hand.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The key derived from passphrase `"test"` with scrypt (empty salt, n = 65536, r = 8, p = 1): the key of
/// upstream's manifest signature test (pbs-protocol.md §5.1). Computed once; slow in debug builds.
#[cfg(test)]
pub(crate) fn test_scrypt_key() -> [u8; 32] {
    use std::sync::OnceLock;
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    *KEY.get_or_init(|| {
        let kdf = Kdf::Scrypt {
            n: 65536,
            r: 8,
            p: 1,
            salt: Vec::new(),
        };
        kdf.derive_key(b"test")
            .expect("the vector's parameters are valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data[i] = (i % 255) as u8` for i in 0..100000 (pbs-protocol.md §5.1, upstream `tests/blob_writer.rs`).
    fn test_data() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 255) as u8).collect()
    }

    #[test]
    fn plain_chunk_digest_vector() {
        // TEST_DIGEST_PLAIN, pbs-protocol.md §5.1.
        let expected: [u8; 32] = [
            83, 154, 96, 195, 167, 204, 38, 142, 204, 224, 130, 201, 24, 71, 2, 188, 130, 155, 177,
            6, 162, 100, 61, 238, 38, 219, 63, 240, 191, 132, 87, 238,
        ];
        assert_eq!(sha256(&test_data()), expected);
    }

    #[test]
    fn encrypted_chunk_digest_vector() {
        // TEST_DIGEST_ENC, pbs-protocol.md §5.1: confirms id_key = PBKDF2(key, "_id_key", 10).
        let expected: [u8; 32] = [
            50, 162, 191, 93, 255, 132, 9, 14, 127, 23, 92, 39, 246, 102, 245, 204, 130, 104, 4,
            106, 182, 239, 218, 14, 80, 17, 150, 188, 239, 253, 198, 117,
        ];
        let config = CryptConfig::new([1u8; 32]);
        assert_eq!(config.compute_digest(&test_data()), expected);
    }

    #[test]
    fn zero_chunk_digest_vector() {
        // pbs-protocol.md §5.2: 4 MiB of zeros.
        assert_eq!(
            hex::encode(sha256(&vec![0u8; 4 << 20])),
            "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8"
        );
    }

    #[test]
    fn fingerprint_input_is_the_hash_of_its_string() {
        assert_eq!(
            sha256(b"Proxmox Backup Encryption Key Fingerprint"),
            FINGERPRINT_INPUT
        );
    }

    #[test]
    fn fingerprint_of_key_ones() {
        // pbs-protocol.md §5.2.
        let fp = CryptConfig::new([1u8; 32]).fingerprint();
        assert_eq!(
            fp.to_string(),
            "4c:f7:c7:a9:31:86:6a:0d:33:d8:b2:58:8a:09:9d:41:a5:70:e0:cd:cd:e2:f5:2c:5c:07:be:b3:13:8e:15:3d"
        );
        assert_eq!(fp.short(), "4c:f7:c7:a9:31:86:6a:0d");
    }

    #[test]
    fn fingerprint_of_scrypt_test_key() {
        // pbs-protocol.md §5.2: key = scrypt("test", "", 65536, 8, 1).
        let fp = CryptConfig::new(test_scrypt_key()).fingerprint();
        assert_eq!(
            fp.to_string(),
            "12:b9:b7:74:bb:3d:89:95:2b:97:cb:c2:82:f0:0c:14:2b:83:ba:7f:96:62:6a:a1:5a:44:9a:63:e8:91:fe:25"
        );
    }

    #[test]
    fn fingerprint_parses_case_insensitively_and_rejects_junk() {
        let text = "4C:F7:C7:A9:31:86:6A:0D:33:D8:B2:58:8A:09:9D:41:A5:70:E0:CD:CD:E2:F5:2C:5C:07:BE:B3:13:8E:15:3D";
        let fp: Fingerprint = text.parse().unwrap();
        assert_eq!(fp, CryptConfig::new([1u8; 32]).fingerprint());
        for bad in [
            "",
            "4c",
            &text[..text.len() - 3],
            &format!("{text}:00"),
            &text.replace(':', "-"),
            "4c:f7:c7:a9:31:86:6a:0d:33:d8:b2:58:8a:09:9d:41:a5:70:e0:cd:cd:e2:f5:2c:5c:07:be:b3:13:8e:15:+d",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn debug_does_not_show_keys() {
        let key = [0xabu8; 32];
        let config = CryptConfig::new(key);
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("ab, ab") && !shown.contains("171") && !shown.contains("abab"),
            "{shown}"
        );
        assert!(shown.contains(&config.fingerprint().to_string()));
        let file = KeyConfig::new_plain(&key, "2024-01-01T00:00:00Z");
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("171") && !shown.contains(&base64_encode(&key)),
            "{shown}"
        );
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn auth_tag_round_trip() {
        let config = CryptConfig::new([7u8; 32]);
        let tag = config.compute_auth_tag(b"message");
        assert!(config.verify_auth_tag(b"message", &tag));
        assert!(!config.verify_auth_tag(b"messagf", &tag));
        assert!(!config.verify_auth_tag(b"message", &tag[..31]));
        assert!(!CryptConfig::new([8u8; 32]).verify_auth_tag(b"message", &tag));
    }

    #[test]
    fn aes_gcm_round_trip_and_tamper() {
        let config = CryptConfig::new([1u8; 32]);
        let iv = [9u8; 16];
        let (ct, tag) = config.encrypt(&iv, b"hello").unwrap();
        assert_eq!(config.decrypt(&iv, &tag, &ct).unwrap(), b"hello");
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(
            config.decrypt(&iv, &tag, &bad),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            CryptConfig::new([2u8; 32]).decrypt(&iv, &tag, &ct),
            Err(AeadError::Authentication)
        );
    }

    #[test]
    fn plain_key_file() {
        let key = [1u8; 32];
        let json = format!(
            r#"{{"kdf":null,"created":"2024-01-01T00:00:00+00:00","modified":"2024-01-01T00:00:00+00:00","data":"{}","fingerprint":"{}"}}"#,
            base64_encode(&key),
            CryptConfig::new(key).fingerprint()
        );
        let file = KeyConfig::from_json(json.as_bytes()).unwrap();
        assert!(!file.needs_passphrase());
        let config = file.decrypt(None).unwrap();
        assert_eq!(config.fingerprint(), CryptConfig::new(key).fingerprint());

        // A fingerprint that does not match the key.
        let wrong = json.replace("\"4c:f7", "\"4d:f7");
        let err = KeyConfig::from_json(wrong.as_bytes())
            .unwrap()
            .decrypt(None)
            .unwrap_err();
        assert!(matches!(err, KeyError::FingerprintMismatch { .. }), "{err}");

        // Wrong data length.
        let short = format!(r#"{{"kdf":null,"data":"{}"}}"#, base64_encode(&[1u8; 31]));
        let err = KeyConfig::from_json(short.as_bytes())
            .unwrap()
            .decrypt(None)
            .unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::DataLength {
                    expected: 32,
                    actual: 31
                }
            ),
            "{err}"
        );

        // Not base64, not JSON.
        assert!(KeyConfig::from_json(br#"{"kdf":null,"data":"***"}"#).is_err());
        assert!(KeyConfig::from_json(b"not json").is_err());
    }

    #[test]
    fn pbkdf2_key_file_round_trip() {
        let key = [5u8; 32];
        let kdf = Kdf::Pbkdf2 {
            iter: 65535,
            salt: b"0123456789abcdef0123456789abcdef".to_vec(),
        };
        let file = KeyConfig::new_encrypted(
            &key,
            b"secret phrase",
            kdf,
            &[3u8; 16],
            "2024-01-01T00:00:00Z",
        )
        .unwrap();
        let json = file.to_json().unwrap();
        assert!(
            json.contains(r#""kdf":{"PBKDF2":{"iter":65535,"salt":"#),
            "{json}"
        );
        let file = KeyConfig::from_json(json.as_bytes()).unwrap();
        assert!(file.needs_passphrase());
        let config = file.decrypt(Some(b"secret phrase")).unwrap();
        assert_eq!(config.fingerprint(), CryptConfig::new(key).fingerprint());

        assert!(matches!(
            file.decrypt(Some(b"wrong phrase")),
            Err(KeyError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            file.decrypt(None),
            Err(KeyError::PassphraseRequired { .. })
        ));
        assert!(matches!(
            file.decrypt(Some(b"four")),
            Err(KeyError::PassphraseTooShort { len: 4, min: 5 })
        ));
    }

    #[test]
    fn scrypt_key_file_round_trip() {
        // Small parameters keep the test fast; the real ones are covered by the signature vector.
        let key = [6u8; 32];
        let kdf = Kdf::Scrypt {
            n: 1024,
            r: 8,
            p: 1,
            salt: vec![4u8; 32],
        };
        let mut file =
            KeyConfig::new_encrypted(&key, b"passphrase", kdf, &[0u8; 16], "now").unwrap();
        file.hint = Some("the usual".into());
        let json = file.to_json().unwrap();
        assert!(
            json.contains(r#""kdf":{"Scrypt":{"n":1024,"r":8,"p":1,"salt":"#),
            "{json}"
        );
        let file = KeyConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(
            file.decrypt(Some(b"passphrase")).unwrap().fingerprint(),
            CryptConfig::new(key).fingerprint()
        );
        let err = file.decrypt(Some(b"passphrasf")).unwrap_err();
        assert!(err.to_string().contains("the usual"), "{err}");

        // Truncated wrapped key.
        let mut short = file.clone();
        short.data.truncate(40);
        assert!(matches!(
            short.decrypt(Some(b"passphrase")),
            Err(KeyError::DataLength {
                expected: 64,
                actual: 40
            })
        ));
    }

    #[test]
    fn scrypt_parameter_limits() {
        for (n, r, p) in [
            (0, 8, 1),
            (1, 8, 1),
            (1000, 8, 1),
            (1 << 20, 9, 1),
            (1 << 40, 8, 1),
            (16, 0, 1),
            (16, 1, 0),
            (16, u64::MAX, u64::MAX),
            (16, 1 << 16, 1 << 16),
            (2, 1, 1 << 31),
        ] {
            let kdf = Kdf::Scrypt {
                n,
                r,
                p,
                salt: vec![],
            };
            assert!(
                matches!(
                    kdf.derive_key(b"passphrase"),
                    Err(KeyError::KdfParameters { .. })
                ),
                "n={n} r={r} p={p}"
            );
        }
        for iter in [0, u64::MAX] {
            let kdf = Kdf::Pbkdf2 { iter, salt: vec![] };
            assert!(matches!(
                kdf.derive_key(b"x"),
                Err(KeyError::KdfParameters { .. })
            ));
        }
    }
}
