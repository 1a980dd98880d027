#![deny(warnings)]

use rpc_core::{service, Context, Status};

/// Greets people.
#[service(name = "test.Greeter", version = "1")]
pub trait Greeter {
    /// Says hello.
    async fn hello(&self, name: String) -> Result<String, Status>;

    /// Says goodbye, several arguments and the context.
    #[rpc(idempotent, timeout = "250ms")]
    async fn goodbye(&self, ctx: &Context, name: String, times: u32) -> Result<(), Status>;

    /// Fire and forget.
    #[rpc(one_way, name = "Ping")]
    async fn ping(&self) -> Result<(), Status>;
}

struct Polite;

impl Greeter for Polite {
    async fn hello(&self, name: String) -> Result<String, Status> {
        Ok(format!("hello {name}"))
    }

    async fn goodbye(&self, _ctx: &Context, _name: String, _times: u32) -> Result<(), Status> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), Status> {
        Ok(())
    }
}

fn main() {
    let _server = GreeterServer::new(Polite);
    assert_eq!(GreeterServer::<Polite>::DESCRIPTOR.methods.len(), 3);
    assert_eq!(
        GreeterClient::<rpc_core::Channel>::DESCRIPTOR.methods[2].path,
        "test.Greeter/Ping"
    );
}
