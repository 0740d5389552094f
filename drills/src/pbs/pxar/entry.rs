//! What the decoder yields: entries with their metadata, and the end of each directory.
//!
//! These are plain values with owned bytes (names are not necessarily UTF-8). They carry everything pxar
//! stores about an entry so that a restore can apply it or a check can compare it; file contents are not in
//! here but streamed through [`super::Decoder::contents`], so memory does not depend on file sizes.

use super::format::mode;

/// Modification time as stored: seconds since the epoch (floored) and a non-negative nanosecond part
/// (§4.2 "Negative mtimes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mtime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds, `< 1_000_000_000`.
    pub nanos: u32,
}

/// The `Stat` of an ENTRY item (or the legacy ENTRY_V1, converted) (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Linux `st_mode`, file type bits included.
    pub mode: u64,
    /// pxar feature/attribute flags (chattr and FAT bits).
    pub flags: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Mtime,
}

impl Stat {
    /// The file type bits (`mode & IFMT`).
    pub fn file_type(&self) -> u64 {
        self.mode & mode::IFMT
    }

    /// Permission and setuid/setgid/sticky bits (`mode & 0o7777`).
    pub fn permissions(&self) -> u32 {
        (self.mode & 0o7777) as u32
    }
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Attribute name (`user.comment`), without the NUL.
    pub name: Vec<u8>,
    /// Raw value (may contain NUL bytes, may be empty).
    pub value: Vec<u8>,
}

/// A named user's ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclUser {
    /// User id.
    pub uid: u64,
    /// Permission bits: read 4, write 2, execute 1.
    pub permissions: u64,
}

/// A named group's ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclGroup {
    /// Group id.
    pub gid: u64,
    /// Permission bits: read 4, write 2, execute 1.
    pub permissions: u64,
}

/// The default ACL's base entries (directories only) (§4.1 ACL_DEFAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclDefault {
    /// Owner permissions.
    pub user_obj_permissions: u64,
    /// Owning group permissions.
    pub group_obj_permissions: u64,
    /// Others' permissions.
    pub other_permissions: u64,
    /// Mask (`u64::MAX` = no mask).
    pub mask_permissions: u64,
}

/// POSIX ACLs of an entry (§4.1 ACL_* items).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// ACL_USER items.
    pub users: Vec<AclUser>,
    /// ACL_GROUP items.
    pub groups: Vec<AclGroup>,
    /// ACL_GROUP_OBJ permissions, at most one.
    pub group_obj: Option<u64>,
    /// ACL_DEFAULT, at most one.
    pub default: Option<AclDefault>,
    /// ACL_DEFAULT_USER items.
    pub default_users: Vec<AclUser>,
    /// ACL_DEFAULT_GROUP items.
    pub default_groups: Vec<AclGroup>,
}

impl Acl {
    /// `true` when the entry carries no ACL item at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.group_obj.is_none()
            && self.default.is_none()
            && self.default_users.is_empty()
            && self.default_groups.is_empty()
    }
}

/// Everything an ENTRY and its attribute items say about an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// The stat fields.
    pub stat: Stat,
    /// `true` when the archive used the legacy ENTRY_V1 item (mtime in nanoseconds).
    pub legacy_stat: bool,
    /// Extended attributes, in archive order.
    pub xattrs: Vec<Xattr>,
    /// POSIX ACLs.
    pub acl: Acl,
    /// Raw `security.capability` value.
    pub fcaps: Option<Vec<u8>>,
    /// Quota project id.
    pub quota_project_id: Option<u64>,
}

/// Character or block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// `S_IFCHR`.
    Char,
    /// `S_IFBLK`.
    Block,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory; its children follow, then an [`Event::DirEnd`].
    Directory,
    /// A regular file; read its contents with [`super::Decoder::contents`] before the next call to `next`.
    File {
        /// Content bytes.
        size: u64,
        /// Position of the first content byte: in the archive (unified v1) or in the payload stream (split v2).
        content_offset: u64,
        /// Split archives: the PAYLOAD_REF offset, i.e. the position of the PAYLOAD header in the payload
        /// stream (§4.5).
        payload_ref: Option<u64>,
    },
    /// A symbolic link (restored as a link, never followed).
    Symlink {
        /// Link target, NUL removed.
        target: Vec<u8>,
    },
    /// A hard link to a regular file that appeared earlier in the archive.
    Hardlink {
        /// The target's path relative to the archive root, verified to be a regular file seen before.
        target: Vec<u8>,
        /// The raw HARDLINK offset: this entry's FILENAME position minus the target's (§4.4).
        link_offset: u64,
    },
    /// A device node.
    Device {
        /// Character or block.
        kind: DeviceKind,
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

/// One archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the archive root, `/`-separated; empty for the root directory.
    pub path: Vec<u8>,
    /// Position of the entry's FILENAME header in the archive (0 for the root).
    pub offset: u64,
    /// What it is.
    pub kind: EntryKind,
    /// Stat, xattrs, ACLs, fcaps, quota project id. `None` only for hardlinks, which carry no metadata in pxar.
    pub metadata: Option<Metadata>,
}

impl Entry {
    /// The last path component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        match self.path.iter().rposition(|b| *b == b'/') {
            Some(i) => self.path.get(i + 1..).unwrap_or_default(),
            None => &self.path,
        }
    }

    /// `true` for the root directory.
    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }
}

/// The end of a directory, after its goodbye table was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEnd {
    /// The directory's path (empty for the root).
    pub path: Vec<u8>,
    /// Position of the GOODBYE item.
    pub goodbye_offset: u64,
    /// Number of direct children.
    pub children: usize,
    /// The goodbye table's order: for each table item, the index of the child (0 = the first child in archive
    /// order) it refers to.
    pub goodbye_order: Vec<usize>,
}

/// What [`super::Decoder::next`] yields, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
// an event is moved once per entry; boxing the larger variant would only add an allocation
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// An entry (the root directory comes first).
    Entry(Entry),
    /// A directory's children are complete and its goodbye table checked out.
    DirEnd(DirEnd),
}
