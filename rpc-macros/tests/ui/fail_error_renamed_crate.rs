//! The error path uses the `crate` path too: with the runtime under another name, the stubs
//! still compile and the only error is the macro's.

extern crate rpc_core as renamed_rpc;

#[renamed_rpc::service(namespace = "x", crate = "renamed_rpc")]
pub trait Store {
    async fn get(&self, key: String) -> Result<String, renamed_rpc::Status>;
}

fn main() {
    let store = StoreClient::new(renamed_rpc::Endpoint::memory("unused").connect_lazy());
    let _call = store.get("key".into());
}
