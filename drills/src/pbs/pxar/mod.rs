//! The pxar archive format (Proxmox file archives), decoded natively and restored through the safe sink.
//!
//! PBS stores file-level backups (`host` and `ct` snapshots) as pxar streams: unified `.pxar` (format 1) or
//! split into a metadata archive `.mpxar` and a payload stream `.ppxar` (format 2). A restore drill has to read
//! them without Proxmox software, from streams reassembled out of chunks, with flat memory, and has to prove
//! that the archive is whole: a backup that extracts "fine" but whose structure is damaged is `failed`. So this
//! decoder reads forward only and checks everything the format makes checkable (item sizes, names, goodbye
//! tables, hardlinks, payload references and stream ends) while it streams file contents into
//! [`crate::extract::RestoreSink`]. The format reference is `shared/reference/pbs-protocol.md` §4; the
//! upstream-written vectors in `shared/pbs-vectors/pxar/` prove compatibility (see the tests).
//!
//! - [`format`](mod@format): item type constants, hash keys, [`hash_filename`], size limits;
//! - [`goodbye`]: the goodbye table's binary-search-tree layout and its verification;
//! - [`decoder`]: the streaming [`Decoder`] yielding [`Event`]s, with [`Decoder::contents`] for file data;
//! - [`entry`]: the values it yields; [`error`]: [`PxarError`] with stream and byte offset;
//! - [`extract`]: [`extract_pxar`], feeding the restore sink like the tar extractor does.

mod contents;
pub mod decoder;
pub mod entry;
pub mod error;
pub mod extract;
pub mod format;
pub mod goodbye;
mod links;
mod metadata;
mod payload;
mod reader;

#[cfg(test)]
mod tests;

pub use decoder::{Contents, DecodeStats, Decoder, MAX_PATH_BYTES, MAX_PRELUDE};
pub use entry::{
    Acl, AclDefault, AclGroup, AclUser, DeviceKind, DirEnd, Entry, EntryKind, Event, Metadata,
    Mtime, Stat, Xattr,
};
pub use error::{PxarError, StreamKind};
pub use extract::{PxarFacts, PxarStream, extract_pxar};
pub use format::hash_filename;
pub use goodbye::bst_permutation;
pub use metadata::MAX_ATTRIBUTE_BYTES;
