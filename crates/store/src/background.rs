//! Scheduling priority of background work.
//!
//! Storing, indexing and recording are throughput work: nobody waits on one of them for long, or
//! (an OTLP acknowledgement) the wait is already milliseconds of group commit. Proxying a gateway
//! call or answering a query is latency work. On a machine with few cores the two compete for the
//! same CPUs, so the threads that do background work lower their own priority and the scheduler
//! runs a request thread first whenever both are ready.

/// How far a background thread steps back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Below normal (nice 10): it still gets about a tenth of a busy CPU, so work that someone
    /// waits on — the store's writer, whose commits acknowledge OTLP requests — keeps moving
    /// when request threads saturate the machine.
    Low,
    /// Only CPU time nobody else wants (`SCHED_IDLE`): for work that may fall behind and catch
    /// up later — the full-text indexer, the gateway's recorder behind its bounded queue.
    Idle,
}

/// Lowers the calling thread's scheduling priority. Best effort: where the OS refuses (or has no
/// per-thread priorities), the thread keeps running at its priority.
pub fn lower_current_thread(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both calls take plain values; on Linux, id 0 names the calling thread (each
        // thread has its own nice value and policy).
        let rc = unsafe {
            match priority {
                Priority::Low => libc::setpriority(libc::PRIO_PROCESS, 0, 10),
                Priority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
                }
            }
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

    #[test]
    fn lowers_only_the_calling_thread() {
        let (nice, policy) = std::thread::spawn(|| {
            lower_current_thread(Priority::Low);
            // SAFETY: plain getters on the calling thread.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            lower_current_thread(Priority::Idle);
            let policy = unsafe { libc::sched_getscheduler(0) };
            (nice, policy)
        })
        .join()
        .expect("thread");
        assert_eq!(nice, 10);
        assert_eq!(policy, libc::SCHED_IDLE);
        // SAFETY: as above.
        let here = unsafe { libc::sched_getscheduler(0) };
        assert_eq!(
            here,
            libc::SCHED_OTHER,
            "the test thread itself is untouched"
        );
    }
}
