//! The `tg-ingest` binary: settings, logging, then the service until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Parser, Subcommand};
use tg_ingest::app::Service;
use tg_ingest::settings::load_from_env;

/// Turns what happens in Telegram into durable data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A settings file applied over the defaults (environment variables still win).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// What to do; without a command the service runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Posts the "go" button to a chat, prints the message id and exits.
    PostButton {
        /// The chat (group) to post to.
        #[arg(long, allow_negative_numbers = true)]
        chat_id: i64,
        /// Message text (default: button.text from settings).
        #[arg(long)]
        text: Option<String>,
        /// Button label (default: button.label from settings, "Поехали").
        #[arg(long)]
        label: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tg_ingest::logging::init();
    let settings = match load_from_env(cli.config.as_deref()) {
        Ok(s) => {
            s.register_secrets();
            s
        }
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let system = actix_rt::System::new();
    if let Some(Command::PostButton {
        chat_id,
        text,
        label,
    }) = cli.command
    {
        let posted = system.block_on(tg_ingest::app::post_button(
            &settings,
            chat_id,
            text.as_deref(),
            label.as_deref(),
        ));
        return match posted {
            Ok(message_id) => {
                log::info!("button posted to chat {chat_id} as message {message_id}");
                let _ = writeln!(std::io::stdout(), "{message_id}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = system.block_on(async move {
        let service = Service::start(settings).await?;
        service.run_until(shutdown_signal()).await;
        Ok::<_, tg_ingest::app::StartupError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            log::warn!("cannot listen for SIGTERM ({e}); stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
