//! Blocking APIs that stay usable from async code.
//!
//! `Mirror`, `publish` and `Extractor` block (the first two on a private tokio
//! runtime, the extractor in reqwest's blocking client), and tokio panics when
//! such code runs on a thread that is driving a runtime. [`off_runtime`] runs it on a thread of
//! its own there, so a call from async code blocks its caller but never panics;
//! `tokio::task::spawn_blocking` remains the way to call them without holding an
//! executor thread.

/// Runs `f` here, or — when this thread is inside a tokio runtime — on a
/// scoped thread of its own, and returns its result (a panic in `f` resumes
/// here).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if !in_runtime() {
        return f();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Whether this thread is inside a tokio runtime.
pub(crate) fn in_runtime() -> bool {
    #[cfg(feature = "s3")]
    {
        tokio::runtime::Handle::try_current().is_ok()
    }
    #[cfg(not(feature = "s3"))]
    {
        false
    }
}
