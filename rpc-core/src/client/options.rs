//! [`CallOptions`]: what one typed call may set for itself.

use std::time::Duration;

use rpc_codec::CodecId;

use crate::message::Request;
use crate::metadata::Metadata;

/// Per-call settings for typed calls: codec, timeout, metadata.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{CallOptions, CodecId};
///
/// let opts = CallOptions::new()
///     .codec(CodecId::JSON)
///     .timeout(Duration::from_millis(250))
///     .metadata("caller", "gateway");
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    codec: Option<CodecId>,
    timeout: Option<Duration>,
    metadata: Metadata,
}

impl CallOptions {
    /// Defaults: the codec chosen as [`choose_codec`](crate::choose_codec) says, no timeout, no
    /// metadata.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Uses this codec, whatever the client or channel prefers.
    #[must_use]
    pub fn codec(mut self, codec: CodecId) -> CallOptions {
        self.codec = Some(codec);
        self
    }

    /// Fails the call with `DeadlineExceeded` after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<bytes::Bytes>,
    ) -> CallOptions {
        self.metadata.insert(key, value);
        self
    }

    /// The codec asked for, if any.
    pub fn requested_codec(&self) -> Option<CodecId> {
        self.codec
    }

    /// The timeout asked for, if any.
    pub fn requested_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Applies the timeout and metadata to a request.
    pub fn apply(self, mut request: Request) -> Request {
        if let Some(t) = self.timeout {
            request = request.with_timeout(t);
        }
        for (k, v) in self.metadata.iter() {
            request.metadata_mut().append(k, v.clone());
        }
        request
    }
}
