use rpc_core::{service, Status};

#[service]
pub trait Orders {
    #[rpc(scope = "orders write")]
    async fn cancel(&self, id: u64) -> Result<(), Status>;
}

fn main() {}
