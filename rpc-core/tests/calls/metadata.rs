//! Statuses and metadata cross the wire unchanged.

use super::*;

#[tokio::test]
async fn status_and_metadata_cross_the_wire_unchanged() {
    let svc = RawService::new("demo.Meta")
        .method("Fail", |_req| async {
            let mut md = Metadata::new();
            md.insert("retry-after-ms", "250");
            md.insert("bin", Bytes::from_static(&[0, 255, 7]));
            Err(Status::failed_precondition("stock is frozen: ünïcode ok").with_metadata(md))
        })
        .method("Context", |req: Request| async move {
            let ctx = Context::current().unwrap();
            assert_eq!(ctx.call_id(), req.context().call_id());
            let mut md = Metadata::new();
            md.insert(
                "peer-seen",
                ctx.peer().map(|p| p.to_string()).unwrap_or_default(),
            );
            md.insert(
                "echo-caller",
                ctx.metadata().get("caller").cloned().unwrap_or_default(),
            );
            Ok(Response::with_metadata(Bytes::new(), md))
        });
    let server = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("meta-1").unwrap(),
    );
    let channel = Endpoint::memory("meta-1").connect_lazy();
    let err = channel
        .unary(Request::new("demo.Meta/Fail", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "stock is frozen: ünïcode ok");
    assert_eq!(err.metadata().get_str("retry-after-ms"), Some("250"));
    assert_eq!(
        err.metadata().get("bin").map(|b| &b[..]),
        Some(&[0, 255, 7][..])
    );

    let mut req = Request::new("demo.Meta/Context", "");
    req.metadata_mut().insert("caller", "order-center");
    let reply = channel.unary(req).await.unwrap();
    assert_eq!(
        reply.metadata().get_str("echo-caller"),
        Some("order-center")
    );
    assert!(reply
        .metadata()
        .get_str("peer-seen")
        .unwrap()
        .starts_with("memory:meta-1"));
    drop(channel);
    server.shutdown().await;
}
