//! What the example binaries share. The examples themselves are `[[example]]` targets beside this
//! crate: `quickstart`, `echo_server`, `echo_client`.

use std::io;

/// A tokio runtime: current-thread for `threads <= 1`, otherwise multi-thread with that many workers.
///
/// # Errors
/// The runtime's build error.
pub fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
