//! Every config shipped under `config/` loads and validates: the default
//! config, the collector configs users run today, and the second-tier agents.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use otlp_lb::config::Config;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_config_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the default config and the examples, found {files:?}"
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            Config::load(f)
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "configs that do not validate:\n{}",
        failures.join("\n")
    );
}

#[test]
fn default_config_serves_all_signals_on_loopback() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/otlp-lb.yaml");
    let config = Config::load(&root).unwrap();
    let signals: Vec<String> = config
        .service
        .pipelines
        .keys()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(signals, ["traces", "metrics", "logs"]);
    assert_eq!(config.metrics_address().as_deref(), Some("127.0.0.1:8888"));
}

#[test]
fn a_missing_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/otlp-lb.yaml")).unwrap_err();
    assert_eq!(e.path, "/nonexistent/otlp-lb.yaml");
}

/// The shipped configs use the collector's current component names; the
/// older docs' configs, kept verbatim under `older-docs/`, still run and
/// each earns a deprecation note.
#[test]
fn shipped_configs_use_current_names_and_older_docs_still_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    let mut older = 0;
    for file in &files {
        let notes = Config::load(file).unwrap().deprecations();
        if file.components().any(|c| c.as_os_str() == "older-docs") {
            older += 1;
            assert!(
                notes
                    .iter()
                    .any(|n| n
                        .contains("\"loadbalancing\" is a deprecated name of \"load_balancing\"")),
                "{}: {notes:?}",
                file.display()
            );
        } else {
            assert!(notes.is_empty(), "{}: {notes:?}", file.display());
        }
    }
    assert_eq!(older, 4, "the four older docs' configs");
}
