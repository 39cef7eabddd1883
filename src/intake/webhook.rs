//! Telegram webhook intake: the deliveries Telegram POSTs to `telegram.webhook.path`.
//!
//! Each delivery is checked and stored before it is confirmed:
//!
//! 1. while the service shuts down, 503 (Telegram delivers it again later);
//! 2. the `X-Telegram-Bot-Api-Secret-Token` header is compared in constant time with the
//!    configured secret: wrong or missing is 401 and nothing is read or stored;
//! 3. the body is read up to `telegram.webhook.max_body_kib`;
//! 4. a body that is not an update (not JSON, no `update_id`, too large) is kept on the poison
//!    list with its reason and answered 200, so Telegram does not send it forever;
//! 5. an update is written to the journal (the same `JournalBatch` polling uses) and only then
//!    answered 200. The journal knows every update it holds, finished or set aside, so a
//!    delivery Telegram repeats (our 200 was lost, or we were killed before sending it) is
//!    handled once. A journal failure is 500: Telegram keeps the update and retries;
//! 6. a new update goes to the worker pool, the path a polled update takes.
//!
//! [`watch`] checks with `getWebhookInfo` that the webhook is still this service's, stamps
//! readiness and logs the delivery errors Telegram reports.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use crate::actors::pool::Dispatch;
use crate::actors::store::{JournalBatch, StoreActor};
use crate::actors::store::{NoteIntake, PoisonRejected};
use crate::actors::worker::Job;
use crate::clients::telegram::TelegramClient;
use crate::config::{Secret, SecuritySettings, TelegramSettings};
use crate::domain::inbound::IncomingUpdate;
use crate::obs::metrics::Metrics;

/// The header Telegram sends the secret token in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// How much of a rejected body the poison list keeps.
const KEPT_OF_REJECTED: usize = 64 * 1024;

/// How much of a body over the size limit the poison list keeps.
const KEPT_OF_OVERSIZED: usize = 1024;

/// What a delivery needs.
pub struct WebhookIntake {
    /// The secret Telegram must send.
    pub secret: Secret,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// Who may use the bot (refused updates are not journaled, as in polling).
    pub security: SecuritySettings,
    /// The journal.
    pub store: Addr<StoreActor>,
    /// The worker pool.
    pub pool: Recipient<Dispatch>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set when the service shuts down: deliveries are answered 503.
    pub closing: Arc<AtomicBool>,
}

/// Whether `given` is the secret, comparing every byte whatever the first difference.
pub fn secret_matches(given: &[u8], secret: &Secret) -> bool {
    let expected = secret.expose().as_bytes();
    !expected.is_empty() && bool::from(given.ct_eq(expected))
}

fn answer(metrics: &Metrics, status: u16) -> HttpResponse {
    metrics.webhook_answered(status);
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(code);
    if status == 503 {
        response.insert_header(("Retry-After", "5"));
    }
    response.finish()
}

/// The body, or how many bytes arrived when it was over `limit` (the first `limit` kept).
async fn read_body(
    payload: &mut web::Payload,
    limit: usize,
) -> Result<Result<BytesMut, (BytesMut, usize)>, String> {
    let mut body = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        total += chunk.len();
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(if total > limit {
        Err((body, total))
    } else {
        Ok(body)
    })
}

/// Why a body is not an update, if it is not; the update otherwise.
fn parse(body: &[u8]) -> Result<IncomingUpdate, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())?;
    let raw = RawValue::from_string(text.to_string())
        .map_err(|e| format!("the body is not JSON: {e}"))?;
    let update =
        IncomingUpdate::parse(raw).map_err(|e| format!("the body is not an update: {e}"))?;
    if update.update_id < 0 || update.vk.is_some() {
        return Err(format!(
            "the body is not a Telegram update (update_id {})",
            update.update_id
        ));
    }
    Ok(update)
}

/// Keeps a body that is not an update on the poison list; 200, or 500 when the store fails
/// (Telegram then delivers it again).
async fn reject(intake: &WebhookIntake, body: &[u8], keep: usize, reason: String) -> HttpResponse {
    let raw = String::from_utf8_lossy(&body[..body.len().min(keep)]).into_owned();
    let kept = intake
        .store
        .send(PoisonRejected {
            raw,
            reason: reason.clone(),
        })
        .await;
    match kept {
        Ok(Ok(id)) => {
            log::error!(
                "webhook: a delivery was not an update ({reason}); kept on the poison list as id {id} and answered 200"
            );
            answer(&intake.metrics, 200)
        }
        Ok(Err(e)) => {
            log::error!("webhook: cannot keep a rejected delivery ({e}); answered 500, Telegram sends it again");
            answer(&intake.metrics, 500)
        }
        Err(e) => {
            log::error!("webhook: store unavailable ({e}); answered 500, Telegram sends it again");
            answer(&intake.metrics, 500)
        }
    }
}

/// `POST telegram.webhook.path`.
pub async fn deliver(
    req: HttpRequest,
    mut payload: web::Payload,
    intake: web::Data<WebhookIntake>,
) -> HttpResponse {
    let metrics = &intake.metrics;
    if intake.closing.load(Ordering::SeqCst) {
        return answer(metrics, 503);
    }
    if !authorized(&req, &intake) {
        return answer(metrics, 401);
    }
    let body = match read_body(&mut payload, intake.max_body).await {
        Ok(Ok(body)) => body,
        Ok(Err((start, total))) => {
            let reason = format!(
                "a body of {total} bytes, over telegram.webhook.max_body_kib ({} KiB)",
                intake.max_body / 1024
            );
            return reject(&intake, &start, KEPT_OF_OVERSIZED, reason).await;
        }
        Err(e) => {
            log::warn!("webhook: the delivery's body could not be read ({e}); answered 400");
            return answer(metrics, 400);
        }
    };
    let update = match parse(&body) {
        Ok(update) => Arc::new(update),
        Err(reason) => return reject(&intake, &body, KEPT_OF_REJECTED, reason).await,
    };
    metrics.received("telegram_webhook", update.kind());
    Metrics::stamp(&metrics.telegram_intake_ok_ms);
    if Metrics::note_due(
        &metrics.intake_noted_ms[0],
        crate::intake::poller::NOTE_EVERY,
    ) {
        intake.store.do_send(NoteIntake("telegram_webhook"));
    }
    answer(metrics, take_in(&intake, update).await)
}

/// Whether the delivery carries the secret token; a refusal is counted and logged.
fn authorized(req: &HttpRequest, intake: &WebhookIntake) -> bool {
    let header = req.headers().get(SECRET_HEADER);
    if !header.is_some_and(|given| secret_matches(given.as_bytes(), &intake.secret)) {
        Metrics::incr(&intake.metrics.webhook_unauthorized);
        log::warn!(
            "webhook: a delivery from {} {} refused (401)",
            req.peer_addr()
                .map_or("an unknown address".to_string(), |a| a.ip().to_string()),
            if header.is_some() {
                "with a wrong secret token was"
            } else {
                "without the secret token header was"
            }
        );
        return false;
    }
    true
}

/// Journals an admitted update (an update the allowlists refuse is turned away unjournaled)
/// and hands it to the workers; answers the HTTP status for Telegram.
async fn take_in(intake: &WebhookIntake, update: Arc<IncomingUpdate>) -> u16 {
    let (metrics, id) = (&intake.metrics, update.update_id);
    let journaled = crate::domain::inbound::admitted(&intake.security, &update);
    let fresh = if journaled {
        match intake.store.send(JournalBatch(vec![update])).await {
            Ok(Ok(fresh)) => fresh,
            Ok(Err(e)) => {
                log::error!(
                    "webhook: cannot journal update_id={id} ({e}); answered 500, Telegram delivers it again"
                );
                return 500;
            }
            Err(e) => {
                log::error!(
                    "webhook: store unavailable for update_id={id} ({e}); answered 500, Telegram delivers it again"
                );
                return 500;
            }
        }
    } else {
        // Refused updates are not journaled: they are turned away at once.
        vec![update]
    };
    if fresh.is_empty() {
        log::info!("webhook: update_id={id} was delivered before; answered 200 again");
    }
    for update in fresh {
        fail::fail_point!("webhook.journaled");
        let job = Job {
            update,
            attempts: 0,
            journaled,
        };
        match intake.pool.send(Dispatch(job)).await {
            Ok(Ok(())) => Metrics::incr(&metrics.updates_dispatched),
            Ok(Err(e)) => log::error!("{e}; it stays in the journal for the next start"),
            Err(e) => log::error!(
                "worker pool unavailable for update_id={id} ({e}); it stays in the journal for the next start"
            ),
        }
    }
    200
}

/// Checks the webhook every `check_interval_secs` until the returned flag is set: a check that
/// finds it in place stamps the Telegram intake as healthy; a new delivery error Telegram
/// reports is logged; a webhook changed or removed by someone else is an error line (and
/// readiness fails once the stamp is old).
pub fn watch(
    settings: TelegramSettings,
    store: Addr<StoreActor>,
    metrics: Arc<Metrics>,
) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    actix_rt::spawn(async move {
        let telegram = Rc::new(TelegramClient::new(&settings).with_metrics(metrics.clone()));
        let every = Duration::from_secs(settings.webhook.check_interval_secs);
        let mut last_error = None;
        Metrics::stamp(&metrics.telegram_intake_ok_ms);
        loop {
            actix_rt::time::sleep(every).await;
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            match telegram.get_webhook_info().await {
                Ok(info) if info.url == settings.webhook.url => {
                    Metrics::stamp(&metrics.telegram_intake_ok_ms);
                    store.do_send(NoteIntake("telegram_webhook"));
                    if info.last_error_date.is_some() && info.last_error_date != last_error {
                        log::warn!(
                            "webhook: Telegram reports a failed delivery at unix time {}: {} ({} updates pending)",
                            info.last_error_date.unwrap_or_default(),
                            info.last_error_message.as_deref().unwrap_or("no message"),
                            info.pending_update_count
                        );
                    }
                    last_error = info.last_error_date;
                }
                Ok(info) => log::error!(
                    "webhook: Telegram delivers to {:?}, not to telegram.webhook.url; another deployment of this bot may have changed it (restart this one to set it again)",
                    info.url
                ),
                Err(e) => log::warn!("webhook: getWebhookInfo failed: {e}"),
            }
        }
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_must_match_exactly() {
        let secret = Secret::new("s3cr3t-token_1");
        assert!(secret_matches(b"s3cr3t-token_1", &secret));
        assert!(!secret_matches(b"s3cr3t-token_2", &secret));
        assert!(!secret_matches(b"s3cr3t-token_", &secret));
        assert!(!secret_matches(b"s3cr3t-token_11", &secret));
        assert!(!secret_matches(b"", &secret));
        assert!(!secret_matches(b"", &Secret::new("")));
    }

    #[test]
    fn bodies_that_are_not_telegram_updates_are_named() {
        assert!(parse(b"\xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(parse(b"hello").unwrap_err().contains("not JSON"));
        assert!(parse(br#"{"message":{}}"#)
            .unwrap_err()
            .contains("not an update"));
        assert!(parse(br#"{"update_id":-5,"vk":{"type":"message_new"}}"#)
            .unwrap_err()
            .contains("not a Telegram update"));
        let update = parse(br#"{"update_id":7,"message":{"message_id":1,"date":1,"chat":{"id":3,"type":"private"},"text":"hi"}}"#).unwrap();
        assert_eq!((update.update_id, update.kind()), (7, "message"));
    }
}
