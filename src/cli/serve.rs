//! The service itself, until SIGINT or SIGTERM; and `post-button`.

use std::io::Write;
use std::process::ExitCode;

use crate::app::Service;
use crate::Settings;

/// Runs the service: the start-up checks, then the actors until a stop is asked for.
pub(super) fn run(system: actix_rt::SystemRunner, settings: Settings) -> ExitCode {
    let result = system.block_on(async move {
        // Listen before start-up: the checks can retry unreachable services for a while, and a
        // stop asked for meanwhile (a deploy rolled back, `docker stop`) ends them at once.
        // Once actors run, a stop waits for the launch and then stops gracefully.
        let mut shutdown = std::pin::pin!(shutdown_signal());
        let checked = tokio::select! {
            checked = Service::check(settings) => checked?,
            () = &mut shutdown => {
                log::info!("shutdown requested during the start-up checks; nothing was taken in yet");
                return Ok(());
            }
        };
        let service = checked.launch(None).await?;
        service.run_until(shutdown).await;
        Ok::<_, crate::app::StartupError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `tg-ingest post-button`: posts the "go" button and prints its message id.
pub(super) fn post_button(
    system: actix_rt::SystemRunner,
    settings: &Settings,
    chat_id: i64,
    (text, label): (Option<String>, Option<String>),
) -> ExitCode {
    let posted = system.block_on(crate::app::post_button(
        settings,
        chat_id,
        text.as_deref(),
        label.as_deref(),
    ));
    match posted {
        Ok(message_id) => {
            log::info!("button posted to chat {chat_id} as message {message_id}");
            let _ = writeln!(std::io::stdout(), "{message_id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM. Both are listened for from the call on, not from the first
/// poll, so a signal that comes before the future is awaited is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind)
            .map_err(|e| log::warn!("cannot listen for {name} ({e})"))
            .ok()
    };
    let (term, int) = (
        listen(SignalKind::terminate(), "SIGTERM"),
        listen(SignalKind::interrupt(), "SIGINT"),
    );
    async move {
        let recv = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = recv(term) => {}
            () = recv(int) => {}
        }
    }
}
