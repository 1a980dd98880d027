//! What the integration tests share: a served server and the means to stop it, and the one
//! poll-until helper ([`poll::eventually`]).

// Not every test binary that includes this module polls; `poll.rs` is also included by other
// crates' tests with `#[path]`, hence plain `pub` items there.
#[allow(dead_code, unreachable_pub)]
pub mod logs;
#[allow(dead_code, unreachable_pub)]
pub mod poll;

use rpc_core::transport::Listener;
use rpc_core::Server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A served server and the means to stop it.
pub(crate) struct Running {
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) join: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Shuts the server down gracefully and waits until it has stopped.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.join)
            .await
            .expect("server task")
            .expect("server result");
    }
}

/// Serves `server` on `listener` until [`Running::shutdown`].
pub(crate) fn serve(server: Server, listener: impl Listener) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        join,
    }
}

/// `demo.Echo/Echo`: answers with the request's body.
#[allow(dead_code)]
pub(crate) fn echo() -> rpc_core::server::RawService {
    rpc_core::server::RawService::new("demo.Echo").method("Echo", |req| async move {
        Ok(rpc_core::Response::new(req.into_body()))
    })
}

/// Sends `()` when dropped: tells a test that a handler future (or a task) was dropped.
#[allow(dead_code)]
pub(crate) struct DropSignal(pub(crate) Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}
