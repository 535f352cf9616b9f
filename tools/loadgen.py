#!/usr/bin/env python3
"""Load generator for `dsocr serve` (Python standard library only, so it runs on the GPU machine).

CLIENTS threads each send REQUESTS streaming chat completions (one image each, greedy, max_tokens
new tokens) and read the SSE stream to its end. Reported as JSON: completion tokens over the wall
time (the aggregate to compare with `dsocr bench` on the same page), time to first content chunk
(upload, queue, vision, prefill and the first token's text) and latency percentiles.

    python3 tools/loadgen.py --url http://127.0.0.1:8000 --clients 64 --requests 2 [--image page.png]
"""

import argparse
import base64
import json
import mimetypes
import struct
import sys
import threading
import time
import urllib.request
import zlib


def one_request(url, body, headers):
    t0 = time.perf_counter()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers=headers)
    ttft, tokens, chars, finish = None, None, 0, None
    with urllib.request.urlopen(req, timeout=900) as resp:
        for raw in resp:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    chars += len(content)
                finish = choice.get("finish_reason") or finish
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return {"ttft": ttft, "latency": time.perf_counter() - t0, "tokens": tokens, "chars": chars, "finish": finish}


def synthetic_a4_png(w=1190, h=1684):
    """The page `dsocr bench` runs by default (src/bench.rs, `synthetic_page`), as PNG bytes, so a
    load test and the bench encode exactly the same pixels."""
    rows = []
    for y in range(h):
        row = bytearray(b"\x00")  # PNG filter type 0
        in_fig_rows = h // 2 <= y < h * 3 // 4
        for x in range(w):
            if in_fig_rows and w // 6 <= x < w * 5 // 6:
                v = (x ^ y) & 0xFF
            elif (y // 12) % 3 != 2 and w // 12 <= x < w - w // 12 and (x // 7 + y // 12) % 5 != 0 and y % 12 < 8:
                v = 20
            else:
                v = 255
            row += bytes((v, v, min(v + 10, 255)))
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--image", help="the page to send; default: the synthetic A4 page of `dsocr bench`")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--requests", type=int, default=1, help="requests per client, one after the other")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompt", default="<|grounding|>Convert the document to markdown.")
    ap.add_argument("--model", default="deepseek-ocr")
    ap.add_argument("--extra", default="{}", help="JSON merged into the request body (e.g. a dsocr object)")
    args = ap.parse_args()

    if args.image:
        mime = mimetypes.guess_type(args.image)[0] or "image/png"
        with open(args.image, "rb") as f:
            image = f.read()
    else:
        mime, image = "image/png", synthetic_a4_png()
    uri = f"data:{mime};base64," + base64.b64encode(image).decode()
    body = {
        "model": args.model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "text", "text": args.prompt},
        ]}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": args.max_tokens,
        "temperature": 0,
    }
    body.update(json.loads(args.extra))
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}

    results, errors, lock = [], [], threading.Lock()

    def client():
        for _ in range(args.requests):
            try:
                r = one_request(args.url, payload, headers)
                with lock:
                    results.append(r)
            except Exception as e:  # reported, not fatal: the others go on
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] or 0 for r in results)
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    lat = [r["latency"] for r in results]
    report = {
        "clients": args.clients,
        "requests": len(results),
        "errors": errors[:5],
        "error_count": len(errors),
        "max_tokens": args.max_tokens,
        "upload_bytes": len(payload),
        "wall_s": wall,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else 0,
        "ttft_min_s": min(ttfts) if ttfts else None,
        "ttft_p50_s": percentile(ttfts, 0.5),
        "ttft_p95_s": percentile(ttfts, 0.95),
        "latency_p50_s": percentile(lat, 0.5),
        "latency_p95_s": percentile(lat, 0.95),
        "finish_reasons": sorted({str(r["finish"]) for r in results}),
    }
    print(json.dumps(report, indent=1))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
