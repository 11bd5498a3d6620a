//! The `static` resolver: a fixed list of `host[:port]`, resolved once.
//! (`static` is a keyword, hence the module name.)

use std::collections::BTreeSet;

use futures::StreamExt;

use super::{Resolutions, Update, Updates, with_port};

/// The default OTLP/gRPC port, appended to hostnames without one.
pub const DEFAULT_PORT: u16 = 4317;

/// One `Reset` with the hostnames (ports defaulted), then nothing more.
pub fn resolve(hostnames: &[String], resolutions: Resolutions) -> Updates {
    let set: BTreeSet<String> = hostnames
        .iter()
        .map(|h| with_port(h, DEFAULT_PORT))
        .collect();
    resolutions.record(true);
    futures::stream::once(async move { Update::Reset(set) })
        .chain(futures::stream::pending())
        .boxed()
}
