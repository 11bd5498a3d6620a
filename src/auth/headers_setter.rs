//! The `headers_setter` extension at run time: the headers of every
//! outgoing call, from fixed values and the request's [`Metadata`].
//!
//! Exporters apply it per backend call, on top of their static `headers`,
//! with the metadata of the one client request the call carries data of.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Metadata;
use crate::config::auth::{HeaderAction, HeadersSetterConfig};

/// Where a rule's value comes from.
enum Source {
    Fixed(HeaderValue),
    Context {
        key: HeaderName,
        default: Option<HeaderValue>,
    },
    Nothing,
}

struct Rule {
    key: HeaderName,
    action: HeaderAction,
    source: Source,
}

/// The rules of one `headers_setter`, parsed once.
pub struct HeadersSetter {
    rules: Vec<Rule>,
}

/// A rule whose name or value is not a valid header. The value is never
/// shown.
#[derive(Debug, thiserror::Error)]
#[error("headers[{index}]: {message}")]
pub struct SetterError {
    index: usize,
    message: String,
}

impl HeadersSetter {
    /// The setter of a validated `headers_setter` config.
    pub fn from_config(config: &HeadersSetterConfig) -> Result<HeadersSetter, SetterError> {
        let mut rules = Vec::with_capacity(config.headers.len());
        for (index, rule) in config.headers.iter().enumerate() {
            let fail = |message: &str| SetterError {
                index,
                message: message.to_owned(),
            };
            let name = |text: &str| {
                HeaderName::try_from(text).map_err(|_| fail("not a valid header name"))
            };
            // Marked sensitive: HTTP/2 never indexes it, `Debug` hides it.
            let value = |text: &str| {
                HeaderValue::try_from(text)
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| fail("not a valid header value"))
            };
            let source = match (&rule.value, &rule.from_context) {
                _ if rule.action == HeaderAction::Delete => Source::Nothing,
                (Some(fixed), _) => Source::Fixed(value(fixed.expose())?),
                (None, Some(key)) => Source::Context {
                    key: name(&key.to_ascii_lowercase())?,
                    default: rule
                        .default_value
                        .as_ref()
                        .map(|d| value(d.expose()))
                        .transpose()?,
                },
                (None, None) => Source::Nothing,
            };
            rules.push(Rule {
                key: name(&rule.key)?,
                action: rule.action,
                source,
            });
        }
        Ok(HeadersSetter { rules })
    }

    /// Applies the rules to the headers of one outgoing call made for a
    /// request with `metadata`.
    pub fn apply(&self, metadata: &Metadata, headers: &mut HeaderMap) {
        for rule in &self.rules {
            let value = match &rule.source {
                Source::Fixed(v) => Some(v),
                Source::Context { key, default } => metadata.get(key).or(default.as_ref()),
                Source::Nothing => None,
            };
            let present = headers.contains_key(&rule.key);
            match (rule.action, value) {
                (HeaderAction::Delete, _) => {
                    headers.remove(&rule.key);
                }
                (_, None) => {}
                (HeaderAction::Insert, Some(_)) if present => {}
                (HeaderAction::Update, Some(_)) if !present => {}
                (_, Some(v)) => {
                    let mut v = v.clone();
                    v.set_sensitive(true);
                    headers.insert(rule.key.clone(), v);
                }
            }
        }
    }
}

/// Header names and actions only.
impl fmt::Debug for HeadersSetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| (r.key.as_str(), r.action)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::{HeaderRule, Secret};

    fn rule(key: &str, action: HeaderAction) -> HeaderRule {
        HeaderRule {
            key: key.into(),
            action,
            value: None,
            from_context: None,
            default_value: None,
            from_attribute: Default::default(),
        }
    }

    #[test]
    fn actions_follow_the_collector() {
        let config = HeadersSetterConfig {
            headers: vec![
                HeaderRule {
                    from_context: Some("X-Scope-OrgID".into()),
                    default_value: Some(Secret::new("anonymous")),
                    ..rule("X-Scope-OrgID", HeaderAction::Upsert)
                },
                HeaderRule {
                    value: Some(Secret::new("new")),
                    ..rule("x-present", HeaderAction::Insert)
                },
                HeaderRule {
                    value: Some(Secret::new("new")),
                    ..rule("x-absent", HeaderAction::Update)
                },
                HeaderRule {
                    value: Some(Secret::new("new")),
                    ..rule("x-updated", HeaderAction::Update)
                },
                rule("x-gone", HeaderAction::Delete),
            ],
        };
        let setter = HeadersSetter::from_config(&config).unwrap();
        let base = || {
            let mut h = HeaderMap::new();
            for k in ["x-present", "x-updated", "x-gone"] {
                h.insert(k, HeaderValue::from_static("old"));
            }
            h
        };
        let tenant = Metadata::from_pairs([(
            HeaderName::from_static("x-scope-orgid"),
            HeaderValue::from_static("tenant-a"),
        )]);
        let mut h = base();
        setter.apply(&tenant, &mut h);
        assert_eq!(h["x-scope-orgid"], "tenant-a");
        assert_eq!(h["x-present"], "old", "insert keeps what is there");
        assert!(
            !h.contains_key("x-absent"),
            "update sets only what is there"
        );
        assert_eq!(h["x-updated"], "new");
        assert!(!h.contains_key("x-gone"));
        assert!(h["x-scope-orgid"].is_sensitive());

        let mut h = base();
        setter.apply(&Metadata::NONE, &mut h);
        assert_eq!(h["x-scope-orgid"], "anonymous", "default_value");
        assert!(!format!("{setter:?}").contains("anonymous"));
    }
}
