//! The `static` resolver: a fixed list of endpoints, resolved once.
//! (`static` is a keyword, hence the module name.)
//!
//! The config has already parsed each entry and given a missing port the
//! default (`config::exporters::DEFAULT_BACKEND_PORT`), so this only
//! publishes the set.

use std::collections::BTreeSet;

use futures::StreamExt;

use super::{Resolutions, Update, Updates};
use crate::config::endpoint::Endpoint;

/// One `Reset` with the endpoints, then nothing more.
pub fn resolve(endpoints: &[Endpoint], resolutions: Resolutions) -> Updates {
    let set: BTreeSet<Endpoint> = endpoints.iter().cloned().collect();
    resolutions.record_endpoints(set.len());
    futures::stream::once(async move { Update::Reset(set) })
        .chain(futures::stream::pending())
        .boxed()
}
