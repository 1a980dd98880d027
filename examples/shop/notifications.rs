//! `shop.Notifications`: what each customer was told.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rpc_core::{service, Context, Status};

/// One message to a customer about an order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Notice {
    /// The customer.
    #[prost(uint64, tag = "1")]
    pub account_id: u64,
    /// The order it is about.
    #[prost(uint64, tag = "2")]
    pub order_id: u64,
    /// What happened: `paid`, `refused` or `cancelled`.
    #[prost(string, tag = "3")]
    pub kind: String,
    /// The text sent.
    #[prost(string, tag = "4")]
    pub text: String,
}

/// Notices, sorted by account, then order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Notices {
    /// The notices.
    #[prost(message, repeated, tag = "1")]
    pub notices: Vec<Notice>,
}

/// Sends messages to customers (here: records them).
#[service(name = "shop.Notifications", version = "1")]
pub trait Notifications {
    /// Tells a customer about an order. One notice per order and kind: a repeat is recorded once.
    #[rpc(idempotent, timeout = "500ms")]
    async fn notify(&self, notice: Notice) -> Result<(), Status>;

    /// What customer `account_id` was told.
    /// `PermissionDenied` for another customer's notices.
    #[rpc(idempotent, timeout = "500ms", scope = "orders:read")]
    async fn sent(&self, ctx: &Context, account_id: u64) -> Result<Notices, Status>;

    /// Every notice, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<Notices, Status>;
}

/// (account, order, kind): one notice per order and kind, found by account.
type NoticeKey = (u64, u64, String);

/// [`Notifications`] in memory; clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MemoryNotifications {
    sent: Arc<Mutex<BTreeMap<NoticeKey, Notice>>>,
}

impl Notifications for MemoryNotifications {
    async fn notify(&self, notice: Notice) -> Result<(), Status> {
        super::lock(&self.sent)
            .entry((notice.account_id, notice.order_id, notice.kind.clone()))
            .or_insert(notice);
        Ok(())
    }

    async fn sent(&self, ctx: &Context, account_id: u64) -> Result<Notices, Status> {
        super::security::check_owner(ctx, account_id)?;
        let notices = super::lock(&self.sent)
            .range((account_id, 0, String::new())..)
            .take_while(|(k, _)| k.0 == account_id)
            .map(|(_, n)| n.clone())
            .collect();
        Ok(Notices { notices })
    }

    async fn audit(&self) -> Result<Notices, Status> {
        let notices = super::lock(&self.sent).values().cloned().collect();
        Ok(Notices { notices })
    }
}
