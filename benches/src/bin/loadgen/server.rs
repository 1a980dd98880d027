//! `loadgen serve`: serves one system on TCP loopback and prints the address it listens on.

use std::io::Write;

use benches::systems::System;

use crate::args::{arg_value, Runtime};

pub(crate) fn serve(args: Vec<String>) -> Result<(), String> {
    let mut system = None;
    let mut runtime = Runtime::Current;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--system" => system = Some(arg_value(&mut it, &flag)?.parse::<System>()?),
            "--runtime" => runtime = Runtime::parse(&arg_value(&mut it, &flag)?)?,
            other => return Err(format!("serve: unknown argument {other:?}")),
        }
    }
    let system = system.ok_or("serve: --system is required")?;
    runtime
        .run(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("listening {addr}");
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            benches::systems::serve(system, listener).await
        })
        .map_err(|e| e.to_string())?
}
