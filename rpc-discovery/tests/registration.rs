//! Serving while the registry is down: `serve_registered` serves at once, keeps registering in
//! the background, and says whether it is registered yet; `fail_fast` refuses to serve instead.
//!
//! The registry is the in-process one behind a switch that makes it fail; in-memory transport,
//! paused clock.

#![allow(missing_docs)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{BoxFuture, Endpoint, Request, Response, Server};
use rpc_discovery::{
    serve_registered, DiscoveryError, Instance, MemoryRegistry, Query, Registration,
    RegistrationState, Registry, ServeRegistered, StaticRegistry, Watch,
};
use support::eventually;

const SVC: &str = "demo.Echo";
const LIMIT: Duration = Duration::from_secs(60);

/// The in-process registry, unreachable while `down` is set; counts registration attempts.
#[derive(Clone, Default)]
struct Switchable {
    inner: MemoryRegistry,
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
}

impl Registry for Switchable {
    fn register(&self, instance: Instance) -> BoxFuture<'_, Result<Registration, DiscoveryError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(DiscoveryError::backend(
                    "switchable",
                    "registering",
                    "connection refused",
                ))
            });
        }
        self.inner.register(instance)
    }

    fn watch(&self, query: Query) -> BoxFuture<'_, Result<Watch, DiscoveryError>> {
        self.inner.watch(query)
    }
}

fn echo_server() -> Server {
    Server::builder().add_service(
        RawService::new(SVC).method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        }),
    )
}

async fn answers(name: &str) -> bool {
    let channel = Endpoint::memory(name).connect_lazy();
    channel
        .unary(Request::new("demo.Echo/Echo", "ping"))
        .await
        .is_ok_and(|r| &r.body()[..] == b"ping")
}

#[tokio::test(start_paused = true)]
async fn a_server_started_while_the_registry_is_down_serves_and_registers_later() {
    let registry = Switchable::default();
    registry.down.store(true, Ordering::SeqCst);
    let watch = registry.watch(Query::new(SVC)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let registry = registry.clone();
        async move {
            let listener = MemoryListener::bind("reg-down").unwrap();
            let signal = async {
                stopped.await.ok();
            };
            let instance = Instance::new(SVC, "");
            serve_registered(
                echo_server(),
                listener,
                &registry,
                instance,
                Duration::ZERO,
                signal,
            )
            .await
        }
    });

    // It serves, unregistered, and keeps trying.
    eventually(LIMIT, "the server to answer", || answers("reg-down")).await;
    let attempts = &registry.attempts;
    eventually(LIMIT, "a few registration attempts", || async {
        attempts.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(!serving.is_finished());
    assert!(watch.current().is_empty());

    // The registry comes back: the instance appears.
    registry.down.store(false, Ordering::SeqCst);
    eventually(LIMIT, "the registration", || async {
        watch.current().len() == 1
    })
    .await;
    assert_eq!(watch.current().instances()[0].addr, "memory://reg-down");
    let tries = attempts.load(Ordering::SeqCst);
    // Once registered, no more attempts.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), tries);

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert!(watch.current().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_status_says_whether_the_server_is_registered_yet() {
    let registry = Switchable::default();
    registry.down.store(true, Ordering::SeqCst);
    let serve = ServeRegistered::new(Instance::new(SVC, ""));
    let mut status = serve.status();
    assert!(!status.is_registered());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let registry = registry.clone();
        async move {
            let listener = MemoryListener::bind("reg-status").unwrap();
            let signal = async {
                stopped.await.ok();
            };
            serve
                .serve(echo_server(), listener, &registry, signal)
                .await
        }
    });
    // Failed attempts are counted, with the last error.
    loop {
        match status.changed().await.unwrap() {
            RegistrationState::Registering {
                attempts,
                last_error,
            } if attempts >= 2 => {
                assert!(last_error.unwrap().contains("connection refused"));
                break;
            }
            RegistrationState::Registering { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(answers("reg-status").await);
    registry.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(LIMIT, status.registered())
        .await
        .unwrap()
        .unwrap();
    assert!(status.is_registered());
    assert_eq!(registry.inner.instances().len(), 1);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert_eq!(status.state(), RegistrationState::Deregistered);
    assert!(registry.inner.instances().is_empty());
}

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_to_serve_while_the_registry_is_down() {
    let registry = Switchable::default();
    registry.down.store(true, Ordering::SeqCst);
    let listener = MemoryListener::bind("reg-fail-fast").unwrap();
    let err = ServeRegistered::new(Instance::new(SVC, ""))
        .fail_fast(true)
        .serve(echo_server(), listener, &registry, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(registry.attempts.load(Ordering::SeqCst), 1);
    // Nothing was served: the listener is gone.
    assert!(!answers("reg-fail-fast").await);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_retrying_cannot_fix_ends_serving() {
    let registry = StaticRegistry::from_instances([]);
    let listener = MemoryListener::bind("reg-refused").unwrap();
    let serve = ServeRegistered::new(Instance::new(SVC, ""));
    let status = serve.status();
    let err = serve
        .serve(echo_server(), listener, &registry, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not support"), "{err}");
    assert_eq!(status.state(), RegistrationState::Deregistered);
}
