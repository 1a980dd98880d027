//! `chaos serve`: one server process. Its handler takes `--work-ms` and a `LoadShedLayer` admits
//! `--limit` calls at a time; it registers in etcd (2 s lease) once it listens, prints
//! `listening ADDR`, and serves until its stdin closes.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::middleware::{LoadShedLayer, ShedLimit};
use rpc_core::server::RawService;
use rpc_core::{Request, Response, Server};
use rpc_discovery::{EtcdConfig, EtcdRegistry, Instance, Registry, ServeRegistered};
use tower::Layer;

use crate::args::{arg_value, parse};
use crate::child::{say, watch_stdin};

/// The service's name in the registry.
pub(crate) const SERVICE: &str = "chaos.Work";
/// The method the load calls.
pub(crate) const METHOD: &str = "chaos.Work/Work";
/// Registration lease: a killed server leaves the registry within this.
pub(crate) const LEASE: Duration = Duration::from_secs(2);

pub(crate) fn serve(args: Vec<String>) -> Result<(), String> {
    let (mut etcd, mut work_ms, mut limit) = (None, 10u64, 4usize);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let v = arg_value(&mut it, &flag)?;
        match flag.as_str() {
            "--etcd" => etcd = Some(v),
            "--work-ms" => work_ms = parse(&v, &flag)?,
            "--limit" => limit = parse(&v, &flag)?,
            other => return Err(format!("serve: unknown argument {other:?}")),
        }
    }
    let etcd = etcd.ok_or("serve: --etcd URL is required")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    // The orchestrator closing stdin (or dying) ends the process; a line "stop" drains first.
    watch_stdin(move |line| {
        if line == "stop" {
            if let Some(tx) = stop_tx.take() {
                let _ = tx.send(());
            }
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let config = EtcdConfig::new().ttl(LEASE);
        let registry = Arc::new(
            EtcdRegistry::connect([etcd], config)
                .await
                .map_err(|e| format!("etcd: {e}"))?,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let work = Duration::from_millis(work_ms);
        let svc = RawService::new(SERVICE).method("Work", move |req: Request| async move {
            // Waiting on something else (a database, a dependency) for `work`.
            tokio::time::sleep(work).await;
            Ok(Response::new(req.into_body()))
        });
        let server =
            Server::builder().add_service(LoadShedLayer::new(ShedLimit::Fixed(limit)).layer(svc));
        let serving = ServeRegistered::new(Instance::new(SERVICE, addr.to_string()));
        let mut status = serving.status();
        let registered = async move {
            let _ = status.registered().await;
            say(&format!("listening {addr}"));
        };
        let run = serving.serve(
            server,
            listener,
            registry.as_ref() as &dyn Registry,
            async {
                let _ = stop_rx.await;
            },
        );
        let (res, ()) = tokio::join!(run, registered);
        res.map_err(|e| e.to_string())
    })
}
