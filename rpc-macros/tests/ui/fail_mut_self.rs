use rpc_core::{service, Status};

#[service]
pub trait Counter {
    async fn increment(&mut self, by: u32) -> Result<u32, Status>;
}

fn main() {}
