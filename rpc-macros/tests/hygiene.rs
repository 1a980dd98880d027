//! The generated code names everything by absolute paths: it compiles with the runtime under
//! another name (`crate = "renamed_rpc"`) or through a re-export (`crate = "crate::runtime"`),
//! in `#![no_implicit_prelude]` modules, one of them with items that shadow the prelude's names
//! and the standard crates' (after tarpc's `tests/proc_macro_hygene.rs`). Calls then go over
//! the in-memory transport, in every method shape.
//!
//! Cargo refuses one package as two dependencies of a crate (`rpc-core` and a renamed
//! `renamed_rpc = { package = "rpc-core", .. }`), so the other name comes from `extern crate`,
//! which adds it to the extern prelude as the renamed dependency would. That `::rpc_core` still
//! resolves here is why the unit test `renamed_crate_leaves_no_default_path` in `src/lib.rs`
//! checks that such an expansion never mentions `rpc_core`.

#![deny(warnings, missing_docs)]

extern crate rpc_core as renamed_rpc;

/// A service defined where nothing is in scope unless named from the crate root.
pub mod bare {
    #![no_implicit_prelude]
    #![allow(dead_code, non_camel_case_types, non_snake_case)]

    // Names the generated code must not pick up by accident.
    struct Result;
    struct Option;
    struct Box;
    struct String;
    struct Vec;
    struct Arc;
    struct Channel;
    struct Status;
    struct Request;
    struct Response;
    struct Context;
    trait Clone {}
    trait Default {}
    trait Into {}
    trait Send {}
    trait Sync {}
    trait Future {}
    trait Service {}
    fn Ok() {}
    fn Err() {}
    fn Some() {}
    fn None() {}
    mod core {}
    mod std {}
    mod rpc_core {}
    mod renamed_rpc {}
    mod serde {}
    mod tower {}

    /// Echoes, under a renamed runtime.
    #[::renamed_rpc::service(name = "hygiene.Echo", version = 2, crate = "renamed_rpc")]
    pub trait Echo {
        /// One argument.
        #[rpc(idempotent, timeout = "5s")]
        async fn echo(
            &self,
            text: ::std::string::String,
        ) -> ::core::result::Result<::std::string::String, ::renamed_rpc::Status>;

        /// Several arguments (one generated serde message), and the context by reference.
        async fn join(
            &self,
            ctx: &::renamed_rpc::Context,
            parts: ::std::vec::Vec<::std::string::String>,
            separator: ::std::string::String,
        ) -> ::core::result::Result<::std::string::String, ::renamed_rpc::Status>;

        /// No argument, the context by value, marked.
        async fn caller(
            &self,
            #[rpc(context)] ctx: ::renamed_rpc::Context,
        ) -> ::core::result::Result<::core::option::Option<u32>, ::renamed_rpc::Status>;

        /// Fire and forget.
        #[rpc(one_way)]
        async fn nudge(&self, n: u32) -> ::core::result::Result<(), ::renamed_rpc::Status>;

        /// A default body.
        async fn ping(&self) -> ::core::result::Result<u8, ::renamed_rpc::Status> {
            ::core::result::Result::Ok(7)
        }
    }

    /// The same under the runtime's usual name, with a typed error.
    #[::rpc_core::service]
    pub trait Count {
        /// Counts the bytes of `text`, refusing the empty string.
        async fn count(
            &self,
            text: ::std::string::String,
        ) -> ::core::result::Result<u64, super::Empty>;
    }

    /// Implements both.
    #[derive(::core::fmt::Debug)]
    pub struct Impl;

    impl Echo for Impl {
        async fn echo(
            &self,
            text: ::std::string::String,
        ) -> ::core::result::Result<::std::string::String, ::renamed_rpc::Status> {
            ::core::result::Result::Ok(text)
        }

        async fn join(
            &self,
            ctx: &::renamed_rpc::Context,
            parts: ::std::vec::Vec<::std::string::String>,
            separator: ::std::string::String,
        ) -> ::core::result::Result<::std::string::String, ::renamed_rpc::Status> {
            let mut out = parts.join(&separator);
            out.push_str(ctx.metadata().get_str("suffix").unwrap_or(""));
            ::core::result::Result::Ok(out)
        }

        async fn caller(
            &self,
            ctx: ::renamed_rpc::Context,
        ) -> ::core::result::Result<::core::option::Option<u32>, ::renamed_rpc::Status> {
            ::core::result::Result::Ok(
                ctx.metadata()
                    .get_str("caller")
                    .and_then(|c| ::core::str::FromStr::from_str(c).ok()),
            )
        }

        async fn nudge(&self, _n: u32) -> ::core::result::Result<(), ::renamed_rpc::Status> {
            ::core::result::Result::Ok(())
        }
    }

    impl Count for Impl {
        async fn count(
            &self,
            text: ::std::string::String,
        ) -> ::core::result::Result<u64, super::Empty> {
            if text.is_empty() {
                ::core::result::Result::Err(super::Empty)
            } else {
                ::core::result::Result::Ok(text.len() as u64)
            }
        }
    }
}

/// The runtime re-exported by this crate, as a platform crate would.
pub mod runtime {
    pub use rpc_core::*;
}

/// A service that reaches the runtime through the re-export (`crate = "crate::runtime"`).
pub mod facade {
    #![no_implicit_prelude]

    /// Doubles.
    #[crate::runtime::service(crate = "crate::runtime")]
    pub trait Double {
        /// Twice `n`.
        async fn double(
            &self,
            ctx: &crate::runtime::Context,
            n: u32,
        ) -> ::core::result::Result<u32, crate::runtime::Status>;
    }

    impl Double for super::bare::Impl {
        async fn double(
            &self,
            _ctx: &crate::runtime::Context,
            n: u32,
        ) -> ::core::result::Result<u32, crate::runtime::Status> {
            ::core::result::Result::Ok(n * 2)
        }
    }
}

use bare::{CountClient, CountServer, EchoClient, EchoServer, Impl};
use facade::{DoubleClient, DoubleServer};
use rpc_core::{CodecId, ServiceError, Status};

/// Refused: the empty string.
#[derive(Debug, PartialEq)]
pub struct Empty;

impl ServiceError for Empty {
    fn into_status(self) -> Status {
        Status::invalid_argument("empty")
    }

    fn from_status(_status: Status) -> Self {
        Empty
    }
}

#[tokio::test]
async fn renamed_crate_and_no_implicit_prelude() {
    let listener = renamed_rpc::transport::memory::MemoryListener::bind("hygiene").unwrap();
    let server = renamed_rpc::Server::builder()
        .add_service(EchoServer::new(Impl))
        .add_service(CountServer::new(Impl))
        .add_service(DoubleServer::new(Impl));
    tokio::spawn(server.serve(listener));

    let channel = renamed_rpc::Endpoint::memory("hygiene").connect_lazy();
    let echo = EchoClient::new(channel.clone());
    assert_eq!(echo.echo("hi".into()).await.unwrap(), "hi");
    let joined = echo
        .join(vec!["a".into(), "b".into()], "-".into())
        .metadata("suffix", "!")
        .await
        .unwrap();
    assert_eq!(joined, "a-b!");
    let caller = echo.caller().metadata("caller", "42").codec(CodecId::JSON);
    assert_eq!(caller.await.unwrap(), Some(42));
    echo.nudge(1).await.unwrap();
    assert_eq!(echo.ping().await.unwrap(), 7);

    let count = CountClient::new(channel.clone());
    assert_eq!(count.count("four".into()).await, Ok(4));
    assert_eq!(count.count(String::new()).await, Err(Empty));

    assert_eq!(DoubleClient::new(channel).double(21).await.unwrap(), 42);

    let described = EchoClient::<renamed_rpc::Channel>::DESCRIPTOR;
    assert_eq!((described.name, described.version), ("hygiene.Echo", "2"));
    assert_eq!(described.methods[1].path, "hygiene.Echo/Join");
}
