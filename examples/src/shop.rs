//! The inventory service of the quickstart, defined once with `#[service]`: messages, a typed
//! error, the trait, and an in-memory implementation.
//!
//! `#[service]` generates [`InventoryClient`] and [`InventoryServer`] from the [`Inventory`] trait.

use std::collections::HashMap;
use std::sync::Mutex;

use rpc_core::{service, Context, ServiceError, Status};

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
            e @ InventoryError::UnknownSku { .. } => {
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

/// Stock levels of the shop's warehouse.
///
/// Orders reserve units; deliveries add them.
#[service(name = "shop.Inventory", version = "1")]
pub trait Inventory {
    /// How many units of `sku` are available.
    #[rpc(idempotent, timeout = "500ms")]
    async fn check(&self, sku: String) -> Result<StockLevel, InventoryError>;

    /// Holds units for an order. The caller's name comes from the `caller` metadata entry.
    #[rpc(timeout = "1s")]
    async fn reserve(
        &self,
        ctx: &Context,
        request: ReserveRequest,
    ) -> Result<Reservation, InventoryError>;

    /// Records a delivery. One-way: the warehouse scanner does not wait for an answer.
    #[rpc(one_way)]
    async fn restock(&self, delivery: Delivery) -> Result<(), Status>;
}

/// An [`Inventory`] kept in memory.
#[derive(Debug, Default)]
pub struct MemoryInventory {
    levels: Mutex<HashMap<String, u32>>,
}

impl MemoryInventory {
    /// An inventory holding these levels.
    pub fn with_stock<'a>(levels: impl IntoIterator<Item = (&'a str, u32)>) -> MemoryInventory {
        MemoryInventory {
            levels: Mutex::new(levels.into_iter().map(|(s, n)| (s.to_owned(), n)).collect()),
        }
    }

    fn levels(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding the lock leaves consistent data: every update is one insert.
        self.levels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inventory for MemoryInventory {
    async fn check(&self, sku: String) -> Result<StockLevel, InventoryError> {
        let available = *self
            .levels()
            .get(&sku)
            .ok_or_else(|| InventoryError::UnknownSku { sku: sku.clone() })?;
        Ok(StockLevel { sku, available })
    }

    async fn reserve(
        &self,
        ctx: &Context,
        request: ReserveRequest,
    ) -> Result<Reservation, InventoryError> {
        let mut levels = self.levels();
        let Some(available) = levels.get_mut(&request.sku) else {
            return Err(InventoryError::UnknownSku { sku: request.sku });
        };
        if *available < request.quantity {
            return Err(InventoryError::Insufficient {
                available: *available,
                sku: request.sku,
            });
        }
        *available -= request.quantity;
        Ok(Reservation {
            remaining: *available,
            order_id: request.order_id,
            sku: request.sku,
            quantity: request.quantity,
            reserved_by: ctx
                .metadata()
                .get_str("caller")
                .unwrap_or("anonymous")
                .to_owned(),
        })
    }

    async fn restock(&self, delivery: Delivery) -> Result<(), Status> {
        *self.levels().entry(delivery.sku).or_insert(0) += delivery.quantity;
        Ok(())
    }
}
