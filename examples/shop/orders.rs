//! `shop.Orders`: placing an order is a saga across the other services, and every step of it is
//! idempotent by the order id, so the whole saga can be run again from the start (by a retry,
//! or on another replica after a crash) and finishes what the first run began:
//!
//! 1. the account exists (`shop.Users/Get`) and the product has a price (`shop.Catalogue/Get`);
//! 2. hold the stock (`shop.Inventory/Reserve`); too little: the order is refused;
//! 3. charge the wallet (`shop.Payments/Charge`); declined: the order is refused;
//! 4. confirm the hold (`shop.Inventory/Confirm`); it expired meanwhile: the order is refused;
//! 5. record the order as final, then tell the customer (`shop.Notifications/Notify`; a repeat
//!    of a settled order tells again, in case the first run could not).
//!
//! A refusal is recorded on the order before anything else, then the order gives back whatever
//! it may hold (release the hold, refund the charge: both no-ops when there is nothing), then the
//! customer is told. A repeat of an order whose refusal was decided only finishes it.
//!
//! A step that fails for a reason of the transport (after the client stack's own retries) fails
//! the call with that status and leaves the order pending; the caller places it again with the
//! same id. Within one replica, calls for one order run one at a time (a lock per order); across
//! replicas they may interleave, and every step's record decides: a hold or a charge given back
//! is never made again for the order, and an order is settled once (compare-and-set).
//!
//! A caller may also give up (its own repeats all failed while the store or a dependency was
//! down). Every replica therefore runs [`OrdersReplica::recover`]: an order seen unfinished
//! (pending, paid and being cancelled, or settled with its customer not yet told) at every sweep
//! for [`ABANDONED`] is run again from its
//! record, as a repeat from the caller would be, so that no saga stays half done. A caller still
//! at work meanwhile is harmless: runs of one order on several replicas interleave safely (above).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::{service, Code, Context, Sender, ServiceError, Status};

use super::catalogue::CatalogueClient;
use super::inventory::{InventoryClient, InventoryError, ReserveRequest};
use super::notifications::{Notice, NotificationsClient};
use super::payments::{Charge, PaymentError, PaymentsClient};
use super::security::check_owner;
use super::store::{list, transact, MemoryStore, Store};
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
    rpc_core::Schema,
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
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
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
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
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
    /// The customer was told how the order ended (set after the notice of its final state was
    /// recorded; cleared when the state changes).
    #[prost(bool, tag = "8")]
    pub notified: bool,
}

/// Every order, for audits.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
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
    /// `PermissionDenied` when a customer places it for an account not their own.
    #[rpc(idempotent, timeout = "3s", scope = "orders:write")]
    async fn place(&self, ctx: &Context, request: PlaceOrder) -> Result<Order, Status>;

    /// Cancels a paid order: refunds it and returns its stock. A refused or already cancelled
    /// order is returned as it is; `NotFound` for an unknown id; `FailedPrecondition` for one still
    /// pending, and for another customer's order.
    #[rpc(idempotent, timeout = "3s", scope = "orders:write")]
    async fn cancel(&self, ctx: &Context, order_id: u64) -> Result<Order, Status>;

    /// The order `order_id`; `NotFound` if there is none or it is another customer's.
    #[rpc(idempotent, timeout = "500ms", scope = "orders:read")]
    async fn get(&self, ctx: &Context, order_id: u64) -> Result<Order, Status>;

    /// Every order, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<OrderList, Status>;

    /// Follows the order `order_id` until it is settled (a server stream): sends it as it is,
    /// again at each change, and ends the stream after the first update that is no longer
    /// pending (paid or refused). An order not placed yet is waited for, so a watch may start
    /// before the placing; `NotFound` once it turns out to be another customer's. Looks every
    /// [`WATCH_PERIOD`]; the stream's deadline (10 s by default) bounds the wait. `Unavailable`
    /// when the replica shuts down meanwhile: open the watch again.
    #[rpc(idempotent, timeout = "10s", scope = "orders:read")]
    async fn watch(
        &self,
        ctx: &Context,
        order_id: u64,
        updates: Sender<Order>,
    ) -> Result<(), Status>;
}

/// How often [`Orders::watch`] reads the order (the book is shared by replicas, possibly in
/// other processes: a read is how a replica learns of another's step).
pub const WATCH_PERIOD: Duration = Duration::from_millis(20);

/// The orders' state, in a [`Store`] every replica shares (their database): one record per
/// order (`order/{id}`), changed only by compare-and-set, so that replicas in other processes
/// never overwrite each other's steps.
#[derive(Clone)]
pub struct OrderBook {
    store: Arc<dyn Store>,
    /// One saga at a time per order within this process (across processes, the records'
    /// compare-and-set keeps them consistent).
    locks: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Default for OrderBook {
    /// A book in memory of its own.
    fn default() -> Self {
        OrderBook::open(Arc::new(MemoryStore::default()))
    }
}

impl std::fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderBook").finish_non_exhaustive()
    }
}

/// What a change of an order's record found.
enum Step {
    /// Go on with this order.
    Go(Order),
    /// The order is settled as this: answer it.
    Done(Order),
    /// A refusal was decided for it (by another run) while this one would have paid it.
    Refusing(String),
}

fn order_key(id: u64) -> String {
    format!("order/{id:020}")
}

fn is(o: &Order, state: OrderState) -> bool {
    o.state == state as i32
}

/// How often [`OrdersReplica::recover`] looks for abandoned orders.
pub const RECOVER_PERIOD: Duration = Duration::from_secs(1);

/// How long an order must have been seen unfinished before it is taken for abandoned: longer
/// than a customer's call with its retries (2 s deadline) and a few of its own repeats.
pub const ABANDONED: Duration = Duration::from_secs(5);

/// Whether `o`'s saga has not finished: it is pending, paid with a cancel decided, or settled and
/// its customer not yet told.
pub fn unfinished(o: &Order) -> bool {
    is(o, OrderState::Pending)
        || (is(o, OrderState::Paid) && o.reason == "cancelling")
        || !o.notified
}

impl OrderBook {
    /// A book over `store`.
    pub fn open(store: Arc<dyn Store>) -> OrderBook {
        OrderBook {
            store,
            locks: Arc::default(),
        }
    }

    fn lock_for(&self, id: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = super::lock(&self.locks);
        // Forget the locks nobody holds, now and then, so the map stays small.
        if locks.len() > 4096 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(id).or_default().clone()
    }

    async fn get(&self, id: u64) -> Result<Option<Order>, Status> {
        let key = order_key(id);
        transact(&*self.store, &[&key], |tx| tx.get::<Order>(&key)).await
    }

    /// Records `order` if it is new; otherwise returns the record.
    async fn create(&self, order: &Order) -> Result<Order, Status> {
        let key = order_key(order.order_id);
        transact(&*self.store, &[&key], |tx| match tx.get::<Order>(&key)? {
            Some(stored) => Ok(stored),
            None => {
                tx.put(&key, order);
                Ok(order.clone())
            }
        })
        .await
    }

    /// Records the decision to refuse `id` for `reason` (an earlier decision stands).
    async fn decide_refusal(&self, id: u64, reason: &str) -> Result<Step, Status> {
        let key = order_key(id);
        transact(&*self.store, &[&key], |tx| {
            let Some(mut stored) = tx.get::<Order>(&key)? else {
                return Err(Status::internal(format!("order {id} has no record")));
            };
            if !is(&stored, OrderState::Pending) {
                return Ok(Step::Done(stored));
            }
            if stored.reason.is_empty() {
                reason.clone_into(&mut stored.reason);
                tx.put(&key, &stored);
            }
            Ok(Step::Go(stored))
        })
        .await
    }

    /// Records the decision to cancel paid order `id` (its reason becomes `cancelling`).
    async fn decide_cancel(&self, id: u64) -> Result<Step, Status> {
        let key = order_key(id);
        transact(&*self.store, &[&key], |tx| {
            let Some(mut stored) = tx.get::<Order>(&key)? else {
                return Err(Status::not_found(format!("no order {id}")));
            };
            if is(&stored, OrderState::Pending) {
                return Err(Status::failed_precondition(format!(
                    "order {id} is still being placed"
                )));
            }
            if !is(&stored, OrderState::Paid) {
                return Ok(Step::Done(stored));
            }
            if stored.reason.is_empty() {
                "cancelling".clone_into(&mut stored.reason);
                tx.put(&key, &stored);
            }
            Ok(Step::Go(stored))
        })
        .await
    }

    /// Records `order` in its final state: a pending order settles; a paid one may only become
    /// cancelled; anything else answers the record as it is.
    async fn settle(&self, order: &Order) -> Result<Step, Status> {
        let key = order_key(order.order_id);
        transact(&*self.store, &[&key], |tx| {
            let stored = tx.get::<Order>(&key)?;
            let may = match &stored {
                None => true,
                Some(s) if is(s, OrderState::Pending) => {
                    if is(order, OrderState::Paid) && !s.reason.is_empty() {
                        return Ok(Step::Refusing(s.reason.clone()));
                    }
                    true
                }
                Some(s) => is(s, OrderState::Paid) && is(order, OrderState::Cancelled),
            };
            match stored {
                Some(s) if !may => Ok(Step::Done(s)),
                _ => {
                    tx.put(&key, order);
                    Ok(Step::Done(order.clone()))
                }
            }
        })
        .await
    }
}

impl OrderBook {
    /// Records that the customer was told how `order` ended (if it still is in that state).
    async fn mark_notified(&self, order: &Order) -> Result<(), Status> {
        let key = order_key(order.order_id);
        transact(&*self.store, &[&key], |tx| {
            if let Some(mut stored) = tx.get::<Order>(&key)? {
                if stored.state == order.state && !stored.notified {
                    stored.notified = true;
                    tx.put(&key, &stored);
                }
            }
            Ok(())
        })
        .await
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

    /// Records the order as final ([`OrderBook::settle`]), then tells the customer how it
    /// ended (as recorded: another run may have settled it first).
    async fn finish(
        &self,
        mut order: Order,
        state: OrderState,
        reason: &str,
    ) -> Result<Step, Status> {
        order.state = state as i32;
        order.notified = false;
        reason.clone_into(&mut order.reason);
        let step = self.book.settle(&order).await?;
        if let Step::Done(settled) = &step {
            self.tell(settled).await?;
        }
        Ok(step)
    }

    /// Tells the customer how a settled order ended (nothing for a pending one), then records on
    /// the order that it was told. Notices are recorded once per order and kind, so telling
    /// again is harmless: a run that settled an order and failed to tell is finished by the next
    /// repeat of it, or by [`OrdersReplica::recover`].
    async fn tell(&self, order: &Order) -> Result<(), Status> {
        let state = OrderState::try_from(order.state).unwrap_or(OrderState::Pending);
        let text = match state {
            OrderState::Pending => return Ok(()),
            OrderState::Paid => format!(
                "order {} paid: {} x {} for {} cents",
                order.order_id, order.quantity, order.sku, order.total_cents
            ),
            OrderState::Cancelled => format!("order {} cancelled and refunded", order.order_id),
            OrderState::Refused => format!("order {} refused: {}", order.order_id, order.reason),
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
        if !order.notified {
            self.book.mark_notified(order).await?;
        }
        Ok(())
    }

    /// Refuses `order` for `reason`: the decision is recorded first (a repeat of the order only
    /// finishes it, whatever the other services would answer by then), then whatever the order
    /// may hold is given back (both steps are `Ok` when there is nothing to give back, and a
    /// refund of an order never charged voids its charge for good), then the customer is told.
    async fn refuse(&self, order: Order, reason: &str) -> Result<Order, Status> {
        let order = match self.book.decide_refusal(order.order_id, reason).await? {
            Step::Go(stored) => Order {
                total_cents: order.total_cents.max(stored.total_cents),
                ..stored
            },
            Step::Done(settled) => {
                self.tell(&settled).await?;
                return Ok(settled);
            }
            Step::Refusing(_) => return Err(Status::internal("no refusal while refusing")),
        };
        let reason = order.reason.clone();
        let d = &self.down;
        d.inventory
            .release(order.order_id)
            .await
            .map_err(ServiceError::into_status)?;
        d.payments
            .refund(order.order_id)
            .await
            .map_err(ServiceError::into_status)?;
        match self.finish(order, OrderState::Refused, &reason).await? {
            Step::Done(settled) => Ok(settled),
            _ => Err(Status::internal("a refusal did not settle")),
        }
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
            // Its hold was released or expired before (an earlier run refused or gave it up):
            // a hold is never made twice for one order.
            Err(InventoryError::NoHold { .. }) => return self.refuse(order, "hold expired").await,
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
        match self.finish(order.clone(), OrderState::Paid, "").await? {
            Step::Done(settled) => Ok(settled),
            Step::Refusing(reason) => self.refuse(order, &reason).await,
            Step::Go(_) => Err(Status::internal("a payment did not settle")),
        }
    }
}

impl OrdersReplica {
    /// Finishes abandoned sagas, forever (spawn it): every `period` it lists the orders, and runs
    /// again each one it has seen unfinished at every sweep for at least [`ABANDONED`]. A run
    /// that fails is tried again at the next sweep.
    pub async fn recover(self, period: Duration) {
        let mut since: HashMap<u64, tokio::time::Instant> = HashMap::new();
        loop {
            tokio::time::sleep(period).await;
            let Ok(orders) = list::<_, Order>(&*self.book.store, "order/").await else {
                continue;
            };
            let now = tokio::time::Instant::now();
            let open: HashSet<u64> = orders
                .iter()
                .filter(|o| unfinished(o))
                .map(|o| o.order_id)
                .collect();
            since.retain(|id, _| open.contains(id));
            for &id in &open {
                let first = *since.entry(id).or_insert(now);
                if now.duration_since(first) < ABANDONED {
                    continue;
                }
                if let Err(e) = self.resume(id).await {
                    tracing::debug!(order = id, error = %e, "recovering an order failed; next sweep");
                }
            }
        }
    }

    /// Runs unfinished order `id` on from its record, as the caller's repeat would: a pending
    /// one through its saga, one whose cancel was decided through the cancel, a settled one whose
    /// customer was not told yet through the telling. A finished order (another run finished it
    /// meanwhile) is left as it is.
    async fn resume(&self, id: u64) -> Result<Order, Status> {
        let lock = self.book.lock_for(id);
        let guard = lock.lock().await;
        let Some(order) = self.book.get(id).await? else {
            return Err(Status::not_found(format!("no order {id}")));
        };
        if !unfinished(&order) {
            return Ok(order);
        }
        if is(&order, OrderState::Pending) {
            return self.saga(order).await;
        }
        if !(is(&order, OrderState::Paid) && order.reason == "cancelling") {
            // Settled, its customer not told yet.
            self.tell(&order).await?;
            return Ok(order);
        }
        // Paid, cancel decided: `cancel` takes the lock itself, and only goes on with a paid
        // order (a cancel never starts here: the order already carries the decision).
        drop(guard);
        self.cancel(&Context::new(), id).await
    }
}

impl Orders for OrdersReplica {
    async fn place(&self, ctx: &Context, request: PlaceOrder) -> Result<Order, Status> {
        check_owner(ctx, request.account_id)?;
        if request.quantity == 0 {
            return Err(Status::invalid_argument("an order needs at least one unit"));
        }
        let lock = self.book.lock_for(request.order_id);
        let _one_at_a_time = lock.lock().await;
        let fresh = Order {
            order_id: request.order_id,
            account_id: request.account_id,
            sku: request.sku,
            quantity: request.quantity,
            total_cents: 0,
            state: OrderState::Pending as i32,
            reason: String::new(),
            notified: false,
        };
        let order = self.book.create(&fresh).await?;
        if order.account_id != fresh.account_id
            || order.sku != fresh.sku
            || order.quantity != fresh.quantity
        {
            return Err(Status::already_exists(format!(
                "order {} exists with other contents",
                fresh.order_id
            )));
        }
        if !is(&order, OrderState::Pending) {
            // Settled by an earlier run, which may have failed to tell the customer.
            self.tell(&order).await?;
            return Ok(order);
        }
        self.saga(order).await
    }

    async fn cancel(&self, ctx: &Context, order_id: u64) -> Result<Order, Status> {
        if ctx.principal().is_some() {
            let order = self.book.get(order_id).await?;
            let order = order.ok_or_else(|| Status::not_found(format!("no order {order_id}")))?;
            // Another customer's order reads as not found: its existence is not the caller's.
            check_owner(ctx, order.account_id)
                .map_err(|_| Status::not_found(format!("no order {order_id}")))?;
        }
        let lock = self.book.lock_for(order_id);
        let _one_at_a_time = lock.lock().await;
        let order = match self.book.decide_cancel(order_id).await? {
            Step::Go(order) => order,
            Step::Done(settled) => {
                self.tell(&settled).await?;
                return Ok(settled);
            }
            Step::Refusing(_) => return Err(Status::internal("no refusal while cancelling")),
        };
        let d = &self.down;
        d.payments
            .refund(order_id)
            .await
            .map_err(ServiceError::into_status)?;
        d.inventory
            .release(order_id)
            .await
            .map_err(ServiceError::into_status)?;
        match self.finish(order, OrderState::Cancelled, "").await? {
            Step::Done(settled) => Ok(settled),
            _ => Err(Status::internal("a cancel did not settle")),
        }
    }

    async fn get(&self, ctx: &Context, order_id: u64) -> Result<Order, Status> {
        let order = self
            .book
            .get(order_id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no order {order_id}")))?;
        check_owner(ctx, order.account_id)
            .map_err(|_| Status::not_found(format!("no order {order_id}")))?;
        Ok(order)
    }

    async fn audit(&self) -> Result<OrderList, Status> {
        Ok(OrderList {
            orders: list(&*self.book.store, "order/").await?,
        })
    }

    async fn watch(
        &self,
        ctx: &Context,
        order_id: u64,
        mut updates: Sender<Order>,
    ) -> Result<(), Status> {
        // A replica shutting down ends its watches: the caller opens them again elsewhere.
        let mut draining = std::pin::pin!(ctx.draining());
        let mut last = None;
        loop {
            if let Some(order) = self.book.get(order_id).await? {
                check_owner(ctx, order.account_id)
                    .map_err(|_| Status::not_found(format!("no order {order_id}")))?;
                if last.as_ref() != Some(&order) {
                    // Fails once the caller has gone: the watch ends with it.
                    updates.send(&order).await?;
                    if order.state != OrderState::Pending as i32 {
                        return Ok(());
                    }
                    last = Some(order);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_PERIOD) => {}
                () = &mut draining => {
                    return Err(Status::unavailable("this replica is shutting down"));
                }
            }
        }
    }
}
