//! The stream table: the last point of every stream, in shards so requests
//! on different streams rarely wait for one another. A shard's lock is held
//! for one point's arithmetic and never across an await.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::{convert::Baseline, identity::StreamKey};

/// Shards of the table; a power of two well above the core counts we run on.
const SHARDS: usize = 16;

/// What the table remembers of a stream.
pub(super) struct Stream {
    /// When a point of the stream last arrived (processor clock).
    pub(super) last_seen: Instant,
    /// `time_unix_nano` of its last point: the next delta's start time.
    pub(super) time: u64,
    /// Its last point's value.
    pub(super) baseline: Baseline,
}

type Shard = HashMap<StreamKey, Stream, BuildHasherDefault<KeyHasher>>;

/// Every stream of one processor.
pub(super) struct Streams {
    shards: Box<[Mutex<Shard>]>,
    len: AtomicUsize,
    /// Streams not seen for this long are forgotten; `None` keeps them forever.
    max_staleness: Option<Duration>,
}

impl Streams {
    pub(super) fn new(max_staleness: Duration) -> Streams {
        Streams {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            len: AtomicUsize::new(0),
            max_staleness: (!max_staleness.is_zero()).then_some(max_staleness),
        }
    }

    /// Streams held.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Runs `f` on stream `key` under its shard's lock. `f` sees the stream
    /// when it is known and was seen within `max_staleness`; a stream `f`
    /// returns replaces whatever was there. The flag tells whether a stale
    /// stream was forgotten on the way.
    pub(super) fn update<R>(
        &self,
        key: StreamKey,
        now: Instant,
        f: impl FnOnce(Option<&mut Stream>) -> (R, Option<Stream>),
    ) -> (R, bool) {
        let mut shard = self.shard(key);
        let mut forgot = false;
        let known = match shard.get_mut(&key) {
            Some(stream) if self.fresh(stream, now) => Some(stream),
            Some(_) => {
                forgot = true;
                None
            }
            None => None,
        };
        let (result, replacement) = f(known);
        if let Some(stream) = replacement
            && shard.insert(key, stream).is_none()
        {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        (result, forgot)
    }

    /// Forgets every stream not seen within `max_staleness`; returns how many.
    pub(super) fn sweep(&self, now: Instant) -> usize {
        if self.max_staleness.is_none() {
            return 0;
        }
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, stream| self.fresh(stream, now));
            removed += before - shard.len();
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn fresh(&self, stream: &Stream, now: Instant) -> bool {
        self.max_staleness
            .is_none_or(|max| now.saturating_duration_since(stream.last_seen) < max)
    }

    fn shard(&self, key: StreamKey) -> MutexGuard<'_, Shard> {
        // The high half picks the shard, the low half the slot in it.
        let index = (key >> 64) as usize % SHARDS;
        // A panic while holding a shard can only come from a bug in the
        // arithmetic above it; the map itself is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The keys are already uniform hashes: use their low half as is.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}
