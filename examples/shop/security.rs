//! The shop's security, on with `--secure` (feature `secure`), off by default:
//!
//! - **mutual TLS between every process**: one CA made at start-up and one identity per service
//!   (`spiffe://shop.test/users`, `…/orders`, …), plus `…/web` for the customers' front end and
//!   `…/auditor` for the audit. Every replica requires a client certificate from that CA, and
//!   registers as `tls://127.0.0.1:PORT`; every client presents its process's identity.
//! - **customers sign in**: `shop.Users/SignIn` checks a password and returns a JWT (EdDSA,
//!   signed by a key only the users service holds; subject: the account id; scopes:
//!   [`CUSTOMER_SCOPES`]), which the front end sends as `authorization: Bearer …` for the customer.
//! - **orders and payments authorize every call** ([`Shield::orders_auth`],
//!   [`Shield::payments_auth`]): customers' methods need the scope written beside them in
//!   `#[rpc(scope = "...")]` and act only on the customer's own account ([`check_owner`]);
//!   charges and refunds only for the orders service's certificate; audits only for the
//!   auditor's. Everything else is refused: `Unauthenticated` without credentials that verify,
//!   `PermissionDenied` otherwise.
//!
//! The services not named above (users, catalogue, inventory, notifications) require the mutual
//! TLS handshake, so only holders of a certificate from the CA reach them, but no further
//! authorization.

use std::sync::Arc;

use rpc_core::middleware::auth::{AuthLayer, AuthMethod};
use rpc_core::middleware::Stats;
use rpc_core::{Context, Delivery, Status};
use rpc_discovery::Registry;

use super::host::{BoxError, Listen};
use super::users::SessionTokens;
pub use super::users::CUSTOMER_SCOPES;
use super::wiring::Wiring;

/// `PermissionDenied` (marked not processed) when the call's principal is a customer (authenticated by a
/// token) whose subject is not `account_id`; `Ok` otherwise, including for calls without a
/// principal (the shop without `--secure`, or the service calling itself) and for services,
/// which the policy has already limited to the methods they may call.
///
/// # Errors
/// As above.
pub fn check_owner(ctx: &Context, account_id: u64) -> Result<(), Status> {
    match ctx.principal() {
        Some(p) if p.method != AuthMethod::MutualTls && p.subject != account_id.to_string() => {
            Err(Status::permission_denied("the account is not the caller's")
                .with_delivery(Delivery::Unprocessed))
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

    /// The auth layer of `shop.Orders`, when on: customers' tokens with the scope each method
    /// names, the audit for the auditor only.
    ///
    /// # Errors
    /// The token key did not load.
    pub fn orders_auth(&self) -> Result<Option<AuthLayer>, BoxError> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return on.orders_auth(self.stats.clone()).map(Some);
        }
        Ok(None)
    }

    /// The auth layer of `shop.Payments`, when on: customers' tokens for top-ups, charges and
    /// refunds for the orders service only, the audit for the auditor only.
    ///
    /// # Errors
    /// The token key did not load.
    pub fn payments_auth(&self) -> Result<Option<AuthLayer>, BoxError> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            return on.payments_auth(self.stats.clone()).map(Some);
        }
        Ok(None)
    }

    /// The report's line, when on.
    pub fn report(&self) -> Option<String> {
        #[cfg(feature = "secure")]
        if let Some(on) = &self.on {
            let s = self.stats.snapshot();
            return Some(format!(
                "security    mutual TLS between every process ({} identities, one CA); the auth layers of \
                 orders and payments admitted {} calls and refused {} (unauthenticated {}, permission denied {})",
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
            Ok(wiring.connect_with(move |addr: &str| {
                let Some(hostport) = addr.strip_prefix("tls://") else {
                    return Err(Status::unavailable(format!(
                        "{addr} does not serve TLS: the secure shop calls only tls:// replicas"
                    )));
                };
                // Every identity is valid for localhost: the name checked is the CA's, not the
                // address's.
                TlsConnector::new(
                    TcpConnector::from_host(hostport),
                    "localhost",
                    config.clone(),
                )
                .map(Endpoint::new)
                .map_err(|e| Status::internal(e.to_string()))
            }))
        }

        /// Customers' tokens first, then the connection's certificate.
        fn auth(&self, policy: Policy, stats: Arc<Stats>) -> Result<AuthLayer, BoxError> {
            Ok(AuthLayer::new()
                .authenticator(self.issuer.authenticator()?)
                .authenticator(PeerCertificates::new())
                .policy(policy)
                .stats(stats))
        }

        pub(super) fn orders_auth(&self, stats: Arc<Stats>) -> Result<AuthLayer, BoxError> {
            let policy = Policy::new()
                .scopes_of(OrdersServer::<()>::DESCRIPTOR)
                .method("shop.Orders/Audit", Rule::subject(spiffe("auditor")));
            self.auth(policy, stats)
        }

        pub(super) fn payments_auth(&self, stats: Arc<Stats>) -> Result<AuthLayer, BoxError> {
            let orders = Rule::subject(spiffe("orders"));
            let policy = Policy::new()
                .scopes_of(PaymentsServer::<()>::DESCRIPTOR)
                .method("shop.Payments/Charge", orders.clone())
                .method("shop.Payments/Refund", orders)
                .method("shop.Payments/Audit", Rule::subject(spiffe("auditor")));
            self.auth(policy, stats)
        }
    }
}
