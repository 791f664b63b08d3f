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
//!
//! Priority decides who runs first on a CPU, not how many CPUs background work takes at once:
//! the writer, the indexer and the recorder can all be running, one on each core, just when
//! calls arrive. So once requests are favoured, the background threads are also confined to the
//! upper half of the CPUs the process may use (one of two, two of four; nothing changes on one
//! CPU). Request threads keep every CPU, and the lower half is free of background work whenever
//! they need it. Each background thread says what it is with [`enter_background`]; threads that
//! start later are confined as they enter. On two cores this cut the gateway's added p99 at
//! 5,000 calls/s by a fifth to a third, and OTLP ingest into the same server did not change
//! measurably (BENCHMARKS.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once latency-sensitive requests are being served: see [`favour_requests`].
static REQUESTS_FAVOURED: AtomicBool = AtomicBool::new(false);

/// Says that this process now serves requests whose latency matters more than background
/// throughput (the gateway proxies calls). Threads that step back only then, such as the store's
/// writer, lower their priority from their next round on. One-way: an unprivileged thread cannot
/// raise its priority again.
pub fn favour_requests() {
    if REQUESTS_FAVOURED.load(Ordering::Relaxed) {
        return;
    }
    // Under the registry's lock, so that a thread entering the background now is confined
    // either here or by its own `enter_background`.
    let threads = lock_registry();
    if REQUESTS_FAVOURED.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(cpus) = affinity::background_cpus() {
        tracing::info!(
            cpus = %cpus.describe(),
            "the gateway serves calls: background threads now run on these CPUs only"
        );
        for &tid in threads.iter() {
            cpus.confine(tid);
        }
    }
}

/// Thread ids of the live background threads.
static BACKGROUND_THREADS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<i32>> {
    BACKGROUND_THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
    /// The calling thread's registration, dropped (and so withdrawn) when the thread exits.
    static REGISTERED: std::cell::RefCell<Option<BackgroundThread>> =
        const { std::cell::RefCell::new(None) };
}

/// Marks the calling thread as background work until it exits: once requests are favoured (now
/// or later) it runs only on the background CPUs. Calling it again does nothing.
pub fn enter_background() {
    REGISTERED.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            *r = Some(register());
        }
    });
}

fn register() -> BackgroundThread {
    let tid = affinity::current_tid();
    let mut threads = lock_registry();
    threads.push(tid);
    if REQUESTS_FAVOURED.load(Ordering::Acquire) {
        if let Some(cpus) = affinity::background_cpus() {
            cpus.confine(tid);
        }
    }
    BackgroundThread { tid }
}

/// A registered background thread: see [`enter_background`].
#[derive(Debug)]
struct BackgroundThread {
    tid: i32,
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        // A thread id is reused once its thread is gone: never confine a stranger later.
        lock_registry().retain(|&tid| tid != self.tid);
    }
}

#[cfg(target_os = "linux")]
mod affinity {
    use std::sync::OnceLock;

    /// A set of CPUs.
    #[derive(Clone, Copy)]
    pub(super) struct Cpus(libc::cpu_set_t);

    impl Cpus {
        /// Restricts thread `tid` of this process to these CPUs. Best effort.
        pub fn confine(&self, tid: i32) {
            // SAFETY: a valid, initialised set of the size given; `tid` names a thread of this
            // process that is still registered, hence alive.
            let rc = unsafe {
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &self.0)
            };
            if rc != 0 {
                tracing::debug!(
                    tid,
                    error = %std::io::Error::last_os_error(),
                    "cannot confine a background thread"
                );
            }
        }

        pub fn list(&self) -> Vec<usize> {
            (0..libc::CPU_SETSIZE as usize)
                // SAFETY: the index is below CPU_SETSIZE.
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &self.0) })
                .collect()
        }

        pub fn describe(&self) -> String {
            let list: Vec<String> = self.list().iter().map(usize::to_string).collect();
            list.join(",")
        }
    }

    /// The CPUs thread `tid` may run on (0: the calling thread).
    pub(super) fn cpus_of(tid: i32) -> Option<Cpus> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills at most its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let rc = libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
            (rc == 0).then_some(Cpus(set))
        }
    }

    /// The upper half of `all` (at least one CPU); `None` when `all` has fewer than two.
    pub(super) fn upper_half(all: &[usize]) -> Option<Cpus> {
        if all.len() < 2 {
            return None;
        }
        let keep = all.len() / 2;
        // SAFETY: a zeroed cpu_set_t is a valid empty set; every index comes from a set.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &all[all.len() - keep..] {
                libc::CPU_SET(cpu, &mut set);
            }
            Some(Cpus(set))
        }
    }

    /// Where background threads run once requests are favoured; `None` on a single CPU.
    pub(super) fn background_cpus() -> Option<Cpus> {
        static CPUS: OnceLock<Option<Cpus>> = OnceLock::new();
        *CPUS.get_or_init(|| {
            // The process's CPUs: the main thread's (its id is the process id) when first asked.
            // SAFETY: a plain getter.
            let pid = unsafe { libc::getpid() };
            cpus_of(pid).and_then(|all| upper_half(&all.list()))
        })
    }

    pub(super) fn current_tid() -> i32 {
        // SAFETY: no arguments, cannot fail.
        unsafe { libc::gettid() }
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub(super) struct Cpus;

    impl Cpus {
        pub fn confine(&self, _tid: i32) {}

        pub fn describe(&self) -> String {
            String::new()
        }
    }

    pub(super) fn background_cpus() -> Option<Cpus> {
        None
    }

    pub(super) fn current_tid() -> i32 {
        0
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

    fn own_cpus() -> Vec<usize> {
        affinity::cpus_of(0).map_or_else(Vec::new, |cpus| cpus.list())
    }

    #[test]
    fn the_upper_half_of_the_cpus_is_for_background_work() {
        assert!(affinity::upper_half(&[]).is_none());
        assert!(affinity::upper_half(&[3]).is_none(), "one CPU is shared");
        assert_eq!(affinity::upper_half(&[0, 1]).unwrap().list(), [1]);
        assert_eq!(affinity::upper_half(&[0, 1, 2]).unwrap().list(), [2]);
        assert_eq!(affinity::upper_half(&[0, 2, 4, 6]).unwrap().list(), [4, 6]);
    }

    #[test]
    fn background_threads_are_confined_once_requests_are_favoured() {
        let all = own_cpus();
        assert!(!all.is_empty(), "sched_getaffinity failed");
        let expected = affinity::upper_half(&all).map_or(all.clone(), |c| c.list());
        // One thread enters before requests are favoured, one after; both end up confined,
        // and a thread that never entered keeps every CPU.
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let early = std::thread::spawn(move || {
            enter_background();
            entered_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            (affinity::current_tid(), own_cpus())
        });
        entered_rx.recv().unwrap();
        favour_requests();
        go_tx.send(()).unwrap();
        let late = std::thread::spawn(|| {
            enter_background();
            enter_background();
            (affinity::current_tid(), own_cpus())
        });
        let plain = std::thread::spawn(own_cpus);
        let (early_tid, early_cpus) = early.join().unwrap();
        let (late_tid, late_cpus) = late.join().unwrap();
        assert_eq!(early_cpus, expected);
        assert_eq!(late_cpus, expected);
        assert_eq!(plain.join().unwrap(), all);
        assert_eq!(own_cpus(), all, "the favouring thread keeps every CPU");
        let registered = lock_registry().clone();
        assert!(
            !registered.contains(&early_tid) && !registered.contains(&late_tid),
            "threads leave the registry when they exit"
        );
    }
}
