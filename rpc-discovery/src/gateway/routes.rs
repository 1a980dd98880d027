//! The gateway's route table: public paths and HTTP methods to service methods, with the path and
//! query parameters that make up the request message, from a configuration file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The gateway's configuration, as read from a JSON file ([`GatewayConfig::from_json`]).
///
/// ```json
/// {
///   "max_body": 1048576,
///   "api_keys": { "k-7f3a9c": "partner-acme" },
///   "timeout_ms": 5000,
///   "rpc_paths": true,
///   "cors": { "allow_origins": ["https://shop.example"] },
///   "cache": { "max_bytes": 16777216 },
///   "routes": [
///     { "method": "GET", "path": "/api/stock/{sku}", "call": "shop.Inventory/Check",
///       "message": "sku", "cache": { "ttl_ms": 1000 } },
///     { "method": "POST", "path": "/api/orders", "call": "shop.Orders/Place",
///       "auth": true, "quota": { "per_second": 5, "burst": 10 }, "timeout_ms": 2000 },
///     { "method": "GET", "path": "/api/orders/{id}", "call": "shop.Orders/Get",
///       "params": { "id": "integer" }, "auth": true,
///       "cache": { "ttl_ms": 500, "per_principal": true } }
///   ]
/// }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The largest request body, in bytes (default 1 MiB); larger is `413`.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// The deadline of a call whose route sets none, in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Whether `POST /{package.Service}/{Method}` reaches every service the registry lists, as a
    /// server's own HTTP port does (`docs/protocol.md` §18). Default `true`.
    #[serde(default = "yes")]
    pub rpc_paths: bool,
    /// Cross-origin requests from browsers; none allowed when absent.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// The response cache's bound.
    #[serde(default)]
    pub cache: CacheConfig,
    /// API keys callers may send in `x-api-key` instead of a bearer token: each key and the
    /// caller it names (the principal's subject, which keys the quotas and the per-caller
    /// caches). An unknown key is `401`.
    #[serde(default)]
    pub api_keys: BTreeMap<String, String>,
    /// The public routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body: default_max_body(),
            timeout_ms: default_timeout_ms(),
            rpc_paths: true,
            cors: None,
            cache: CacheConfig::default(),
            api_keys: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}

fn default_max_body() -> usize {
    1 << 20
}

fn default_timeout_ms() -> u64 {
    5000
}

fn yes() -> bool {
    true
}

impl GatewayConfig {
    /// Parses and checks a configuration.
    ///
    /// # Errors
    /// Malformed JSON, an unknown field, or a route that cannot work: an unknown HTTP method, a
    /// path that does not start with `/`, a `call` not of the form `package.Service/Method`, a
    /// `message` that names no parameter, a parameter named twice, a cache on a route that is
    /// not idempotent.
    pub fn from_json(text: &str) -> Result<GatewayConfig, RouteError> {
        let config: GatewayConfig =
            serde_json::from_str(text).map_err(|e| RouteError(format!("gateway config: {e}")))?;
        RouteTable::new(&config.routes)?;
        Ok(config)
    }
}

/// Browsers on these origins may call the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (`https://shop.example`), or `"*"` for any.
    pub allow_origins: Vec<String>,
    /// Request headers a browser may send beyond the simple ones (default: `authorization`,
    /// `content-type`, `x-request-id`, `rpc-timeout`).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// How long a browser may keep a preflight's answer, in seconds (default 600).
    #[serde(default = "default_max_age")]
    pub max_age_s: u64,
}

fn default_max_age() -> u64 {
    600
}

/// The response cache's bound.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Bytes of cached responses (bodies and keys) at most; default 16 MiB.
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: default_cache_bytes(),
        }
    }
}

fn default_cache_bytes() -> u64 {
    16 << 20
}

/// One public route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// The path, with `{name}` segments captured as parameters: `/api/orders/{id}`.
    pub path: String,
    /// The method called: `package.Service/Method`.
    pub call: String,
    /// Types of the parameters (path segments and query parameters): `string` (default for path
    /// parameters), `integer`, `number` or `boolean`. Query parameters not named here are not
    /// passed.
    #[serde(default)]
    pub params: BTreeMap<String, ParamType>,
    /// The parameter whose value is the whole request message (for a method that takes a
    /// scalar, such as a SKU); without it the message is a JSON object of the request body's
    /// fields and the parameters.
    #[serde(default)]
    pub message: Option<String>,
    /// This route's deadline, in milliseconds (default: the gateway's).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Whether callers must present a valid bearer token or a known API key (`401`
    /// otherwise).
    #[serde(default)]
    pub auth: bool,
    /// A quota per caller (the token's subject, or the client's IP address): `429` with
    /// `Retry-After` past it.
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// Caches successful answers (only for routes whose calls are idempotent).
    #[serde(default)]
    pub cache: Option<RouteCacheConfig>,
    /// Whether the call may be retried (and so cached). Default: true for `GET`, false
    /// otherwise.
    #[serde(default)]
    pub idempotent: Option<bool>,
}

/// A parameter's type, which its text must parse as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text.
    String,
    /// A signed 64-bit integer.
    Integer,
    /// A floating-point number.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// A quota per caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Calls per second, sustained.
    pub per_second: f64,
    /// Calls at once above the rate.
    pub burst: f64,
}

/// How a route's answers are cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// How long an answer is served from the cache, in milliseconds.
    pub ttl_ms: u64,
    /// Whether each caller (the token's subject) has answers of its own (for routes whose answer
    /// depends on who asks).
    #[serde(default)]
    pub per_principal: bool,
}

/// A configuration that cannot work, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

/// One segment of a route's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A checked route.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) index: usize,
    pub(crate) config: RouteConfig,
    pub(crate) method: http::Method,
    segments: Vec<Segment>,
    /// `GET /api/orders/{id}`: how the route is named in logs and metrics.
    name: String,
}

impl Route {
    /// The route's deadline, or `default`.
    pub(crate) fn timeout(&self, default: Duration) -> Duration {
        self.config
            .timeout_ms
            .map_or(default, Duration::from_millis)
    }

    pub(crate) fn idempotent(&self) -> bool {
        self.config
            .idempotent
            .unwrap_or(self.method == http::Method::GET)
    }

    /// `GET /api/orders/{id}`: how the route is named in logs and metrics.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The routes, checked and ready to match.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

/// What a request path matched.
pub(crate) enum Matched<'a> {
    /// A route, with its path parameters.
    Route(&'a Route, Vec<(String, String)>),
    /// The path is a route's, but not for this HTTP method: the methods it has.
    WrongMethod(Vec<String>),
    /// No route has this path.
    None,
}

impl RouteTable {
    /// Checks every route: a known HTTP method, a path that starts with `/`, a `call` of the
    /// form `package.Service/Method`, a `message` that names a parameter, parameters named once,
    /// a cache only on an idempotent route.
    pub(crate) fn new(routes: &[RouteConfig]) -> Result<RouteTable, RouteError> {
        let mut table = Vec::new();
        for (index, config) in routes.iter().enumerate() {
            let what = format!("route {} ({} {})", index + 1, config.method, config.path);
            let method = http::Method::from_bytes(config.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| RouteError(format!("{what}: unknown HTTP method")))?;
            let Some(rest) = config.path.strip_prefix('/') else {
                return Err(RouteError(format!("{what}: the path must start with /")));
            };
            let mut segments = Vec::new();
            for s in rest.split('/') {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if name.is_empty() || segments.contains(&Segment::Param(name.to_owned())) {
                        return Err(RouteError(format!(
                            "{what}: parameter {{{name}}} is empty or named twice"
                        )));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                } else {
                    segments.push(Segment::Literal(s.to_owned()));
                }
            }
            match config.call.rsplit_once('/') {
                Some((s, m)) if !s.is_empty() && !m.is_empty() => {}
                _ => {
                    return Err(RouteError(format!(
                        "{what}: call {:?} is not package.Service/Method",
                        config.call
                    )))
                }
            }
            if let Some(m) = &config.message {
                let in_path = segments.contains(&Segment::Param(m.clone()));
                if !in_path && !config.params.contains_key(m) {
                    return Err(RouteError(format!(
                        "{what}: message {m:?} names no parameter"
                    )));
                }
            }
            let route = Route {
                index,
                name: format!("{method} {}", config.path),
                config: config.clone(),
                method,
                segments,
            };
            if route.config.cache.is_some() && !route.idempotent() {
                return Err(RouteError(format!(
                    "{what}: only idempotent routes may be cached"
                )));
            }
            table.push(route);
        }
        Ok(RouteTable { routes: table })
    }

    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path`, tried in order.
    pub(crate) fn find(&self, method: &http::Method, path: &str) -> Matched<'_> {
        let Some(rest) = path.strip_prefix('/') else {
            return Matched::None;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &parts) else {
                continue;
            };
            if route.method == *method {
                return Matched::Route(route, params);
            }
            allowed.push(route.method.to_string());
        }
        if allowed.is_empty() {
            Matched::None
        } else {
            Matched::WrongMethod(allowed)
        }
    }
}

fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    if segments.len() != parts.len() {
        return None;
    }
    let mut params = Vec::new();
    for (segment, part) in segments.iter().zip(parts) {
        match segment {
            Segment::Literal(l) if l == part => {}
            Segment::Literal(_) => return None,
            Segment::Param(_) if part.is_empty() => return None,
            Segment::Param(name) => params.push((name.clone(), percent_decode(part)?)),
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes (and, in a query, `+` as a space); `None` for a bad escape or text
/// that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's `name=value` pairs, decoded (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode(&s.replace('+', " ")).ok_or_else(|| {
                    format!("query parameter {k:?} is not valid percent-encoded UTF-8")
                })
            };
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The request message of a call on `route`: the parameter its `message` names, or a JSON
/// object of `body`'s fields and the parameters (path parameters, then the query parameters the
/// route names). The text of each parameter must parse as its type.
///
/// # Errors
/// Says which parameter or what of the body is wrong (a `400` for the caller).
pub(crate) fn build_message(
    route: &RouteConfig,
    path_params: Vec<(String, String)>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut params: Vec<(String, String)> = path_params;
    for (k, v) in query_pairs(query.unwrap_or_default())? {
        if route.params.contains_key(&k) && !params.iter().any(|(p, _)| *p == k) {
            params.push((k, v));
        }
    }
    let typed = |name: &str, text: &str| -> Result<Value, String> {
        let ty = route.params.get(name).copied().unwrap_or(ParamType::String);
        let bad = |what: &str| format!("parameter {name:?} must be {what}, got {text:?}");
        Ok(match ty {
            ParamType::String => Value::String(text.to_owned()),
            ParamType::Integer => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
            ParamType::Number => {
                let n: f64 = text.parse().map_err(|_| bad("a number"))?;
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| bad("a finite number"))?
            }
            ParamType::Boolean => Value::Bool(text.parse().map_err(|_| bad("true or false"))?),
        })
    };
    if let Some(name) = &route.message {
        let Some((_, text)) = params.iter().find(|(k, _)| k == name) else {
            return Err(format!("parameter {name:?} is missing"));
        };
        return serde_json::to_vec(&typed(name, text)?).map_err(|e| e.to_string());
    }
    let mut object = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o)) => o,
            Ok(_) if params.is_empty() => return Ok(body.to_vec()),
            Ok(_) => return Err("the body must be a JSON object on this route".into()),
            Err(e) => return Err(format!("the body is not JSON: {e}")),
        }
    };
    for (k, v) in &params {
        object.insert(k.clone(), typed(k, v)?);
    }
    serde_json::to_vec(&Value::Object(object)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: &str) -> RouteConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn paths_match_with_parameters_and_methods() {
        let table = RouteTable::new(&[
            route(r#"{"method":"GET","path":"/api/orders/{id}","call":"shop.Orders/Get","params":{"id":"integer"}}"#),
            route(r#"{"method":"POST","path":"/api/orders","call":"shop.Orders/Place"}"#),
        ])
        .unwrap();
        match table.find(&http::Method::GET, "/api/orders/42") {
            Matched::Route(r, params) => {
                assert_eq!(r.config.call, "shop.Orders/Get");
                assert_eq!(params, vec![("id".to_owned(), "42".to_owned())]);
            }
            _ => panic!("no match"),
        }
        assert!(matches!(
            table.find(&http::Method::DELETE, "/api/orders/42"),
            Matched::WrongMethod(m) if m == ["GET"]
        ));
        assert!(matches!(
            table.find(&http::Method::GET, "/api/orders/"),
            Matched::None
        ));
        assert!(matches!(
            table.find(&http::Method::GET, "/api/other"),
            Matched::None
        ));
    }

    #[test]
    fn messages_are_built_from_typed_parameters() {
        let r = route(
            r#"{"method":"GET","path":"/o/{id}","call":"a.B/C","params":{"id":"integer","full":"boolean"}}"#,
        );
        let params = vec![("id".to_owned(), "42".to_owned())];
        let m = build_message(&r, params.clone(), Some("full=true&junk=1"), b"").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&m).unwrap(),
            serde_json::json!({"id": 42, "full": true})
        );
        let e = build_message(&r, vec![("id".into(), "x1".into())], None, b"").unwrap_err();
        assert!(e.contains("\"id\"") && e.contains("integer"), "{e}");
        let e = build_message(&r, params, Some("full=maybe"), b"").unwrap_err();
        assert!(e.contains("\"full\""), "{e}");

        // The whole message from one parameter, percent-decoded.
        let r = route(r#"{"method":"GET","path":"/s/{sku}","call":"a.B/C","message":"sku"}"#);
        let table = RouteTable::new(std::slice::from_ref(&r)).unwrap();
        let Matched::Route(_, params) = table.find(&http::Method::GET, "/s/sku%201") else {
            panic!("no match");
        };
        assert_eq!(build_message(&r, params, None, b"").unwrap(), br#""sku 1""#);

        // Body fields and parameters together.
        let r =
            route(r#"{"method":"POST","path":"/o/{id}","call":"a.B/C","params":{"id":"integer"}}"#);
        let m = build_message(&r, vec![("id".into(), "7".into())], None, br#"{"qty":2}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&m).unwrap(),
            serde_json::json!({"id": 7, "qty": 2})
        );
        assert!(build_message(&r, vec![], None, b"{nope").is_err());
    }

    #[test]
    fn bad_routes_are_refused() {
        for bad in [
            r#"{"method":"GET","path":"nope","call":"a.B/C"}"#,
            r#"{"method":"GET","path":"/x","call":"nope"}"#,
            r#"{"method":"GET","path":"/x/{a}/{a}","call":"a.B/C"}"#,
            r#"{"method":"GET","path":"/x","call":"a.B/C","message":"ghost"}"#,
            r#"{"method":"POST","path":"/x","call":"a.B/C","cache":{"ttl_ms":5}}"#,
        ] {
            assert!(RouteTable::new(&[route(bad)]).is_err(), "{bad}");
        }
        assert!(GatewayConfig::from_json(r#"{"routes":[],"surprise":1}"#).is_err());
    }

    #[test]
    fn percent_decoding_refuses_bad_escapes() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
