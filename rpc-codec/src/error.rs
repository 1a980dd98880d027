use crate::{CodecId, CodecSet};

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message type cannot be written or read in this codec (e.g. a serde-only type asked for
    /// Protobuf).
    #[error("{type_name} does not support the {codec} codec; it supports: {supported}")]
    Unsupported {
        /// The codec asked for.
        codec: CodecId,
        /// The message type.
        type_name: &'static str,
        /// What the type does support.
        supported: CodecSet,
    },
    /// The value could not be encoded.
    #[error("cannot encode {type_name} as {codec}: {message}")]
    Encode {
        /// The codec.
        codec: CodecId,
        /// The message type.
        type_name: &'static str,
        /// The library's explanation.
        message: String,
    },
    /// The bytes are not a valid message of this type; `message` names the field where the
    /// library can tell.
    #[error("cannot decode {type_name} from {codec}: {message}")]
    Decode {
        /// The codec.
        codec: CodecId,
        /// The message type.
        type_name: &'static str,
        /// What was wrong, with the field path when known.
        message: String,
    },
}

impl CodecError {
    pub(crate) fn encode<T: ?Sized>(codec: CodecId, message: impl ToString) -> CodecError {
        CodecError::Encode {
            codec,
            type_name: std::any::type_name::<T>(),
            message: message.to_string(),
        }
    }

    pub(crate) fn decode<T: ?Sized>(codec: CodecId, message: impl ToString) -> CodecError {
        CodecError::Decode {
            codec,
            type_name: std::any::type_name::<T>(),
            message: message.to_string(),
        }
    }
}

/// Describes a serde decode failure with its field path, leaving out the path when serde could not
/// tell where it was (`?` segments, e.g. in a syntax error).
pub(crate) fn with_path<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    let known = path
        .split('.')
        .take_while(|segment| !segment.starts_with('?'))
        .collect::<Vec<_>>()
        .join(".");
    if known.is_empty() {
        e.inner().to_string()
    } else {
        format!("at {known}: {}", e.inner())
    }
}
