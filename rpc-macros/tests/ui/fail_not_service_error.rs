use rpc_core::service;

pub struct MyErr;

#[service]
pub trait Counter {
    async fn count(&self) -> Result<u32, MyErr>;
}

fn main() {}
