//! Alerts end to end: the `lifeboat` binary against a real SMTP server (aiosmtpd with STARTTLS + AUTH,
//! implicit TLS, down then up, wrong password), the agent killed with an undelivered alert, and watches on the
//! PBS test server (a stale group, a failed backup task).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lifeboat_fixtures as fx;
use lifeboat_fixtures::pbs::{Datastore, vm_snapshot};
use lifeboat_fixtures::pbs_server::{Faults, Role, ServerConfig, Task, Token, start, task_upid};
use lifeboat_fixtures::smtp::{ParsedMail, SmtpMode, SmtpServer};

use crate::util::Sandbox;

const PASSWORD: &str = "correct-horse-battery";

/// An email channel `mail` for `srv` (STARTTLS or implicit TLS per its mode).
fn mail_channel(sb: &Sandbox, srv: &SmtpServer, tls: &str, password: &str, extra: &str) -> String {
    std::fs::write(sb.path("smtp-password"), format!("{password}\n")).unwrap();
    format!(
        "[notify.mail]\ntype = \"email\"\nhost = \"localhost\"\nport = {}\ntls = \"{tls}\"\nusername = \"lifeboat\"\npassword_file = \"smtp-password\"\nca_file = \"{}\"\nfrom = \"lifeboat <lifeboat@example.com>\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\n{extra}\n",
        srv.port,
        srv.cert_pem_path.display()
    )
}

fn bad_backup(sb: &Sandbox) {
    fx::sums_mismatch(
        &sb.backups("app").join(fx::stamped("app-", 2.0, ".tar.zst")),
        4,
    );
}

fn good_backup(sb: &Sandbox) {
    fx::good_archive(
        &sb.backups("app").join(fx::stamped("app-", 1.0, ".tar.zst")),
        5,
    );
}

fn wait_for_mail(srv: &SmtpServer, n: usize) -> Vec<ParsedMail> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = srv.messages();
        if m.len() >= n || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn subject(m: &ParsedMail) -> String {
    m.header("subject").unwrap_or_default().to_string()
}

#[test]
fn failing_drill_mails_once_reminds_and_announces_recovery() {
    let sb = Sandbox::new();
    let srv = SmtpServer::start(SmtpMode::starttls_auth("lifeboat", PASSWORD)).unwrap();
    bad_backup(&sb);
    sb.config(&mail_channel(
        &sb,
        &srv,
        "starttls",
        PASSWORD,
        "remind_every = \"4s\"",
    ));
    sb.local_drill("app", "notify = [\"mail\"]");

    let (code, _) = sb.drill("app");
    assert_eq!(code, 1);
    let mails = wait_for_mail(&srv, 1);
    assert_eq!(mails.len(), 1, "one alert");
    let first = &mails[0];
    assert!(
        subject(first).starts_with("[lifeboat] FAILED drill app: sha256sums"),
        "{}",
        subject(first)
    );
    assert_eq!(first.rcpt_tos.len(), 2, "both recipients");
    assert!(first.tls, "delivered over STARTTLS");
    assert_eq!(first.auth_login.as_deref(), Some("lifeboat"));
    let text = first.text();
    assert!(text.contains("FAILED: the backup is bad"), "{text}");
    assert!(
        text.contains("data/app.db differs from SHA256SUMS"),
        "failing check named: {text}"
    );
    assert!(text.contains("RPA vs RPO"), "{text}");
    assert!(
        text.contains("drill app") && text.contains("lifeboat --config"),
        "reproduce command: {text}"
    );
    assert!(first.html().contains("sha256sums"), "HTML part");

    // Still bad, right away: nothing new.
    let (code, _) = sb.drill("app");
    assert_eq!(code, 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        srv.messages().len(),
        1,
        "no second alert while it stays bad"
    );

    // Past remind_every: one reminder.
    std::thread::sleep(Duration::from_secs(4));
    let (code, _) = sb.drill("app");
    assert_eq!(code, 1);
    let mails = wait_for_mail(&srv, 2);
    assert_eq!(mails.len(), 2);
    assert!(
        subject(&mails[1]).starts_with("[lifeboat] STILL FAILED drill app"),
        "{}",
        subject(&mails[1])
    );

    // A newer, good backup: recovery announced once.
    good_backup(&sb);
    let (code, r) = sb.drill("app");
    assert_eq!(code, 0, "{r:#}");
    let mails = wait_for_mail(&srv, 3);
    assert_eq!(mails.len(), 3);
    assert!(
        subject(&mails[2]).starts_with("[lifeboat] RECOVERED drill app"),
        "{}",
        subject(&mails[2])
    );
    // The three mails thread together.
    let refs: Vec<_> = mails
        .iter()
        .map(|m| m.header("references").unwrap_or_default().to_string())
        .collect();
    assert!(
        !refs[0].is_empty() && refs.iter().all(|r| r == &refs[0]),
        "{refs:?}"
    );
    let (code, _) = sb.drill("app");
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(srv.messages().len(), 3, "passing again is not news");
}

#[test]
fn implicit_tls_delivers() {
    let sb = Sandbox::new();
    let srv = SmtpServer::start(SmtpMode::implicit_tls(Some(("lifeboat", PASSWORD)))).unwrap();
    bad_backup(&sb);
    sb.config(&mail_channel(&sb, &srv, "tls", PASSWORD, ""));
    sb.local_drill("app", "");
    let (code, _) = sb.drill("app");
    assert_eq!(code, 1);
    let mails = wait_for_mail(&srv, 1);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls);
    assert!(subject(&mails[0]).contains("FAILED drill app"));
    let out = sb.run(&["notify", "test", "mail"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        wait_for_mail(&srv, 2)
            .iter()
            .any(|m| subject(m).contains("TEST message"))
    );
}

#[test]
fn mail_server_down_then_up_delivers_exactly_once() {
    let sb = Sandbox::new();
    let mut srv = SmtpServer::stopped(SmtpMode::starttls_auth("lifeboat", PASSWORD)).unwrap();
    bad_backup(&sb);
    sb.config(&mail_channel(&sb, &srv, "starttls", PASSWORD, ""));
    sb.local_drill("app", "");
    let run = sb.run(&["drill", "app", "--quiet"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not delivered yet"), "{}", run.stderr);
    let ob = sb.run(&["outbox"]);
    assert!(ob.stdout.contains("1 pending"), "{}", ob.stdout);
    assert!(ob.stdout.contains("FAILED drill app"), "{}", ob.stdout);
    assert!(
        ob.stdout.to_lowercase().contains("refused"),
        "the reason: {}",
        ob.stdout
    );

    srv.up().unwrap();
    let d = sb.run(&["outbox", "deliver"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert_eq!(wait_for_mail(&srv, 1).len(), 1);
    let again = sb.run(&["outbox", "deliver"]);
    assert_eq!(again.code, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(srv.messages().len(), 1, "delivered once");
    let all = sb.run(&["outbox", "--all", "--json"]).json_lines();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["state"], "sent");
    assert_eq!(all[0]["attempts"], 2);
}

#[test]
fn wrong_smtp_password_is_a_clear_error_in_the_outbox() {
    let sb = Sandbox::new();
    let srv = SmtpServer::start(SmtpMode::starttls_auth("lifeboat", PASSWORD)).unwrap();
    bad_backup(&sb);
    sb.config(&mail_channel(&sb, &srv, "starttls", "not-the-password", ""));
    sb.local_drill("app", "");
    let run = sb.run(&["drill", "app", "--quiet"]);
    assert_eq!(
        run.code, 1,
        "the drill verdict is unchanged by a delivery failure"
    );
    let ob = sb.run(&["outbox"]);
    assert!(ob.stdout.contains("1 failed"), "{}", ob.stdout);
    assert!(ob.stdout.contains("535"), "{}", ob.stdout);
    assert!(
        ob.stdout.contains("password_file"),
        "says what to fix: {}",
        ob.stdout
    );
    assert!(
        !ob.stdout.contains("not-the-password"),
        "never prints the secret"
    );
    assert!(srv.messages().is_empty());
    // Fixed: retry delivers it.
    std::fs::write(sb.path("smtp-password"), PASSWORD).unwrap();
    let r = sb.run(&["outbox", "retry"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(wait_for_mail(&srv, 1).len(), 1);
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(sb: &Sandbox) -> Agent {
    Agent(
        sb.command(&["agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn outbox_rows(sb: &Sandbox) -> Vec<serde_json::Value> {
    sb.run(&["outbox", "--all", "--json"]).json_lines()
}

#[test]
fn agent_killed_with_an_undelivered_alert_delivers_it_after_restart() {
    let sb = Sandbox::new();
    let mut srv = SmtpServer::stopped(SmtpMode::starttls_auth("lifeboat", PASSWORD)).unwrap();
    good_backup(&sb);
    sb.config(&mail_channel(&sb, &srv, "starttls", PASSWORD, ""));
    sb.local_drill("app", "schedule = \"0 0 1 1 *\"");
    // The agent last ran 3 years ago, so the yearly drill instants since then were missed.
    {
        let state = sb.path("state");
        let store = lifeboat::store::Store::open(&state).unwrap();
        let three_years = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3 * 366 * 24);
        store
            .transaction(|tx| {
                lifeboat::alerts::state_set(tx, "agent:heartbeat", three_years.as_millisecond())
            })
            .unwrap();
    }
    let mut a = agent(&sb);
    // Wait until the agent queued the drill.missed alert and failed a first delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = outbox_rows(&sb);
        if rows
            .iter()
            .any(|r| r["event"] == "drill.missed" && r["attempts"].as_i64() >= Some(1))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no drill.missed attempt: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let rows = outbox_rows(&sb);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "pending");

    srv.up().unwrap();
    let _b = agent(&sb);
    let mails = wait_for_mail(&srv, 1);
    assert_eq!(mails.len(), 1);
    assert!(
        subject(&mails[0])
            .starts_with("[lifeboat] MISSED drill app: 3 scheduled runs did not happen"),
        "{}",
        subject(&mails[0])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        srv.messages().len(),
        1,
        "delivered once, not re-alerted after the restart"
    );
    assert_eq!(outbox_rows(&sb)[0]["state"], "sent");
}

#[test]
fn stale_pbs_group_and_failed_backup_task_each_alert_once() {
    let sb = Sandbox::new();
    let srv_mail = SmtpServer::start(SmtpMode::starttls_auth("lifeboat", PASSWORD)).unwrap();
    let store = Datastore::create(&sb.path("store")).unwrap();
    vm_snapshot(&store, None, "101", 30.0, None); // stale
    vm_snapshot(&store, None, "102", 2.0, None); // fresh
    let now = jiff::Timestamp::now().as_second();
    let user = "root@pam";
    let failed = Task {
        upid: task_upid("backup", "store1:vm/102", now - 600, user),
        worker_type: "backup".into(),
        worker_id: Some("store1:vm/102".into()),
        starttime: now - 600,
        endtime: Some(now - 590),
        status: Some("backup failed: connection error: Connection reset by peer".into()),
        user: user.into(),
        log: vec![
            "starting new backup on datastore 'store1': \"vm/102/...\"".into(),
            "ERROR: backup write data failed: connection reset".into(),
            "TASK ERROR: backup failed: connection error: Connection reset by peer".into(),
        ],
    };
    let srv = start(ServerConfig {
        datastores: vec![("store1".into(), sb.path("store"))],
        tokens: vec![Token {
            id: "watch@pbs!lifeboat".into(),
            secret: "tok".into(),
            acl: vec![("/".into(), Role::Audit)],
        }],
        tasks: vec![failed],
        faults: Faults::default(),
    })
    .unwrap();
    std::fs::write(sb.path("pbs-token"), "tok\n").unwrap();
    sb.config(&format!(
        "{}\n[sources.pbs]\ntype = \"pbs\"\nrepository = \"watch@pbs!lifeboat@127.0.0.1:{}:store1\"\nfingerprint = \"{}\"\npassword_file = \"pbs-token\"\n\n[watches.pbs-fresh]\nsource = \"pbs\"\nstale_after = \"26h\"\nschedule = \"*/15 * * * *\"\nnotify = [\"mail\"]\n",
        mail_channel(&sb, &srv_mail, "starttls", PASSWORD, ""),
        srv.port(),
        srv.fingerprint
    ));
    let w = sb.run(&["watch", "pbs-fresh"]);
    assert_eq!(w.code, 1, "{}\n{}", w.stdout, w.stderr);
    assert!(w.stdout.contains("backup.stale vm/101"), "{}", w.stdout);
    assert!(w.stdout.contains("backup.failed vm/102"), "{}", w.stdout);
    let mails = wait_for_mail(&srv_mail, 2);
    assert_eq!(
        mails.len(),
        2,
        "{:?}",
        mails.iter().map(subject).collect::<Vec<_>>()
    );
    let stale = mails
        .iter()
        .find(|m| subject(m).contains("STALE"))
        .expect("stale mail");
    assert!(subject(stale).contains("vm/101"), "{}", subject(stale));
    assert!(
        stale.text().contains("vm/101/"),
        "names the newest snapshot: {}",
        stale.text()
    );
    let job = mails
        .iter()
        .find(|m| subject(m).contains("BACKUP FAILED"))
        .expect("failed-job mail");
    assert!(subject(job).contains("vm/102"));
    assert!(
        job.text().contains("ERROR: backup write data failed"),
        "task log lines: {}",
        job.text()
    );

    // The second look finds the same facts: nothing new.
    let w = sb.run(&["watch", "pbs-fresh"]);
    assert_eq!(w.code, 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(srv_mail.messages().len(), 2, "each alerted once");
    srv.shutdown();
}

fn verify_standard_webhook(req: &lifeboat_fixtures::http_sink::Recorded, secret_b64: &str) {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let id = req.header("webhook-id").expect("webhook-id");
    let ts = req.header("webhook-timestamp").expect("webhook-timestamp");
    let sig = req.header("webhook-signature").expect("webhook-signature");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&req.body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert!(
        sig.split(' ').any(|s| s == format!("v1,{want}")),
        "signature {sig} does not verify"
    );
}

#[test]
fn webhook_slack_pagerduty_and_healthchecks_follow_a_failure_and_its_recovery() {
    use lifeboat_fixtures::http_sink::HttpSink;
    let sb = Sandbox::new();
    let sink = HttpSink::start().unwrap();
    // 32 random-looking bytes, base64, as the spec's secrets are.
    let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2yN+3JlYMZs=";
    std::fs::write(sb.path("whsec"), format!("whsec_{secret}\n")).unwrap();
    std::fs::write(sb.path("slack-url"), sink.url("/slack/T000/B000/xyz")).unwrap();
    std::fs::write(sb.path("pd-key"), "R0UT1NGKEY0123456789abcdef012345\n").unwrap();
    std::fs::write(sb.path("hc-key"), "pingkey123\n").unwrap();
    std::fs::write(sb.path("teams-url"), sink.url("/teams/workflow")).unwrap();
    std::fs::write(
        sb.path("discord-url"),
        sink.url("/discord/api/webhooks/1/t"),
    )
    .unwrap();
    std::fs::write(sb.path("gotify-token"), "AppTok3n\n").unwrap();
    bad_backup(&sb);
    sb.config(&format!(
        "[notify.hook]\ntype = \"webhook\"\nurl = \"{}\"\nsecret_file = \"whsec\"\n\n[notify.chat]\ntype = \"slack\"\nurl_file = \"slack-url\"\n\n[notify.pager]\ntype = \"pagerduty\"\nrouting_key_file = \"pd-key\"\nurl = \"{}\"\n\n[notify.hc]\ntype = \"healthchecks\"\nserver = \"{}\"\nping_key_file = \"hc-key\"\n\n[notify.teams]\ntype = \"teams\"\nurl_file = \"teams-url\"\n\n[notify.discord]\ntype = \"discord\"\nurl_file = \"discord-url\"\n\n[notify.ntfy]\ntype = \"ntfy\"\nserver = \"{}\"\ntopic = \"acme-backups\"\n\n[notify.gotify]\ntype = \"gotify\"\nserver = \"{}\"\ntoken_file = \"gotify-token\"\n\n[notify.quiet]\ntype = \"webhook\"\nurl = \"{}\"\nmin_severity = \"critical\"\n",
        sink.url("/hook"),
        sink.url("/pd/v2/enqueue"),
        sink.url("/hc"),
        sink.url("/ntfy"),
        sink.url("/gotify"),
        sink.url("/quiet"),
    ));
    sb.local_drill("app", "");
    assert_eq!(sb.drill("app").0, 1);
    good_backup(&sb);
    assert_eq!(sb.drill("app").0, 0);

    let reqs = sink.requests();
    let by = |p: &str| -> Vec<_> { reqs.iter().filter(|r| r.path.starts_with(p)).collect() };

    let hooks = by("/hook");
    assert_eq!(hooks.len(), 2, "trigger and resolve");
    for h in &hooks {
        verify_standard_webhook(h, secret);
    }
    assert_eq!(hooks[0].json()["type"], "drill.failed");
    assert_eq!(hooks[0].json()["data"]["outcome"], "failed");
    assert_eq!(hooks[0].json()["data"]["drill"], "app");
    assert_eq!(hooks[1].json()["type"], "drill.passed");
    assert_eq!(hooks[1].json()["data"]["transition"], "resolve");
    assert_ne!(hooks[0].header("webhook-id"), hooks[1].header("webhook-id"));

    let slack = by("/slack/");
    assert_eq!(slack.len(), 2);
    assert!(
        slack[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("FAILED drill app")
    );
    assert!(slack[0].json()["blocks"].is_array());
    assert!(
        slack[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("RECOVERED drill app")
    );

    let pd = by("/pd/");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[0].json()["event_action"], "trigger");
    assert_eq!(pd[1].json()["event_action"], "resolve");
    assert_eq!(pd[0].json()["dedup_key"], pd[1].json()["dedup_key"]);
    assert_eq!(
        pd[0].json()["routing_key"],
        "R0UT1NGKEY0123456789abcdef012345"
    );
    assert_eq!(pd[0].json()["payload"]["severity"], "critical");

    let teams = by("/teams/");
    assert_eq!(teams.len(), 2);
    assert_eq!(
        teams[0].json()["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let discord = by("/discord/");
    assert_eq!(discord.len(), 2);
    assert!(
        discord[0].json()["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("FAILED drill app")
    );
    let ntfy = by("/ntfy");
    assert_eq!(ntfy.len(), 2);
    assert_eq!(ntfy[0].json()["topic"], "acme-backups");
    assert!(
        ntfy[0].json()["priority"].as_i64().unwrap() > ntfy[1].json()["priority"].as_i64().unwrap()
    );
    let gotify = by("/gotify");
    assert_eq!(gotify.len(), 2);
    assert_eq!(gotify[0].header("x-gotify-key"), Some("AppTok3n"));
    // min_severity = critical: a failed drill is critical; its recovery is sent because the trigger was.
    assert_eq!(by("/quiet").len(), 2);

    let hc: Vec<&str> = by("/hc/").iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        hc,
        [
            "/hc/pingkey123/app/start",
            "/hc/pingkey123/app/fail",
            "/hc/pingkey123/app/start",
            "/hc/pingkey123/app"
        ]
    );
}

#[test]
fn digest_lists_open_problems_and_counts_passes() {
    use lifeboat_fixtures::http_sink::HttpSink;
    let sb = Sandbox::new();
    let sink = HttpSink::start().unwrap();
    bad_backup(&sb);
    fx::good_folder(&sb.backups("nas").join(fx::stamped("", 1.0, "")), 3);
    // This channel hears nothing but its digest, every minute.
    sb.config(&format!(
        "[notify.daily]\ntype = \"webhook\"\nurl = \"{}\"\nevents = []\ndigest = \"* * * * *\"\n",
        sink.url("/digest")
    ));
    sb.local_drill("app", "schedule = \"0 0 1 1 *\"");
    sb.local_drill("nas", "");
    assert_eq!(sb.drill("app").0, 1);
    assert_eq!(sb.drill("nas").0, 0);
    assert!(
        sink.requests().is_empty(),
        "events = [] hears no single alert"
    );
    let _a = agent(&sb);
    let deadline = Instant::now() + Duration::from_secs(75);
    while sink.requests().is_empty() {
        assert!(Instant::now() < deadline, "no digest within a minute");
        std::thread::sleep(Duration::from_millis(250));
    }
    let d = sink.requests()[0].json();
    assert_eq!(d["type"], "digest");
    assert_eq!(d["data"]["runs"]["failed"], 1);
    assert_eq!(d["data"]["runs"]["passed"], 1);
    let problems = d["data"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].as_str().unwrap().contains("FAILED drill app"),
        "{problems:?}"
    );
}

#[test]
fn verify_failed_and_shrunk_backups_alert_and_recover() {
    use lifeboat_fixtures::http_sink::HttpSink;
    let sb = Sandbox::new();
    let sink = HttpSink::start().unwrap();
    // A PBS datastore on disk: vm/101's newest snapshot failed the server's verification.
    let store = Datastore::create(&sb.path("store")).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let mut s = store.snapshot(None, "vm", "101", now - 3600, None);
    s.blob("qemu-server.conf.blob", b"memory: 512\n");
    let mut m = s.manifest();
    m.unprotected_mut()["verify_state"] =
        serde_json::json!({"state": "failed", "upid": "UPID:verify"});
    s.finish_with(&m);
    vm_snapshot(&store, None, "102", 1.0, None);
    // A dump folder whose newest dump is a tenth of the usual size.
    let dumps = sb.backups("db");
    for h in 2..8 {
        std::fs::write(
            dumps.join(fx::stamped("db-", h as f64 * 24.0, ".tar")),
            vec![0u8; 100_000],
        )
        .unwrap();
    }
    std::fs::write(
        dumps.join(fx::stamped("db-", 1.0, ".tar")),
        vec![0u8; 10_000],
    )
    .unwrap();
    sb.config(&format!(
        "[notify.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\n[sources.pbs]\ntype = \"pbs-datastore\"\npath = \"store\"\n\n[sources.db]\ntype = \"local\"\npath = \"backups/db\"\n\n[watches.pbs]\nsource = \"pbs\"\nstale_after = \"26h\"\nschedule = \"*/15 * * * *\"\n\n[watches.db]\nsource = \"db\"\nmax_shrink = \"50%\"\nschedule = \"*/15 * * * *\"\n",
        sink.url("/hook")
    ));
    let w = sb.run(&["watch", "--all", "--json"]);
    assert_eq!(w.code, 1, "{}\n{}", w.stdout, w.stderr);
    let types: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.json()["type"], r.json()["data"]["asset"]))
        .collect();
    assert_eq!(types.len(), 2, "{types:?}");
    assert!(
        types.contains(&"\"backup.verify_failed\" \"vm/101\"".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"\"backup.shrunk\" \"db\"".to_string()),
        "{types:?}"
    );
    let shrunk = sink
        .requests()
        .into_iter()
        .find(|r| r.json()["type"] == "backup.shrunk")
        .unwrap()
        .json();
    assert_eq!(shrunk["data"]["size"], 10_000);
    assert_eq!(shrunk["data"]["previous_median"], 100_000);

    // A normal-sized dump arrives: the shrink alert resolves; verify-failed stays open (no new message).
    std::fs::write(
        dumps.join(fx::stamped("db-", 0.1, ".tar")),
        vec![0u8; 100_000],
    )
    .unwrap();
    let w = sb.run(&["watch", "--all"]);
    assert_eq!(w.code, 1, "vm/101 still has a failed verification");
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].json()["type"], "backup.shrunk");
    assert_eq!(reqs[2].json()["data"]["transition"], "resolve");
}

#[test]
fn drills_that_cannot_run_alert_as_errors_not_failures() {
    use lifeboat_fixtures::http_sink::HttpSink;
    let sb = Sandbox::new();
    let sink = HttpSink::start().unwrap();
    good_backup(&sb);
    sb.config(&format!(
        "[notify.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\n[sources.gone]\ntype = \"local\"\npath = \"backups/gone\"\n\n[drills.gone]\nsource = \"gone\"\nrto = \"10m\"\nrpo = \"26h\"\n",
        sink.url("/hook")
    ));
    sb.local_drill(
        "app",
        "[[drills.app.checks]]\ntype = \"command\"\nrun = [\"sleep\", \"120\"]\ntimeout = \"5m\"\n",
    );
    // A source folder that is not there: the drill proves nothing, it is an `error`.
    assert_eq!(sb.drill("gone").0, 3);
    let hooks = sink.requests();
    assert_eq!(hooks.len(), 1);
    let j = hooks[0].json();
    assert_eq!(j["type"], "drill.error");
    assert!(
        j["data"]["title"]
            .as_str()
            .unwrap()
            .starts_with("[lifeboat] ERROR drill gone"),
        "{j:#}"
    );
    assert!(
        j["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("could not run, so it proves nothing"),
        "{j:#}"
    );

    // A drill whose process is SIGKILLed mid-run: the next start records it as `error` and queues its
    // alert in the same transaction.
    let mut child = sb.command(&["drill", "app", "--quiet"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leased = std::fs::read_dir(sb.scratch())
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "lease"))
            })
            .unwrap_or(false);
        let in_check = leased
            && sb
                .run(&["history", "--json"])
                .stdout
                .contains("\"drill\":\"app\"");
        if in_check {
            break;
        }
        assert!(Instant::now() < deadline, "the drill never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = sb.run(&["history"]).stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("app ") && l.contains(" running ")),
        "a run in progress shows as running: {table}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = sb.run(&["outbox", "deliver"]);
    assert_eq!(rows.code, 0, "{}", rows.stderr);
    let hooks = sink.requests();
    let last = hooks.last().unwrap().json();
    assert_eq!(last["type"], "drill.error", "{last:#}");
    assert_eq!(last["data"]["drill"], "app");
    assert!(
        last["data"]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{last:#}"
    );
}
