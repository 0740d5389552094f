//! The generic webhook against a real HTTP receiver: payload shape and a Standard Webhooks signature checked
//! by code written here from the spec (not the crate's signer), plus the delivery classification every HTTP
//! channel shares (2xx, 503, 429 + Retry-After, 410, other 4xx, 3xx, timeouts, refused connections, TLS).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{channel, failed, secret_file};
use hmac::{KeyInit, Mac};
use lifeboat_fixtures::http_sink::{HttpSink, Recorded, Reply};
use lifeboat_fixtures::test_pki::TestPki;
use lifeboat_notify::Retry;
use serde_json::json;

/// 32 random bytes, base64, with the spec's prefix.
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD6Rm4hxZrLk0=";

/// A receiver's verification, written from the spec: key = base64-decode(secret without `whsec_`),
/// signed content = "{id}.{timestamp}.{body}", compare against each space-separated `v1,` signature.
fn verify(secret: &str, r: &Recorded) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = r.header("webhook-id").unwrap();
    let ts = r.header("webhook-timestamp").unwrap();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[tokio::test]
async fn signed_payload_verifies_and_carries_everything() {
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::start().unwrap();
    let ch = channel(json!({
        "type": "webhook",
        "url": sink.url("/hooks/lifeboat"),
        "secret_file": secret_file(dir.path(), "whsec", SECRET),
        "headers": {"X-Tenant": "site-a"},
    }));
    let n = failed("msg_n1.drill.failed");
    let d = ch.deliver(&n).await.unwrap();
    assert_eq!(d.detail, "HTTP 200: ok");
    let r = &sink.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/lifeboat");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-tenant"), Some("site-a"));
    assert!(r.header("user-agent").unwrap().starts_with("lifeboat/"));
    assert_eq!(r.header("webhook-id"), Some("msg_n1.drill.failed"));
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(
        (jiff::Timestamp::now().as_second() - ts).abs() < 60,
        "timestamp is now, in Unix seconds"
    );
    assert!(
        verify(SECRET, r),
        "signature does not verify: {:?}",
        r.header("webhook-signature")
    );
    let mut tampered = r.clone();
    tampered.body.push(b' ');
    assert!(!verify(SECRET, &tampered), "a changed body must not verify");
    assert!(
        !verify("whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", r),
        "another secret must not verify"
    );

    let b = r.json();
    assert_eq!(b["type"], "drill.failed");
    assert_eq!(b["timestamp"], "2026-03-01T02:00:00Z");
    let data = &b["data"];
    assert_eq!(data["run_id"], "run-42", "the agent's data is kept");
    assert_eq!(data["rta_s"], 252);
    assert_eq!(data["id"], "msg_n1.drill.failed");
    assert_eq!(data["transition"], "trigger");
    assert_eq!(data["severity"], "critical");
    assert_eq!(data["asset"], "app");
    assert_eq!(data["site"], "site-a");
    assert_eq!(data["dedup_key"], "site-a/drill/app");
    assert_eq!(data["title"], n.title.as_str());
    assert_eq!(data["summary"], n.summary.as_str());
    assert_eq!(
        data["facts"][2],
        json!({"label": "RTA vs RTO", "value": "4m 12s (RTO 30m) — met"})
    );
    assert_eq!(data["checks"][0]["expected"], "sha256 9f2c");
    assert_eq!(data["checks"][0]["actual"], "sha256 0b7e");
    assert_eq!(
        data["reproduce"],
        "lifeboat --config /etc/lifeboat/lifeboat.toml drill app"
    );
}

#[tokio::test]
async fn a_retry_keeps_the_id_and_signs_again() {
    let sink = HttpSink::start_with([Reply::status(503)]).unwrap();
    // The secret may come from the environment too; PATH is no whsec_ secret, so use a file-less inline URL
    // and check the unsigned form here.
    let ch = channel(json!({"type": "webhook", "url": sink.url("/h")}));
    let n = failed("n-retry");
    assert!(ch.deliver(&n).await.unwrap_err().is_transient());
    ch.deliver(&n).await.unwrap();
    let r = sink.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].header("webhook-id"), r[1].header("webhook-id"));
    assert_eq!(r[0].body, r[1].body, "same body on retry");
    assert!(
        r[0].header("webhook-signature").is_none(),
        "no secret, no signature"
    );
    assert!(r[0].header("webhook-timestamp").is_some());
}

#[tokio::test]
async fn classification_of_answers() {
    let sink = HttpSink::start_with([
        Reply::status(503).body("maintenance"),
        Reply::status(429).header("Retry-After", "7"),
        Reply::status(410).body("gone: endpoint disabled\nsecond line"),
        Reply::status(400).body("{\"error\":\"bad payload\"}"),
        Reply::status(301).header("Location", "https://elsewhere.example/x"),
        Reply::status(202),
    ])
    .unwrap();
    let ch = channel(json!({"type": "webhook", "url": sink.url("/x")}));
    let n = failed("c1");
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(e.retry, Retry::Transient { after: None });
    assert!(e.message.contains("HTTP 503: maintenance"), "{}", e.message);
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(
        e.retry,
        Retry::Transient {
            after: Some(Duration::from_secs(7))
        }
    );
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(
        e.message.contains("410 Gone: gone: endpoint disabled"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("second line"));
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(
        e.message.contains("HTTP 400: {\"error\":\"bad payload\"}"),
        "{}",
        e.message
    );
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "redirects are not followed");
    assert!(
        e.message.contains("https://elsewhere.example"),
        "{}",
        e.message
    );
    assert_eq!(ch.deliver(&n).await.unwrap().detail, "HTTP 202");
    assert_eq!(
        sink.requests().len(),
        6,
        "one request per attempt, no hidden retries"
    );
}

#[tokio::test]
async fn slow_and_absent_receivers_are_transient() {
    let sink = HttpSink::start_with([Reply::ok().delay(Duration::from_secs(4))]).unwrap();
    let ch = channel(json!({"type": "webhook", "url": sink.url("/slow"), "timeout": "1s"}));
    let e = ch.deliver(&failed("t1")).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.message.contains("no answer within 1s"), "{}", e.message);

    let port = lifeboat_fixtures::smtp::free_port().unwrap();
    let mut down = HttpSink::stopped(port, None);
    let ch = channel(json!({"type": "webhook", "url": down.url("/d")}));
    let e = ch.deliver(&failed("t2")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Transient { after: None }, "{e}");
    assert!(e.message.contains("cannot connect"), "{}", e.message);
    down.up().unwrap();
    ch.deliver(&failed("t2")).await.unwrap();
    assert_eq!(down.requests().len(), 1);
}

#[tokio::test]
async fn https_with_a_private_ca_and_without() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), "hooks").unwrap();
    let sink = HttpSink::start_tls(pki.clone()).unwrap();
    let trusted =
        channel(json!({"type": "webhook", "url": sink.url("/tls"), "ca_file": pki.ca_pem_path}));
    trusted.deliver(&failed("s1")).await.unwrap();
    assert_eq!(sink.requests().len(), 1);

    let e = channel(json!({"type": "webhook", "url": sink.url("/tls")}))
        .deliver(&failed("s2"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    assert!(
        e.message.contains("certificate") && e.message.contains("ca_file"),
        "{}",
        e.message
    );

    let other = TestPki::generate(&dir.path().join("other"), "other").unwrap();
    let e =
        channel(json!({"type": "webhook", "url": sink.url("/tls"), "ca_file": other.ca_pem_path}))
            .deliver(&failed("s3"))
            .await
            .unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    assert!(
        e.message.contains(&other.ca_pem_path.display().to_string()),
        "{}",
        e.message
    );
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn secret_url_never_appears_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sink =
        HttpSink::start_with([Reply::status(404).body("no such hook /hooks/T0/s3cr3t-t0ken")])
            .unwrap();
    let url = sink.url("/hooks/T0/s3cr3t-t0ken");
    let ch = channel(json!({"type": "webhook", "url_file": secret_file(dir.path(), "url", &url)}));
    let e = ch.deliver(&failed("u1")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(!e.message.contains("s3cr3t-t0ken"), "{}", e.message);
    assert!(
        e.message
            .contains(&format!("http://127.0.0.1:{}", sink.port)),
        "{}",
        e.message
    );
    assert!(!format!("{ch:?}").contains("s3cr3t"));
}
