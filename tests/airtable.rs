//! Capability B end to end: buttons posted through the fake Telegram, presses turned into rows
//! in the fake Airtable, through outages, restarts and refusals.

mod support;

use std::time::{Duration, Instant};

use support::fake_airtable::{AirtableFault, FakeAirtable};
use support::*;
use tg_ingest::config::Settings;
use tg_ingest::obs::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(30);

fn vars(
    tg: &FakeTelegram,
    s3: &TestS3,
    at: &FakeAirtable,
    data: &std::path::Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut v = service_env(
        tg,
        s3,
        data,
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "false")],
    );
    v.extend(at.env());
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

/// The fake Telegram and Airtable, a real S3 server and a data directory.
fn fakes() -> (FakeTelegram, TestS3, FakeAirtable, tempfile::TempDir) {
    (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        FakeAirtable::start(),
        tempfile::tempdir().unwrap(),
    )
}

/// Posts a button the way `post-button` does; returns its message id.
fn post(settings: &Settings, chat: i64) -> i64 {
    actix_rt::System::new()
        .block_on(tg_ingest::app::post_button(settings, chat, None, None))
        .unwrap()
}

fn field<'a>(row: &'a support::fake_airtable::Row, name: &str) -> &'a str {
    row.fields[name].as_str().unwrap()
}

#[test]
fn one_press_makes_one_row_with_the_right_values() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let service = TestService::start(settings.clone());
    let msg = post(&settings, -1001);
    let data_ = tg.button_data(-1001, msg).unwrap();
    let before = tg_ingest::util::clock::now_millis();
    tg.push(press(-1001, msg, 501, Some("anna"), &data_));
    wait_until(WAIT, "one row", || at.rows().len() == 1);
    let row = &at.rows()[0];
    assert_eq!(field(row, "chat_id"), "-1001");
    assert_eq!(field(row, "username"), "anna");
    assert_eq!(field(row, "event_type"), "button_press");
    assert_eq!(field(row, "reporter_name"), "qa-team");
    let at_ms = field(row, "triggered_at");
    assert!(at_ms.ends_with('Z') && at_ms.len() == 24, "{at_ms}");
    assert!(
        at_ms >= tg_ingest::util::clock::iso8601_millis(before - 1000).as_str(),
        "{at_ms}"
    );
    // The row, the answer and the keyboard edit go out side by side: wait for all three.
    wait_until(WAIT, "the answer and the keyboard edit", || {
        !tg.answers().is_empty() && !tg.calls("editMessageReplyMarkup").is_empty()
    });
    assert_eq!(tg.answers().len(), 1);
    assert_eq!(
        tg.answers()[0].1,
        tg_ingest::domain::button::texts::RECORDED
    );
    assert_eq!(
        tg.calls("editMessageReplyMarkup").len(),
        1,
        "keyboard hidden"
    );
    assert_count(&service.metrics.airtable_rows, 1, "one row counted");
}

#[test]
fn five_users_pressing_one_button_make_one_row_and_five_answers() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let _service = TestService::start(settings.clone());
    let msg = post(&settings, -1002);
    let d = tg.button_data(-1002, msg).unwrap();
    for user in 0..5 {
        tg.push(press(-1002, msg, 600 + user, None, &d));
    }
    wait_until(WAIT, "five answers", || tg.answers().len() == 5);
    wait_until(WAIT, "a row", || at.rows().len() == 1);
    wait_until(WAIT, "every press handled, nothing left to send", || {
        settled(data.path(), "airtable")
    });
    assert_eq!(at.rows().len(), 1);
    assert_eq!(
        field(&at.rows()[0], "username"),
        "First600 Last",
        "the first press wins"
    );
    let texts: Vec<String> = tg.answers().into_iter().map(|a| a.1).collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == tg_ingest::domain::button::texts::RECORDED)
            .count(),
        1
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == tg_ingest::domain::button::texts::ALREADY_RECORDED)
            .count(),
        4
    );
    // The keyboard edit runs beside the handler, which does not wait for it.
    wait_until(WAIT, "keyboard hidden", || {
        tg.button_data(-1002, msg).is_none()
    });
}

#[test]
fn three_buttons_in_three_chats_make_three_rows() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let _service = TestService::start(settings.clone());
    for chat in [-2001, -2002, -2003] {
        let msg = post(&settings, chat);
        tg.push(press(
            chat,
            msg,
            700,
            Some("bob"),
            &tg.button_data(chat, msg).unwrap(),
        ));
    }
    wait_until(WAIT, "three rows", || at.rows().len() == 3);
    let mut chats: Vec<String> = at
        .rows()
        .iter()
        .map(|r| field(r, "chat_id").to_string())
        .collect();
    chats.sort();
    assert_eq!(chats, ["-2001", "-2002", "-2003"]);
}

#[test]
fn twenty_five_presses_at_once_arrive_in_three_batches_within_the_rate_limit() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let buttons: Vec<(i64, i64, String)> = (0..25)
        .map(|i| {
            let chat = -3000 - i;
            let msg = post(&settings, chat);
            (chat, msg, tg.button_data(chat, msg).unwrap())
        })
        .collect();
    // Presses queued before the service starts arrive in one burst.
    for (i, (chat, msg, d)) in buttons.iter().enumerate() {
        tg.push(press(*chat, *msg, 800 + i as i64, None, d));
    }
    let _service = TestService::start(settings);
    wait_until(WAIT, "25 rows", || at.rows().len() == 25);
    assert!(at.writes() <= 3, "{} requests", at.writes());
    assert_eq!(at.rate_violations(), 0);
}

#[test]
fn rows_wait_out_an_airtable_outage_of_60_s() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let _service = TestService::start(settings.clone());
    at.down_for(Duration::from_secs(60));
    let down = Instant::now();
    for chat in [-4001, -4002, -4003, -4004] {
        let msg = post(&settings, chat);
        tg.push(press(
            chat,
            msg,
            900,
            Some("carol"),
            &tg.button_data(chat, msg).unwrap(),
        ));
    }
    wait_until(WAIT, "presses answered", || tg.answers().len() == 4);
    wait_until(
        WAIT,
        "deliveries tried and refused during the outage",
        || outbox_max_attempts(data.path(), "airtable") >= 2,
    );
    assert!(at.rows().is_empty());
    wait_until(Duration::from_secs(150), "rows after the outage", || {
        at.rows().len() == 4
    });
    assert!(down.elapsed() >= Duration::from_secs(60));
    assert_eq!(at.rate_violations(), 0);
}

#[test]
fn a_lost_response_and_error_storms_still_make_one_row_each() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(
        &tg,
        &s3,
        &at,
        data.path(),
        &[("TG_INGEST__AIRTABLE__RATE_LIMITED_WAIT_SECS", "2")],
    ));
    let _service = TestService::start(settings.clone());
    at.inject([
        AirtableFault::LoseResponse,
        AirtableFault::Status(500),
        AirtableFault::Status(502),
        AirtableFault::Status(429),
        AirtableFault::LoseResponse,
    ]);
    for chat in [-5001, -5002] {
        let msg = post(&settings, chat);
        tg.push(press(
            chat,
            msg,
            950,
            Some("dan"),
            &tg.button_data(chat, msg).unwrap(),
        ));
    }
    wait_until(Duration::from_secs(90), "rows", || {
        at.writes() >= 6 && at.rows().len() == 2
    });
    wait_until(WAIT, "nothing left to send", || {
        settled(data.path(), "airtable")
    });
    assert_eq!(at.rows().len(), 2, "{:?}", at.rows());
}

#[test]
fn a_refused_row_goes_to_the_dead_letters_and_the_rest_are_delivered() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    at.refuse_value("poison_user");
    let buttons: Vec<(i64, i64)> = (0..3)
        .map(|i| (-6000 - i, post(&settings, -6000 - i)))
        .collect();
    for (i, (chat, msg)) in buttons.iter().enumerate() {
        let name = if i == 1 { "poison_user" } else { "fine_user" };
        tg.push(press(
            *chat,
            *msg,
            960 + i as i64,
            Some(name),
            &tg.button_data(*chat, *msg).unwrap(),
        ));
    }
    let service = TestService::start(settings);
    wait_until(WAIT, "the good rows", || at.rows().len() == 2);
    wait_until(WAIT, "one dead letter", || {
        Metrics::get(&service.metrics.airtable_dead_letters) == 1
    });
    drop(service);
    let store = tg_ingest::store::Store::open(&data.path().join("state.db")).unwrap();
    let dead = store.outbox_dead("airtable").unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("INVALID_VALUE_FOR_COLUMN"),
        "{}",
        dead[0].1
    );
    assert!(dead[0].0.payload.contains("poison_user"));
    assert!(store.outbox_pending("airtable", 10).unwrap().is_empty());
}

#[test]
fn refused_credentials_pause_delivery_and_keep_every_row() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let service = TestService::start(settings.clone());
    // The token is revoked, then the base is gone, then the table: wrong settings, not bad rows.
    at.inject([
        AirtableFault::Status(401),
        AirtableFault::Status(403),
        AirtableFault::Status(404),
    ]);
    let buttons: Vec<(i64, i64)> = (0..2)
        .map(|i| (-6100 - i, post(&settings, -6100 - i)))
        .collect();
    for (i, (chat, msg)) in buttons.iter().enumerate() {
        let data = tg.button_data(*chat, *msg).unwrap();
        tg.push(press(*chat, *msg, 980 + i as i64, None, &data));
    }
    // Fixed by the operator (the faults are used up): every row arrives.
    wait_until(WAIT, "both rows after the refusals", || {
        at.rows().len() == 2
    });
    assert_eq!(Metrics::get(&service.metrics.airtable_dead_letters), 0);
    // Each refusal paused delivery (0.5 s, 1 s, 2 s, less up to half) instead of sending again
    // at once.
    let answers = at.answers();
    let statuses: Vec<u16> = answers.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses[..4], [401, 403, 404, 200], "{statuses:?}");
    for (n, least) in [250, 500, 1000].into_iter().enumerate() {
        let gap = answers[n + 1].0 - answers[n].0;
        assert!(
            gap >= Duration::from_millis(least),
            "the request after refusal {} came {gap:?} later",
            n + 1
        );
    }
    drop(service);
    let store = tg_ingest::store::Store::open(&data.path().join("state.db")).unwrap();
    assert!(store.outbox_dead("airtable").unwrap().is_empty());
}

#[test]
fn chats_off_the_allowlist_get_no_button_and_no_rows() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(
        &tg,
        &s3,
        &at,
        data.path(),
        &[
            ("TG_INGEST__SECURITY__ALLOWED_CHAT_IDS", "-6201"),
            ("TG_INGEST__BUTTON__ADMINS", "990"),
        ],
    ));
    let service = TestService::start(settings.clone());
    // A button posted in an allowed chat and one in a chat that is not (posted before the
    // allowlist was set, say).
    let (allowed, other) = (post(&settings, -6201), post(&settings, -6202));
    tg.push(press(
        -6202,
        other,
        991,
        None,
        &tg.button_data(-6202, other).unwrap(),
    ));
    tg.push(press(
        -6201,
        allowed,
        992,
        None,
        &tg.button_data(-6201, allowed).unwrap(),
    ));
    let go = |chat: i64| {
        serde_json::json!({"message": {
            "message_id": tg.next_user_message_id(),
            "from": {"id": 990, "is_bot": false, "first_name": "Admin"},
            "chat": {"id": chat, "type": "supergroup", "title": "g"},
            "date": 1_763_800_000,
            "text": "/go"
        }})
    };
    tg.push(go(-6202));
    tg.push(go(-6201));
    wait_until(WAIT, "all four updates handled", || {
        Metrics::get(&service.metrics.updates_handled) >= 4
    });
    wait_until(WAIT, "the allowed chat's row and new button", || {
        at.rows().len() == 1 && tg.sent_to(-6201, "sendMessage").len() == 2
    });
    assert_eq!(field(&at.rows()[0], "chat_id"), "-6201");
    let answers = tg.answers();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers
            .iter()
            .any(|a| a.1 == tg_ingest::bot::texts::NOT_ALLOWED),
        "the press in the other chat is answered with a refusal: {answers:?}"
    );
    assert_eq!(
        tg.sent_to(-6202, "sendMessage").len(),
        1,
        "no new button in the other chat, only the one posted before"
    );
}

#[test]
fn forged_and_foreign_buttons_are_answered_and_ignored() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let _service = TestService::start(settings.clone());
    let msg = post(&settings, -7001);
    let real = tg.button_data(-7001, msg).unwrap();
    tg.push(press(
        -7001,
        msg,
        970,
        None,
        "go:0000000000000001:00112233445566778899",
    ));
    tg.push(press(-7002, 55, 971, None, &real));
    tg.push(press(-7001, 56, 972, None, "like"));
    wait_until(WAIT, "three answers", || tg.answers().len() == 3);
    assert!(tg
        .answers()
        .iter()
        .all(|a| a.1 == tg_ingest::domain::button::texts::NOT_OURS));
    wait_until(WAIT, "every press handled, nothing queued", || {
        settled(data.path(), "airtable")
    });
    assert!(at.rows().is_empty());
    assert_eq!(at.writes(), 0);
    assert!(tg.button_data(-7001, msg).is_some(), "keyboard still shown");
}

#[test]
fn rows_in_the_outbox_survive_a_kill_and_arrive_once_after_restart() {
    let (tg, s3, at, data) = fakes();
    let v = vars(&tg, &s3, &at, data.path(), &[]);
    let settings = settings_from(v.clone());
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&v, &log);
    wait_until(WAIT, "service polling", || {
        !tg.calls("getUpdates").is_empty()
    });
    at.down_for(Duration::from_secs(3600));
    let mut buttons = Vec::new();
    for chat in [-8001, -8002, -8003] {
        let msg = post(&settings, chat);
        tg.push(press(
            chat,
            msg,
            980,
            Some("eve"),
            &tg.button_data(chat, msg).unwrap(),
        ));
        buttons.push(msg);
    }
    wait_until(WAIT, "presses answered", || tg.answers().len() == 3);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(at.rows().is_empty());
    at.down_for(Duration::ZERO);
    let mut child = spawn_binary(&v, &log);
    wait_until(WAIT, "rows after restart", || at.rows().len() == 3);
    wait_until(WAIT, "nothing left to send", || {
        settled(data.path(), "airtable")
    });
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
    assert_eq!(at.rows().len(), 3);
    // Rows are upserted on their merge fields, so the table would hide a row sent twice:
    // the records the base took are counted instead.
    assert_eq!(at.records_taken(), 3, "each row sent once");
}

#[test]
fn the_button_flow_end_to_end_with_the_binary() {
    let (tg, s3, at, data) = fakes();
    let v = vars(&tg, &s3, &at, data.path(), &[]);
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(v.iter().cloned())
        .args([
            "post-button",
            "--chat-id",
            "-9001",
            "--text",
            "Ready?",
            "--label",
            "Поехали",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let msg: i64 = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sent = &tg.calls("sendMessage")[0].params;
    assert_eq!(sent["text"], "Ready?");
    assert_eq!(
        sent["reply_markup"]["inline_keyboard"][0][0]["text"],
        "Поехали"
    );
    let log = data.path().join("service.log");
    let mut child = spawn_binary(&v, &log);
    tg.push(press(
        -9001,
        msg,
        990,
        Some("frank"),
        &tg.button_data(-9001, msg).unwrap(),
    ));
    wait_until(WAIT, "row", || at.rows().len() == 1);
    assert_eq!(field(&at.rows()[0], "username"), "frank");
    assert_eq!(field(&at.rows()[0], "chat_id"), "-9001");
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
}

#[test]
fn go_from_an_admin_posts_the_button_and_others_are_refused() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(
        &tg,
        &s3,
        &at,
        data.path(),
        &[("TG_INGEST__BUTTON__ADMINS", "42,43")],
    ));
    let _service = TestService::start(settings);
    let group = |user: i64, text: &str| {
        serde_json::json!({"message": {
            "message_id": tg.next_user_message_id(),
            "from": {"id": user, "is_bot": false, "first_name": "U"},
            "chat": {"id": -9100, "type": "supergroup", "title": "Team"},
            "date": 1_763_800_000, "text": text}})
    };
    tg.push(group(44, "/go"));
    tg.push(group(42, "/go@ingest_test_bot"));
    tg.push(group(42, "/go@someone_else_bot"));
    wait_until(WAIT, "two messages", || tg.texts_to(-9100).len() == 2);
    let texts = tg.texts_to(-9100);
    assert_eq!(texts[0], tg_ingest::domain::button::texts::ADMINS_ONLY);
    let button = tg
        .calls("sendMessage")
        .into_iter()
        .find(|c| !c.params["reply_markup"].is_null())
        .unwrap();
    assert_eq!(
        button.params["reply_markup"]["inline_keyboard"][0][0]["text"],
        "Поехали"
    );
    wait_until(WAIT, "every update handled", || {
        journal_len(data.path()) == 0
    });
    assert_eq!(
        tg.texts_to(-9100).len(),
        2,
        "/go for another bot is ignored"
    );
}

#[test]
fn a_bad_airtable_token_ends_start_up_with_a_clear_error() {
    let (tg, s3, at, data) = fakes();
    let mut v = vars(&tg, &s3, &at, data.path(), &[]);
    v.push((
        "TG_INGEST__AIRTABLE__TOKEN".into(),
        "patWRONG.token-value".into(),
    ));
    let output = std::process::Command::new(binary())
        .env_clear()
        .envs(v)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Airtable table `tg_actions`"), "{stderr}");
    assert!(stderr.contains("AUTHENTICATION_REQUIRED"), "{stderr}");
    assert!(!stderr.contains("patWRONG.token-value"), "{stderr}");
}

#[test]
fn without_airtable_settings_presses_wait_in_the_outbox() {
    let (tg, s3, data) = (
        FakeTelegram::start(TOKEN),
        TestS3::start(),
        tempfile::tempdir().unwrap(),
    );
    let settings = settings_from(service_env(&tg, &s3, data.path(), &[]));
    assert!(!settings.airtable.is_configured());
    let service = TestService::start(settings.clone());
    let msg = post(&settings, -9200);
    tg.push(press(
        -9200,
        msg,
        995,
        Some("gina"),
        &tg.button_data(-9200, msg).unwrap(),
    ));
    wait_until(WAIT, "answer", || tg.answers().len() == 1);
    assert_eq!(
        tg.answers()[0].1,
        tg_ingest::domain::button::texts::RECORDED
    );
    drop(service);
    let store = tg_ingest::store::Store::open(&data.path().join("state.db")).unwrap();
    let pending = store.outbox_pending("airtable", 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].payload.contains("gina"));
}

#[test]
fn airtable_down_at_start_up_does_not_stop_the_service_and_rows_arrive_later() {
    let (tg, s3, at, data) = fakes();
    at.down_for(Duration::from_secs(8));
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let service = TestService::try_start(settings.clone(), None)
        .expect("Airtable answering 503 must not stop start-up");
    let msg = post(&settings, -9300);
    tg.push(press(
        -9300,
        msg,
        996,
        Some("hana"),
        &tg.button_data(-9300, msg).unwrap(),
    ));
    tg.push(text(&tg, 7001, "hello"));
    wait_until(WAIT, "the greeting while Airtable is down", || {
        tg.texts_to(7001).len() == 1
    });
    wait_until(
        Duration::from_secs(60),
        "the row once Airtable is back",
        || at.rows().len() == 1,
    );
    assert_count(&service.metrics.airtable_rows, 1, "one row counted");
}

#[test]
fn twenty_five_presses_in_five_groups_are_answered_within_a_second_with_limits_on() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(
        &tg,
        &s3,
        &at,
        data.path(),
        &[("TG_INGEST__TELEGRAM__RATE_LIMIT__ENABLED", "true")],
    ));
    assert!(settings.telegram.rate_limit.enabled);
    let buttons: Vec<(i64, i64, String)> = (0..25)
        .map(|i| {
            let chat = -3100 - i % 5;
            let msg = post(&settings, chat);
            (chat, msg, tg.button_data(chat, msg).unwrap())
        })
        .collect();
    let _service = TestService::start(settings);
    // Warm up: the service is polling once a first press is answered.
    let (chat, msg, d) = &buttons[0];
    tg.push(press(*chat, *msg, 799, None, d));
    wait_until(WAIT, "the first answer", || tg.answers().len() == 1);
    let pushed = Instant::now();
    tg.push_many(
        buttons[1..]
            .iter()
            .enumerate()
            .map(|(i, (chat, msg, d))| press(*chat, *msg, 800 + i as i64, None, d))
            .collect(),
    );
    wait_until(WAIT, "every press answered", || tg.answers().len() == 25);
    let slowest = tg
        .calls("answerCallbackQuery")
        .iter()
        .map(|c| c.at.saturating_duration_since(pushed))
        .max()
        .unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest press was answered after {slowest:?}"
    );
    wait_until(WAIT, "25 rows", || at.rows().len() == 25);
}

#[test]
fn retry_after_on_a_press_answer_or_keyboard_edit_holds_that_chat() {
    let (tg, s3, at, data) = fakes();
    let settings = settings_from(vars(&tg, &s3, &at, data.path(), &[]));
    let first = post(&settings, -9500);
    let second = post(&settings, -9501);
    let _service = TestService::start(settings);
    // A 429 on the answer: the keyboard edit of that chat waits it out.
    tg.inject_method("answerCallbackQuery", [Fault::RetryAfter(2)]);
    tg.push(press(
        -9500,
        first,
        70,
        None,
        &tg.button_data(-9500, first).unwrap(),
    ));
    wait_until(WAIT, "the keyboard hidden", || {
        !tg.calls("editMessageReplyMarkup").is_empty()
    });
    let answered = tg.calls("answerCallbackQuery")[0].at;
    let edited = tg.calls("editMessageReplyMarkup")[0].at;
    assert!(
        edited.duration_since(answered) >= Duration::from_millis(1950),
        "keyboard edited {:?} after the 429",
        edited.duration_since(answered)
    );
    // A 429 on the keyboard edit: the retry waits it out.
    tg.inject_method("editMessageReplyMarkup", [Fault::RetryAfter(2)]);
    tg.push(press(
        -9501,
        second,
        71,
        None,
        &tg.button_data(-9501, second).unwrap(),
    ));
    wait_until(WAIT, "the second keyboard hidden", || {
        tg.calls("editMessageReplyMarkup").len() == 3
    });
    let edits = tg.calls("editMessageReplyMarkup");
    let gap = edits[2].at.duration_since(edits[1].at);
    assert!(gap >= Duration::from_millis(1950), "retried after {gap:?}");
}
