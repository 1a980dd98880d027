//! A handler that passes on a downstream call's "not processed" status: the handler ran, so its
//! caller must see the call as processed (`Delivery::Sent`), or a retry layer could repeat a call
//! that had effects.

use super::*;
use rpc_core::server::RawService;
use rpc_core::{Response, Server};

#[tokio::test]
async fn a_status_passed_on_from_downstream_is_marked_processed() {
    // Downstream: a server with no service at all, so every call to it is refused unprocessed.
    let downstream = support::serve(
        Server::builder(),
        MemoryListener::bind("passed-on-down").unwrap(),
    );
    let to_downstream = Endpoint::memory("passed-on-down").connect_lazy();
    let relay = RawService::new("demo.Relay").method("Forward", move |_req: Request| {
        let to_downstream = to_downstream.clone();
        async move {
            // Side effects would happen here; then the downstream refusal is returned as is.
            to_downstream
                .unary(Request::new("demo.Missing/Call", ""))
                .await
                .map(|_| Response::default())
        }
    });
    let upstream = support::serve(
        Server::builder().add_service(relay),
        MemoryListener::bind("passed-on-up").unwrap(),
    );
    let channel = Endpoint::memory("passed-on-up").connect_lazy();

    let direct = Endpoint::memory("passed-on-down").connect_lazy();
    let refused = direct
        .unary(Request::new("demo.Missing/Call", ""))
        .await
        .unwrap_err();
    assert_eq!(
        refused.delivery(),
        Delivery::Unprocessed,
        "the downstream refusal itself"
    );

    let err = channel
        .unary(Request::new("demo.Relay/Forward", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    assert_eq!(
        err.delivery(),
        Delivery::Sent,
        "the relay's handler ran: {err:?}"
    );
    drop((channel, direct));
    upstream.shutdown().await;
    downstream.shutdown().await;
}
