//! [`Message`]: a type that knows its codecs, and [`impl_message!`](crate::impl_message).

use crate::MessageCodecs;

/// A message type and its codecs. Implement it with [`impl_message!`](crate::impl_message).
pub trait Message: Sized + Send + 'static {
    /// The codecs this type supports.
    fn codecs() -> MessageCodecs<Self>;
}

/// Implements [`Message`] for concrete types, with the codecs [`message_codecs!`](crate::message_codecs) finds.
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
/// pub struct Order {
///     #[prost(uint64, tag = "1")]
///     pub id: u64,
/// }
/// rpc_codec::impl_message!(Order);
///
/// use rpc_codec::{CodecSet, Message};
/// assert_eq!(Order::codecs().supported().to_string(), "protobuf, json, msgpack");
/// ```
#[macro_export]
macro_rules! impl_message {
    ($($t:ty),+ $(,)?) => {
        $(
            impl $crate::Message for $t {
                fn codecs() -> $crate::MessageCodecs<Self> {
                    $crate::message_codecs!($t)
                }
            }
        )+
    };
}
