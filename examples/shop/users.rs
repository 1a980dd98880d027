//! `shop.Users`: customer accounts, and signing in: [`Users::sign_in`] checks a password and
//! returns a token (a JWT in the secure shop) that the orders and payments services require.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use rpc_core::{service, Status};

/// A request to open an account.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct SignUp {
    /// Display name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// E-mail address: one account per address.
    #[prost(string, tag = "2")]
    pub email: String,
    /// The password [`Users::sign_in`] will check.
    #[prost(string, tag = "3")]
    pub password: String,
}

/// A request to sign in.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct SignIn {
    /// The account's e-mail address.
    #[prost(string, tag = "1")]
    pub email: String,
    /// Its password.
    #[prost(string, tag = "2")]
    pub password: String,
}

/// A signed-in customer.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Session {
    /// The account signed in.
    #[prost(uint64, tag = "1")]
    pub account_id: u64,
    /// The token to send as `authorization: Bearer TOKEN`: its subject is the account id (in
    /// decimal), its scopes those of [`CUSTOMER_SCOPES`].
    #[prost(string, tag = "2")]
    pub token: String,
}

/// The scopes of a customer's token: reading and placing orders, topping up a wallet.
pub const CUSTOMER_SCOPES: &[&str] = &["orders:read", "orders:write", "payments:write"];

/// Signs the tokens [`Users::sign_in`] returns (in the secure shop, a JWT signed by a key only
/// the users service holds).
pub trait SessionTokens: Send + Sync + 'static {
    /// A token for `account_id` with the scopes in [`CUSTOMER_SCOPES`].
    ///
    /// # Errors
    /// `Internal` if signing failed.
    fn issue(&self, account_id: u64) -> Result<String, Status>;
}

/// A customer account.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Account {
    /// Assigned at sign-up, from 1.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Display name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// E-mail address.
    #[prost(string, tag = "3")]
    pub email: String,
}

/// Customer accounts.
#[service(name = "shop.Users", version = "1")]
pub trait Users {
    /// Opens an account; signing up again with the same e-mail address and password returns the
    /// account it already has (so a retried sign-up never opens two), and with another password
    /// is `AlreadyExists`. `InvalidArgument` without an address or a password.
    #[rpc(idempotent, timeout = "1s")]
    async fn sign_up(&self, request: SignUp) -> Result<Account, Status>;

    /// The account `id`; `NotFound` if there is none.
    #[rpc(idempotent, timeout = "500ms")]
    async fn get(&self, id: u64) -> Result<Account, Status>;

    /// Checks the password of the account with this e-mail address and returns a session
    /// token. `Unauthenticated` for an unknown address or a wrong password (the same message
    /// for both); `FailedPrecondition` when the shop runs without tokens (`--secure` off).
    #[rpc(idempotent, timeout = "1s")]
    async fn sign_in(&self, request: SignIn) -> Result<Session, Status>;
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<u64, Account>,
    by_email: HashMap<String, u64>,
    /// A keyed digest of each account's password.
    passwords: HashMap<u64, u64>,
}

/// [`Users`] in memory; clones share the accounts.
///
/// Passwords are kept as a SipHash digest keyed by a random key of the process, salted with the
/// account id: enough for accounts that live as long as the process; a real service stores a
/// slow password hash (Argon2id) in its database.
#[derive(Clone, Default)]
pub struct MemoryUsers {
    state: Arc<Mutex<State>>,
    digest_key: std::hash::RandomState,
    tokens: Option<Arc<dyn SessionTokens>>,
}

impl std::fmt::Debug for MemoryUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryUsers")
            .field("tokens", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl MemoryUsers {
    /// Accounts whose sign-ins return tokens from `tokens`.
    pub fn with_tokens(tokens: Arc<dyn SessionTokens>) -> MemoryUsers {
        MemoryUsers {
            tokens: Some(tokens),
            ..MemoryUsers::default()
        }
    }

    fn digest(&self, id: u64, password: &str) -> u64 {
        self.digest_key.hash_one((id, password))
    }
}

impl Users for MemoryUsers {
    async fn sign_up(&self, request: SignUp) -> Result<Account, Status> {
        if request.email.is_empty() || request.password.is_empty() {
            return Err(Status::invalid_argument(
                "an account needs an e-mail address and a password",
            ));
        }
        let mut s = super::lock(&self.state);
        if let Some(&id) = s.by_email.get(&request.email) {
            // A repeated sign-up (the same password) gets the account it opened; anyone else
            // learns only that the address is taken.
            if s.passwords.get(&id) == Some(&self.digest(id, &request.password)) {
                return Ok(s.by_id[&id].clone());
            }
            return Err(Status::already_exists(
                "an account with this e-mail address exists",
            ));
        }
        let id = s.by_id.len() as u64 + 1;
        let account = Account {
            id,
            name: request.name,
            email: request.email.clone(),
        };
        s.by_email.insert(request.email, id);
        s.by_id.insert(id, account.clone());
        let digest = self.digest(id, &request.password);
        s.passwords.insert(id, digest);
        Ok(account)
    }

    async fn get(&self, id: u64) -> Result<Account, Status> {
        super::lock(&self.state)
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no account {id}")))
    }

    async fn sign_in(&self, request: SignIn) -> Result<Session, Status> {
        let Some(tokens) = &self.tokens else {
            return Err(Status::failed_precondition(
                "this shop runs without sign-in (start it with --secure)",
            ));
        };
        let account_id = {
            let s = super::lock(&self.state);
            let id = s.by_email.get(&request.email).copied();
            let known = id.and_then(|id| s.passwords.get(&id).map(|&d| (id, d)));
            match known {
                Some((id, digest)) if digest == self.digest(id, &request.password) => id,
                _ => {
                    return Err(Status::unauthenticated(
                        "unknown e-mail address or wrong password",
                    ))
                }
            }
        };
        Ok(Session {
            account_id,
            token: tokens.issue(account_id)?,
        })
    }
}
