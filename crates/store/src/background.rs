//! Scheduling priority of background work.
//!
//! Storing, indexing and recording are throughput work: nobody waits on one of them for long, or
//! (an OTLP acknowledgement) the wait is already milliseconds of group commit. Proxying a gateway
//! call or answering a query is latency work. On a machine with few cores the two compete for the
//! same CPUs, so the threads that do background work lower their own priority and the scheduler
//! runs a request thread first whenever both are ready. The store's writer steps back only once
//! the gateway serves calls ([`favour_requests`]): with OTLP alone nothing is more urgent than its
//! commits, which acknowledge the exports and bound ingest throughput (7% more spans/s at normal
//! priority, BENCHMARKS.md). Only nice values are used, never
//! `SCHED_IDLE`: a background thread must still make progress on a saturated machine, both for its
//! own sake (records would pile up) and because it shares locks with others (the writer hands
//! texts to the indexer).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once latency-sensitive requests are being served: see [`favour_requests`].
static REQUESTS_FAVOURED: AtomicBool = AtomicBool::new(false);

/// Says that this process now serves requests whose latency matters more than background
/// throughput (the gateway proxies calls). Threads that step back only then, such as the store's
/// writer, lower their priority from their next round on. One-way: an unprivileged thread cannot
/// raise its priority again.
pub fn favour_requests() {
    if !REQUESTS_FAVOURED.load(Ordering::Relaxed) {
        REQUESTS_FAVOURED.store(true, Ordering::Relaxed);
    }
}

/// Whether [`favour_requests`] was called.
pub fn requests_favoured() -> bool {
    REQUESTS_FAVOURED.load(Ordering::Relaxed)
}

/// How far a background thread steps back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Nice 10: about a tenth of a CPU that a normal thread also wants. For the search indexer,
    /// and for the store's writer (whose commits acknowledge OTLP requests) once the gateway
    /// serves calls.
    Low,
    /// Nice 19: about 1.5% of a contended CPU. For work behind a bounded queue that may fall
    /// behind and catch up later, such as the gateway's recorder.
    Lowest,
}

impl Priority {
    fn nice(self) -> i32 {
        match self {
            Self::Low => 10,
            Self::Lowest => 19,
        }
    }
}

/// Lowers the calling thread's scheduling priority to at least `priority`; a thread already
/// below it stays where it is. Best effort: where the OS refuses, the thread keeps its priority.
pub fn lower_current_thread(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain values; on Linux, PRIO_PROCESS with id 0 names the calling thread (each
        // thread has its own nice value).
        let rc = unsafe {
            // getpriority may legitimately return -1, so errno decides; a failed read counts as
            // nice 0.
            *libc::__errno_location() = 0;
            let current = libc::getpriority(libc::PRIO_PROCESS, 0);
            let current = if *libc::__errno_location() == 0 {
                current
            } else {
                0
            };
            if current >= priority.nice() {
                return;
            }
            libc::setpriority(libc::PRIO_PROCESS, 0, priority.nice())
        };
        if rc != 0 {
            tracing::debug!(
                ?priority,
                error = %std::io::Error::last_os_error(),
                "cannot lower the thread's priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice() -> i32 {
        // SAFETY: a plain getter on the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn lowers_only_the_calling_thread_and_never_raises() {
        let before = nice();
        let (low, lowest, again) = std::thread::spawn(|| {
            lower_current_thread(Priority::Low);
            let low = nice();
            lower_current_thread(Priority::Lowest);
            let lowest = nice();
            lower_current_thread(Priority::Low);
            (low, lowest, nice())
        })
        .join()
        .expect("thread");
        assert_eq!(low, before.max(10));
        assert_eq!(lowest, 19);
        assert_eq!(again, 19, "a later, milder call does not raise it");
        assert_eq!(nice(), before, "the test thread itself is untouched");
    }
}
