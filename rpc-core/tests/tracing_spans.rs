//! Each call gets a tracing span on both sides. Its own test binary: tracing caches callsite
//! interest process-wide, so a subscriber installed here must not race with other tests' threads.

use std::sync::Arc;

use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Endpoint, Request, Response, Server};

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_call_has_a_span_on_both_sides() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // The test runtime is current-thread, so every task logs to this subscriber.
    let _default = tracing::subscriber::set_default(subscriber);

    let echo = RawService::new("demo.Echo").method("Echo", |req| async move {
        Ok(Response::new(req.into_body()))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = MemoryListener::bind("spans-1").unwrap();
    let server = tokio::spawn(Server::builder().add_service(echo).serve_with_shutdown(
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Endpoint::memory("spans-1").connect_lazy();
    channel
        .unary(Request::new("demo.Echo/Echo", "traced"))
        .await
        .unwrap();
    let err = channel
        .unary(Request::new("demo.Echo/Missing", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    drop(channel);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "rpc.client{service=\"demo.Echo\" method=\"Echo\" call_id=1 peer=memory:spans-1",
        "rpc.server{service=\"demo.Echo\" method=\"Echo\" call_id=1 peer=memory:spans-1",
        "status=\"Ok\"",
        "status=\"Unimplemented\"",
        "duration_us=",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
