//! A description as data: built from descriptors, or read back from the JSON document a server
//! answers `rpc.Server/Describe` with (or a file holding one). The exports and the
//! breaking-change check work on it, so they work as well on a live server or a committed file.

use rpc_codec::schema::{Definitions, SchemaError, TypeRef};
use serde_json::Value;

use super::{ServiceDescriptor, JSON_FORMAT_VERSION};

/// Services and the types their methods use.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Description {
    /// The services, in the order described.
    pub services: Vec<ServiceDescription>,
    /// Every message and enum the methods' schemas refer to.
    pub types: Definitions,
}

/// One service of a [`Description`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceDescription {
    /// `package.Service`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its doc comment.
    pub docs: String,
    /// Its methods, in declaration order.
    pub methods: Vec<MethodDescription>,
}

/// One method of a [`ServiceDescription`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MethodDescription {
    /// The wire name (`Place`).
    pub name: String,
    /// `package.Service/Method`.
    pub path: String,
    /// Its doc comment.
    pub docs: String,
    /// How many arguments it takes (several travel as one message of them).
    pub arity: usize,
    /// No response.
    pub one_way: bool,
    /// The client sends a stream of requests.
    pub client_streaming: bool,
    /// The server answers with a stream.
    pub server_streaming: bool,
    /// Safe to repeat.
    pub idempotent: bool,
    /// Its default timeout, in milliseconds.
    pub timeout_ms: Option<f64>,
    /// The OAuth 2.0 scope a caller needs.
    pub scope: Option<String>,
    /// Its schemas, when described with them.
    pub types: Option<MethodTypes>,
}

/// A method's schemas in a [`Description`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodTypes {
    /// The request.
    pub request: TypeRef,
    /// A successful reply.
    pub response: TypeRef,
    /// The error.
    pub error: TypeRef,
    /// The names of the codecs it accepts (`protobuf`, `json`, `msgpack`, `raw`).
    pub codecs: Vec<String>,
}

/// A JSON description that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// Not JSON.
    #[error("the description is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A format version this reader does not know (`docs/protocol.md` §16): reading on would be
    /// guessing. Version 1 (no `format_version`) had no schemas.
    #[error("description format version {0:?} is not supported (expected {JSON_FORMAT_VERSION})")]
    Version(Option<u64>),
    /// A member missing or of the wrong kind, or a schema that does not read.
    #[error("{0}")]
    Schema(#[from] SchemaError),
}

impl Description {
    /// The description of `services`, as `rpc.Server/Describe` would answer it.
    pub fn of(services: &[&ServiceDescriptor]) -> Description {
        let mut types = Definitions::new();
        let services = services
            .iter()
            .map(|s| ServiceDescription {
                name: s.name.to_owned(),
                version: s.version.to_owned(),
                docs: s.docs.to_owned(),
                methods: s
                    .methods
                    .iter()
                    .map(|m| MethodDescription {
                        name: m.name.to_owned(),
                        path: m.path.to_owned(),
                        docs: m.docs.to_owned(),
                        arity: m.args.len(),
                        one_way: m.one_way,
                        client_streaming: m.client_streaming,
                        server_streaming: m.server_streaming,
                        idempotent: m.idempotent,
                        timeout_ms: m.timeout.map(|t| t.as_secs_f64() * 1000.0),
                        scope: m.scope.map(str::to_owned),
                        types: m.schemas.map(|f| {
                            let s = f.schemas(&mut types);
                            MethodTypes {
                                request: s.request,
                                response: s.response,
                                error: s.error,
                                codecs: s.codecs.iter().map(|c| c.name().to_owned()).collect(),
                            }
                        }),
                    })
                    .collect(),
            })
            .collect();
        Description { services, types }
    }

    /// Reads a JSON description (format version 2, `docs/protocol.md` §16), checking that every
    /// type a method or definition refers to is defined.
    ///
    /// # Errors
    /// [`DescriptionError`]: not JSON, another format version, or a member that does not read
    /// (with a JSON pointer to it).
    pub fn from_json(text: &str) -> Result<Description, DescriptionError> {
        let doc: Value = serde_json::from_str(text)?;
        match doc.get("format_version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(JSON_FORMAT_VERSION) => {}
            other => return Err(DescriptionError::Version(other)),
        }
        let bad = |at: &str, what: &str| SchemaError {
            at: at.to_owned(),
            what: what.to_owned(),
        };
        let types = match doc.get("types") {
            Some(t) => Definitions::from_json(t, "/types")?,
            None => return Err(bad("/types", "missing").into()),
        };
        let text_at = |v: &Value, key: &str, at: &str| -> Result<String, SchemaError> {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("{at}/{key}"), "must be a string"))
        };
        let mut services = Vec::new();
        let list = doc
            .get("services")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("/services", "must be an array"))?;
        for (i, s) in list.iter().enumerate() {
            let at = format!("/services/{i}");
            let mut methods = Vec::new();
            let ms = s
                .get("methods")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(&format!("{at}/methods"), "must be an array"))?;
            for (j, m) in ms.iter().enumerate() {
                let at = format!("{at}/methods/{j}");
                let ty = |key: &str| -> Result<Option<TypeRef>, SchemaError> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => {
                            let at = format!("{at}/{key}");
                            let t = TypeRef::from_json(v, &at)?;
                            types.check_type(&t, &at)?;
                            Ok(Some(t))
                        }
                    }
                };
                let types_of = match (ty("request_type")?, ty("response_type")?, ty("error_type")?)
                {
                    (Some(request), Some(response), Some(error)) => Some(MethodTypes {
                        request,
                        response,
                        error,
                        codecs: m
                            .get("codecs")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }),
                    _ => None,
                };
                methods.push(MethodDescription {
                    name: text_at(m, "name", &at)?,
                    path: text_at(m, "path", &at)?,
                    docs: m
                        .get("docs")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arity: m.get("args").and_then(Value::as_array).map_or(0, Vec::len),
                    one_way: m.get("one_way").and_then(Value::as_bool).unwrap_or(false),
                    client_streaming: m
                        .get("client_streaming")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    server_streaming: m
                        .get("server_streaming")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    idempotent: m
                        .get("idempotent")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    timeout_ms: m.get("timeout_ms").and_then(Value::as_f64),
                    scope: m.get("scope").and_then(Value::as_str).map(str::to_owned),
                    types: types_of,
                });
            }
            let name = text_at(s, "name", &at)?;
            if services.iter().any(|o: &ServiceDescription| o.name == name) {
                return Err(bad(&at, &format!("a second service named {name:?}")).into());
            }
            for (j, m) in methods.iter().enumerate() {
                if methods[..j].iter().any(|o| o.name == m.name) {
                    let at = format!("{at}/methods/{j}");
                    return Err(bad(&at, &format!("a second method named {:?}", m.name)).into());
                }
            }
            services.push(ServiceDescription {
                name,
                version: s
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("1")
                    .to_owned(),
                docs: s
                    .get("docs")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                methods,
            });
        }
        Ok(Description { services, types })
    }
}
