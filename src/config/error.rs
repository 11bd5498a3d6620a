//! The one error type of configuration loading: a key path and what is wrong there.

/// A configuration problem: where (`path`, the YAML key path such as
/// `exporters.loadbalancing.resolver.dns.port`) and what (`message`).
///
/// Displays as `path: message`. Errors that belong to no key (an unreadable
/// file, a malformed `${...}` reference) have an empty path or the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .message))]
pub struct ConfigError {
    /// The key path, dot-separated, with `[i]` for list items; empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong at `path`.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

fn render(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// Builds the path of a child key: `child(path, "tls")` is `path.tls`.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Builds the path of a list item: `item(path, 2)` is `path[2]`.
pub(crate) fn item(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}
