//! A throwaway etcd for tests, a TCP proxy that can cut a client off from it, and the
//! workspace's one poll-until helper ([`eventually`]).

#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../../../rpc-core/tests/support/poll.rs"]
mod poll;

#[allow(unused_imports)] // not every test binary that includes this module polls
pub use poll::eventually;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long etcd may take to report healthy.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Where the `etcd` binary is; panics with what to install when it is missing.
fn etcd_binary() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the etcd tests need the `etcd` server binary, which is not on PATH: install the \
                 Debian package `etcd-server` (`apt-get install etcd-server`); .ci/run installs it"
            )
        })
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

fn unique_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "rpc-discovery-etcd-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("creating the etcd temp dir");
    dir
}

/// One etcd process on free loopback ports with its own data dir, killed and deleted on drop.
#[derive(Debug)]
pub struct EtcdServer {
    binary: PathBuf,
    root: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Bumped for each new cluster on the same ports (it is part of the cluster token, from
    /// which etcd derives the cluster id).
    generation: u32,
    child: Option<Child>,
}

enum StartError {
    AddressInUse,
    Other(String),
}

impl EtcdServer {
    /// Starts etcd and waits until it reports healthy.
    pub fn start() -> EtcdServer {
        let mut server = EtcdServer {
            binary: etcd_binary(),
            root: unique_dir(),
            client_port: 0,
            peer_port: 0,
            generation: 0,
            child: None,
        };
        for _ in 0..5 {
            server.client_port = free_port();
            server.peer_port = free_port();
            if server.client_port == server.peer_port {
                continue;
            }
            let _ = fs::remove_dir_all(server.data_dir());
            match server.launch() {
                Ok(()) => return server,
                // Another process took a port between our probe and etcd's bind: new ports.
                Err(StartError::AddressInUse) => continue,
                // `server` is dropped while unwinding: the process is killed, the dir deleted.
                Err(StartError::Other(e)) => panic!("etcd did not start: {e}"),
            }
        }
        panic!("etcd did not start after 5 tries: address already in use");
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("etcd.log")
    }

    /// `http://127.0.0.1:PORT`, the client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn launch(&mut self) -> Result<(), StartError> {
        let log =
            fs::File::create(self.log_path()).map_err(|e| StartError::Other(e.to_string()))?;
        let c = format!("http://127.0.0.1:{}", self.client_port);
        let p = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .args(["--name", "t0", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("t0={p}")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("tok-{}-{}", self.client_port, self.generation),
            ])
            .args(["--log-level", "error"])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| StartError::Other(format!("spawning {}: {e}", self.binary.display())))?;
        self.child = Some(child);
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains("address already in use") {
                    return Err(StartError::AddressInUse);
                }
                return Err(StartError::Other(format!(
                    "etcd exited with {status}:\n{log}"
                )));
            }
            if health(self.client_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(StartError::Other(format!(
                    "not healthy within {START_DEADLINE:?}:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills etcd (SIGKILL) and waits for it to exit; the data dir stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn backup_dir(&self) -> PathBuf {
        self.root.join("backup")
    }

    /// Stops etcd, copies its data dir aside (a backup of this moment) and starts it again.
    pub fn backup(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(self.backup_dir());
        copy_dir(&self.data_dir(), &self.backup_dir()).expect("backing up the data dir");
        self.restart();
    }

    /// Stops etcd and starts it again on the same ports from the data dir of the last
    /// [`EtcdServer::backup`]: the same cluster, its history back where the backup was.
    pub fn restore_backup(&mut self) {
        self.kill();
        fs::remove_dir_all(self.data_dir()).expect("removing the data dir");
        copy_dir(&self.backup_dir(), &self.data_dir()).expect("restoring the data dir");
        self.restart();
    }

    /// Stops etcd and starts a new, empty cluster (another cluster id) on the same ports.
    pub fn replace_with_new_cluster(&mut self) {
        self.kill();
        fs::remove_dir_all(self.data_dir()).expect("removing the data dir");
        self.generation += 1;
        self.restart();
    }

    /// Starts etcd again on the same ports and data dir (after [`EtcdServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => return,
                // The old process's sockets may linger for a moment.
                Err(StartError::AddressInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(StartError::AddressInUse) => panic!("etcd restart: address in use"),
                Err(StartError::Other(e)) => panic!("etcd restart: {e}"),
            }
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Copies the directory tree `from` to `to` (which must not exist).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `true` if `GET /health` says healthy.
fn health(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// A TCP proxy to `upstream` that can be cut: while cut, open connections are closed and new
/// ones are closed as soon as accepted. Runs on the current Tokio runtime.
#[derive(Debug, Clone)]
pub struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let proxy = Proxy {
            addr,
            cut: cut.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                if cut.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let mut cut_signal = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cut_signal.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// `http://ADDR`, for clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Prints the crate's `tracing` events at INFO and above to stderr (captured by the test
/// harness, so they show up with a failing test or with `--nocapture`).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Printer {
            start: Instant::now(),
        });
    });
}

struct Printer {
    start: Instant,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl tracing::Subscriber for Printer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::INFO && metadata.target().starts_with("rpc_discovery")
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        eprintln!(
            "{:>8.3}s {:5} {line}",
            self.start.elapsed().as_secs_f64(),
            event.metadata().level()
        );
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
