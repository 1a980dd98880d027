use rpc_core::{service, Status};

#[service]
pub trait Greeter {
    async fn hello(name: String) -> Result<String, Status>;
}

fn main() {}
