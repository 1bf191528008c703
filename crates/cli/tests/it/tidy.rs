//! Repository tidiness, checked as a test: every Rust module starts with its module docs,
//! and no stub or hidden test is left in the code.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && !matches!(name, "target" | "node_modules" | ".venv" | "snapshots" | "data") {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_are_documented_and_free_of_stubs() {
    let crates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    assert!(files.len() > 50, "found only {} Rust files under {}", files.len(), crates.display());
    let stubs = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("#[", "ignore"),
        concat!("dbg", "!("),
    ];
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.starts_with("//!") {
            problems.push(format!("{}: does not start with module docs (`//!`)", f.display()));
        }
        for s in stubs {
            if text.contains(s) {
                problems.push(format!("{}: contains `{s}`", f.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
