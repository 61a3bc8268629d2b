//! Keeps panics in our GStreamer callbacks from unwinding into C, which would abort the process.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f` on a GStreamer (or bus) thread; a panic becomes `None` and a log line naming `what`.
/// Callers turn `None` into an element error, so the one stream fails and the server carries on.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    // Callbacks only touch state behind locks that parking_lot does not poison; a panic leaves
    // at worst one pipeline's state half-updated, and that pipeline is then stopped.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            tracing::error!("panic in {what}: {message}; stopping that stream");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::guard;

    #[test]
    fn a_panic_becomes_none() {
        assert_eq!(guard("test", || 5), Some(5));
        assert_eq!(guard("test", || -> u8 { panic!("on purpose") }), None);
    }
}
