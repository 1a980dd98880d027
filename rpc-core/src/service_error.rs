//! Typed errors: a service's own error type, carried across the wire inside a [`Status`].

use bytes::BytesMut;
use rpc_codec::{CodecError, MsgPack};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::status::Status;

/// The status metadata key that carries a typed error, MessagePack-encoded (named fields).
pub const DETAILS_KEY: &str = "rpc-error-bin";

/// An error type a `#[service]` method may return instead of [`Status`]: the server turns it into
/// a status, the client turns the status back into it.
///
/// Transport failures (no connection, deadline, overload) reach the client as statuses too, so
/// `from_status` must accept any status; the usual shape is an enum with a variant that wraps one.
/// [`Status::with_details`] and [`Status::details`] carry the typed value itself.
///
/// ```
/// use rpc_core::{Code, ServiceError, Status};
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// enum OrderError {
///     NotFound { id: u64 },
///     OutOfStock { sku: String },
///     #[serde(skip)]
///     Rpc(Status),
/// }
///
/// impl ServiceError for OrderError {
///     fn into_status(self) -> Status {
///         match self {
///             OrderError::Rpc(status) => status,
///             e @ OrderError::NotFound { .. } => Status::not_found("no such order").with_details(&e),
///             e => Status::failed_precondition("cannot place the order").with_details(&e),
///         }
///     }
///     fn from_status(status: Status) -> Self {
///         match status.details() {
///             Ok(Some(e)) => e,
///             _ => OrderError::Rpc(status),
///         }
///     }
/// }
///
/// let status = OrderError::OutOfStock { sku: "A-1".into() }.into_status();
/// assert_eq!(status.code(), Code::FailedPrecondition);
/// assert!(matches!(
///     OrderError::from_status(status),
///     OrderError::OutOfStock { sku } if sku == "A-1"
/// ));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of a `#[service]` method",
    note = "return `rpc_core::Status`, or implement `rpc_core::ServiceError` for `{Self}`"
)]
pub trait ServiceError: Sized + Send + 'static {
    /// The status the caller receives.
    fn into_status(self) -> Status;

    /// Rebuilds the error from a status the caller received.
    fn from_status(status: Status) -> Self;
}

impl ServiceError for Status {
    fn into_status(self) -> Status {
        self
    }

    fn from_status(status: Status) -> Self {
        status
    }
}

impl Status {
    /// Attaches a typed error value, MessagePack-encoded under [`DETAILS_KEY`]. If the value cannot
    /// be encoded the status is returned unchanged but for a note in its message.
    #[must_use]
    pub fn with_details<T: Serialize + ?Sized>(mut self, details: &T) -> Status {
        let mut buf = BytesMut::new();
        match MsgPack::encode(details, &mut buf) {
            Ok(()) => self.metadata_mut().insert(DETAILS_KEY, buf.freeze()),
            Err(e) => {
                let message = format!("{} (error details not encoded: {e})", self.message());
                let metadata = std::mem::take(self.metadata_mut());
                return Status::new(self.code(), message).with_metadata(metadata);
            }
        }
        self
    }

    /// The typed error value attached with [`Status::with_details`], if any.
    ///
    /// # Errors
    /// [`CodecError::Decode`] when details are present but are not a `T`.
    pub fn details<T: DeserializeOwned>(&self) -> Result<Option<T>, CodecError> {
        match self.metadata().get(DETAILS_KEY) {
            Some(bytes) => MsgPack::decode(bytes.clone()).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Shortage {
        sku: String,
        missing: u32,
    }

    #[derive(serde::Serialize)]
    enum InventoryError {
        Insufficient { sku: String, available: u32 },
    }

    /// The example in docs/protocol.md, section 16.
    #[test]
    fn details_bytes_match_the_spec() {
        let s = Status::failed_precondition("x").with_details(&InventoryError::Insufficient {
            sku: "sku-1".into(),
            available: 36,
        });
        let hex: Vec<String> = s
            .metadata()
            .get(DETAILS_KEY)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex.join(" "),
            "81 ac 49 6e 73 75 66 66 69 63 69 65 6e 74 82 a3 73 6b 75 a5 73 6b 75 2d 31 \
             a9 61 76 61 69 6c 61 62 6c 65 24"
        );
    }

    #[test]
    fn details_round_trip_and_mismatch_is_an_error() {
        let s = Status::failed_precondition("short").with_details(&Shortage {
            sku: "A".into(),
            missing: 3,
        });
        assert_eq!(
            s.details::<Shortage>().unwrap(),
            Some(Shortage {
                sku: "A".into(),
                missing: 3
            })
        );
        assert!(s.details::<Vec<u64>>().is_err());
        assert_eq!(Status::internal("x").details::<Shortage>().unwrap(), None);
    }
}
