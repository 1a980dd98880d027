//! Reading byte strings from base64 in JSON, for any serde type and without per-field
//! attributes: [`Base64Reader`] wraps a deserializer (serde_json's) and base64-decodes the JSON
//! string wherever the type being read asks for bytes (`deserialize_bytes` /
//! `deserialize_byte_buf`: `bytes::Bytes`, `serde_bytes` fields).
//!
//! Every wrapper here holds only the value it wraps, and every forwarding method is `#[inline]`,
//! so a type without byte strings reads exactly as fast as through serde_json alone:
//! - scalars (numbers, strings, identifiers, unit, ignored values) go to the inner deserializer
//!   with the caller's visitor untouched, since they cannot contain bytes;
//! - compound values (`any`, options, sequences, tuples, maps, structs, enums, newtypes) get a
//!   visitor wrapper that wraps what it is handed (`SeqAccess`, `MapAccess` values, `EnumAccess`
//!   variants, the deserializer of `Some` and newtypes) in turn, so bytes nested at any depth
//!   are reached. Map keys are not wrapped (JSON keys are strings, never bytes).
//!
//! Limitation: values serde buffers before it knows their type (untagged or internally tagged
//! enums, `#[serde(flatten)]`) are replayed by serde's own deserializer, not by this one, so a
//! byte string inside them is read as serde_json alone would (an array of numbers only).

use std::fmt;

use base64::Engine as _;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// A deserializer that reads byte strings from base64 strings (and still from arrays of
/// numbers), forwarding everything else to the deserializer it wraps.
pub(super) struct Base64Reader<D>(pub(super) D);

/// Forwards `deserialize_*` methods that take only a visitor, with the visitor untouched.
macro_rules! forward_plain {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(visitor)
        }
    )*};
}

/// Forwards `deserialize_*` methods that take only a visitor, with the visitor wrapped in
/// [`Nested`].
macro_rules! forward_nested {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Nested(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Base64Reader<D> {
    type Error = D::Error;

    forward_plain! {
        deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
        deserialize_char deserialize_str deserialize_string deserialize_identifier
        deserialize_unit deserialize_ignored_any
    }

    forward_nested! {
        deserialize_any deserialize_option deserialize_seq deserialize_map
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bytes(Base64Visitor(visitor))
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_byte_buf(Base64Visitor(visitor))
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Nested(visitor))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Nested(visitor))
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, Nested(visitor))
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_struct(name, fields, Nested(visitor))
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Nested(visitor))
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Forwards `visit_*` methods that take one plain value.
macro_rules! forward_visits {
    ($($method:ident($ty:ty))*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

/// Forwards the `visit_*` methods common to [`Nested`] and [`Base64Visitor`]: scalars as they
/// are, and compound values wrapped so that bytes inside them are still read from base64.
macro_rules! forward_common_visits {
    ($de:lifetime) => {
        forward_visits! {
            visit_bool(bool)
            visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
            visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
            visit_f32(f32) visit_f64(f64)
            visit_char(char)
        }

        #[inline]
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        #[inline]
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            self.0.visit_none()
        }

        #[inline]
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.0.visit_unit()
        }

        #[inline]
        fn visit_some<D: Deserializer<$de>>(self, d: D) -> Result<Self::Value, D::Error> {
            self.0.visit_some(Base64Reader(d))
        }

        #[inline]
        fn visit_newtype_struct<D: Deserializer<$de>>(self, d: D) -> Result<Self::Value, D::Error> {
            self.0.visit_newtype_struct(Base64Reader(d))
        }

        #[inline]
        fn visit_seq<A: SeqAccess<$de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            self.0.visit_seq(Seq(seq))
        }

        #[inline]
        fn visit_map<A: MapAccess<$de>>(self, map: A) -> Result<Self::Value, A::Error> {
            self.0.visit_map(Map(map))
        }

        #[inline]
        fn visit_enum<A: EnumAccess<$de>>(self, data: A) -> Result<Self::Value, A::Error> {
            self.0.visit_enum(Enum(data))
        }
    };
}

/// The visitor of a compound value: passes everything through, wrapping what can hold bytes.
struct Nested<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Nested<V> {
    type Value = V::Value;

    forward_common_visits!('de);

    forward_visits! {
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }
}

/// The visitor of a byte string: a string (which serde_json hands over as `visit_str` or, in
/// `deserialize_bytes`, as `visit_bytes` of its raw text) is base64-decoded and given to the
/// inner visitor as `visit_byte_buf`; anything else (an array of numbers) passes through.
struct Base64Visitor<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Base64Visitor<V> {
    type Value = V::Value;

    forward_common_visits!('de);

    #[inline]
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }

    #[inline]
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }

    #[inline]
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }

    #[inline]
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.visit_bytes(v)
    }

    #[inline]
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.visit_bytes(&v)
    }

    #[inline]
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        match decode(v) {
            Ok(bytes) => self.0.visit_byte_buf(bytes),
            Err(e) => Err(not_base64(v, &e)),
        }
    }
}

/// Decodes standard base64, padded or not. Not generic, so compiled once.
fn decode(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    super::BASE64.decode(text)
}

/// The error for a byte string that is not base64: serde's `invalid_value`, showing the start of
/// the string and what base64 found wrong.
#[cold]
#[inline(never)]
fn not_base64<E: de::Error>(text: &[u8], error: &base64::DecodeError) -> E {
    const SHOWN: usize = 40;
    let text = String::from_utf8_lossy(text);
    let shown = match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("string {:?}…", &text[..end]),
        None => format!("string {text:?}"),
    };
    E::invalid_value(Unexpected::Other(&shown), &Base64Expected(error))
}

/// "expected a base64 string …", with base64's explanation.
struct Base64Expected<'a>(&'a base64::DecodeError);

impl de::Expected for Base64Expected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a base64 string (standard alphabet, padding optional): {}",
            self.0
        )
    }
}

/// A seed whose deserializer is wrapped in [`Base64Reader`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Base64Reader(d))
    }
}

/// A sequence whose elements are read through [`Base64Reader`].
struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A map whose values (not keys) are read through [`Base64Reader`].
struct Map<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(seed)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    #[inline]
    fn next_entry_seed<K: DeserializeSeed<'de>, T: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: T,
    ) -> Result<Option<(K::Value, T::Value)>, Self::Error> {
        self.0.next_entry_seed(key, Seed(value))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An enum whose variant's contents are read through [`Base64Reader`] (the variant name is not
/// wrapped).
struct Enum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Self::Error> {
        self.0
            .variant_seed(seed)
            .map(|(value, variant)| (value, Variant(variant)))
    }
}

/// An enum variant's contents, read through [`Base64Reader`].
struct Variant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Nested(visitor))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, Nested(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::{Bytes, BytesMut};
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use crate::{CodecError, Json};

    fn decode<T: DeserializeOwned>(json: &str) -> Result<T, CodecError> {
        Json::decode(Bytes::copy_from_slice(json.as_bytes()))
    }

    fn encode<T: Serialize>(value: &T) -> String {
        let mut buf = BytesMut::new();
        Json::encode(value, &mut buf).unwrap();
        String::from_utf8(buf.to_vec()).unwrap()
    }

    /// Decodes `json`, checks the value, and that it encodes back to `canonical`.
    fn check<T>(json: &str, expected: &T, canonical: &str)
    where
        T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
    {
        assert_eq!(&decode::<T>(json).unwrap(), expected, "{json}");
        assert_eq!(encode(expected), canonical);
        assert_eq!(&decode::<T>(canonical).unwrap(), expected, "{canonical}");
    }

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn bytes_in_a_vec() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct S {
            v: Vec<Bytes>,
        }
        let expected = S {
            v: vec![b(b"hi"), b(b"a"), Bytes::new(), b(b"hi")],
        };
        check(
            r#"{"v":["aGk=","YQ","",[104,105]]}"#,
            &expected,
            r#"{"v":["aGk=","YQ==","","aGk="]}"#,
        );
        // At the top level too.
        check::<Vec<Bytes>>(r#"["aGk"]"#, &vec![b(b"hi")], r#"["aGk="]"#);
    }

    #[test]
    fn bytes_in_an_option() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct S {
            o: Option<Bytes>,
            n: Option<Bytes>,
        }
        let expected = S {
            o: Some(b(b"hi")),
            n: None,
        };
        check(
            r#"{"o":"aGk","n":null}"#,
            &expected,
            r#"{"o":"aGk=","n":null}"#,
        );
        check::<Option<Bytes>>(r#""YQ==""#, &Some(b(b"a")), r#""YQ==""#);
        check::<Option<Option<Bytes>>>(r#""YQ""#, &Some(Some(b(b"a"))), r#""YQ==""#);
    }

    #[test]
    fn bytes_as_map_values_but_not_keys() {
        let mut expected = BTreeMap::new();
        expected.insert("aGk=".to_owned(), b(b"hi"));
        expected.insert("k".to_owned(), b(b"a"));
        check::<BTreeMap<String, Bytes>>(
            r#"{"aGk=":"aGk","k":"YQ=="}"#,
            &expected,
            r#"{"aGk=":"aGk=","k":"YQ=="}"#,
        );
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct S {
            m: BTreeMap<String, Bytes>,
        }
        check(
            r#"{"m":{"aGk=":"aGk","k":"YQ=="}}"#,
            &S { m: expected },
            r#"{"m":{"aGk=":"aGk=","k":"YQ=="}}"#,
        );
    }

    #[test]
    fn bytes_in_enum_variants() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum E {
            Unit,
            Data(Bytes),
            Pair(Bytes, u8),
            Named { data: Bytes },
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct S {
            e: Vec<E>,
        }
        let expected = S {
            e: vec![
                E::Unit,
                E::Data(b(b"hi")),
                E::Pair(b(b"a"), 7),
                E::Named { data: b(b"hi") },
            ],
        };
        check(
            r#"{"e":["Unit",{"Data":"aGk"},{"Pair":["YQ",7]},{"Named":{"data":"aGk="}}]}"#,
            &expected,
            r#"{"e":["Unit",{"Data":"aGk="},{"Pair":["YQ==",7]},{"Named":{"data":"aGk="}}]}"#,
        );
        check::<E>(r#"{"Data":"YQ"}"#, &E::Data(b(b"a")), r#"{"Data":"YQ=="}"#);
    }

    #[test]
    fn bytes_in_a_newtype_struct() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Wrapped(Bytes);
        check(r#""aGk""#, &Wrapped(b(b"hi")), r#""aGk=""#);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Part {
        name: String,
        data: Bytes,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        id: u32,
        parts: Vec<Part>,
    }

    #[test]
    fn bytes_in_a_struct_in_a_vec_in_a_struct() {
        let expected = Outer {
            id: 1,
            parts: vec![
                Part {
                    name: "aGk=".into(), // a plain string: never decoded
                    data: b(b"hi"),
                    raw: b"a".to_vec(),
                },
                Part {
                    name: "two".into(),
                    data: Bytes::new(),
                    raw: vec![0, 255],
                },
            ],
        };
        check(
            r#"{"id":1,"parts":[{"name":"aGk=","data":"aGk","raw":"YQ"},{"name":"two","data":[],"raw":"AP8="}]}"#,
            &expected,
            r#"{"id":1,"parts":[{"name":"aGk=","data":"aGk=","raw":"YQ=="},{"name":"two","data":"","raw":"AP8="}]}"#,
        );
    }

    #[test]
    fn a_nested_string_that_is_not_base64_names_its_path() {
        let json = r#"{"id":1,"parts":[{"name":"a","data":"","raw":""},{"name":"b","data":"no good","raw":""}]}"#;
        let err = decode::<Outer>(json).unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("parts[1].data"), "{message}");
        assert!(message.contains("base64"), "{message}");
        assert!(message.contains("no good"), "{message}");
    }

    #[test]
    fn a_long_bad_string_is_shown_shortened() {
        let long = "!".repeat(10_000);
        let err = decode::<Vec<Bytes>>(&format!(r#"["{long}"]"#)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("base64"), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}
