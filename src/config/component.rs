//! Component and pipeline ids (`otlp`, `loadbalancing/traces`, `traces/2`),
//! and the dispatch that reads each component's settings by its type.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::signal::Signal;

/// Why a component or pipeline id could not be read; says what is wrong
/// with which id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(String);

/// A component id: `TYPE` or `TYPE/NAME`, as keys under `receivers`,
/// `processors`, `exporters` and `extensions` and in pipeline lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    id: String,
    type_len: usize,
}

impl ComponentId {
    /// Parses `TYPE[/NAME]`. The type is a letter followed by letters, digits
    /// or `_`; the name is any non-empty text without whitespace.
    pub fn parse(text: &str) -> Result<ComponentId, IdError> {
        let (ty, name) = match text.split_once('/') {
            Some((ty, name)) => (ty, Some(name)),
            None => (text, None),
        };
        let mut chars = ty.chars();
        let type_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !type_ok {
            return Err(IdError(format!(
                "invalid component id \"{text}\": the type must start with a letter and \
                 hold only letters, digits and _"
            )));
        }
        if let Some(name) = name
            && (name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(IdError(format!(
                "invalid component id \"{text}\": the name after \"/\" must be non-empty, \
                 without whitespace"
            )));
        }
        Ok(ComponentId {
            id: text.to_owned(),
            type_len: ty.len(),
        })
    }

    /// The component type, the part before `/` (`loadbalancing`).
    pub fn type_name(&self) -> &str {
        &self.id[..self.type_len]
    }

    /// The name after `/`, if any (`traces` in `loadbalancing/traces`).
    pub fn name(&self) -> Option<&str> {
        self.id.get(self.type_len + 1..)
    }

    /// The whole id as written.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl FromStr for ComponentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<ComponentId, IdError> {
        ComponentId::parse(s)
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<ComponentId, D::Error> {
        let text = String::deserialize(de)?;
        ComponentId::parse(&text).map_err(de::Error::custom)
    }
}

/// A pipeline id under `service.pipelines`: `traces`, `metrics`, `logs`, or
/// one of those followed by `/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    /// The signal the pipeline carries.
    pub signal: Signal,
    /// The name after `/`, if any.
    pub name: Option<String>,
}

impl PipelineId {
    /// Parses `traces`, `metrics`, `logs`, optionally followed by `/NAME`.
    pub fn parse(text: &str) -> Result<PipelineId, IdError> {
        let id = ComponentId::parse(text)?;
        let signal = Signal::from_pipeline_id(text).ok_or_else(|| {
            IdError(format!(
                "unknown pipeline type \"{}\"; expected traces, metrics or logs",
                id.type_name()
            ))
        })?;
        Ok(PipelineId {
            signal,
            name: id.name().map(str::to_owned),
        })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.signal),
            None => write!(f, "{}", self.signal),
        }
    }
}

impl<'de> Deserialize<'de> for PipelineId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<PipelineId, D::Error> {
        let text = String::deserialize(de)?;
        PipelineId::parse(&text).map_err(de::Error::custom)
    }
}

/// A family of components (receivers, processors, ...) whose settings are
/// read by the type in their id.
pub(crate) trait ComponentKind: Sized {
    /// The singular noun used in errors (`processor`).
    const KIND: &'static str;
    /// The component types otlp-lb implements, by their current names, for
    /// the unknown-type error.
    const SUPPORTED: &'static [&'static str];
    /// Deprecated names the collector still accepts, with the current name
    /// each stands for (`loadbalancing` for `load_balancing`).
    const ALIASES: &'static [(&'static str, &'static str)] = &[];

    /// The current name of `type_name`, and whether `type_name` is a
    /// deprecated alias of it.
    fn current_name(type_name: &str) -> (&str, bool) {
        match Self::ALIASES.iter().find(|(old, _)| *old == type_name) {
            Some((_, current)) => (current, true),
            None => (type_name, false),
        }
    }

    /// Reads the settings of a component of type `type_name`; `None` when the
    /// type is not one of [`Self::SUPPORTED`].
    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>>;
}

/// Serde `deserialize_with` for a component section: a map (or null) from
/// component id to settings, dispatched on each id's type.
pub(crate) fn deserialize_components<'de, D, T>(de: D) -> Result<BTreeMap<ComponentId, T>, D::Error>
where
    D: Deserializer<'de>,
    T: ComponentKind,
{
    de.deserialize_option(SectionVisitor(PhantomData))
}

struct SectionVisitor<T>(PhantomData<T>);

impl<'de, T: ComponentKind> Visitor<'de> for SectionVisitor<T> {
    type Value = BTreeMap<ComponentId, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map from {} id to its settings", T::KIND)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let (id, settings) = map.next_value_seed(ComponentSeed::<T> {
                key,
                kind: PhantomData,
            })?;
            out.insert(id, settings);
        }
        Ok(out)
    }
}

/// Reads one component's settings. The id is checked here, inside the value,
/// so that an error names the component's path (`processors.batch`).
struct ComponentSeed<T> {
    key: String,
    kind: PhantomData<T>,
}

impl<'de, T: ComponentKind> DeserializeSeed<'de> for ComponentSeed<T> {
    type Value = (ComponentId, T);

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let id = ComponentId::parse(&self.key).map_err(de::Error::custom)?;
        match T::deserialize_typed(T::current_name(id.type_name()).0, de) {
            Some(settings) => Ok((id, settings?)),
            None => Err(de::Error::custom(format!(
                "unknown {} type \"{}\"; otlp-lb supports: {}",
                T::KIND,
                id.type_name(),
                T::SUPPORTED.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids() {
        let id = ComponentId::parse("loadbalancing/traces").unwrap();
        assert_eq!(id.type_name(), "loadbalancing");
        assert_eq!(id.name(), Some("traces"));
        assert_eq!(id.to_string(), "loadbalancing/traces");
        let id = ComponentId::parse("otlp").unwrap();
        assert_eq!((id.type_name(), id.name()), ("otlp", None));
        assert_eq!(ComponentId::parse("otlp/a/b").unwrap().name(), Some("a/b"));
        assert!(ComponentId::parse("").is_err());
        assert!(ComponentId::parse("otlp/").is_err());
        assert!(ComponentId::parse("1otlp").is_err());
        assert!(ComponentId::parse("ot-lp").is_err());
        assert!(ComponentId::parse("otlp/a b").is_err());
    }

    #[test]
    fn pipeline_ids() {
        let id = PipelineId::parse("metrics/fast").unwrap();
        assert_eq!(id.signal, Signal::Metrics);
        assert_eq!(id.name.as_deref(), Some("fast"));
        assert_eq!(id.to_string(), "metrics/fast");
        assert_eq!(PipelineId::parse("logs").unwrap().to_string(), "logs");
        assert_eq!(
            PipelineId::parse("profiles").map_err(|e| e.to_string()),
            Err("unknown pipeline type \"profiles\"; expected traces, metrics or logs".into())
        );
    }
}
