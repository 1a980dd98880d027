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

/// The lines of [`realistic_order`]: SKU, quantity, unit price in cents.
const REALISTIC_LINES: [(&str, u32, i64); 10] = [
    ("BOOK-9780262033848-HC", 1, 8995),
    ("ELEC-USBC-CABLE-2M-BLK", 3, 1299),
    ("HOME-MUG-350ML-STONE", 2, 1450),
    ("ELEC-CHARGER-65W-EU-WHT", 1, 3999),
    ("GROC-TEA-EARLGREY-100G", 4, 675),
    ("TOYS-PUZZLE-1000PC-MAP", 1, 2249),
    ("OFFC-NOTEBOOK-A5-DOT", 5, 899),
    ("APRL-SOCKS-WOOL-M-NAVY", 2, 1195),
    ("HOME-CANDLE-CEDAR-200G", 1, 1875),
    ("SPRT-BOTTLE-750ML-STEEL", 1, 2450),
];

/// The labels of [`realistic_order`].
const REALISTIC_LABELS: [(&str, &str); 7] = [
    ("channel", "mobile-ios"),
    ("currency", "EUR"),
    ("payment", "card-visa-4242"),
    ("promo", "SPRING24"),
    ("region", "eu-west-1"),
    ("shipping", "express"),
    ("warehouse", "AMS-2"),
];

/// The order of the load generator's order workload, numbered `id`: a customer, 10 lines of
/// distinct SKUs with quantities and prices in cents, and the optional fields set (7 labels and
/// a delivery note).
///
/// At id 1 234 567 it encodes to 599 bytes in Protobuf, 988 in JSON and 825 in MessagePack
/// (`tests::realistic_order_sizes` prints them and keeps these numbers true). The id is the only
/// part that varies: Protobuf is 595 bytes at id 0 and 606 at `u64::MAX`.
pub fn realistic_order(id: u64) -> Order {
    Order {
        id,
        customer: "Ada Lovelace <ada.lovelace@example.org>, cus_7Hq2LmX9".into(),
        items: REALISTIC_LINES
            .iter()
            .map(|&(sku, quantity, price_cents)| Item {
                sku: sku.into(),
                quantity,
                price_cents,
            })
            .collect(),
        labels: REALISTIC_LABELS
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        note: Some(
            "Please leave the parcel with the neighbour at number 12 if nobody answers the door."
                .into(),
        ),
    }
}

/// The three workloads of the codec benchmark: name and item count.
pub const SIZES: [(&str, usize); 3] = [("small", 1), ("4KiB", 80), ("64KiB", 1300)];

#[cfg(test)]
mod tests {
    use rpc_core::codec::Message;
    use rpc_core::CodecId;

    use super::{realistic_order, Order};

    /// The sizes in `realistic_order`'s doc comment, and Protobuf near 600 bytes.
    #[test]
    fn realistic_order_sizes() {
        let order = realistic_order(1_234_567);
        let size = |codec| {
            Order::codecs()
                .encode_to_bytes(codec, &order)
                .expect("every codec encodes an order")
                .len()
        };
        let sizes = [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK].map(size);
        eprintln!(
            "realistic order: protobuf {} B, json {} B, msgpack {} B",
            sizes[0], sizes[1], sizes[2]
        );
        assert!(
            (500..=700).contains(&sizes[0]),
            "protobuf: {} bytes",
            sizes[0]
        );
        assert_eq!(
            sizes,
            [599, 988, 825],
            "update realistic_order's doc comment"
        );
        let ends = [0, u64::MAX].map(|id| prost::Message::encoded_len(&realistic_order(id)));
        assert_eq!(ends, [595, 606], "update realistic_order's doc comment");
    }
}
