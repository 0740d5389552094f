//! Compatibility with the upstream encoder: every archive in `shared/pbs-vectors/pxar/` decodes to exactly
//! what `expected.json` (written by the upstream pxar 1.0.0 decoder and accessor) lists.

use std::collections::HashMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::support::{Archive, decode, expected, vector};
use crate::pbs::pxar::{Acl, DeviceKind, EntryKind, hash_filename};

fn octal(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap(), 8).unwrap()
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap(), 16).unwrap()
}

/// The ACL in the shape of `expected.json` (empty lists and absent items left out).
fn acl_json(acl: &Acl) -> Value {
    let mut o = serde_json::Map::new();
    let users = |l: &[crate::pbs::pxar::AclUser]| {
        l.iter()
            .map(|u| json!({"uid": u.uid, "permissions": u.permissions}))
            .collect::<Vec<_>>()
    };
    let groups = |l: &[crate::pbs::pxar::AclGroup]| {
        l.iter()
            .map(|g| json!({"gid": g.gid, "permissions": g.permissions}))
            .collect::<Vec<_>>()
    };
    if !acl.users.is_empty() {
        o.insert("users".into(), users(&acl.users).into());
    }
    if !acl.groups.is_empty() {
        o.insert("groups".into(), groups(&acl.groups).into());
    }
    if let Some(p) = acl.group_obj {
        o.insert("group_obj".into(), json!({ "permissions": p }));
    }
    if let Some(d) = acl.default {
        o.insert(
            "default".into(),
            json!({
                "user_obj_permissions": d.user_obj_permissions,
                "group_obj_permissions": d.group_obj_permissions,
                "other_permissions": d.other_permissions,
                "mask_permissions": d.mask_permissions,
            }),
        );
    }
    if !acl.default_users.is_empty() {
        o.insert("default_users".into(), users(&acl.default_users).into());
    }
    if !acl.default_groups.is_empty() {
        o.insert("default_groups".into(), groups(&acl.default_groups).into());
    }
    Value::Object(o)
}

fn file_sha256(name: &str) -> String {
    hex::encode(Sha256::digest(vector(name)))
}

/// Checks one archive of `expected.json` against the decoder. Returns how many fields were compared.
fn check_archive(spec: &Value) -> usize {
    let id = spec["id"].as_str().unwrap();
    let file = &spec["archive_file"];
    let name = file["name"].as_str().unwrap();
    let meta = vector(name);
    assert_eq!(
        meta.len() as u64,
        file["size"].as_u64().unwrap(),
        "{id}: size"
    );
    assert_eq!(
        file_sha256(name),
        file["sha256"].as_str().unwrap(),
        "{id}: archive sha256"
    );
    let payload = spec["payload_file"].as_object().map(|p| {
        let pname = p["name"].as_str().unwrap();
        assert_eq!(
            file_sha256(pname),
            p["sha256"].as_str().unwrap(),
            "{id}: payload sha256"
        );
        vector(pname)
    });
    assert_eq!(payload.is_some(), spec["layout"] == "split", "{id}: layout");
    let a: Archive = decode(&meta, payload.as_deref()).unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(
        u64::from(a.version),
        spec["format_version"].as_u64().unwrap(),
        "{id}"
    );
    match spec["prelude"].as_object() {
        None => assert!(a.prelude.is_none(), "{id}: no prelude"),
        Some(p) => {
            let got = a.prelude.as_deref().unwrap();
            assert_eq!(
                hex::encode(got),
                p["hex"].as_str().unwrap(),
                "{id}: prelude"
            );
            assert_eq!(got.len() as u64, p["size"].as_u64().unwrap());
            assert_eq!(
                hex::encode(Sha256::digest(got)),
                p["sha256"].as_str().unwrap()
            );
        }
    }
    let want = spec["entries"].as_array().unwrap();
    assert_eq!(a.entries.len(), want.len(), "{id}: entry count");
    let mut compared = 0;
    // children names per directory, in archive order, to resolve goodbye orders
    let mut children: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for (d, w) in a.entries.iter().zip(want) {
        let e = &d.entry;
        let path = String::from_utf8(e.path.clone()).unwrap();
        let at = format!("{id}: {path:?}");
        assert_eq!(path, w["path"].as_str().unwrap(), "{at}: archive order");
        if !e.is_root() {
            let parent = match e.path.iter().rposition(|b| *b == b'/') {
                Some(i) => e.path[..i].to_vec(),
                None => Vec::new(),
            };
            children
                .entry(parent)
                .or_default()
                .push(e.file_name().to_vec());
            assert_eq!(
                hash_filename(e.file_name()),
                hex_u64(&w["name_hash"]),
                "{at}: name hash"
            );
            compared += 1;
        }
        let ty = match &e.kind {
            EntryKind::Directory => "dir",
            EntryKind::File { .. } => "file",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hardlink",
            EntryKind::Device { .. } => "device",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
        };
        assert_eq!(ty, w["type"].as_str().unwrap(), "{at}: type");
        match &e.metadata {
            None => {
                assert_eq!(ty, "hardlink", "{at}: only hardlinks lack metadata");
                assert!(w.get("mode").is_none() && w.get("uid").is_none(), "{at}");
            }
            Some(m) => {
                let st = &m.stat;
                assert_eq!(u64::from(st.permissions()), octal(&w["mode"]), "{at}: mode");
                assert_eq!(st.mode, octal(&w["st_mode"]), "{at}: st_mode");
                assert_eq!(u64::from(st.uid), w["uid"].as_u64().unwrap(), "{at}: uid");
                assert_eq!(u64::from(st.gid), w["gid"].as_u64().unwrap(), "{at}: gid");
                assert_eq!(
                    st.mtime.secs,
                    w["mtime"]["secs"].as_i64().unwrap(),
                    "{at}: secs"
                );
                assert_eq!(
                    u64::from(st.mtime.nanos),
                    w["mtime"]["nanos"].as_u64().unwrap(),
                    "{at}: nanos"
                );
                assert_eq!(st.flags, w["flags"].as_u64().unwrap(), "{at}: flags");
                let xattrs: Vec<Value> = m
                    .xattrs
                    .iter()
                    .map(|x| {
                        json!({"name": String::from_utf8_lossy(&x.name), "value_hex": hex::encode(&x.value)})
                    })
                    .collect();
                let want_x: Vec<Value> = w
                    .get("xattrs")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .map(|x| json!({"name": x["name"], "value_hex": x["value_hex"]}))
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(xattrs, want_x, "{at}: xattrs");
                if let Some(list) = w.get("xattrs").and_then(Value::as_array) {
                    for (x, wx) in m.xattrs.iter().zip(list) {
                        if let Some(v) = wx.get("value").and_then(Value::as_str) {
                            assert_eq!(x.value, v.as_bytes(), "{at}: xattr value");
                        }
                    }
                }
                assert_eq!(
                    m.fcaps.as_deref().map(hex::encode),
                    w.get("fcaps_hex")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    "{at}: fcaps"
                );
                assert_eq!(
                    m.quota_project_id,
                    w.get("quota_project_id").and_then(Value::as_u64),
                    "{at}: quota project id"
                );
                match w.get("acl") {
                    Some(acl) => assert_eq!(&acl_json(&m.acl), acl, "{at}: acl"),
                    None => assert!(m.acl.is_empty(), "{at}: no acl"),
                }
                compared += 12;
            }
        }
        match &e.kind {
            EntryKind::File {
                size,
                content_offset,
                payload_ref,
            } => {
                assert_eq!(*size, w["size"].as_u64().unwrap(), "{at}: size");
                assert_eq!(d.sha256.as_deref(), w["sha256"].as_str(), "{at}: sha256");
                if let Some(text) = w.get("content_utf8").and_then(Value::as_str) {
                    assert_eq!(d.content.as_deref(), Some(text.as_bytes()), "{at}: content");
                }
                match payload_ref {
                    None => assert_eq!(
                        *content_offset,
                        w["content_offset"].as_u64().unwrap(),
                        "{at}: content offset"
                    ),
                    Some(r) => {
                        assert_eq!(
                            *r,
                            w["payload_offset"].as_u64().unwrap(),
                            "{at}: payload ref"
                        );
                        assert_eq!(*content_offset, r + 16, "{at}: content after the header");
                    }
                }
                compared += 3;
            }
            EntryKind::Symlink { target } => {
                assert_eq!(
                    target,
                    w["target"].as_str().unwrap().as_bytes(),
                    "{at}: target"
                );
                compared += 1;
            }
            EntryKind::Hardlink {
                target,
                link_offset,
            } => {
                assert_eq!(
                    target,
                    w["target"].as_str().unwrap().as_bytes(),
                    "{at}: target"
                );
                assert_eq!(
                    *link_offset,
                    w["link_offset"].as_u64().unwrap(),
                    "{at}: offset"
                );
                compared += 2;
            }
            EntryKind::Device { kind, major, minor } => {
                let dev = &w["device"];
                let k = match kind {
                    DeviceKind::Char => "char",
                    DeviceKind::Block => "block",
                };
                assert_eq!(k, dev["kind"].as_str().unwrap(), "{at}: device kind");
                assert_eq!(*major, dev["major"].as_u64().unwrap(), "{at}: major");
                assert_eq!(*minor, dev["minor"].as_u64().unwrap(), "{at}: minor");
                compared += 3;
            }
            EntryKind::Directory | EntryKind::Fifo | EntryKind::Socket => {}
        }
    }
    // goodbye tables: one DirEnd per directory, in the order upstream's accessor lists them
    let dirs: Vec<&Value> = want.iter().filter(|w| w["type"] == "dir").collect();
    assert_eq!(
        a.dir_ends.len(),
        dirs.len(),
        "{id}: one goodbye table per directory"
    );
    for w in dirs {
        let path = w["path"].as_str().unwrap().as_bytes();
        let end = a
            .dir_ends
            .iter()
            .find(|d| d.path == path)
            .unwrap_or_else(|| panic!("{id}: no DirEnd for {path:?}"));
        let names = children.get(path).cloned().unwrap_or_default();
        assert_eq!(
            end.children as u64,
            w["entry_count"].as_u64().unwrap(),
            "{id}: count"
        );
        assert_eq!(names.len(), end.children);
        let order: Vec<String> = end
            .goodbye_order
            .iter()
            .map(|&i| String::from_utf8(names[i].clone()).unwrap())
            .collect();
        let want_order: Vec<String> = w["goodbye_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, want_order, "{id}: goodbye order of {path:?}");
        compared += 2;
    }
    compared
}

#[test]
fn every_vector_archive_decodes_as_upstream_says() {
    let exp = expected();
    assert_eq!(exp["generator"]["crate_version"], "1.0.0");
    let archives = exp["archives"].as_array().unwrap();
    assert_eq!(
        archives.len(),
        4,
        "tree v1, tree v2, tree v2 + prelude, extras"
    );
    for spec in archives {
        let n = check_archive(spec);
        assert!(n > 0);
    }
}

#[test]
fn split_and_unified_trees_decode_to_the_same_entries() {
    let v1 = decode(&vector("tree.pxar"), None).unwrap();
    let v2 = decode(&vector("tree.mpxar"), Some(&vector("tree.ppxar"))).unwrap();
    assert_eq!(v1.entries.len(), 54);
    for (a, b) in v1.entries.iter().zip(&v2.entries) {
        assert_eq!(a.entry.path, b.entry.path);
        assert_eq!(a.entry.metadata, b.entry.metadata);
        assert_eq!(a.sha256, b.sha256);
    }
    let orders = |x: &Archive| {
        x.dir_ends
            .iter()
            .map(|d| (d.path.clone(), d.goodbye_order.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(orders(&v1), orders(&v2));
}
