//! What `/proc` says about this process's descriptor limit (resident memory: `cpu.rs`).

use std::process::Command;

/// This process's soft and hard limits on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((nums.next()??, nums.next()??))
}

/// The environment variable that marks the re-executed process, so that it happens once.
const REEXEC: &str = "RPC_BENCH_MEMORY_REEXEC";

/// Makes sure this process (and so its children) may open `need` files: if the soft limit is
/// lower and the hard limit allows it, re-executes this binary with the same arguments under
/// `sh -c 'ulimit -S -n …'` and exits with its status. Returns `Ok(())` when the limit is enough
/// (or cannot be raised: then the run reports the connections that failed).
pub(crate) fn ensure_open_files(need: u64) -> Result<(), String> {
    let Some((soft, hard)) = open_files_limit() else {
        return Ok(());
    };
    if soft >= need || std::env::var_os(REEXEC).is_some() {
        return Ok(());
    }
    if hard < need {
        eprintln!(
            "memory: {need} open files needed, the hard limit is {hard}; run it under `ulimit -n {need}` as root, or with fewer --connections"
        );
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!("memory: raising the open-files limit from {soft} to {need} (re-executing)");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -S -n {need} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC, "1")
        .status()
        .map_err(|e| format!("re-executing under a higher ulimit: {e}"))?;
    std::process::exit(status.code().unwrap_or(1));
}
