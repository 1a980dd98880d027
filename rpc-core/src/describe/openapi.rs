//! The OpenAPI 3.1 export: the HTTP/JSON mapping of the described methods (`POST
//! /{package.Service}/{Method}` with the JSON codec's bodies), for gateways, API catalogues and
//! the HTTP clients other languages generate.

use serde_json::{json, Map, Value};

use super::json_schema::{definition, schema_at};
use super::model::Description;
use rpc_codec::schema::TypeRef;

/// Where named types live in the document.
const BASE: &str = "#/components/schemas/";

/// An OpenAPI 3.1 document: a `POST /{service}/{method}` operation per method described with
/// schemas, its request body and its `200` reply as the JSON codec writes them (no body for
/// none), and a `default` error reply `{code, message, details}`: the status code (the
/// protocol's, `docs/protocol.md` §11), its message, and a typed error's value; the messages
/// and enums under `components/schemas`. (The HTTP mapping itself is served by the gateway; the
/// paths follow it.)
pub fn to_openapi(description: &Description) -> Value {
    let mut paths = Map::new();
    for s in &description.services {
        for m in &s.methods {
            let Some(types) = &m.types else { continue };
            let mut op = json!({
                "operationId": m.path.replace('/', "."),
                "tags": [s.name],
                "responses": {
                    "200": reply(&types.response, m.one_way),
                    "default": {
                        "description": "The call failed: its status and, for a typed error, its value.",
                        "content": { "application/json": { "schema": {
                            "type": "object",
                            "properties": {
                                "code": { "type": "integer", "minimum": 0, "maximum": 16 },
                                "message": { "type": "string" },
                                "details": schema_at(&types.error, BASE),
                            },
                            "required": ["code", "message"],
                        } } },
                    },
                },
            });
            if let Some(summary) = m.docs.lines().next().filter(|l| !l.is_empty()) {
                op["summary"] = json!(summary);
                op["description"] = json!(m.docs);
            }
            if types.request != TypeRef::Unit {
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": schema_at(&types.request, BASE) } },
                });
            }
            let mut flags = Map::new();
            flags.insert("idempotent".into(), json!(m.idempotent));
            flags.insert("one_way".into(), json!(m.one_way));
            if let Some(t) = m.timeout_ms {
                flags.insert("timeout_ms".into(), json!(t));
            }
            if let Some(scope) = &m.scope {
                op["security"] = json!([{ "bearer": [scope] }]);
            }
            op["x-rpc"] = Value::Object(flags);
            paths.insert(format!("/{}", m.path), json!({ "post": op }));
        }
    }
    let mut schemas = Map::new();
    for (name, def) in description.types.iter() {
        schemas.insert(name.to_owned(), definition(def, BASE));
    }
    let title = description
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let version = description
        .services
        .first()
        .map_or("1", |s| s.version.as_str());
    json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}

fn reply(t: &TypeRef, one_way: bool) -> Value {
    if one_way || *t == TypeRef::Unit {
        return json!({ "description": "Done; no body." });
    }
    json!({
        "description": "The reply.",
        "content": { "application/json": { "schema": schema_at(t, BASE) } },
    })
}
