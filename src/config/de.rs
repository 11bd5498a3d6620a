//! Serde plumbing shared by the config structs: YAML `null` handling, keys we
//! recognise but refuse, and the parse that records the key path of an error.

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer};

use super::ConfigError;

/// Reads a value that YAML may leave empty (`tls:` with nothing after it):
/// null means "all defaults", as in the collector.
pub(crate) fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Reads an optional block whose presence alone means something (`grpc:`
/// enables the gRPC server even with no settings). Used with
/// `#[serde(default)]`, so an absent key is `None` and a present one, null or
/// not, is `Some`.
pub(crate) fn present<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    null_as_default(de).map(Some)
}

/// A collector key that otlp-lb recognises but does not implement. Setting it
/// is an error naming the key, never silently ignored; the only value a
/// config can hold is the default (the key absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsupported;

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Unsupported, D::Error> {
        Err(de::Error::custom("not supported by otlp-lb"))
    }
}

/// Parses one YAML document into `T`, naming the key path of the first error.
pub(crate) fn from_yaml_str<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let has_content = text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && line != "---" && line != "..."
    });
    if !has_content {
        return Err(ConfigError::new("", "the configuration is empty"));
    }
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let e = e.without_snippet();
        let message = e.render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
        ConfigError::new(path_of(path.as_deref()), tidy_message(&message))
    })
}

/// The error path as we print it: the document root is the empty path, and
/// a key that could not be read (`?`) is left off.
fn path_of(path: Option<&str>) -> String {
    let mut path = path.unwrap_or_default();
    while let Some(parent) = path.strip_suffix(".?").or(path.strip_suffix("?")) {
        path = parent;
    }
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

/// Rewords parser messages for a YAML user: quotes instead of serde's
/// backticks, no advice about parser options, and the location in brackets.
fn tidy_message(message: &str) -> String {
    let mut message = message
        .replace('`', "\"")
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    for (ty, expected) in [
        ("u16", "an integer from 0 to 65535"),
        ("u32", "an integer from 0 to 4294967295"),
        ("u64", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("i64", "an integer"),
        ("f64", "a number"),
        ("bool", "true or false"),
    ] {
        if let Some(rest) = message.strip_prefix(&format!("invalid {ty}")) {
            message = format!("invalid value: expected {expected}{rest}");
            break;
        }
    }
    if let Some(at) = message.rfind(" at line ") {
        let location = message[at + " at ".len()..].to_owned();
        if location.contains(", column ") {
            message.truncate(at);
            message = format!("{message} ({location})");
        }
    }
    message
}
