//! Streams in `#[service]` traits: `Sender<T>` for a server's replies, `Streaming<T>` for a
//! client's requests, both for bidirectional calls; generated clients and servers in every
//! codec, descriptions that say the shape, and calls of the wrong shape refused.

use rpc_core::transport::memory::MemoryListener;
use rpc_core::{service, CodecId, Context, Endpoint, Sender, Server, Status, Streaming};

/// One tick.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    /// Its number, from 1.
    #[prost(uint32, tag = "1")]
    pub n: u32,
    /// Free text.
    #[prost(string, tag = "2")]
    pub label: String,
}

/// A clock that streams.
#[service(name = "demo.Clock")]
pub trait Clock {
    /// `count` ticks, then the end.
    async fn ticks(&self, ctx: &Context, count: u32, out: Sender<Tick>) -> Result<(), Status>;

    /// The sum of the ticks sent.
    async fn sum(&self, ticks: Streaming<Tick>) -> Result<u64, Status>;

    /// Each tick back, labelled.
    async fn echo(&self, ticks: Streaming<Tick>, out: Sender<Tick>) -> Result<(), Status>;

    /// A plain call beside the streams.
    async fn now(&self) -> Result<u32, Status>;
}

struct Wall;

impl Clock for Wall {
    async fn ticks(&self, ctx: &Context, count: u32, mut out: Sender<Tick>) -> Result<(), Status> {
        let label = ctx.metadata().get_str("label").unwrap_or("tick").to_owned();
        for n in 1..=count {
            out.send(&Tick {
                n,
                label: label.clone(),
            })
            .await?;
        }
        Ok(())
    }

    async fn sum(&self, mut ticks: Streaming<Tick>) -> Result<u64, Status> {
        let mut total = 0;
        while let Some(t) = ticks.message().await? {
            total += u64::from(t.n);
        }
        Ok(total)
    }

    async fn echo(&self, mut ticks: Streaming<Tick>, mut out: Sender<Tick>) -> Result<(), Status> {
        while let Some(t) = ticks.message().await? {
            out.send(&Tick {
                label: format!("echo {}", t.label),
                ..t
            })
            .await?;
        }
        Ok(())
    }

    async fn now(&self) -> Result<u32, Status> {
        Ok(42)
    }
}

fn client(name: &str) -> ClockClient {
    let listener = MemoryListener::bind(name).expect("a free memory address");
    tokio::spawn(
        Server::builder()
            .add_service(ClockServer::new(Wall))
            .serve(listener),
    );
    ClockClient::new(Endpoint::memory(name).connect_lazy())
}

#[tokio::test]
async fn every_shape_in_every_codec() {
    let clock = client("macro-streams");
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        let mut ticks = clock
            .ticks(3)
            .codec(codec)
            .metadata("label", "t")
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(t) = ticks.message().await.unwrap() {
            got.push((t.n, t.label));
        }
        assert_eq!(
            got,
            [(1, "t".into()), (2, "t".into()), (3, "t".into())],
            "{codec}"
        );

        let (mut tx, reply) = clock.sum().codec(codec).await.unwrap();
        for n in 1..=10 {
            tx.send(&Tick {
                n,
                label: String::new(),
            })
            .await
            .unwrap();
        }
        tx.close();
        assert_eq!(reply.get().await.unwrap(), 55, "{codec}");

        let (mut tx, mut rx) = clock.echo().codec(codec).await.unwrap();
        for n in 1..=5 {
            tx.send(&Tick {
                n,
                label: format!("{n}"),
            })
            .await
            .unwrap();
            let back = rx.message().await.unwrap().expect("an echo");
            assert_eq!((back.n, back.label), (n, format!("echo {n}")), "{codec}");
        }
        tx.close();
        assert!(rx.message().await.unwrap().is_none());
    }
    assert_eq!(clock.now().await.unwrap(), 42);
}

#[tokio::test]
async fn the_description_says_the_shape() {
    let d = ClockServer::<Wall>::DESCRIPTOR;
    let shape = |name: &str| {
        let m = d.method(name).expect("described");
        (
            m.client_streaming,
            m.server_streaming,
            m.request,
            m.response,
        )
    };
    assert_eq!(shape("Ticks"), (false, true, "u32", "Tick"));
    assert_eq!(shape("Sum"), (true, false, "Tick", "u64"));
    assert_eq!(shape("Echo"), (true, true, "Tick", "Tick"));
    assert_eq!(shape("Now"), (false, false, "()", "u32"));
    let json = rpc_core::describe::to_json(&[d]);
    assert!(json.contains("\"client_streaming\":true"), "{json}");
}

#[tokio::test]
async fn a_call_of_the_wrong_shape_is_unimplemented() {
    let listener = MemoryListener::bind("macro-streams-shape").unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(ClockServer::new(Wall))
            .serve(listener),
    );
    let channel = Endpoint::memory("macro-streams-shape").connect_lazy();
    // A streaming method called as unary.
    let err = channel
        .unary(rpc_core::Request::new("demo.Clock/Ticks", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), rpc_core::Code::Unimplemented, "{err}");
    // A unary method called as a stream.
    let mut stream = channel
        .server_streaming(rpc_core::Request::new("demo.Clock/Now", ""))
        .await
        .unwrap();
    assert_eq!(
        stream.message().await.unwrap_err().code(),
        rpc_core::Code::Unimplemented
    );
}
