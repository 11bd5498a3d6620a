//! `debug`: prints what passes, for trying a config out.

use serde::Deserialize;

/// How much the `debug` exporter prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One line per request with item counts. The default.
    #[default]
    Basic,
    /// One line per item.
    Normal,
    /// Every field of every item.
    Detailed,
}

/// The `debug` exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugExporterConfig {
    /// `basic`, `normal` or `detailed`. Default basic.
    pub verbosity: Verbosity,
}
