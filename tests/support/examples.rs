//! The example programs, run as processes, as a user runs them: tests exercise what
//! `cargo run --example NAME` builds, not the examples' source files.
//!
//! Cargo gives integration tests `CARGO_BIN_EXE_<name>` for binaries but nothing for examples,
//! and `cargo test --test X` does not build them. So the first call for an example builds it
//! with the cargo that builds the tests (a no-op when it is up to date), in the same profile,
//! and takes the executable's path from cargo's compiler-artifact message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The path of example `name`'s executable, built on first use (once per test process).
pub(crate) fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--example",
        name,
        "--message-format=json",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The compiler-artifact line of the example names its executable.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| {
            l.contains("\"reason\":\"compiler-artifact\"")
                && l.contains("\"kind\":[\"example\"]")
                && l.contains(&format!("\"name\":\"{name}\""))
        })
        .unwrap_or_else(|| panic!("cargo reported no artifact for the {name} example"));
    let key = "\"executable\":\"";
    let start = line.find(key).expect("artifact without executable") + key.len();
    let end = start + line[start..].find('"').expect("unterminated path");
    let path = PathBuf::from(line[start..end].replace("\\\\", "\\"));
    built.insert(name.to_string(), path.clone());
    path
}
