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
