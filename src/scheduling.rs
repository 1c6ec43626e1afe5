//! How the server's threads are scheduled by the kernel.
//!
//! A request crosses threads: an HTTP worker parses it and sends it to its table's actor, the
//! actor applies it and hands the durable flush to the group commit, whose completion wakes the
//! worker again. Under the default policy each of those wake-ups preempts the running thread,
//! so on a busy core the threads ping-pong once per request: the actor applies one write, the
//! worker parses one more, and so on. Under `SCHED_BATCH` a woken thread waits for the running
//! one to block or for the end of its slice: the worker parses every request that is ready, the
//! actor then applies them all in one batch, and the core spends its time on requests rather
//! than on switching. Measured with `benches/http_load.sh`-style runs on one core
//! (docs/benchmarks.md): durable creates 15 400–16 300/s → 19 700–20 300/s, CPU per create
//! 61–64 → 48–49 µs, p99 7.5–8.1 → 4.2–5.6 ms; analytics collect unchanged.
//!
//! The policy is set on the thread that starts the server, before any other thread exists:
//! Linux threads inherit their creator's policy. `server.batch_scheduling = false` keeps the
//! default policy.

/// Puts the calling thread (and so every thread it starts later) under `SCHED_BATCH` when
/// `batch` is set. Logs what was done; a refusal by the kernel is a warning, not an error.
pub fn apply(batch: bool) {
    if !batch {
        tracing::info!(
            "threads under the default scheduling policy (server.batch_scheduling = false)"
        );
        return;
    }
    match set_batch() {
        Ok(true) => tracing::debug!("threads under SCHED_BATCH"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "cannot set SCHED_BATCH; the default policy stays"),
    }
}

/// `Ok(true)` once the calling thread is under `SCHED_BATCH`; `Ok(false)` where there is no
/// such policy (not Linux).
#[cfg(target_os = "linux")]
fn set_batch() -> std::io::Result<bool> {
    let parameters = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads the `sched_param` it is given, which lives on this
    // stack frame for the whole call; pid 0 is the calling thread; SCHED_BATCH requires
    // priority 0 and no privilege.
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &parameters) };
    if status == 0 {
        Ok(true)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The calling thread's policy.
    fn policy() -> i32 {
        // SAFETY: `sched_getscheduler` takes a pid (0: the calling thread) and reads nothing else.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// A thread that applies the setting runs under SCHED_BATCH, and so do the threads it starts
    /// afterwards; without the setting nothing changes.
    #[test]
    fn the_policy_is_set_and_inherited() {
        std::thread::spawn(|| {
            let before = policy();
            super::apply(false);
            assert_eq!(policy(), before);
            super::apply(true);
            assert_eq!(policy(), libc::SCHED_BATCH);
            let child = std::thread::spawn(policy).join().expect("the thread runs");
            assert_eq!(child, libc::SCHED_BATCH);
        })
        .join()
        .expect("the checks pass");
    }
}
