//! The JSON shapes of the PBS API lifeboat reads (pbs-protocol.md §1.5, current `pbs-api-types`).
//!
//! Field names follow the wire: most types are kebab-case, [`TaskListItem`] is not (upstream has no rename
//! on it). Fields that older or newer servers may leave out are `Option` or defaulted, and unknown fields
//! are ignored, so a PBS upgrade that adds fields does not break the agent.

use serde::{Deserialize, Serialize};

use crate::pbs::crypt::Fingerprint;
use crate::pbs::manifest::{BackupType, CryptMode, MANIFEST_BLOB_NAME};

/// The `{"data": ...}` envelope of every successful answer (§1.1).
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) data: T,
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `3.2`.
    pub version: String,
    /// `4`.
    #[serde(default)]
    pub release: String,
    /// Git commit of the build.
    #[serde(default)]
    pub repoid: String,
}

/// `GET /admin/datastore`: one datastore the token may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataStoreListItem {
    /// Datastore name.
    pub store: String,
    /// Comment (hidden without Datastore.Audit).
    #[serde(default)]
    pub comment: Option<String>,
    /// Maintenance mode, as the property string the server sends.
    #[serde(default)]
    pub maintenance: Option<String>,
}

/// `GET /admin/datastore/{store}/status`. Without Datastore.Audit/Backup the sizes are 0 (§1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataStoreStatus {
    /// Total bytes.
    pub total: u64,
    /// Used bytes.
    pub used: u64,
    /// Available bytes.
    pub avail: u64,
    /// Last garbage collection (verbose status only).
    #[serde(default)]
    pub gc_status: Option<GarbageCollectionStatus>,
    /// Group and snapshot counts per type (verbose status only).
    #[serde(default)]
    pub counts: Option<Counts>,
}

/// Result of the last garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GarbageCollectionStatus {
    /// Task of the last run.
    pub upid: Option<String>,
    /// Index files seen.
    pub index_file_count: u64,
    /// Bytes referenced by indexes.
    pub index_data_bytes: u64,
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Chunks on disk.
    pub disk_chunks: u64,
    /// Bytes removed.
    pub removed_bytes: u64,
    /// Chunks removed.
    pub removed_chunks: u64,
    /// Bytes pending removal.
    pub pending_bytes: u64,
    /// Chunks pending removal.
    pub pending_chunks: u64,
    /// Bad chunks removed.
    pub removed_bad: u64,
    /// Bad chunks still present.
    pub still_bad: u64,
}

/// Counts per backup type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Containers.
    pub ct: Option<TypeCounts>,
    /// Hosts.
    pub host: Option<TypeCounts>,
    /// Virtual machines.
    pub vm: Option<TypeCounts>,
    /// Anything else.
    pub other: Option<TypeCounts>,
}

/// Groups and snapshots of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TypeCounts {
    /// Backup groups.
    pub groups: u64,
    /// Snapshots.
    pub snapshots: u64,
}

/// `GET /admin/datastore/{store}/namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceListItem {
    /// Namespace path `a/b` (empty for the root).
    pub ns: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `GET /admin/datastore/{store}/groups`. `last_backup` may be an unfinished snapshot (§1.5): use the
/// snapshot list for recency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupListItem {
    /// `vm`, `ct` or `host`.
    pub backup_type: BackupType,
    /// `101`.
    pub backup_id: String,
    /// Epoch seconds of the newest snapshot.
    pub last_backup: i64,
    /// Number of snapshots.
    pub backup_count: u64,
    /// Files of the newest snapshot.
    #[serde(default)]
    pub files: Vec<String>,
    /// Owner auth id.
    #[serde(default)]
    pub owner: Option<String>,
    /// First line of the group's notes.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One file of a snapshot (`BackupContent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupContent {
    /// `drive-scsi0.img.fidx`.
    pub filename: String,
    /// Absent for files outside the manifest (e.g. `client.log.blob`).
    #[serde(default)]
    pub crypt_mode: Option<CryptMode>,
    /// Absent for files outside the manifest.
    #[serde(default)]
    pub size: Option<u64>,
}

/// Result of the last server-side verification of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVerifyState {
    /// The verify task.
    pub upid: String,
    /// `ok` or `failed`.
    pub state: VerifyState,
}

/// A verification outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    /// All chunks were readable and matched.
    Ok,
    /// The verification found problems.
    Failed,
    /// A state this version of lifeboat does not know.
    #[serde(other)]
    Unknown,
}

/// `GET /admin/datastore/{store}/snapshots`: one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotListItem {
    /// `vm`, `ct` or `host`.
    pub backup_type: BackupType,
    /// `101`.
    pub backup_id: String,
    /// Epoch seconds.
    pub backup_time: i64,
    /// First line of the snapshot notes.
    #[serde(default)]
    pub comment: Option<String>,
    /// Last server-side verification.
    #[serde(default)]
    pub verification: Option<SnapshotVerifyState>,
    /// Encryption key fingerprint.
    #[serde(default)]
    pub fingerprint: Option<Fingerprint>,
    /// Files, including `index.json.blob` once the snapshot is finished.
    #[serde(default)]
    pub files: Vec<BackupContent>,
    /// Sum of the file sizes (finished snapshots).
    #[serde(default)]
    pub size: Option<u64>,
    /// Owner auth id.
    #[serde(default)]
    pub owner: Option<String>,
    /// Protected from pruning.
    #[serde(default)]
    pub protected: bool,
}

impl SnapshotListItem {
    /// Finished iff the manifest is among the files (§1.5, upstream `is_finished`).
    pub fn is_finished(&self) -> bool {
        self.files.iter().any(|f| f.filename == MANIFEST_BLOB_NAME)
    }

    /// The group, `vm/101`.
    pub fn group(&self) -> String {
        format!("{}/{}", self.backup_type, self.backup_id)
    }
}

/// `GET /nodes/{node}/tasks`: one task. No kebab-case on the wire (§1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskListItem {
    /// The task id.
    pub upid: String,
    /// Node name.
    pub node: String,
    /// Process id.
    pub pid: i64,
    /// Process start time (clock ticks).
    pub pstart: u64,
    /// Epoch seconds.
    pub starttime: i64,
    /// `backup`, `reader`, `verify`, ...
    pub worker_type: String,
    /// `store:vm/101` for backups.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Auth id that started the task.
    pub user: String,
    /// Epoch seconds; absent while running.
    #[serde(default)]
    pub endtime: Option<i64>,
    /// `OK`, `WARNINGS: n`, `unknown` or the error message; absent while running.
    #[serde(default)]
    pub status: Option<String>,
}

impl TaskListItem {
    /// Still running: no status yet.
    pub fn is_running(&self) -> bool {
        self.status.is_none()
    }

    /// Finished with `OK` or `WARNINGS: n` (the official client's success rule, §1.5).
    pub fn succeeded(&self) -> bool {
        self.status.as_deref().is_some_and(status_is_success)
    }
}

/// `OK` or `WARNINGS...` (§1.5).
pub(crate) fn status_is_success(status: &str) -> bool {
    status == "OK" || status.starts_with("WARNINGS")
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task id.
    pub upid: String,
    /// Node name.
    pub node: String,
    /// Process id.
    pub pid: i64,
    /// Process start time.
    pub pstart: u64,
    /// Epoch seconds.
    pub starttime: i64,
    /// Worker type.
    #[serde(rename = "type")]
    pub worker_type: String,
    /// Worker id.
    #[serde(default)]
    pub id: Option<String>,
    /// User.
    pub user: String,
    /// Token, when a token started it.
    #[serde(default)]
    pub tokenid: Option<String>,
    /// `running` or `stopped`.
    pub status: String,
    /// Exit status once stopped.
    #[serde(default)]
    pub exitstatus: Option<String>,
}

impl TaskStatus {
    /// `Some(success)` once stopped, `None` while running.
    pub fn outcome(&self) -> Option<bool> {
        if self.status == "running" {
            return None;
        }
        Some(self.exitstatus.as_deref().is_some_and(status_is_success))
    }
}

/// One line of a task log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogLine {
    /// Line number, from 1.
    pub n: u64,
    /// Text.
    pub t: String,
}

/// Task states for `statusfilter` (§1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStateFilter {
    /// `OK`.
    Ok,
    /// `WARNINGS: n`.
    Warning,
    /// An error message.
    Error,
    /// `unknown`.
    Unknown,
}

impl TaskStateFilter {
    fn as_str(self) -> &'static str {
        match self {
            TaskStateFilter::Ok => "ok",
            TaskStateFilter::Warning => "warning",
            TaskStateFilter::Error => "error",
            TaskStateFilter::Unknown => "unknown",
        }
    }
}

/// Parameters of the task list (§1.6). `Default` lists everything the token may see, newest first, with the
/// server's default page size; set `limit: Some(0)` for all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Worker type substring (`backup`).
    pub typefilter: Option<String>,
    /// Only tasks that did not end OK (warnings, errors, unknown and running ones).
    pub errors: bool,
    /// Only running tasks.
    pub running: bool,
    /// Started at or after (epoch seconds).
    pub since: Option<i64>,
    /// Started at or before (epoch seconds).
    pub until: Option<i64>,
    /// Datastore (matched against the worker id).
    pub store: Option<String>,
    /// Auth id substring.
    pub userfilter: Option<String>,
    /// Paging start.
    pub start: Option<u64>,
    /// Page size (0 = all).
    pub limit: Option<u64>,
    /// Exact states, sent as repeated keys.
    pub statusfilter: Vec<TaskStateFilter>,
}

impl TaskQuery {
    /// The query string (form-urlencoded, booleans `true`, arrays as repeated keys: §1.1).
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(t) = &self.typefilter {
            q.append_pair("typefilter", t);
        }
        if self.errors {
            q.append_pair("errors", "true");
        }
        if self.running {
            q.append_pair("running", "true");
        }
        if let Some(s) = self.since {
            q.append_pair("since", &s.to_string());
        }
        if let Some(u) = self.until {
            q.append_pair("until", &u.to_string());
        }
        if let Some(s) = &self.store {
            q.append_pair("store", s);
        }
        if let Some(u) = &self.userfilter {
            q.append_pair("userfilter", u);
        }
        if let Some(s) = self.start {
            q.append_pair("start", &s.to_string());
        }
        if let Some(l) = self.limit {
            q.append_pair("limit", &l.to_string());
        }
        for s in &self.statusfilter {
            q.append_pair("statusfilter", s.as_str());
        }
        q.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_list_parses_finished_and_unfinished() {
        let body = r#"{"data":[
          {"backup-type":"vm","backup-id":"101","backup-time":1717570000,
           "comment":"nightly","verification":{"upid":"UPID:pbs:1:2:3:4:verify:s:root@pam:","state":"ok"},
           "files":[{"filename":"qemu-server.conf.blob","crypt-mode":"none","size":614},
                    {"filename":"drive-scsi0.img.fidx","crypt-mode":"encrypt","size":34359738368},
                    {"filename":"index.json.blob","crypt-mode":"sign-only","size":600},
                    {"filename":"client.log.blob"}],
           "fingerprint":"AA:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99",
           "size":34359739582,"owner":"root@pam","protected":true,"new-field":{"x":1}},
          {"backup-type":"ct","backup-id":"200","backup-time":1717580000,
           "files":[{"filename":"pct.conf.blob"}],"owner":"root@pam","protected":false}
        ],"total":2}"#;
        let list: Envelope<Vec<SnapshotListItem>> = serde_json::from_str(body).unwrap();
        let [a, b] = &list.data[..] else { panic!() };
        assert!(a.is_finished() && !b.is_finished());
        assert_eq!(a.group(), "vm/101");
        assert_eq!(b.group(), "ct/200");
        assert_eq!(a.verification.as_ref().unwrap().state, VerifyState::Ok);
        assert_eq!(a.files[1].crypt_mode, Some(CryptMode::Encrypt));
        assert_eq!(a.files[2].crypt_mode, Some(CryptMode::SignOnly));
        assert_eq!(a.files[3].size, None);
        assert!(a.protected && a.fingerprint.unwrap().to_string().starts_with("aa:bb"));
        assert_eq!(b.size, None);
        let v: SnapshotVerifyState =
            serde_json::from_str(r#"{"upid":"u","state":"weird"}"#).unwrap();
        assert_eq!(v.state, VerifyState::Unknown);
    }

    #[test]
    fn other_shapes_parse() {
        let v: Envelope<VersionInfo> =
            serde_json::from_str(r#"{"data":{"version":"3.2","release":"4","repoid":"abc"}}"#)
                .unwrap();
        assert_eq!(v.data.version, "3.2");
        let d: Envelope<Vec<DataStoreListItem>> = serde_json::from_str(
            r#"{"data":[{"store":"store1","comment":"main","mount-status":"nonremovable"}]}"#,
        )
        .unwrap();
        assert_eq!(d.data[0].store, "store1");
        let s: Envelope<DataStoreStatus> = serde_json::from_str(
            r#"{"data":{"total":100,"used":40,"avail":60,"gc-status":{"upid":null,"index-file-count":3,
            "index-data-bytes":1,"disk-bytes":2,"disk-chunks":3,"removed-bytes":0,"removed-chunks":0,
            "pending-bytes":0,"pending-chunks":0,"removed-bad":0,"still-bad":1},
            "counts":{"vm":{"groups":2,"snapshots":5}}}}"#,
        )
        .unwrap();
        assert_eq!(s.data.gc_status.unwrap().still_bad, 1);
        assert_eq!(s.data.counts.unwrap().vm.unwrap().snapshots, 5);
        let g: Envelope<Vec<GroupListItem>> = serde_json::from_str(
            r#"{"data":[{"backup-type":"host","backup-id":"web","last-backup":5,"backup-count":2,
            "files":["root.pxar.didx"],"owner":"a@pbs!t"}]}"#,
        )
        .unwrap();
        assert_eq!(g.data[0].backup_type, BackupType::Host);
        let n: Envelope<Vec<NamespaceListItem>> =
            serde_json::from_str(r#"{"data":[{"ns":""},{"ns":"dept/a","comment":"c"}]}"#).unwrap();
        assert_eq!(n.data[1].ns, "dept/a");
        let t: Envelope<Vec<TaskListItem>> = serde_json::from_str(
            r#"{"data":[
            {"upid":"UPID:pbs:00000001:00000002:00000003:66600000:backup:store1\\x3avm-101:root@pam:",
             "node":"pbs","pid":1,"pstart":2,"starttime":1717570000,"worker_type":"backup",
             "worker_id":"store1:vm/101","user":"root@pam","endtime":1717570100,"status":"connection error"},
            {"upid":"u2","node":"pbs","pid":1,"pstart":2,"starttime":1,"worker_type":"backup","user":"root@pam"},
            {"upid":"u3","node":"pbs","pid":1,"pstart":2,"starttime":1,"worker_type":"backup","user":"u",
             "endtime":2,"status":"WARNINGS: 2"}],"total":3}"#,
        )
        .unwrap();
        assert!(!t.data[0].succeeded() && !t.data[0].is_running());
        assert!(t.data[1].is_running());
        assert!(t.data[2].succeeded());
        let st: Envelope<TaskStatus> = serde_json::from_str(
            r#"{"data":{"upid":"u","node":"pbs","pid":1,"pstart":2,"starttime":3,"type":"backup","id":"s:vm/1",
            "user":"root@pam","status":"stopped","exitstatus":"OK"}}"#,
        )
        .unwrap();
        assert_eq!(st.data.outcome(), Some(true));
        let log: Envelope<Vec<TaskLogLine>> = serde_json::from_str(
            r#"{"data":[{"n":1,"t":"starting"},{"n":2,"t":"TASK ERROR: x"}],"total":2}"#,
        )
        .unwrap();
        assert_eq!(log.data[1].t, "TASK ERROR: x");
    }

    #[test]
    fn task_query_uses_repeated_keys() {
        let q = TaskQuery {
            typefilter: Some("backup".into()),
            errors: true,
            since: Some(1717570000),
            until: Some(1717580000),
            store: Some("store 1".into()),
            limit: Some(0),
            statusfilter: vec![TaskStateFilter::Error, TaskStateFilter::Warning],
            ..TaskQuery::default()
        };
        assert_eq!(
            q.to_query(),
            "typefilter=backup&errors=true&since=1717570000&until=1717580000&store=store+1&limit=0&\
             statusfilter=error&statusfilter=warning"
        );
        assert_eq!(TaskQuery::default().to_query(), "");
    }
}
