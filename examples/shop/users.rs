//! `shop.Users`: customer accounts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rpc_core::{service, Status};

/// A request to open an account.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SignUp {
    /// Display name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// E-mail address: one account per address.
    #[prost(string, tag = "2")]
    pub email: String,
}

/// A customer account.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
    /// Opens an account; signing up again with the same e-mail address returns the account it
    /// already has (so a retried sign-up never opens two).
    #[rpc(idempotent, timeout = "1s")]
    async fn sign_up(&self, request: SignUp) -> Result<Account, Status>;

    /// The account `id`; `NotFound` if there is none.
    #[rpc(idempotent, timeout = "500ms")]
    async fn get(&self, id: u64) -> Result<Account, Status>;
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<u64, Account>,
    by_email: HashMap<String, u64>,
}

/// [`Users`] in memory; clones share the accounts.
#[derive(Debug, Clone, Default)]
pub struct MemoryUsers {
    state: Arc<Mutex<State>>,
}

impl Users for MemoryUsers {
    async fn sign_up(&self, request: SignUp) -> Result<Account, Status> {
        if request.email.is_empty() {
            return Err(Status::invalid_argument(
                "an account needs an e-mail address",
            ));
        }
        let mut s = super::lock(&self.state);
        if let Some(id) = s.by_email.get(&request.email) {
            return Ok(s.by_id[id].clone());
        }
        let id = s.by_id.len() as u64 + 1;
        let account = Account {
            id,
            name: request.name,
            email: request.email.clone(),
        };
        s.by_email.insert(request.email, id);
        s.by_id.insert(id, account.clone());
        Ok(account)
    }

    async fn get(&self, id: u64) -> Result<Account, Status> {
        super::lock(&self.state)
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no account {id}")))
    }
}
