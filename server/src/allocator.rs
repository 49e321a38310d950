//! How the process asks glibc's allocator to hold memory, set once before any thread starts.
//!
//! By default glibc keeps up to eight arenas per core and raises its `mmap` threshold each time a
//! large block is freed, so that a password hash's 7 MiB (argon2id; 19 for an older hash) or a
//! burst of batch bodies stay in the heap after use instead of going back to the system. `scripts/bench sqlite`
//! measured the difference (docs/PERFORMANCE.md, "Memory, 2026-12-02 afternoon").

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// Two arenas: the runtime's threads share them (allocation here is not contended enough
    /// to need one per thread).
    pub const ARENAS: i32 = 2;
    /// Blocks of 128 KiB or more are mapped on their own and unmapped when freed; fixed, so
    /// glibc does not raise it.
    pub const MMAP_THRESHOLD: i32 = 128 * 1024;
    /// Free memory at the top of the heap beyond this goes back to the system.
    pub const TRIM_THRESHOLD: i32 = 128 * 1024;
}

/// Sets the limits above (on glibc; elsewhere nothing).
///
/// # Safety
///
/// Only while the process has one thread: glibc's `mallopt` is not thread-safe. Call it
/// first in `main`, before the runtime starts its threads.
pub unsafe fn hold_little() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the caller guarantees no other thread exists; each parameter is one glibc
    // documents, and `mallopt` changes nothing else.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, glibc::ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, glibc::MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, glibc::TRIM_THRESHOLD);
    }
}
