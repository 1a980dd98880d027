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
//!   optionally the call's `Context` (by reference or by value, see [below](#the-call-context)),
//!   then its arguments, and returns `Result<T, E>` where `E` is `rpc_core::Status` or
//!   implements `rpc_core::ServiceError` (a typed error that crosses the wire).
//! - One argument is the request message itself. Several are carried as one generated message,
//!   which JSON and MessagePack can encode but Protobuf cannot: Protobuf needs a single prost
//!   message (calls in it fail with a clear `Unimplemented`). No argument and a `()` reply are
//!   empty bodies in every codec.
//! - Streams (protocol 1.1): an argument `Sender<T>` makes the method server-streaming (it
//!   sends its replies, each a `T`, and returns `Result<(), E>`: the `E` ends the stream with
//!   an error); an argument `Streaming<T>` makes it client-streaming (the requests, each a `T`,
//!   are its only argument besides the context); both make it bidirectional. They are
//!   recognised by name like the context (`Sender`, `rpc_core::Sender`, or through the `crate`
//!   path). The generated client's method then returns a `rpc_core::client::StreamCall`:
//!   awaited, a `Streaming<T>` of replies, a `Sender` and a `Reply`, or a `Sender` and a
//!   `Streaming`. Streams need a transport that opens them (`Channel`); one-way methods cannot
//!   stream.
//! - Methods are not generic, the trait is not generic, and the trait gains the supertraits
//!   `Send + Sync + 'static`. Implementations write `async fn` as usual; the trait declares
//!   `impl Future + Send` so servers may run handlers on any thread.
//!
//! # Attributes
//! - On the trait: `#[service(name = "pkg.Service", version = "1", crate = "rpc_core")]`. The
//!   name defaults to the trait's, the version to `"1"`; `crate` is for a runtime that is not
//!   reachable as `::rpc_core` (see [below](#paths)).
//! - On a method: `#[rpc(name = "Wire", one_way, idempotent, timeout = "250ms",
//!   scope = "orders:write")]`. The wire name defaults to the method name in UpperCamelCase
//!   (`place_order` is `PlaceOrder`); a one-way method returns `Result<(), E>` and its caller
//!   gets no reply; `idempotent` lets retries and hedging repeat the call; `timeout` is the
//!   default deadline of a call; `scope` is the OAuth 2.0 scope a caller needs (one token of
//!   RFC 6749 §3.3), shown in the description and enforced by an `AuthLayer` whose policy takes
//!   `Policy::scopes_of(Trait::DESCRIPTOR)`.
//! - On an argument: `#[rpc(context)]` makes it the call's context.
//!
//! # The call context
//! A macro sees tokens, not imports, so the context is recognised by how its type is written.
//! The first argument after `&self` is the call's context when its type is `&Context` or
//! `Context` written
//! - as the bare name `Context` (as after `use rpc_core::Context`),
//! - as `rpc_core::Context` or `::rpc_core::Context`, or through the `crate` path
//!   (`renamed_rpc::Context`),
//! - or whatever its path, when the argument is marked `#[rpc(context)]`
//!   (`#[rpc(context)] ctx: &Ctx` with `type Ctx = rpc_core::Context`).
//!
//! Any other path ending in `Context` (`crate::Context`, `model::Context`) is an ordinary
//! argument, so a message type of your own named `Context` is passed by writing its path. The
//! generated server checks at compile time that the argument it takes for the context is
//! `rpc_core::Context`: a type of your own imported as `Context` and written bare is one error at
//! that argument, saying to write its path.
//!
//! # Paths
//! The generated code names the runtime by absolute paths, `::rpc_core::...` by default, and the
//! standard library as `::core::...` and `::std::...`: it compiles in a `#![no_implicit_prelude]`
//! module and needs no dependency other than the runtime (serde, tower and the codecs are reached
//! through it). When the runtime has another name, say so with `crate = "..."`: a bare name is a
//! crate (`crate = "renamed_rpc"` for `renamed_rpc = { package = "rpc-core", .. }` in
//! `Cargo.toml`, used as `::renamed_rpc`); a longer path is used as written, for a runtime
//! re-exported by another crate (`crate = "::platform::rpc"`) or by this one
//! (`crate = "crate::rpc"`).
//!
//! # Errors
//! Errors point at the offending tokens, and every error in a trait is reported at once. The
//! macro then still defines the trait (without its `#[rpc]` attributes) and stubs of
//! `{Trait}Client` and `{Trait}Server` with the same names and methods, so that the code that
//! uses them adds no errors of its own: a mistake in a service is one error, not a cascade.
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

mod attr;
mod errors;
mod expand;
mod fallback;
mod parse;
mod schema;

/// Generates a client, a server and a description from a trait of `async fn`s. See the
/// [crate documentation](crate) for the rules and an example.
///
/// - `#[service(name = "pkg.Service", version = "1", crate = "renamed_rpc", require_schemas)]`:
///   all optional; `crate` names the runtime when it is not the dependency `rpc_core` (a bare
///   name is a crate, a longer path such as `"crate::rpc"` is used as written);
///   `require_schemas` makes a message type without `Schema` (`#[derive(rpc_core::Schema)]`) a
///   compile error instead of an opaque entry in the description.
/// - `#[rpc(name = "Wire", one_way, idempotent, timeout = "250ms", scope = "orders:write")]` on
///   a method.
/// - The call's context is the first argument after `&self` typed `&Context` or `Context`, where
///   the type is written as the bare name `Context` or as `rpc_core::Context` (or through the
///   `crate` path); `#[rpc(context)]` marks it whatever the path. A type of your own named
///   `Context` is an ordinary argument when written with its path (`crate::Context`). The
///   generated code checks the context's type, so a mistake is one error at the argument.
/// - On invalid input the macro reports its errors and still defines the trait and stubs of the
///   client and server, so that code using them adds no errors of its own.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    service2(attr.into(), item.into()).into()
}

/// Derives `Schema` (`rpc_core::codec::schema::Schema`) for a struct or enum: what a client in
/// another language needs to build and read it, served by `rpc.Server/Describe`.
///
/// - Structs with named fields are messages: each field by its serde name (`rename`,
///   `rename_all`), its type (the field type's own `Schema`, or opaque if it has none), whether
///   it is required (not an `Option`, no `default`), its doc comment, and, with a
///   `#[prost(...)]` attribute, its Protobuf number and type. `#[serde(skip)]` fields are left
///   out; `#[serde(with = "serde_bytes")]` fields are byte strings.
/// - A newtype struct (and a `#[serde(transparent)]` one) is its field; a unit struct is unit.
/// - Enums list their variants by serde name, with their fields, their shape, and their
///   discriminant when written (Protobuf enumerations); `tag`, `content` and `untagged` set
///   the representation.
/// - `#[schema(name = "...")]` names the type (default: serde's container `rename`, else the
///   Rust name); `#[schema(crate = "...")]` names the runtime as in `#[service]`.
///
/// Generic types are refused: implement `Schema` by hand for them.
#[proc_macro_derive(Schema, attributes(schema))]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    schema::derive(item.into()).into()
}

/// [`service`] on `proc_macro2` tokens, which unit tests can call.
fn service2(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut item = match syn::parse2::<syn::ItemTrait>(item.clone()) {
        Ok(parsed) => parsed,
        Err(_) => {
            let mut out = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[service]` goes on a trait of `async fn`s",
            )
            .to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let written = item.clone();
    let mut errors = errors::Errors::default();
    let args = attr::ServiceArgs::parse(attr, &mut errors);
    let krate = args.krate.clone();
    match parse::parse(args, &mut item, errors) {
        Ok(svc) => expand::expand(&svc, item),
        Err(e) => fallback::expand(e, &krate, written),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::service2;

    fn trait_with(method: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        quote! {
            pub trait Echo {
                async fn echo(&self, ctx: &renamed_rpc::Context, text: String)
                    -> Result<String, renamed_rpc::Status>;
                async fn join(&self, parts: Vec<String>, separator: String)
                    -> Result<String, renamed_rpc::Status>;
                #method
            }
        }
    }

    /// The hygiene test compiles with `::rpc_core` in scope too; this is what shows the
    /// generated code does not lean on it.
    #[test]
    fn renamed_crate_leaves_no_default_path() {
        let attr = quote!(name = "x.Echo", crate = "renamed_rpc");
        let valid = service2(attr.clone(), trait_with(quote!()));
        let invalid = service2(
            attr,
            trait_with(quote!(
                async fn bad(&self, s: &str) -> u32;
            )),
        );
        for out in [valid, invalid] {
            let text = out.to_string();
            assert!(text.contains(":: renamed_rpc :: __private"), "{text}");
            // As tokens, `rpc_core :: x`; error messages may still say `rpc_core::Status`.
            assert!(!text.contains("rpc_core ::"), "{text}");
        }
    }

    #[test]
    fn invalid_input_still_defines_client_and_server() {
        let out = service2(
            quote!(namespace = "x", crate = "renamed_rpc"),
            trait_with(quote!(
                #[rpc(context)]
                async fn bad(&self, s: &str) -> u32;
            )),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        for item in [
            "pub struct EchoClient",
            "pub struct EchoServer",
            "pub trait Echo",
            "pub fn echo (& self , _ : String)",
            "pub fn bad (& self , _ : & str)",
        ] {
            assert!(out.contains(item), "no `{item}` in {out}");
        }
        assert!(!out.contains("# [rpc"), "{out}");
    }
}
