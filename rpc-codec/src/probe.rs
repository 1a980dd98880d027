//! Probes used by [`message_codecs!`](crate::message_codecs) to find, for a concrete type, which
//! codecs apply ("autoref specialization": an impl on `Probe<T>` with bounds wins over the
//! fallback impl on `&Probe<T>` when the bounds hold).

use std::marker::PhantomData;

use bytes::Bytes;

use crate::{Entry, Json, MsgPack, Protobuf};

#[derive(Debug)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Probe<T> {
        Probe(PhantomData)
    }
}

pub trait ProtobufYes<T> {
    fn protobuf_entry(&self) -> Option<Entry<T>>;
}
impl<T: prost::Message + Default> ProtobufYes<T> for Probe<T> {
    fn protobuf_entry(&self) -> Option<Entry<T>> {
        Some(Entry {
            encode: Protobuf::encode::<T>,
            decode: Protobuf::decode::<T>,
        })
    }
}
pub trait ProtobufNo<T> {
    fn protobuf_entry(&self) -> Option<Entry<T>>;
}
impl<T> ProtobufNo<T> for &Probe<T> {
    fn protobuf_entry(&self) -> Option<Entry<T>> {
        None
    }
}

pub trait SerdeYes<T> {
    fn serde_entries(&self) -> Option<(Entry<T>, Entry<T>)>;
}
impl<T: serde::Serialize + serde::de::DeserializeOwned> SerdeYes<T> for Probe<T> {
    fn serde_entries(&self) -> Option<(Entry<T>, Entry<T>)> {
        Some((
            Entry {
                encode: Json::encode::<T>,
                decode: Json::decode::<T>,
            },
            Entry {
                encode: MsgPack::encode::<T>,
                decode: MsgPack::decode::<T>,
            },
        ))
    }
}
pub trait SerdeNo<T> {
    fn serde_entries(&self) -> Option<(Entry<T>, Entry<T>)>;
}
impl<T> SerdeNo<T> for &Probe<T> {
    fn serde_entries(&self) -> Option<(Entry<T>, Entry<T>)> {
        None
    }
}

pub trait RawYes<T> {
    fn raw_entry(&self) -> Option<Entry<T>>;
}
impl RawYes<Bytes> for Probe<Bytes> {
    fn raw_entry(&self) -> Option<Entry<Bytes>> {
        Some(Entry {
            encode: |value, dst| {
                dst.extend_from_slice(value);
                Ok(())
            },
            decode: Ok,
        })
    }
}
pub trait RawNo<T> {
    fn raw_entry(&self) -> Option<Entry<T>>;
}
impl<T> RawNo<T> for &Probe<T> {
    fn raw_entry(&self) -> Option<Entry<T>> {
        None
    }
}

/// Builds the [`MessageCodecs`](crate::MessageCodecs) of a concrete type: Protobuf if it implements `prost::Message`,
/// JSON and MessagePack if it implements serde's `Serialize` and `DeserializeOwned`, raw if it is
/// `bytes::Bytes`.
///
/// The type must be concrete at the call site (the probing happens at compile time there).
#[macro_export]
macro_rules! message_codecs {
    ($t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{
            ProtobufNo as _, ProtobufYes as _, RawNo as _, RawYes as _, SerdeNo as _, SerdeYes as _,
        };
        let probe = $crate::__private::probe::Probe::<$t>::new();
        $crate::MessageCodecs::<$t>::__from_probes(
            (&probe).raw_entry(),
            (&probe).protobuf_entry(),
            (&probe).serde_entries(),
        )
    }};
}

pub trait SchemaYes<T> {
    fn schema_of(&self, defs: &mut crate::schema::Definitions) -> crate::schema::TypeRef;
}
impl<T: crate::schema::Schema> SchemaYes<T> for Probe<T> {
    fn schema_of(&self, defs: &mut crate::schema::Definitions) -> crate::schema::TypeRef {
        T::type_ref(defs)
    }
}
pub trait SchemaNo<T> {
    fn schema_of(&self, defs: &mut crate::schema::Definitions) -> crate::schema::TypeRef;
}
impl<T> SchemaNo<T> for &Probe<T> {
    fn schema_of(&self, _: &mut crate::schema::Definitions) -> crate::schema::TypeRef {
        crate::schema::TypeRef::Opaque(std::any::type_name::<T>().to_owned())
    }
}

/// The schema of a concrete type, added to `defs` (a `&mut Definitions`): its [`Schema`] if it
/// has one, otherwise [`TypeRef::Opaque`] with its Rust name.
///
/// [`Schema`]: crate::schema::Schema
/// [`TypeRef::Opaque`]: crate::schema::TypeRef::Opaque
///
/// ```
/// use rpc_codec::schema::{Definitions, TypeRef};
///
/// struct NoSchema;
/// let mut defs = Definitions::new();
/// assert_eq!(rpc_codec::message_schema!(Vec<u64>, &mut defs), TypeRef::List(Box::new(TypeRef::U64)));
/// assert!(matches!(rpc_codec::message_schema!(NoSchema, &mut defs), TypeRef::Opaque(_)));
/// ```
#[macro_export]
macro_rules! message_schema {
    ($t:ty, $defs:expr) => {{
        #[allow(unused_imports)]
        use $crate::__private::probe::{SchemaNo as _, SchemaYes as _};
        (&$crate::__private::probe::Probe::<$t>::new()).schema_of($defs)
    }};
}
