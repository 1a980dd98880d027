use rpc_core::service;

#[service]
pub trait Counter {
    async fn count(&self) -> u32;
}

fn main() {}
