//! Settings with overrides per service and per method.

use std::collections::HashMap;

use crate::message::Request;

/// A setting with overrides per service (`shop.Orders`) and per method (`shop.Orders/Place`).
///
/// ```
/// use rpc_core::middleware::PerMethod;
/// use rpc_core::Request;
///
/// let limits = PerMethod::new(100).service("shop.Orders", 50).method("shop.Orders/Place", 10);
/// assert_eq!(*limits.get(&Request::new("shop.Orders/Place", "")), 10);
/// assert_eq!(*limits.get(&Request::new("shop.Orders/Get", "")), 50);
/// assert_eq!(*limits.get(&Request::new("shop.Users/Get", "")), 100);
/// ```
#[derive(Debug, Clone)]
pub struct PerMethod<T> {
    default: T,
    services: HashMap<String, T>,
    methods: HashMap<String, T>,
}

impl<T> PerMethod<T> {
    /// `default` for every call.
    pub fn new(default: T) -> PerMethod<T> {
        PerMethod {
            default,
            services: HashMap::new(),
            methods: HashMap::new(),
        }
    }

    /// Overrides for one service.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>, value: T) -> PerMethod<T> {
        self.services.insert(service.into(), value);
        self
    }

    /// Overrides for one method, by path.
    #[must_use]
    pub fn method(mut self, path: impl Into<String>, value: T) -> PerMethod<T> {
        self.methods.insert(path.into(), value);
        self
    }

    /// The setting for `req`: its method's, else its service's, else the default.
    pub fn get(&self, req: &Request) -> &T {
        if self.methods.is_empty() && self.services.is_empty() {
            return &self.default;
        }
        self.methods
            .get(req.path())
            .or_else(|| self.services.get(req.service()))
            .unwrap_or(&self.default)
    }
}

impl<T: Default> Default for PerMethod<T> {
    fn default() -> Self {
        PerMethod::new(T::default())
    }
}
