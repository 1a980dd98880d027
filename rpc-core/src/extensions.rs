//! [`Extensions`]: typed values that travel with a request through local middleware, never on the
//! wire.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// A small map from type to value, carried by a [`Request`](crate::Request) through client and
/// server middleware (e.g. the endpoints a retried call already tried). Clones share the values.
///
/// ```
/// use rpc_core::Request;
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let mut req = Request::new("shop.Orders/Get", "");
/// req.extensions_mut().insert(Tenant("acme"));
/// assert_eq!(req.extensions().get::<Tenant>(), Some(&Tenant("acme")));
/// ```
#[derive(Clone, Default)]
pub struct Extensions {
    entries: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// An empty map (no allocation).
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// Inserts `value`, replacing any value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.entries.iter_mut().find(|(t, _)| *t == id) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((id, value)),
        }
    }

    /// The value of type `T`, if any.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }

    /// Removes the value of type `T`; `true` if there was one.
    pub fn remove<T: 'static>(&mut self) -> bool {
        let id = TypeId::of::<T>();
        let before = self.entries.len();
        self.entries.retain(|(t, _)| *t != id);
        self.entries.len() != before
    }

    /// `true` if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.entries.len())
            .finish()
    }
}
