use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{CodecError, CodecId};

/// MessagePack through rmp-serde, with structs written as maps keyed by field name (not positional
/// arrays), so that any MessagePack library reads them. Reading accepts both forms.
///
/// ```
/// use bytes::BytesMut;
/// use rpc_codec::MsgPack;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Ping { n: u8 }
///
/// let mut buf = BytesMut::new();
/// MsgPack::encode(&Ping { n: 1 }, &mut buf).unwrap();
/// assert_eq!(&buf[..], &[0x81, 0xa1, b'n', 0x01]); // {"n": 1}
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl MsgPack {
    /// The wire id.
    pub const ID: CodecId = CodecId::MSGPACK;

    /// Appends the MessagePack encoding of `value`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if serde refuses the value.
    pub fn encode<T: Serialize + ?Sized>(value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
        rmp_serde::encode::write_named(&mut dst.writer(), value)
            .map_err(|e| CodecError::encode::<T>(Self::ID, e))
    }

    /// Reads a value from MessagePack.
    ///
    /// # Errors
    /// [`CodecError::Decode`] naming the field path where the bytes went wrong.
    pub fn decode<T: DeserializeOwned>(src: Bytes) -> Result<T, CodecError> {
        match rmp_serde::from_slice(&src) {
            Ok(value) => Ok(value),
            Err(first) => Err(Self::explain::<T>(&src, &first)),
        }
    }

    /// The failure path, kept out of line: decode again, tracking the field path.
    #[cold]
    #[inline(never)]
    fn explain<T: DeserializeOwned>(src: &[u8], first: &rmp_serde::decode::Error) -> CodecError {
        let mut de = rmp_serde::Deserializer::new(src);
        let message = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => crate::error::with_path(&e),
            Ok(_) => first.to_string(),
        };
        CodecError::decode::<T>(Self::ID, message)
    }
}
