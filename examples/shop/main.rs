//! The reference shop in one process: six services (two replicas of inventory and orders) on
//! real TCP over loopback, found through the in-process registry; a few hundred simulated
//! customers; one inventory replica and one orders replica killed mid-run without warning; then
//! a report, and the shop's invariants checked from the services' own audits.
//!
//! ```text
//! cargo run --release --example shop
//! cargo run --release --example shop -- --customers 500 --secs 10 --seed 7 --no-kill
//! cargo run --release --example shop --features secure -- --secure
//! ```
//!
//! `--secure` runs every service over mutual TLS (one CA made at start-up, one identity per
//! service), has customers sign in for a JWT, and authorizes each call to orders and payments;
//! the report adds how many calls were authenticated and refused.
//!
//! With the `etcd` feature the same code runs as separate processes (`scripts/shop-cluster`
//! starts them): `shop --etcd URL serve SERVICE --name NAME` serves one replica, `shop --etcd
//! URL drive` runs the customers and the audit.
//!
//! The last line is `shop: customers=C orders=O paid=P cancelled=X refused=R failed=F
//! invariants=ok` (or `invariants=violated`); the exit status is non-zero if an invariant is
//! violated or a customer operation failed.

use std::process::ExitCode;
use std::time::Duration;

use examples::shop::local::{run, RunConfig};

/// What to do: the one-process shop, or (feature `etcd`) one part of it as its own process.
enum Mode {
    Local,
    Serve { service: String, name: String },
    Drive,
}

struct Args {
    mode: Mode,
    etcd: Option<String>,
    customers: u64,
    secs: f64,
    seed: u64,
    kill: bool,
    secure: bool,
}

const USAGE: &str = "usage: shop [--customers N] [--secs S] [--seed N] [--no-kill] [--secure]
       shop --etcd URL serve SERVICE --name NAME    (feature etcd; SERVICE: users, catalogue,
                                                     payments, notifications, inventory, orders)
       shop --etcd URL drive [--customers N] [--secs S] [--seed N]   (feature etcd)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Local,
        etcd: None,
        customers: 300,
        secs: 6.0,
        seed: 1,
        kill: true,
        secure: false,
    };
    let mut name = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--customers" => {
                args.customers = value()?.parse().map_err(|e| format!("--customers: {e}"))?
            }
            "--secs" => args.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--no-kill" => args.kill = false,
            "--secure" => args.secure = true,
            "--etcd" => args.etcd = Some(value()?),
            "--name" => name = Some(value()?),
            "serve" => {
                args.mode = Mode::Serve {
                    service: value()?,
                    name: String::new(),
                }
            }
            "drive" => args.mode = Mode::Drive,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !(args.secs.is_finite() && args.secs > 0.0) {
        return Err("--secs must be a positive number".to_owned());
    }
    match &mut args.mode {
        Mode::Serve { service, name: n } => {
            *n = name.unwrap_or_else(|| format!("{service}-{}", std::process::id()));
        }
        Mode::Drive => {}
        Mode::Local if args.etcd.is_some() => {
            return Err(format!("--etcd needs serve or drive\n{USAGE}"))
        }
        Mode::Local => {}
    }
    if args.secure && !matches!(args.mode, Mode::Local) {
        return Err(format!("--secure runs the one-process shop only\n{USAGE}"));
    }
    if !matches!(args.mode, Mode::Local) && args.etcd.is_none() {
        return Err(format!("serve and drive need --etcd URL\n{USAGE}"));
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_tracing_or("error");
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = RunConfig {
        customers: args.customers,
        duration: Duration::from_secs_f64(args.secs),
        seed: args.seed,
        kill: args.kill,
        secure: args.secure,
    };
    let outcome = match (args.mode, args.etcd) {
        (Mode::Local, _) => run(&config).await,
        #[cfg(feature = "etcd")]
        (Mode::Serve { service, name }, Some(etcd)) => {
            return match examples::shop::cluster::serve(&etcd, &service, &name).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("shop: {name}: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        #[cfg(feature = "etcd")]
        (Mode::Drive, Some(etcd)) => {
            examples::shop::cluster::drive(&etcd, &config, Duration::from_secs(30)).await
        }
        _ => {
            eprintln!(
                "serve and drive need the etcd feature: cargo run --release --example shop --features etcd"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(outcome) => {
            print!("{}", outcome.report);
            println!("{}", outcome.summary);
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}
