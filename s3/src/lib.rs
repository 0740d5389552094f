//! A small, read-only S3 client for lifeboat's restore drills.
//!
//! Why not an SDK: lifeboat needs a handful of calls (ListObjectsV2, HEAD, GET with ranges) done carefully —
//! signed with SigV4, retried within bounds, resumed from the last byte received, and verified against
//! every checksum the store offers while the bytes stream — and nothing that writes. The big SDKs add minutes
//! of build time and, since 2025, default to request checksum behaviour that breaks S3-compatible stores;
//! the generic object-store crates do not verify content on GET. So this crate is small and owns those
//! rules:
//!
//! - [`sigv4`]: AWS Signature Version 4 (tested against AWS's documented examples);
//! - [`client`]: path-style or virtual-hosted URLs, signing, error classification ([`S3Error`]), retries;
//! - [`objects`]: listing, HEAD (also of single parts, to learn multipart layouts), small GETs;
//! - [`download`]: streaming GET into a bounded channel with resume and incremental verification;
//! - [`checksum`] and [`verify`]: SHA-256, CRC32, CRC32C, CRC64NVME, single-part and multipart ETags,
//!   full-object and composite checksums, checked while the bytes stream;
//! - [`credentials`]: keys whose `Debug` never shows a secret.

pub mod checksum;
pub mod client;
pub mod credentials;
pub mod download;
pub mod error;
pub mod objects;
pub mod sigv4;
pub mod verify;
pub mod xml;

pub use checksum::{Algorithm, PartLayout};
pub use client::{Addressing, Client, ClientConfig, RetryPolicy};
pub use credentials::{Credentials, Secret};
pub use download::{Download, DownloadReport, DownloadSpec};
pub use error::{S3Error, Target};
pub use objects::{Listing, ObjectHead};
pub use verify::{Outcome, Verification};
