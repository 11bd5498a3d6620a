//! The `bearertokenauth` extension as a server authenticator: a request is
//! let in only when its `Authorization` header (or the configured one) is
//! `Bearer <token>` for one of the configured tokens.
//!
//! Tokens are compared in constant time, never logged, and never echoed to
//! the client. A token file is checked for changes every
//! [`FILE_CHECK_INTERVAL`] and re-read when it changed, so a rotated
//! Kubernetes secret takes effect without a restart; a file that cannot be
//! read or holds no token keeps the tokens read last.

use std::{
    collections::BTreeMap,
    fmt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName};

use crate::{
    component::{BuildError, Tasks},
    config::{ComponentId, Config, auth::BearerTokenAuthConfig, extensions::ExtensionConfig},
};

/// Starts every `bearertokenauth` extension listed in `service.extensions`,
/// by id; their token-file watchers go into `tasks.background`.
pub fn start_all(
    config: &Config,
    tasks: &mut Tasks,
) -> Result<BTreeMap<ComponentId, Arc<BearerTokenAuth>>, BuildError> {
    let mut out = BTreeMap::new();
    for id in &config.service.extensions {
        if let Some(ExtensionConfig::BearerTokenAuth(c)) = config.extensions.get(id) {
            let auth = BearerTokenAuth::from_config(id.as_str(), c)
                .map_err(|e| BuildError::new(format!("extensions.{id}"), e))?;
            if auth.file.is_some() {
                tasks
                    .background
                    .push(tokio::spawn(auth.clone().watch(FILE_CHECK_INTERVAL)));
            }
            out.insert(id.clone(), auth);
        }
    }
    Ok(out)
}

/// How often a token file is checked for changes.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One `bearertokenauth` extension.
pub struct BearerTokenAuth {
    name: String,
    header: HeaderName,
    scheme: String,
    /// The accepted header values, `scheme token`.
    accepted: ArcSwap<Vec<Box<[u8]>>>,
    file: Option<PathBuf>,
    /// The token file's modification time and size when it was read at start.
    read_at_start: Option<(SystemTime, u64)>,
}

/// A file's modification time and size: what says it changed.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Why a `bearertokenauth` could not start. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read.
    #[error("filename {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The read error.
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("filename {0}: the file holds no token")]
    Empty(String),
    /// The header name is not valid.
    #[error("header: not a valid header name")]
    Header,
}

/// The tokens of a token file: one per non-blank line, trimmed.
fn tokens_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl BearerTokenAuth {
    /// The authenticator of a validated config named `name`; reads the
    /// token file once.
    pub fn from_config(
        name: &str,
        config: &BearerTokenAuthConfig,
    ) -> Result<Arc<BearerTokenAuth>, AuthError> {
        let header = HeaderName::try_from(config.header.as_str()).map_err(|_| AuthError::Header)?;
        let file = config.filename.as_ref().map(PathBuf::from);
        let auth = BearerTokenAuth {
            name: name.to_owned(),
            header,
            scheme: config.scheme.clone(),
            accepted: ArcSwap::from_pointee(Vec::new()),
            read_at_start: file.as_deref().and_then(stamp),
            file,
        };
        let tokens: Vec<String> = match &config.filename {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| AuthError::File {
                    path: path.clone(),
                    source,
                })?;
                let tokens = tokens_of(&text);
                if tokens.is_empty() {
                    return Err(AuthError::Empty(path.clone()));
                }
                tokens
            }
            None => config
                .token
                .iter()
                .chain(&config.tokens)
                .map(|t| t.expose().trim().to_owned())
                .collect(),
        };
        auth.set_tokens(&tokens);
        Ok(Arc::new(auth))
    }

    fn set_tokens(&self, tokens: &[String]) {
        let accepted = tokens
            .iter()
            .map(|t| {
                if self.scheme.is_empty() {
                    t.as_bytes().into()
                } else {
                    format!("{} {t}", self.scheme).into_bytes().into()
                }
            })
            .collect();
        self.accepted.store(Arc::new(accepted));
    }

    /// True when `headers` carry an accepted credential. Every configured
    /// token is compared, each in constant time, so the time taken does not
    /// tell how much of a guess was right.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let accepted = self.accepted.load();
        let mut ok = false;
        for value in headers.get_all(&self.header) {
            for token in accepted.iter() {
                ok |= constant_time_eq(value.as_bytes(), token);
            }
        }
        ok
    }

    /// Re-reads the token file whenever its modification time or size
    /// changes, checking every `every`; returns at once when there is no
    /// file. Runs until dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let mut last = self.read_at_start;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            match std::fs::read_to_string(&path).map(|t| tokens_of(&t)) {
                Ok(tokens) if !tokens.is_empty() => {
                    self.set_tokens(&tokens);
                    tracing::info!(extension = %self.name, file = %path.display(), tokens = tokens.len(), "token file re-read");
                }
                Ok(_) => {
                    tracing::warn!(extension = %self.name, file = %path.display(), "token file holds no token; keeping the tokens read before");
                }
                Err(e) => {
                    tracing::warn!(extension = %self.name, file = %path.display(), "cannot re-read the token file, keeping the tokens read before: {e}");
                }
            }
        }
    }
}

/// Name, header and scheme; never a token.
impl fmt::Debug for BearerTokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokenAuth")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Compares without stopping at the first difference. Only the length can
/// be told apart by timing, which a token's format gives away anyway.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::config::auth::Secret;

    fn with(header: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::try_from(header).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        );
        h
    }

    #[test]
    fn right_token_scheme_and_header_pass() {
        let config = BearerTokenAuthConfig {
            tokens: vec![Secret::new("old"), Secret::new("new")],
            ..Default::default()
        };
        let auth = BearerTokenAuth::from_config("b", &config).unwrap();
        assert!(auth.check(&with("authorization", "Bearer old")));
        assert!(auth.check(&with("Authorization", "Bearer new")));
        assert!(!auth.check(&with("authorization", "Bearer neW")));
        assert!(!auth.check(&with("authorization", "new")));
        assert!(!auth.check(&with("authorization", "Basic new")));
        assert!(!auth.check(&with("x-token", "Bearer new")));
        assert!(!auth.check(&HeaderMap::new()));
        assert!(!format!("{auth:?}").contains("new"));

        let config = BearerTokenAuthConfig {
            header: "X-Token".into(),
            scheme: String::new(),
            token: Some(Secret::new("t")),
            ..Default::default()
        };
        let auth = BearerTokenAuth::from_config("b", &config).unwrap();
        assert!(auth.check(&with("x-token", "t")));
        assert!(!auth.check(&with("authorization", "Bearer t")));
    }

    #[tokio::test]
    async fn a_changed_token_file_is_re_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let config = BearerTokenAuthConfig {
            filename: Some(path.display().to_string()),
            ..Default::default()
        };
        let auth = BearerTokenAuth::from_config("b", &config).unwrap();
        assert!(auth.check(&with("authorization", "Bearer first")));
        let watching = tokio::spawn(auth.clone().watch(Duration::from_millis(10)));
        // A different size, so the change shows even within one mtime tick.
        std::fs::write(&path, "second-token\n").unwrap();
        for _ in 0..500 {
            if auth.check(&with("authorization", "Bearer second-token")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(auth.check(&with("authorization", "Bearer second-token")));
        assert!(!auth.check(&with("authorization", "Bearer first")));
        // An emptied file keeps the last tokens.
        std::fs::write(&path, "\n").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(auth.check(&with("authorization", "Bearer second-token")));
        watching.abort();
    }
}
