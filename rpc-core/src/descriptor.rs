//! What `#[service]` says about a service and its methods: names, wire paths, documentation,
//! argument and message types, and the attributes middleware reads (`one_way`, `idempotent`,
//! `timeout`). Plain `'static` data; [`describe`](crate::describe) renders and serves it.

use std::fmt;
use std::time::Duration;

use rpc_codec::schema::{Definitions, TypeRef};

/// A service as `#[service]` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The fully qualified name calls are routed by (`shop.OrderService`).
    pub name: &'static str,
    /// The version given on the trait (`"1"` when none was given).
    pub version: &'static str,
    /// The name of the Rust trait.
    pub rust_name: &'static str,
    /// The trait's doc comment.
    pub docs: &'static str,
    /// The methods, in declaration order.
    pub methods: &'static [MethodDescriptor],
}

/// One method of a [`ServiceDescriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodDescriptor {
    /// The wire name (`PlaceOrder`).
    pub name: &'static str,
    /// The Rust method name (`place_order`).
    pub rust_name: &'static str,
    /// `service/method`, as sent on the wire.
    pub path: &'static str,
    /// The method's doc comment.
    pub docs: &'static str,
    /// The arguments after `&self` (and the context, if any): name and type.
    pub args: &'static [(&'static str, &'static str)],
    /// The request message type: the single argument's type, a generated message for several
    /// arguments, or `()` for none.
    pub request: &'static str,
    /// The type of a successful reply.
    pub response: &'static str,
    /// The error type.
    pub error: &'static str,
    /// The server sends no response.
    pub one_way: bool,
    /// The client sends a stream of request messages (protocol 1.1): `request` is the type of
    /// one of them.
    pub client_streaming: bool,
    /// The server answers with a stream of messages (protocol 1.1): `response` is the type of
    /// one of them.
    pub server_streaming: bool,
    /// Calling twice has the same effect as once, so retries and hedging may repeat it.
    pub idempotent: bool,
    /// The default timeout of a call.
    pub timeout: Option<Duration>,
    /// The OAuth 2.0 scope (RFC 6749 §3.3) a caller needs, from `#[rpc(scope = "...")]`.
    /// Descriptive until a [`Policy`](crate::middleware::auth::Policy) enforces it through
    /// [`Policy::scopes_of`](crate::middleware::auth::Policy::scopes_of).
    pub scope: Option<&'static str>,
    /// The schemas of the request, the response and the error (`#[service]` writes it; `None`
    /// in a descriptor written by hand without them).
    pub schemas: Option<SchemaFn>,
}

/// The schemas of a method's messages: what a client needs to build its request and read its
/// reply and error, in any codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSchemas {
    /// The request: the single argument's type, a message of the arguments by name for several,
    /// [`TypeRef::Unit`] for none.
    pub request: TypeRef,
    /// A successful reply ([`TypeRef::Unit`] for `()`).
    pub response: TypeRef,
    /// The error: a typed error's type (its value travels in `rpc-error-bin`), or `rpc.Status`
    /// for a plain status.
    pub error: TypeRef,
    /// The codecs both the request and the response can be sent in: what the server accepts
    /// for this method.
    pub codecs: rpc_codec::CodecSet,
}

/// Computes a method's [`MethodSchemas`], adding the messages and enums they use to the
/// definitions. A function, so that descriptors stay `'static` data built at compile time.
#[derive(Clone, Copy)]
pub struct SchemaFn(pub fn(&mut Definitions) -> MethodSchemas);

impl SchemaFn {
    /// The schemas, with the types they use added to `defs`.
    pub fn schemas(&self, defs: &mut Definitions) -> MethodSchemas {
        (self.0)(defs)
    }
}

impl PartialEq for SchemaFn {
    fn eq(&self, other: &SchemaFn) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for SchemaFn {}

impl fmt::Debug for SchemaFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SchemaFn(..)")
    }
}

impl ServiceDescriptor {
    /// The method with this wire name.
    pub fn method(&self, name: &str) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

impl MethodDescriptor {
    /// The attributes, as written in `#[rpc(...)]`: `one_way`, `idempotent`, `timeout = "…"`,
    /// `scope = "…"`.
    pub fn attributes(&self) -> Vec<String> {
        let mut attrs = Vec::new();
        if self.one_way {
            attrs.push("one_way".to_owned());
        }
        match (self.client_streaming, self.server_streaming) {
            (true, true) => attrs.push("streams both ways".to_owned()),
            (true, false) => attrs.push("client stream".to_owned()),
            (false, true) => attrs.push("server stream".to_owned()),
            (false, false) => {}
        }
        if self.idempotent {
            attrs.push("idempotent".to_owned());
        }
        if let Some(t) = self.timeout {
            attrs.push(format!("timeout = \"{}\"", format_duration(t)));
        }
        if let Some(s) = self.scope {
            attrs.push(format!("scope = \"{s}\""));
        }
        attrs
    }
}

/// Formats a duration the way `timeout = "…"` accepts it: `250ms`, `2s`, `1500us`.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_in_their_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1500us");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }
}
