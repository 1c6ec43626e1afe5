//! Process-wide allocator tuning (issue 6: RSS under load).
//!
//! glibc raises its mmap threshold dynamically (up to 32 MiB) each time a large block is freed,
//! after which the large, short-lived buffers of a busy server — sled's node vectors, a flush's
//! encoded rollups, grown hash tables — come from the heap arenas, fragment them and are never
//! given back: with ten million analytics events RSS settled at 2–3 × the live heap. A fixed
//! threshold keeps every block of 128 KiB or more in its own mapping, returned to the system
//! when freed, and a 1 MiB trim threshold hands back the top of the heap sooner.

/// Blocks at least this large get their own mapping.
pub const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;
/// Free memory above this at the top of a heap is returned to the system.
pub const TRIM_THRESHOLD_BYTES: i32 = 1024 * 1024;

/// Applies the tuning; call once at start, before the worker threads exist. A no-op where the
/// allocator is not glibc's. Returns whether it was applied.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; it is called with valid constants and
        // has no memory-safety preconditions.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allocator_accepts_the_tuning() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::tune_allocator());
    }
}
