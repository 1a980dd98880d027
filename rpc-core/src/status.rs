//! The outcome of a call: a [`Code`], a message and metadata, carried unchanged across the wire.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use rpc_codec::{CodecError, CodecId};

use crate::descriptor::MethodDescriptor;
use crate::metadata::Metadata;

/// The status metadata key of the retry-after hint on refused calls: milliseconds, as text. Set
/// by the rate limiter (`middleware::RateLimitLayer`); HTTP/JSON answers carry it as
/// `Retry-After` (seconds, rounded up).
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Status codes, numbered as in gRPC so that operators read them the same way.
///
/// On the wire a code is one byte. A value this version does not know decodes as [`Code::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The call was cancelled, typically by the caller.
    Cancelled = 1,
    /// An error that fits no other code, or a code this peer does not know.
    Unknown = 2,
    /// The request was malformed or could not be decoded.
    InvalidArgument = 3,
    /// The deadline passed before the call completed.
    DeadlineExceeded = 4,
    /// A requested entity was not found.
    NotFound = 5,
    /// The entity a caller tried to create already exists.
    AlreadyExists = 6,
    /// The caller is not allowed to do this.
    PermissionDenied = 7,
    /// A limit was hit: a quota, a concurrency limit, a size limit.
    ResourceExhausted = 8,
    /// The system is not in a state the call requires.
    FailedPrecondition = 9,
    /// The call was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// A value was out of its valid range.
    OutOfRange = 11,
    /// The service or method does not exist on this server.
    Unimplemented = 12,
    /// An invariant broke inside the server.
    Internal = 13,
    /// The service could not be reached or is shutting down; retrying may help.
    Unavailable = 14,
    /// Data was lost or corrupted.
    DataLoss = 15,
    /// The caller did not prove who it is.
    Unauthenticated = 16,
}

impl Code {
    /// Decodes a code from its wire value; unknown values become [`Code::Unknown`].
    pub const fn from_u8(value: u8) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The code's wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The code's name as written in logs, e.g. `DeadlineExceeded`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "Ok",
            Code::Cancelled => "Cancelled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a failed call's request got. Retry logic relies on this: a request that never reached the
/// server application can be retried safely, whatever the method.
///
/// Only statuses made on the calling side carry anything but [`Delivery::Sent`]; a status that came
/// over the wire is always `Sent`, because the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// The request was never written to a connection.
    NotSent,
    /// The request was written, but the server announced (with go-away) that it did not process it.
    Unprocessed,
    /// The request was written; the server may have processed it.
    #[default]
    Sent,
}

impl Delivery {
    /// `true` when the request provably never reached the server's handler.
    pub const fn never_processed(self) -> bool {
        matches!(self, Delivery::NotSent | Delivery::Unprocessed)
    }
}

/// The error type of every call: a code, a message and metadata that cross the wire unchanged.
///
/// It is boxed inside, so `Result<T, Status>` stays small.
///
/// ```
/// use rpc_core::{Code, Status};
///
/// let status = Status::not_found("no order 42");
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.message(), "no order 42");
/// ```
#[derive(Clone)]
pub struct Status(Box<Inner>);

#[derive(Clone)]
struct Inner {
    code: Code,
    message: String,
    metadata: Metadata,
    delivery: Delivery,
    /// The local error behind this status, if any (never sent on the wire).
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
            metadata: Metadata::new(),
            delivery: Delivery::Sent,
            source: None,
        }))
    }

    constructors! {
        /// [`Code::Cancelled`].
        cancelled => Cancelled,
        /// [`Code::Unknown`].
        unknown => Unknown,
        /// [`Code::InvalidArgument`].
        invalid_argument => InvalidArgument,
        /// [`Code::DeadlineExceeded`].
        deadline_exceeded => DeadlineExceeded,
        /// [`Code::NotFound`].
        not_found => NotFound,
        /// [`Code::AlreadyExists`].
        already_exists => AlreadyExists,
        /// [`Code::PermissionDenied`].
        permission_denied => PermissionDenied,
        /// [`Code::ResourceExhausted`].
        resource_exhausted => ResourceExhausted,
        /// [`Code::FailedPrecondition`].
        failed_precondition => FailedPrecondition,
        /// [`Code::Aborted`].
        aborted => Aborted,
        /// [`Code::OutOfRange`].
        out_of_range => OutOfRange,
        /// [`Code::Unimplemented`].
        unimplemented => Unimplemented,
        /// [`Code::Internal`].
        internal => Internal,
        /// [`Code::Unavailable`].
        unavailable => Unavailable,
        /// [`Code::DataLoss`].
        data_loss => DataLoss,
        /// [`Code::Unauthenticated`].
        unauthenticated => Unauthenticated,
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Metadata sent along with the status (e.g. a retry-after hint).
    pub fn metadata(&self) -> &Metadata {
        &self.0.metadata
    }

    /// Mutable access to the status metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.0.metadata
    }

    /// Replaces the metadata, builder style.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Status {
        self.0.metadata = metadata;
        self
    }

    /// How far the request got before this status was produced. Local only: never sent on the wire.
    pub fn delivery(&self) -> Delivery {
        self.0.delivery
    }

    /// Sets [`Status::delivery`], builder style.
    #[must_use]
    pub fn with_delivery(mut self, delivery: Delivery) -> Status {
        self.0.delivery = delivery;
        self
    }

    /// Keeps the local error that caused this status, for [`Error::source`] chains (a connect
    /// failure's `io::Error`, a codec error). Local only: the wire carries the code and message.
    ///
    /// ```
    /// use std::error::Error;
    /// use rpc_core::Status;
    ///
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let status = Status::unavailable("cannot connect to 127.0.0.1:1").with_source(io);
    /// let source = status.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Status {
        self.0.source = Some(Arc::new(source));
        self
    }

    /// A codec error as the status a caller or server reports, keeping the error as its source.
    /// With `method`, a Protobuf call of a method with several arguments gets a message that says
    /// why it cannot work.
    pub(crate) fn from_codec_error(method: Option<&MethodDescriptor>, e: CodecError) -> Status {
        let status = match (&e, method) {
            (CodecError::Unsupported { codec, .. }, Some(m))
                if *codec == CodecId::PROTOBUF && m.args.len() != 1 =>
            {
                Status::unimplemented(format!(
                    "{} takes {} arguments, which are carried as one message in JSON and \
                     MessagePack only; Protobuf needs a single prost message argument",
                    m.path,
                    m.args.len()
                ))
            }
            (CodecError::Unsupported { .. }, _) => Status::unimplemented(e.to_string()),
            (CodecError::Decode { .. }, _) => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        };
        status.with_source(e)
    }
}

/// Codec errors as statuses: a codec the type cannot use is `Unimplemented`, undecodable bytes
/// are `InvalidArgument`, an unencodable value is `Internal`. The codec error is kept as the
/// status's [`source`](Error::source).
impl From<CodecError> for Status {
    fn from(e: CodecError) -> Status {
        Status::from_codec_error(None, e)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.metadata.is_empty() {
            d.field("metadata", &self.0.metadata);
        }
        if self.0.delivery != Delivery::Sent {
            d.field("delivery", &self.0.delivery);
        }
        if let Some(source) = &self.0.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.message.is_empty() {
            write!(f, "{}", self.0.code)
        } else {
            write!(f, "{}: {}", self.0.code, self.0.message)
        }
    }
}

impl Error for Status {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn Error + 'static))
    }
}

/// A plain status as a method's error: `rpc.Status`, the code and message every error RESPONSE
/// carries (`docs/protocol.md` §6, §11), with no typed details.
impl rpc_codec::schema::Schema for Status {
    fn type_ref(defs: &mut rpc_codec::schema::Definitions) -> rpc_codec::schema::TypeRef {
        use rpc_codec::schema::{FieldDef, MessageDef, TypeDef, TypeRef};
        defs.named("rpc.Status", "rpc_core::Status", |_| {
            TypeDef::Message(MessageDef::new(
                "A status: the code (section 11 of the protocol) and a message. Carried in the \
                 RESPONSE frame itself, not in a body.",
                vec![
                    FieldDef::new("code", TypeRef::U32),
                    FieldDef::new("message", TypeRef::String),
                ],
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for v in 0..=16u8 {
            assert_eq!(Code::from_u8(v).as_u8(), v);
        }
        assert_eq!(Code::from_u8(17), Code::Unknown);
        assert_eq!(Code::from_u8(255), Code::Unknown);
    }

    #[test]
    fn status_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Status>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_has_code_and_message() {
        assert_eq!(Status::unavailable("down").to_string(), "Unavailable: down");
        assert_eq!(Status::new(Code::Internal, "").to_string(), "Internal");
    }
}
