//! Authentication settings: the `auth: { authenticator: ID }` block of a
//! receiver protocol or an exporter, and the two authenticator extensions,
//! `headers_setter` (outgoing headers, for tenants) and `bearertokenauth`
//! (incoming bearer tokens), in the collector's shape.
//!
//! Values that may be credentials are [`Secret`]s: their `Debug` never
//! shows them.

use serde::Deserialize;

use super::component::ComponentId;
use super::de::{Unsupported, null_as_default};
use super::error::{ConfigError, child, item};

/// A configured value that may be a credential (a header value, a token).
/// `Debug` prints `"<redacted>"`; the value is read with [`Secret::expose`],
/// so every place that uses it is easy to find.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `auth:` on a receiver protocol or an exporter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The id of the authenticator extension: a `bearertokenauth` on a
    /// receiver, a `headers_setter` on an exporter. It must be configured
    /// under `extensions` and listed in `service.extensions`.
    pub authenticator: ComponentId,
}

/// What a `headers_setter` rule does to an outgoing request's header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    /// Set the header only when the request does not have it yet.
    Insert,
    /// Replace the header only when the request already has it.
    Update,
    /// Set the header, replacing any value it had. The default.
    #[default]
    Upsert,
    /// Remove the header.
    Delete,
}

/// One rule of a `headers_setter`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// The outgoing header's name (required).
    pub key: String,
    /// `insert`, `update`, `upsert` or `delete`. Default upsert.
    #[serde(default)]
    pub action: HeaderAction,
    /// A fixed value.
    #[serde(default)]
    pub value: Option<Secret>,
    /// The name of the incoming request's header (gRPC metadata) whose value
    /// is sent; the receiver must have `include_metadata: true`, and only
    /// the keys named here are kept with requests.
    #[serde(default)]
    pub from_context: Option<String>,
    /// Sent when `from_context` finds no value; without it the header is
    /// left out.
    #[serde(default)]
    pub default_value: Option<Secret>,
    /// Not supported by otlp-lb: there are no authenticator attributes.
    #[serde(default)]
    pub from_attribute: Unsupported,
}

/// The `headers_setter` extension: headers set on every outgoing request of
/// the exporters that name it in `auth.authenticator`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersSetterConfig {
    /// The rules, applied in order (required, at least one).
    #[serde(deserialize_with = "null_as_default")]
    pub headers: Vec<HeaderRule>,
}

impl HeadersSetterConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let headers = child(path, "headers");
        if self.headers.is_empty() {
            return Err(ConfigError::new(headers, "must list at least one header"));
        }
        for (i, rule) in self.headers.iter().enumerate() {
            let at = item(&headers, i);
            if http::HeaderName::try_from(rule.key.as_str()).is_err() {
                return Err(ConfigError::new(
                    child(&at, "key"),
                    format!("\"{}\" is not a valid header name", rule.key),
                ));
            }
            if let Some(from) = &rule.from_context
                && http::HeaderName::try_from(from.as_str()).is_err()
            {
                return Err(ConfigError::new(
                    child(&at, "from_context"),
                    format!("\"{from}\" is not a valid header name"),
                ));
            }
            // The value is never shown: it may be a credential.
            for (key, value) in [
                ("value", &rule.value),
                ("default_value", &rule.default_value),
            ] {
                if let Some(v) = value
                    && http::HeaderValue::try_from(v.expose()).is_err()
                {
                    return Err(ConfigError::new(
                        child(&at, key),
                        "is not a valid header value (control characters?)",
                    ));
                }
            }
            let (value, from, default) = (
                rule.value.is_some(),
                rule.from_context.is_some(),
                rule.default_value.is_some(),
            );
            if rule.action == HeaderAction::Delete {
                if value || from || default {
                    return Err(ConfigError::new(
                        at,
                        "action: delete takes no value, from_context or default_value",
                    ));
                }
                continue;
            }
            if value == from {
                return Err(ConfigError::new(
                    at,
                    "exactly one of value, from_context must be set",
                ));
            }
            if default && !from {
                return Err(ConfigError::new(
                    child(&at, "default_value"),
                    "only used with from_context",
                ));
            }
        }
        Ok(())
    }

    /// The incoming header names the rules read (`from_context`), lower case.
    pub fn context_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.headers
            .iter()
            .filter_map(|r| r.from_context.as_deref())
            .map(str::to_ascii_lowercase)
    }
}

/// The `bearertokenauth` extension, as a server authenticator: a request is
/// let in only when its `header` holds `scheme` and one of the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BearerTokenAuthConfig {
    /// The header that carries the credential. Default `Authorization`.
    pub header: String,
    /// The scheme before the token. Default `Bearer`; empty means the
    /// header holds the token alone.
    pub scheme: String,
    /// The token.
    pub token: Option<Secret>,
    /// Several tokens, any of which is accepted (for rotation).
    #[serde(deserialize_with = "null_as_default")]
    pub tokens: Vec<Secret>,
    /// A file holding the token (one per line for several; blank lines and
    /// surrounding whitespace ignored). Re-read when it changes.
    pub filename: Option<String>,
}

impl Default for BearerTokenAuthConfig {
    fn default() -> BearerTokenAuthConfig {
        BearerTokenAuthConfig {
            header: "Authorization".into(),
            scheme: "Bearer".into(),
            token: None,
            tokens: Vec::new(),
            filename: None,
        }
    }
}

impl BearerTokenAuthConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if http::HeaderName::try_from(self.header.as_str()).is_err() {
            return Err(ConfigError::new(
                child(path, "header"),
                format!("\"{}\" is not a valid header name", self.header),
            ));
        }
        let set = [
            self.token.is_some(),
            !self.tokens.is_empty(),
            self.filename.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(ConfigError::new(
                path,
                "exactly one of token, tokens, filename must be set",
            ));
        }
        let inline = self.token.iter().chain(&self.tokens);
        if inline.clone().any(|t| t.expose().trim().is_empty()) {
            return Err(ConfigError::new(path, "a token must not be empty"));
        }
        if inline.clone().any(|t| t.expose().contains(['\r', '\n'])) {
            return Err(ConfigError::new(path, "a token must be one line"));
        }
        if self.filename.as_deref() == Some("") {
            return Err(ConfigError::new(
                child(path, "filename"),
                "must not be empty",
            ));
        }
        Ok(())
    }
}
