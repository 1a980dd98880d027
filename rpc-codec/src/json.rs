use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{CodecError, CodecId};

/// JSON through serde_json: plain JSON, field names as serde names them.
///
/// ```
/// use bytes::BytesMut;
/// use rpc_codec::Json;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Sku { code: String, count: u32 }
///
/// let mut buf = BytesMut::new();
/// Json::encode(&Sku { code: "a-1".into(), count: 2 }, &mut buf).unwrap();
/// assert_eq!(&buf[..], br#"{"code":"a-1","count":2}"#);
/// let back: Sku = Json::decode(buf.freeze()).unwrap();
/// assert_eq!(back.count, 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Json {
    /// The wire id.
    pub const ID: CodecId = CodecId::JSON;

    /// Appends the JSON text of `value`.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if serde refuses the value (e.g. a map with non-string keys).
    pub fn encode<T: Serialize + ?Sized>(value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
        serde_json::to_writer(dst.writer(), value).map_err(|e| CodecError::encode::<T>(Self::ID, e))
    }

    /// Reads a value from JSON text.
    ///
    /// # Errors
    /// [`CodecError::Decode`] naming the field path where the text went wrong.
    pub fn decode<T: DeserializeOwned>(src: Bytes) -> Result<T, CodecError> {
        match serde_json::from_slice(&src) {
            Ok(value) => Ok(value),
            Err(first) => Err(Self::explain::<T>(&src, &first)),
        }
    }

    /// The failure path, kept out of line: decode again, tracking the field path.
    #[cold]
    #[inline(never)]
    fn explain<T: DeserializeOwned>(src: &[u8], first: &serde_json::Error) -> CodecError {
        let mut de = serde_json::Deserializer::from_slice(src);
        let message = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => crate::error::with_path(&e),
            Ok(_) => first.to_string(),
        };
        CodecError::decode::<T>(Self::ID, message)
    }
}
