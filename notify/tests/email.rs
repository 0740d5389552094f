//! The email channel against a real SMTP server (aiosmtpd, via `lifeboat_fixtures::smtp`), each message read
//! back and parsed by Python's `email` package on the server side: headers decoded, parts decoded, envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{at, channel, failed, secret_file};
use lifeboat_fixtures::smtp::{SmtpMode, SmtpServer};
use lifeboat_fixtures::test_pki::TestPki;
use lifeboat_notify::{Retry, Transition};
use serde_json::json;

const USER: &str = "drills@example.com";
const PASSWORD: &str = "c0rrect-h0rse-battery";

fn email_cfg(srv: &SmtpServer, tls: &str, pw_file: &str, to: &[&str]) -> serde_json::Value {
    json!({
        "type": "email",
        "host": "127.0.0.1",
        "port": srv.port,
        "tls": tls,
        "username": USER,
        "password_file": pw_file,
        "from": "Lifeboat Drills <lifeboat@example.com>",
        "to": to,
        "ca_file": srv.cert_pem_path,
        "timeout": "10s",
    })
}

#[tokio::test]
async fn starttls_with_auth_delivers_one_mail_to_several_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::starttls_auth(USER, PASSWORD)).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let ch = channel(email_cfg(
        &srv,
        "starttls",
        &pw,
        &["ops@example.com", "Backup Team <backup@example.org>"],
    ));

    let mut n = failed("n1.drill.failed.test");
    n.title = "[lifeboat] FAILED drill Überweisungen: Prüfsumme — falsch".into();
    n.summary = ".leading dot line\nFAILED: <b>not bold</b> & checksum mismatch".into();
    let d = ch.deliver(&n).await.unwrap();
    assert!(
        d.detail.starts_with("250 2.0.0 Ok: queued as LB"),
        "{}",
        d.detail
    );

    let mails = srv.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(mails.len(), 1, "one message for all recipients");
    let m = &mails[0];
    assert!(
        m.defects.is_empty(),
        "Python's parser found defects: {:?}",
        m.defects
    );
    assert!(m.tls, "the message was sent after STARTTLS");
    assert_eq!(m.auth_login.as_deref(), Some(USER));
    assert_eq!(m.auth_mechanism.as_deref(), Some("PLAIN"));
    assert_eq!(m.mail_from, "lifeboat@example.com");
    assert_eq!(m.rcpt_tos, vec!["ops@example.com", "backup@example.org"]);

    // Headers as a real parser decodes them (RFC 2047 subject).
    assert_eq!(m.header("Subject"), Some(n.title.as_str()));
    assert!(
        m.raw_header("Subject").unwrap().contains("=?UTF-8?B?"),
        "non-ASCII subject is encoded on the wire"
    );
    assert_eq!(
        m.header("From"),
        Some("Lifeboat Drills <lifeboat@example.com>")
    );
    assert_eq!(
        m.header("To"),
        Some("ops@example.com, Backup Team <backup@example.org>")
    );
    assert_eq!(
        m.header("Message-ID"),
        Some("<n1.drill.failed.test@lifeboat>")
    );
    let root = m.header("References").unwrap().to_string();
    assert!(
        root.starts_with("<thread.") && root.ends_with("@lifeboat>"),
        "{root}"
    );
    assert_eq!(m.header("In-Reply-To"), Some(root.as_str()));
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert_eq!(m.header("X-Lifeboat-Event"), Some("drill.failed"));
    let date = m.header("Date").unwrap();
    let sent = jiff::fmt::rfc2822::parse(date).unwrap().timestamp();
    assert!(
        (jiff::Timestamp::now() - sent).get_seconds().abs() < 120,
        "{date}"
    );
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );

    // Both parts, decoded from quoted-printable.
    assert_eq!(m.parts.len(), 2);
    let text = m.part("text/plain").unwrap();
    assert_eq!(text.charset.as_deref(), Some("utf-8"));
    assert_eq!(text.transfer_encoding.as_deref(), Some("quoted-printable"));
    let t = &text.body;
    assert!(
        t.starts_with(".leading dot line\n"),
        "dot-stuffing undone by the server: {t}"
    );
    assert!(
        t.contains("FAILED: <b>not bold</b> & checksum mismatch"),
        "{t}"
    );
    assert!(t.contains("RTA vs RTO:  4m 12s (RTO 30m) — met"), "{t}");
    assert!(t.contains("integrity: archive checksum: FAILED"), "{t}");
    assert!(
        t.contains("expected: sha256 9f2c") && t.contains("actual:   sha256 0b7e"),
        "{t}"
    );
    assert!(
        t.contains("lifeboat --config /etc/lifeboat/lifeboat.toml drill app"),
        "{t}"
    );
    let h = m.html();
    assert!(
        h.contains("FAILED: &lt;b&gt;not bold&lt;/b&gt; &amp; checksum mismatch"),
        "{h}"
    );
    assert!(!h.contains("<b>not bold</b>"), "HTML escaped");
    assert!(
        h.contains("<code>sha256 9f2c</code>") && h.contains("<code>sha256 0b7e</code>"),
        "{h}"
    );
    assert!(
        h.contains("content: file count"),
        "the HTML part lists every check"
    );
    assert!(h.contains("drill app</code></pre>"), "{h}");
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::implicit_tls(Some((USER, PASSWORD)))).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let ch = channel(email_cfg(&srv, "tls", &pw, &["ops@example.com"]));
    let d = ch.deliver(&failed("n2")).await.unwrap();
    assert!(d.detail.starts_with("250"), "{}", d.detail);
    let m = srv.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(m.len(), 1);
    assert!(m[0].tls);
    assert_eq!(m[0].auth_login.as_deref(), Some(USER));
    assert_eq!(
        m[0].header("Subject"),
        Some("[lifeboat] FAILED drill app: integrity: archive checksum")
    );
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::starttls_auth(USER, PASSWORD).login_only()).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let ch = channel(email_cfg(&srv, "starttls", &pw, &["ops@example.com"]));
    ch.deliver(&failed("n3")).await.unwrap();
    let m = srv.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(m[0].auth_mechanism.as_deref(), Some("LOGIN"));
}

#[tokio::test]
async fn trigger_reminder_and_recovery_thread_together() {
    let srv = SmtpServer::start(SmtpMode::plain()).unwrap();
    let ch = channel(json!({
        "type": "email", "host": "127.0.0.1", "port": srv.port, "tls": "none",
        "from": "lifeboat@example.com", "to": ["ops@example.com"],
    }));
    let first = failed("a1");
    ch.deliver(&first).await.unwrap();
    ch.deliver(&at(failed("a2"), "a2", Transition::Remind))
        .await
        .unwrap();
    ch.deliver(&at(failed("a3"), "a3", Transition::Resolve))
        .await
        .unwrap();
    let mut other = failed("b1");
    other.dedup_key = "site-a/drill/other".into();
    ch.deliver(&other).await.unwrap();
    let m = srv.wait_for_messages(4, Duration::from_secs(5));
    assert_eq!(m.len(), 4);
    let refs: Vec<&str> = m.iter().map(|x| x.header("References").unwrap()).collect();
    assert_eq!(refs[0], refs[1]);
    assert_eq!(refs[1], refs[2]);
    assert_ne!(refs[2], refs[3], "another alert is another thread");
    let ids: Vec<&str> = m.iter().map(|x| x.header("Message-ID").unwrap()).collect();
    assert_eq!(
        ids,
        vec![
            "<a1@lifeboat>",
            "<a2@lifeboat>",
            "<a3@lifeboat>",
            "<b1@lifeboat>"
        ]
    );
    assert_eq!(
        m[1].header("Subject"),
        Some("[lifeboat] STILL FAILED drill app: integrity: archive checksum")
    );
    assert_eq!(
        m[2].header("Subject"),
        Some("[lifeboat] RECOVERED drill app: passed again")
    );
    assert!(!m[0].tls && m[0].auth_login.is_none());
}

#[tokio::test]
async fn wrong_password_is_permanent_and_names_the_setting_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::starttls_auth(USER, PASSWORD)).unwrap();
    let wrong = "wr0ng-p4ssw0rd-xyz";
    let pw = secret_file(dir.path(), "pw", wrong);
    let ch = channel(email_cfg(&srv, "starttls", &pw, &["ops@example.com"]));
    let e = ch.deliver(&failed("n4")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    let expected = format!("127.0.0.1:{} rejected the login for {USER} (535", srv.port);
    assert!(e.message.contains(&expected), "{}", e.message);
    assert!(
        e.message.contains("check username and password_file"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains(wrong),
        "the password leaked: {}",
        e.message
    );
    assert!(!format!("{e:?} {ch:?}").contains(wrong));
    assert!(srv.messages().is_empty());
}

#[tokio::test]
async fn password_from_the_environment_works() {
    // The crate forbids `unsafe`, so the test cannot set a variable; it uses one every process has, PATH,
    // as the server's password.
    let var = "PATH";
    let password = std::env::var(var).unwrap();
    let srv = SmtpServer::start(SmtpMode::implicit_tls(Some((USER, &password)))).unwrap();
    let mut cfg = email_cfg(&srv, "tls", "", &["ops@example.com"]);
    cfg.as_object_mut().unwrap().remove("password_file");
    cfg["password_env"] = json!(var);
    let ch = channel(cfg);
    ch.deliver(&failed("n5")).await.unwrap();
    assert_eq!(srv.wait_for_messages(1, Duration::from_secs(5)).len(), 1);
}

#[tokio::test]
async fn server_down_is_transient_and_the_same_channel_delivers_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = SmtpServer::stopped(SmtpMode::starttls_auth(USER, PASSWORD)).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let ch = channel(email_cfg(&srv, "starttls", &pw, &["ops@example.com"]));
    let n = failed("n6");
    let e = ch.deliver(&n).await.unwrap_err();
    assert_eq!(e.retry, Retry::Transient { after: None }, "{e}");
    assert!(e.message.contains("cannot connect"), "{}", e.message);
    srv.up().unwrap();
    ch.deliver(&n).await.unwrap();
    let m = srv.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].header("Message-ID"), Some("<n6@lifeboat>"));
}

#[tokio::test]
async fn certificate_of_another_ca_is_permanent_and_names_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::implicit_tls(None)).unwrap();
    let other = TestPki::generate(&dir.path().join("other"), "other").unwrap();
    let ch = channel(json!({
        "type": "email", "host": "127.0.0.1", "port": srv.port, "tls": "tls",
        "from": "lifeboat@example.com", "to": ["ops@example.com"],
        "ca_file": other.ca_pem_path,
    }));
    let e = ch.deliver(&failed("n7")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    assert!(e.message.contains("certificate"), "{}", e.message);
    assert!(
        e.message
            .contains(&format!("ca_file {}", other.ca_pem_path.display())),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn private_ca_without_ca_file_is_untrusted_and_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::starttls_auth(USER, PASSWORD)).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let mut cfg = email_cfg(&srv, "starttls", &pw, &["ops@example.com"]);
    cfg.as_object_mut().unwrap().remove("ca_file");
    let e = channel(cfg).deliver(&failed("n8")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    assert!(
        e.message.contains("certificate") && e.message.contains("set ca_file"),
        "{}",
        e.message
    );
    assert!(srv.messages().is_empty());
}

#[tokio::test]
async fn refused_recipients_are_reported() {
    let srv = SmtpServer::start(SmtpMode::plain()).unwrap();
    let cfg = |to: &[&str]| {
        json!({"type": "email", "host": "127.0.0.1", "port": srv.port, "tls": "none",
               "from": "lifeboat@example.com", "to": to})
    };
    let d = channel(cfg(&["ops@example.com", "reject-me@example.com"]))
        .deliver(&failed("r1"))
        .await
        .unwrap();
    assert!(
        d.detail
            .contains("refused recipients: reject-me@example.com (550 5.1.1"),
        "{}",
        d.detail
    );
    let m = srv.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(m[0].rcpt_tos, vec!["ops@example.com"]);

    let e = channel(cfg(&["reject-a@example.com", "reject-b@example.com"]))
        .deliver(&failed("r2"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(
        e.message.contains("every recipient was refused")
            && e.message.contains("reject-b@example.com"),
        "{}",
        e.message
    );

    let e = channel(cfg(&["defer-a@example.com"]))
        .deliver(&failed("r3"))
        .await
        .unwrap_err();
    assert!(e.is_transient(), "451 is temporary: {e}");
    assert_eq!(srv.messages().len(), 1);
}

#[tokio::test]
async fn starttls_demanded_from_a_server_without_it_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SmtpServer::start(SmtpMode::plain()).unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD);
    let e = channel(email_cfg(&srv, "starttls", &pw, &["ops@example.com"]))
        .deliver(&failed("n9"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Permanent);
    assert!(
        e.message.contains("does not offer STARTTLS"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn implicit_tls_spoken_to_a_plain_port_is_permanent() {
    let srv = SmtpServer::start(SmtpMode::plain()).unwrap();
    let e = channel(json!({"type": "email", "host": "127.0.0.1", "port": srv.port, "tls": "tls",
                           "from": "lifeboat@example.com", "to": ["ops@example.com"], "timeout": "5s"}))
        .deliver(&failed("n10"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Permanent, "{e}");
    assert!(e.message.contains("tls = \"tls\""), "{}", e.message);
}
