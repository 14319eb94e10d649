#!/usr/bin/python3
"""A pylibmc client for the interop tests: writes or reads `count` values on a pool, with the
JSON subclass docs/sharing-a-pool.md shows. Prints one JSON line. Values are those of `valueFor` in
interop.e2e-spec.ts.

    pylibmc-peer.py '{"op": "write"|"read", "servers": [...], "behaviors": {...}, "prefix": "py:", "count": 3000}'
"""
import json, sys, zlib
import pylibmc

JSON_FLAG = 0x100

class JsonClient(pylibmc.Client):
    """pylibmc with JSON for the values nestjs-memcached stores as JSON (valueFormat 'pylibmc')."""
    def serialize(self, value):
        if value is None or isinstance(value, (bool, float, dict, list)):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), JSON_FLAG
        return super().serialize(value)

    def deserialize(self, data, flags):
        if flags & JSON_FLAG:
            return json.loads(data.decode("utf-8"))
        return super().deserialize(data, flags)

def value_for(i):
    kind = i % 8
    if kind == 0: return f"text-{i}-é✓"
    if kind == 1: return bytes([i % 256, 0, 255]) + b"bin"
    if kind == 2: return i * 1000 - 5
    if kind == 3: return 2 ** 60 + i
    if kind == 4: return {"id": i, "name": f"n{i}", "tags": ["a", "b"], "ok": True, "score": i / 4, "none": None}
    if kind == 5: return [i, "x", None, False]
    # kinds 6 and 7: large enough to be compressed (zlib) on both sides
    if kind == 6: return "long-" + ("%d," % i) * 400
    return {"id": i, "rows": [{"n": n, "s": "row"} for n in range(100)]}

def main():
    cmd = json.loads(sys.argv[1])
    pool = JsonClient(cmd["servers"], binary=True, behaviors=cmd["behaviors"])
    keys = [f'{cmd["prefix"]}{i}' for i in range(cmd["count"])]
    if cmd["op"] == "write":
        for i, k in enumerate(keys):
            pool.set(k, value_for(i), min_compress_len=1024)
        placement = {}
        for index, server in enumerate(cmd["servers"]):
            for k in pylibmc.Client([server], binary=True).get_multi(keys):
                placement[k] = index
        print(json.dumps({"placement": [placement.get(k, -1) for k in keys]}))
    else:
        got = pool.get_multi(keys)
        bad = []
        for i, k in enumerate(keys):
            v = got.get(k)
            want = value_for(i)
            if v != want or type(v) is not type(want):
                bad.append([k, repr(v)[:80], repr(want)[:80]])
        print(json.dumps({"equal": len(keys) - len(bad), "mismatches": bad[:5]}))

main()
