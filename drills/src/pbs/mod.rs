//! Proxmox Backup Server formats and datastores, implemented natively from the published formats (see
//! `shared/reference/pbs-protocol.md` in the project workspace), with no Proxmox software installed.
//!
//! - [`blob`]: DataBlob (chunks and `*.blob` files): CRC, zstd, AES-256-GCM with 16-byte IVs;
//! - [`crypt`]: encryption keys, key files, chunk digests, key fingerprints, manifest signatures;
//! - [`index`]: fixed (`.fidx`) and dynamic (`.didx`) chunk indexes with their checksums;
//! - [`manifest`]: `index.json.blob`, canonical JSON, signature verification;
//! - [`pxar`]: the pxar archive format (unified v1 and split v2), decoded into the safe restore sink.

pub mod blob;
pub mod chunks;
pub mod client;
pub mod crypt;
pub mod datastore;
pub mod index;
pub mod manifest;
pub mod pxar;
