//! A type of the user's own, imported as `Context` and written bare, is taken for the call's
//! context: one error at the argument says to write its path.

use rpc_core::{service, Status};

mod model {
    pub struct Context;
}

use model::Context;

#[service]
pub trait Greeter {
    async fn hello(&self, ctx: &Context, name: String) -> Result<String, Status>;
}

fn main() {}
