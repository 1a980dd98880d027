//! The `Channel` as a tower `Service`, down to a call that outlives its dropped channel.

use super::*;

#[tokio::test]
async fn channel_is_a_tower_service() {
    use tower::Service;
    let server = serve(
        Server::builder().add_service(echo()),
        MemoryListener::bind("tower-1").unwrap(),
    );
    let mut channel: Channel = Endpoint::memory("tower-1").connect_lazy();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let reply = channel
        .call(Request::new("demo.Echo/Echo", "via tower"))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"via tower");
    drop(channel);
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_outlives_its_dropped_channel_while_connecting() {
    // tower's `Oneshot` (and any caller that drops its service after `call`) leaves the call's
    // future as the only holder of the channel: the call must still connect and complete.
    let server = serve(
        Server::builder().add_service(echo()),
        MemoryListener::bind("oneshot-1").unwrap(),
    );
    let channel = Endpoint::memory("oneshot-1").connect_lazy();
    assert_eq!(channel.state(), rpc_core::client::ChannelState::Idle);
    let reply = tower::ServiceExt::oneshot(channel, Request::new("demo.Echo/Echo", "alone"))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"alone");
    server.shutdown().await;
}

/// A connection remembers the last method path it routed; calls that alternate between services,
/// methods and names the server does not have must each still reach the right place.
#[tokio::test]
async fn calls_alternating_between_services_and_methods_on_one_connection_are_routed_right() {
    let a = RawService::new("demo.A")
        .method("One", |_req| async { Ok(Response::new("a.one")) })
        .method("Two", |_req| async { Ok(Response::new("a.two")) });
    let b = RawService::new("demo.B").method("One", |_req| async { Ok(Response::new("b.one")) });
    let server = serve(
        Server::builder().add_service(a).add_service(b),
        MemoryListener::bind("route-cache").unwrap(),
    );
    let channel = Endpoint::memory("route-cache").connect().await.unwrap();
    for path in [
        "demo.A/One",
        "demo.A/One",
        "demo.A/Two",
        "demo.B/One",
        "demo.C/One",
        "demo.A/One",
        "demo.B/Nope",
        "demo.B/One",
        "no-slash",
        "demo.A/Two",
    ] {
        let reply = channel.unary(Request::new(path, "")).await;
        match path {
            "demo.C/One" | "demo.B/Nope" | "no-slash" => {
                let status = reply.unwrap_err();
                assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
                assert_eq!(status.delivery(), Delivery::Unprocessed, "{path}");
            }
            _ => {
                let body = reply.unwrap().into_body();
                let want = path.to_lowercase().replace("demo.", "").replace('/', ".");
                assert_eq!(&body[..], want.as_bytes(), "{path}");
            }
        }
    }
    drop(channel);
    server.shutdown().await;
}
