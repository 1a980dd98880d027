//! `overload serve`: the server under test, on TCP loopback, with one of the shedding
//! configurations. Prints `listening <addr>`; exits when stdin closes.
//!
//! `bench.Work/Inline` is busy on the CPU for `--work-us` and finishes in its first poll (served
//! on the connection's task); `bench.Work/Await` yields once first, so it moves to its own task.
//! Both echo the request body.

use std::fmt;
use std::time::{Duration, Instant};

use rpc_core::middleware::{LoadShedLayer, ShedLimit};
use rpc_core::server::RawService;
use rpc_core::{Request, Response, Server};
use tower::Layer;

use crate::args::{arg_value, parse};
use crate::child::{say, watch_stdin};

/// The handler kinds, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    /// Finishes in its first poll.
    Inline,
    /// Yields once, then works.
    Await,
}

impl Handler {
    pub(crate) const ALL: [Handler; 2] = [Handler::Inline, Handler::Await];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Handler::Inline => "inline",
            Handler::Await => "await",
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Handler::Inline => "bench.Work/Inline",
            Handler::Await => "bench.Work/Await",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Handler, String> {
        Handler::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| format!("unknown handler {s:?}; expected inline or await"))
    }
}

/// Which shedding the server runs: any of `Server::max_queue_delay` and a `LoadShedLayer`
/// around the service, written `none`, `queue-delay`, `layer-fixed`, `layer-aimd`, or two joined
/// with `+` (`queue-delay+layer-aimd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shedding {
    /// `Server::max_queue_delay` (issue 12, item 10).
    pub(crate) queue_delay: bool,
    /// `LoadShedLayer` with a fixed limit or AIMD.
    pub(crate) layer: Option<LayerKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    Fixed,
    Aimd,
}

impl Shedding {
    pub(crate) fn parse(s: &str) -> Result<Shedding, String> {
        let mut out = Shedding {
            queue_delay: false,
            layer: None,
        };
        for part in s.split('+') {
            match part.trim() {
                "none" => {}
                "queue-delay" => out.queue_delay = true,
                "layer-fixed" => out.layer = Some(LayerKind::Fixed),
                "layer-aimd" => out.layer = Some(LayerKind::Aimd),
                other => {
                    return Err(format!(
                        "unknown shedding {other:?}; expected none, queue-delay, layer-fixed, layer-aimd, or two joined with +"
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Shedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.queue_delay {
            parts.push("queue-delay");
        }
        match self.layer {
            Some(LayerKind::Fixed) => parts.push("layer-fixed"),
            Some(LayerKind::Aimd) => parts.push("layer-aimd"),
            None => {}
        }
        if parts.is_empty() {
            parts.push("none");
        }
        f.write_str(&parts.join("+"))
    }
}

/// The server's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerArgs {
    pub(crate) shedding: Shedding,
    /// The handlers' CPU time.
    pub(crate) work: Duration,
    /// `Server::max_queue_delay`, when `shedding.queue_delay`.
    pub(crate) max_queue_delay: Duration,
    /// `ShedLimit::Fixed`'s limit, and AIMD's initial one.
    pub(crate) layer_limit: usize,
    /// AIMD's latency target.
    pub(crate) aimd_target: Duration,
}

impl ServerArgs {
    /// The flags that give these settings to `overload serve`.
    pub(crate) fn to_args(self) -> Vec<String> {
        [
            "serve".to_string(),
            "--shed".into(),
            self.shedding.to_string(),
            "--work-us".into(),
            self.work.as_micros().to_string(),
            "--max-queue-delay-us".into(),
            self.max_queue_delay.as_micros().to_string(),
            "--layer-limit".into(),
            self.layer_limit.to_string(),
            "--aimd-target-us".into(),
            self.aimd_target.as_micros().to_string(),
        ]
        .to_vec()
    }

    /// Reads one flag given by [`ServerArgs::to_args`] (or on the orchestrator's command line);
    /// `Ok(false)` if `flag` is not one of them.
    pub(crate) fn take_flag(
        &mut self,
        flag: &str,
        it: &mut impl Iterator<Item = String>,
    ) -> Result<bool, String> {
        let us = |v: String| parse::<u64>(&v, flag).map(Duration::from_micros);
        match flag {
            "--shed" => self.shedding = Shedding::parse(&arg_value(it, flag)?)?,
            "--work-us" => self.work = us(arg_value(it, flag)?)?,
            "--max-queue-delay-us" => self.max_queue_delay = us(arg_value(it, flag)?)?,
            "--layer-limit" => self.layer_limit = parse(&arg_value(it, flag)?, flag)?,
            "--aimd-target-us" => self.aimd_target = us(arg_value(it, flag)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Default for ServerArgs {
    fn default() -> ServerArgs {
        ServerArgs {
            shedding: Shedding {
                queue_delay: true,
                layer: None,
            },
            work: Duration::from_micros(75),
            max_queue_delay: Duration::from_millis(5),
            layer_limit: 64,
            aimd_target: Duration::from_millis(5),
        }
    }
}

/// Busy on the CPU for `d`.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

pub(crate) fn serve(args: Vec<String>) -> Result<(), String> {
    let mut a = ServerArgs::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if !a.take_flag(&flag, &mut it)? {
            return Err(format!("serve: unknown argument {flag:?}"));
        }
    }
    watch_stdin(|_| {});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let work = a.work;
        let svc = RawService::new("bench.Work")
            .method("Inline", move |req: Request| async move {
                spin(work);
                Ok(Response::new(req.into_body()))
            })
            .method("Await", move |req: Request| async move {
                tokio::task::yield_now().await;
                spin(work);
                Ok(Response::new(req.into_body()))
            });
        // Limits high enough that only the shedding under test refuses calls.
        let mut server = Server::builder()
            .max_concurrent_calls_per_connection(1_000_000)
            .max_concurrent_calls(1_000_000);
        if a.shedding.queue_delay {
            server = server.max_queue_delay(a.max_queue_delay);
        }
        let limit = match a.shedding.layer {
            None => None,
            Some(LayerKind::Fixed) => Some(ShedLimit::Fixed(a.layer_limit)),
            Some(LayerKind::Aimd) => Some(ShedLimit::Aimd {
                initial: a.layer_limit,
                min: 1,
                max: 4096,
                target: a.aimd_target,
            }),
        };
        let server = match limit {
            Some(limit) => server.add_service(LoadShedLayer::new(limit).layer(svc)),
            None => server.add_service(svc),
        };
        say(&format!("listening {addr}"));
        server.serve(listener).await.map_err(|e| e.to_string())
    })
}
