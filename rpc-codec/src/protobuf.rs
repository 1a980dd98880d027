use bytes::{Bytes, BytesMut};

use crate::{CodecError, CodecId};

/// Protocol Buffers through prost: the same bytes protoc-generated code produces.
///
/// ```
/// use bytes::BytesMut;
/// use rpc_codec::Protobuf;
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Ping { #[prost(uint32, tag = "1")] n: u32 }
///
/// let mut buf = BytesMut::new();
/// Protobuf::encode(&Ping { n: 150 }, &mut buf).unwrap();
/// assert_eq!(&buf[..], &[0x08, 0x96, 0x01]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

impl Protobuf {
    /// The wire id.
    pub const ID: CodecId = CodecId::PROTOBUF;

    /// Appends the Protobuf encoding of `value`.
    ///
    /// The length is computed once: the buffer is grown to fit, then the fields are written
    /// (prost's `encode` would compute it a second time for its capacity check).
    ///
    /// # Errors
    /// None today; the signature leaves room for codecs that can fail.
    pub fn encode<T: prost::Message>(value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(value.encoded_len());
        value.encode_raw(dst);
        Ok(())
    }

    /// Reads a value; `bytes` fields declared as `Bytes` share `src` without copying.
    ///
    /// # Errors
    /// [`CodecError::Decode`]; prost's message names the field (`Order.items: ...`).
    pub fn decode<T: prost::Message + Default>(src: Bytes) -> Result<T, CodecError> {
        T::decode(src).map_err(|e| CodecError::decode::<T>(Self::ID, e))
    }
}
