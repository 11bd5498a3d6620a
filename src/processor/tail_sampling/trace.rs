//! A buffered trace, and the regrouping of decided traces into requests.
//!
//! Spans are held decoded, next to shared handles on the resource and scope
//! they arrived under, so a trace costs its spans plus one small group record
//! per (request, scope) it arrived in. Export regroups by the resource and
//! scope *values*, so spans of one service that arrived in many requests
//! leave in one `ResourceSpans`.
//!
//! Export never cuts a trace: a request boundary always falls between traces.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;

use crate::proto::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{InstrumentationScope, KeyValue},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};

/// A trace id; the all-zero id is invalid in OTLP and never stored.
pub(super) type TraceId = [u8; 16];

/// The trace id of `span`, if it is a valid one.
pub(super) fn trace_id(span: &Span) -> Option<TraceId> {
    let id: TraceId = span.trace_id.as_slice().try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

/// Protobuf framing added to a span's own size when it sits in a request
/// (field tag and length prefix); enough for size accounting.
const SPAN_FRAMING: u64 = 6;

/// What a span arrived under: a resource or a scope, with its schema URL and
/// its encoding, which is the identity export groups by.
pub(super) struct Origin<T> {
    key: Vec<u8>,
    value: Option<T>,
    schema_url: String,
}

impl Origin<Resource> {
    /// The resource of one `ResourceSpans`.
    pub(super) fn resource(value: Option<Resource>, schema_url: String) -> Arc<Self> {
        let key = ResourceSpans {
            resource: value,
            scope_spans: Vec::new(),
            schema_url,
        };
        let encoded = key.encode_to_vec();
        Arc::new(Origin {
            key: encoded,
            value: key.resource,
            schema_url: key.schema_url,
        })
    }

    /// The resource attributes (empty when the resource is unset).
    pub(super) fn attributes(&self) -> &[KeyValue] {
        self.value.as_ref().map_or(&[], |r| &r.attributes)
    }
}

impl Origin<InstrumentationScope> {
    /// The scope of one `ScopeSpans`.
    pub(super) fn scope(value: Option<InstrumentationScope>, schema_url: String) -> Arc<Self> {
        let key = ScopeSpans {
            scope: value,
            spans: Vec::new(),
            schema_url,
        };
        let encoded = key.encode_to_vec();
        Arc::new(Origin {
            key: encoded,
            value: key.scope,
            schema_url: key.schema_url,
        })
    }
}

/// Spans of one trace that arrived under the same resource and scope.
pub(super) struct Group {
    pub(super) resource: Arc<Origin<Resource>>,
    pub(super) scope: Arc<Origin<InstrumentationScope>>,
    pub(super) spans: Vec<Span>,
}

/// The spans held for one trace (or, for late spans, for several).
#[derive(Default)]
pub(super) struct Trace {
    pub(super) groups: Vec<Group>,
    /// Spans held.
    pub(super) span_count: u64,
    /// Encoded size of the spans held.
    pub(super) bytes: u64,
}

impl Trace {
    /// Adds a span, extending the last group when it shares its origin.
    pub(super) fn push(
        &mut self,
        resource: &Arc<Origin<Resource>>,
        scope: &Arc<Origin<InstrumentationScope>>,
        span: Span,
    ) {
        self.bytes += span.encoded_len() as u64 + SPAN_FRAMING;
        self.span_count += 1;
        match self.groups.last_mut() {
            Some(g) if Arc::ptr_eq(&g.resource, resource) && Arc::ptr_eq(&g.scope, scope) => {
                g.spans.push(span)
            }
            _ => self.groups.push(Group {
                resource: resource.clone(),
                scope: scope.clone(),
                spans: vec![span],
            }),
        }
    }

    /// Every span held.
    pub(super) fn spans(&self) -> impl Iterator<Item = &Span> {
        self.groups.iter().flat_map(|g| g.spans.iter())
    }
}

/// A trace waiting for its decision.
pub(super) struct Pending {
    pub(super) trace: Trace,
    /// Arrival order; the key of the processor's due queue.
    pub(super) seq: u64,
    /// When its first span arrived.
    pub(super) arrived: Instant,
}

/// Builds `ExportTraceServiceRequest`s of whole traces, regrouped by resource
/// and scope, each at most `max_bytes` of spans unless one trace alone is
/// larger (a trace is never cut across requests).
pub(super) struct Batcher {
    max_bytes: u64,
    done: Vec<(Bytes, u64)>,
    current: Request,
}

/// Where each origin, by its encoding, sits in the request being built.
type Positions = HashMap<Vec<u8>, usize>;

#[derive(Default)]
struct Request {
    resource_spans: Vec<ResourceSpans>,
    /// Resource key -> (index in `resource_spans`, its scopes in its `scope_spans`).
    index: HashMap<Vec<u8>, (usize, Positions)>,
    bytes: u64,
    spans: u64,
}

impl Batcher {
    /// A batcher cutting requests at `max_bytes` of spans.
    pub(super) fn new(max_bytes: u64) -> Batcher {
        Batcher {
            max_bytes,
            done: Vec::new(),
            current: Request::default(),
        }
    }

    /// Adds every span of `trace` to the current request.
    pub(super) fn add(&mut self, trace: Trace) {
        if self.current.spans > 0 && self.current.bytes + trace.bytes > self.max_bytes {
            self.cut();
        }
        let request = &mut self.current;
        request.bytes += trace.bytes;
        request.spans += trace.span_count;
        for group in trace.groups {
            let (ri, scopes) = match request.index.get_mut(&group.resource.key) {
                Some(entry) => entry,
                None => {
                    request.resource_spans.push(ResourceSpans {
                        resource: group.resource.value.clone(),
                        scope_spans: Vec::new(),
                        schema_url: group.resource.schema_url.clone(),
                    });
                    let i = request.resource_spans.len() - 1;
                    request
                        .index
                        .entry(group.resource.key.clone())
                        .or_insert((i, HashMap::new()))
                }
            };
            let scope_spans = &mut request.resource_spans[*ri].scope_spans;
            let si = *scopes.entry(group.scope.key.clone()).or_insert_with(|| {
                scope_spans.push(ScopeSpans {
                    scope: group.scope.value.clone(),
                    spans: Vec::new(),
                    schema_url: group.scope.schema_url.clone(),
                });
                scope_spans.len() - 1
            });
            scope_spans[si].spans.extend(group.spans);
        }
    }

    fn cut(&mut self) {
        let request = std::mem::take(&mut self.current);
        if request.spans == 0 {
            return;
        }
        let encoded = ExportTraceServiceRequest {
            resource_spans: request.resource_spans,
        }
        .encode_to_vec();
        self.done.push((Bytes::from(encoded), request.spans));
    }

    /// The encoded requests, each with its span count.
    pub(super) fn finish(mut self) -> Vec<(Bytes, u64)> {
        self.cut();
        self.done
    }
}
