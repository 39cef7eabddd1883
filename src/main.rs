//! The `tg-ingest` binary: settings, logging, then the service until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Parser, Subcommand};
use tg_ingest::app::Service;
use tg_ingest::config::load_from_env;

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
    /// Turns raw JSON of one day, or of a range of days, into Parquet, then exits.
    Etl {
        /// One day, YYYY-MM-DD.
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        date: Option<String>,
        /// First day of a backfill, YYYY-MM-DD.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last day of a backfill (inclusive), YYYY-MM-DD.
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Prints the journal, poison list, outboxes, last update and last ETL day, then exits.
    Status,
    /// Lists, retries or deletes updates on the poison list.
    Poison {
        /// What to do.
        #[command(subcommand)]
        action: PoisonAction,
    },
    /// Lists, retries or deletes the dead letters of the outboxes (Airtable rows, raw objects).
    DeadLetters {
        /// What to do.
        #[command(subcommand)]
        action: DeadAction,
    },
}

/// Which items a change applies to: `--all`, or one or more `--id`.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct Which {
    /// Every item.
    #[arg(long)]
    all: bool,
    /// An item's id (repeatable).
    #[arg(long = "id", allow_negative_numbers = true)]
    ids: Vec<i64>,
}

impl Which {
    fn selection(&self) -> tg_ingest::app::admin::Selection {
        use tg_ingest::app::admin::Selection;
        if self.all {
            Selection::All
        } else {
            Selection::Ids(self.ids.clone())
        }
    }
}

#[derive(Subcommand, Debug)]
enum PoisonAction {
    /// Lists the poisoned updates with their reasons.
    List {
        /// Prints each update's raw JSON too.
        #[arg(long)]
        raw: bool,
    },
    /// Moves updates back to the journal; the service handles them at its next start.
    Retry(Which),
    /// Deletes updates for good.
    Drop(Which),
}

#[derive(Subcommand, Debug)]
enum DeadAction {
    /// Lists dead letters with their reasons.
    List {
        /// Only this outbox (`airtable` or `archive`).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Makes dead letters pending again; the service delivers them on its next pass.
    Retry {
        /// The outbox (`airtable` or `archive`).
        #[arg(long)]
        kind: String,
        /// Which.
        #[command(flatten)]
        which: Which,
    },
    /// Deletes dead letters for good.
    Drop {
        /// The outbox (`airtable` or `archive`).
        #[arg(long)]
        kind: String,
        /// Which.
        #[command(flatten)]
        which: Which,
    },
}

/// Runs an admin command; prints its answer.
fn admin_command(settings: &tg_ingest::Settings, command: &Command) -> Option<ExitCode> {
    use tg_ingest::app::admin;
    let result = match command {
        Command::Status => admin::status(settings),
        Command::Poison { action } => match action {
            PoisonAction::List { raw } => admin::poison_list(settings, *raw),
            PoisonAction::Retry(which) => admin::poison_retry(settings, &which.selection()),
            PoisonAction::Drop(which) => admin::poison_drop(settings, &which.selection()),
        },
        Command::DeadLetters { action } => match action {
            DeadAction::List { kind } => admin::dead_list(settings, kind.as_deref()),
            DeadAction::Retry { kind, which } => {
                admin::dead_retry(settings, kind, &which.selection())
            }
            DeadAction::Drop { kind, which } => {
                admin::dead_drop(settings, kind, &which.selection())
            }
        },
        _ => return None,
    };
    Some(match result {
        Ok(text) => {
            let _ = write!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    })
}

/// Draws a one-line progress bar on a terminal.
fn draw_progress(day: usize, days: usize, done: u64, total: u64) {
    let width = 30;
    let frac = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((frac * width as f64) as usize).min(width);
    let _ = write!(
        std::io::stderr(),
        "\r[{}{}] day {}/{} · {done}/{total} objects ",
        "#".repeat(filled),
        " ".repeat(width - filled),
        (day + 1).min(days),
        days
    );
}

/// Runs `tg-ingest etl`.
fn etl_command(
    system: actix_rt::SystemRunner,
    settings: tg_ingest::Settings,
    date: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> ExitCode {
    use std::io::IsTerminal;
    use tg_ingest::util::clock::Day;
    let parse = |s: Option<String>| s.as_deref().and_then(Day::parse);
    let (from, to) = match (parse(date.clone()), parse(from), parse(to)) {
        (Some(d), _, _) => (d, d),
        (None, Some(f), Some(t)) if f <= t => (f, t),
        _ => {
            log::error!("invalid days: give --date YYYY-MM-DD, or --from and --to with from <= to");
            return ExitCode::from(2);
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let progress = move |day: usize, days: usize, done: u64, total: u64| {
        if terminal {
            draw_progress(day, days, done, total);
        }
    };
    let result = system.block_on(tg_ingest::app::run_etl(settings, from, to, &progress));
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
    match result {
        Ok(reports) => {
            for r in &reports {
                let _ = writeln!(
                    std::io::stdout(),
                    "{}: {} objects, {} rows, {} duplicates, {} skipped, {} read locally, {} fetched, {} ms{}",
                    r.day,
                    r.source_objects,
                    r.rows,
                    r.duplicates,
                    r.skipped,
                    r.read_locally,
                    r.fetched,
                    r.millis,
                    r.parquet_key
                        .as_deref()
                        .map_or(" (no Parquet: empty day)".to_string(), |k| format!(
                            " -> {k}"
                        ))
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // Fault injection (FAILPOINTS) exists only in test builds; release builds compile it out.
    let _failpoints = fail::has_failpoints().then(fail::FailScenario::setup);
    let cli = Cli::parse();
    let settings = match load_from_env(cli.config.as_deref()) {
        Ok(s) => {
            s.register_secrets();
            tg_ingest::obs::logging::init(s.log.format);
            s
        }
        Err(e) => {
            tg_ingest::obs::logging::init(Default::default());
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(code) = cli
        .command
        .as_ref()
        .and_then(|c| admin_command(&settings, c))
    {
        return code;
    }
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
    if let Some(Command::Etl { date, from, to }) = cli.command {
        return etl_command(system, settings, date, from, to);
    }
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
