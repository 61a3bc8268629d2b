//! Makes glibc's allocator give the memory of stopped pipelines back to the system.
//!
//! Decoded video frames are large and allocated on GStreamer's many streaming threads, each with
//! its own malloc arena; freed, they stay in those arenas, so the process kept hundreds of MiB
//! after every stream had closed (the benchmark measured 363 MiB after eight 720p streams, from
//! 13 MiB at start). Two measures: allocations of 256 KiB and more (frames) are mapped on their
//! own and unmapped when freed, and the arenas are trimmed whenever pipelines have stopped.

/// Allocations from this size on get their own mapping, returned to the system on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Call once at start-up, before any thread is started.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters; it is called before any other
    // thread exists, and the value is within the range glibc documents for M_MMAP_THRESHOLD.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns free memory at the top of every arena to the system. Takes a few milliseconds on a
/// large heap: call it off the async runtime.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory glibc holds as free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
