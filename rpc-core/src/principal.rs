//! [`Principal`]: who is calling, as an authentication layer established it.

/// How a [`Principal`] was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A bearer token looked up in a table of known tokens.
    BearerToken,
    /// A JSON Web Token (RFC 7519) whose signature and claims were verified.
    Jwt,
    /// The client certificate of a mutual-TLS connection.
    MutualTls,
    /// Another scheme (a custom authenticator).
    Other,
}

/// Who is calling: the subject, its roles and scopes, and how that was established. The server
/// side's `AuthLayer` (module `middleware::auth`) puts it in the call's
/// [`Context`](crate::Context), where handlers and later layers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The subject: a user id (a JWT's `sub`), a service's SPIFFE id or DNS name.
    pub subject: String,
    /// Roles (a JWT's `roles`, or those configured for a certificate's name).
    pub roles: Vec<String>,
    /// Scopes (OAuth 2.0, RFC 6749 §3.3; a JWT's space-separated `scope` or its `scp` list).
    pub scopes: Vec<String>,
    /// How it was authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// `subject`, authenticated by `method`, with no roles or scopes.
    pub fn new(subject: impl Into<String>, method: AuthMethod) -> Principal {
        Principal {
            subject: subject.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            method,
        }
    }

    /// With these roles.
    #[must_use]
    pub fn with_roles<I, S>(mut self, roles: I) -> Principal
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// With these scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Principal
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Whether it has role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether it has scope `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
