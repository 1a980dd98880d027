#![deny(warnings, missing_docs)]
//! Errors everywhere, in the attribute and the trait, and code that uses what the macro would
//! have generated: the stubs (a generic trait's parameters, generic methods, a reserved name, no
//! return type, the context left out) add no error of their own, not even a lint.

use rpc_core::{service, Context, Endpoint, Server, Status};

/// Docs.
#[service(name = "a/b", version = 1.5, crate = "rpc_core")]
pub trait Store<'a, X: Copy = u8>
where
    X: Send,
{
    /// Docs.
    type Item;
    /// Docs.
    async fn item(&self, i: Self::Item) -> Result<Self::Item, Status>;
    /// Docs.
    async fn borrowed(&self, s: &'a str) -> Result<(), Status>;
    /// Docs.
    async fn new(&self) -> Result<(), Status>;
    /// Docs.
    fn plain(&self, a: u32) -> impl std::future::Future<Output = Result<u32, Status>> + Send;
    /// Docs.
    async fn nothing(&self, #[rpc(context)] ctx: Context);
    /// Docs.
    async fn generic<T: Clone>(&self, t: T, x: X) -> Result<(), Status>
    where
        T: Send;
    /// Docs.
    async fn no_self(ctx: &Context, a: String) -> Result<String, Status>;
}

/// Docs.
pub async fn run() -> Result<(), Status> {
    let _server = Server::builder().add_service(StoreServer::new(7u8));
    let client = StoreClient::new(Endpoint::memory("x").connect_lazy())
        .with_codec(rpc_core::CodecId::JSON);
    let _ = client.plain(3).await?;
    let () = client.nothing().await?;
    client.generic(1u8, 2u16).await?;
    let s: String = client.no_self("a".into()).await?;
    client.borrowed("x").await?;
    let _ = (s, format!("{client:?}"), client.clone().into_inner());
    Ok(())
}

fn main() {}
