//! `shop.Inventory`: stock levels, and holds on stock for orders. A hold that is not confirmed
//! within its time to live (default 2 s) is released, so an order abandoned half-way (its orders
//! replica crashed and nobody retried it) never keeps stock away for good.
//!
//! `#[service]` generates [`InventoryClient`] and [`InventoryServer`] from the [`Inventory`]
//! trait; the quickstart uses them too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::{service, Context, ServiceError, Status};
use tokio::time::Instant;

/// How many of one SKU are in stock.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct StockLevel {
    /// Stock-keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units on hand and not reserved.
    #[prost(uint32, tag = "2")]
    pub available: u32,
}

/// A request to hold units for an order.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// Stock-keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Units delivered.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
}

/// Why the inventory refused: crosses the wire typed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
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
    /// it for the same order returns the hold it already has. The caller's name comes from the
    /// `caller` metadata entry.
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
    /// `Ok` if it holds nothing.
    #[rpc(idempotent, timeout = "1s")]
    async fn release(&self, order_id: u64) -> Result<(), InventoryError>;

    /// Records a delivery. One-way: the warehouse scanner does not wait for an answer.
    #[rpc(one_way)]
    async fn restock(&self, delivery: Delivery) -> Result<(), Status>;

    /// Every level and hold, for audits.
    #[rpc(idempotent, timeout = "2s")]
    async fn audit(&self) -> Result<InventoryAudit, Status>;
}

#[derive(Debug, Default, Clone, Copy)]
struct Level {
    initial: u64,
    restocked: u64,
    on_hand: u64,
    held: u64,
    sold: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Held(Instant),
    Confirmed,
    Released,
    Expired,
}

#[derive(Debug)]
struct Hold {
    sku: String,
    quantity: u32,
    by: String,
    state: HoldState,
}

#[derive(Debug, Default)]
struct State {
    levels: HashMap<String, Level>,
    holds: HashMap<u64, Hold>,
    underflows: u64,
    last_sweep: Option<Instant>,
}

impl State {
    /// Takes `n` from `v`, counting an underflow instead of going below zero.
    fn take(underflows: &mut u64, v: &mut u64, n: u64) {
        match v.checked_sub(n) {
            Some(left) => *v = left,
            None => *underflows += 1,
        }
    }

    /// Releases holds older than `ttl`, at most every `ttl / 10`.
    fn expire(&mut self, ttl: Duration, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < ttl / 10)
        {
            return;
        }
        self.last_sweep = Some(now);
        let State {
            levels,
            holds,
            underflows,
            ..
        } = self;
        for hold in holds.values_mut() {
            if let HoldState::Held(at) = hold.state {
                if now.duration_since(at) >= ttl {
                    hold.state = HoldState::Expired;
                    if let Some(level) = levels.get_mut(&hold.sku) {
                        State::take(underflows, &mut level.held, u64::from(hold.quantity));
                    }
                }
            }
        }
    }
}

/// An [`Inventory`] kept in memory. Clones share the same stock: the replicas of the shop's
/// inventory are clones of one value, as replicas of a real service share its database.
#[derive(Debug, Clone)]
pub struct MemoryInventory {
    state: Arc<Mutex<State>>,
    hold_ttl: Duration,
}

impl Default for MemoryInventory {
    fn default() -> Self {
        MemoryInventory::with_stock([])
    }
}

impl MemoryInventory {
    /// An inventory holding these levels; holds expire after 2 s.
    pub fn with_stock<'a>(levels: impl IntoIterator<Item = (&'a str, u32)>) -> MemoryInventory {
        let levels = levels
            .into_iter()
            .map(|(sku, n)| {
                let n = u64::from(n);
                let level = Level {
                    initial: n,
                    on_hand: n,
                    ..Level::default()
                };
                (sku.to_owned(), level)
            })
            .collect();
        MemoryInventory {
            state: Arc::new(Mutex::new(State {
                levels,
                ..State::default()
            })),
            hold_ttl: Duration::from_secs(2),
        }
    }

    /// How long a hold lasts unconfirmed.
    #[must_use]
    pub fn hold_ttl(mut self, ttl: Duration) -> MemoryInventory {
        self.hold_ttl = ttl;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = super::lock(&self.state);
        s.expire(self.hold_ttl, Instant::now());
        s
    }
}

fn available(level: &Level) -> u32 {
    u32::try_from(level.on_hand.saturating_sub(level.held)).unwrap_or(u32::MAX)
}

impl Inventory for MemoryInventory {
    async fn check(&self, sku: String) -> Result<StockLevel, InventoryError> {
        let s = self.state();
        let level = s
            .levels
            .get(&sku)
            .ok_or_else(|| InventoryError::UnknownSku { sku: sku.clone() })?;
        Ok(StockLevel {
            available: available(level),
            sku,
        })
    }

    async fn reserve(
        &self,
        ctx: &Context,
        request: ReserveRequest,
    ) -> Result<Reservation, InventoryError> {
        let mut s = self.state();
        let s = &mut *s;
        let Some(level) = s.levels.get_mut(&request.sku) else {
            return Err(InventoryError::UnknownSku { sku: request.sku });
        };
        if let Some(hold) = s.holds.get(&request.order_id) {
            if matches!(hold.state, HoldState::Held(_) | HoldState::Confirmed) {
                // A repeat (a retry after a lost answer, or on another replica): the same hold.
                return Ok(Reservation {
                    order_id: request.order_id,
                    sku: hold.sku.clone(),
                    quantity: hold.quantity,
                    remaining: available(level),
                    reserved_by: hold.by.clone(),
                });
            }
        }
        let free = available(level);
        if free < request.quantity {
            return Err(InventoryError::Insufficient {
                available: free,
                sku: request.sku,
            });
        }
        level.held += u64::from(request.quantity);
        let by = ctx
            .metadata()
            .get_str("caller")
            .unwrap_or("anonymous")
            .to_owned();
        let remaining = available(level);
        s.holds.insert(
            request.order_id,
            Hold {
                sku: request.sku.clone(),
                quantity: request.quantity,
                by: by.clone(),
                state: HoldState::Held(Instant::now()),
            },
        );
        Ok(Reservation {
            remaining,
            order_id: request.order_id,
            sku: request.sku,
            quantity: request.quantity,
            reserved_by: by,
        })
    }

    async fn confirm(&self, order_id: u64) -> Result<(), InventoryError> {
        let mut s = self.state();
        let State {
            levels,
            holds,
            underflows,
            ..
        } = &mut *s;
        let Some(hold) = holds.get_mut(&order_id) else {
            return Err(InventoryError::NoHold { order_id });
        };
        match hold.state {
            HoldState::Confirmed => Ok(()),
            HoldState::Released | HoldState::Expired => Err(InventoryError::NoHold { order_id }),
            HoldState::Held(_) => {
                let n = u64::from(hold.quantity);
                let level = levels.entry(hold.sku.clone()).or_default();
                State::take(underflows, &mut level.held, n);
                State::take(underflows, &mut level.on_hand, n);
                level.sold += n;
                hold.state = HoldState::Confirmed;
                Ok(())
            }
        }
    }

    async fn release(&self, order_id: u64) -> Result<(), InventoryError> {
        let mut s = self.state();
        let State {
            levels,
            holds,
            underflows,
            ..
        } = &mut *s;
        let Some(hold) = holds.get_mut(&order_id) else {
            return Ok(());
        };
        let n = u64::from(hold.quantity);
        let level = levels.entry(hold.sku.clone()).or_default();
        match hold.state {
            HoldState::Held(_) => State::take(underflows, &mut level.held, n),
            HoldState::Confirmed => {
                State::take(underflows, &mut level.sold, n);
                level.on_hand += n;
            }
            HoldState::Released | HoldState::Expired => return Ok(()),
        }
        hold.state = HoldState::Released;
        Ok(())
    }

    async fn restock(&self, delivery: Delivery) -> Result<(), Status> {
        let mut s = self.state();
        let level = s.levels.entry(delivery.sku).or_default();
        level.restocked += u64::from(delivery.quantity);
        level.on_hand += u64::from(delivery.quantity);
        Ok(())
    }

    async fn audit(&self) -> Result<InventoryAudit, Status> {
        let s = self.state();
        let skus: BTreeMap<_, _> = s.levels.iter().collect();
        let holds: BTreeMap<_, _> = s.holds.iter().collect();
        Ok(InventoryAudit {
            skus: skus
                .into_iter()
                .map(|(sku, l)| SkuAudit {
                    sku: sku.clone(),
                    initial: l.initial,
                    restocked: l.restocked,
                    on_hand: l.on_hand,
                    held: l.held,
                    sold: l.sold,
                })
                .collect(),
            holds: holds
                .into_iter()
                .map(|(&order_id, h)| HoldAudit {
                    order_id,
                    sku: h.sku.clone(),
                    quantity: h.quantity,
                    state: match h.state {
                        HoldState::Held(_) => "held",
                        HoldState::Confirmed => "confirmed",
                        HoldState::Released => "released",
                        HoldState::Expired => "expired",
                    }
                    .to_owned(),
                })
                .collect(),
            underflows: s.underflows,
        })
    }
}
