//! The crate's layers: a module names only modules of its own layer or of layers below it.
//! The order is written once, here; `src/lib.rs` describes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first: the first folder (or file) under `src/` of each module.
const LAYERS: &[&str] = &[
    "util",
    "obs",
    "config",
    "clients",
    "embedded_s3",
    "domain",
    "store",
    "etl",
    "actors",
    "intake",
    "conversation",
    "bot",
    "app",
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The layer of a file (its path under `src/`), or `None` for the crate root and the binary.
fn layer_of(relative: &str) -> Option<usize> {
    let first = relative.split('/').next()?.trim_end_matches(".rs");
    LAYERS.iter().position(|l| *l == first)
}

/// The layers a file's code (its tests left out) names through `crate::`.
fn named_layers(source: &str) -> BTreeSet<usize> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if let Some(layer) = LAYERS.iter().position(|l| *l == name) {
            named.insert(layer);
        }
    }
    named
}

/// Every import of a lower layer's file that names a higher layer, as `file -> layer`.
fn upward_imports() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = BTreeSet::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some(own) = layer_of(&relative) else {
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        for named in named_layers(&source) {
            if named > own {
                upward.insert(format!("{relative} -> {}", LAYERS[named]));
            }
        }
    }
    upward
}

#[test]
fn imports_point_only_down_the_layers() {
    let upward = upward_imports();
    assert!(
        upward.is_empty(),
        "imports that point up the layers ({}): {upward:#?}",
        LAYERS.join(" < ")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let source = "use crate::store::Store;\nfn f() { crate::bot::route(); }\n#[cfg(test)]\nuse crate::app::x;";
    let named: Vec<&str> = named_layers(source).iter().map(|l| LAYERS[*l]).collect();
    assert_eq!(named, ["store", "bot"], "the tests' imports are left out");
    assert_eq!(layer_of("clients/s3/objects.rs"), Some(3));
    assert_eq!(layer_of("main.rs"), None);
    assert!(named_layers("$crate::bot::x; my_crate::bot::y;").is_empty());
}
