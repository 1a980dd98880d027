//! The breaking-change check: what changed between two descriptions of the same services, and
//! which changes would break a caller built against the old one.

use std::collections::HashSet;
use std::fmt;

use rpc_codec::schema::{Definitions, FieldDef, TypeDef, TypeRef};

use super::model::{Description, MethodDescription};

/// One difference between two descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// Whether a caller built against the old description may fail against the new one.
    pub breaking: bool,
    /// Where: a service, a method path, or a method path and a type path
    /// (`shop.Orders/Place request Order.lines[].sku`).
    pub at: String,
    /// What changed.
    pub what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.breaking {
            "breaking"
        } else {
            "compatible"
        };
        write!(f, "{kind:<10}  {}: {}", self.at, self.what)
    }
}

/// Which way a message travels, which decides whether a change breaks: a server must still read
/// what old clients send (requests), and old clients must still read what the server sends
/// (responses and errors).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Request,
    Reply,
}

struct Diff<'a> {
    old: &'a Definitions,
    new: &'a Definitions,
    out: Vec<Change>,
    /// Pairs of named types already compared, so that recursive types end.
    seen: HashSet<(String, String, bool)>,
}

impl Diff<'_> {
    fn push(&mut self, breaking: bool, at: &str, what: impl Into<String>) {
        self.out.push(Change {
            breaking,
            at: at.to_owned(),
            what: what.into(),
        });
    }

    fn types(&mut self, old: &TypeRef, new: &TypeRef, flow: Flow, at: &str) {
        match (old, new) {
            (TypeRef::Named(a), TypeRef::Named(b)) => self.named(a, b, flow, at),
            (TypeRef::List(a), TypeRef::List(b)) => self.types(a, b, flow, &format!("{at}[]")),
            (TypeRef::Optional(a), TypeRef::Optional(b)) => self.types(a, b, flow, at),
            (TypeRef::Map(ka, va), TypeRef::Map(kb, vb)) => {
                self.types(ka, kb, flow, &format!("{at}{{key}}"));
                self.types(va, vb, flow, &format!("{at}{{value}}"));
            }
            // A request field that may now be absent still reads what old clients send; a reply
            // that is now always there still reads for old clients.
            (a, TypeRef::Optional(b)) if flow == Flow::Request && a == &**b => {
                self.push(false, at, "became optional");
            }
            (TypeRef::Optional(a), b) if flow == Flow::Reply && &**a == b => {
                self.push(false, at, "is now always present");
            }
            (a, b) if a == b => {}
            (a, b) => self.push(
                true,
                at,
                format!("type changed from {} to {}", a.to_json(), b.to_json()),
            ),
        }
    }

    fn named(&mut self, a: &str, b: &str, flow: Flow, at: &str) {
        if !self
            .seen
            .insert((a.to_owned(), b.to_owned(), flow == Flow::Request))
        {
            return;
        }
        let (Some(old), Some(new)) = (self.old.get(a), self.new.get(b)) else {
            return self.push(true, at, format!("type {a} or {b} is not defined"));
        };
        match (old, new) {
            (TypeDef::Message(o), TypeDef::Message(n)) => {
                self.fields(&o.fields, &n.fields, flow, &format!("{at} {b}"))
            }
            (TypeDef::Enum(o), TypeDef::Enum(n)) => {
                let at = format!("{at} {b}");
                if o.repr != n.repr {
                    self.push(true, &at, "the enum's representation changed");
                }
                for ov in &o.variants {
                    match n.variants.iter().find(|v| v.name == ov.name) {
                        None => self.push(true, &at, format!("variant {} removed", ov.name)),
                        Some(nv) => {
                            if ov.number != nv.number {
                                self.push(true, &at, format!("variant {} renumbered", ov.name));
                            }
                            if ov.shape != nv.shape {
                                self.push(true, &at, format!("variant {} changed shape", ov.name));
                            }
                            let vat = format!("{at}::{}", ov.name);
                            self.fields(&ov.fields, &nv.fields, flow, &vat);
                        }
                    }
                }
                for nv in &n.variants {
                    if !o.variants.iter().any(|v| v.name == nv.name) {
                        // Old clients cannot read a variant they do not know.
                        self.push(
                            flow == Flow::Reply,
                            &at,
                            format!("variant {} added", nv.name),
                        );
                    }
                }
            }
            _ => self.push(
                true,
                at,
                format!("{a} changed between a message and an enum"),
            ),
        }
    }

    fn fields(&mut self, old: &[FieldDef], new: &[FieldDef], flow: Flow, at: &str) {
        for of in old {
            let fat = format!("{at}.{}", of.name);
            let Some(nf) = new.iter().find(|f| f.name == of.name) else {
                self.push(true, &fat, "field removed (or renamed)");
                continue;
            };
            if flow == Flow::Request && nf.required && !of.required {
                self.push(true, &fat, "field became required");
            }
            if flow == Flow::Reply && of.required && !nf.required {
                self.push(true, &fat, "field may now be absent from replies");
            }
            match (&of.proto, &nf.proto) {
                (Some(op), Some(np)) if op.number != np.number => self.push(
                    true,
                    &fat,
                    format!(
                        "Protobuf number changed from {} to {}",
                        op.number, np.number
                    ),
                ),
                (Some(op), Some(np)) if op.kind != np.kind || op.repeated != np.repeated => self
                    .push(
                        true,
                        &fat,
                        format!("Protobuf type changed from {} to {}", op.kind, np.kind),
                    ),
                (Some(_), None) => self.push(true, &fat, "no longer has a Protobuf encoding"),
                _ => {}
            }
            self.types(&of.ty, &nf.ty, flow, &fat);
        }
        for nf in new {
            if !old.iter().any(|f| f.name == nf.name) {
                let fat = format!("{at}.{}", nf.name);
                let breaking = flow == Flow::Request && nf.required;
                let what = if breaking {
                    "required field added: old clients do not send it"
                } else {
                    "field added"
                };
                self.push(breaking, &fat, what);
            }
        }
    }

    fn method(&mut self, o: &MethodDescription, n: &MethodDescription) {
        let at = &o.path;
        if o.one_way != n.one_way {
            self.push(true, at, format!("one_way changed to {}", n.one_way));
        }
        if o.client_streaming != n.client_streaming {
            let now = if n.client_streaming {
                "a stream"
            } else {
                "one message"
            };
            self.push(true, at, format!("the request is now {now}"));
        }
        if o.server_streaming != n.server_streaming {
            let now = if n.server_streaming {
                "a stream"
            } else {
                "one message"
            };
            self.push(true, at, format!("the response is now {now}"));
        }
        if o.idempotent && !n.idempotent {
            self.push(
                true,
                at,
                "no longer idempotent: callers may have retried it",
            );
        } else if !o.idempotent && n.idempotent {
            self.push(false, at, "now idempotent");
        }
        if o.arity != n.arity && (o.arity < 2 || n.arity < 2) {
            self.push(
                true,
                at,
                format!("arguments changed from {} to {}", o.arity, n.arity),
            );
        }
        match (&o.scope, &n.scope) {
            (a, b) if a == b => {}
            (_, Some(s)) => self.push(true, at, format!("now requires the scope {s}")),
            (Some(_), None) => self.push(false, at, "no longer requires a scope"),
            _ => {}
        }
        if o.timeout_ms != n.timeout_ms {
            self.push(false, at, "default timeout changed");
        }
        match (&o.types, &n.types) {
            (Some(ot), Some(nt)) => {
                self.types(
                    &ot.request,
                    &nt.request,
                    Flow::Request,
                    &format!("{at} request"),
                );
                self.types(
                    &ot.response,
                    &nt.response,
                    Flow::Reply,
                    &format!("{at} response"),
                );
                self.types(&ot.error, &nt.error, Flow::Reply, &format!("{at} error"));
                for c in &ot.codecs {
                    if !nt.codecs.contains(c) {
                        self.push(true, at, format!("no longer accepts {c}"));
                    }
                }
                for c in &nt.codecs {
                    if !ot.codecs.contains(c) {
                        self.push(false, at, format!("now accepts {c}"));
                    }
                }
            }
            (Some(_), None) => self.push(true, at, "no longer described with schemas"),
            _ => {}
        }
    }
}

/// Every difference between `old` and `new`, services and methods matched by name, each
/// classified: removing a service or method, changing a request, response or error type,
/// removing or renaming a field, changing a field's type or Protobuf number, a request field
/// becoming required (or a reply field optional), removing an enum variant (or adding one to a
/// reply), flipping `one_way`, dropping `idempotent`, requiring a new scope, or dropping a codec
/// breaks callers; additions of services, methods, optional request fields, reply fields and
/// codecs do not. An empty list means the descriptions agree.
pub fn diff(old: &Description, new: &Description) -> Vec<Change> {
    let mut d = Diff {
        old: &old.types,
        new: &new.types,
        out: Vec::new(),
        seen: HashSet::new(),
    };
    for os in &old.services {
        let Some(ns) = new.services.iter().find(|s| s.name == os.name) else {
            d.push(true, &os.name, "service removed");
            continue;
        };
        for om in &os.methods {
            match ns.methods.iter().find(|m| m.name == om.name) {
                None => d.push(true, &om.path, "method removed"),
                Some(nm) => d.method(om, nm),
            }
        }
        for nm in &ns.methods {
            if !os.methods.iter().any(|m| m.name == nm.name) {
                d.push(false, &nm.path, "method added");
            }
        }
    }
    for ns in &new.services {
        if !old.services.iter().any(|s| s.name == ns.name) {
            d.push(false, &ns.name, "service added");
        }
    }
    d.out
}
