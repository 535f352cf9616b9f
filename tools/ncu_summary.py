#!/usr/bin/env python3
"""Sum `ncu --csv --metrics gpu__time_duration.sum` output per kernel name.

Usage: tools/ncu_summary.py ncu.csv [steps [tail]]   (steps: decode steps the window covers, to
print per-step figures; tail: only the last `tail` launches, e.g. the batched decode at the end of
a bench run). Used by `tools/gpu-session.sh profile`.
"""
import csv
import sys
from collections import defaultdict

path = sys.argv[1]
steps = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
tail = int(sys.argv[3]) if len(sys.argv) > 3 else 0
total = defaultdict(float)
count = defaultdict(int)
with open(path, newline="") as f:
    lines = [line for line in f if line.startswith('"')]
rows = [row for row in csv.DictReader(lines) if row.get("Metric Name") == "gpu__time_duration.sum"]
if tail:
    rows = rows[-tail:]
for row in rows:
    name = row["Kernel Name"].split("(")[0].split("<")[0].strip()
    value = float(row["Metric Value"].replace(",", ""))
    unit = row.get("Metric Unit", "ns")
    ns = value * {"ns": 1.0, "nsecond": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6}.get(unit, 1.0)
    total[name] += ns
    count[name] += 1
grand = sum(total.values())
launches = sum(count.values())
print(f"{launches} launches, {grand / 1e3:.1f} us of GPU time in all")
if steps:
    print(f"per decode step ({steps:g} steps): {grand / 1e3 / steps:.1f} us, {launches / steps:.1f} launches")
print(f"{'kernel':<48} {'total us':>10} {'launches':>9} {'mean us':>9}")
for name, ns in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"{name[:48]:<48} {ns / 1e3:>10.1f} {count[name]:>9} {ns / 1e3 / count[name]:>9.2f}")
