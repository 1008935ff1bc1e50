//! Helpers shared by the suite.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::civil::Date;
use truc::edxml::Options;

/// The directory of the crate.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Every `*.edxml` in `tests/fixtures/<dir>`, sorted.
pub fn fixtures_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures").join(dir))
        .expect("fixture directory exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "edxml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixed "today" after every fixture's dates, so the suite does not depend on the clock.
pub fn today() -> Date {
    jiff::civil::date(2026, 11, 23)
}

pub fn strict() -> Options {
    Options::strict(today())
}

pub fn lenient() -> Options {
    Options::lenient(today())
}

/// Runs the `truc` binary.
pub fn truc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_truc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the truc binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Path of a Debian tool the suite needs, or a panic that says how to get it.
pub fn tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run .ci/run, or apt-get install -y {package}");
}
