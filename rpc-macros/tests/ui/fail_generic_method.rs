use rpc_core::{service, Status};

#[service]
pub trait Store {
    async fn put<T>(&self, value: T) -> Result<(), Status>;
}

fn main() {}
