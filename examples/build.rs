//! Generates `examples::reviews` from `proto/reviews.proto`: the IDL-first path
//! (`rpc_codec::build`). The `.proto` file cannot say that `Flag` is one-way, how long `Post` may
//! take or which scope `Flag` needs; this does. protox parses the file: no `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_codec::build::configure()
        .timeout("shop.reviews.Reviews/Post", "500ms")
        .one_way("shop.reviews.Reviews/Flag")
        .scope("shop.reviews.Reviews/Flag", "reviews:moderate")
        .compile(&["proto/reviews.proto"], &["proto"])?;
    Ok(())
}
