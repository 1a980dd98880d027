use rpc_core::{service, Status};

#[service]
pub trait Events {
    #[rpc(one_way)]
    async fn publish(&self, event: String) -> Result<u32, Status>;
}

fn main() {}
