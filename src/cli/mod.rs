//! The `tg-ingest` command line: the service (no subcommand), `post-button`, `etl`, `import`, and the
//! admin commands (`status`, `poison`, `dead-letters`). The binary only calls [`main`].
//!
//! This is the top layer: it may import every other.

mod admin;
mod etl;
mod import;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::load_from_env;

/// Turns what happens in Telegram into durable data.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// A settings file applied over the defaults (environment variables still win).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do; without a command the service runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Imports a Telegram Desktop chat export (result.json) into the raw archive, then exits.
    Import {
        /// The export's result.json.
        #[arg(long, value_name = "FILE")]
        export: PathBuf,
        /// The chat to import (Bot API id, e.g. -1001234567890, or the export's own id):
        /// needed for a whole account's export, or an export that does not name its chat.
        #[arg(long, allow_negative_numbers = true)]
        chat_id: Option<i64>,
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
pub struct Which {
    /// Every item.
    #[arg(long)]
    pub all: bool,
    /// An item's id (repeatable).
    #[arg(long = "id", allow_negative_numbers = true)]
    pub ids: Vec<i64>,
}

impl Which {
    pub fn selection(&self) -> crate::app::admin::Selection {
        use crate::app::admin::Selection;
        if self.all {
            Selection::All
        } else {
            Selection::Ids(self.ids.clone())
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum PoisonAction {
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
pub enum DeadAction {
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

/// Parses the command line, loads the settings and runs what was asked; the process's exit
/// code (2: the settings or the days given are not usable).
pub fn main() -> ExitCode {
    // Fault injection (FAILPOINTS) exists only in test builds; release builds compile it out.
    let _failpoints = fail::has_failpoints().then(fail::FailScenario::setup);
    let cli = Cli::parse();
    let settings = match load_from_env(cli.config.as_deref()) {
        Ok(s) => {
            s.register_secrets();
            crate::obs::logging::init(s.log.format);
            s
        }
        Err(e) => {
            crate::obs::logging::init(Default::default());
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(code) = cli.command.as_ref().and_then(|c| admin::run(&settings, c)) {
        return code;
    }
    let system = actix_rt::System::new();
    match cli.command {
        Some(Command::PostButton {
            chat_id,
            text,
            label,
        }) => serve::post_button(system, &settings, chat_id, (text, label)),
        Some(Command::Etl { date, from, to }) => etl::run(system, settings, date, from, to),
        Some(Command::Import { export, chat_id }) => {
            import::run(system, settings, &export, chat_id)
        }
        _ => serve::run(system, settings),
    }
}
