//! The start-up checks of the outside services (Telegram, the webhook, Airtable, the archive
//! buckets), retried while their errors say a later attempt may succeed.

use std::future::Future;
use std::time::Duration;

use super::StartupError;
use crate::clients::airtable::{AirtableClient, AirtableError};
use crate::clients::s3::{S3Target, StorageError};
use crate::clients::telegram::{TelegramClient, TelegramError, User};
use crate::config::{AirtableSettings, Settings, TelegramMode};
use crate::util::backoff::Backoff;

/// Checks the bot token (`getMe`), removes any webhook so polling works, and sets the command
/// menu; answers the bot's own user.
pub(super) async fn check_telegram(settings: &Settings) -> Result<User, StartupError> {
    let telegram = TelegramClient::new(&settings.telegram);
    let attempts = settings.telegram.startup_attempts.max(1);
    let api_url = settings.telegram.api_url.clone();
    let telegram_error = |source: TelegramError| match source {
        TelegramError::Api {
            code: code @ (401 | 404),
            description,
            ..
        } => StartupError::InvalidToken { code, description },
        source => StartupError::Telegram {
            api_url: api_url.clone(),
            source,
        },
    };
    let bot = retry(
        "Telegram getMe",
        attempts,
        TelegramError::is_retryable,
        || telegram.get_me(),
    )
    .await
    .map_err(telegram_error)?;
    if settings.telegram.mode == TelegramMode::Polling {
        // getUpdates does not work while a webhook is set: switching back to polling removes it
        // (updates waiting for delivery are kept).
        retry(
            "Telegram deleteWebhook",
            attempts,
            TelegramError::is_retryable,
            || telegram.delete_webhook(),
        )
        .await
        .map_err(telegram_error)?;
    }
    // The command menu is a convenience: a failure is logged, not fatal.
    if let Err(e) = telegram
        .set_my_commands(crate::conversation::texts::COMMANDS)
        .await
    {
        log::warn!("Telegram setMyCommands failed (the command menu stays as it was): {e}");
    }
    Ok(bot)
}

/// Sets the webhook (`setWebhook` with the URL, secret and update kinds) and confirms it with
/// `getWebhookInfo`.
pub(super) async fn set_webhook(settings: &Settings) -> Result<(), StartupError> {
    let tg = &settings.telegram;
    let telegram = TelegramClient::new(tg);
    let attempts = tg.startup_attempts.max(1);
    let failed = |detail: String| StartupError::Webhook {
        url: tg.webhook.url.clone(),
        detail,
    };
    retry(
        "Telegram setWebhook",
        attempts,
        TelegramError::is_retryable,
        || {
            telegram.set_webhook(
                &tg.webhook.url,
                &tg.webhook.secret_token,
                &tg.allowed_updates,
                tg.webhook.max_connections,
            )
        },
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    let info = retry(
        "Telegram getWebhookInfo",
        attempts,
        TelegramError::is_retryable,
        || telegram.get_webhook_info(),
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    if info.url != tg.webhook.url {
        return Err(failed(format!(
            "getWebhookInfo reports {:?} after setWebhook",
            info.url
        )));
    }
    log::info!(
        "Telegram webhook set: deliveries to {} (served on {}{}), max_connections={}, {} updates pending",
        tg.webhook.url,
        settings.http.listen,
        tg.webhook.path,
        info.max_connections.unwrap_or(tg.webhook.max_connections),
        info.pending_update_count
    );
    Ok(())
}

/// `tg-ingest post-button`: posts the "go" button to a chat and returns its message id.
pub async fn post_button(
    settings: &Settings,
    chat_id: i64,
    text: Option<&str>,
    label: Option<&str>,
) -> Result<i64, StartupError> {
    crate::install_tls_provider();
    let telegram = TelegramClient::new(&settings.telegram);
    let key = crate::domain::button::ButtonKey::from_token(settings.telegram.token.expose());
    let text = text.unwrap_or(&settings.button.text);
    let label = label.unwrap_or(&settings.button.label);
    crate::domain::button::post_button(&telegram, &key, chat_id, text, label)
        .await
        .map_err(|source| match source {
            TelegramError::Api {
                code: code @ (401 | 404),
                description,
                ..
            } => StartupError::InvalidToken { code, description },
            source => StartupError::Telegram {
                api_url: settings.telegram.api_url.clone(),
                source,
            },
        })
}

/// With Airtable configured, checks token, base and table once; without, warns that rows wait.
pub(super) async fn check_airtable(settings: &AirtableSettings) -> Result<(), StartupError> {
    if !settings.is_configured() {
        log::warn!(
            "Airtable is not configured (airtable.base_id is empty): button presses are kept in the outbox until it is"
        );
        return Ok(());
    }
    let client = AirtableClient::new(settings);
    let checked = retry(
        "Airtable check",
        3,
        |e: &AirtableError| !e.is_permanent(),
        || client.check(),
    )
    .await;
    match checked {
        Ok(()) => {
            log::info!(
                "Airtable table `{}` in base {} is reachable",
                settings.table,
                settings.base_id
            );
            Ok(())
        }
        Err(source) if source.proves_settings_wrong() => Err(StartupError::Airtable {
            base: settings.base_id.clone(),
            table: settings.table.clone(),
            source,
        }),
        Err(e) => {
            log::warn!(
                "Airtable is not available at start-up ({e}); starting anyway: button presses wait in the outbox and are written when Airtable answers"
            );
            Ok(())
        }
    }
}

/// Creates (embedded server) or checks (configured endpoint) the raw and enriched buckets.
pub(super) async fn archive_buckets(
    target: &S3Target,
    settings: &Settings,
    embedded: bool,
) -> Result<(), StartupError> {
    for bucket in [
        &settings.archive.raw_bucket,
        &settings.archive.enriched_bucket,
    ] {
        let t = target.with_bucket(bucket);
        if embedded {
            t.ensure_bucket().await?;
        } else {
            let attempts = settings.s3.startup_attempts.max(1);
            retry(
                "S3 bucket check",
                attempts,
                StorageError::is_retryable,
                || t.check_bucket(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Calls `f` up to `attempts` times while its error is retryable, backing off between calls.
pub(super) async fn retry<T, E, F, Fut>(
    what: &str,
    attempts: u32,
    retryable: fn(&E) -> bool,
    mut f: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && backoff.attempts() + 1 < attempts => {
                let delay = backoff.next_delay();
                log::warn!(
                    "{what} failed: {e}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                actix_rt::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}
