//! `#[service]`: one annotated Rust trait becomes a typed client, a server dispatcher and a
//! machine-readable description of the API. Use it through `rpc_core::service`.
//!
//! ```
//! use rpc_core::transport::memory::MemoryListener;
//! use rpc_core::{service, CodecId, Context, Endpoint, Server, Status};
//!
//! #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
//! pub struct Item {
//!     #[prost(string, tag = "1")]
//!     pub sku: String,
//!     #[prost(uint32, tag = "2")]
//!     pub quantity: u32,
//! }
//!
//! /// Stock levels of the shop.
//! #[service(name = "shop.Inventory", version = "2")]
//! pub trait Inventory {
//!     /// Reserves items; the reply says how many are left.
//!     #[rpc(idempotent, timeout = "500ms")]
//!     async fn reserve(&self, item: Item) -> Result<Item, Status>;
//!
//!     /// How many of `sku` are in `warehouse` (several arguments: JSON or MessagePack).
//!     async fn count(&self, ctx: &Context, sku: String, warehouse: String) -> Result<u32, Status>;
//!
//!     /// Fire and forget.
//!     #[rpc(one_way, name = "Restocked")]
//!     async fn restocked(&self, item: Item) -> Result<(), Status>;
//! }
//!
//! struct Shop;
//!
//! impl Inventory for Shop {
//!     async fn reserve(&self, item: Item) -> Result<Item, Status> {
//!         Ok(Item { quantity: 100 - item.quantity, ..item })
//!     }
//!     async fn count(&self, ctx: &Context, sku: String, _warehouse: String) -> Result<u32, Status> {
//!         let caller = ctx.metadata().get_str("caller").unwrap_or("nobody");
//!         Ok(sku.len() as u32 + caller.len() as u32)
//!     }
//!     async fn restocked(&self, _item: Item) -> Result<(), Status> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = MemoryListener::bind("macros-doc")?;
//! tokio::spawn(Server::builder().add_service(InventoryServer::new(Shop)).serve(listener));
//!
//! let inventory = InventoryClient::new(Endpoint::memory("macros-doc").connect_lazy());
//! let left = inventory.reserve(Item { sku: "A-1".into(), quantity: 3 }).await?;
//! assert_eq!(left.quantity, 97);
//!
//! let n = inventory
//!     .count("A-1".into(), "north".into())
//!     .codec(CodecId::JSON)
//!     .metadata("caller", "web")
//!     .await?;
//! assert_eq!(n, 6);
//!
//! inventory.restocked(Item { sku: "A-1".into(), quantity: 10 }).await?;
//!
//! let method = &InventoryServer::<Shop>::DESCRIPTOR.methods[0];
//! assert_eq!((method.path, method.idempotent), ("shop.Inventory/Reserve", true));
//! # Ok(())
//! # }
//! ```
//!
//! # The trait
//! - Every method is an `async fn` taking `&self` (one value serves concurrent calls), then
//!   optionally the call's `Context` (by reference or by value), then its arguments, and returns
//!   `Result<T, E>` where `E` is `rpc_core::Status` or implements `rpc_core::ServiceError` (a
//!   typed error that crosses the wire).
//! - One argument is the request message itself. Several are carried as one generated message,
//!   which JSON and MessagePack can encode but Protobuf cannot: Protobuf needs a single prost
//!   message (calls in it fail with a clear `Unimplemented`). No argument and a `()` reply are
//!   empty bodies in every codec.
//! - Methods are not generic, the trait is not generic, and the trait gains the supertraits
//!   `Send + Sync + 'static`. Implementations write `async fn` as usual; the trait declares
//!   `impl Future + Send` so servers may run handlers on any thread.
//!
//! # Attributes
//! - On the trait: `#[service(name = "pkg.Service", version = "1")]`. The name defaults to the
//!   trait's, the version to `"1"`.
//! - On a method: `#[rpc(name = "Wire", one_way, idempotent, timeout = "250ms")]`. The wire
//!   name defaults to the method name in UpperCamelCase (`place_order` is `PlaceOrder`); a
//!   one-way method returns `Result<(), E>` and its caller gets no reply; `idempotent` lets
//!   retries and hedging repeat the call; `timeout` is the default deadline of a call.
//!
//! # What is generated, for a trait `Inventory`
//! - `InventoryClient<S = Channel>`: a method per trait method returning a
//!   `rpc_core::client::UnaryCall`, awaited as is or after per-call `.timeout(..)`, `.codec(..)`
//!   and `.metadata(..)`. `S` is any `tower::Service<Request>` with `Status` errors, so
//!   middleware and balancers slot in.
//! - `InventoryServer<T: Inventory>`: mounts on `rpc_core::Server` beside other services and is a
//!   tower service. It decodes each request in the codec it arrived in and answers in the same.
//! - `DESCRIPTOR` on both: a `rpc_core::describe::ServiceDescriptor` with the name, version,
//!   methods, types, attributes and doc comments, which every server also serves through its
//!   built-in describe method.

use proc_macro::TokenStream;

mod expand;
mod parse;

/// Generates a client, a server and a description from a trait of `async fn`s. See the
/// [crate documentation](crate) for the rules and an example.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let mut item = match syn::parse::<syn::ItemTrait>(item) {
        Ok(item) => item,
        Err(_) => {
            let mut out = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[service]` goes on a trait of `async fn`s",
            )
            .to_compile_error();
            out.extend(original);
            return out.into();
        }
    };
    let args = match parse::ServiceArgs::parse(attr.into()) {
        Ok(args) => args,
        Err(e) => return with_trait(e, &item),
    };
    match parse::parse(args, &mut item) {
        Ok(svc) => expand::expand(&svc, item).into(),
        Err(e) => with_trait(e, &item),
    }
}

/// The errors, plus the trait as written (without `#[rpc]`), so that code using the trait does not
/// add errors of its own.
fn with_trait(e: syn::Error, item: &syn::ItemTrait) -> TokenStream {
    let mut item = item.clone();
    for trait_item in &mut item.items {
        if let syn::TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|a| !a.path().is_ident("rpc"));
        }
    }
    let mut out = e.to_compile_error();
    quote::ToTokens::to_tokens(&item, &mut out);
    out.into()
}
