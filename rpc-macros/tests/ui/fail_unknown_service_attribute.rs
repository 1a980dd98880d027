use rpc_core::{service, Status};

#[service(namespace = "x")]
pub trait Store {
    async fn get(&self, key: String) -> Result<String, Status>;
}

fn main() {}
