//! Authentication and authorization (`middleware::auth`, JWT under feature `jwt`): principals in
//! handlers, per-method policies, the client's bearer layer, quotas by principal, and every kind
//! of bad token, each refused with a precise status, logged without its content.

#![cfg(feature = "jwt")]
#![allow(missing_docs)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rpc_core::middleware::auth::{
    AuthLayer, BearerLayer, JwtAuthenticator, JwtKey, Policy, Rule, StaticTokens, AUTHORIZATION,
};
use rpc_core::middleware::{RateLimitLayer, Stats};
use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{
    AuthMethod, Channel, Code, Context, Delivery, Endpoint, Principal, Request, Response, Server,
    Status,
};
use support::logs::capture_logs;
use support::{serve, Running};
use tower::{Layer, ServiceExt};

const SECRET: &[u8] = b"a test secret that is long enough";

/// `shop.Orders/{Place,Cancel,Get}` and `shop.Catalogue/List`: each answers with the caller's
/// subject, or "-".
fn services() -> (RawService, RawService) {
    let who = |_req: Request| async move {
        let who = Context::current()
            .and_then(|c| {
                c.principal()
                    .map(|p| format!("{}:{:?}", p.subject, p.method))
            })
            .unwrap_or_else(|| "-".to_owned());
        Ok::<_, Status>(Response::new(who))
    };
    let orders = RawService::new("shop.Orders")
        .method("Place", who)
        .method("Cancel", who)
        .method("Get", who);
    let catalogue = RawService::new("shop.Catalogue").method("List", who);
    (orders, catalogue)
}

fn serve_with(name: &'static str, layer: AuthLayer) -> Running {
    let (orders, catalogue) = services();
    let server = Server::builder()
        .add_service(layer.layer(orders))
        .add_service(layer.layer(catalogue));
    serve(server, MemoryListener::bind(name).unwrap())
}

fn with_token(path: &'static str, token: Option<&str>) -> Request {
    let mut req = Request::new(path, "");
    if let Some(t) = token {
        req.metadata_mut()
            .insert(AUTHORIZATION, format!("Bearer {t}"));
    }
    req
}

async fn call(ch: &Channel, path: &'static str, token: Option<&str>) -> Result<String, Status> {
    let r = ch.unary(with_token(path, token)).await?;
    Ok(String::from_utf8_lossy(r.body()).into_owned())
}

fn refused(r: Result<String, Status>, code: Code, needle: &str) {
    let e = r.expect_err("the call should be refused");
    assert_eq!(e.code(), code, "{e}");
    assert!(e.message().contains(needle), "expected {needle:?} in {e}");
    assert_eq!(e.delivery(), Delivery::Unprocessed, "{e}");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

fn claims(sub: &str) -> Claims<'_> {
    Claims {
        sub,
        exp: now() + 600,
        nbf: None,
        iss: Some("users"),
        aud: Some("shop"),
        scope: Some("orders:read orders:write"),
    }
}

fn hs256(c: &Claims<'_>) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn static_tokens_and_a_policy_per_method() {
    let tokens = StaticTokens::new()
        .token(
            "admin-token",
            Principal::new("ops", AuthMethod::BearerToken).with_roles(["admin"]),
        )
        .token("user-token", Principal::new("ada", AuthMethod::BearerToken));
    let policy = Policy::new()
        .service("shop.Catalogue", Rule::Public)
        .method("shop.Orders/Cancel", Rule::role("admin"))
        .method("shop.Orders/Place", Rule::Authenticated);
    let stats = Stats::new();
    let running = serve_with(
        "auth-static",
        AuthLayer::new()
            .authenticator(tokens)
            .policy(policy)
            .stats(stats.clone()),
    );
    let ch = Endpoint::memory("auth-static").connect_lazy();

    // Public: anyone, and the principal is still recorded when there is one.
    assert_eq!(call(&ch, "shop.Catalogue/List", None).await.unwrap(), "-");
    assert_eq!(
        call(&ch, "shop.Catalogue/List", Some("user-token"))
            .await
            .unwrap(),
        "ada:BearerToken"
    );
    // Authenticated.
    assert_eq!(
        call(&ch, "shop.Orders/Place", Some("user-token"))
            .await
            .unwrap(),
        "ada:BearerToken"
    );
    refused(
        call(&ch, "shop.Orders/Place", None).await,
        Code::Unauthenticated,
        "authentication required",
    );
    // A role.
    assert_eq!(
        call(&ch, "shop.Orders/Cancel", Some("admin-token"))
            .await
            .unwrap(),
        "ops:BearerToken"
    );
    refused(
        call(&ch, "shop.Orders/Cancel", Some("user-token")).await,
        Code::PermissionDenied,
        "admin",
    );
    // Not named by the policy: denied by default, even to an admin.
    refused(
        call(&ch, "shop.Orders/Get", Some("admin-token")).await,
        Code::PermissionDenied,
        "permission denied",
    );
    // An unknown token is refused even where the method is public.
    refused(
        call(&ch, "shop.Catalogue/List", Some("nope")).await,
        Code::Unauthenticated,
        "unknown token",
    );
    // Every decision counted: 3 admitted with a principal (the anonymous public call is not),
    // 2 refused as unauthenticated, 2 as not allowed.
    let counted = stats.snapshot();
    assert_eq!(
        (
            counted.authenticated,
            counted.unauthenticated,
            counted.permission_denied
        ),
        (3, 2, 2),
        "{counted}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn without_a_policy_every_call_must_authenticate_unless_optional() {
    let tokens = || StaticTokens::new().token("t", Principal::new("svc", AuthMethod::BearerToken));
    let running = serve_with("auth-required", AuthLayer::new().authenticator(tokens()));
    let ch = Endpoint::memory("auth-required").connect_lazy();
    refused(
        call(&ch, "shop.Orders/Get", None).await,
        Code::Unauthenticated,
        "authentication required",
    );
    assert_eq!(
        call(&ch, "shop.Orders/Get", Some("t")).await.unwrap(),
        "svc:BearerToken"
    );
    running.shutdown().await;

    let running = serve_with(
        "auth-optional",
        AuthLayer::new().authenticator(tokens()).optional(),
    );
    let ch = Endpoint::memory("auth-optional").connect_lazy();
    assert_eq!(call(&ch, "shop.Orders/Get", None).await.unwrap(), "-");
    refused(
        call(&ch, "shop.Orders/Get", Some("bad")).await,
        Code::Unauthenticated,
        "unknown token",
    );
    running.shutdown().await;
}

#[tokio::test]
async fn jwt_with_scopes_and_the_client_bearer_layer() {
    let jwt = JwtAuthenticator::new(JwtKey::hs256(SECRET).unwrap())
        .issuer("users")
        .audience("shop");
    let policy = Policy::new()
        .method("shop.Orders/Place", Rule::scope("orders:write"))
        .method("shop.Orders/Cancel", Rule::scope("orders:admin"));
    let running = serve_with(
        "auth-jwt",
        AuthLayer::new().authenticator(jwt).policy(policy),
    );
    let token: Arc<str> = Arc::from(hs256(&claims("ada")));
    let client = BearerLayer::new(token).layer(Endpoint::memory("auth-jwt").connect_lazy());
    let reply = client
        .clone()
        .oneshot(Request::new("shop.Orders/Place", ""))
        .await
        .unwrap();
    assert_eq!(&reply.body()[..], b"ada:Jwt");
    let e = client
        .oneshot(Request::new("shop.Orders/Cancel", ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    assert!(e.message().contains("orders:admin"), "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_precisely_and_logged_without_their_content() {
    let ec_key = rcgen::KeyPair::generate().unwrap();
    let public_pem = ec_key.public_key_pem();
    let jwt = JwtAuthenticator::new(JwtKey::hs256(SECRET).unwrap())
        .key(JwtKey::es256_pem(public_pem.as_bytes()).unwrap())
        .issuer("users")
        .audience("shop")
        .leeway(Duration::from_secs(5));
    let (logs, _guard) = capture_logs(tracing::Level::WARN);
    let running = serve_with("auth-bad", AuthLayer::new().authenticator(jwt));
    let ch = Endpoint::memory("auth-bad").connect_lazy();
    let path = "shop.Orders/Get";

    // Good ones first: HS256, and ES256 signed with the EC key.
    assert_eq!(
        call(&ch, path, Some(&hs256(&claims("ada")))).await.unwrap(),
        "ada:Jwt"
    );
    let es256 = encode(
        &Header::new(Algorithm::ES256),
        &claims("bob"),
        &EncodingKey::from_ec_pem(ec_key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(call(&ch, path, Some(&es256)).await.unwrap(), "bob:Jwt");

    let bad_signature = encode(
        &Header::new(Algorithm::HS256),
        &claims("eve"),
        &EncodingKey::from_secret(b"another secret, not the server's").unwrap(),
    )
    .unwrap();
    let expired = hs256(&Claims {
        exp: now() - 3600,
        ..claims("ada")
    });
    let not_yet = hs256(&Claims {
        nbf: Some(now() + 3600),
        ..claims("ada")
    });
    let wrong_audience = hs256(&Claims {
        aud: Some("payments"),
        ..claims("ada")
    });
    let wrong_issuer = hs256(&Claims {
        iss: Some("someone"),
        ..claims("ada")
    });
    // A configured issuer and audience are required, not only checked when present.
    let no_audience = hs256(&Claims {
        aud: None,
        ..claims("ada")
    });
    let no_issuer = hs256(&Claims {
        iss: None,
        ..claims("ada")
    });
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(r#"{{"sub":"eve","exp":{}}}"#, now() + 600))
    );
    // Algorithm confusion: HS256 "signed" with the server's public EC key as the secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("eve"),
        &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let huge = "x".repeat(10 * 1024);
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad signature", bad_signature, "invalid token"),
        ("expired", expired, "token expired"),
        ("not yet valid", not_yet, "token not yet valid"),
        (
            "wrong audience",
            wrong_audience,
            "token not for this service",
        ),
        ("wrong issuer", wrong_issuer, "token not for this service"),
        ("no audience", no_audience, "token not for this service"),
        ("no issuer", no_issuer, "token not for this service"),
        ("alg none", alg_none, "invalid token"),
        ("algorithm confusion", confused, "invalid token"),
        ("not a JWT", "abc.def".to_owned(), "invalid token"),
        ("huge", huge, "malformed authorization metadata"),
    ];
    for (what, token, needle) in &cases {
        let r = call(&ch, path, Some(token)).await;
        let e = r.as_ref().expect_err(what);
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e}");
        assert!(e.message().contains(needle), "{what}: {e}");
        assert_eq!(e.delivery(), Delivery::Unprocessed, "{what}: {e}");
    }
    // Malformed authorization values.
    for value in [
        "Basic YWRhOnB3",
        "Bearer",
        "Bearer    ",
        "token-without-scheme",
    ] {
        let mut req = Request::new(path, "");
        req.metadata_mut().insert(AUTHORIZATION, value.to_owned());
        let e = ch.unary(req).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{value:?}: {e}");
    }
    // Two authorization entries: which one is the caller's?
    let mut req = Request::new(path, "");
    req.metadata_mut()
        .append(AUTHORIZATION, format!("Bearer {}", hs256(&claims("ada"))));
    req.metadata_mut().append(AUTHORIZATION, "Bearer other");
    let e = ch.unary(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "two entries: {e}");
    assert!(e.message().contains("malformed"), "{e}");
    // Missing.
    refused(
        call(&ch, path, None).await,
        Code::Unauthenticated,
        "authentication required",
    );

    // Every refusal was logged, and no token's content was.
    let text = logs.text();
    assert!(logs.count("call refused by authentication or authorization") >= cases.len());
    for (what, token, _) in &cases {
        let sample = &token[token.len().saturating_sub(16)..];
        assert!(
            !sample.is_empty() && !text.contains(sample),
            "{what}: the log holds the token"
        );
    }
    // And the server serves on.
    assert_eq!(
        call(&ch, path, Some(&hs256(&claims("ada")))).await.unwrap(),
        "ada:Jwt"
    );
    running.shutdown().await;
}

#[test]
fn weak_keys_and_published_secrets_are_refused() {
    // RFC 7518 §3.2: an HS256 key at least as long as the hash.
    assert!(JwtKey::hs256(b"short").is_err());
    assert!(JwtKey::hs256(SECRET).is_ok());
    // A JWKS is public: a symmetric key in it is skipped, and a set with nothing usable is an
    // error rather than an authenticator that accepts nothing.
    let oct_only = r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#;
    assert!(JwtKey::jwks(oct_only).is_err());
}

#[tokio::test(start_paused = true)]
async fn quotas_follow_the_principal_not_a_header_the_caller_writes() {
    let tokens = StaticTokens::new()
        .token("a", Principal::new("alice", AuthMethod::BearerToken))
        .token("b", Principal::new("bob", AuthMethod::BearerToken));
    let (orders, _) = services();
    // The auth layer outside, so that the quota sees the principal.
    let svc = AuthLayer::new()
        .authenticator(tokens)
        .layer(RateLimitLayer::new().per_caller(0.001, 2.0).layer(orders));
    let running = serve(
        Server::builder().add_service(svc),
        MemoryListener::bind("auth-quota").unwrap(),
    );
    let ch = Endpoint::memory("auth-quota").connect_lazy();
    let get = |token: &str, caller: &str| {
        let mut req = with_token("shop.Orders/Get", Some(token));
        req.metadata_mut().insert("caller", caller.to_owned());
        req
    };
    // Alice spends her two calls, naming a different "caller" each time: it changes nothing.
    ch.unary(get("a", "x")).await.unwrap();
    ch.unary(get("a", "y")).await.unwrap();
    let e = ch.unary(get("a", "z")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert!(e.message().contains("principal:alice"), "{e}");
    // Bob has his own quota.
    ch.unary(get("b", "x")).await.unwrap();
    running.shutdown().await;
}
