//! Makes glibc's allocator give the memory of stopped pipelines back to the system.
//!
//! Decoded video frames are large and allocated on GStreamer's many streaming threads, each with
//! its own malloc arena; freed, they stay in those arenas, so the process kept hundreds of MiB
//! after every stream had closed (the benchmark measured 363 MiB after eight 720p streams, from
//! 13 MiB at start). Trimming the arenas whenever pipelines have stopped returns most of it.
//! (Mapping every frame on its own, with `M_MMAP_THRESHOLD`, returned a little more but cost 6 %
//! of transcode speed in page faults, so it is not done.)

/// Returns free memory in every arena to the system. Takes a few milliseconds on a large heap:
/// call it off the async runtime.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory glibc holds as free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
