//! Random interleavings of calls, deadlines, cancellations (the caller dropping the call) and a
//! server's go-away over the in-memory transport on a paused clock (proptest): every call ends
//! exactly once with an answer that fits what happened to it, and every handler the server
//! started has ended or been dropped once the server is gone.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Endpoint, Request, Response, Server};

/// Counts handlers running: +1 when one starts, −1 when it ends or is dropped.
struct Running(Arc<AtomicI64>);

impl Running {
    fn enter(n: &Arc<AtomicI64>) -> Running {
        n.fetch_add(1, Ordering::SeqCst);
        Running(n.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One call: when it starts, how long its handler works, its deadline, when its caller drops it.
#[derive(Debug, Clone)]
struct Call {
    start_ms: u64,
    work_ms: u64,
    timeout_ms: Option<u64>,
    drop_after_ms: Option<u64>,
}

fn call() -> impl Strategy<Value = Call> {
    (
        0u64..30,
        0u64..40,
        prop::option::of(1u64..50),
        prop::option::of(0u64..50),
    )
        .prop_map(|(start_ms, work_ms, timeout_ms, drop_after_ms)| Call {
            start_ms,
            work_ms,
            timeout_ms,
            drop_after_ms,
        })
}

/// How a call ended, as its caller saw it.
#[derive(Debug)]
enum Ended {
    Answered(Result<Response, rpc_core::Status>),
    Dropped,
}

static CASE: AtomicUsize = AtomicUsize::new(0);

async fn run(calls: Vec<Call>, goaway_at_ms: Option<u64>) -> Result<(), TestCaseError> {
    let name = format!("interleavings-{}", CASE.fetch_add(1, Ordering::Relaxed));
    let running = Arc::new(AtomicI64::new(0));
    let service = RawService::new("prop.Work").method("Work", {
        let running = running.clone();
        move |req: Request| {
            let running = running.clone();
            async move {
                let _running = Running::enter(&running);
                let ms = u64::from_be_bytes(req.body()[..8].try_into().unwrap_or([0; 8]));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Response::new(req.into_body()))
            }
        }
    });
    let listener = MemoryListener::bind(&name).expect("a fresh name");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(service)
            .drain_timeout(Duration::from_millis(100))
            .serve_with_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let channel = Endpoint::memory(&name).connect_lazy();
    let mut stop = Some(stop);
    let goaway = goaway_at_ms.and_then(|at| {
        let stop = stop.take()?;
        Some(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(at)).await;
            let _ = stop.send(());
        }))
    });
    let mut tasks = Vec::new();
    for c in &calls {
        let (channel, c) = (channel.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(c.start_ms)).await;
            let mut req = Request::new("prop.Work/Work", c.work_ms.to_be_bytes().to_vec());
            if let Some(t) = c.timeout_ms {
                req = req.with_timeout(Duration::from_millis(t));
            }
            let call = channel.unary(req);
            match c.drop_after_ms {
                Some(d) => match tokio::time::timeout(Duration::from_millis(d), call).await {
                    Ok(r) => Ended::Answered(r),
                    Err(_) => Ended::Dropped,
                },
                None => Ended::Answered(call.await),
            }
        }));
    }
    for (c, task) in calls.iter().zip(tasks) {
        // Each call ends once: its task returns one outcome, within a minute of virtual time.
        let ended = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .map_err(|_| TestCaseError::fail(format!("{c:?} never ended")))?
            .map_err(|e| TestCaseError::fail(format!("{c:?} panicked: {e}")))?;
        match ended {
            Ended::Answered(Ok(resp)) => {
                prop_assert_eq!(&resp.body()[..], &c.work_ms.to_be_bytes()[..]);
            }
            Ended::Answered(Err(status)) => {
                let expired = c.timeout_ms.is_some_and(|t| t <= c.work_ms + 1);
                prop_assert!(
                    goaway_at_ms.is_some() || expired,
                    "{c:?} failed with {status} though nothing stopped it"
                );
                if goaway_at_ms.is_none() {
                    prop_assert_eq!(status.code(), Code::DeadlineExceeded);
                }
            }
            Ended::Dropped => {
                prop_assert!(c.drop_after_ms.is_some());
            }
        }
    }
    if let Some(g) = goaway {
        let _ = g.await;
    }
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    let _ = server.await;
    // Let the handlers the server dropped run their destructors.
    tokio::time::sleep(Duration::from_millis(10)).await;
    prop_assert_eq!(running.load(Ordering::SeqCst), 0, "handlers left running");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_call_ends_once_whatever_the_interleaving(
        calls in prop::collection::vec(call(), 1..24),
        goaway_at_ms in prop::option::of(0u64..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        rt.block_on(run(calls, goaway_at_ms))?;
    }
}
