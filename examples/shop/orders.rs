//! `shop.Orders`: placing an order is a saga across the other services, and every step of it is
//! idempotent by the order id, so the whole saga can be run again from the start (by a retry,
//! or on another replica after a crash) and finishes what the first run began:
//!
//! 1. the account exists (`shop.Users/Get`) and the product has a price (`shop.Catalogue/Get`);
//! 2. hold the stock (`shop.Inventory/Reserve`); too little: the order is refused;
//! 3. charge the wallet (`shop.Payments/Charge`); declined: the order is refused;
//! 4. confirm the hold (`shop.Inventory/Confirm`); it expired meanwhile: the order is refused;
//! 5. tell the customer (`shop.Notifications/Notify`), then record the order as final.
//!
//! A refusal is recorded on the order before anything else, then the order gives back whatever
//! it may hold (release the hold, refund the charge: both no-ops when there is nothing), then the
//! customer is told. A repeat of an order whose refusal was decided only finishes it.
//!
//! A step that fails for a reason of the transport (after the client stack's own retries) fails
//! the call with that status and leaves the order pending; the caller places it again with the
//! same id. Calls for one order run one at a time (a lock per order), so two repeats never
//! interleave.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rpc_core::{service, Code, ServiceError, Status};

use super::catalogue::CatalogueClient;
use super::inventory::{InventoryClient, InventoryError, ReserveRequest};
use super::notifications::{Notice, NotificationsClient};
use super::payments::{Charge, PaymentError, PaymentsClient};
use super::users::UsersClient;
use super::wiring::{Stack, Wiring};

/// Where an order stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    prost::Enumeration,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(i32)]
pub enum OrderState {
    /// Being placed (or its placing failed half-way and awaits a repeat).
    Pending = 0,
    /// Charged, and its stock sold.
    Paid = 1,
    /// Not accepted: too little stock, payment declined, unknown account or product.
    Refused = 2,
    /// Paid, then cancelled: refunded and its stock returned.
    Cancelled = 3,
}

impl OrderState {
    /// The name used in notices and reports.
    pub fn name(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Paid => "paid",
            OrderState::Refused => "refused",
            OrderState::Cancelled => "cancelled",
        }
    }
}

/// A request to place an order.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct PlaceOrder {
    /// Chosen by the caller, unique: placing the same id again is a repeat, not a new order.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// The customer.
    #[prost(uint64, tag = "2")]
    pub account_id: u64,
    /// Stock-keeping unit.
    #[prost(string, tag = "3")]
    pub sku: String,
    /// Units (at least 1).
    #[prost(uint32, tag = "4")]
    pub quantity: u32,
}

/// An order.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The caller's id.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// The customer.
    #[prost(uint64, tag = "2")]
    pub account_id: u64,
    /// Stock-keeping unit.
    #[prost(string, tag = "3")]
    pub sku: String,
    /// Units.
    #[prost(uint32, tag = "4")]
    pub quantity: u32,
    /// Price × quantity, in cents (0 until the price is known).
    #[prost(uint64, tag = "5")]
    pub total_cents: u64,
    /// Where it stands.
    #[prost(enumeration = "OrderState", tag = "6")]
    pub state: i32,
    /// Why it was refused: `out of stock`, `payment declined`, `payment void` (its charge was
    /// refunded by an earlier run), `hold expired`, `unknown account` or `unknown product`; empty
    /// otherwise. Set on a pending order once its refusal is decided.
    #[prost(string, tag = "7")]
    pub reason: String,
}

/// Every order, for audits.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct OrderList {
    /// Sorted by order id.
    #[prost(message, repeated, tag = "1")]
    pub orders: Vec<Order>,
}

/// Orders of the shop.
#[service(name = "shop.Orders", version = "1")]
pub trait Orders {
    /// Places an order (the saga in the module docs) and returns it paid or refused. Placing an
    /// id again returns the order as it ended, or finishes it if it is still pending.
    #[rpc(idempotent, timeout = "3s")]
    async fn place(&self, request: PlaceOrder) -> Result<Order, Status>;

    /// Cancels a paid order: refunds it and returns its stock. A refused or already cancelled
    /// order is returned as it is; `NotFound` for an unknown id; `FailedPrecondition` for one still
    /// pending.
    #[rpc(idempotent, timeout = "3s")]
    async fn cancel(&self, order_id: u64) -> Result<Order, Status>;

    /// The order `order_id`; `NotFound` if there is none.
    #[rpc(idempotent, timeout = "500ms")]
    async fn get(&self, order_id: u64) -> Result<Order, Status>;

    /// Every order, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<OrderList, Status>;
}

/// The orders' state, shared by every replica (their database).
#[derive(Debug, Clone, Default)]
pub struct OrderBook {
    orders: Arc<Mutex<HashMap<u64, Order>>>,
    locks: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl OrderBook {
    fn get(&self, id: u64) -> Option<Order> {
        super::lock(&self.orders).get(&id).cloned()
    }

    fn put(&self, order: &Order) {
        super::lock(&self.orders).insert(order.order_id, order.clone());
    }

    fn lock_for(&self, id: u64) -> Arc<tokio::sync::Mutex<()>> {
        super::lock(&self.locks).entry(id).or_default().clone()
    }
}

/// The clients an orders replica calls.
#[derive(Clone)]
struct Downstream {
    users: UsersClient<Stack>,
    catalogue: CatalogueClient<Stack>,
    inventory: InventoryClient<Stack>,
    payments: PaymentsClient<Stack>,
    notifications: NotificationsClient<Stack>,
}

/// One replica of [`Orders`]: the shared book, and its own clients.
#[derive(Clone)]
pub struct OrdersReplica {
    book: OrderBook,
    down: Downstream,
}

impl std::fmt::Debug for OrdersReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersReplica").finish_non_exhaustive()
    }
}

impl OrdersReplica {
    /// A replica over `book`, calling the other services through `wiring`.
    ///
    /// # Errors
    /// The registry's, if a watch cannot start.
    pub async fn new(
        book: OrderBook,
        wiring: &Wiring,
    ) -> Result<OrdersReplica, rpc_discovery::DiscoveryError> {
        Ok(OrdersReplica {
            book,
            down: Downstream {
                users: UsersClient::new(wiring.stack("shop.Users").await?),
                catalogue: CatalogueClient::new(wiring.stack("shop.Catalogue").await?),
                inventory: InventoryClient::new(wiring.stack("shop.Inventory").await?),
                payments: PaymentsClient::new(wiring.stack("shop.Payments").await?),
                notifications: NotificationsClient::new(wiring.stack("shop.Notifications").await?),
            },
        })
    }

    /// Tells the customer, then records the order as final.
    async fn finish(
        &self,
        mut order: Order,
        state: OrderState,
        reason: &str,
    ) -> Result<Order, Status> {
        order.state = state as i32;
        reason.clone_into(&mut order.reason);
        let text = match state {
            OrderState::Paid => format!(
                "order {} paid: {} x {} for {} cents",
                order.order_id, order.quantity, order.sku, order.total_cents
            ),
            OrderState::Cancelled => format!("order {} cancelled and refunded", order.order_id),
            _ => format!("order {} refused: {reason}", order.order_id),
        };
        self.down
            .notifications
            .notify(Notice {
                account_id: order.account_id,
                order_id: order.order_id,
                kind: state.name().to_owned(),
                text,
            })
            .await?;
        self.book.put(&order);
        Ok(order)
    }

    /// Refuses `order` for `reason`: the decision is recorded first (a repeat of the order only
    /// finishes it, whatever the other services would answer by then), then whatever the order
    /// may hold is given back (both steps are `Ok` when there is nothing to give back, and a
    /// refund of an order never charged voids its charge for good), then the customer is told.
    async fn refuse(&self, mut order: Order, reason: &str) -> Result<Order, Status> {
        reason.clone_into(&mut order.reason);
        self.book.put(&order);
        let d = &self.down;
        d.inventory
            .release(order.order_id)
            .await
            .map_err(ServiceError::into_status)?;
        d.payments
            .refund(order.order_id)
            .await
            .map_err(ServiceError::into_status)?;
        self.finish(order, OrderState::Refused, reason).await
    }

    async fn saga(&self, mut order: Order) -> Result<Order, Status> {
        if !order.reason.is_empty() {
            // A refusal decided by an earlier run, cut off before it finished.
            let reason = order.reason.clone();
            return self.refuse(order, &reason).await;
        }
        let d = &self.down;
        match d.users.get(order.account_id).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {
                return self.refuse(order, "unknown account").await
            }
            Err(s) => return Err(s),
        }
        let price = match d.catalogue.get(order.sku.clone()).await {
            Ok(p) => p.price_cents,
            Err(s) if s.code() == Code::NotFound => {
                return self.refuse(order, "unknown product").await
            }
            Err(s) => return Err(s),
        };
        order.total_cents = price * u64::from(order.quantity);
        let reserve = ReserveRequest {
            order_id: order.order_id,
            sku: order.sku.clone(),
            quantity: order.quantity,
        };
        match d
            .inventory
            .reserve(reserve)
            .metadata("caller", "shop.Orders")
            .await
        {
            Ok(_) => {}
            Err(InventoryError::Insufficient { .. } | InventoryError::UnknownSku { .. }) => {
                return self.refuse(order, "out of stock").await
            }
            Err(e) => return Err(e.into_status()),
        }
        let charge = Charge {
            order_id: order.order_id,
            account_id: order.account_id,
            amount_cents: order.total_cents,
        };
        match d.payments.charge(charge).await {
            Ok(_) => {}
            Err(PaymentError::Declined { .. }) => {
                return self.refuse(order, "payment declined").await
            }
            Err(PaymentError::Void { .. }) => return self.refuse(order, "payment void").await,
            Err(PaymentError::Rpc(s)) => return Err(s),
        }
        match d.inventory.confirm(order.order_id).await {
            Ok(()) => {}
            Err(InventoryError::NoHold { .. }) => return self.refuse(order, "hold expired").await,
            Err(e) => return Err(e.into_status()),
        }
        self.finish(order, OrderState::Paid, "").await
    }
}

impl Orders for OrdersReplica {
    async fn place(&self, request: PlaceOrder) -> Result<Order, Status> {
        if request.quantity == 0 {
            return Err(Status::invalid_argument("an order needs at least one unit"));
        }
        let lock = self.book.lock_for(request.order_id);
        let _one_at_a_time = lock.lock().await;
        let order = match self.book.get(request.order_id) {
            Some(o) if o.state != OrderState::Pending as i32 => return Ok(o),
            Some(o)
                if o.account_id != request.account_id
                    || o.sku != request.sku
                    || o.quantity != request.quantity =>
            {
                return Err(Status::already_exists(format!(
                    "order {} exists with other contents",
                    request.order_id
                )))
            }
            Some(o) => o,
            None => {
                let o = Order {
                    order_id: request.order_id,
                    account_id: request.account_id,
                    sku: request.sku,
                    quantity: request.quantity,
                    total_cents: 0,
                    state: OrderState::Pending as i32,
                    reason: String::new(),
                };
                self.book.put(&o);
                o
            }
        };
        self.saga(order).await
    }

    async fn cancel(&self, order_id: u64) -> Result<Order, Status> {
        let lock = self.book.lock_for(order_id);
        let _one_at_a_time = lock.lock().await;
        let Some(order) = self.book.get(order_id) else {
            return Err(Status::not_found(format!("no order {order_id}")));
        };
        match OrderState::try_from(order.state) {
            Ok(OrderState::Paid) => {}
            Ok(OrderState::Pending) => {
                return Err(Status::failed_precondition(format!(
                    "order {order_id} is still being placed"
                )))
            }
            _ => return Ok(order),
        }
        let d = &self.down;
        d.payments
            .refund(order_id)
            .await
            .map_err(ServiceError::into_status)?;
        d.inventory
            .release(order_id)
            .await
            .map_err(ServiceError::into_status)?;
        self.finish(order, OrderState::Cancelled, "").await
    }

    async fn get(&self, order_id: u64) -> Result<Order, Status> {
        self.book
            .get(order_id)
            .ok_or_else(|| Status::not_found(format!("no order {order_id}")))
    }

    async fn audit(&self) -> Result<OrderList, Status> {
        let orders: BTreeMap<u64, Order> = super::lock(&self.book.orders)
            .iter()
            .map(|(&id, o)| (id, o.clone()))
            .collect();
        Ok(OrderList {
            orders: orders.into_values().collect(),
        })
    }
}
