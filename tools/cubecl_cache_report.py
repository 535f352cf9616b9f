#!/usr/bin/env python3
"""Where a process's GPU compile and tuning time went, from the CubeCL cache it left.

CubeCL 0.11 keeps, beside the compiled kernels and the autotune results, a record of every
compilation (kernel, outcome, duration) and every tuning decision (candidates, their wall time),
per process ("session"), in the cache's SQLite database (`default.db`, values in CBOR). This
prints, for each session, the compile time by kernel family and the tuning time by tuner:

    tools/cubecl_cache_report.py dist/cubecl-cache/0.1.0/<gpu>_driver-<v>/default.db
    tools/cubecl_cache_report.py dist/cubecl-cache.tar.xz     # the file save-cache packs
    tools/cubecl_cache_report.py --keys DB                     # and every tuned key, slowest first

Standard library only (a small CBOR reader below), so it runs on the GPU machines too.
"""

import collections
import os
import sqlite3
import struct
import sys
import tarfile
import tempfile


def cbor(data):
    """Decode one CBOR item (the subset CubeCL writes: ints, strings, arrays, maps, floats)."""

    def item(i):
        head = data[i]
        major, info = head >> 5, head & 31
        i += 1
        if major == 7:
            if info == 20:
                return False, i
            if info == 21:
                return True, i
            if info in (22, 23):
                return None, i
            if info == 25:
                return _half(data[i:i + 2]), i + 2
            if info == 26:
                return struct.unpack(">f", data[i:i + 4])[0], i + 4
            if info == 27:
                return struct.unpack(">d", data[i:i + 8])[0], i + 8
            raise ValueError(f"CBOR simple value {info}")
        if info < 24:
            arg = info
        elif info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            arg = int.from_bytes(data[i:i + size], "big")
            i += size
        elif info == 31:
            arg = None
        else:
            raise ValueError(f"CBOR additional info {info}")
        if major == 0:
            return arg, i
        if major == 1:
            return -1 - arg, i
        if major in (2, 3):
            if arg is None:
                parts = []
                while data[i] != 0xFF:
                    part, i = item(i)
                    parts.append(part)
                return (b"" if major == 2 else "").join(parts), i + 1
            raw = data[i:i + arg]
            return (raw if major == 2 else raw.decode("utf-8", "replace")), i + arg
        if major == 4:
            out = []
            while (arg is None and data[i] != 0xFF) or (arg is not None and len(out) < arg):
                value, i = item(i)
                out.append(value)
            return out, i + (1 if arg is None else 0)
        if major == 5:
            out = {}
            count = 0
            while (arg is None and data[i] != 0xFF) or (arg is not None and count < arg):
                key, i = item(i)
                value, i = item(i)
                out[key if not isinstance(key, list) else tuple(key)] = value
                count += 1
            return out, i + (1 if arg is None else 0)
        if major == 6:  # a tag: its content
            return item(i)
        raise ValueError(f"CBOR major type {major}")

    return item(0)[0]


def _half(b):
    h = int.from_bytes(b, "big")
    sign, exp, frac = h >> 15, (h >> 10) & 31, h & 1023
    value = (frac / 1024) * 2 ** -14 if exp == 0 else (1 + frac / 1024) * 2 ** (exp - 15) if exp < 31 else float("inf")
    return -value if sign else value


def seconds(d):
    return d["secs"] + d["nanos"] / 1e9


def report(db, keys=False):
    con = sqlite3.connect(db)
    rows = lambda ns: [cbor(v) for (v,) in con.execute("select value from entries where namespace = ?", (ns,))]
    sessions = {r["id"]: r for r in rows("records/v1/sessions")}
    compiled = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0.0]))
    loaded = collections.Counter()
    for r in rows("records/v1/compilation"):
        s, rec = r["stamp"]["session"], r["record"]
        if rec["outcome"] != "Compiled":
            loaded[s] += 1
            continue
        entry = compiled[s][rec["kernel"].split("<")[0].split("::")[-1]]
        entry[0] += 1
        entry[1] += seconds(rec["duration"])
    tuned = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0.0]))
    tuned_keys = collections.defaultdict(list)
    for r in rows("records/v1/autotune"):
        s, rec = r["stamp"]["session"], r["record"]
        entry = tuned[s][rec["table"].split("/")[-1]]
        entry[0] += 1
        entry[1] += seconds(rec["wall"])
        # Whatever the record says besides its table and timings: the tuned key.
        rest = {k: v for k, v in rec.items() if k not in ("table", "wall")}
        tuned_keys[s].append((seconds(rec["wall"]), rec["table"].split("/")[-1], str(rest)[:400]))
    for s in sorted(set(compiled) | set(tuned) | set(loaded), key=lambda s: sessions.get(s, {}).get("started_unix_ms", 0)):
        kernels = compiled[s]
        total = sum(t for _, t in kernels.values())
        print(f"session {s} (process {sessions.get(s, {}).get('process')}): "
              f"{sum(n for n, _ in kernels.values())} kernels compiled in {total:.1f} s, {loaded[s]} loaded from the cache")
        for name, (n, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:8]:
            print(f"  compiled {n:5d} {t:7.1f} s  {name}")
        for table, (n, t) in sorted(tuned[s].items(), key=lambda kv: -kv[1][1]):
            print(f"  tuned    {n:5d} {t:7.1f} s  {table} (keys, wall of their tuning runs)")
        if keys:
            for wall, table, key in sorted(tuned_keys[s], reverse=True):
                print(f"    {wall:7.1f} s  {table}: {key}")


def main():
    args = [a for a in sys.argv[1:] if a != "--keys"]
    keys = len(args) != len(sys.argv) - 1
    if len(args) != 1:
        sys.exit(__doc__)
    path = args[0]
    if path.endswith(".tar.xz"):
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(path) as tar:
                tar.extractall(tmp)
            for root, _, files in os.walk(tmp):
                if "default.db" in files:
                    print(f"== {os.path.relpath(root, tmp)}")
                    report(os.path.join(root, "default.db"), keys)
    else:
        report(path, keys)


if __name__ == "__main__":
    main()
