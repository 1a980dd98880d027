//! A service with errors, then code that uses its trait, client and server as if it had none:
//! only the macro's own errors are reported, not "cannot find type `GreeterClient`" and the like.

use std::time::Duration;

use rpc_core::transport::memory::MemoryListener;
use rpc_core::{service, Context, Endpoint, Server, Status};

#[service(name = "test.Greeter")]
pub trait Greeter {
    async fn hello(&self, name: String) -> Result<String, Status>;

    #[rpc(retries = 3)]
    async fn goodbye(&self, ctx: &Context, name: String) -> Result<(), Status>;

    async fn shout(&self, words: &str) -> Result<String, Status>;
}

struct Polite;

impl Greeter for Polite {
    async fn hello(&self, name: String) -> Result<String, Status> {
        Ok(format!("hello {name}"))
    }

    async fn goodbye(&self, _ctx: &Context, _name: String) -> Result<(), Status> {
        Ok(())
    }

    async fn shout(&self, words: &str) -> Result<String, Status> {
        Ok(words.to_uppercase())
    }
}

async fn run() -> Result<String, Status> {
    let listener = MemoryListener::bind("ui-error-then-use").unwrap();
    let server = Server::builder().add_service(GreeterServer::new(Polite));
    let _serving = server.serve(listener);

    let client = GreeterClient::new(Endpoint::memory("ui-error-then-use").connect_lazy());
    let greeting: String = client.hello("Ada".into()).await?;
    client
        .goodbye("Ada".into())
        .timeout(Duration::from_secs(1))
        .await?;
    let loud = client.shout("hi").await?;
    assert_eq!(GreeterServer::<Polite>::DESCRIPTOR.name, "Greeter");
    Ok(greeting + &loud)
}

fn main() {
    let _ = run();
}
