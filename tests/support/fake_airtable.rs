//! A stateful fake of the Airtable Web API on 127.0.0.1 that enforces what the real API
//! documents: bearer token, at most 10 records per request (422), at most 5 requests per second
//! per base (429), known field names (422 `UNKNOWN_FIELD_NAME`), ISO 8601 dates (422
//! `INVALID_VALUE_FOR_COLUMN`) and upsert semantics. It can be taken down, inject 429/500
//! storms, store a batch and then lose the response, and refuse rows with a given value.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

/// A fault for the next write requests.
#[derive(Debug, Clone)]
pub enum AirtableFault {
    /// Answer with this status (and a matching error body).
    Status(u16),
    /// Store the records, then answer 500 as if the response was lost.
    LoseResponse,
}

/// A stored row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Record id.
    pub id: String,
    /// Its fields.
    pub fields: Map<String, Value>,
}

#[derive(Default)]
struct Inner {
    rows: Vec<Row>,
    requests: Vec<Instant>,
    writes: usize,
    records_taken: usize,
    rate_violations: usize,
    answers: Vec<(Instant, u16)>,
    faults: VecDeque<AirtableFault>,
    down_until: Option<Instant>,
    refuse_value: Option<String>,
    next_id: u64,
}

struct State {
    token: String,
    base: String,
    table: String,
    fields: Vec<&'static str>,
    date_fields: Vec<&'static str>,
    inner: Mutex<Inner>,
}

/// The running fake; stops when dropped.
pub struct FakeAirtable {
    /// Base URL for `airtable.api_url`.
    pub url: String,
    /// Accepted token.
    pub token: String,
    /// Base id.
    pub base: String,
    /// Table name.
    pub table: String,
    state: Arc<State>,
    _server: super::HttpFake,
}

fn error(status: u16, kind: &str, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status).unwrap();
    if status == 429 {
        return HttpResponse::build(code)
            .json(json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}));
    }
    HttpResponse::build(code).json(json!({"error": {"type": kind, "message": message}}))
}

impl FakeAirtable {
    /// Starts a fake with table `tg_actions` and the original columns.
    pub fn start() -> Self {
        let state = Arc::new(State {
            token: "patFAKE.secret-airtable-token".into(),
            base: "appFAKEBASE123".into(),
            table: "tg_actions".into(),
            fields: vec![
                "chat_id",
                "username",
                "triggered_at",
                "event_type",
                "reporter_name",
            ],
            date_fields: vec!["triggered_at"],
            inner: Mutex::new(Inner::default()),
        });
        let server = super::HttpFake::start(state.clone(), 1, |cfg| {
            cfg.route("/v0/{base}/{table}", web::patch().to(upsert))
                .route("/v0/{base}/{table}", web::get().to(list));
        });
        let addr = server.addr;
        Self {
            url: format!("http://{addr}"),
            token: state.token.clone(),
            base: state.base.clone(),
            table: state.table.clone(),
            state,
            _server: server,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.inner.lock().unwrap())
    }

    /// Variables pointing the service at this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TG_INGEST__AIRTABLE__API_URL".into(), self.url.clone()),
            ("TG_INGEST__AIRTABLE__BASE_ID".into(), self.base.clone()),
            ("TG_INGEST__AIRTABLE__TABLE".into(), self.table.clone()),
            ("TG_INGEST__AIRTABLE__TOKEN".into(), self.token.clone()),
            (
                "TG_INGEST__AIRTABLE__REPORTER_NAME".into(),
                "qa-team".into(),
            ),
        ]
    }

    /// Stored rows.
    pub fn rows(&self) -> Vec<Row> {
        self.with(|i| i.rows.clone())
    }

    /// Write requests received (accepted or not).
    pub fn writes(&self) -> usize {
        self.with(|i| i.writes)
    }

    /// Records taken by accepted write requests (a record sent twice counts twice).
    pub fn records_taken(&self) -> usize {
        self.with(|i| i.records_taken)
    }

    /// Requests that came faster than 5 per second.
    pub fn rate_violations(&self) -> usize {
        self.with(|i| i.rate_violations)
    }

    /// When each write request came and the status it was answered, in order.
    pub fn answers(&self) -> Vec<(Instant, u16)> {
        self.with(|i| i.answers.clone())
    }

    /// Makes the next write requests fail, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = AirtableFault>) {
        self.with(|i| i.faults.extend(faults));
    }

    /// Answers 503 to everything for `d`.
    pub fn down_for(&self, d: Duration) {
        self.with(|i| i.down_until = Some(Instant::now() + d));
    }

    /// Refuses (422) every batch holding a field with this value.
    pub fn refuse_value(&self, value: &str) {
        self.with(|i| i.refuse_value = Some(value.to_string()));
    }
}

/// Checks token, base, table, availability and the rate limit; `Some` is the refusal.
fn admit(req: &HttpRequest, state: &State, i: &mut Inner) -> Option<HttpResponse> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", state.token) {
        return Some(error(
            401,
            "AUTHENTICATION_REQUIRED",
            "Authentication required",
        ));
    }
    if req.match_info().get("base") != Some(state.base.as_str())
        || req.match_info().get("table") != Some(state.table.as_str())
    {
        return Some(error(
            404,
            "NOT_FOUND",
            "Could not find what you are looking for",
        ));
    }
    if i.down_until.is_some_and(|t| Instant::now() < t) {
        return Some(error(503, "SERVICE_UNAVAILABLE", "Service unavailable"));
    }
    let now = Instant::now();
    i.requests
        .retain(|t| now.duration_since(*t) < Duration::from_secs(1));
    i.requests.push(now);
    if i.requests.len() > 5 {
        i.rate_violations += 1;
        return Some(error(429, "", ""));
    }
    None
}

fn is_iso_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

async fn list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let mut i = state.inner.lock().unwrap();
    if let Some(resp) = admit(&req, &state, &mut i) {
        return resp;
    }
    let records: Vec<Value> = i
        .rows
        .iter()
        .take(1)
        .map(|r| json!({"id": r.id, "fields": r.fields}))
        .collect();
    HttpResponse::Ok().json(json!({"records": records}))
}

async fn upsert(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let at = Instant::now();
    let resp = write(req, body, state.clone()).await;
    let status = resp.status().as_u16();
    state.inner.lock().unwrap().answers.push((at, status));
    resp
}

async fn write(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let mut i = state.inner.lock().unwrap();
    i.writes += 1;
    if let Some(resp) = admit(&req, &state, &mut i) {
        return resp;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(422, "INVALID_REQUEST_BODY", "Could not parse request body");
    };
    let Some(records) = body["records"].as_array() else {
        return error(
            422,
            "INVALID_REQUEST_MISSING_FIELDS",
            "Could not find field \"records\" in the request body",
        );
    };
    if records.is_empty() || records.len() > 10 {
        return error(
            422,
            "INVALID_RECORDS",
            "You must provide an array of up to 10 record objects",
        );
    }
    let merge: Vec<String> = body["performUpsert"]["fieldsToMergeOn"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for record in records {
        let Some(fields) = record["fields"].as_object() else {
            return error(422, "INVALID_RECORDS", "Each record needs a fields object");
        };
        for (name, value) in fields {
            if !state.fields.contains(&name.as_str()) {
                return error(
                    422,
                    "UNKNOWN_FIELD_NAME",
                    &format!("Unknown field name: \"{name}\""),
                );
            }
            if state.date_fields.contains(&name.as_str())
                && !value.as_str().is_some_and(is_iso_datetime)
            {
                return error(
                    422,
                    "INVALID_VALUE_FOR_COLUMN",
                    &format!("Field \"{name}\" cannot accept the provided value"),
                );
            }
            if i.refuse_value
                .as_deref()
                .is_some_and(|r| value.as_str() == Some(r))
            {
                return error(
                    422,
                    "INVALID_VALUE_FOR_COLUMN",
                    &format!("Field \"{name}\" cannot accept the provided value"),
                );
            }
        }
    }
    let fault = i.faults.pop_front();
    if let Some(AirtableFault::Status(status)) = fault {
        return error(status, "SERVER_ERROR", "Injected failure");
    }
    i.records_taken += records.len();
    let mut out = Vec::new();
    for record in records {
        let fields = record["fields"].as_object().unwrap().clone();
        let existing = (!merge.is_empty())
            .then(|| {
                i.rows
                    .iter()
                    .position(|r| merge.iter().all(|m| r.fields.get(m) == fields.get(m)))
            })
            .flatten();
        let id = match existing {
            Some(pos) => {
                i.rows[pos].fields.extend(fields.clone());
                i.rows[pos].id.clone()
            }
            None => {
                i.next_id += 1;
                let id = format!("rec{:014}", i.next_id);
                i.rows.push(Row {
                    id: id.clone(),
                    fields: fields.clone(),
                });
                id
            }
        };
        out.push(json!({"id": id, "fields": fields}));
    }
    if let Some(AirtableFault::LoseResponse) = fault {
        return error(500, "SERVER_ERROR", "The response was lost");
    }
    HttpResponse::Ok().json(json!({"records": out}))
}
