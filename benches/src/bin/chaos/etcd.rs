//! A throwaway etcd: free loopback ports, a temporary data directory, stopped by PID and deleted
//! on drop. `scripts/deps` installs the `etcd` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to report healthy.
const START: Duration = Duration::from_secs(20);

pub(crate) struct Etcd {
    root: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A data directory: on tmpfs when there is one (etcd syncs every write), else the temp dir.
fn temp_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    base.join(format!("rpc-chaos-{}-{nanos}", std::process::id()))
}

impl Etcd {
    /// Starts etcd and waits until it is healthy (trying other ports if one was taken).
    pub(crate) fn start() -> Result<Etcd, String> {
        let root = temp_root();
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut etcd = Etcd {
            root,
            client_port: 0,
            peer_port: 0,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            etcd.client_port = free_port()?;
            etcd.peer_port = free_port()?;
            let _ = std::fs::remove_dir_all(etcd.root.join("data"));
            match etcd.launch() {
                Ok(()) => return Ok(etcd),
                Err(e) => last = e,
            }
        }
        Err(format!("etcd did not start: {last}"))
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn launch(&mut self) -> Result<(), String> {
        // Never two at once: a launch that timed out leaves nothing running.
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("etcd.log"))
            .map_err(|e| e.to_string())?;
        let c = self.url();
        let p = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .args(["--name", "chaos", "--data-dir"])
            .arg(self.root.join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("chaos={p}")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("chaos-{}", self.client_port),
            ])
            .args(["--log-level", "error"])
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting etcd (bash scripts/deps installs it): {e}"))?;
        self.child = Some(child);
        let until = Instant::now() + START;
        while Instant::now() < until {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = std::fs::read_to_string(self.root.join("etcd.log")).unwrap_or_default();
                return Err(format!("etcd exited with {status}: {log}"));
            }
            if self.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!("etcd not healthy within {START:?}"))
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut body = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut body).is_ok()
            && body.contains("\"health\":\"true\"")
    }

    /// Kills etcd with SIGKILL; its data directory stays.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same ports and data directory.
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let until = Instant::now() + START;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                // The old process's sockets may linger a moment.
                Err(e) if Instant::now() < until && e.contains("address already in use") => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("etcd restart: {e}")),
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
