use rpc_core::{service, Status};

#[service]
pub trait Greeter {
    fn hello(&self, name: String) -> Result<String, Status>;
}

fn main() {}
