//! The PBS snapshot manifest, `index.json.blob`: which files a snapshot holds, their sizes and checksums, and
//! their crypt modes, signed with the client's key when it had one.
//!
//! A drill starts here: the manifest says what to expect, so every file and index is checked against it, and
//! the crypt mode says whether an index's chunks must be encrypted. The signature (HMAC-SHA256 with the
//! `id_key` over the canonical JSON of the manifest minus `unprotected` and `signature`) proves, with the key,
//! that nobody changed the list. The server rewrites the `unprotected` part (verify state, notes, upload
//! statistics), which the signature does not cover. Format facts: pbs-protocol.md §3.5, upstream proxmox-backup
//! `pbs-datastore/src/manifest.rs` and proxmox `proxmox-serde/src/json.rs` (canonical JSON).
//!
//! The manifest comes from the backup and is untrusted: parsing returns errors, never panics, and the
//! signature is computed over the JSON exactly as stored (unknown fields included), as upstream does.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blob::{BlobErrorKind, DataBlob, MAX_BLOB_SIZE, encode_blob};
use super::crypt::{CryptConfig, Fingerprint};

/// File name of the manifest in a snapshot (upstream `MANIFEST_BLOB_NAME`).
pub const MANIFEST_BLOB_NAME: &str = "index.json.blob";
/// File name of the client log, a blob not listed in the manifest (pbs-protocol.md §3.6).
pub const CLIENT_LOG_BLOB_NAME: &str = "client.log.blob";
/// File name of the master-key-encrypted copy of the key config (pbs-protocol.md §3.5).
pub const ENCRYPTED_KEY_BLOB_NAME: &str = "rsa-encrypted.key.blob";

/// A file's crypt mode (pbs-protocol.md §3.5; JSON `none`, `encrypt`, `sign-only`; missing means `none` for
/// backups older than 0.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CryptMode {
    /// Neither encrypted nor signed.
    #[default]
    None,
    /// Encrypted chunks, signed manifest.
    Encrypt,
    /// Plain chunks, signed manifest.
    SignOnly,
}

/// The kind of guest a snapshot belongs to (JSON `vm`, `ct`, `host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// A virtual machine.
    Vm,
    /// A container.
    Ct,
    /// A host (file-level backup).
    Host,
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackupType::Vm => "vm",
            BackupType::Ct => "ct",
            BackupType::Host => "host",
        })
    }
}

/// What a snapshot file is, by its extension (upstream `ArchiveType::from_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveType {
    /// `.fidx`.
    FixedIndex,
    /// `.didx`.
    DynamicIndex,
    /// `.blob`.
    Blob,
}

impl ArchiveType {
    /// The type of `name` by its last extension, if it is one of the three.
    pub fn from_name(name: &str) -> Option<Self> {
        let (stem, extension) = name.rsplit_once('.')?;
        if stem.is_empty() || stem.ends_with('/') {
            return None;
        }
        match extension {
            "fidx" => Some(ArchiveType::FixedIndex),
            "didx" => Some(ArchiveType::DynamicIndex),
            "blob" => Some(ArchiveType::Blob),
            _ => None,
        }
    }
}

/// Hex (64 characters) for checksums, as upstream's `hex::serde`.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut digest).map_err(|e| {
            serde::de::Error::custom(format!("csum {text:?} is not 64 hex digits: {e}"))
        })?;
        Ok(digest)
    }
}

/// One file of a snapshot as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileInfo {
    /// File name in the snapshot directory (with its `.fidx`/`.didx`/`.blob` extension).
    pub filename: String,
    /// Crypt mode.
    #[serde(default)]
    pub crypt_mode: CryptMode,
    /// Blob: raw file length. Index: image or stream length (pbs-protocol.md §3.5).
    pub size: u64,
    /// Blob: SHA-256 of the raw file. Index: the index checksum (pbs-protocol.md §3.5).
    #[serde(with = "hex_digest")]
    pub csum: [u8; 32],
}

impl FileInfo {
    /// The crypt mode of the chunks an index may reference: `encrypt` for encrypted indexes, `none` otherwise
    /// (sign-only indexes reference plain chunks; pbs-protocol.md §3.5, upstream `chunk_crypt_mode`).
    pub fn chunk_crypt_mode(&self) -> CryptMode {
        match self.crypt_mode {
            CryptMode::Encrypt => CryptMode::Encrypt,
            CryptMode::SignOnly | CryptMode::None => CryptMode::None,
        }
    }

    /// Whether the chunks of this index must be encrypted (the `expect_encrypted` of
    /// [`verify_chunk`](super::blob::verify_chunk)).
    pub fn chunks_encrypted(&self) -> bool {
        self.chunk_crypt_mode() == CryptMode::Encrypt
    }

    /// The file's type by extension.
    pub fn archive_type(&self) -> Option<ArchiveType> {
        ArchiveType::from_name(&self.filename)
    }

    /// Checks a file's actual size and checksum against the manifest.
    pub fn check(&self, size: u64, csum: &[u8; 32]) -> Result<(), ManifestError> {
        if size != self.size {
            return Err(ManifestError::FileMismatch {
                name: self.filename.clone(),
                what: "size",
                expected: self.size.to_string(),
                actual: size.to_string(),
            });
        }
        if *csum != self.csum {
            return Err(ManifestError::FileMismatch {
                name: self.filename.clone(),
                what: "checksum",
                expected: hex::encode(self.csum),
                actual: hex::encode(csum),
            });
        }
        Ok(())
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The manifest's fields, in upstream's order (`BackupManifest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Document {
    backup_type: BackupType,
    backup_id: String,
    backup_time: i64,
    files: Vec<FileInfo>,
    #[serde(default = "empty_object")]
    unprotected: Value,
    #[serde(default)]
    signature: Option<String>,
}

/// Why a manifest could not be read, or does not match.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The blob around the JSON is damaged.
    #[error("{MANIFEST_BLOB_NAME}: {0}")]
    Blob(BlobErrorKind),
    /// The manifest blob is encrypted, which PBS never does.
    #[error("{MANIFEST_BLOB_NAME} is an encrypted blob; PBS never encrypts manifests")]
    Encrypted,
    /// Not JSON.
    #[error("manifest is not valid JSON: {detail}")]
    Json {
        /// The parser's complaint, with line and column.
        detail: String,
    },
    /// JSON, but not a manifest.
    #[error("manifest JSON is not a PBS manifest: {detail}")]
    Shape {
        /// Which field is missing or has the wrong type.
        detail: String,
    },
    /// A `null` in the signed part, which canonical JSON cannot express.
    #[error("manifest has null at {path}; the signed part of a manifest may not contain null")]
    Null {
        /// JSON path of the null, like `$.files[0].csum`.
        path: String,
    },
    /// Files are encrypted or signed, but the manifest has no signature.
    #[error(
        "manifest lists {file} with crypt mode {mode:?} but has no signature; a client with a key always signs, \
         so the manifest was altered"
    )]
    MissingSignature {
        /// The first file that needs a signature.
        file: String,
        /// Its crypt mode.
        mode: CryptMode,
    },
    /// The signature is not 64 hex digits.
    #[error("manifest signature {signature:?} is not 64 hex digits")]
    BadSignature {
        /// The stored text (cut to 100 characters).
        signature: String,
    },
    /// The signature does not match the signed content.
    #[error(
        "manifest signature {stored} does not match its content (expected {computed}): the manifest was altered"
    )]
    SignatureMismatch {
        /// Stored signature.
        stored: String,
        /// Signature of the content with the key.
        computed: String,
    },
    /// `unprotected.key-fingerprint` is not a fingerprint.
    #[error("manifest key-fingerprint is malformed: {detail}")]
    BadFingerprint {
        /// What is wrong.
        detail: String,
    },
    /// The manifest was made with another key.
    #[error(
        "manifest was made with key {manifest}, but the configured key is {key}{}",
        key_mismatch_advice(.signature_valid)
    )]
    KeyMismatch {
        /// Fingerprint stated in the manifest.
        manifest: Fingerprint,
        /// Fingerprint of the configured key.
        key: Fingerprint,
        /// Whether the signature nevertheless verifies with the configured key.
        signature_valid: bool,
    },
    /// A file is not in the manifest.
    #[error("manifest does not list {name:?}")]
    FileNotFound {
        /// The requested name.
        name: String,
    },
    /// A file's size or checksum differs from the manifest.
    #[error("{name}: {what} is {actual}, the manifest says {expected}")]
    FileMismatch {
        /// File name.
        name: String,
        /// `size` or `checksum`.
        what: &'static str,
        /// From the manifest.
        expected: String,
        /// Found.
        actual: String,
    },
    /// A file name without a `.fidx`, `.didx` or `.blob` extension was added (builder only).
    #[error("{name:?} is not a .fidx, .didx or .blob file")]
    UnknownArchiveType {
        /// The name.
        name: String,
    },
    /// Serializing failed (builder only).
    #[error("cannot write the manifest: {detail}")]
    Serialize {
        /// What failed.
        detail: String,
    },
}

fn key_mismatch_advice(signature_valid: &bool) -> &'static str {
    if *signature_valid {
        "; yet the signature verifies with the configured key, so the stated fingerprint is false"
    } else {
        "; configure the key this backup was made with"
    }
}

impl ManifestError {
    /// Whether the manifest or a file is bad (the backup failed), as opposed to lifeboat's configuration
    /// (a wrong key, a file name the backup does not have) or its own use of the builder.
    pub fn is_backup_fault(&self) -> bool {
        match self {
            ManifestError::Blob(kind) => kind.is_backup_fault(),
            ManifestError::KeyMismatch {
                signature_valid, ..
            } => *signature_valid,
            ManifestError::FileNotFound { .. }
            | ManifestError::UnknownArchiveType { .. }
            | ManifestError::Serialize { .. } => false,
            ManifestError::Encrypted
            | ManifestError::Json { .. }
            | ManifestError::Shape { .. }
            | ManifestError::Null { .. }
            | ManifestError::MissingSignature { .. }
            | ManifestError::BadSignature { .. }
            | ManifestError::SignatureMismatch { .. }
            | ManifestError::BadFingerprint { .. }
            | ManifestError::FileMismatch { .. } => true,
        }
    }
}

/// Canonical JSON (upstream `proxmox-serde` `write_canonical_json`): object keys sorted bytewise, no
/// whitespace, strings and numbers as `serde_json` writes them, arrays in order, `null` rejected.
///
/// Recursion depth is bounded by `serde_json`'s parser (128 levels) for parsed values.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, ManifestError> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    write_canonical(value, &mut out, &mut path).map_err(|e| match e {
        CanonicalError::Null => ManifestError::Null {
            path: format!("${}", path.concat()),
        },
        CanonicalError::Serialize(detail) => ManifestError::Serialize { detail },
    })?;
    Ok(out)
}

enum CanonicalError {
    Null,
    Serialize(String),
}

fn write_scalar<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    serde_json::to_writer(out, value).map_err(|e| CanonicalError::Serialize(e.to_string()))
}

/// Writes `value`; on a null, `path` is left holding the path to it.
fn write_canonical(
    value: &Value,
    out: &mut Vec<u8>,
    path: &mut Vec<String>,
) -> Result<(), CanonicalError> {
    match value {
        Value::Null => Err(CanonicalError::Null),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => write_scalar(value, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                path.push(format!("[{i}]"));
                write_canonical(item, out, path)?;
                path.pop();
            }
            out.push(b']');
            Ok(())
        }
        Value::Object(map) => {
            out.push(b'{');
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // `str` ordering is bytewise, as upstream's `sort_unstable` on `&str`.
            entries.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key.as_str(), out)?;
                out.push(b':');
                path.push(format!(".{key}"));
                write_canonical(item, out, path)?;
                path.pop();
            }
            out.push(b'}');
            Ok(())
        }
    }
}

/// The outcome of [`Manifest::verify_signature`] when nothing is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Signed, and the signature verifies with the key.
    Verified,
    /// Not signed, and no file needs a signature (no file is encrypted or sign-only).
    Unsigned,
}

/// The server's verification result for the snapshot, from `unprotected.verify_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyState {
    /// `ok` or `failed`.
    pub state: String,
    /// The verification task.
    pub upid: Option<String>,
}

impl VerifyState {
    /// Whether the server's last verification passed.
    pub fn is_ok(&self) -> bool {
        self.state == "ok"
    }
}

/// A parsed manifest, or one being built for a fixture or test server.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    doc: Document,
    /// The JSON as parsed, which the signature covers (unknown fields included); `None` once the file list
    /// changes or for built manifests.
    raw: Option<Value>,
}

impl Manifest {
    /// Reads `index.json.blob`: checks the blob (never encrypted, CRC) and parses the JSON.
    pub fn from_blob(raw_blob: &[u8]) -> Result<Self, ManifestError> {
        let blob = DataBlob::parse(raw_blob).map_err(ManifestError::Blob)?;
        if blob.kind().is_encrypted() {
            return Err(ManifestError::Encrypted);
        }
        blob.verify_crc().map_err(ManifestError::Blob)?;
        let json = blob
            .decode(None, MAX_BLOB_SIZE)
            .map_err(ManifestError::Blob)?;
        Self::from_json(&json)
    }

    /// Parses the manifest JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, ManifestError> {
        let raw: Value = serde_json::from_slice(json).map_err(|e| ManifestError::Json {
            detail: e.to_string(),
        })?;
        if !raw.is_object() {
            return Err(ManifestError::Shape {
                detail: "the top level is not an object".into(),
            });
        }
        let doc = Document::deserialize(&raw).map_err(|e| ManifestError::Shape {
            detail: e.to_string(),
        })?;
        Ok(Manifest {
            doc,
            raw: Some(raw),
        })
    }

    /// An empty manifest for building a snapshot.
    pub fn new(backup_type: BackupType, backup_id: impl Into<String>, backup_time: i64) -> Self {
        Manifest {
            doc: Document {
                backup_type,
                backup_id: backup_id.into(),
                backup_time,
                files: Vec::new(),
                unprotected: empty_object(),
                signature: None,
            },
            raw: None,
        }
    }

    /// Adds a file (builder; upstream `add_file` also insists on a known extension).
    pub fn add_file(
        &mut self,
        filename: impl Into<String>,
        size: u64,
        csum: [u8; 32],
        crypt_mode: CryptMode,
    ) -> Result<(), ManifestError> {
        let filename = filename.into();
        if ArchiveType::from_name(&filename).is_none() {
            return Err(ManifestError::UnknownArchiveType { name: filename });
        }
        self.doc.files.push(FileInfo {
            filename,
            crypt_mode,
            size,
            csum,
        });
        self.raw = None;
        self.doc.signature = None;
        Ok(())
    }

    /// The backup type.
    pub fn backup_type(&self) -> BackupType {
        self.doc.backup_type
    }

    /// The backup id (the VM/CT id or host name).
    pub fn backup_id(&self) -> &str {
        &self.doc.backup_id
    }

    /// The backup time, seconds since the epoch.
    pub fn backup_time(&self) -> i64 {
        self.doc.backup_time
    }

    /// The files, in manifest order.
    pub fn files(&self) -> &[FileInfo] {
        &self.doc.files
    }

    /// The file called `name`, if listed.
    pub fn file(&self, name: &str) -> Option<&FileInfo> {
        self.doc.files.iter().find(|f| f.filename == name)
    }

    /// The file called `name`, or [`ManifestError::FileNotFound`].
    pub fn lookup_file(&self, name: &str) -> Result<&FileInfo, ManifestError> {
        self.file(name).ok_or_else(|| ManifestError::FileNotFound {
            name: name.to_owned(),
        })
    }

    /// Checks a file's actual size and checksum against its entry.
    pub fn verify_file(&self, name: &str, size: u64, csum: &[u8; 32]) -> Result<(), ManifestError> {
        self.lookup_file(name)?.check(size, csum)
    }

    /// The part the server may rewrite, not covered by the signature.
    pub fn unprotected(&self) -> &Value {
        &self.doc.unprotected
    }

    /// The unprotected part, for building (changing it does not affect the signature).
    pub fn unprotected_mut(&mut self) -> &mut Value {
        &mut self.doc.unprotected
    }

    /// The stored signature (hex), if any.
    pub fn signature(&self) -> Option<&str> {
        self.doc.signature.as_deref()
    }

    /// The server's verification result, if the snapshot was verified.
    pub fn verify_state(&self) -> Option<VerifyState> {
        let state = self.doc.unprotected.get("verify_state")?;
        Some(VerifyState {
            state: state.get("state")?.as_str()?.to_owned(),
            upid: state.get("upid").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// The snapshot notes (the first line is the snapshot's comment).
    pub fn notes(&self) -> Option<&str> {
        self.doc.unprotected.get("notes").and_then(Value::as_str)
    }

    /// The fingerprint of the key the backup was made with, if stated.
    pub fn key_fingerprint(&self) -> Result<Option<Fingerprint>, ManifestError> {
        match self.doc.unprotected.get("key-fingerprint") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => {
                text.parse()
                    .map(Some)
                    .map_err(|e: super::crypt::FingerprintParseError| {
                        ManifestError::BadFingerprint {
                            detail: e.to_string(),
                        }
                    })
            }
            Some(other) => Err(ManifestError::BadFingerprint {
                detail: format!("expected a string, found {other}"),
            }),
        }
    }

    /// The first file whose crypt mode means the client had a key, and so signed the manifest.
    fn file_needing_signature(&self) -> Option<&FileInfo> {
        self.doc
            .files
            .iter()
            .find(|f| f.crypt_mode != CryptMode::None)
    }

    /// The canonical JSON the signature covers: the manifest as stored minus `unprotected` and `signature`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let mut value = match &self.raw {
            Some(raw) => raw.clone(),
            None => serde_json::to_value(&self.doc).map_err(|e| ManifestError::Serialize {
                detail: e.to_string(),
            })?,
        };
        if let Some(map) = value.as_object_mut() {
            map.remove("unprotected");
            map.remove("signature");
        }
        canonical_json(&value)
    }

    /// `HMAC-SHA256(id_key, signed_bytes)`.
    pub fn compute_signature(&self, crypt: &CryptConfig) -> Result<[u8; 32], ManifestError> {
        Ok(crypt.compute_auth_tag(&self.signed_bytes()?))
    }

    /// Verifies the signature with `crypt`, after checking the stated key fingerprint. An unsigned manifest
    /// passes only if no file is encrypted or sign-only.
    pub fn verify_signature(&self, crypt: &CryptConfig) -> Result<SignatureStatus, ManifestError> {
        let key = crypt.fingerprint();
        let stated = self.key_fingerprint()?;
        let Some(signature) = self.signature() else {
            if let Some(file) = self.file_needing_signature() {
                return Err(ManifestError::MissingSignature {
                    file: file.filename.clone(),
                    mode: file.crypt_mode,
                });
            }
            if let Some(manifest) = stated
                && manifest != key
            {
                return Err(ManifestError::KeyMismatch {
                    manifest,
                    key,
                    signature_valid: false,
                });
            }
            return Ok(SignatureStatus::Unsigned);
        };
        let mut stored = [0u8; 32];
        hex::decode_to_slice(signature.as_bytes(), &mut stored).map_err(|_| {
            ManifestError::BadSignature {
                signature: signature.chars().take(100).collect(),
            }
        })?;
        let signed = self.signed_bytes()?;
        let valid = crypt.verify_auth_tag(&signed, &stored);
        if let Some(manifest) = stated
            && manifest != key
        {
            return Err(ManifestError::KeyMismatch {
                manifest,
                key,
                signature_valid: valid,
            });
        }
        if valid {
            Ok(SignatureStatus::Verified)
        } else {
            Err(ManifestError::SignatureMismatch {
                stored: signature.to_owned(),
                computed: hex::encode(crypt.compute_auth_tag(&signed)),
            })
        }
    }

    /// The manifest as pretty JSON, as upstream writes it; with `crypt`, signed and with the key fingerprint
    /// in `unprotected`. Unknown fields of a parsed manifest are not kept.
    pub fn to_json(&self, crypt: Option<&CryptConfig>) -> Result<String, ManifestError> {
        let serialize = |e: serde_json::Error| ManifestError::Serialize {
            detail: e.to_string(),
        };
        let mut value = serde_json::to_value(&self.doc).map_err(serialize)?;
        if let Some(crypt) = crypt {
            let signature = hex::encode(self.compute_signature(crypt)?);
            let fingerprint = crypt.fingerprint().to_string();
            let Some(map) = value.as_object_mut() else {
                return Err(ManifestError::Serialize {
                    detail: "the manifest is not an object".into(),
                });
            };
            map.insert("signature".into(), Value::String(signature));
            let unprotected = map.entry("unprotected").or_insert_with(empty_object);
            if unprotected.is_null() {
                *unprotected = empty_object();
            }
            let Some(unprotected) = unprotected.as_object_mut() else {
                return Err(ManifestError::Serialize {
                    detail: "`unprotected` is not an object".into(),
                });
            };
            unprotected.insert("key-fingerprint".into(), Value::String(fingerprint));
        }
        serde_json::to_string_pretty(&value).map_err(serialize)
    }

    /// `index.json.blob` bytes: [`Manifest::to_json`] in a compressed, unencrypted blob, as the server writes
    /// it (pbs-protocol.md §3.5).
    pub fn to_blob(&self, crypt: Option<&CryptConfig>) -> Result<Vec<u8>, ManifestError> {
        let json = self.to_json(crypt)?;
        encode_blob(json.as_bytes(), None, true).map_err(|e| ManifestError::Serialize {
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbs::crypt::test_scrypt_key;

    /// Upstream's `test_manifest_signature` (pbs-protocol.md §5.1).
    fn upstream_test_manifest() -> Manifest {
        let mut manifest = Manifest::new(BackupType::Host, "elsa", 1_593_179_765);
        manifest
            .add_file("test1.img.fidx", 200, [1u8; 32], CryptMode::Encrypt)
            .unwrap();
        manifest
            .add_file("abc.blob", 200, [2u8; 32], CryptMode::None)
            .unwrap();
        manifest.unprotected_mut()["note"] = "This is not protected by the signature.".into();
        manifest
    }

    const SIGNATURE: &str = "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9";

    #[test]
    fn upstream_signature_vector() {
        let crypt = CryptConfig::new(test_scrypt_key());
        let manifest = upstream_test_manifest();
        let canonical = format!(
            r#"{{"backup-id":"elsa","backup-time":1593179765,"backup-type":"host","files":[{{"crypt-mode":"encrypt","csum":"{}","filename":"test1.img.fidx","size":200}},{{"crypt-mode":"none","csum":"{}","filename":"abc.blob","size":200}}]}}"#,
            "01".repeat(32),
            "02".repeat(32)
        );
        assert_eq!(
            String::from_utf8(manifest.signed_bytes().unwrap()).unwrap(),
            canonical
        );
        assert_eq!(
            hex::encode(manifest.compute_signature(&crypt).unwrap()),
            SIGNATURE
        );

        // Written, read back (also through a blob) and verified, as upstream's test does.
        let text = manifest.to_json(Some(&crypt)).unwrap();
        let parsed = Manifest::from_json(text.as_bytes()).unwrap();
        assert_eq!(parsed.signature(), Some(SIGNATURE));
        assert_eq!(parsed.key_fingerprint().unwrap(), Some(crypt.fingerprint()));
        assert_eq!(
            parsed.verify_signature(&crypt).unwrap(),
            SignatureStatus::Verified
        );
        let blob = manifest.to_blob(Some(&crypt)).unwrap();
        let from_blob = Manifest::from_blob(&blob).unwrap();
        assert_eq!(
            from_blob.verify_signature(&crypt).unwrap(),
            SignatureStatus::Verified
        );
        assert_eq!(from_blob.backup_type(), BackupType::Host);
        assert_eq!(from_blob.backup_id(), "elsa");
        assert_eq!(from_blob.backup_time(), 1_593_179_765);
        assert!(from_blob.file("test1.img.fidx").unwrap().chunks_encrypted());
        assert!(!from_blob.file("abc.blob").unwrap().chunks_encrypted());
    }

    fn signed_json() -> (CryptConfig, Value) {
        let crypt = CryptConfig::new([1u8; 32]);
        let text = upstream_test_manifest().to_json(Some(&crypt)).unwrap();
        (crypt, serde_json::from_str(&text).unwrap())
    }

    fn parse(value: &Value) -> Manifest {
        Manifest::from_json(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn unprotected_changes_keep_the_signature_valid() {
        let (crypt, mut value) = signed_json();
        value["unprotected"]["verify_state"] =
            serde_json::json!({"state": "ok", "upid": "UPID:pbs:1"});
        value["unprotected"]["notes"] = "comment\nmore".into();
        let manifest = parse(&value);
        assert_eq!(
            manifest.verify_signature(&crypt).unwrap(),
            SignatureStatus::Verified
        );
        let state = manifest.verify_state().unwrap();
        assert!(state.is_ok());
        assert_eq!(state.upid.as_deref(), Some("UPID:pbs:1"));
        assert_eq!(manifest.notes(), Some("comment\nmore"));
    }

    #[test]
    fn altered_manifests_fail_verification() {
        let (crypt, value) = signed_json();
        let mut altered = value.clone();
        altered["files"][1]["size"] = 201.into();
        let err = parse(&altered).verify_signature(&crypt).unwrap_err();
        assert!(
            matches!(err, ManifestError::SignatureMismatch { .. }),
            "{err}"
        );
        assert!(err.is_backup_fault());

        // An unknown top-level field is covered by the signature, as upstream computes it over the raw JSON.
        let mut extra = value.clone();
        extra["extra"] = 1.into();
        assert!(matches!(
            parse(&extra).verify_signature(&crypt),
            Err(ManifestError::SignatureMismatch { .. })
        ));

        // Signature removed from a manifest with an encrypted file.
        let mut unsigned = value.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        let err = parse(&unsigned).verify_signature(&crypt).unwrap_err();
        assert!(
            matches!(err, ManifestError::MissingSignature { .. }),
            "{err}"
        );

        // Not hex.
        let mut bad = value.clone();
        bad["signature"] = "xyz".into();
        assert!(matches!(
            parse(&bad).verify_signature(&crypt),
            Err(ManifestError::BadSignature { .. })
        ));

        // A null in the signed part.
        let mut null = value.clone();
        null["files"][0]["extra"] = Value::Null;
        let err = parse(&null).verify_signature(&crypt).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Null { path } if path == "$.files[0].extra"),
            "{err}"
        );
    }

    #[test]
    fn wrong_key() {
        let (crypt, value) = signed_json();
        let wrong = CryptConfig::new([2u8; 32]);
        let err = parse(&value).verify_signature(&wrong).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::KeyMismatch {
                    signature_valid: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.is_backup_fault());

        // Without the stated fingerprint, the wrong key shows as a signature mismatch.
        let mut no_fp = value.clone();
        no_fp["unprotected"]
            .as_object_mut()
            .unwrap()
            .remove("key-fingerprint");
        assert!(matches!(
            parse(&no_fp).verify_signature(&wrong),
            Err(ManifestError::SignatureMismatch { .. })
        ));

        // A false fingerprint on a manifest the configured key did sign.
        let mut false_fp = value.clone();
        false_fp["unprotected"]["key-fingerprint"] = wrong.fingerprint().to_string().into();
        let err = parse(&false_fp).verify_signature(&crypt).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::KeyMismatch {
                    signature_valid: true,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_backup_fault());

        let mut garbage_fp = value;
        garbage_fp["unprotected"]["key-fingerprint"] = "aa:bb".into();
        assert!(matches!(
            parse(&garbage_fp).verify_signature(&crypt),
            Err(ManifestError::BadFingerprint { .. })
        ));
    }

    #[test]
    fn unsigned_manifest() {
        let mut manifest = Manifest::new(BackupType::Vm, "100", 1_717_570_000);
        manifest
            .add_file("drive-scsi0.img.fidx", 1 << 30, [3u8; 32], CryptMode::None)
            .unwrap();
        let parsed = Manifest::from_blob(&manifest.to_blob(None).unwrap()).unwrap();
        assert_eq!(parsed.signature(), None);
        assert_eq!(
            parsed
                .verify_signature(&CryptConfig::new([1u8; 32]))
                .unwrap(),
            SignatureStatus::Unsigned
        );
        assert_eq!(parsed.key_fingerprint().unwrap(), None);
        assert!(parsed.verify_state().is_none());
    }

    #[test]
    fn parses_the_spec_example() {
        // pbs-protocol.md §3.5 (pretty-printed, verify state and notes in `unprotected`; the first file has
        // no crypt-mode, as backups older than 0.8).
        let json = format!(
            r#"{{
  "backup-type": "vm",
  "backup-id": "100",
  "backup-time": 1717570000,
  "files": [
    {{"filename": "qemu-server.conf.blob", "size": 614, "csum": "{a}"}},
    {{"filename": "drive-scsi0.img.fidx",  "crypt-mode": "none", "size": 34359738368, "csum": "{b}"}}
  ],
  "signature": null,
  "unprotected": {{
    "chunk_upload_stats": {{"count": 0, "size": 0, "compressed_size": 0, "duplicates": 0}},
    "verify_state": {{"state": "failed", "upid": "UPID:pbs:..."}},
    "notes": "free text"
  }}
}}"#,
            a = "ab".repeat(32),
            b = "CD".repeat(32)
        );
        let manifest = Manifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(manifest.backup_type(), BackupType::Vm);
        assert_eq!(manifest.files().len(), 2);
        let conf = manifest.lookup_file("qemu-server.conf.blob").unwrap();
        assert_eq!(conf.crypt_mode, CryptMode::None);
        assert_eq!(conf.archive_type(), Some(ArchiveType::Blob));
        let disk = manifest.lookup_file("drive-scsi0.img.fidx").unwrap();
        assert_eq!(disk.csum, [0xcd; 32]);
        assert_eq!(disk.archive_type(), Some(ArchiveType::FixedIndex));
        assert!(!manifest.verify_state().unwrap().is_ok());
        assert_eq!(manifest.notes(), Some("free text"));
        manifest
            .verify_file("drive-scsi0.img.fidx", 34_359_738_368, &[0xcd; 32])
            .unwrap();
        let err = manifest
            .verify_file("drive-scsi0.img.fidx", 34_359_738_368, &[0xce; 32])
            .unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::FileMismatch {
                    what: "checksum",
                    ..
                }
            ),
            "{err}"
        );
        let err = manifest
            .verify_file("drive-scsi0.img.fidx", 1, &[0xcd; 32])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("size is 1, the manifest says 34359738368"),
            "{err}"
        );
        let err = manifest.lookup_file("root.pxar.didx").unwrap_err();
        assert!(matches!(err, ManifestError::FileNotFound { .. }));
        assert!(!err.is_backup_fault());
    }

    #[test]
    fn crypt_modes() {
        for (mode, text, chunks) in [
            (CryptMode::None, "\"none\"", CryptMode::None),
            (CryptMode::Encrypt, "\"encrypt\"", CryptMode::Encrypt),
            (CryptMode::SignOnly, "\"sign-only\"", CryptMode::None),
        ] {
            assert_eq!(serde_json::to_string(&mode).unwrap(), text);
            assert_eq!(serde_json::from_str::<CryptMode>(text).unwrap(), mode);
            let file = FileInfo {
                filename: "x.didx".into(),
                crypt_mode: mode,
                size: 0,
                csum: [0; 32],
            };
            assert_eq!(file.chunk_crypt_mode(), chunks);
        }
        assert!(serde_json::from_str::<CryptMode>("\"signonly\"").is_err());
    }

    #[test]
    fn canonical_json_rules() {
        let value: Value = serde_json::from_str(
            r#"{"b": [1, -2, 3.5, true, "x\"y\u0001é"], "B": {}, "a": {"z": 0, "é": "", "ab": []}}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&value).unwrap()).unwrap(),
            r#"{"B":{},"a":{"ab":[],"z":0,"é":""},"b":[1,-2,3.5,true,"x\"y\u0001é"]}"#
        );
        assert!(matches!(
            canonical_json(&serde_json::json!({"a": [1, null]})),
            Err(ManifestError::Null { path }) if path == "$.a[1]"
        ));
        assert!(canonical_json(&Value::Null).is_err());
    }

    #[test]
    fn bad_manifests() {
        for (json, want_shape) in [
            (&b"not json"[..], false),
            (b"[]", true),
            (b"{}", true),
            (br#"{"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"a.blob","size":1,"csum":"00"}]}"#, true),
            (br#"{"backup-type":"disk","backup-id":"1","backup-time":1,"files":[]}"#, true),
            (br#"{"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"a.blob","crypt-mode":"maybe","size":1,"csum":"00"}]}"#, true),
        ] {
            let err = Manifest::from_json(json).unwrap_err();
            assert_eq!(matches!(err, ManifestError::Shape { .. }), want_shape, "{err}");
            assert!(err.is_backup_fault());
        }
        // Blob problems.
        let good = upstream_test_manifest().to_blob(None).unwrap();
        let mut crc = good.clone();
        crc[20] ^= 1;
        assert!(matches!(
            Manifest::from_blob(&crc),
            Err(ManifestError::Blob(BlobErrorKind::CrcMismatch { .. }))
        ));
        let crypt = CryptConfig::new([1u8; 32]);
        let encrypted = encode_blob(b"{}", Some((&crypt, &[0u8; 16])), false).unwrap();
        assert!(matches!(
            Manifest::from_blob(&encrypted),
            Err(ManifestError::Encrypted)
        ));
        // Builder refuses unknown file types.
        let mut manifest = Manifest::new(BackupType::Ct, "101", 0);
        assert!(
            manifest
                .add_file("root.pxar", 1, [0; 32], CryptMode::None)
                .is_err()
        );
        assert!(
            manifest
                .add_file(".blob", 1, [0; 32], CryptMode::None)
                .is_err()
        );
    }

    #[test]
    fn archive_types() {
        assert_eq!(
            ArchiveType::from_name("root.pxar.didx"),
            Some(ArchiveType::DynamicIndex)
        );
        assert_eq!(
            ArchiveType::from_name("drive-scsi0.img.fidx"),
            Some(ArchiveType::FixedIndex)
        );
        assert_eq!(
            ArchiveType::from_name("index.json.blob"),
            Some(ArchiveType::Blob)
        );
        assert_eq!(ArchiveType::from_name("root.pxar"), None);
        assert_eq!(ArchiveType::from_name("didx"), None);
    }

    /// Deterministic xorshift generator for the no-panic test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutated_and_random_manifests_never_panic() {
        let (crypt, value) = signed_json();
        let json = value.to_string().into_bytes();
        let blob = encode_blob(&json, None, true).unwrap();
        let seeds = [json, blob];
        let alphabet = b"{}[]\":,0123456789-.eE nulltruefalse\\u";
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut parsed = 0;
        for round in 0..3000 {
            let mut input = seeds[round % 2].clone();
            match rng.below(5) {
                0 => input.truncate(rng.below(input.len() + 1)),
                1 => {
                    let len = rng.below(300);
                    input = (0..len).map(|_| rng.next() as u8).collect();
                }
                _ => {
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(input.len());
                        input[at] = if rng.below(2) == 0 {
                            alphabet[rng.below(alphabet.len())]
                        } else {
                            input[at] ^ (1 << rng.below(8))
                        };
                    }
                }
            }
            let results = [Manifest::from_json(&input), Manifest::from_blob(&input)];
            for manifest in results.into_iter().flatten() {
                parsed += 1;
                let _ = manifest.verify_signature(&crypt);
                let _ = manifest.key_fingerprint();
                let _ = manifest.verify_state();
                let _ = manifest.to_json(Some(&crypt));
                for file in manifest.files() {
                    let _ = file.archive_type();
                    let _ = manifest.verify_file(&file.filename, file.size, &file.csum);
                }
            }
        }
        assert!(parsed > 0);
    }
}
