//! `tg-ingest import`: a Telegram Desktop export into the raw archive.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Runs the import and prints what it did. Exit status: 0 when every message was imported,
/// 2 when some were left out (each named above, with its position), 1 when nothing could be.
pub(super) fn run(
    system: actix_rt::SystemRunner,
    settings: crate::Settings,
    export: &Path,
    chat_id: Option<i64>,
) -> ExitCode {
    let result = system.block_on(crate::app::run_import(settings, export, chat_id));
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let days = match (report.days.first(), report.days.last()) {
        (Some(first), Some(last)) => format!("{first} to {last}"),
        _ => "none".to_string(),
    };
    let _ = writeln!(
        std::io::stdout(),
        "{}: {} messages of {} chat(s), days {days}: {} objects written, {} already there, {} messages left out",
        export.display(),
        report.messages,
        report.chats,
        report.written,
        report.unchanged,
        report.left_out.len()
    );
    if let (Some(first), Some(last), true) =
        (report.days.first(), report.days.last(), report.written > 0)
    {
        let _ = writeln!(
            std::io::stdout(),
            "the service compacts these days at its next ETL pass; to do it now: tg-ingest etl --from {first} --to {last}"
        );
    }
    if report.left_out.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
