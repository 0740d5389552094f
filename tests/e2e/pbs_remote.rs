//! Drills on a PBS server (`type = "pbs"`) over the REST API and the reader protocol, against the
//! PBS-compatible test server: TLS with a pinned fingerprint, API tokens with ACLs, faults.

use std::collections::HashSet;

use lifeboat_fixtures::pbs::{Datastore, vm_snapshot};
use lifeboat_fixtures::pbs_server::{Faults, Role, Running, ServerConfig, Token, start};

use crate::util::{Sandbox, check, status};

const SECRET: &str = "s3cr3t-token-value";

fn server(sb: &Sandbox, role: Role, faults: Faults) -> Running {
    start(ServerConfig {
        datastores: vec![("store1".into(), sb.path("store"))],
        tokens: vec![Token {
            id: "drill@pbs!lifeboat".into(),
            secret: SECRET.into(),
            acl: vec![("/datastore/store1".into(), role)],
        }],
        tasks: vec![],
        faults,
    })
    .unwrap()
}

fn config(sb: &Sandbox, srv: &Running, fingerprint: &str) {
    std::fs::write(sb.path("pbs-token"), format!("{SECRET}\n")).unwrap();
    sb.config(&format!(
        "[sources.pbs]\ntype = \"pbs\"\nrepository = \"drill@pbs!lifeboat@127.0.0.1:{}:store1\"\nfingerprint = \"{fingerprint}\"\npassword_file = \"pbs-token\"\n\n[drills.erp]\nsource = \"pbs\"\ngroup = \"vm/101\"\nrto = \"10m\"\nrpo = \"26h\"\n[[drills.erp.checks]]\ntype = \"files\"\nrequired = [\"drive-scsi0.img\", \"qemu-server.conf\"]\n",
        srv.port()
    ));
}

#[test]
fn vm_drill_over_the_reader_protocol_passes_and_fetches_each_chunk_once() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 30.0, None);
    let (_, digests) = vm_snapshot(&store, None, "101", 2.0, None);
    let srv = server(&sb, Role::DatastoreReader, Faults::default());
    config(&sb, &srv, &srv.fingerprint);
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(status(&r, "image drive-scsi0.img"), "passed");
    assert!(
        check(&r, "manifest")["actual"]
            .as_str()
            .unwrap()
            .contains("PBS verify state ok")
    );
    let distinct: HashSet<_> = digests.iter().collect();
    let stats = srv.stats();
    assert_eq!(
        stats.chunks_served as usize,
        distinct.len(),
        "each distinct chunk fetched once: {stats:?}"
    );
    assert_eq!(stats.reader_sessions, 1);
    let snaps = sb.run(&["snapshots", "pbs", "--json"]).json_lines();
    assert_eq!(snaps.len(), 2, "listed through the REST API");
    sb.assert_scratch_empty();
    srv.shutdown();
}

#[test]
fn corrupted_chunk_on_the_server_fails_naming_it() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    let (_, digests) = vm_snapshot(&store, None, "101", 1.0, None);
    store.corrupt_chunk(&digests[1]);
    let srv = server(&sb, Role::DatastoreReader, Faults::default());
    config(&sb, &srv, &srv.fingerprint);
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 1, "{r:#}");
    let msg = check(&r, "restore")["message"].as_str().unwrap();
    let hex: String = digests[1].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        msg.contains(&hex) && msg.contains("at byte 4194304"),
        "{msg}"
    );
    srv.shutdown();
}

#[test]
fn wrong_fingerprint_is_an_error_showing_the_presented_one() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 1.0, None);
    let srv = server(&sb, Role::DatastoreReader, Faults::default());
    let wrong = vec!["ab"; 32].join(":");
    config(&sb, &srv, &wrong);
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 3, "{r:#}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains(&srv.fingerprint) && err.contains("fingerprint"),
        "{err}"
    );
    srv.shutdown();
}

#[test]
fn token_without_read_rights_is_an_error_naming_the_role() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 1.0, None);
    let srv = server(&sb, Role::DatastoreAudit, Faults::default());
    config(&sb, &srv, &srv.fingerprint);
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 3, "listing works, reading does not: {r:#}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("DatastoreReader") && err.contains("/datastore/store1"),
        "{err}"
    );
    srv.shutdown();
}

#[test]
fn a_dropped_connection_is_retried_and_a_dead_server_is_an_error() {
    let sb = Sandbox::new();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 1.0, None);
    let srv = server(
        &sb,
        Role::DatastoreReader,
        Faults {
            drop_after_chunks: Some(1),
            drop_only_first_session: true,
            chunk_delay_ms: 0,
        },
    );
    config(&sb, &srv, &srv.fingerprint);
    let (code, r) = sb.drill("erp");
    assert_eq!(code, 0, "the drill survives one dropped connection: {r:#}");
    assert!(srv.stats().reader_sessions >= 2);
    srv.shutdown();

    // Every session is cut before its first chunk: no progress is possible, whatever the retry budget.
    let srv = server(
        &sb,
        Role::DatastoreReader,
        Faults {
            drop_after_chunks: Some(0),
            drop_only_first_session: false,
            chunk_delay_ms: 0,
        },
    );
    config(&sb, &srv, &srv.fingerprint);
    let (code, r) = sb.drill("erp");
    assert_eq!(
        code, 3,
        "a server that keeps failing makes the drill an error, not a failure: {r:#}"
    );
    assert_eq!(r["outcome"], "error");
    assert!(
        r["error"].as_str().unwrap().contains("127.0.0.1"),
        "the error names the server: {r:#}"
    );
    srv.shutdown();
}
