//! A stateful fake of the Telegram Bot API on 127.0.0.1, following the real API's documented
//! behaviour: `getUpdates` honours `offset` (confirming older updates) and long-poll `timeout`,
//! answers `409` to a second concurrent poll, checks the token, serves `getFile` and file bytes,
//! and records every call. Faults (`401`, `409`, `429 retry_after`, `500`, garbage JSON) can be
//! injected into the next `getUpdates` answers, or into the next calls of any other method and
//! of file downloads (`download`), which can also be cut short, run long or be paced.
//!
//! Webhooks as documented: `setWebhook` (an HTTPS URL, except on 127.0.0.1 where the tests have
//! no TLS; `secret_token` of 1–256 characters `A-Za-z0-9_-`), `getWebhookInfo` (pending count,
//! last error), `deleteWebhook`, and `getUpdates` answering 409 while a webhook is set. With a
//! webhook set, each pending update is POSTed in order with the `X-Telegram-Bot-Api-Secret-Token`
//! header; an answer other than 2xx (or none) is retried with a growing delay, and the update
//! stays pending until one is 2xx.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// A fault returned by the next `getUpdates` call instead of updates.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An API error with this code and description.
    Status(u16, &'static str),
    /// `429` with `parameters.retry_after`.
    RetryAfter(u64),
    /// A body that is not JSON.
    Garbage,
    /// An empty result at once, ignoring the long-poll timeout.
    EmptyAtOnce,
    /// Downloads only: announces the whole length, sends half, then closes.
    CutShort,
    /// Downloads only: sends 1000 bytes more than `getFile`'s `file_size` said.
    Longer,
}

/// The bytes behind a `file_id`.
#[derive(Clone)]
pub enum FileBody {
    /// Bytes held in memory.
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes of [`pattern_byte`], generated while streaming.
    Pattern(u64),
    /// A file on disk; in local mode `getFile` returns its absolute path.
    Local(PathBuf),
}

/// Byte `i` of a generated file: not periodic at part boundaries.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8 ^ (i >> 20) as u8
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Method name.
    pub method: String,
    /// JSON parameters.
    pub params: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A message the bot sent or edited.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `sendMessage` or `editMessageText`.
    pub method: String,
    /// Chat.
    pub chat_id: i64,
    /// The bot message's id.
    pub message_id: i64,
    /// Text.
    pub text: String,
    /// The user message it replies to, if any.
    pub reply_to: Option<i64>,
    /// The inline keyboard sent with it: rows of `(label, callback_data)`.
    pub keyboard: Keyboard,
}

/// Rows of `(label, callback_data)`.
pub type Keyboard = Vec<Vec<(String, String)>>;

/// The rows of `(label, callback_data)` of a `reply_markup`.
fn keyboard_of(markup: &Value) -> Keyboard {
    markup["inline_keyboard"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|buttons| {
                            buttons
                                .iter()
                                .map(|b| {
                                    (
                                        b["text"].as_str().unwrap_or_default().to_string(),
                                        b["callback_data"].as_str().unwrap_or_default().to_string(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default)]
struct Inner {
    updates: Vec<(i64, Value)>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<Call>,
    sent: Vec<Sent>,
    texts: HashMap<(i64, i64), String>,
    files: HashMap<String, FileBody>,
    faults: VecDeque<Fault>,
    send_faults: VecDeque<Fault>,
    text_faults: Vec<(String, VecDeque<Fault>)>,
    method_faults: HashMap<String, VecDeque<Fault>>,
    file_pace: Option<Duration>,
    polls_in_flight: usize,
    max_polls_in_flight: usize,
    downloads_in_flight: usize,
    max_downloads_in_flight: usize,
    local_mode: bool,
    pushed_at: HashMap<(i64, i64), Instant>,
    latencies: Vec<Duration>,
    record_calls: bool,
    buttons: HashMap<(i64, i64), String>,
    keyboards: HashMap<(i64, i64), Keyboard>,
    answers: Vec<(String, String)>,
    commands: Vec<String>,
    webhook: Option<Webhook>,
    deliveries: Vec<Delivery>,
    webhook_error: Option<(i64, String)>,
    next_delivery: Option<Instant>,
    delivery_failures: u32,
    redeliver: usize,
}

/// The webhook as set with `setWebhook`.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where updates are POSTed.
    pub url: String,
    /// Sent in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret: Option<String>,
    /// As requested (default 40).
    pub max_connections: u64,
    /// As requested.
    pub allowed_updates: Option<Value>,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The update delivered.
    pub update_id: i64,
    /// The HTTP status answered; 0 when no answer came.
    pub status: u16,
}

struct State {
    token: String,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

/// The running fake; stops when dropped.
pub struct FakeTelegram {
    /// Base URL for `telegram.api_url`.
    pub url: String,
    /// The token it accepts.
    pub token: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    deliverer: Option<std::thread::JoinHandle<()>>,
    _server: super::HttpFake,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.deliverer.take() {
            let _ = t.join();
        }
    }
}

/// Posts pending updates to the webhook, one at a time, in order, until `stop` is set.
fn deliver_loop(state: Arc<State>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let next = {
            let i = state.inner.lock().unwrap();
            let due = i.next_delivery.is_none_or(|at| Instant::now() >= at);
            match (&i.webhook, i.updates.first()) {
                (Some(hook), Some((id, update))) if due => {
                    Some((hook.clone(), *id, serde_json::to_vec(update).unwrap()))
                }
                _ => None,
            }
        };
        let Some((hook, id, body)) = next else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let status =
            super::http_post(&hook.url, hook.secret.as_deref(), &body).map_or(0, |(s, _)| s);
        let mut i = state.inner.lock().unwrap();
        i.deliveries.push(Delivery {
            update_id: id,
            status,
        });
        if (200..300).contains(&status) {
            i.delivery_failures = 0;
            i.next_delivery = None;
            if i.redeliver > 0 {
                // As if the answer was lost on the way: the same update is sent again.
                i.redeliver -= 1;
            } else {
                i.updates.retain(|(u, _)| *u != id);
            }
        } else {
            i.delivery_failures += 1;
            let wait = Duration::from_millis(100 << i.delivery_failures.min(4));
            i.next_delivery = Some(Instant::now() + wait);
            let message = if status == 0 {
                "Connection refused".to_string()
            } else {
                format!("Wrong response from the webhook: {status}")
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            i.webhook_error = Some((now, message));
        }
    }
}

fn ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

fn api_error(code: u16, description: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(code).unwrap();
    HttpResponse::build(status)
        .json(json!({"ok": false, "error_code": code, "description": description}))
}

impl FakeTelegram {
    /// Starts a fake accepting `token`.
    pub fn start(token: &str) -> Self {
        let state = Arc::new(State {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                next_update_id: 1000,
                next_message_id: 1,
                record_calls: true,
                ..Inner::default()
            }),
            notify: tokio::sync::Notify::new(),
        });
        let server = super::HttpFake::start(state.clone(), 2, |cfg| {
            cfg.route("/file/{bot}/{path:.*}", web::get().to(file))
                .route("/{bot}/{method}", web::post().to(method));
        });
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let deliverer = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || deliver_loop(state, stop))
        };
        Self {
            url: format!("http://{addr}"),
            token: token.to_string(),
            state,
            stop,
            deliverer: Some(deliverer),
            _server: server,
        }
    }

    /// The webhook set, if any.
    pub fn webhook(&self) -> Option<Webhook> {
        self.with(|i| i.webhook.clone())
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.with(|i| i.deliveries.clone())
    }

    /// The next `n` successful deliveries are made again, as if their answers were lost.
    pub fn redeliver(&self, n: usize) {
        self.with(|i| i.redeliver = n);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.inner.lock().unwrap())
    }

    /// Turns call recording off (for benchmarks) or on.
    pub fn record_calls(&self, on: bool) {
        self.with(|i| i.record_calls = on);
    }

    /// Makes `getFile` return absolute paths for [`FileBody::Local`] files, like `--local`.
    pub fn set_local_mode(&self, on: bool) {
        self.with(|i| i.local_mode = on);
    }

    /// Queues an update built from `body` (the part after `update_id`); returns its id.
    pub fn push(&self, body: Value) -> i64 {
        let id = self.with(|i| {
            let id = i.next_update_id;
            i.next_update_id += 1;
            let mut update = json!({"update_id": id});
            for (k, v) in body.as_object().unwrap() {
                update[k] = v.clone();
            }
            if let Some(m) = update.get("message") {
                let chat = m["chat"]["id"].as_i64().unwrap_or(0);
                let mid = m["message_id"].as_i64().unwrap_or(0);
                i.pushed_at.insert((chat, mid), Instant::now());
            }
            i.updates.push((id, update));
            id
        });
        self.state.notify.notify_waiters();
        id
    }

    /// Queues many updates at once; returns the last id.
    pub fn push_many(&self, bodies: Vec<Value>) -> i64 {
        let mut last = 0;
        for b in bodies {
            last = self.push(b);
        }
        last
    }

    /// Queues raw update JSON verbatim (it must carry its own `update_id`).
    pub fn push_raw(&self, id: i64, raw: Value) {
        self.with(|i| {
            i.next_update_id = i.next_update_id.max(id + 1);
            i.updates.push((id, raw));
        });
        self.state.notify.notify_waiters();
    }

    /// A fresh message id for a user's message.
    pub fn next_user_message_id(&self) -> i64 {
        self.with(|i| {
            i.next_message_id += 1;
            i.next_message_id
        })
    }

    /// Registers a file for `getFile` and download.
    pub fn add_file(&self, file_id: &str, body: FileBody) {
        self.with(|i| i.files.insert(file_id.to_string(), body));
    }

    /// Makes the next `getUpdates` calls fail, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| i.faults.extend(faults));
    }

    /// Makes the next calls of `method` fail, in order (`download` for file downloads).
    pub fn inject_method(&self, method: &str, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| {
            i.method_faults
                .entry(method.to_string())
                .or_default()
                .extend(faults)
        });
    }

    /// Drops the faults still queued for `method`.
    pub fn with_cleared_method_faults(&self, method: &str) {
        self.with(|i| i.method_faults.remove(method));
    }

    /// Sleeps `pace` after each 256 KiB of a generated file download.
    pub fn set_file_pace(&self, pace: Option<Duration>) {
        self.with(|i| i.file_pace = pace);
    }

    /// Makes the next `sendMessage` calls fail, in order.
    pub fn inject_send(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| i.send_faults.extend(faults));
    }

    /// Ids of the user messages in `chat` that got at least one reply.
    pub fn replied_to(&self, chat: i64) -> std::collections::HashSet<i64> {
        self.with(|i| {
            i.sent
                .iter()
                .filter(|s| s.chat_id == chat && s.method == "sendMessage")
                .filter_map(|s| s.reply_to)
                .collect()
        })
    }

    /// The `callback_data` of the button on a message, while its keyboard is shown.
    pub fn button_data(&self, chat: i64, message_id: i64) -> Option<String> {
        self.with(|i| i.buttons.get(&(chat, message_id)).cloned())
    }

    /// The inline keyboard a message has now: rows of `(label, callback_data)`.
    pub fn keyboard(&self, chat: i64, message_id: i64) -> Keyboard {
        self.with(|i| {
            i.keyboards
                .get(&(chat, message_id))
                .cloned()
                .unwrap_or_default()
        })
    }

    /// The current text of a bot message.
    pub fn text_of(&self, chat: i64, message_id: i64) -> Option<String> {
        self.with(|i| i.texts.get(&(chat, message_id)).cloned())
    }

    /// The commands of the last `setMyCommands`.
    pub fn commands(&self) -> Vec<String> {
        self.with(|i| i.commands.clone())
    }

    /// Messages sent (not edits) to a chat, oldest first.
    pub fn messages_to(&self, chat: i64) -> Vec<Sent> {
        self.with(|i| {
            i.sent
                .iter()
                .filter(|s| s.chat_id == chat && s.method == "sendMessage")
                .cloned()
                .collect()
        })
    }

    /// Texts of `answerCallbackQuery` calls, with the query ids.
    pub fn answers(&self) -> Vec<(String, String)> {
        self.with(|i| i.answers.clone())
    }

    /// All recorded calls of `method`.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.with(|i| {
            i.calls
                .iter()
                .filter(|c| c.method == method)
                .cloned()
                .collect()
        })
    }

    /// Makes the next `sendMessage` calls whose text contains `part` answer with `faults`.
    pub fn inject_text_faults(&self, part: &str, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| {
            i.text_faults
                .push((part.to_string(), faults.into_iter().collect()))
        });
    }

    /// Texts sent with `sendMessage` to `chat`, in order.
    pub fn texts_to(&self, chat: i64) -> Vec<String> {
        self.sent_to(chat, "sendMessage")
    }

    /// Texts of `method` calls to `chat`, in order.
    pub fn sent_to(&self, chat: i64, method: &str) -> Vec<String> {
        self.with(|i| {
            i.sent
                .iter()
                .filter(|s| s.chat_id == chat && s.method == method)
                .map(|s| s.text.clone())
                .collect()
        })
    }

    /// Number of `sendMessage` calls.
    pub fn sent_count(&self) -> usize {
        self.with(|i| i.sent.iter().filter(|s| s.method == "sendMessage").count())
    }

    /// The most `getUpdates` calls that were ever in flight at once.
    pub fn max_concurrent_polls(&self) -> usize {
        self.with(|i| i.max_polls_in_flight)
    }

    /// Most downloads of generated files ([`FileBody::Pattern`]) streaming at once so far.
    pub fn max_concurrent_downloads(&self) -> usize {
        self.with(|i| i.max_downloads_in_flight)
    }

    /// Updates not yet confirmed by an `offset`.
    pub fn pending_updates(&self) -> usize {
        self.with(|i| i.updates.len())
    }

    /// Latencies from an update being queued to the first reply to its message.
    pub fn take_latencies(&self) -> Vec<Duration> {
        self.with(|i| std::mem::take(&mut i.latencies))
    }
}

fn check_token(state: &State, bot: &str) -> bool {
    bot.strip_prefix("bot") == Some(state.token.as_str())
}

async fn method(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let bot = req.match_info().get("bot").unwrap_or_default();
    let name = req
        .match_info()
        .get("method")
        .unwrap_or_default()
        .to_string();
    if !check_token(&state, bot) {
        return api_error(401, "Unauthorized");
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return api_error(400, "Bad Request: invalid JSON"),
        }
    };
    {
        let mut i = state.inner.lock().unwrap();
        if i.record_calls {
            i.calls.push(Call {
                method: name.clone(),
                params: params.clone(),
                at: Instant::now(),
            });
        }
        if name != "getUpdates" {
            if let Some(f) = i.method_faults.get_mut(&name).and_then(VecDeque::pop_front) {
                return fault_response(f);
            }
        }
    }
    match name.as_str() {
        "getMe" => ok(
            json!({"id": 4242, "is_bot": true, "first_name": "Ingest", "username": "ingest_test_bot"}),
        ),
        "deleteWebhook" => {
            let mut i = state.inner.lock().unwrap();
            i.webhook = None;
            if params["drop_pending_updates"].as_bool() == Some(true) {
                i.updates.clear();
            }
            ok(json!(true))
        }
        "setWebhook" => set_webhook(params, &state),
        "getWebhookInfo" => {
            let i = state.inner.lock().unwrap();
            let mut info = json!({
                "url": i.webhook.as_ref().map_or("", |w| w.url.as_str()),
                "has_custom_certificate": false,
                "pending_update_count": i.updates.len(),
            });
            if let Some(w) = &i.webhook {
                info["max_connections"] = json!(w.max_connections);
                if let Some(allowed) = &w.allowed_updates {
                    info["allowed_updates"] = allowed.clone();
                }
                if let Some((at, message)) = &i.webhook_error {
                    info["last_error_date"] = json!(at);
                    info["last_error_message"] = json!(message);
                }
            }
            ok(info)
        }
        "setMyCommands" => {
            let Some(list) = params["commands"].as_array() else {
                return api_error(400, "Bad Request: parameter \"commands\" is required");
            };
            let names = list
                .iter()
                .map(|c| c["command"].as_str().unwrap_or_default().to_string())
                .collect();
            state.inner.lock().unwrap().commands = names;
            ok(json!(true))
        }
        "getUpdates" => get_updates(params, state).await,
        "sendMessage" => send_message(params, &state),
        "editMessageText" => edit_message(params, &state),
        "answerCallbackQuery" => {
            let id = params["callback_query_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let text = params["text"].as_str().unwrap_or_default().to_string();
            state.inner.lock().unwrap().answers.push((id, text));
            ok(json!(true))
        }
        "editMessageReplyMarkup" => {
            let key = (
                params["chat_id"].as_i64().unwrap_or(0),
                params["message_id"].as_i64().unwrap_or(0),
            );
            let mut i = state.inner.lock().unwrap();
            match i.buttons.remove(&key) {
                Some(_) => ok(json!({"message_id": key.1, "chat": {"id": key.0, "type": "group"}, "date": 1})),
                None => api_error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"),
            }
        }
        "getFile" => get_file(params, &state),
        _ => api_error(404, "Not Found: method not found"),
    }
}

fn set_webhook(params: Value, state: &State) -> HttpResponse {
    let url = params["url"].as_str().unwrap_or_default().to_string();
    let mut i = state.inner.lock().unwrap();
    if url.is_empty() {
        i.webhook = None;
        return ok(json!(true));
    }
    let loopback = url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:");
    if !url.starts_with("https://") && !loopback {
        return api_error(
            400,
            "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
        );
    }
    let secret = params["secret_token"].as_str().map(str::to_string);
    if let Some(s) = &secret {
        if s.is_empty()
            || s.len() > 256
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return api_error(
                400,
                "Bad Request: secret token contains unallowed characters",
            );
        }
    }
    let max_connections = params["max_connections"].as_u64().unwrap_or(40);
    if !(1..=100).contains(&max_connections) {
        return api_error(400, "Bad Request: bad max_connections");
    }
    if params["drop_pending_updates"].as_bool() == Some(true) {
        i.updates.clear();
    }
    i.webhook = Some(Webhook {
        url,
        secret,
        max_connections,
        allowed_updates: params.get("allowed_updates").cloned(),
    });
    i.webhook_error = None;
    ok(json!(true))
}

async fn get_updates(params: Value, state: web::Data<State>) -> HttpResponse {
    if state.inner.lock().unwrap().webhook.is_some() {
        return api_error(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        );
    }
    let offset = params["offset"].as_i64().unwrap_or(0);
    let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    {
        let mut i = state.inner.lock().unwrap();
        i.polls_in_flight += 1;
        i.max_polls_in_flight = i.max_polls_in_flight.max(i.polls_in_flight);
        if i.polls_in_flight > 1 {
            i.polls_in_flight -= 1;
            return api_error(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
        }
    }
    let fault = state.inner.lock().unwrap().faults.pop_front();
    let response = match fault {
        Some(f) => fault_response(f),
        None => poll(offset, limit, timeout, &state).await,
    };
    state.inner.lock().unwrap().polls_in_flight -= 1;
    response
}

fn fault_response(fault: Fault) -> HttpResponse {
    match fault {
        Fault::Status(code, text) => api_error(code, text),
        Fault::RetryAfter(s) => HttpResponse::TooManyRequests().json(json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after {s}"),
            "parameters": {"retry_after": s}
        })),
        Fault::Garbage => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"ok\":tru"),
        Fault::EmptyAtOnce => ok(json!([])),
        Fault::CutShort | Fault::Longer => api_error(500, "Internal Server Error"),
    }
}

async fn poll(offset: i64, limit: usize, timeout: Duration, state: &State) -> HttpResponse {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = state.notify.notified();
        {
            let mut i = state.inner.lock().unwrap();
            if offset > 0 {
                i.updates.retain(|(id, _)| *id >= offset);
            }
            let batch: Vec<Value> = i
                .updates
                .iter()
                .filter(|(id, _)| *id >= offset)
                .take(limit)
                .map(|(_, u)| u.clone())
                .collect();
            if !batch.is_empty() || Instant::now() >= deadline {
                return ok(Value::Array(batch));
            }
        }
        let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), notified)
            .await;
    }
}

fn send_message(params: Value, state: &State) -> HttpResponse {
    let Some(chat_id) = params["chat_id"].as_i64() else {
        return api_error(400, "Bad Request: chat not found");
    };
    let text = params["text"].as_str().unwrap_or_default().to_string();
    if text.is_empty() {
        return api_error(400, "Bad Request: message text is empty");
    }
    let mut i = state.inner.lock().unwrap();
    if let Some(fault) = i.send_faults.pop_front() {
        return fault_response(fault);
    }
    let matching = i
        .text_faults
        .iter_mut()
        .find(|(part, _)| text.contains(part.as_str()))
        .and_then(|(_, faults)| faults.pop_front());
    if let Some(fault) = matching {
        return fault_response(fault);
    }
    i.next_message_id += 1;
    let message_id = i.next_message_id;
    let reply_to = params["reply_parameters"]["message_id"].as_i64();
    if let Some(reply_to) = reply_to {
        if let Some(at) = i.pushed_at.remove(&(chat_id, reply_to)) {
            i.latencies.push(at.elapsed());
        }
    }
    i.texts.insert((chat_id, message_id), text.clone());
    if let Some(data) = params["reply_markup"]["inline_keyboard"][0][0]["callback_data"].as_str() {
        i.buttons.insert((chat_id, message_id), data.to_string());
    }
    let keyboard = keyboard_of(&params["reply_markup"]);
    i.keyboards.insert((chat_id, message_id), keyboard.clone());
    i.sent.push(Sent {
        method: "sendMessage".into(),
        chat_id,
        message_id,
        text: text.clone(),
        reply_to,
        keyboard,
    });
    ok(
        json!({"message_id": message_id, "chat": {"id": chat_id, "type": "private"}, "date": 1_700_000_000, "text": text}),
    )
}

fn edit_message(params: Value, state: &State) -> HttpResponse {
    let chat_id = params["chat_id"].as_i64().unwrap_or(0);
    let message_id = params["message_id"].as_i64().unwrap_or(0);
    let text = params["text"].as_str().unwrap_or_default().to_string();
    let mut i = state.inner.lock().unwrap();
    match i.texts.get(&(chat_id, message_id)) {
        None => return api_error(400, "Bad Request: message to edit not found"),
        Some(old) if *old == text => {
            return api_error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
        }
        Some(_) => {}
    }
    i.texts.insert((chat_id, message_id), text.clone());
    // Without a reply_markup, an edit removes the inline keyboard.
    let keyboard = keyboard_of(&params["reply_markup"]);
    i.keyboards.insert((chat_id, message_id), keyboard.clone());
    i.sent.push(Sent {
        method: "editMessageText".into(),
        chat_id,
        message_id,
        text: text.clone(),
        reply_to: None,
        keyboard,
    });
    ok(
        json!({"message_id": message_id, "chat": {"id": chat_id, "type": "private"}, "date": 1_700_000_000, "text": text}),
    )
}

fn get_file(params: Value, state: &State) -> HttpResponse {
    let file_id = params["file_id"].as_str().unwrap_or_default();
    let i = state.inner.lock().unwrap();
    let Some(body) = i.files.get(file_id) else {
        return api_error(400, "Bad Request: invalid file_id");
    };
    let (size, path) = match body {
        FileBody::Bytes(b) => (b.len() as u64, format!("documents/{file_id}")),
        FileBody::Pattern(n) => (*n, format!("documents/{file_id}")),
        FileBody::Local(p) => {
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let path = if i.local_mode {
                p.display().to_string()
            } else {
                format!("documents/{file_id}")
            };
            (size, path)
        }
    };
    ok(
        json!({"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_size": size, "file_path": path}),
    )
}

async fn file(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let bot = req.match_info().get("bot").unwrap_or_default();
    if !check_token(&state, bot) {
        return api_error(401, "Unauthorized");
    }
    let path = req.match_info().get("path").unwrap_or_default();
    let file_id = path.rsplit('/').next().unwrap_or_default();
    let (body, fault, pace) = {
        let mut i = state.inner.lock().unwrap();
        if i.record_calls {
            i.calls.push(Call {
                method: "download".into(),
                params: json!({"file_id": file_id}),
                at: Instant::now(),
            });
        }
        let fault = i
            .method_faults
            .get_mut("download")
            .and_then(VecDeque::pop_front);
        (i.files.get(file_id).cloned(), fault, i.file_pace)
    };
    let bytes_of = |body: &FileBody| -> Option<Vec<u8>> {
        match body {
            FileBody::Bytes(b) => Some(b.as_ref().clone()),
            FileBody::Local(p) => std::fs::read(p).ok(),
            FileBody::Pattern(len) => Some((0..*len).map(pattern_byte).collect()),
        }
    };
    match (fault, &body) {
        (Some(Fault::CutShort), Some(b)) => {
            let all = bytes_of(b).unwrap_or_default();
            let len = all.len() as u64;
            let half = Bytes::from(all[..all.len() / 2].to_vec());
            let chunks = futures_util::stream::iter([Ok::<_, actix_web::Error>(half)]);
            return HttpResponse::Ok().no_chunking(len).streaming(chunks);
        }
        (Some(Fault::Longer), Some(b)) => {
            let mut all = bytes_of(b).unwrap_or_default();
            all.extend(std::iter::repeat_n(7u8, 1000));
            return HttpResponse::Ok().body(all);
        }
        (Some(f), _) => return fault_response(f),
        (None, _) => {}
    }
    match body {
        None => api_error(404, "Not Found"),
        Some(FileBody::Bytes(b)) => HttpResponse::Ok().body(b.as_ref().clone()),
        Some(FileBody::Local(p)) => match std::fs::read(p) {
            Ok(b) => HttpResponse::Ok().body(b),
            Err(_) => api_error(404, "Not Found"),
        },
        Some(FileBody::Pattern(len)) => {
            const CHUNK: u64 = 256 * 1024;
            let streaming = InFlight::start(state.clone().into_inner());
            let chunks =
                futures_util::stream::iter(0..len.div_ceil(CHUNK)).then(move |c| async move {
                    if let Some(pace) = pace {
                        tokio::time::sleep(pace).await;
                    }
                    let start = c * CHUNK;
                    let end = (start + CHUNK).min(len);
                    let v: Vec<u8> = (start..end).map(pattern_byte).collect();
                    Ok::<_, actix_web::Error>(Bytes::from(v))
                });
            // Counted in flight until the body is sent or dropped.
            let chunks = chunks.map(move |chunk| {
                let _ = &streaming;
                chunk
            });
            HttpResponse::Ok().no_chunking(len).streaming(chunks)
        }
    }
}

/// A download of a generated file in flight: counted while it lives.
struct InFlight(Arc<State>);

impl InFlight {
    fn start(state: Arc<State>) -> Self {
        {
            let mut i = state.inner.lock().unwrap();
            i.downloads_in_flight += 1;
            i.max_downloads_in_flight = i.max_downloads_in_flight.max(i.downloads_in_flight);
        }
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inner.lock().unwrap().downloads_in_flight -= 1;
    }
}
