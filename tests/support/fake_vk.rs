//! A stateful fake of VK's API for one community on 127.0.0.1, following VK's documented
//! behaviour:
//!
//! - methods answer HTTP 200 with `{"response": …}` or `{"error": {"error_code", "error_msg"}}`
//!   (5 for a bad token, 15 for another community, 100 for a disabled long poll);
//! - `groups.getById`, `groups.getLongPollSettings`, `groups.getLongPollServer` (a new key each
//!   time, the old one then expires);
//! - the long-poll server (`/lp?act=a_check&key&ts&wait`): events from `ts` on, held up to
//!   `wait` seconds; `{"failed": 2}` for an expired key; `failed` 1/2/3 can be injected;
//! - `messages.send` with `random_id` de-duplication (a repeated id is not delivered again),
//!   `peer_id` or `peer_ids`; `messages.edit` by `message_id` or `conversation_message_id`;
//!   `messages.sendMessageEventAnswer`;
//! - document URLs (`/doc/<id>?hash=…`) with failure injection;
//! - error injection into the next calls of any method.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The community's id.
pub const VK_GROUP: i64 = 77;
/// The token the fake accepts.
pub const VK_TOKEN: &str = "vk1.a.test-community-token";

/// A message the community sent (edits change `text` and `keyboard` in place).
#[derive(Debug, Clone)]
pub struct VkSent {
    /// The dialog.
    pub peer_id: i64,
    /// Its id.
    pub message_id: i64,
    /// Its number in the dialog.
    pub cmid: i64,
    /// Text now.
    pub text: String,
    /// Keyboard JSON now, if any.
    pub keyboard: Option<Value>,
    /// The `random_id` it was sent with.
    pub random_id: i64,
    /// Times it was edited.
    pub edits: u32,
}

#[derive(Default)]
struct Inner {
    long_poll_enabled: bool,
    message_new_on: bool,
    key: String,
    keys_issued: u32,
    events: Vec<Value>,
    first_kept: usize,
    poll_failures: VecDeque<i64>,
    method_errors: HashMap<String, VecDeque<(i64, String)>>,
    sent: Vec<VkSent>,
    seen_random: HashMap<i64, i64>,
    answers: Vec<(String, String)>,
    docs: HashMap<i64, Vec<u8>>,
    doc_faults: VecDeque<u16>,
    doc_pace: Option<Duration>,
    next_message_id: i64,
    next_user_message: i64,
    calls: Vec<(String, Instant)>,
    polls_in_flight: usize,
    max_polls_in_flight: usize,
}

struct State {
    base: Mutex<String>,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

/// The running fake; stops when dropped.
pub struct FakeVk {
    /// Base URL of the methods, for `vk.api_url`.
    pub api_url: String,
    state: Arc<State>,
    _server: super::HttpFake,
}

fn response(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "response": value }))
}

fn vk_error(code: i64, message: &str) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"error": {"error_code": code, "error_msg": message, "request_params": []}}))
}

impl FakeVk {
    /// Starts a fake community with the Bots Long Poll API on and `message_new` sent.
    pub fn start() -> Self {
        let state = Arc::new(State {
            base: Mutex::new(String::new()),
            inner: Mutex::new(Inner {
                long_poll_enabled: true,
                message_new_on: true,
                next_message_id: 1000,
                next_user_message: 1,
                ..Inner::default()
            }),
            notify: tokio::sync::Notify::new(),
        });
        let server = super::HttpFake::start(state.clone(), 4, |cfg| {
            cfg.route("/method/{name}", web::post().to(method))
                .route("/method/{name}", web::get().to(method))
                .route("/lp", web::get().to(long_poll))
                .route("/doc/{id}", web::get().to(doc));
        });
        let base = format!("http://{}", server.addr);
        *state.base.lock().unwrap() = base.clone();
        Self {
            api_url: format!("{base}/method"),
            state,
            _server: server,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.state.inner.lock().unwrap())
    }

    /// Turns the Bots Long Poll API (and its `message_new` events) on or off.
    pub fn set_long_poll(&self, enabled: bool, message_new: bool) {
        self.with(|i| {
            i.long_poll_enabled = enabled;
            i.message_new_on = message_new;
        });
    }

    /// Queues a community event; answers its `event_id`.
    pub fn push_event(&self, kind: &str, object: Value) -> String {
        let id = self.with(|i| {
            let id = format!("ev{:08x}", i.events.len() + 1);
            i.events.push(json!({"group_id": VK_GROUP, "type": kind, "event_id": id, "v": "5.199", "object": object}));
            id
        });
        self.state.notify.notify_waiters();
        id
    }

    /// A private `message_new` from `user` with `text` and `attachments`.
    pub fn push_message(&self, user: i64, text: &str, attachments: Value) -> String {
        let id = self.with(|i| {
            i.next_user_message += 1;
            i.next_user_message
        });
        self.push_event(
            "message_new",
            json!({"message": {"id": id, "date": 1_763_800_000, "from_id": user, "peer_id": user,
                "text": text, "attachments": attachments, "conversation_message_id": id, "out": 0},
                "client_info": {"button_actions": ["text", "callback"], "keyboard": true, "inline_keyboard": true}}),
        )
    }

    /// Registers a document's bytes; answers its attachment JSON.
    pub fn doc_attachment(&self, user: i64, title: &str, bytes: &[u8]) -> Value {
        let base = self.state.base.lock().unwrap().clone();
        let id = self.with(|i| {
            let id = 500 + i.docs.len() as i64;
            i.docs.insert(id, bytes.to_vec());
            id
        });
        let ext = title.rsplit('.').next().unwrap_or("");
        json!([{"type": "doc", "doc": {"id": id, "owner_id": user, "title": title,
            "size": bytes.len(), "ext": ext, "date": 1_763_800_000, "type": 1,
            "url": format!("{base}/doc/{id}?hash=secret{id}&dl=signature")}}])
    }

    /// A press on a callback button of message `cmid` in `user`'s dialog.
    pub fn push_press(&self, user: i64, cmid: i64, payload: Value) -> String {
        let event_id = format!("press-{user}-{cmid}-{}", self.with(|i| i.events.len()));
        self.push_event(
            "message_event",
            json!({"user_id": user, "peer_id": user, "event_id": event_id,
                "payload": payload, "conversation_message_id": cmid}),
        )
    }

    /// Makes the next long polls answer `failed` with these codes.
    pub fn inject_poll_failures(&self, codes: impl IntoIterator<Item = i64>) {
        self.with(|i| i.poll_failures.extend(codes));
        self.state.notify.notify_waiters();
    }

    /// Injected long-poll failures not answered yet.
    pub fn pending_poll_failures(&self) -> usize {
        self.with(|i| i.poll_failures.len())
    }

    /// Makes the next calls of `method` fail with these VK errors.
    pub fn inject_errors(
        &self,
        method: &str,
        errors: impl IntoIterator<Item = (i64, &'static str)>,
    ) {
        self.with(|i| {
            i.method_errors
                .entry(method.to_string())
                .or_default()
                .extend(errors.into_iter().map(|(c, m)| (c, m.to_string())))
        });
    }

    /// Makes the next document downloads answer these HTTP statuses.
    pub fn inject_doc_faults(&self, statuses: impl IntoIterator<Item = u16>) {
        self.with(|i| i.doc_faults.extend(statuses));
    }

    /// Serves documents in chunks of 64 KiB, one every `pace`.
    pub fn set_doc_pace(&self, pace: Option<Duration>) {
        self.with(|i| i.doc_pace = pace);
    }

    /// Messages sent to a dialog, in order, as they are now.
    pub fn sent_to(&self, peer: i64) -> Vec<VkSent> {
        self.with(|i| {
            i.sent
                .iter()
                .filter(|m| m.peer_id == peer)
                .cloned()
                .collect()
        })
    }

    /// Texts sent to a dialog, in order.
    pub fn texts_to(&self, peer: i64) -> Vec<String> {
        self.sent_to(peer).into_iter().map(|m| m.text).collect()
    }

    /// Answers to presses: (event_id, snackbar text).
    pub fn answers(&self) -> Vec<(String, String)> {
        self.with(|i| i.answers.clone())
    }

    /// Calls of `method` so far.
    pub fn calls(&self, method: &str) -> usize {
        self.with(|i| i.calls.iter().filter(|(m, _)| m == method).count())
    }

    /// When each call of `method` (or `download`, `long poll`) arrived, in order.
    pub fn call_times(&self, method: &str) -> Vec<Instant> {
        self.with(|i| {
            i.calls
                .iter()
                .filter(|(m, _)| m == method)
                .map(|(_, at)| *at)
                .collect()
        })
    }

    /// Long-poll keys issued so far.
    pub fn keys_issued(&self) -> u32 {
        self.with(|i| i.keys_issued)
    }

    /// The most long polls that were open at once.
    pub fn max_concurrent_polls(&self) -> usize {
        self.with(|i| i.max_polls_in_flight)
    }

    /// The most calls (methods, polls, downloads) that started within any one second.
    pub fn max_calls_per_second(&self) -> usize {
        self.with(|i| {
            let times: Vec<Instant> = i.calls.iter().map(|(_, t)| *t).collect();
            (0..times.len())
                .map(|a| {
                    times[a..]
                        .iter()
                        .take_while(|t| t.duration_since(times[a]) < Duration::from_secs(1))
                        .count()
                })
                .max()
                .unwrap_or(0)
        })
    }
}

fn params(req: &HttpRequest, body: &Bytes) -> HashMap<String, String> {
    let mut all: HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    all.extend(url::form_urlencoded::parse(body).into_owned());
    all
}

async fn method(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or_default().to_string();
    let p = params(&req, &body);
    let mut i = state.inner.lock().unwrap();
    i.calls.push((name.clone(), Instant::now()));
    if p.get("access_token").map(String::as_str) != Some(VK_TOKEN) {
        return vk_error(5, "User authorization failed: invalid access_token (4).");
    }
    if p.get("v").map(String::as_str) != Some("5.199") {
        return vk_error(8, "Invalid request: versions below 5.81 are deprecated");
    }
    if let Some((code, message)) = i.method_errors.get_mut(&name).and_then(VecDeque::pop_front) {
        return vk_error(code, &message);
    }
    let group_ok = p.get("group_id").and_then(|g| g.parse::<i64>().ok()) == Some(VK_GROUP);
    match name.as_str() {
        "groups.getById" => {
            if !group_ok {
                return vk_error(15, "Access denied: no access to this group");
            }
            response(
                json!({"groups": [{"id": VK_GROUP, "name": "Test community", "screen_name": "club77", "type": "group"}], "profiles": []}),
            )
        }
        "groups.getLongPollSettings" => {
            if !group_ok {
                return vk_error(15, "Access denied: no access to this group");
            }
            response(
                json!({"is_enabled": i.long_poll_enabled, "api_version": "5.199",
                "events": {"message_new": i32::from(i.message_new_on), "message_event": 1}}),
            )
        }
        "groups.getLongPollServer" => {
            if !group_ok {
                return vk_error(15, "Access denied: no access to this group");
            }
            if !i.long_poll_enabled {
                return vk_error(100, "One of the parameters specified was missing or invalid: Bots Long Poll API is disabled");
            }
            i.keys_issued += 1;
            i.key = format!("key{}", i.keys_issued);
            let base = state.base.lock().unwrap().clone();
            response(
                json!({"key": i.key, "server": format!("{base}/lp"), "ts": (i.events.len() + 1).to_string()}),
            )
        }
        "messages.send" => {
            let Some(peer) = p
                .get("peer_id")
                .or(p.get("peer_ids"))
                .and_then(|v| v.parse::<i64>().ok())
            else {
                return vk_error(
                    100,
                    "One of the parameters specified was missing or invalid: peer_id",
                );
            };
            let Some(random_id) = p.get("random_id").and_then(|v| v.parse::<i64>().ok()) else {
                return vk_error(100, "One of the parameters specified was missing or invalid: random_id is a required parameter");
            };
            let text = p.get("message").cloned().unwrap_or_default();
            if text.is_empty() {
                return vk_error(
                    100,
                    "One of the parameters specified was missing or invalid: message is empty",
                );
            }
            let keyboard = match p.get("keyboard").map(|k| serde_json::from_str::<Value>(k)) {
                Some(Ok(k)) => Some(k),
                Some(Err(_)) => return vk_error(911, "Keyboard format is invalid"),
                None => None,
            };
            let existing = (random_id != 0)
                .then(|| i.seen_random.get(&random_id).copied())
                .flatten();
            let message_id = match existing {
                Some(id) => id,
                None => {
                    i.next_message_id += 1;
                    let id = i.next_message_id;
                    let cmid = i.sent.iter().filter(|m| m.peer_id == peer).count() as i64 + 1;
                    i.sent.push(VkSent {
                        peer_id: peer,
                        message_id: id,
                        cmid,
                        text,
                        keyboard,
                        random_id,
                        edits: 0,
                    });
                    if random_id != 0 {
                        i.seen_random.insert(random_id, id);
                    }
                    id
                }
            };
            let cmid = i
                .sent
                .iter()
                .find(|m| m.message_id == message_id)
                .map_or(0, |m| m.cmid);
            if p.contains_key("peer_ids") {
                response(
                    json!([{"peer_id": peer, "message_id": message_id, "conversation_message_id": cmid}]),
                )
            } else {
                response(json!(message_id))
            }
        }
        "messages.edit" => {
            let peer = p
                .get("peer_id")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            let by_id = p.get("message_id").and_then(|v| v.parse::<i64>().ok());
            let by_cmid = p
                .get("conversation_message_id")
                .and_then(|v| v.parse::<i64>().ok());
            let text = p.get("message").cloned().unwrap_or_default();
            let keyboard = p.get("keyboard").and_then(|k| serde_json::from_str(k).ok());
            let found = i.sent.iter_mut().find(|m| {
                m.peer_id == peer && (by_id == Some(m.message_id) || by_cmid == Some(m.cmid))
            });
            match found {
                Some(m) => {
                    m.text = text;
                    m.keyboard = keyboard;
                    m.edits += 1;
                    response(json!(1))
                }
                None => vk_error(
                    100,
                    "One of the parameters specified was missing or invalid: message not found",
                ),
            }
        }
        "messages.sendMessageEventAnswer" => {
            let event = p.get("event_id").cloned().unwrap_or_default();
            let data: Value = p
                .get("event_data")
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            i.answers
                .push((event, data["text"].as_str().unwrap_or_default().to_string()));
            response(json!(1))
        }
        _ => vk_error(3, "Unknown method passed"),
    }
}

async fn long_poll(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let p = params(&req, &Bytes::new());
    let wait = Duration::from_secs(p.get("wait").and_then(|w| w.parse().ok()).unwrap_or(0));
    let ts: usize = p.get("ts").and_then(|t| t.parse().ok()).unwrap_or(0);
    {
        let mut i = state.inner.lock().unwrap();
        i.calls.push(("long poll".into(), Instant::now()));
        if p.get("act").map(String::as_str) != Some("a_check") {
            return HttpResponse::Ok().json(json!({"failed": 3}));
        }
        if let Some(code) = i.poll_failures.pop_front() {
            return HttpResponse::Ok().json(match code {
                1 => json!({"failed": 1, "ts": (i.events.len() + 1).to_string()}),
                c => json!({"failed": c}),
            });
        }
        if p.get("key") != Some(&i.key) {
            return HttpResponse::Ok().json(json!({"failed": 2}));
        }
        if ts == 0 || ts < i.first_kept + 1 {
            return HttpResponse::Ok()
                .json(json!({"failed": 1, "ts": (i.events.len() + 1).to_string()}));
        }
        i.polls_in_flight += 1;
        i.max_polls_in_flight = i.max_polls_in_flight.max(i.polls_in_flight);
    }
    let deadline = Instant::now() + wait;
    let answer = loop {
        let notified = state.notify.notified();
        {
            let i = state.inner.lock().unwrap();
            let ready: Vec<Value> = i.events.iter().skip(ts - 1).cloned().collect();
            if !ready.is_empty() || Instant::now() >= deadline || !i.poll_failures.is_empty() {
                break json!({"ts": (ts + ready.len()).to_string(), "updates": ready});
            }
        }
        let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), notified)
            .await;
    };
    state.inner.lock().unwrap().polls_in_flight -= 1;
    HttpResponse::Ok().json(answer)
}

async fn doc(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let id: i64 = req
        .match_info()
        .get("id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p = params(&req, &Bytes::new());
    let mut i = state.inner.lock().unwrap();
    i.calls.push(("download".into(), Instant::now()));
    if p.get("hash") != Some(&format!("secret{id}")) {
        return HttpResponse::Forbidden().body("bad hash");
    }
    if let Some(status) = i.doc_faults.pop_front() {
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        return HttpResponse::build(status).body("injected");
    }
    let pace = i.doc_pace;
    match i.docs.get(&id).cloned() {
        Some(bytes) => match pace {
            None => HttpResponse::Ok().body(bytes),
            Some(pace) => {
                let len = bytes.len() as u64;
                let chunks: Vec<Bytes> = bytes
                    .chunks(64 * 1024)
                    .map(Bytes::copy_from_slice)
                    .collect();
                let stream = futures_util::stream::iter(chunks).then(move |c| async move {
                    tokio::time::sleep(pace).await;
                    Ok::<_, actix_web::Error>(c)
                });
                HttpResponse::Ok().no_chunking(len).streaming(stream)
            }
        },
        None => HttpResponse::NotFound().body("no such document"),
    }
}
