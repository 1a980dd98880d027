use rpc_core::{service, Sender, Status, Streaming};

#[service]
pub trait Feeds {
    // A request stream is the whole request: no other argument can travel.
    async fn upload(&self, name: String, parts: Streaming<String>) -> Result<u32, Status>;

    // A reply stream ends with the status: nothing else to return.
    async fn watch(&self, sku: String, out: Sender<u32>) -> Result<u32, Status>;

    // A one-way call has no reply to stream.
    #[rpc(one_way)]
    async fn push(&self, parts: Streaming<String>) -> Result<(), Status>;

    // One request stream per call.
    async fn merge(&self, a: Streaming<u32>, b: Streaming<u32>) -> Result<u32, Status>;
}

fn main() {}
