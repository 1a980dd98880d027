//! `rpc-api`: a service's API from its description, for people and for CI.
//!
//! ```text
//! rpc-api describe ADDR [--markdown]                 the description a server answers
//! rpc-api export proto|json-schema|openapi SOURCE    the API in another format
//! rpc-api diff OLD NEW                               what changed; exit 1 on a breaking change
//! ```
//!
//! A SOURCE (and OLD, NEW) is a running server's address (`127.0.0.1:50051`, `tcp://…`,
//! `unix:///…`), whose `rpc.Server/Describe` is asked, or a file holding a JSON description
//! (`rpc-api describe ADDR > api.json`). Exit status: 0 done (no breaking change), 1 a breaking
//! change, 2 an error (unreachable server, unreadable description, bad arguments).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use rpc_core::describe::{self, Description, Format};
use rpc_core::Endpoint;

fn cli() -> Command {
    let source = |name: &'static str, help: &'static str| Arg::new(name).required(true).help(help);
    Command::new("rpc-api")
        .about("A service's API from its description: fetch it, export it, check a change")
        .subcommand_required(true)
        .subcommand(
            Command::new("describe")
                .about("Print the description a server answers rpc.Server/Describe with")
                .arg(source(
                    "addr",
                    "The server's address (host:port, tcp://, unix://)",
                ))
                .arg(
                    Arg::new("markdown")
                        .long("markdown")
                        .action(ArgAction::SetTrue)
                        .help("Markdown instead of JSON"),
                ),
        )
        .subcommand(
            Command::new("export")
                .about("Export the API as a .proto file, JSON Schema 2020-12 or OpenAPI 3.1")
                .arg(Arg::new("format").required(true).value_parser([
                    "proto",
                    "json-schema",
                    "openapi",
                ]))
                .arg(source(
                    "source",
                    "A server's address or a JSON description file",
                )),
        )
        .subcommand(
            Command::new("diff")
                .about("List the changes from OLD to NEW; exit 1 if one breaks old callers")
                .arg(source("old", "The old description: an address or a file"))
                .arg(source("new", "The new description: an address or a file")),
        )
}

/// Fetches the description from the server at `addr` in `format`.
async fn fetch(addr: &str, format: Format) -> Result<String, String> {
    let endpoint = Endpoint::from_uri(addr).map_err(|e| e.to_string())?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    describe::fetch(channel, format)
        .await
        .map_err(|e| format!("{addr}: {e}"))
}

/// Reads a description from a file, or from the server at that address.
async fn load(source: &str) -> Result<Description, String> {
    let text = if std::path::Path::new(source).is_file() {
        std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))?
    } else {
        fetch(source, Format::Json).await?
    };
    Description::from_json(&text).map_err(|e| format!("{source}: {e}"))
}

async fn run() -> Result<ExitCode, String> {
    let matches = cli().get_matches();
    let arg = |m: &clap::ArgMatches, name: &str| -> String {
        m.get_one::<String>(name).cloned().unwrap_or_default()
    };
    match matches.subcommand() {
        Some(("describe", m)) => {
            let format = if m.get_flag("markdown") {
                Format::Markdown
            } else {
                Format::Json
            };
            println!("{}", fetch(&arg(m, "addr"), format).await?);
            Ok(ExitCode::SUCCESS)
        }
        Some(("export", m)) => {
            let d = load(&arg(m, "source")).await?;
            let out = match arg(m, "format").as_str() {
                "proto" => describe::to_proto(&d).map_err(|e| e.to_string())?,
                "json-schema" => pretty(&describe::to_json_schema(&d)),
                _ => pretty(&describe::to_openapi(&d)),
            };
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Some(("diff", m)) => {
            let old = load(&arg(m, "old")).await?;
            let new = load(&arg(m, "new")).await?;
            let changes = describe::diff(&old, &new);
            for c in &changes {
                println!("{c}");
            }
            let breaking = changes.iter().filter(|c| c.breaking).count();
            println!(
                "rpc-api diff: changes={} breaking={breaking}",
                changes.len()
            );
            Ok(if breaking > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        _ => Err("a subcommand is required".to_owned()),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rpc-api: {e}");
            ExitCode::from(2)
        }
    }
}
