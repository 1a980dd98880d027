//! Which argument is the call's context: `&Context`/`Context` written bare or as
//! `rpc_core::Context`, or marked `#[rpc(context)]`; a type of the user's own named `Context`,
//! written with its path, is an ordinary argument. Real calls over the in-memory transport.

#![deny(warnings, missing_docs)]

use rpc_core::transport::memory::MemoryListener;
use rpc_core::{service, Endpoint, Server, Status};

/// A message of the user's own that happens to be named `Context`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Context {
    /// Who it is about.
    pub user: String,
    /// How deep it went.
    pub depth: u32,
}

/// The runtime's context under another name: only `#[rpc(context)]` makes it the context.
pub type CallCtx = rpc_core::Context;

/// Another `Context` of the user's, in a module.
pub mod model {
    /// A number named `Context`.
    #[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Context(pub u32);
}

/// Every way of writing a context, or not.
#[service(name = "ctx.Paths")]
pub trait Paths {
    /// The user's `Context`, written with its path, is the request and the reply.
    async fn deepen(&self, context: crate::Context) -> Result<crate::Context, Status>;

    /// The runtime's context by its path, then the user's `Context` as an argument.
    async fn tag(&self, ctx: &rpc_core::Context, context: self::Context) -> Result<String, Status>;

    /// An alias of the runtime's context, marked.
    async fn marked(&self, #[rpc(context)] ctx: &CallCtx, n: u32) -> Result<String, Status>;

    /// The runtime's context by value, with a leading `::`.
    async fn by_value(&self, ctx: ::rpc_core::Context) -> Result<String, Status>;

    /// A `Context` from another module, and a second argument.
    async fn nested(&self, c: model::Context, plus: u32) -> Result<u32, Status>;
}

struct Impl;

fn who(ctx: &rpc_core::Context) -> String {
    ctx.metadata().get_str("who").unwrap_or("nobody").to_owned()
}

impl Paths for Impl {
    async fn deepen(&self, context: crate::Context) -> Result<crate::Context, Status> {
        Ok(Context {
            depth: context.depth + 1,
            ..context
        })
    }

    async fn tag(&self, ctx: &rpc_core::Context, context: self::Context) -> Result<String, Status> {
        Ok(format!("{}:{}", who(ctx), context.user))
    }

    async fn marked(&self, ctx: &CallCtx, n: u32) -> Result<String, Status> {
        Ok(format!("{}:{n}", who(ctx)))
    }

    async fn by_value(&self, ctx: ::rpc_core::Context) -> Result<String, Status> {
        Ok(who(&ctx))
    }

    async fn nested(&self, c: model::Context, plus: u32) -> Result<u32, Status> {
        Ok(c.0 + plus)
    }
}

#[tokio::test]
async fn context_by_path_or_mark_and_user_types_named_context_as_arguments() {
    let listener = MemoryListener::bind("macros-context-paths").unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(PathsServer::new(Impl))
            .serve(listener),
    );
    let client = PathsClient::new(Endpoint::memory("macros-context-paths").connect_lazy());

    let ada = Context {
        user: "ada".into(),
        depth: 1,
    };
    let deeper = client.deepen(ada.clone()).await.unwrap();
    assert_eq!(deeper.depth, 2);

    let tagged = client.tag(ada).metadata("who", "web").await.unwrap();
    assert_eq!(tagged, "web:ada");
    let marked = client.marked(3).metadata("who", "cli").await.unwrap();
    assert_eq!(marked, "cli:3");
    assert_eq!(
        client.by_value().metadata("who", "job").await.unwrap(),
        "job"
    );
    assert_eq!(client.nested(model::Context(40), 2).await.unwrap(), 42);

    // The user's `Context` is on the wire; the runtime's is not.
    let methods = PathsServer::<Impl>::DESCRIPTOR.methods;
    assert_eq!(methods[0].args, &[("context", "crate::Context")]);
    assert_eq!(methods[1].args, &[("context", "self::Context")]);
    assert_eq!(methods[2].args, &[("n", "u32")]);
    assert!(methods[3].args.is_empty());
    assert_eq!(methods[4].request, "{ c: model::Context, plus: u32 }");
}
