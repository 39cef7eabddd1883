//! The documentation keeps up with the settings: every key of `settings/default.toml` has a
//! row in `docs/settings.md`, with its default and its environment variable.

use std::path::Path;

/// Every key of a TOML text, dotted (`s3.embedded.listen`), in file order.
fn keys(toml: &str) -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        keys.push(if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        });
    }
    keys
}

/// The environment variable that sets `key`.
fn variable(key: &str) -> String {
    format!("TG_INGEST__{}", key.replace('.', "__").to_uppercase())
}

/// The keys without a row `| `key` | default | `VARIABLE` | meaning |` in `doc` whose
/// variable is the key's and whose meaning is not empty.
fn undocumented(keys: &[String], doc: &str) -> Vec<String> {
    let documented = |key: &str| {
        doc.lines().any(|line| {
            let Some(inner) = line.strip_prefix("| ").and_then(|l| l.strip_suffix(" |")) else {
                return false;
            };
            // The meaning is the last cell and may hold an escaped `\|`: split from the left.
            let cells: Vec<&str> = inner.splitn(4, " | ").collect();
            cells.len() == 4
                && cells[0] == format!("`{key}`")
                && cells[2] == format!("`{}`", variable(key))
                && !cells[3].trim().is_empty()
        })
    };
    keys.iter()
        .filter(|key| !documented(key))
        .cloned()
        .collect()
}

#[test]
fn every_setting_is_in_docs_settings_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let toml = std::fs::read_to_string(root.join("settings/default.toml")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/settings.md")).unwrap();
    let keys = keys(&toml);
    assert!(keys.len() > 90, "only {} keys read", keys.len());
    let missing = undocumented(&keys, &doc);
    assert!(
        missing.is_empty(),
        "settings without a row (key, default, environment variable, meaning) in docs/settings.md: {missing:?}"
    );
}

#[test]
fn the_check_sees_a_missing_or_empty_row() {
    let toml = "workers = 4\n[s3.embedded]\n# the address\nlisten = \"x\"\n[vk]\nwait = 25\n";
    let keys = keys(toml);
    assert_eq!(keys, ["workers", "s3.embedded.listen", "vk.wait"]);
    let doc = "| `workers` | `4` | `TG_INGEST__WORKERS` | Size of the pool. |\n\
               | `s3.embedded.listen` | `x` | `TG_INGEST__S3__EMBEDDED__LISTEN` |  |\n\
               | `vk.wait` | `25` | `TG_INGEST__VK__WAITS` | Wait, with the wrong variable. |\n";
    assert_eq!(undocumented(&keys, doc), ["s3.embedded.listen", "vk.wait"]);
}
