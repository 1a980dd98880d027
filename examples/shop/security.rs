//! The shop's security, on with `--secure` (feature `secure`), off by default:
//!
//! - **mutual TLS between every process**: one CA made at start-up and one identity per service
//!   (`spiffe://shop.test/users`, `…/orders`, …), plus `…/web` for the customers' front end and
//!   `…/auditor` for the audit. Every replica requires a client certificate from that CA, and
//!   registers as `tls://127.0.0.1:PORT`; every client presents its process's identity.
//! - **customers sign in**: `shop.Users/SignIn` checks a password and returns a JWT (EdDSA,
//!   signed by a key only the users service holds; subject: the account id; scopes:
//!   [`CUSTOMER_SCOPES`]), which the front end sends as `authorization: Bearer …` for the customer.
//! - **every service authorizes every call** ([`Shield::auth`]), by a policy per method:
//!   customers' methods (placing, cancelling and reading orders, topping up a wallet, reading
//!   notices) need the scope written beside them in `#[rpc(scope = "...")]` and act only on the
//!   customer's own account ([`check_owner`]; another customer's order reads as not found);
//!   what the order saga calls (charges, refunds, holds, notices, account reads) only the orders
//!   service's certificate may call; signing up and in, browsing, checking stock and restocking
//!   (the warehouse's deliveries come in through the front end here) only the front end's; the
//!   audits only the auditor's. Everything else is refused: `Unauthenticated` without
//!   credentials that verify, `PermissionDenied` otherwise.
//! - **clients check whom they reached**: each identity is also valid for `NAME.shop.test`, and
//!   a client calling `shop.Payments` accepts only the certificate for `payments.shop.test`, so
//!   one service's certificate cannot stand in for another's.
//!
//! Left out: order and top-up ids are chosen by the customer (they are the idempotency keys);
//! top-ups are keyed per account, but an order id is global, so a customer could take an id
//! another customer will use (that customer's order then fails with `AlreadyExists`). A real
//! shop scopes order keys per account, or assigns them on the server.

use std::sync::Arc;

use rpc_core::middleware::auth::{AuthLayer, AuthMethod};
use rpc_core::middleware::Stats;
use rpc_core::{Context, Status};
use rpc_discovery::Registry;

use super::host::{BoxError, Listen};
use super::users::SessionTokens;
pub use super::users::CUSTOMER_SCOPES;
use super::wiring::Wiring;

/// `PermissionDenied` when the call's principal is a customer (authenticated by a token) whose
/// subject is not `account_id`; `Ok` otherwise, including for calls without a principal (the
/// shop without `--secure`, or the service calling itself) and for services, which the policy
/// has already limited to the methods they may call. (Returned by a handler, the refusal counts
/// as processed: the handler ran.)
///
/// # Errors
/// As above.
pub fn check_owner(ctx: &Context, account_id: u64) -> Result<(), Status> {
    match ctx.principal() {
        Some(p) if p.method != AuthMethod::MutualTls && p.subject != account_id.to_string() => {
            Err(Status::permission_denied("the account is not the caller's"))
        }
        _ => Ok(()),
    }
}

/// The shop's security: off ([`Shield::default`]) or on ([`Shield::new`], feature `secure`).
/// Clones share the CA, the token key and the counters.
#[derive(Clone, Default)]
pub struct Shield {
    #[cfg(feature = "secure")]
    on: Option<Arc<secure::Secure>>,
    /// What the orders and payments services' auth layers decided: `authenticated`,
    /// `unauthenticated`, `permission_denied`.
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Shield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shield")
            .field("on", &self.is_on())
            .finish_non_exhaustive()
    }
}

impl Shield {
    /// On ([`Shield::new`]) if `secure`, otherwise off.
    ///
    /// # Errors
    /// As [`Shield::new`]; without the feature `secure`, `secure` itself is an error.
    pub fn when(secure: bool) -> Result<Shield, BoxError> {
        if !secure {
            return Ok(Shield::default());
        }
        #[cfg(feature = "secure")]
        return Shield::new();
        #[cfg(not(feature = "secure"))]
        Err("--secure needs the feature: cargo run --release --example shop --features secure -- --secure".into())
    }

    /// Whether the shop runs secured.
    pub fn is_on(&self) -> bool {
        #[cfg(feature = "secure")]
        return self.on.is_some();
        #[cfg(not(feature = "secure"))]
        false
    }

    /// How a replica of the service `identity` (such as `orders`) listens: plain, or mutual TLS
    /// presenting that service's certificate.
    ///
    /// # Errors
    /// Issuing the certificate or building the TLS configuration failed.
    pub fn listen(&self, identity: &str) -> Result<Listen, BoxError> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return on.listen(identity);
        }
        let _ = identity;
        Ok(Listen::Plain)
    }

    /// The clients of a process that calls as `identity` (such as `orders`, `web`, `auditor`):
    /// over mutual TLS with that identity's certificate when on.
    ///
    /// # Errors
    /// Issuing the certificate failed.
    pub fn wiring(&self, registry: Arc<dyn Registry>, identity: &str) -> Result<Wiring, BoxError> {
        let wiring = Wiring::new(registry);
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return on.wiring(wiring, identity);
        }
        let _ = identity;
        Ok(wiring)
    }

    /// What signs the users service's session tokens, when on.
    pub fn tokens(&self) -> Option<Arc<dyn SessionTokens>> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return Some(on.issuer.clone());
        }
        None
    }

    /// The auth layer of the service `service` (its wire name, such as `shop.Orders`), when on:
    /// its policy as the module docs say.
    ///
    /// # Errors
    /// The token key did not load, or a service the shop does not have.
    pub fn auth(&self, service: &str) -> Result<Option<AuthLayer>, BoxError> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return on.auth(service, self.stats.clone()).map(Some);
        }
        let _ = service;
        Ok(None)
    }

    /// The report's line, when on.
    pub fn report(&self) -> Option<String> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            let s = self.stats.snapshot();
            return Some(format!(
                "security    mutual TLS between every process ({} identities, one CA); the services' auth \
                 layers admitted {} calls and refused {} (unauthenticated {}, permission denied {})",
                on.identities(),
                s.authenticated,
                s.unauthenticated + s.permission_denied,
                s.unauthenticated,
                s.permission_denied
            ));
        }
        None
    }
}

#[cfg(feature = "secure")]
mod secure {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rpc_core::middleware::auth::{AuthLayer, PeerCertificates, Policy, Rule};
    use rpc_core::middleware::Stats;
    use rpc_core::transport::tcp::TcpConnector;
    use rpc_core::transport::tls::{TlsAcceptor, TlsConnector};
    use rpc_core::{Endpoint, Status};

    use super::super::host::{BoxError, Listen};
    use super::super::notifications::NotificationsServer;
    use super::super::orders::OrdersServer;
    use super::super::payments::PaymentsServer;
    use super::super::users::{SessionTokens, CUSTOMER_SCOPES};
    use super::super::wiring::Wiring;
    use super::Shield;
    use crate::pki::{Identity, Pki};
    use crate::tokens::TokenIssuer;

    /// The trust domain of the shop's identities.
    const TRUST_DOMAIN: &str = "shop.test";

    /// How long a customer's token is valid.
    const SESSION: Duration = Duration::from_secs(15 * 60);

    pub(super) struct Secure {
        pki: Pki,
        pub(super) issuer: Arc<TokenIssuer>,
        identities: Mutex<HashMap<String, Identity>>,
    }

    impl SessionTokens for TokenIssuer {
        fn issue(&self, account_id: u64) -> Result<String, Status> {
            TokenIssuer::issue(self, &account_id.to_string(), CUSTOMER_SCOPES, &[], SESSION)
                .map_err(|e| Status::internal(e.to_string()))
        }
    }

    impl Shield {
        /// Security on: a new CA for `shop.test` and a new token key for the users service.
        ///
        /// # Errors
        /// Key generation failed.
        pub fn new() -> Result<Shield, BoxError> {
            Ok(Shield {
                on: Some(Arc::new(Secure {
                    pki: Pki::new(TRUST_DOMAIN)?,
                    issuer: Arc::new(TokenIssuer::generate("shop.Users", "shop")?),
                    identities: Mutex::default(),
                })),
                stats: Stats::new(),
            })
        }
    }

    fn spiffe(name: &str) -> String {
        format!("spiffe://{TRUST_DOMAIN}/{name}")
    }

    /// The identity of the service `service` (its wire name): `shop.Payments` → `payments`.
    fn identity_of(service: &str) -> String {
        service
            .rsplit_once('.')
            .map_or(service, |(_, name)| name)
            .to_ascii_lowercase()
    }

    impl Secure {
        /// The identity `name`, issued on first use and shared by the replicas of a service.
        fn identity(&self, name: &str) -> Result<Identity, BoxError> {
            let mut ids = super::super::lock(&self.identities);
            if let Some(id) = ids.get(name) {
                return Ok(id.clone());
            }
            let id = self.pki.issue(name)?;
            ids.insert(name.to_owned(), id.clone());
            Ok(id)
        }

        pub(super) fn identities(&self) -> usize {
            super::super::lock(&self.identities).len()
        }

        pub(super) fn listen(&self, name: &str) -> Result<Listen, BoxError> {
            let id = self.identity(name)?;
            Ok(Listen::Tls(TlsAcceptor::new(self.pki.server_tls(&id))?))
        }

        pub(super) fn wiring(&self, wiring: Wiring, name: &str) -> Result<Wiring, BoxError> {
            let config = self.pki.client_tls(&self.identity(name)?);
            Ok(wiring.connect_with(move |service: &str, addr: &str| {
                let Some(hostport) = addr.strip_prefix("tls://") else {
                    return Err(Status::unavailable(format!(
                        "{addr} does not serve TLS: the secure shop calls only tls:// replicas"
                    )));
                };
                // The certificate must be the service's own (`payments.shop.test` for
                // `shop.Payments`), whatever address the registry gave.
                let server_name = format!("{}.{TRUST_DOMAIN}", identity_of(service));
                TlsConnector::new(
                    TcpConnector::from_host(hostport),
                    &server_name,
                    config.clone(),
                )
                .map(Endpoint::new)
                .map_err(|e| Status::internal(e.to_string()))
            }))
        }

        /// The policy of `service`, as the module docs say: customers' tokens first, then the
        /// connection's certificate.
        pub(super) fn auth(&self, service: &str, stats: Arc<Stats>) -> Result<AuthLayer, BoxError> {
            let only = |names: &[&str]| Rule::Subjects(names.iter().map(|n| spiffe(n)).collect());
            let (web, orders, auditor) = (only(&["web"]), only(&["orders"]), only(&["auditor"]));
            let policy = match service {
                "shop.Users" => Policy::new()
                    .service(service, web)
                    .method("shop.Users/Get", orders),
                "shop.Catalogue" => Policy::new().service(service, only(&["web", "orders"])),
                "shop.Inventory" => Policy::new()
                    .service(service, orders)
                    .method("shop.Inventory/Check", web.clone())
                    .method("shop.Inventory/Restock", web)
                    .method("shop.Inventory/Audit", auditor),
                "shop.Notifications" => Policy::new()
                    .scopes_of(NotificationsServer::<()>::DESCRIPTOR)
                    .method("shop.Notifications/Notify", orders)
                    .method("shop.Notifications/Audit", auditor),
                "shop.Orders" => Policy::new()
                    .scopes_of(OrdersServer::<()>::DESCRIPTOR)
                    .method("shop.Orders/Audit", auditor),
                "shop.Payments" => Policy::new()
                    .scopes_of(PaymentsServer::<()>::DESCRIPTOR)
                    .method("shop.Payments/Charge", orders.clone())
                    .method("shop.Payments/Refund", orders)
                    .method("shop.Payments/Audit", auditor),
                other => return Err(format!("the shop has no service {other:?}").into()),
            };
            Ok(AuthLayer::new()
                .authenticator(self.issuer.authenticator()?)
                .authenticator(PeerCertificates::new())
                .policy(policy)
                .stats(stats))
        }
    }
}
