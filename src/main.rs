//! The `tg-ingest` binary: settings, logging, then the service until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tg_ingest::app::Service;
use tg_ingest::settings::load_from_env;

/// Turns what happens in Telegram into durable data.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A settings file applied over the defaults (environment variables still win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
