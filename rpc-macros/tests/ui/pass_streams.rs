//! Stream arguments written through the runtime's path, and an mpsc `Sender` of the user's
//! that is an ordinary argument type (here a message type named `Sender` in a module).
use rpc_core::{service, Status};

mod model {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Sender<T> {
        pub value: T,
    }
}

#[service]
pub trait Feeds {
    async fn watch(&self, out: rpc_core::Sender<u32>) -> Result<(), Status>;
    async fn upload(&self, parts: ::rpc_core::Streaming<String>) -> Result<u32, Status>;
    async fn plain(&self, who: model::Sender<u32>) -> Result<u32, Status>;
}

fn main() {}
