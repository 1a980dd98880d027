//! The IDL-first path: `proto/reviews.proto` is the contract, `build.rs` generates the messages
//! and the `Reviews` trait with its client and server (`rpc_codec::build`), and
//! `examples::reviews::ReviewBoard` implements the trait. This serves it on 127.0.0.1, calls
//! every method in Protobuf, JSON and MessagePack (one of them a server stream), then prints the
//! `.proto` file the running server's description exports, which encodes as the contract does.
//!
//! ```text
//! cargo run --example reviews
//! ```

use examples::reviews::{
    Author, FlagReview, ListReviews, Photo, PostReview, ReviewBoard, ReviewsClient, ReviewsServer,
};
use rpc_core::describe::{self, Format};
use rpc_core::{Channel, CodecId, Endpoint, Server, Status};

async fn exercise(reviews: &ReviewsClient<Channel>, codec: CodecId) -> Result<(), Status> {
    let sku = format!("tea-{codec}");
    let posted = reviews
        .post(PostReview {
            sku: sku.clone(),
            stars: 5,
            text: "Smoky, strong, no regrets.".into(),
            author: Some(Author::CustomerId(42)),
            photos: vec![Photo {
                caption: "the tin".into(),
                thumbnail: vec![0xff, 0xd8, 0xff].into(),
            }],
            tags: [("roast".to_owned(), "dark".to_owned())].into(),
        })
        .codec(codec)
        .await?;
    reviews
        .post(PostReview {
            sku: sku.clone(),
            stars: 2,
            text: "Too smoky.".into(),
            author: Some(Author::GuestName("Ann".into())),
            ..PostReview::default()
        })
        .codec(codec)
        .await?;
    println!("[{codec}] Post -> review {}", posted.id);

    reviews
        .flag(FlagReview {
            id: posted.id,
            reason: "a photo of a tin is not a review".into(),
        })
        .codec(codec)
        .await?;
    println!("[{codec}] Flag(review {}) sent (one-way)", posted.id);

    let page = reviews
        .list(ListReviews {
            sku: sku.clone(),
            limit: 0,
        })
        .codec(codec)
        .await?;
    println!(
        "[{codec}] List({sku}) -> {} visible, {:.1} stars on average",
        page.reviews.len(),
        page.average_stars
    );

    let refused = reviews
        .post(PostReview {
            sku,
            stars: 9,
            ..PostReview::default()
        })
        .codec(codec)
        .await;
    if let Err(status) = refused {
        println!("[{codec}] Post(9 stars) -> refused: {status}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(
        Server::builder()
            .add_service(ReviewsServer::new(ReviewBoard::new()))
            .serve_with_shutdown(listener, async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            }),
    );
    println!("shop.reviews.Reviews (from proto/reviews.proto) on tcp://{addr}");

    let channel = Endpoint::tcp(addr).connect_lazy();
    let reviews = ReviewsClient::new(channel.clone());
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        exercise(&reviews, codec).await?;
    }
    let stats = reviews.stats().await?;
    println!(
        "Stats -> {} reviews, {} flagged",
        stats.reviews, stats.flagged
    );

    // A server stream: every visible review of one product.
    let mut browsed = reviews
        .browse(ListReviews {
            sku: "tea-json".into(),
            limit: 0,
        })
        .await?;
    while let Some(review) = browsed.message().await? {
        println!("Browse(tea-json) -> review {} streamed", review.id);
    }

    let description = describe::fetch(channel, Format::Json).await?;
    let description = describe::Description::from_json(&description)?;
    println!(
        "\n--- the .proto file the server's description exports ---\n\n{}",
        describe::to_proto(&description)?
    );

    stop_tx.send(true)?;
    server.await??;
    Ok(())
}
