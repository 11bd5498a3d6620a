//! The client metadata kept with a request: the values of the few incoming
//! headers that `headers_setter` rules read (`from_context`), and nothing
//! else, so arbitrary client headers are never forwarded.
//!
//! A [`Metadata`] is one pointer: `None` when nothing is kept (the hot path
//! without tenants allocates nothing), else a shared, immutable list that a
//! clone only counts. It belongs to one client request: stages pass it on
//! with that request's bytes and never merge two requests' metadata, so the
//! parts of different tenants never share a backend call.

use std::{fmt, sync::Arc};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The metadata of one client request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(Option<Arc<[(HeaderName, HeaderValue)]>>);

impl Metadata {
    /// No metadata.
    pub const NONE: Metadata = Metadata(None);

    /// Metadata holding `pairs` (names lower case, as [`HeaderName`]s are).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Metadata {
        let pairs: Vec<_> = pairs.into_iter().collect();
        if pairs.is_empty() {
            Metadata::NONE
        } else {
            Metadata(Some(pairs.into()))
        }
    }

    /// The value kept for `key`.
    pub fn get(&self, key: &HeaderName) -> Option<&HeaderValue> {
        self.pairs().iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every (name, value) kept.
    pub fn pairs(&self) -> &[(HeaderName, HeaderValue)] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// Names only: values may be credentials.
impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.pairs().iter().map(|(k, _)| k))
            .finish()
    }
}

/// The incoming header names a receiver keeps with each request.
#[derive(Debug, Clone, Default)]
pub struct MetadataKeys(Arc<[HeaderName]>);

impl MetadataKeys {
    /// Keeps `keys`; names that are not valid header names are left out
    /// (the config's validation has refused them already).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> MetadataKeys {
        let mut keys: Vec<HeaderName> = keys
            .into_iter()
            .filter_map(|k| HeaderName::try_from(k.as_ref()).ok())
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        keys.dedup();
        MetadataKeys(keys.into())
    }

    /// The metadata of a request with these headers: the first value of
    /// each kept name it has. Allocates only when some name is present.
    pub fn extract(&self, headers: &HeaderMap) -> Metadata {
        if self.0.is_empty() {
            return Metadata::NONE;
        }
        Metadata::from_pairs(
            self.0
                .iter()
                .filter_map(|k| headers.get(k).map(|v| (k.clone(), v.clone()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_keys_are_kept_and_debug_shows_no_value() {
        let keys = MetadataKeys::new(["X-Scope-OrgID", "x-scope-orgid"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-scope-orgid", HeaderValue::from_static("tenant-a"));
        headers.insert("authorization", HeaderValue::from_static("Bearer hush"));
        let metadata = keys.extract(&headers);
        assert_eq!(metadata.pairs().len(), 1);
        let key = HeaderName::from_static("x-scope-orgid");
        assert_eq!(metadata.get(&key).unwrap(), "tenant-a");
        let shown = format!("{metadata:?}");
        assert_eq!(shown, r#"{"x-scope-orgid"}"#);
        assert!(MetadataKeys::default().extract(&headers).is_empty());
        assert!(keys.extract(&HeaderMap::new()).is_empty());
    }
}
