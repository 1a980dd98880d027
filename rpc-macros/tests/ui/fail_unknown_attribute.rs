use rpc_core::{service, Status};

#[service]
pub trait Store {
    #[rpc(retries = 3)]
    async fn get(&self, key: String) -> Result<String, Status>;
}

fn main() {}
