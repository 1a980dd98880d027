#!/usr/bin/env python3
"""Reads criterion's results of `cargo bench -p benches --bench codecs` and prints, per codec, size
and direction, the mean time through rpc-codec, the mean time of the library called directly, and
the overhead of our layer in percent."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = []
for codec in ("protobuf", "json", "msgpack"):
    for size in ("small", "4KiB", "64KiB"):
        for op in ("encode", "decode"):
            def mean(kind):
                f = root / f"{codec}_{size}" / f"{op}_{kind}" / "new" / "estimates.json"
                return json.loads(f.read_text())["mean"]["point_estimate"]
            try:
                ours, direct = mean("rpc_codec"), mean("direct")
            except FileNotFoundError:
                continue
            rows.append((codec, size, op, ours, direct, (ours / direct - 1) * 100))
print("| codec | size | op | rpc_codec | direct | overhead |")
print("|---|---|---|---|---|---|")
for codec, size, op, ours, direct, pct in rows:
    print(f"| {codec} | {size} | {op} | {ours/1000:.2f} µs | {direct/1000:.2f} µs | {pct:+.1f}% |")
