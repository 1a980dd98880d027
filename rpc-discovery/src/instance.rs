//! What a registry stores: service instances, and the sets of them that clients watch.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::DiscoveryError;

/// One running copy of a service, as registered.
///
/// Stored in etcd as JSON under `/{prefix}/{env}/{service}/{group}/{addr}`.
///
/// ```
/// use rpc_discovery::Instance;
///
/// let inst = Instance::new("shop.Inventory", "127.0.0.1:7001")
///     .env("PROD")
///     .group("blue")
///     .weight(200)
///     .zone("eu-west-1a")
///     .tag("env", "gray");
/// assert_eq!(inst.key(), ("PROD", "shop.Inventory", "blue", "127.0.0.1:7001"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The service name (`shop.Inventory`).
    pub service: String,
    /// The environment (`DEVEL`, `TEST`, `PROD`); default `default`.
    #[serde(default = "default_name")]
    pub env: String,
    /// A group within the environment (a cluster, a shard, a deployment color); default `default`.
    #[serde(default = "default_name")]
    pub group: String,
    /// Where to connect: `host:port`.
    pub addr: String,
    /// Relative share of traffic for weighted strategies; default 100.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The version the instance runs.
    #[serde(default)]
    pub version: String,
    /// The zone or rack it runs in.
    #[serde(default)]
    pub zone: String,
    /// Free-form labels, e.g. `env=gray` for canary routing.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_name() -> String {
    DEFAULT.to_owned()
}

fn default_weight() -> u32 {
    100
}

/// The environment and group of instances that do not name one.
pub const DEFAULT: &str = "default";

impl Instance {
    /// An instance of `service` at `addr` in the default environment and group, weight 100.
    pub fn new(service: impl Into<String>, addr: impl Into<String>) -> Instance {
        Instance {
            service: service.into(),
            env: default_name(),
            group: default_name(),
            addr: addr.into(),
            weight: default_weight(),
            version: String::new(),
            zone: String::new(),
            tags: BTreeMap::new(),
        }
    }

    /// Sets the environment.
    #[must_use]
    pub fn env(mut self, env: impl Into<String>) -> Instance {
        self.env = env.into();
        self
    }

    /// Sets the group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Instance {
        self.group = group.into();
        self
    }

    /// Sets the weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Instance {
        self.weight = weight;
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Instance {
        self.version = version.into();
        self
    }

    /// Sets the zone.
    #[must_use]
    pub fn zone(mut self, zone: impl Into<String>) -> Instance {
        self.zone = zone.into();
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Instance {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Sets the address, builder style (used when the port is known only after binding).
    #[must_use]
    pub fn addr(mut self, addr: impl Into<String>) -> Instance {
        self.addr = addr.into();
        self
    }

    /// What identifies the instance in a registry: environment, service, group and address.
    pub fn key(&self) -> (&str, &str, &str, &str) {
        (&self.env, &self.service, &self.group, &self.addr)
    }

    /// `true` if the instance carries tag `key` with `value`.
    pub fn has_tag(&self, key: &str, value: &str) -> bool {
        self.tags.get(key).is_some_and(|v| v == value)
    }

    /// Checks what every registry needs of an instance: a service, environment, group and
    /// address, and no `/` in the first three (registries use them as path segments).
    pub(crate) fn validate(&self) -> Result<(), DiscoveryError> {
        let bad = |what: String| Err(DiscoveryError::InvalidInstance(what));
        for (name, v) in [
            ("service", &self.service),
            ("env", &self.env),
            ("group", &self.group),
            ("addr", &self.addr),
        ] {
            if v.is_empty() {
                return bad(format!("{name} is empty"));
            }
            if name != "addr" && v.contains('/') {
                return bad(format!("{name} {v:?} contains '/'"));
            }
        }
        Ok(())
    }
}

/// Which instances a client wants: a service in an environment, optionally one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The service name.
    pub service: String,
    /// The environment.
    pub env: String,
    /// One group, or every group of the environment.
    pub group: Option<String>,
}

impl Query {
    /// Every instance of `service` in the default environment, any group.
    pub fn new(service: impl Into<String>) -> Query {
        Query {
            service: service.into(),
            env: default_name(),
            group: None,
        }
    }

    /// Only this environment.
    #[must_use]
    pub fn env(mut self, env: impl Into<String>) -> Query {
        self.env = env.into();
        self
    }

    /// Only this group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Query {
        self.group = Some(group.into());
        self
    }

    /// `true` if `instance` is one this query asks for.
    pub fn matches(&self, instance: &Instance) -> bool {
        instance.service == self.service
            && instance.env == self.env
            && self.group.as_ref().is_none_or(|g| *g == instance.group)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.env, self.service)?;
        if let Some(g) = &self.group {
            write!(f, "/{g}")?;
        }
        Ok(())
    }
}

/// The live instances of a query at one moment, sorted by address. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSet {
    instances: Arc<[Instance]>,
}

impl EndpointSet {
    /// A set of these instances (sorted by address, duplicates of an address keep the last).
    pub fn new(instances: impl IntoIterator<Item = Instance>) -> EndpointSet {
        let mut by_addr: BTreeMap<String, Instance> = BTreeMap::new();
        for i in instances {
            by_addr.insert(i.addr.clone(), i);
        }
        EndpointSet {
            instances: by_addr.into_values().collect(),
        }
    }

    /// The instances, sorted by address.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// `true` if none is live.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The instance at `addr`.
    pub fn get(&self, addr: &str) -> Option<&Instance> {
        self.instances
            .binary_search_by(|i| i.addr.as_str().cmp(addr))
            .ok()
            .map(|idx| &self.instances[idx])
    }
}
