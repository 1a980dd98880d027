use std::io::Write as _;

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{CodecError, CodecId};

use self::base64_reader::Base64Reader;

mod base64_reader;

/// JSON through serde_json: plain JSON, field names as serde names them. Byte strings (what
/// serde serializes as bytes: `bytes::Bytes`, `serde_bytes` fields) are base64 strings, as in the
/// proto3 JSON mapping: the standard alphabet, padded when written; read with or without
/// padding, and an array of numbers is still read too. A plain `Vec<u8>` without
/// `#[serde(with = "serde_bytes")]` is a sequence to serde, so it stays an array of numbers.
/// (Values serde buffers before knowing their type — untagged or internally tagged enums,
/// `#[serde(flatten)]` — are replayed by serde itself, so byte strings inside them are not
/// base64-decoded.)
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
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Blob { data: bytes::Bytes }
///
/// let mut buf = BytesMut::new();
/// Json::encode(&Blob { data: bytes::Bytes::from_static(b"hi!") }, &mut buf).unwrap();
/// assert_eq!(&buf[..], br#"{"data":"aGkh"}"#);
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
        // serde_json writes byte strings through its formatter: ours writes them as base64
        // strings, at no cost to any other value.
        let mut ser = serde_json::Serializer::with_formatter(dst.writer(), Base64Bytes);
        value
            .serialize(&mut ser)
            .map_err(|e| CodecError::encode::<T>(Self::ID, e))
    }

    /// Reads a value from JSON text.
    ///
    /// # Errors
    /// [`CodecError::Decode`] naming the field path where the text went wrong.
    pub fn decode<T: DeserializeOwned>(src: Bytes) -> Result<T, CodecError> {
        let mut de = serde_json::Deserializer::from_slice(&src);
        let value = T::deserialize(Base64Reader(&mut de)).and_then(|v| de.end().map(|()| v));
        match value {
            Ok(value) => Ok(value),
            Err(first) => Err(Self::explain::<T>(&src, &first)),
        }
    }

    /// The failure path, kept out of line: decode again, tracking the field path.
    #[cold]
    #[inline(never)]
    fn explain<T: DeserializeOwned>(src: &[u8], first: &serde_json::Error) -> CodecError {
        let mut de = serde_json::Deserializer::from_slice(src);
        // The path tracker outside, our reader inside: the tracker sees every field and element
        // (including a byte string our reader refuses) on its way down.
        let message = match serde_path_to_error::deserialize::<_, T>(Base64Reader(&mut de)) {
            Err(e) => crate::error::with_path(&e),
            Ok(_) => first.to_string(),
        };
        CodecError::decode::<T>(Self::ID, message)
    }
}

/// serde_json's compact output, but byte strings as padded standard base64 strings.
struct Base64Bytes;

impl serde_json::ser::Formatter for Base64Bytes {
    fn write_byte_array<W>(&mut self, writer: &mut W, value: &[u8]) -> std::io::Result<()>
    where
        W: ?Sized + std::io::Write,
    {
        writer.write_all(b"\"")?;
        {
            let mut encoder = base64::write::EncoderWriter::new(&mut *writer, &BASE64);
            encoder.write_all(value)?;
            encoder.finish()?;
        }
        writer.write_all(b"\"")
    }
}

/// The standard base64 alphabet, written padded; read with or without padding (proto3's JSON
/// mapping accepts both). Built at compile time.
static BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
