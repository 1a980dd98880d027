use rpc_core::{service, Status};

#[service]
pub trait Greeter {
    async fn hello(&self, name: &str) -> Result<String, Status>;
}

fn main() {}
