//! The HTTP endpoints (actix-web) on `http.listen`:
//!
//! - `/healthz`: 200 while the actor system runs;
//! - `/readyz`: 200 when the store takes writes, the bucket answers and every running intake
//!   (Telegram's `getUpdates` or webhook, VK's long poll) succeeded lately and the service is
//!   not shutting down; else 503 with a JSON list of the reasons;
//! - `/metrics`: every metric in the OpenMetrics text format Prometheus scrapes;
//! - in webhook mode, `telegram.webhook.path` (see [`crate::intake::webhook`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::actors::store::StoreActor;
use crate::actors::store::{ProbeWritable, ReadStatus};
use crate::clients::s3::S3Target;
use crate::obs::metrics::{Metrics, StoreGauges};

/// How long a readiness check waits for the store and the bucket.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What readiness looks at.
#[derive(Clone)]
pub struct Readiness {
    /// The store.
    pub store: Addr<StoreActor>,
    /// The documents bucket.
    pub target: S3Target,
    /// Where the intakes stamp their successes.
    pub metrics: Arc<Metrics>,
    /// The longest quiet time of the Telegram intake (none when it does not run).
    pub telegram_within: Option<Duration>,
    /// The longest quiet time of the VK intake (none when it does not run).
    pub vk_within: Option<Duration>,
    /// Set when the service shuts down.
    pub closing: Arc<AtomicBool>,
}

impl Readiness {
    /// The reasons the service is not ready; empty when it is.
    pub async fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.closing.load(Ordering::SeqCst) {
            reasons.push("shutting down: in-flight work drains".to_string());
        }
        match actix_rt::time::timeout(CHECK_TIMEOUT, self.store.send(ProbeWritable())).await {
            Ok(Ok(Ok(()))) => {}
            // The engine's error only: the store's name may be a connection string.
            Ok(Ok(Err(e))) => reasons.push(format!(
                "store: {}",
                crate::obs::logging::scrub(&e.source.to_string())
            )),
            Ok(Err(e)) => reasons.push(format!("store: unavailable ({e})")),
            Err(_) => reasons.push("store: no answer within 5 s".into()),
        }
        match actix_rt::time::timeout(CHECK_TIMEOUT, self.target.check_bucket()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(format!("bucket: {e}")),
            Err(_) => reasons.push("bucket: no answer within 5 s".into()),
        }
        let now = crate::util::clock::now_millis().max(0) as u64;
        let intakes = [
            (
                "Telegram getUpdates",
                self.telegram_within,
                &self.metrics.telegram_intake_ok_ms,
            ),
            (
                "VK long poll",
                self.vk_within,
                &self.metrics.vk_intake_ok_ms,
            ),
        ];
        for (name, within, stamp) in intakes {
            let Some(within) = within else { continue };
            match stamp.load(Ordering::Relaxed) {
                0 => reasons.push(format!("intake: no successful {name} yet")),
                at if now.saturating_sub(at) > within.as_millis() as u64 => reasons.push(format!(
                    "intake: no successful {name} for {} s",
                    (now - at) / 1000
                )),
                _ => {}
            }
        }
        reasons
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let reasons = readiness.reasons().await;
    if reasons.is_empty() {
        HttpResponse::Ok().json(json!({"ready": true}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"ready": false, "reasons": reasons}))
    }
}

async fn metrics(readiness: web::Data<Readiness>) -> HttpResponse {
    let status = actix_rt::time::timeout(CHECK_TIMEOUT, readiness.store.send(ReadStatus())).await;
    let gauges = match status {
        Ok(Ok(Ok(s))) => Some(StoreGauges {
            journal: s.journal,
            poison: s.poison,
            outboxes: s.outboxes,
            last_etl_ms: s.last_etl.map(|(_, at)| at),
        }),
        _ => {
            log::warn!("/metrics: the store did not answer; its gauges keep their last values");
            None
        }
    };
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(readiness.metrics.encode(gauges.as_ref()))
}

/// A running HTTP server.
pub struct HttpEndpoints {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl HttpEndpoints {
    /// Binds `listen` and serves the endpoints on the current system; with `webhook`, also
    /// Telegram's deliveries on its path.
    pub fn start(
        listen: &str,
        readiness: Readiness,
        webhook: Option<(String, crate::intake::webhook::WebhookIntake)>,
    ) -> std::io::Result<Self> {
        let data = web::Data::new(readiness);
        let webhook = webhook.map(|(path, intake)| (path, web::Data::new(intake)));
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(data.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics));
            match &webhook {
                Some((path, intake)) => app.service(
                    web::resource(path.as_str())
                        .app_data(intake.clone())
                        .route(web::post().to(crate::intake::webhook::deliver)),
                ),
                None => app,
            }
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(listen)?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("bound to no address"))?;
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        log::info!("HTTP endpoints /healthz, /readyz and /metrics on http://{addr}");
        Ok(Self { addr, handle })
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}
