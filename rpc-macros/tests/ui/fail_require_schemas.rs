//! With `require_schemas`, a message type without a `Schema` is an error at the type.

use rpc_core::{service, Status};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Undescribed {
    pub x: u32,
}

#[service(name = "demo.Strict", require_schemas)]
pub trait Strict {
    async fn keep(&self, value: Undescribed) -> Result<(), Status>;
}

fn main() {}
