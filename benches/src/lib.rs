//! Shared pieces of the benchmarks: message types and workloads.
//!
//! Run the codec benchmark with `cargo bench -p benches --bench codecs`, then
//! `python3 benches/codec_overhead.py` for our layer's overhead over each library called directly.

use std::collections::BTreeMap;

pub mod systems;

/// An order line.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// Stock keeping unit.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// How many.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
    /// Unit price in cents.
    #[prost(int64, tag = "3")]
    pub price_cents: i64,
}

/// An order, in every codec: it derives prost and serde.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// Order id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Customer name.
    #[prost(string, tag = "2")]
    pub customer: String,
    /// Lines.
    #[prost(message, repeated, tag = "3")]
    pub items: Vec<Item>,
    /// Free-form labels.
    #[prost(btree_map = "string, string", tag = "4")]
    pub labels: BTreeMap<String, String>,
    /// Optional note.
    #[prost(string, optional, tag = "5")]
    pub note: Option<String>,
}

rpc_core::codec::impl_message!(Order, Item);

/// An echo service of [`Item`]s, for the call and allocation benchmarks.
#[rpc_core::service(name = "bench.Echo")]
pub trait Echo {
    /// Returns the item.
    async fn echo(&self, item: Item) -> Result<Item, rpc_core::Status>;
}

/// The [`Echo`] implementation: returns what it is given.
#[derive(Debug)]
pub struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, item: Item) -> Result<Item, rpc_core::Status> {
        Ok(item)
    }
}

/// The item the benchmarks send: one short string and two numbers.
pub fn item() -> Item {
    Item {
        sku: "sku-00012345".into(),
        quantity: 3,
        price_cents: 1999,
    }
}

/// An order with `items` lines: 1 line is about 64 bytes in Protobuf, 80 lines about 4 KiB,
/// 1300 lines about 64 KiB.
pub fn order(items: usize) -> Order {
    Order {
        id: 1_234_567,
        customer: "ada lovelace".into(),
        items: (0..items)
            .map(|i| Item {
                sku: format!("sku-{:08}", i * 7919),
                quantity: (i % 5 + 1) as u32,
                price_cents: 1999 + (i as i64 % 300),
            })
            .collect(),
        labels: [("channel", "web"), ("region", "eu")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        note: Some("leave at the door".into()),
    }
}

/// The three workloads of the codec benchmark: name and item count.
pub const SIZES: [(&str, usize); 3] = [("small", 1), ("4KiB", 80), ("64KiB", 1300)];
