//! The crate's shape: a module names only modules of its own layer or of layers below it,
//! the modules of one layer name each other without circles, and files and functions stay
//! short enough to read. The order is written once, here; `src/lib.rs` describes it.

use std::collections::{BTreeMap, BTreeSet};
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
    "cli",
];

/// Longest file in `src/`, in lines.
const MOST_LINES: usize = 400;
/// Longest function in `src/`, in lines (signature to closing brace).
const MOST_FN_LINES: usize = 80;

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

/// A file's code without its comments and tests: an item under `#[cfg(test)]` is left out
/// (one line, or the rest of the file for an inline `mod tests {`).
fn without_tests(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        if line.trim() != "#[cfg(test)]" {
            code.push_str(line);
            code.push('\n');
            continue;
        }
        match lines.next() {
            Some(next) if next.trim_start().starts_with("mod tests {") => break,
            _ => {}
        }
    }
    code
}

/// The layers a file's code (its tests left out) names through `crate::`.
fn named_layers(source: &str) -> BTreeSet<usize> {
    let code = without_tests(source);
    let code = code.as_str();
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

/// Every file under `src/`: its path relative to `src/` and its text.
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (relative, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// Every import of a lower layer's file that names a higher layer, as `file -> layer`.
fn upward_imports() -> BTreeSet<String> {
    let mut upward = BTreeSet::new();
    for (relative, source) in sources() {
        let Some(own) = layer_of(&relative) else {
            continue;
        };
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
    assert_eq!(layer_of("cli/mod.rs"), Some(LAYERS.len() - 1));
    assert!(named_layers("$crate::bot::x; my_crate::bot::y;").is_empty());
}

/// The module of a layer a file belongs to (`actors/claims/renewal.rs` → `claims`), or `None`
/// for the layer's own `mod.rs` and for files outside the layers.
fn peer_of(relative: &str) -> Option<(&str, &str)> {
    let mut parts = relative.split('/');
    let layer = parts.next()?;
    let module = parts.next()?.trim_end_matches(".rs");
    (LAYERS.contains(&layer) && module != "mod").then_some((layer, module))
}

/// The peers (modules of its own layer) a file's code names: `crate::<layer>::<peer>`, and
/// `super::<peer>` from a file right under the layer's folder.
fn named_peers(relative: &str, source: &str) -> BTreeSet<String> {
    let Some((layer, own)) = peer_of(relative) else {
        return BTreeSet::new();
    };
    let direct = relative.matches('/').count() == 1 || relative.ends_with(&format!("{own}/mod.rs"));
    let code = without_tests(source);
    let mut prefixes = vec![format!("crate::{layer}::")];
    if direct {
        prefixes.push("super::".to_string());
    }
    let mut named = BTreeSet::new();
    for prefix in &prefixes {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix.as_str()) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let is_module = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if is_module && name != own && name != "super" {
                named.insert(name);
            }
        }
    }
    named
}

/// The circles among the modules of one layer, each as `layer: a -> b -> … -> a`.
fn peer_circles(files: &[(String, String)]) -> BTreeSet<String> {
    let mut graph: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (relative, source) in files {
        if let Some((layer, own)) = peer_of(relative) {
            let peers = named_peers(relative, source);
            let existing: BTreeSet<String> = files
                .iter()
                .filter_map(|(r, _)| peer_of(r))
                .filter(|(l, _)| *l == layer)
                .map(|(_, m)| m.to_string())
                .collect();
            graph
                .entry((layer.to_string(), own.to_string()))
                .or_default()
                .extend(peers.into_iter().filter(|p| existing.contains(p)));
        }
    }
    let mut circles = BTreeSet::new();
    for (layer, start) in graph.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            let next = graph.get(&(layer.clone(), last.clone()));
            for peer in next.into_iter().flatten() {
                if peer == start {
                    circles.insert(format!("{layer}: {} -> {start}", path.join(" -> ")));
                } else if seen.insert(peer.clone()) {
                    let mut longer = path.clone();
                    longer.push(peer.clone());
                    stack.push(longer);
                }
            }
        }
    }
    circles
}

#[test]
fn the_modules_of_a_layer_form_no_circle() {
    let circles = peer_circles(&sources());
    assert!(
        circles.is_empty(),
        "modules of one layer that name each other in a circle: {circles:#?}"
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    let files = [
        ("actors/a.rs".to_string(), "use super::b::X;".to_string()),
        (
            "actors/b/mod.rs".to_string(),
            "use crate::actors::c::Y;".to_string(),
        ),
        ("actors/b/part.rs".to_string(), "use super::Z;".to_string()),
        (
            "actors/c.rs".to_string(),
            "fn f() { super::a::g() }".to_string(),
        ),
        ("actors/d.rs".to_string(), "use super::a::X;".to_string()),
    ];
    let circles = peer_circles(&files);
    assert!(circles.contains("actors: a -> b -> c -> a"), "{circles:?}");
    assert!(circles.iter().all(|c| !c.contains('d')), "{circles:?}");
    assert!(named_peers("actors/b/part.rs", "use super::Z;").is_empty());
}

/// The functions of a file longer than `most` lines, as `name (lines)`.
fn long_functions(source: &str, most: usize) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let mut depth = 0i32;
        let mut opened = false;
        for (j, body) in lines.iter().enumerate().skip(i) {
            let code = strip_literals(body);
            if !opened && code.trim_end().ends_with(';') {
                break;
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                if j - i + 1 > most {
                    long.push(format!("{name} ({} lines)", j - i + 1));
                }
                break;
            }
        }
    }
    long
}

/// The name of the function a line opens, if it opens one.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("fn ")?;
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

/// A line of code with its string and character literals and its comment emptied, so their
/// braces are not counted.
fn strip_literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' if chars.clone().nth(1) == Some('\'') => {
                chars.next();
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => break,
            c => out.push(c),
        }
    }
    out
}

#[test]
fn files_and_functions_stay_short() {
    let mut too_long = Vec::new();
    for (relative, source) in sources() {
        let lines = source.lines().count();
        if lines > MOST_LINES {
            too_long.push(format!("{relative}: {lines} lines"));
        }
        for function in long_functions(&source, MOST_FN_LINES) {
            too_long.push(format!("{relative}: fn {function}"));
        }
    }
    assert!(
        too_long.is_empty(),
        "files over {MOST_LINES} lines or functions over {MOST_FN_LINES} lines: {too_long:#?}"
    );
}

#[test]
fn the_length_check_sees_a_long_function() {
    let mut source = String::from("pub async fn long(x: u8) -> u8 {\n    let s = \"}\";\n");
    source.push_str(&"    let _ = x; // }\n".repeat(80));
    source.push_str("    x\n}\nfn short() -> char { '{' }\nfn declared();\n");
    assert_eq!(long_functions(&source, 80), ["long (84 lines)"]);
    assert!(long_functions(&source, 84).is_empty());
}
