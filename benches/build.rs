//! Generates the tonic services used by `src/systems/tonic_echo.rs` (`proto/echo.proto`, package
//! `bench`), `src/systems/tonic_order.rs` (`proto/order.proto`, package `bench.order`) and
//! `src/systems/feed.rs` (`proto/feed.proto`, package `bench.feed`).
//! Needs `protoc` (and its well-known includes) on the build machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/echo.proto");
    println!("cargo:rerun-if-changed=proto/order.proto");
    println!("cargo:rerun-if-changed=proto/feed.proto");
    tonic_prost_build::configure()
        // `bytes payload` fields become `bytes::Bytes`, so decoding slices instead of copying.
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_protos(
            &["proto/echo.proto", "proto/order.proto", "proto/feed.proto"],
            &["proto"],
        )?;
    Ok(())
}
