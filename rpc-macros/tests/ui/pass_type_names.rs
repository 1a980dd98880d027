#![deny(warnings)]

//! User types named like the generated code's generic parameters, and `self: &Self`.

use rpc_core::{service, Status};

/// A message named `S`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct S {
    /// A number.
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

/// A message named `T`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct T {
    /// A number.
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

/// Converts.
#[service]
pub trait Convert {
    /// `S` to `T`.
    async fn convert(self: &Self, s: S) -> Result<T, Status>;
}

struct Converter;

impl Convert for Converter {
    async fn convert(&self, s: S) -> Result<T, Status> {
        Ok(T { n: s.n })
    }
}

fn main() {
    let _server = ConvertServer::new(Converter);
    let client = ConvertClient::new(rpc_core::Endpoint::memory("unused").connect_lazy());
    let _call = client.convert(S { n: 1 });
}
