//! The admin commands on the store (`tg-ingest status`, `poison …`, `dead-letters …`): safe
//! while the service runs, since each change is one SQLite transaction on the shared file.
//! Each command answers the text to print.

use std::fmt::Write;

use crate::config::Settings;
use crate::store::{Store, StoreError};
use crate::util::clock::iso8601_millis;

/// Which items a change applies to.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every item.
    All,
    /// These ids.
    Ids(Vec<i64>),
}

impl Selection {
    fn ids(&self) -> Option<&[i64]> {
        match self {
            Self::All => None,
            Self::Ids(ids) => Some(ids),
        }
    }
}

fn when(unix_secs: Option<i64>) -> String {
    unix_secs.map_or("never".into(), |s| iso8601_millis(s * 1000))
}

fn open(settings: &Settings) -> Result<Store, StoreError> {
    crate::store::Store::open_configured(settings)
}

/// `tg-ingest status`.
pub fn status(settings: &Settings) -> Result<String, StoreError> {
    let s = open(settings)?.status()?;
    let mut out = String::new();
    let _ = writeln!(out, "store: {}", settings.store_name());
    let _ = writeln!(out, "journal: {} unfinished updates", s.journal);
    let _ = writeln!(out, "poison: {} updates", s.poison);
    if s.outboxes.is_empty() {
        let _ = writeln!(out, "outboxes: empty");
    }
    for (kind, pending, dead) in &s.outboxes {
        let _ = writeln!(out, "outbox {kind}: {pending} pending, {dead} dead letters");
    }
    let _ = writeln!(out, "last update finished: {}", when(s.last_finished_at));
    let _ = writeln!(
        out,
        "last update received and waiting: {}",
        when(s.last_received_at)
    );
    if s.intakes.is_empty() {
        let _ = writeln!(out, "last poll: never");
    }
    for (source, at) in &s.intakes {
        let what = match source.as_str() {
            "telegram_polling" => "last Telegram getUpdates",
            "telegram_webhook" => "last Telegram webhook delivery or check",
            "vk" => "last VK long poll",
            other => other,
        };
        let _ = writeln!(out, "{what}: {}", when(Some(*at)));
    }
    match &s.last_etl {
        Some((day, at)) => {
            let _ = writeln!(out, "last ETL: day {day}, at {}", iso8601_millis(*at));
        }
        None => {
            let _ = writeln!(out, "last ETL: never");
        }
    }
    Ok(out)
}

/// `tg-ingest poison list`; with `raw`, each update's JSON too.
pub fn poison_list(settings: &Settings, raw: bool) -> Result<String, StoreError> {
    let items = open(settings)?.poison_items()?;
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("the poison list is empty\n");
    }
    for p in items {
        let _ = writeln!(
            out,
            "{}\tattempts={}\tmoved={}\t{}",
            p.update_id,
            p.attempts,
            when(Some(p.moved_at)),
            p.reason
        );
        if raw {
            let _ = writeln!(out, "\t{}", p.raw);
        }
    }
    Ok(out)
}

/// `tg-ingest poison retry`: the updates go back to the journal for the next start.
pub fn poison_retry(settings: &Settings, which: &Selection) -> Result<String, StoreError> {
    let n = open(settings)?.poison_retry(which.ids())?;
    Ok(format!(
        "{n} updates moved back to the journal; the service handles them at its next start\n"
    ))
}

/// `tg-ingest poison drop`.
pub fn poison_drop(settings: &Settings, which: &Selection) -> Result<String, StoreError> {
    let n = open(settings)?.poison_drop(which.ids())?;
    Ok(format!("{n} poisoned updates deleted\n"))
}

/// `tg-ingest dead-letters list` for one outbox kind, or all.
pub fn dead_list(settings: &Settings, kind: Option<&str>) -> Result<String, StoreError> {
    let store = open(settings)?;
    let kinds: Vec<String> = match kind {
        Some(k) => vec![k.to_string()],
        None => store
            .status()?
            .outboxes
            .into_iter()
            .map(|(k, _, _)| k)
            .collect(),
    };
    let mut out = String::new();
    let mut any = false;
    for kind in kinds {
        for (item, reason) in store.outbox_dead(&kind)? {
            any = true;
            let _ = writeln!(
                out,
                "{kind}\t{}\tkey={}\tattempts={}\t{reason}",
                item.id, item.key, item.attempts
            );
        }
    }
    if !any {
        out.push_str("no dead letters\n");
    }
    Ok(out)
}

/// `tg-ingest dead-letters retry`: pending again, delivered on the outbox's next pass.
pub fn dead_retry(
    settings: &Settings,
    kind: &str,
    which: &Selection,
) -> Result<String, StoreError> {
    let n = open(settings)?.dead_retry(kind, which.ids())?;
    Ok(format!(
        "{n} dead letters of {kind} are pending again; the service delivers them on its next pass\n"
    ))
}

/// `tg-ingest dead-letters drop`.
pub fn dead_drop(settings: &Settings, kind: &str, which: &Selection) -> Result<String, StoreError> {
    let n = open(settings)?.dead_drop(kind, which.ids())?;
    Ok(format!("{n} dead letters of {kind} deleted\n"))
}
