//! `tg-ingest etl`: raw JSON of one day, or of a range of days, into Parquet.

use std::io::Write;
use std::process::ExitCode;

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

/// Runs `tg-ingest etl`: one day, or a range, with a progress bar on a terminal.
pub(super) fn run(
    system: actix_rt::SystemRunner,
    settings: crate::Settings,
    date: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> ExitCode {
    use crate::util::clock::Day;
    use std::io::IsTerminal;
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
    let result = system.block_on(crate::app::run_etl(settings, from, to, &progress));
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
