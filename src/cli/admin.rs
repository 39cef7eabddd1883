//! `status`, `poison` and `dead-letters`: they read or change the store and print an answer.

use std::io::Write;
use std::process::ExitCode;

use super::{Command, DeadAction, PoisonAction};

/// Runs an admin command; prints its answer.
pub(super) fn run(settings: &crate::Settings, command: &Command) -> Option<ExitCode> {
    use crate::app::admin;
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
