//! `shop.Payments`: wallets, charges and refunds. A charge is keyed by its order: charging an
//! order twice (a retry, a repeat on another orders replica) applies it once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rpc_core::{service, Context, ServiceError, Status};

/// Money into a customer's wallet.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct TopUp {
    /// The customer.
    #[prost(uint64, tag = "1")]
    pub account_id: u64,
    /// Chosen by the caller: a repeat with the same id for the same account is applied once.
    #[prost(uint64, tag = "2")]
    pub top_up_id: u64,
    /// Cents.
    #[prost(uint64, tag = "3")]
    pub amount_cents: u64,
}

/// A charge for an order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Charge {
    /// The order: at most one charge per order.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// The customer whose wallet pays.
    #[prost(uint64, tag = "2")]
    pub account_id: u64,
    /// Cents.
    #[prost(uint64, tag = "3")]
    pub amount_cents: u64,
}

/// A wallet's balance after an operation.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Balance {
    /// The customer.
    #[prost(uint64, tag = "1")]
    pub account_id: u64,
    /// Cents.
    #[prost(uint64, tag = "2")]
    pub balance_cents: u64,
}

/// One charge as [`Payments::audit`] reports it.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct ChargeAudit {
    /// The charge.
    #[prost(message, optional, tag = "1")]
    pub charge: Option<Charge>,
    /// Whether it was refunded.
    #[prost(bool, tag = "2")]
    pub refunded: bool,
    /// How many times the charge was asked for (retries and repeats included); applied once.
    #[prost(uint32, tag = "3")]
    pub requests: u32,
}

/// One wallet as [`Payments::audit`] reports it.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct WalletAudit {
    /// The customer.
    #[prost(uint64, tag = "1")]
    pub account_id: u64,
    /// Cents topped up in all.
    #[prost(uint64, tag = "2")]
    pub topped_up_cents: u64,
    /// Cents now.
    #[prost(uint64, tag = "3")]
    pub balance_cents: u64,
}

/// Every charge and wallet, for audits.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct PaymentsAudit {
    /// Sorted by order id.
    #[prost(message, repeated, tag = "1")]
    pub charges: Vec<ChargeAudit>,
    /// Sorted by account id.
    #[prost(message, repeated, tag = "2")]
    pub wallets: Vec<WalletAudit>,
}

/// Why a payment was refused: crosses the wire typed.
#[derive(Debug, serde::Serialize, serde::Deserialize, rpc_core::Schema)]
pub enum PaymentError {
    /// The wallet holds less than the charge.
    Declined {
        /// Cents in the wallet.
        balance_cents: u64,
        /// Cents asked for.
        amount_cents: u64,
    },
    /// The order's charge was refunded, or refunded before it was made: the order cannot be
    /// charged again.
    Void {
        /// The order.
        order_id: u64,
    },
    /// The call failed for a reason of the transport or the server.
    #[serde(skip)]
    Rpc(Status),
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentError::Declined {
                balance_cents,
                amount_cents,
            } => write!(
                f,
                "declined: {amount_cents} cents asked, {balance_cents} in the wallet"
            ),
            PaymentError::Void { order_id } => {
                write!(
                    f,
                    "order {order_id} was refunded and cannot be charged again"
                )
            }
            PaymentError::Rpc(status) => write!(f, "{status}"),
        }
    }
}

impl std::error::Error for PaymentError {}

impl From<Status> for PaymentError {
    fn from(status: Status) -> Self {
        PaymentError::Rpc(status)
    }
}

impl ServiceError for PaymentError {
    fn into_status(self) -> Status {
        match self {
            PaymentError::Rpc(status) => status,
            e => Status::failed_precondition(e.to_string()).with_details(&e),
        }
    }

    fn from_status(status: Status) -> Self {
        match status.details() {
            Ok(Some(e)) => e,
            _ => PaymentError::Rpc(status),
        }
    }
}

/// Customers' wallets.
#[service(name = "shop.Payments", version = "1")]
pub trait Payments {
    /// Adds money to a wallet (opening it on first use); a repeated `top_up_id` of an account is
    /// applied once.
    /// `PermissionDenied` (as `PaymentError::Rpc`) when a customer tops up another's wallet.
    #[rpc(idempotent, timeout = "1s", scope = "payments:write")]
    async fn top_up(&self, ctx: &Context, top_up: TopUp) -> Result<Balance, PaymentError>;

    /// Charges an order to its customer's wallet, once: a repeat returns the balance without
    /// charging again. `Declined` if the wallet holds too little; `Void` once the order was
    /// refunded (a refund is final, even one that came before any charge).
    #[rpc(idempotent, timeout = "1s")]
    async fn charge(&self, charge: Charge) -> Result<Balance, PaymentError>;

    /// Refunds an order's charge, once. `Ok` if the order was never charged, and then no charge
    /// for it is accepted any more: a charge delayed in the network cannot land after the order
    /// was given up.
    #[rpc(idempotent, timeout = "1s")]
    async fn refund(&self, order_id: u64) -> Result<(), PaymentError>;

    /// Every charge and wallet, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<PaymentsAudit, Status>;
}

#[derive(Debug, Default)]
struct Wallet {
    topped_up: u64,
    balance: u64,
}

#[derive(Debug, Default)]
struct State {
    wallets: HashMap<u64, Wallet>,
    /// Top-ups applied, by account and top-up id: an id is the customer's own, so one customer
    /// cannot use up another's ids.
    top_ups: std::collections::HashSet<(u64, u64)>,
    charges: HashMap<u64, ChargeAudit>,
    /// Orders refunded before any charge: closed to charges.
    void: std::collections::HashSet<u64>,
}

/// [`Payments`] in memory; clones share the wallets.
#[derive(Debug, Clone, Default)]
pub struct MemoryPayments {
    state: Arc<Mutex<State>>,
}

impl Payments for MemoryPayments {
    async fn top_up(&self, ctx: &Context, top_up: TopUp) -> Result<Balance, PaymentError> {
        super::security::check_owner(ctx, top_up.account_id).map_err(PaymentError::Rpc)?;
        let mut s = super::lock(&self.state);
        let s = &mut *s;
        if s.top_ups.insert((top_up.account_id, top_up.top_up_id)) {
            let w = s.wallets.entry(top_up.account_id).or_default();
            w.topped_up += top_up.amount_cents;
            w.balance += top_up.amount_cents;
        }
        let balance_cents = s.wallets.get(&top_up.account_id).map_or(0, |w| w.balance);
        Ok(Balance {
            account_id: top_up.account_id,
            balance_cents,
        })
    }

    async fn charge(&self, charge: Charge) -> Result<Balance, PaymentError> {
        let mut s = super::lock(&self.state);
        let s = &mut *s;
        let wallet = s.wallets.entry(charge.account_id).or_default();
        if s.void.contains(&charge.order_id) {
            return Err(PaymentError::Void {
                order_id: charge.order_id,
            });
        }
        if let Some(done) = s.charges.get_mut(&charge.order_id) {
            done.requests += 1;
            if done.refunded {
                return Err(PaymentError::Void {
                    order_id: charge.order_id,
                });
            }
            return Ok(Balance {
                account_id: charge.account_id,
                balance_cents: wallet.balance,
            });
        }
        if wallet.balance < charge.amount_cents {
            return Err(PaymentError::Declined {
                balance_cents: wallet.balance,
                amount_cents: charge.amount_cents,
            });
        }
        wallet.balance -= charge.amount_cents;
        let balance_cents = wallet.balance;
        let account_id = charge.account_id;
        s.charges.insert(
            charge.order_id,
            ChargeAudit {
                charge: Some(charge),
                refunded: false,
                requests: 1,
            },
        );
        Ok(Balance {
            account_id,
            balance_cents,
        })
    }

    async fn refund(&self, order_id: u64) -> Result<(), PaymentError> {
        let mut s = super::lock(&self.state);
        let s = &mut *s;
        let Some(c) = s.charges.get_mut(&order_id) else {
            s.void.insert(order_id);
            return Ok(());
        };
        if !c.refunded {
            c.refunded = true;
            if let Some(charge) = &c.charge {
                s.wallets.entry(charge.account_id).or_default().balance += charge.amount_cents;
            }
        }
        Ok(())
    }

    async fn audit(&self) -> Result<PaymentsAudit, Status> {
        let s = super::lock(&self.state);
        let charges: BTreeMap<_, _> = s.charges.iter().collect();
        let wallets: BTreeMap<_, _> = s.wallets.iter().collect();
        Ok(PaymentsAudit {
            charges: charges.into_values().cloned().collect(),
            wallets: wallets
                .into_iter()
                .map(|(&account_id, w)| WalletAudit {
                    account_id,
                    topped_up_cents: w.topped_up,
                    balance_cents: w.balance,
                })
                .collect(),
        })
    }
}
