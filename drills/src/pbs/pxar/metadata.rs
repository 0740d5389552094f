//! Reading an entry's metadata: the ENTRY (or legacy ENTRY_V1) stat and the attribute items after it.
//!
//! Split from the decoder's state machine because it is pure parsing with its own rules (§4.2, §4.3): fixed
//! struct layouts, attributes in any order but GROUP_OBJ / DEFAULT / FCAPS / QUOTA_PROJID at most once, xattrs
//! as `name NUL value`. Each attribute item is bounded by the format (§4.1), but their number is not, so
//! lifeboat bounds the total per entry ([`MAX_ATTRIBUTE_BYTES`]) to keep memory independent of the input.

use std::io::Read;

use super::entry::{AclDefault, AclGroup, AclUser, Metadata, Mtime, Stat, Xattr};
use super::error::{PxarError, invalid};
use super::format::{
    Header, PXAR_ACL_DEFAULT, PXAR_ACL_DEFAULT_GROUP, PXAR_ACL_DEFAULT_USER, PXAR_ACL_GROUP,
    PXAR_ACL_GROUP_OBJ, PXAR_ACL_USER, PXAR_ENTRY_V1, PXAR_FCAPS, PXAR_QUOTA_PROJID, PXAR_XATTR,
    le_u32, le_u64, mode, type_name,
};
use super::reader::PosReader;

/// Most bytes of attribute items (xattrs, ACLs, fcaps, quota) one entry may carry. Not a format limit: Linux
/// itself keeps an inode's xattr names within 64 KiB and each value within 64 KiB, so 16 MiB is far above any
/// real file and still a fixed bound on what a crafted archive can make the decoder hold.
pub const MAX_ATTRIBUTE_BYTES: u64 = 16 << 20;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The file type of `mode`, as a word for messages, `None` if it is none of the seven Linux types.
pub(crate) fn file_type_word(st_mode: u64) -> Option<&'static str> {
    Some(match st_mode & mode::IFMT {
        mode::IFREG => "regular file",
        mode::IFDIR => "directory",
        mode::IFLNK => "symlink",
        mode::IFCHR => "character device",
        mode::IFBLK => "block device",
        mode::IFIFO => "fifo",
        mode::IFSOCK => "socket",
        _ => return None,
    })
}

/// Parses the stat of an ENTRY (40 bytes) or ENTRY_V1 (32 bytes) item whose content is `b` (§4.2).
fn parse_stat(h: &Header, b: &[u8]) -> Result<(Stat, bool), PxarError> {
    let st_mode = le_u64(b, 0);
    let flags = le_u64(b, 8);
    let uid = le_u32(b, 16);
    let gid = le_u32(b, 20);
    let (mtime, legacy) = if h.htype == PXAR_ENTRY_V1 {
        // Stat_V1: mtime u64 in nanoseconds since the epoch (§4.2)
        let ns = le_u64(b, 24);
        let secs = i64::try_from(ns / NANOS_PER_SEC).unwrap_or(i64::MAX);
        let nanos = u32::try_from(ns % NANOS_PER_SEC).unwrap_or(0);
        (Mtime { secs, nanos }, true)
    } else {
        // Stat: secs i64, nanos u32, pad u32 (§4.2); the pad is not checked, upstream ignores it too
        let secs = le_u64(b, 24) as i64;
        let nanos = le_u32(b, 32);
        if u64::from(nanos) >= NANOS_PER_SEC {
            return Err(invalid(
                h.content_pos().saturating_add(32),
                "an mtime nanosecond part below 1000000000",
                nanos.to_string(),
            ));
        }
        (Mtime { secs, nanos }, false)
    };
    if file_type_word(st_mode).is_none() {
        return Err(invalid(
            h.content_pos(),
            "a mode with one of the seven Linux file types",
            format!("mode {st_mode:#o}"),
        ));
    }
    Ok((
        Stat {
            mode: st_mode,
            flags,
            uid,
            gid,
            mtime,
        },
        legacy,
    ))
}

fn duplicate(h: &Header) -> PxarError {
    invalid(
        h.pos,
        format!("at most one {} item per entry", type_name(h.htype)),
        "a second one",
    )
}

/// Reads the stat of `entry` (an ENTRY or ENTRY_V1 header already read and checked) and every attribute item
/// after it. Returns the metadata and the first header that is not an attribute (checked, content unread):
/// the entry's content item, or the next FILENAME / GOODBYE for directories, fifos and sockets.
pub(crate) fn read_metadata<R: Read>(
    r: &mut PosReader<R>,
    entry: &Header,
) -> Result<(Metadata, Header), PxarError> {
    let b = r.read_vec(entry.content_size(), "the entry's stat")?;
    let (stat, legacy_stat) = parse_stat(entry, &b)?;
    let mut m = Metadata {
        stat,
        legacy_stat,
        ..Metadata::default()
    };
    let mut budget = MAX_ATTRIBUTE_BYTES;
    loop {
        let h = r.read_item_header("an attribute item or the entry's content item")?;
        let is_attribute = matches!(
            h.htype,
            PXAR_XATTR
                | PXAR_ACL_USER
                | PXAR_ACL_GROUP
                | PXAR_ACL_GROUP_OBJ
                | PXAR_ACL_DEFAULT
                | PXAR_ACL_DEFAULT_USER
                | PXAR_ACL_DEFAULT_GROUP
                | PXAR_FCAPS
                | PXAR_QUOTA_PROJID
        );
        if !is_attribute {
            return Ok((m, h));
        }
        budget = budget.checked_sub(h.full_size).ok_or_else(|| {
            invalid(
                h.pos,
                format!("at most {MAX_ATTRIBUTE_BYTES} bytes of attribute items per entry"),
                "more",
            )
        })?;
        // every attribute item is bounded by §4.1 (at most 255 + 65536 bytes), checked by read_item_header
        let c = r.read_vec(h.content_size(), type_name(h.htype))?;
        let pair = |at: usize| (le_u64(&c, at), le_u64(&c, at + 8));
        match h.htype {
            PXAR_XATTR => {
                let Some(nul) = c.iter().position(|b| *b == 0) else {
                    return Err(invalid(
                        h.pos,
                        "an XATTR item holding name, NUL, value",
                        "no NUL after the name",
                    ));
                };
                if nul == 0 {
                    return Err(invalid(h.pos, "a non-empty xattr name", "an empty name"));
                }
                let (name, value) = c.split_at(nul);
                m.xattrs.push(Xattr {
                    name: name.to_vec(),
                    value: value.get(1..).unwrap_or_default().to_vec(),
                });
            }
            PXAR_ACL_USER | PXAR_ACL_DEFAULT_USER => {
                let (uid, permissions) = pair(0);
                let list = if h.htype == PXAR_ACL_USER {
                    &mut m.acl.users
                } else {
                    &mut m.acl.default_users
                };
                list.push(AclUser { uid, permissions });
            }
            PXAR_ACL_GROUP | PXAR_ACL_DEFAULT_GROUP => {
                let (gid, permissions) = pair(0);
                let list = if h.htype == PXAR_ACL_GROUP {
                    &mut m.acl.groups
                } else {
                    &mut m.acl.default_groups
                };
                list.push(AclGroup { gid, permissions });
            }
            PXAR_ACL_GROUP_OBJ => {
                if m.acl.group_obj.is_some() {
                    return Err(duplicate(&h));
                }
                m.acl.group_obj = Some(le_u64(&c, 0));
            }
            PXAR_ACL_DEFAULT => {
                if m.acl.default.is_some() {
                    return Err(duplicate(&h));
                }
                m.acl.default = Some(AclDefault {
                    user_obj_permissions: le_u64(&c, 0),
                    group_obj_permissions: le_u64(&c, 8),
                    other_permissions: le_u64(&c, 16),
                    mask_permissions: le_u64(&c, 24),
                });
            }
            PXAR_FCAPS => {
                if m.fcaps.is_some() {
                    return Err(duplicate(&h));
                }
                m.fcaps = Some(c);
            }
            _ => {
                // PXAR_QUOTA_PROJID, the last attribute type
                if m.quota_project_id.is_some() {
                    return Err(duplicate(&h));
                }
                m.quota_project_id = Some(le_u64(&c, 0));
            }
        }
    }
}
