//! `debug`: prints what passes, for trying a config out.

use serde::Deserialize;

/// How much the `debug` exporter prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// A summary line per signal every 5 s, when anything arrived. The default.
    #[default]
    Basic,
    /// A line per request with its item count.
    Normal,
    /// Every request, as OTLP/JSON.
    Detailed,
}

/// The `debug` exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugExporterConfig {
    /// `basic`, `normal` or `detailed`. Default basic.
    pub verbosity: Verbosity,
}
