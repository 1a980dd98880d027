use rpc_core::{service, Status};

#[service]
pub trait Store {
    #[rpc(name = "Get")]
    async fn fetch(&self, key: String) -> Result<String, Status>;

    async fn get(&self, key: String) -> Result<String, Status>;
}

fn main() {}
