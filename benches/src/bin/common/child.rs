//! Child processes of a benchmark: the same binary started with a subcommand, optionally pinned
//! to one CPU with `taskset`, talking line by line over its stdin and stdout.
//!
//! Shared by the `memory` and `overload` binaries (each includes this file with `#[path]`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Whether children can be pinned: `taskset` runs and there are at least two CPUs.
#[allow(dead_code)] // `chaos` does not pin.
pub(crate) fn can_pin() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok()
}

/// A child process of this binary, running `args`, pinned to `cpu` when given.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts `args` (a subcommand and its flags) in a child process; stderr is inherited.
    pub(crate) fn start(name: &str, cpu: Option<u32>, args: &[String]) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // `taskset -c N exe …` execs `exe`: the child's pid is the benchmark's process.
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Proc {
            name: name.to_string(),
            child,
            stdin,
            lines,
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for a line starting with `prefix` (earlier lines are skipped).
    pub(crate) fn expect(&self, prefix: &str, timeout: Duration) -> Result<String, String> {
        self.poll_line(prefix, timeout)?.ok_or_else(|| {
            format!(
                "the {} printed no {prefix:?} line within {timeout:?}",
                self.name
            )
        })
    }

    /// Like [`Proc::expect`], but `Ok(None)` when `timeout` passes first.
    pub(crate) fn poll_line(
        &self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Option<String>, String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(Some(line)),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the {} ended before printing {prefix:?}",
                        self.name
                    ))
                }
            }
        }
    }

    /// Writes one line to the child's stdin.
    #[allow(dead_code)] // `memory` talks to its children; `overload` only listens.
    pub(crate) fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the {}: {e}", self.name))
    }

    /// Closes the child's stdin and waits up to `timeout` for it to exit; kills it after that.
    /// Returns whether it exited successfully on its own.
    pub(crate) fn finish(&mut self, timeout: Duration) -> bool {
        self.stdin = None;
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key=` in a `key=value …` line.
#[allow(dead_code)] // `chaos` reads no `key=value` lines.
pub(crate) fn field(line: &str, key: &str) -> Result<f64, String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("missing {key} in {line:?}"))
}

/// Prints one line on stdout and flushes it (stdout is a pipe to the orchestrator).
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads stdin line by line on a thread of its own, calling `on_line` for each; when stdin ends
/// (the orchestrator closed it or died), exits the process: a child never outlives its run.
pub(crate) fn watch_stdin(mut on_line: impl FnMut(&str) + Send + 'static) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => on_line(line.trim()),
                Err(_) => break,
            }
        }
        std::process::exit(0);
    });
}
