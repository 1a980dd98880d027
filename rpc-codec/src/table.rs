//! [`MessageCodecs`]: the table of codecs one message type supports.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::{CodecError, CodecId, CodecSet};

type EncodeFn<T> = fn(&T, &mut BytesMut) -> Result<(), CodecError>;
type DecodeFn<T> = fn(Bytes) -> Result<T, CodecError>;

/// How to write and read one message type in one codec.
pub struct Entry<T> {
    pub(crate) encode: EncodeFn<T>,
    pub(crate) decode: DecodeFn<T>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Entry<T> {}

impl<T> fmt::Debug for Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entry")
    }
}

/// The codecs one message type supports, and how to use each: a small table of function
/// pointers, built for a concrete type by [`message_codecs!`](crate::message_codecs).
///
/// A type deriving both `prost::Message` and serde's traits works in all three codecs; a
/// serde-only type in JSON and MessagePack; a prost-only type in Protobuf; `bytes::Bytes` only
/// raw. Asking for anything else is a [`CodecError::Unsupported`], never a panic.
///
/// ```
/// use rpc_codec::{message_codecs, CodecError, CodecId};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Note { text: String }
///
/// let codecs = message_codecs!(Note);
/// let note = Note { text: "hi".into() };
/// let json = codecs.encode_to_bytes(CodecId::JSON, &note).unwrap();
/// assert_eq!(codecs.decode(CodecId::JSON, json).unwrap(), note);
/// assert!(matches!(
///     codecs.encode_to_bytes(CodecId::PROTOBUF, &note),
///     Err(CodecError::Unsupported { .. })
/// ));
/// ```
pub struct MessageCodecs<T> {
    entries: [Option<Entry<T>>; 4],
}

impl<T> Clone for MessageCodecs<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MessageCodecs<T> {}

impl<T> fmt::Debug for MessageCodecs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageCodecs")
            .field("type", &std::any::type_name::<T>())
            .field("supported", &self.supported())
            .finish()
    }
}

impl MessageCodecs<()> {
    /// The table of `()`, the message of methods that take no arguments or return nothing: every
    /// codec writes an empty body and reads any body as `()`.
    ///
    /// ```
    /// use rpc_codec::{CodecId, CodecSet, MessageCodecs};
    /// let unit = MessageCodecs::unit();
    /// assert_eq!(unit.supported(), CodecSet::ALL);
    /// assert!(unit.encode_to_bytes(CodecId::PROTOBUF, &()).unwrap().is_empty());
    /// ```
    pub const fn unit() -> MessageCodecs<()> {
        let entry = Entry {
            encode: |_, _| Ok(()),
            decode: |_| Ok(()),
        };
        MessageCodecs {
            entries: [Some(entry); 4],
        }
    }
}

impl<T> MessageCodecs<T> {
    /// Assembles a table from what the probes found. Used by [`message_codecs!`](crate::message_codecs).
    #[doc(hidden)]
    pub const fn __from_probes(
        raw: Option<Entry<T>>,
        protobuf: Option<Entry<T>>,
        serde: Option<(Entry<T>, Entry<T>)>,
    ) -> MessageCodecs<T> {
        let (json, msgpack) = match serde {
            Some((j, m)) => (Some(j), Some(m)),
            None => (None, None),
        };
        MessageCodecs {
            entries: [raw, protobuf, json, msgpack],
        }
    }

    fn entry(&self, codec: CodecId) -> Result<&Entry<T>, CodecError> {
        self.entries
            .get(codec.get() as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| CodecError::Unsupported {
                codec,
                type_name: std::any::type_name::<T>(),
                supported: self.supported(),
            })
    }

    /// The codecs this type supports.
    pub fn supported(&self) -> CodecSet {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| CodecId::new(i as u8))
            .collect()
    }

    /// Appends `value` encoded in `codec`.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] or the codec's encode error.
    pub fn encode(&self, codec: CodecId, value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
        (self.entry(codec)?.encode)(value, dst)
    }

    /// Encodes `value` in `codec` into a new buffer.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] or the codec's encode error.
    pub fn encode_to_bytes(&self, codec: CodecId, value: &T) -> Result<Bytes, CodecError> {
        let entry = self.entry(codec)?;
        let mut buf = BytesMut::new();
        (entry.encode)(value, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Decodes a `T` from bytes in `codec`.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] or [`CodecError::Decode`].
    pub fn decode(&self, codec: CodecId, src: Bytes) -> Result<T, CodecError> {
        (self.entry(codec)?.decode)(src)
    }
}
