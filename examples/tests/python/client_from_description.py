#!/usr/bin/env python3
"""A client written from docs/protocol.md and a server's description alone.

It speaks the wire protocol over TCP (preface, SETTINGS, REQUEST, RESPONSE, PING/PONG), asks
`rpc.Server/Describe` for the JSON description, and calls every method of one service in JSON,
MessagePack and Protobuf. Requests are built from the schemas alone (a sample value per type);
replies are checked against them: a success must decode as the response type, a failure must be
a status whose typed details (`rpc-error-bin`, MessagePack) decode as the error type. Protobuf
uses the classes `protoc --python_out` generated from the exported .proto.

usage: client_from_description.py HOST:PORT SERVICE PROTO_MODULE_DIR SAMPLE_STRING
exit status 0 when every call checked out; the last line is `python client: calls=N ok`.
"""

import importlib
import json
import socket
import struct
import sys

import msgpack

PREFACE = bytes([0x7F, 0x52, 0x50, 0x43, 0x01, 0x00, 0x00, 0x00])
SETTINGS, REQUEST, RESPONSE, CANCEL, PING, PONG, GOAWAY = 1, 2, 3, 4, 5, 6, 7
ONE_WAY = 0x01
RAW, PROTOBUF, JSON, MSGPACK = 0, 1, 2, 3
CODEC_NAMES = {"raw": RAW, "protobuf": PROTOBUF, "json": JSON, "msgpack": MSGPACK}
ERROR_DETAILS = "rpc-error-bin"


class Conn:
    """One connection: the handshake, then one call at a time."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.next_id = 1
        # Preface, then SETTINGS with no entries (every default), without waiting (section 2).
        self.sock.sendall(PREFACE + self.frame(SETTINGS, 0, 0, b""))
        preface = self.read_exact(8)
        if preface[:4] != PREFACE[:4] or preface[4] != 1:
            raise RuntimeError("not a server of this protocol: %r" % preface)
        kind, _, _, payload = self.read_frame()
        if kind != SETTINGS:
            raise RuntimeError("the server's first frame is %d, not SETTINGS" % kind)
        self.settings = {}
        for i in range(0, len(payload), 6):
            key, value = struct.unpack(">HI", payload[i:i + 6])
            self.settings[key] = value

    @staticmethod
    def frame(kind, flags, call_id, payload):
        return struct.pack(">IBBI", len(payload), kind, flags, call_id) + payload

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        length, kind, flags, call_id = struct.unpack(">IBBI", self.read_exact(10))
        return kind, flags, call_id, self.read_exact(length)

    def call(self, path, codec, body, one_way=False, metadata=()):
        call_id = self.next_id
        self.next_id += 1
        method = path.encode()
        md = b"".join(
            struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
            for k, v in ((k.encode(), v) for k, v in metadata)
        )
        payload = (struct.pack(">H", len(method)) + method + struct.pack(">BQI", codec, 5_000_000, len(md))
                   + md + body)
        self.sock.sendall(self.frame(REQUEST, ONE_WAY if one_way else 0, call_id, payload))
        if one_way:
            return None
        while True:
            kind, _, cid, p = self.read_frame()
            if kind == PING:
                self.sock.sendall(self.frame(PONG, 0, 0, p))
                continue
            if kind == GOAWAY:
                raise RuntimeError("GOAWAY from the server")
            if kind != RESPONSE or cid != call_id:
                continue
            status = p[0]
            (mlen,) = struct.unpack(">H", p[1:3])
            message = p[3:3 + mlen].decode("utf-8", "replace")
            at = 3 + mlen
            (mdlen,) = struct.unpack(">I", p[at:at + 4])
            md = parse_metadata(p[at + 4:at + 4 + mdlen])
            return status, message, md, p[at + 4 + mdlen:]


def parse_metadata(block):
    out, i = {}, 0
    while i < len(block):
        (klen,) = struct.unpack(">H", block[i:i + 2])
        key = block[i + 2:i + 2 + klen].decode()
        i += 2 + klen
        (vlen,) = struct.unpack(">H", block[i:i + 2])
        out[key] = block[i + 2:i + 2 + vlen]
        i += 2 + vlen
    return out


class Schemas:
    """Sample values from types, and checks of values against them (docs/protocol.md §16)."""

    INTS = {"u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1), "i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1)}

    def __init__(self, types, sample_string):
        self.types = types
        self.sample_string = sample_string

    def sample(self, t, depth=0):
        if isinstance(t, str):
            return {"bool": False, "f32": 1.5, "f64": 1.5, "string": self.sample_string,
                    "bytes": b"\x00\x01", "unit": None}.get(t, 1)
        (form, inner), = t.items()
        if form == "list":
            return [] if depth > 3 else [self.sample(inner, depth + 1)]
        if form == "optional":
            return None if depth > 3 else self.sample(inner, depth + 1)
        if form == "map":
            return {}
        if form == "ref":
            d = self.types[inner]
            if d["kind"] == "message":
                return {f["name"]: self.sample(f["type"], depth + 1) for f in d["fields"]}
            v = d["variants"][0]
            return v["name"] if v["shape"] == "unit" else {v["name"]: {}}
        raise ValueError("no sample for opaque type %r" % t)

    def check(self, value, t, at="$"):
        """Raises ValueError unless `value` (decoded JSON or MessagePack) is of type `t`."""
        def fail(why):
            raise ValueError("%s: %s (got %r)" % (at, why, value))
        if isinstance(t, str):
            if t in self.INTS:
                lo, hi = self.INTS[t]
                if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                    fail("expected " + t)
            elif t == "bool" and not isinstance(value, bool):
                fail("expected bool")
            elif t in ("f32", "f64") and not isinstance(value, (int, float)):
                fail("expected a number")
            elif t == "string" and not isinstance(value, str):
                fail("expected a string")
            elif t == "bytes" and not isinstance(value, (bytes, str)):
                fail("expected bytes")
            return
        (form, inner), = t.items()
        if form == "optional":
            if value is not None:
                self.check(value, inner, at)
        elif form == "list":
            if not isinstance(value, list):
                fail("expected a list")
            for i, v in enumerate(value):
                self.check(v, inner, "%s[%d]" % (at, i))
        elif form == "map":
            if not isinstance(value, dict):
                fail("expected a map")
            for k, v in value.items():
                self.check(v, inner["value"], "%s{%s}" % (at, k))
        elif form == "ref":
            d = self.types[inner]
            if d["kind"] == "message":
                if not isinstance(value, dict):
                    fail("expected a %s object" % inner)
                for f in d["fields"]:
                    if f["name"] in value:
                        self.check(value[f["name"]], f["type"], "%s.%s" % (at, f["name"]))
                    elif f["required"]:
                        fail("missing field %s of %s" % (f["name"], inner))
            else:
                names = {v["name"]: v for v in d["variants"]}
                if isinstance(value, str):
                    if value not in names:
                        fail("not a variant of " + inner)
                elif isinstance(value, dict) and len(value) == 1:
                    (name, content), = value.items()
                    if name not in names:
                        fail("not a variant of " + inner)
                    variant = names[name]
                    if variant["shape"] == "struct":
                        for f in variant.get("fields", []):
                            if f["required"] and f["name"] not in content:
                                fail("variant %s lacks %s" % (name, f["name"]))
                else:
                    fail("expected a variant of " + inner)


def proto_request(pb, t, value, rust_names):
    """The Protobuf message for a request of type `t` from a sample value."""
    from google.protobuf import empty_pb2, wrappers_pb2
    if t == "unit":
        return empty_pb2.Empty()
    wrappers = {"string": wrappers_pb2.StringValue, "u64": wrappers_pb2.UInt64Value,
                "u32": wrappers_pb2.UInt32Value, "i64": wrappers_pb2.Int64Value,
                "i32": wrappers_pb2.Int32Value, "bool": wrappers_pb2.BoolValue}
    if isinstance(t, str):
        return wrappers[t](value=value)
    cls = getattr(pb, t["ref"])
    return cls(**{rust_names.get((t["ref"], k), k): v for k, v in value.items() if v is not None})


def proto_reply(pb, t, body):
    from google.protobuf import empty_pb2, wrappers_pb2
    if t == "unit":
        return empty_pb2.Empty.FromString(body)
    if isinstance(t, str):
        cls = {"string": wrappers_pb2.StringValue, "u64": wrappers_pb2.UInt64Value,
               "u32": wrappers_pb2.UInt32Value}[t]
        return cls.FromString(body)
    return getattr(pb, t["ref"]).FromString(body)


def main():
    addr, service, proto_dir, sample_string = sys.argv[1:5]
    host, port = addr.rsplit(":", 1)
    conn = Conn(host, int(port))
    status, message, _, body = conn.call("rpc.Server/Describe", RAW, b"json")
    if status != 0:
        raise RuntimeError("Describe failed: %d %s" % (status, message))
    doc = json.loads(body)
    if doc.get("format_version") != 2:
        raise RuntimeError("unknown description format %r" % doc.get("format_version"))
    schemas = Schemas(doc["types"], sample_string)
    rust_names = {}
    for name, d in doc["types"].items():
        for f in d.get("fields", []):
            rust_names[(name, f["name"])] = f.get("rust_name", f["name"])
    sys.path.insert(0, proto_dir)
    pb = importlib.import_module("shop_pb2")
    svc = next(s for s in doc["services"] if s["name"] == service)
    calls = 0
    for m in svc["methods"]:
        if m.get("client_streaming") or m.get("server_streaming"):
            # Streams are protocol 1.1 (section 17); this client speaks 1.0 and announces no
            # FEATURES, so the server would refuse a stream flag.
            print("skip    %-40s streams (protocol 1.1)" % m["path"])
            continue
        req_t, resp_t, err_t = m["request_type"], m["response_type"], m["error_type"]
        value = schemas.sample(req_t)
        for codec_name in ("json", "msgpack", "protobuf"):
            if codec_name not in m["codecs"]:
                continue
            codec = CODEC_NAMES[codec_name]
            if req_t == "unit":
                body = b""
            elif codec == JSON:
                body = json.dumps(value).encode()
            elif codec == MSGPACK:
                body = msgpack.packb(value, use_bin_type=True)
            else:
                body = proto_request(pb, req_t, value, rust_names).SerializeToString()
            reply = conn.call(m["path"], codec, body, one_way=m["one_way"],
                              metadata=[("caller", b"python")])
            calls += 1
            if m["one_way"]:
                continue
            status, message, md, out = reply
            where = "%s in %s" % (m["path"], codec_name)
            if status == 0:
                if resp_t == "unit":
                    if codec == PROTOBUF:
                        proto_reply(pb, "unit", out)
                    elif out:
                        raise ValueError("%s: a unit reply has a body" % where)
                elif codec == JSON:
                    schemas.check(json.loads(out), resp_t, where)
                elif codec == MSGPACK:
                    schemas.check(msgpack.unpackb(out, raw=False), resp_t, where)
                else:
                    proto_reply(pb, resp_t, out)
                print("ok      %-40s %-8s -> %s" % (m["path"], codec_name, "reply"))
            elif ERROR_DETAILS in md and err_t.get("ref") != "rpc.Status":
                # A typed error: its value decodes as the error type, in MessagePack.
                schemas.check(msgpack.unpackb(md[ERROR_DETAILS], raw=False), err_t, where)
                print("ok      %-40s %-8s -> typed error %d %s" % (m["path"], codec_name, status, message))
            else:
                raise ValueError("%s: status %d %s, without a typed error" % (where, status, message))
    print("python client: calls=%d ok" % calls)


if __name__ == "__main__":
    main()
