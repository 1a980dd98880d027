//! Who may call what: a [`Rule`] per method, per service, and a default.

use std::collections::HashMap;

use super::Principal;

/// Who may call a method.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Anyone, authenticated or not.
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// Principals with one of these subjects.
    Subjects(Vec<String>),
    /// Principals with at least one of these roles.
    AnyRole(Vec<String>),
    /// Principals with every one of these scopes.
    AllScopes(Vec<String>),
    /// Nobody.
    Deny,
}

impl Rule {
    /// Principals with role `role`.
    pub fn role(role: impl Into<String>) -> Rule {
        Rule::AnyRole(vec![role.into()])
    }

    /// Principals with scope `scope`.
    pub fn scope(scope: impl Into<String>) -> Rule {
        Rule::AllScopes(vec![scope.into()])
    }

    /// The principal with subject `subject`.
    pub fn subject(subject: impl Into<String>) -> Rule {
        Rule::Subjects(vec![subject.into()])
    }

    fn allows(&self, p: &Principal) -> bool {
        match self {
            Rule::Public | Rule::Authenticated => true,
            Rule::Subjects(s) => s.contains(&p.subject),
            Rule::AnyRole(r) => r.iter().any(|r| p.has_role(r)),
            Rule::AllScopes(s) => s.iter().all(|s| p.has_scope(s)),
            Rule::Deny => false,
        }
    }

    /// What the caller is told it lacks.
    fn missing(&self) -> String {
        match self {
            Rule::Public | Rule::Authenticated => String::new(),
            Rule::Subjects(_) => "not among the allowed callers".to_owned(),
            Rule::AnyRole(r) => format!("needs one of the roles {}", r.join(", ")),
            Rule::AllScopes(s) => format!("needs the scopes {}", s.join(" ")),
            Rule::Deny => "no one may call it".to_owned(),
        }
    }
}

/// What a [`Policy`] decided for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// No principal, and the rule needs one.
    Unauthenticated,
    /// A principal the rule does not allow, and why.
    Denied(String),
}

/// Authorization rules: the rule of a method (`service/Method`) if it has one, else its
/// service's, else the default, which is [`Rule::Deny`]: once a policy is configured, what it
/// does not name is refused.
#[derive(Debug, Clone)]
pub struct Policy {
    methods: HashMap<String, Rule>,
    services: HashMap<String, Rule>,
    default: Rule,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            methods: HashMap::new(),
            services: HashMap::new(),
            default: Rule::Deny,
        }
    }
}

impl Policy {
    /// No rules: everything denied.
    pub fn new() -> Policy {
        Policy::default()
    }

    /// The rule of every method of `service` (such as `shop.Orders`) that has none of its own.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>, rule: Rule) -> Policy {
        self.services.insert(service.into(), rule);
        self
    }

    /// The rule of one method, by its path (such as `shop.Orders/Cancel`).
    #[must_use]
    pub fn method(mut self, path: impl Into<String>, rule: Rule) -> Policy {
        self.methods.insert(path.into(), rule);
        self
    }

    /// Requires, for each method of `service` that names a scope in `#[rpc(scope = "...")]`,
    /// that scope ([`Rule::scope`]): the scope written beside the method is the one enforced.
    /// Replaces a rule given earlier for those methods; a later [`method`](Policy::method)
    /// replaces it in turn. Methods without a scope are left to the service rule and default.
    ///
    /// ```
    /// use rpc_core::describe::{MethodDescriptor, ServiceDescriptor};
    /// use rpc_core::middleware::auth::{Policy, Rule};
    ///
    /// # static ORDERS: ServiceDescriptor = ServiceDescriptor {
    /// #     name: "shop.Orders", version: "1", rust_name: "Orders", docs: "",
    /// #     methods: &[MethodDescriptor {
    /// #         name: "Place", rust_name: "place", path: "shop.Orders/Place", docs: "",
    /// #         args: &[], request: "()", response: "()", error: "Status",
    /// #         one_way: false, client_streaming: false, server_streaming: false,
    /// #         idempotent: false, timeout: None, scope: Some("orders:write"),
    /// #         schemas: None,
    /// #     }],
    /// # };
    /// // `ORDERS` is what `#[service]` generated (`Orders::DESCRIPTOR`), with
    /// // `#[rpc(scope = "orders:write")] async fn place(..)`.
    /// let policy = Policy::new().service("shop.Orders", Rule::Authenticated).scopes_of(&ORDERS);
    /// assert_eq!(policy.rule_for("shop.Orders/Place"), &Rule::scope("orders:write"));
    /// ```
    #[must_use]
    pub fn scopes_of(mut self, service: &crate::describe::ServiceDescriptor) -> Policy {
        for m in service.methods {
            if let Some(scope) = m.scope {
                self.methods.insert(m.path.to_owned(), Rule::scope(scope));
            }
        }
        self
    }

    /// The rule of methods neither named nor in a named service. Default [`Rule::Deny`].
    #[must_use]
    pub fn default_rule(mut self, rule: Rule) -> Policy {
        self.default = rule;
        self
    }

    /// The rule that applies to `path`.
    pub fn rule_for(&self, path: &str) -> &Rule {
        if let Some(r) = self.methods.get(path) {
            return r;
        }
        let service = path.rsplit_once('/').map_or(path, |(s, _)| s);
        self.services.get(service).unwrap_or(&self.default)
    }

    pub(crate) fn decide(&self, path: &str, principal: Option<&Principal>) -> Decision {
        let rule = self.rule_for(path);
        match (rule, principal) {
            (Rule::Public, _) => Decision::Allow,
            (_, None) => Decision::Unauthenticated,
            (rule, Some(p)) if rule.allows(p) => Decision::Allow,
            (rule, Some(_)) => Decision::Denied(rule.missing()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path's service is what comes before its last `/`, as the router reads it: a service rule
    /// never covers a path the router sends to another service.
    #[test]
    fn the_service_of_a_path_is_read_as_the_router_reads_it() {
        let policy = Policy::new().service("shop.Orders", Rule::Public);
        assert!(matches!(policy.rule_for("shop.Orders/Place"), Rule::Public));
        assert!(matches!(
            policy.rule_for("shop.Orders/Place/Now"),
            Rule::Deny
        ));
        assert!(matches!(policy.rule_for("shop.Orders"), Rule::Public));
    }
}
