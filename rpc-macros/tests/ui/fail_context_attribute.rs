use rpc_core::{service, Context, Status};

#[service]
pub trait Greeter {
    async fn hello(&self, #[rpc(context)] ctx: &mut Context) -> Result<String, Status>;

    async fn bye(&self, name: String, ctx: &Context) -> Result<String, Status>;

    async fn wave(&self, #[rpc(ctx)] name: String) -> Result<String, Status>;
}

fn main() {}
