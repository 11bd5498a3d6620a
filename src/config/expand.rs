//! `${env:VAR}`, `${VAR}` and `${env:VAR:-default}` references, expanded in
//! the raw text before it is parsed, as the collector's env provider does;
//! `${file:PATH}`, as the collector's file provider, for a value kept in a
//! file (a mounted secret): the file's text, without its final line break.
//! Only one-line files can be inserted this way (a token, a password), and
//! they are read once, at load.
//!
//! `$$` is a literal `$`; any other `$` is left alone. An unset variable
//! expands to the empty string, like the collector; `:-default` applies when
//! the variable is unset or empty. Expanded values are not expanded again.
//! Whole-line comments are copied untouched, so a commented-out reference
//! can never fail a load.

use super::ConfigError;

/// Expands references from the process environment.
pub fn expand_env(text: &str) -> Result<String, ConfigError> {
    expand(text, |name| std::env::var(name).ok())
}

/// Expands references, looking variables up with `lookup`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        expand_line(line, index + 1, &lookup, &mut out)?;
    }
    Ok(out)
}

fn expand_line(
    line: &str,
    number: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), ConfigError> {
    let error = |message: String| ConfigError::new("", format!("line {number}: {message}"));
    let mut rest = line;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('{') {
            let Some(close) = a.find('}') else {
                return Err(error(
                    "unterminated \"${\" (a literal $ is written $$)".into(),
                ));
            };
            let reference = &a[..close];
            out.push_str(&resolve(reference, lookup).map_err(|e| error(e.to_string()))?);
            rest = &a[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

/// Why one `${...}` could not be expanded.
#[derive(Debug, thiserror::Error)]
enum ReferenceError {
    /// A provider other than `env` and `file` (`${http:...}`).
    #[error(
        "\"${{{reference}}}\": config provider \"{scheme}\" is not supported by otlp-lb (only env and file)"
    )]
    Provider { reference: String, scheme: String },
    /// `${file:PATH}` could not be read.
    #[error("\"${{file:{path}}}\": cannot read the file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// `${file:PATH}` holds more than one line.
    #[error(
        "\"${{file:{path}}}\": the file holds more than one line; otlp-lb inserts one-line values only"
    )]
    MultiLine { path: String },
    /// Not an environment variable name.
    #[error("\"${{{reference}}}\": \"{name}\" is not a valid environment variable name")]
    Name { reference: String, name: String },
}

/// Resolves the inside of one `${...}`.
fn resolve(
    reference: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, ReferenceError> {
    if let Some(path) = reference.strip_prefix("file:") {
        return read_file(path);
    }
    let body = match reference.strip_prefix("env:") {
        Some(body) => body,
        None => {
            if let Some((scheme, tail)) = reference.split_once(':')
                && !tail.starts_with('-')
                && is_scheme(scheme)
            {
                return Err(ReferenceError::Provider {
                    reference: reference.to_owned(),
                    scheme: scheme.to_owned(),
                });
            }
            reference
        }
    };
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_env_name(name) {
        return Err(ReferenceError::Name {
            reference: reference.to_owned(),
            name: name.to_owned(),
        });
    }
    let value = lookup(name).unwrap_or_default();
    Ok(match default {
        Some(default) if value.is_empty() => default.to_owned(),
        _ => value,
    })
}

/// The text of the file at `path` for `${file:PATH}`, without its final
/// line break. The content is never put in an error: it may be a secret.
fn read_file(path: &str) -> Result<String, ReferenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReferenceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if text.contains(['\n', '\r']) {
        return Err(ReferenceError::MultiLine {
            path: path.to_owned(),
        });
    }
    Ok(text.to_owned())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_scheme(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("collector".into()),
            "PORT" => Some("4317".into()),
            "EMPTY" => Some(String::new()),
            "NESTED" => Some("${HOST}".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, ConfigError> {
        expand(text, env)
    }

    #[test]
    fn file_references_insert_a_one_line_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let text = format!("a: \"Bearer ${{file:{}}}\"\n", token.display());
        assert_eq!(run(&text).unwrap(), "a: \"Bearer s3cret\"\n");
        std::fs::write(&token, "one\ntwo\n").unwrap();
        let err = run(&text).unwrap_err().to_string();
        assert!(err.contains("more than one line"), "{err}");
        assert!(!err.contains("one\ntwo") && !err.contains("two"), "{err}");
        let missing = format!("a: ${{file:{}/none}}\n", dir.path().display());
        assert!(
            run(&missing)
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }

    #[test]
    fn expands_both_forms() {
        assert_eq!(
            run("endpoint: ${env:HOST}:${PORT}\n").unwrap(),
            "endpoint: collector:4317\n"
        );
    }

    #[test]
    fn unset_is_empty_and_defaults_apply_when_unset_or_empty() {
        assert_eq!(run("a: [${UNSET}]").unwrap(), "a: []");
        assert_eq!(run("a: ${env:UNSET:-7}").unwrap(), "a: 7");
        assert_eq!(run("a: ${UNSET:-x:y}").unwrap(), "a: x:y");
        assert_eq!(run("a: ${env:EMPTY:-d}").unwrap(), "a: d");
        assert_eq!(run("a: ${env:PORT:-1}").unwrap(), "a: 4317");
        assert_eq!(run("a: ${env:UNSET:-}").unwrap(), "a: ");
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        assert_eq!(run("a: $${HOST}").unwrap(), "a: ${HOST}");
        assert_eq!(run("a: $$$$").unwrap(), "a: $$");
        assert_eq!(run("a: cost$5 $HOST $").unwrap(), "a: cost$5 $HOST $");
    }

    #[test]
    fn values_are_not_expanded_again() {
        assert_eq!(run("a: ${NESTED}").unwrap(), "a: ${HOST}");
    }

    #[test]
    fn whole_line_comments_are_left_alone() {
        let text = "  # e.g. ${file:/x} or ${\na: ${HOST} # ${PORT}\n";
        assert_eq!(
            run(text).unwrap(),
            "  # e.g. ${file:/x} or ${\na: collector # 4317\n"
        );
    }

    #[test]
    fn malformed_references_name_the_line() {
        let e = run("a: 1\nb: ${HOST\n").unwrap_err();
        assert_eq!(e.path, "");
        assert_eq!(
            e.to_string(),
            "line 2: unterminated \"${\" (a literal $ is written $$)"
        );
        let e = run("a: ${http://x}").unwrap_err();
        assert_eq!(
            e.message,
            "line 1: \"${http://x}\": config provider \"http\" is not supported by otlp-lb \
             (only env and file)"
        );
        let e = run("a: ${1BAD}").unwrap_err();
        assert_eq!(
            e.message,
            "line 1: \"${1BAD}\": \"1BAD\" is not a valid environment variable name"
        );
        assert!(run("a: ${}").is_err());
        assert!(run("a: ${env:A-B}").is_err());
    }
}
