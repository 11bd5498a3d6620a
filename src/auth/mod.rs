//! Tenants and authentication at the two edges of the process.
//!
//! - [`metadata`]: the client metadata a receiver keeps with a request
//!   (`include_metadata`), which travels next to the request's bytes through
//!   every stage, the sending queue and retries.
//! - [`headers_setter`]: turns a request's metadata into the headers of
//!   every backend call made for it (`X-Scope-OrgID` from the client's).
//! - [`bearer`]: the receivers' bearer token check, with a token file that
//!   is re-read when it changes.
//!
//! This module never logs a header value or a token, and the `Debug` of
//! everything here shows header names only.

pub mod bearer;
pub mod headers_setter;
pub mod metadata;

pub use bearer::BearerTokenAuth;
pub use headers_setter::HeadersSetter;
pub use metadata::{Metadata, MetadataKeys};
