//! The process-wide allocator: jemalloc, for every binary that links the product (the server,
//! its tests and benches).
//!
//! Measured against glibc's malloc (docs/benchmarks.md, 2026-12-03): a durable create took 10 %
//! less server CPU (glibc's `_int_malloc`, `_int_free` and `malloc_consolidate` were a fifth of
//! the create path's profile: sled copies a leaf node on every insert), and the analytics
//! aggregator folded events twice as fast. mimalloc was faster still on creates but kept 40 %
//! more resident memory under the analytics volume bench.
//!
//! Freed memory goes back to the system from a background thread: dirty pages after one
//! second, without the intermediate "muzzy" state, so the resident set follows the live heap
//! closely after a burst (a large report, a day's rollups closing).

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options, read by the allocator itself before `main` (the symbol is
/// jemalloc's `malloc_conf` under the crate's `_rjem_` prefix). A NUL-terminated C string.
#[used]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[cfg(test)]
mod tests {
    /// jemalloc took the options: they read back from the running allocator.
    #[test]
    fn jemalloc_runs_with_the_options() {
        assert!(std::ffi::CStr::from_bytes_with_nul(super::MALLOC_CONF).is_ok());
        assert!(tikv_jemalloc_ctl::opt::background_thread::read().expect("mallctl answers"));
        // SAFETY: `opt.dirty_decay_ms` and `opt.muzzy_decay_ms` are jemalloc options of type
        // `ssize_t`, read as `isize`, with NUL-terminated names.
        let (dirty, muzzy) = unsafe {
            (
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0"),
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.muzzy_decay_ms\0"),
            )
        };
        assert_eq!(dirty.expect("mallctl answers"), 1000);
        assert_eq!(muzzy.expect("mallctl answers"), 0);
    }
}
