"""Golden values for dsocr-vision's position-table resizes, computed with PyTorch itself.

The parity fixtures cover the Tiny (512), Gundam-tile (640) and Base (1024) paths; this covers every
mode's resize, including Large (1280: up-sampling 64→80 and 16→20, rel-pos tables 127→159), with
the exact calls of the official code:
  F.interpolate(x, size=(g, g), mode="bicubic", antialias=True, align_corners=False)   (SAM/CLIP positions)
  F.interpolate(t, size=L, mode="linear")                                                (SAM rel-pos tables)
Inputs are a deterministic formula the Rust test recomputes. Run where PyTorch is installed:
  python3 tools/golden/interp_golden.py crates/dsocr-vision/tests/data/interp_golden.json
"""
import json
import math
import sys

import torch
import torch.nn.functional as F


def grid_input(g, c):
    x = torch.empty(1, c, g, g, dtype=torch.float32)
    for ch in range(c):
        for i in range(g):
            for j in range(g):
                x[0, ch, i, j] = math.sin(0.37 * i + 0.11 * j + ch) + 0.01 * i * j / g
    return x


def rows_input(n, c):
    t = torch.empty(n, c, dtype=torch.float32)
    for i in range(n):
        for ch in range(c):
            t[i, ch] = math.cos(0.21 * i + 0.5 * ch) + 0.002 * i
    return t


out = {"torch": torch.__version__, "bicubic_aa": [], "linear": []}
C = 2
for g_in, g_out in [(64, 80), (64, 40), (64, 32), (16, 20), (16, 10), (16, 8)]:
    y = F.interpolate(grid_input(g_in, C), size=(g_out, g_out), mode="bicubic", antialias=True, align_corners=False)
    # [1, C, g, g] -> [g, g, C] row-major, as the Rust side holds grids.
    out["bicubic_aa"].append({"in": g_in, "out": g_out, "channels": C, "values": y[0].permute(1, 2, 0).reshape(-1).tolist()})
for n_in, n_out in [(127, 159), (127, 79), (127, 63)]:
    t = rows_input(n_in, C)
    y = F.interpolate(t.reshape(1, n_in, -1).permute(0, 2, 1), size=n_out, mode="linear")
    y = y.reshape(-1, n_out).permute(1, 0)
    out["linear"].append({"in": n_in, "out": n_out, "channels": C, "values": y.reshape(-1).tolist()})
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print("wrote", sys.argv[1], "with torch", torch.__version__)
