//! Memory bounds of the pipeline.
//!
//! Three budgets, with two policies on purpose:
//!
//! - [`InflightLimiter`]s count decoded items (spans and log records) from the moment a request
//!   is decoded until the store has committed them, and request body bytes while they are read
//!   and until they are decoded. A request that does not fit is refused at once
//!   ([`IngestError::Overloaded`], 429 / `RESOURCE_EXHAUSTED` with a retry hint) rather than
//!   queued: a queue of waiting requests is itself unbounded memory, and OTLP clients already
//!   retry with backoff. So what Sightline holds never exceeds the configured numbers.
//! - [`DecodeSlots`] bounds how many request bodies are decompressed and decoded at once (each
//!   can take up to `max_decompressed_bytes` plus its decoded form). Decoding is CPU work on
//!   blocking threads, so a request waits for a slot instead of failing: the slot count matches
//!   the CPUs, which could not go faster anyway.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::IngestError;

/// Bounds the number of items held by the pipeline.
#[derive(Debug)]
pub struct InflightLimiter {
    semaphore: Arc<Semaphore>,
    capacity: u32,
    retry_after: Duration,
}

/// Items reserved in an [`InflightLimiter`]; released when dropped.
#[derive(Debug)]
pub struct InflightPermit {
    _permit: OwnedSemaphorePermit,
}

impl InflightLimiter {
    /// A limiter holding at most `capacity` items (at least one), telling refused clients to
    /// retry after `retry_after`.
    pub fn new(capacity: usize, retry_after: Duration) -> Self {
        let capacity = u32::try_from(capacity)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            semaphore: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            retry_after,
        }
    }

    /// Reserves room for `items`, or fails at once with [`IngestError::Overloaded`]. A request
    /// larger than the whole capacity reserves the whole capacity (it would otherwise be refused
    /// forever); `max_spans_per_request` keeps requests well below it in practice.
    pub fn try_acquire(&self, items: usize) -> Result<InflightPermit, IngestError> {
        let n = u32::try_from(items).unwrap_or(u32::MAX).min(self.capacity);
        match self.semaphore.clone().try_acquire_many_owned(n) {
            Ok(permit) => Ok(InflightPermit { _permit: permit }),
            Err(_) => Err(IngestError::Overloaded {
                retry_after: self.retry_after,
            }),
        }
    }

    /// Reserves `more` units on top of `permit` (a body read chunk by chunk), or fails at once
    /// with [`IngestError::Overloaded`]. One permit never holds more than the whole capacity: past
    /// that it grows no further, so a single request is never refused forever.
    pub fn try_grow(&self, permit: &mut InflightPermit, more: usize) -> Result<(), IngestError> {
        let room = (self.capacity as usize).saturating_sub(permit._permit.num_permits());
        let n = u32::try_from(more.min(room)).unwrap_or(u32::MAX);
        if n == 0 {
            return Ok(());
        }
        match self.semaphore.clone().try_acquire_many_owned(n) {
            // Both permits come from this limiter's semaphore, as `merge` requires.
            Ok(extra) => {
                permit._permit.merge(extra);
                Ok(())
            }
            Err(_) => Err(IngestError::Overloaded {
                retry_after: self.retry_after,
            }),
        }
    }

    /// Items held right now.
    pub fn in_flight(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.semaphore.available_permits())
    }

    /// Most items held at once.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

/// Bounds how many request bodies are decoded at once.
#[derive(Debug)]
pub struct DecodeSlots {
    semaphore: Arc<Semaphore>,
}

impl DecodeSlots {
    /// `slots` concurrent decodes; 0 means one per available CPU.
    pub fn new(slots: usize) -> Self {
        let slots = if slots == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            slots
        };
        Self {
            semaphore: Arc::new(Semaphore::new(slots.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Runs `f` on a blocking thread once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, IngestError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, IngestError> + Send + 'static,
    {
        let permit =
            self.semaphore
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| IngestError::Internal {
                    message: "decode slots closed".into(),
                })?;
        let joined = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            f()
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => Err(IngestError::Internal {
                message: format!("decoding task failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_once_when_full_and_releases_on_drop() {
        let l = InflightLimiter::new(10, Duration::from_secs(3));
        let a = l.try_acquire(6).unwrap();
        assert_eq!(l.in_flight(), 6);
        assert_eq!(
            l.try_acquire(5).unwrap_err(),
            IngestError::Overloaded {
                retry_after: Duration::from_secs(3)
            }
        );
        let b = l.try_acquire(4).unwrap();
        assert_eq!(l.in_flight(), 10);
        drop(a);
        assert_eq!(l.in_flight(), 4);
        drop(b);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn permits_grow_chunk_by_chunk_up_to_the_capacity() {
        let l = InflightLimiter::new(100, Duration::from_secs(1));
        let mut p = l.try_acquire(0).unwrap();
        l.try_grow(&mut p, 60).unwrap();
        let other = l.try_acquire(30).unwrap();
        assert_eq!(l.in_flight(), 90);
        assert!(l.try_grow(&mut p, 20).is_err());
        drop(other);
        l.try_grow(&mut p, 1_000).unwrap();
        assert_eq!(l.in_flight(), 100);
        l.try_grow(&mut p, 5).unwrap();
        drop(p);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn an_oversized_request_takes_the_whole_capacity() {
        let l = InflightLimiter::new(10, Duration::from_secs(1));
        let p = l.try_acquire(1_000).unwrap();
        assert_eq!(l.in_flight(), 10);
        assert!(l.try_acquire(1).is_err());
        drop(p);
        assert!(l.try_acquire(0).is_ok());
        assert_eq!(InflightLimiter::new(0, Duration::ZERO).capacity(), 1);
    }

    #[tokio::test]
    async fn decode_slots_run_on_blocking_threads() {
        let slots = DecodeSlots::new(1);
        let v = slots.run(|| Ok(21 * 2)).await.unwrap();
        assert_eq!(v, 42);
        let e = slots
            .run(|| -> Result<(), _> { Err(IngestError::invalid("body", "bad")) })
            .await
            .unwrap_err();
        assert_eq!(e, IngestError::invalid("body", "bad"));
    }
}
