//! Capturing what the server logs, for tests that check a log line: a `fmt` subscriber for the
//! test's thread only (a current-thread runtime runs the server there too).

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// Collects everything a `fmt` subscriber writes.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How many times `needle` was logged.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

/// Captures this thread's events at `level` and above until the guard is dropped.
///
/// While exactly one `Dispatch` exists in the process, tracing-core decides a callsite's interest
/// by asking the subscriber of whichever thread hits it first (tokio-rs/tracing#3611). A test
/// without a subscriber that first hits, say, the "protocol error" log would then make it
/// "never" for the test capturing it, which finds no log. A second `Dispatch`, never enabled and
/// alive for the whole process, makes tracing ask every subscriber instead.
pub fn capture_logs(level: tracing::Level) -> (LogCapture, tracing::subscriber::DefaultGuard) {
    static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (capture, guard)
}
