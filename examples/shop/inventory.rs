//! `shop.Inventory`: stock levels, and holds on stock for orders. A hold that is not confirmed
//! within its time to live (default 2 s) expires, so an order abandoned half-way (its orders
//! replica crashed and nobody retried it) never keeps stock away for good. The stock lives in a
//! [`Store`], which the replicas share.
//!
//! `#[service]` generates [`InventoryClient`] and [`InventoryServer`] from the [`Inventory`]
//! trait; the quickstart uses them too.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::{service, Context, Sender, ServiceError, Status, Streaming};

use super::store::{list, transact, MemoryStore, Store};

/// How many of one SKU are in stock.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct StockLevel {
    /// Stock-keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units on hand and not reserved.
    #[prost(uint32, tag = "2")]
    pub available: u32,
}

/// A request to hold units for an order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct ReserveRequest {
    /// The order the units are for.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// Stock-keeping unit.
    #[prost(string, tag = "2")]
    pub sku: String,
    /// Units to hold.
    #[prost(uint32, tag = "3")]
    pub quantity: u32,
}

/// Units held for an order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Reservation {
    /// The order the units are for.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// Stock-keeping unit.
    #[prost(string, tag = "2")]
    pub sku: String,
    /// Units held.
    #[prost(uint32, tag = "3")]
    pub quantity: u32,
    /// Units left after this reservation.
    #[prost(uint32, tag = "4")]
    pub remaining: u32,
    /// Who asked, from the call's metadata.
    #[prost(string, tag = "5")]
    pub reserved_by: String,
}

/// Units arriving at the warehouse.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Delivery {
    /// Stock-keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units delivered.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
}

/// Why the inventory refused: crosses the wire typed.
#[derive(Debug, serde::Serialize, serde::Deserialize, rpc_core::Schema)]
pub enum InventoryError {
    /// The SKU is not carried.
    UnknownSku {
        /// The SKU asked for.
        sku: String,
    },
    /// Fewer units than asked for are available.
    Insufficient {
        /// The SKU asked for.
        sku: String,
        /// Units available.
        available: u32,
    },
    /// The order holds nothing: it never reserved, or its hold expired and was released.
    NoHold {
        /// The order.
        order_id: u64,
    },
    /// The call failed for a reason of the transport or the server.
    #[serde(skip)]
    Rpc(Status),
}

impl std::fmt::Display for InventoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InventoryError::UnknownSku { sku } => write!(f, "unknown SKU {sku:?}"),
            InventoryError::Insufficient { sku, available } => {
                write!(f, "only {available} of {sku:?} available")
            }
            InventoryError::NoHold { order_id } => write!(f, "order {order_id} holds no stock"),
            InventoryError::Rpc(status) => write!(f, "{status}"),
        }
    }
}

impl std::error::Error for InventoryError {}

impl From<Status> for InventoryError {
    fn from(status: Status) -> Self {
        InventoryError::Rpc(status)
    }
}

impl ServiceError for InventoryError {
    fn into_status(self) -> Status {
        match self {
            InventoryError::Rpc(status) => status,
            e @ (InventoryError::UnknownSku { .. } | InventoryError::NoHold { .. }) => {
                Status::not_found(e.to_string()).with_details(&e)
            }
            e => Status::failed_precondition(e.to_string()).with_details(&e),
        }
    }

    fn from_status(status: Status) -> Self {
        match status.details() {
            Ok(Some(e)) => e,
            _ => InventoryError::Rpc(status),
        }
    }
}

/// One SKU's stock as [`Inventory::audit`] reports it.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct SkuAudit {
    /// Stock-keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units when the inventory was created.
    #[prost(uint64, tag = "2")]
    pub initial: u64,
    /// Units delivered since.
    #[prost(uint64, tag = "3")]
    pub restocked: u64,
    /// Units in the warehouse: initial + restocked − sold.
    #[prost(uint64, tag = "4")]
    pub on_hand: u64,
    /// Units of `on_hand` held for orders not yet confirmed.
    #[prost(uint64, tag = "5")]
    pub held: u64,
    /// Units sold: held, then confirmed, and not returned.
    #[prost(uint64, tag = "6")]
    pub sold: u64,
}

/// A hold as [`Inventory::audit`] reports it.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct HoldAudit {
    /// The order.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// Stock-keeping unit.
    #[prost(string, tag = "2")]
    pub sku: String,
    /// Units.
    #[prost(uint32, tag = "3")]
    pub quantity: u32,
    /// `held`, `confirmed`, `released` or `expired`.
    #[prost(string, tag = "4")]
    pub state: String,
}

/// Everything the inventory holds, for checking invariants.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct InventoryAudit {
    /// Per SKU, sorted.
    #[prost(message, repeated, tag = "1")]
    pub skus: Vec<SkuAudit>,
    /// Per order, sorted by order id.
    #[prost(message, repeated, tag = "2")]
    pub holds: Vec<HoldAudit>,
    /// Times an update would have taken a level below zero and was refused (always 0 unless
    /// there is a bug).
    #[prost(uint64, tag = "3")]
    pub underflows: u64,
}

/// Stock levels of the shop's warehouse.
///
/// Orders hold units ([`reserve`](Inventory::reserve)), then [`confirm`](Inventory::confirm) the
/// sale or [`release`](Inventory::release) the units. Every method that changes stock is
/// idempotent by its order id.
#[service(name = "shop.Inventory", version = "2")]
pub trait Inventory {
    /// How many units of `sku` are available (on hand and not held).
    #[rpc(idempotent, timeout = "500ms")]
    async fn check(&self, sku: String) -> Result<StockLevel, InventoryError>;

    /// Holds units for an order until it is confirmed, released, or the hold expires. Repeating
    /// it for the same order returns the hold it already has; once that hold was released or
    /// expired (or the order released before it held anything), `NoHold`: an order holds stock
    /// once. The caller's name comes from the `caller` metadata entry.
    #[rpc(idempotent, timeout = "1s")]
    async fn reserve(
        &self,
        ctx: &Context,
        request: ReserveRequest,
    ) -> Result<Reservation, InventoryError>;

    /// Turns an order's hold into a sale. `NoHold` if it has none (never reserved, released or
    /// expired); a repeat of a confirmed order is `Ok`.
    #[rpc(idempotent, timeout = "1s")]
    async fn confirm(&self, order_id: u64) -> Result<(), InventoryError>;

    /// Gives back what an order holds or bought (a cancelled order's units return to stock).
    /// `Ok` if it holds nothing; the order can then hold nothing any more.
    #[rpc(idempotent, timeout = "1s")]
    async fn release(&self, order_id: u64) -> Result<(), InventoryError>;

    /// Records a delivery. One-way: the warehouse scanner does not wait for an answer.
    #[rpc(one_way)]
    async fn restock(&self, delivery: Delivery) -> Result<(), Status>;

    /// Every level and hold, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<InventoryAudit, Status>;

    /// Watches a SKU's available units: its level now, then every change, for as long as the
    /// caller reads (a server stream; the call's deadline, if any, ends it). Changes made by
    /// other replicas of the store show within `WATCH_PERIOD`. `Unavailable` when the replica
    /// shuts down meanwhile: open the watch again.
    #[rpc(idempotent)]
    async fn watch(
        &self,
        ctx: &Context,
        sku: String,
        levels: Sender<StockLevel>,
    ) -> Result<(), InventoryError>;

    /// Records many deliveries in one call (a client stream: the scanner sends them as it reads
    /// them, and the reply sums them up once it ends the stream).
    async fn restock_many(&self, deliveries: Streaming<Delivery>) -> Result<Restocked, Status>;
}

/// How often [`Inventory::watch`] looks at the level (the store may be shared by replicas).
pub const WATCH_PERIOD: Duration = Duration::from_millis(50);

/// What [`Inventory::restock_many`] recorded.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Restocked {
    /// Deliveries recorded.
    #[prost(uint32, tag = "1")]
    pub deliveries: u32,
    /// Units they brought, all SKUs together.
    #[prost(uint64, tag = "2")]
    pub units: u64,
}

/// A SKU's record (`stock/{sku}`).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Level {
    initial: u64,
    restocked: u64,
    on_hand: u64,
    held: u64,
    sold: u64,
    /// Updates that would have gone below zero (a bug if ever non-zero).
    underflows: u64,
}

impl Level {
    fn available(&self) -> u32 {
        u32::try_from(self.on_hand.saturating_sub(self.held)).unwrap_or(u32::MAX)
    }

    /// Takes `n` from the field `pick` chooses, counting an underflow instead of going below 0.
    fn take(&mut self, n: u64, pick: fn(&mut Level) -> &mut u64) {
        let v = pick(self);
        match v.checked_sub(n) {
            Some(left) => *v = left,
            None => self.underflows += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum HoldState {
    Held,
    Confirmed,
    Released,
    Expired,
}

impl HoldState {
    fn name(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Confirmed => "confirmed",
            HoldState::Released => "released",
            HoldState::Expired => "expired",
        }
    }
}

/// An order's hold (`hold/{order}`); while it is `Held`, `pending/{order}` names it too, so
/// that the expiry sweep lists only live holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hold {
    order_id: u64,
    sku: String,
    quantity: u32,
    by: String,
    state: HoldState,
    /// Milliseconds since the Unix epoch (a wall clock: replicas in other processes read it).
    expires_at_ms: u64,
}

fn stock_key(sku: &str) -> String {
    format!("stock/{sku}")
}

fn hold_key(order_id: u64) -> String {
    format!("hold/{order_id:020}")
}

fn pending_key(order_id: u64) -> String {
    format!("pending/{order_id:020}")
}

/// Milliseconds on the clock holds expire by.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An [`Inventory`] whose stock lives in a [`Store`]: replicas over the same store share it, as
/// replicas of a real service share its database. [`Warehouse::with_stock`] makes one over a
/// store of its own in memory; clones share it.
#[derive(Clone)]
pub struct Warehouse {
    store: Arc<dyn Store>,
    hold_ttl: Duration,
    clock: Clock,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("hold_ttl", &self.hold_ttl)
            .finish_non_exhaustive()
    }
}

impl Warehouse {
    /// A warehouse over `store` (its stock as it is there); holds expire after 2 s.
    pub fn open(store: Arc<dyn Store>) -> Warehouse {
        Warehouse {
            store,
            hold_ttl: Duration::from_secs(2),
            clock: Arc::new(wall_clock),
        }
    }

    /// A warehouse in memory holding these levels.
    pub fn with_stock<'a>(levels: impl IntoIterator<Item = (&'a str, u32)>) -> Warehouse {
        let store = MemoryStore::default();
        for (sku, n) in levels {
            store.seed(&stock_key(sku), &Warehouse::level_of(n));
        }
        Warehouse::open(Arc::new(store))
    }

    fn level_of(n: u32) -> Level {
        Level {
            initial: u64::from(n),
            on_hand: u64::from(n),
            ..Level::default()
        }
    }

    /// Records these levels as the initial stock of SKUs the store does not know yet (a
    /// replica that starts again finds the stock as it was).
    ///
    /// # Errors
    /// The store's.
    pub async fn stock_if_new<'a>(
        &self,
        levels: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<(), Status> {
        for (sku, n) in levels {
            let key = stock_key(sku);
            transact(&*self.store, &[&key], |tx| {
                if tx.get::<Level>(&key)?.is_none() {
                    tx.put(&key, &Warehouse::level_of(n));
                }
                Ok::<_, Status>(())
            })
            .await?;
        }
        Ok(())
    }

    /// How long a hold lasts unconfirmed.
    #[must_use]
    pub fn hold_ttl(mut self, ttl: Duration) -> Warehouse {
        self.hold_ttl = ttl;
        self
    }

    /// The clock holds expire by, in milliseconds (default: the wall clock, which replicas in
    /// other processes share; tests give one that follows tokio's paused clock).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Warehouse {
        self.clock = clock;
        self
    }

    /// Releases every hold past its time: run it periodically on at least one replica (every
    /// replica may: the store keeps concurrent sweeps from releasing a hold twice). Returns
    /// how many it released.
    ///
    /// # Errors
    /// The store's.
    pub async fn expire_holds(&self) -> Result<usize, Status> {
        let now = (self.clock)();
        let mut expired = 0;
        for pending in list::<_, Hold>(&*self.store, "pending/").await? {
            if pending.expires_at_ms > now {
                continue;
            }
            let (h, p, l) = (
                hold_key(pending.order_id),
                pending_key(pending.order_id),
                stock_key(&pending.sku),
            );
            expired += transact(&*self.store, &[&h, &p, &l], |tx| {
                let Some(mut hold) = tx.get::<Hold>(&h)? else {
                    tx.delete(&p);
                    return Ok::<_, Status>(0);
                };
                if hold.state != HoldState::Held || hold.expires_at_ms > now {
                    return Ok(0);
                }
                let mut level = tx.get::<Level>(&l)?.unwrap_or_default();
                level.take(u64::from(hold.quantity), |l| &mut l.held);
                hold.state = HoldState::Expired;
                tx.put(&l, &level);
                tx.put(&h, &hold);
                tx.delete(&p);
                Ok(1)
            })
            .await?;
        }
        Ok(expired)
    }

    /// Runs [`expire_holds`](Self::expire_holds) every `period` until dropped (spawn it).
    pub async fn sweep(self, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(status) = self.expire_holds().await {
                tracing::warn!(%status, "expiring holds failed; trying again");
            }
        }
    }

    /// The hold of `order_id`, read first to learn its SKU.
    async fn hold(&self, order_id: u64) -> Result<Option<Hold>, InventoryError> {
        let Some(found) = self.store.get(&hold_key(order_id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&found.value)
            .map(Some)
            .map_err(|e| Status::internal(format!("hold of order {order_id}: {e}")).into())
    }
}

impl Inventory for Warehouse {
    async fn check(&self, sku: String) -> Result<StockLevel, InventoryError> {
        let Some(found) = self.store.get(&stock_key(&sku)).await? else {
            return Err(InventoryError::UnknownSku { sku });
        };
        let level: Level = serde_json::from_slice(&found.value)
            .map_err(|e| Status::internal(format!("stock of {sku:?}: {e}")))?;
        Ok(StockLevel {
            available: level.available(),
            sku,
        })
    }

    async fn reserve(
        &self,
        ctx: &Context,
        request: ReserveRequest,
    ) -> Result<Reservation, InventoryError> {
        let by = ctx
            .metadata()
            .get_str("caller")
            .unwrap_or("anonymous")
            .to_owned();
        let id = request.order_id;
        let (l, h, p) = (stock_key(&request.sku), hold_key(id), pending_key(id));
        let now = (self.clock)();
        let ttl = u64::try_from(self.hold_ttl.as_millis()).unwrap_or(u64::MAX);
        transact(&*self.store, &[&l, &h, &p], |tx| {
            let Some(mut level) = tx.get::<Level>(&l)? else {
                return Err(InventoryError::UnknownSku {
                    sku: request.sku.clone(),
                });
            };
            if let Some(hold) = tx.get::<Hold>(&h)? {
                if matches!(hold.state, HoldState::Released | HoldState::Expired) {
                    // Given back before: an order never holds stock twice (a late repeat must
                    // not hold stock for an order that was refused or cancelled meanwhile).
                    return Err(InventoryError::NoHold { order_id: id });
                }
                // A repeat (a retry after a lost answer, or on another replica): the same hold.
                return Ok(Reservation {
                    order_id: id,
                    sku: hold.sku,
                    quantity: hold.quantity,
                    remaining: level.available(),
                    reserved_by: hold.by,
                });
            }
            let free = level.available();
            if free < request.quantity {
                return Err(InventoryError::Insufficient {
                    available: free,
                    sku: request.sku.clone(),
                });
            }
            level.held += u64::from(request.quantity);
            let hold = Hold {
                order_id: id,
                sku: request.sku.clone(),
                quantity: request.quantity,
                by: by.clone(),
                state: HoldState::Held,
                expires_at_ms: now.saturating_add(ttl),
            };
            tx.put(&l, &level);
            tx.put(&h, &hold);
            tx.put(&p, &hold);
            Ok(Reservation {
                remaining: level.available(),
                order_id: id,
                sku: request.sku.clone(),
                quantity: request.quantity,
                reserved_by: by.clone(),
            })
        })
        .await
    }

    async fn confirm(&self, order_id: u64) -> Result<(), InventoryError> {
        let Some(hold) = self.hold(order_id).await? else {
            return Err(InventoryError::NoHold { order_id });
        };
        let (h, p, l) = (
            hold_key(order_id),
            pending_key(order_id),
            stock_key(&hold.sku),
        );
        let now = (self.clock)();
        let outcome = transact(&*self.store, &[&h, &p, &l], |tx| {
            let Some(mut hold) = tx.get::<Hold>(&h)? else {
                return Ok::<_, InventoryError>(false);
            };
            let n = u64::from(hold.quantity);
            match hold.state {
                HoldState::Confirmed => return Ok(true),
                HoldState::Released | HoldState::Expired => return Ok(false),
                HoldState::Held => {}
            }
            let mut level = tx.get::<Level>(&l)?.unwrap_or_default();
            level.take(n, |l| &mut l.held);
            let confirmed = now < hold.expires_at_ms;
            if confirmed {
                level.take(n, |l| &mut l.on_hand);
                level.sold += n;
                hold.state = HoldState::Confirmed;
            } else {
                // Past its time and not swept yet: it expires now, as the sweep would have.
                hold.state = HoldState::Expired;
            }
            tx.put(&l, &level);
            tx.put(&h, &hold);
            tx.delete(&p);
            Ok(confirmed)
        })
        .await?;
        if outcome {
            Ok(())
        } else {
            Err(InventoryError::NoHold { order_id })
        }
    }

    async fn release(&self, order_id: u64) -> Result<(), InventoryError> {
        let hold = loop {
            if let Some(hold) = self.hold(order_id).await? {
                break hold;
            }
            // Nothing held: record the order as given back, so that a reservation arriving late
            // (delayed in the network, or from another replica) cannot hold stock for it. If a
            // hold appeared meanwhile, release that instead.
            let h = hold_key(order_id);
            let tombstoned = transact(&*self.store, &[&h], |tx| {
                if tx.get::<Hold>(&h)?.is_some() {
                    return Ok::<_, InventoryError>(false);
                }
                let tombstone = Hold {
                    order_id,
                    sku: String::new(),
                    quantity: 0,
                    by: String::new(),
                    state: HoldState::Released,
                    expires_at_ms: 0,
                };
                tx.put(&h, &tombstone);
                Ok(true)
            })
            .await?;
            if tombstoned {
                return Ok(());
            }
        };
        let (h, p, l) = (
            hold_key(order_id),
            pending_key(order_id),
            stock_key(&hold.sku),
        );
        transact(&*self.store, &[&h, &p, &l], |tx| {
            let Some(mut hold) = tx.get::<Hold>(&h)? else {
                return Ok::<_, InventoryError>(());
            };
            let n = u64::from(hold.quantity);
            let mut level = tx.get::<Level>(&l)?.unwrap_or_default();
            match hold.state {
                HoldState::Held => level.take(n, |l| &mut l.held),
                HoldState::Confirmed => {
                    level.take(n, |l| &mut l.sold);
                    level.on_hand += n;
                }
                HoldState::Released | HoldState::Expired => return Ok(()),
            }
            hold.state = HoldState::Released;
            tx.put(&l, &level);
            tx.put(&h, &hold);
            tx.delete(&p);
            Ok(())
        })
        .await
    }

    async fn restock(&self, delivery: Delivery) -> Result<(), Status> {
        let l = stock_key(&delivery.sku);
        let n = u64::from(delivery.quantity);
        transact(&*self.store, &[&l], |tx| {
            let mut level = tx.get::<Level>(&l)?.unwrap_or_default();
            level.restocked += n;
            level.on_hand += n;
            tx.put(&l, &level);
            Ok::<_, Status>(())
        })
        .await
    }

    async fn watch(
        &self,
        ctx: &Context,
        sku: String,
        mut levels: Sender<StockLevel>,
    ) -> Result<(), InventoryError> {
        let mut draining = std::pin::pin!(ctx.draining());
        let mut last = None;
        loop {
            let level = self.check(sku.clone()).await?;
            if last != Some(level.available) {
                last = Some(level.available);
                // Fails once the caller has gone: the watch ends with it.
                levels.send(&level).await?;
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_PERIOD) => {}
                () = &mut draining => {
                    return Err(Status::unavailable("this replica is shutting down").into());
                }
            }
        }
    }

    async fn restock_many(&self, mut deliveries: Streaming<Delivery>) -> Result<Restocked, Status> {
        let mut done = Restocked::default();
        while let Some(delivery) = deliveries.message().await? {
            done.units += u64::from(delivery.quantity);
            self.restock(delivery).await?;
            done.deliveries += 1;
        }
        Ok(done)
    }

    async fn audit(&self) -> Result<InventoryAudit, Status> {
        let levels = self.store.list("stock/").await?;
        let mut skus = Vec::with_capacity(levels.len());
        let mut underflows = 0;
        for (key, bytes) in levels {
            let l: Level = serde_json::from_slice(&bytes)
                .map_err(|e| Status::internal(format!("record {key:?}: {e}")))?;
            underflows += l.underflows;
            skus.push(SkuAudit {
                sku: key.trim_start_matches("stock/").to_owned(),
                initial: l.initial,
                restocked: l.restocked,
                on_hand: l.on_hand,
                held: l.held,
                sold: l.sold,
            });
        }
        let holds = list::<_, Hold>(&*self.store, "hold/")
            .await?
            .into_iter()
            .map(|h| HoldAudit {
                order_id: h.order_id,
                sku: h.sku,
                quantity: h.quantity,
                state: h.state.name().to_owned(),
            })
            .collect();
        Ok(InventoryAudit {
            skus,
            holds,
            underflows,
        })
    }
}
