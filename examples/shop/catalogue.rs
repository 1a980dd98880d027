//! `shop.Catalogue`: products, prices, search by name.

use std::sync::Arc;

use rpc_core::{service, Status};

/// A product.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Product {
    /// Stock-keeping unit: the key in inventory and orders.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// Name shown to customers.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Price of one unit, in cents.
    #[prost(uint64, tag = "3")]
    pub price_cents: u64,
}

/// Products matching a search.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Products {
    /// In catalogue order.
    #[prost(message, repeated, tag = "1")]
    pub products: Vec<Product>,
}

/// The product catalogue. Read-only for callers.
#[service(name = "shop.Catalogue", version = "1")]
pub trait Catalogue {
    /// Products whose name contains every word of `query` (case-insensitive); all of them for
    /// an empty query.
    #[rpc(idempotent, timeout = "500ms")]
    async fn search(&self, query: String) -> Result<Products, Status>;

    /// The product `sku`; `NotFound` if the catalogue does not carry it.
    #[rpc(idempotent, timeout = "500ms")]
    async fn get(&self, sku: String) -> Result<Product, Status>;
}

/// [`Catalogue`] over a fixed list; clones share it.
#[derive(Debug, Clone)]
pub struct MemoryCatalogue {
    products: Arc<[Product]>,
}

impl MemoryCatalogue {
    /// A catalogue of these products.
    pub fn new(products: impl IntoIterator<Item = Product>) -> MemoryCatalogue {
        MemoryCatalogue {
            products: products.into_iter().collect(),
        }
    }
}

impl Catalogue for MemoryCatalogue {
    async fn search(&self, query: String) -> Result<Products, Status> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let products = self
            .products
            .iter()
            .filter(|p| {
                let name = p.name.to_lowercase();
                words.iter().all(|w| name.contains(w.as_str()))
            })
            .cloned()
            .collect();
        Ok(Products { products })
    }

    async fn get(&self, sku: String) -> Result<Product, Status> {
        self.products
            .iter()
            .find(|p| p.sku == sku)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no product {sku:?}")))
    }
}
