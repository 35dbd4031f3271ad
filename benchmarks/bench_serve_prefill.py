"""Chunked prefill in ``vecgen serve``: time to first token of short requests while a long prompt is admitted, with
whole-prompt prefill (before) and chunked prefill (after), in one run (localhost only, bounded).

Usage::

    python benchmarks/bench_serve_prefill.py [--model default] [--backend llamacpp] [--long-tokens 16000]
                                             [--chunk 256] [--short 24] [--json out.json]

For each setting (``prefill_chunk`` None, then ``--chunk``) an in-process server (the app ``vecgen serve`` runs) gets
one streamed text completion of a ``--long-tokens``-token prompt (4 tokens to generate) and, from 0.3 s after it, a
short streamed completion ("Hi", 4 tokens) every 0.2 s, two at a time at most, ``--short`` in all. It prints each
setting's p50 / p95 time to first token of the short requests (seconds), the long request's time to its first token,
and the ratio of the p95s (before / after; target > 1: the short requests no longer wait for the whole prefill).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import percentile, start_server  # noqa: E402


async def ttft(client, url: str, body: dict) -> float:
    t0 = time.perf_counter()
    async with client.stream("POST", url + "/v1/completions", json={**body, "stream": True}) as r:
        r.raise_for_status()
        first = None
        async for line in r.aiter_lines():  # read to the end; the first data event is the first token
            if first is None and line.startswith("data: ") and line != "data: [DONE]":
                first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("no token came back")
    return first


async def load_test(url: str, long_ids: list[int], n_short: int) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=3600) as client:
        long_task = asyncio.create_task(ttft(client, url, {"prompt": long_ids, "max_tokens": 4, "temperature": 0}))
        await asyncio.sleep(0.3)
        gate = asyncio.Semaphore(2)

        async def short() -> float:
            async with gate:
                return await ttft(client, url, {"prompt": "Hi", "max_tokens": 4, "temperature": 0})

        tasks = []
        for _ in range(n_short):
            tasks.append(asyncio.create_task(short()))
            await asyncio.sleep(0.2)
        shorts = await asyncio.gather(*tasks)
        long_first = await long_task
    return {"short_ttft_p50": percentile(shorts, 0.5), "short_ttft_p95": percentile(shorts, 0.95),
            "short_ttft_max": max(shorts), "long_ttft": long_first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--long-tokens", type=int, default=16000)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--short", type=int, default=24)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import vecgen

    extra = {"n_ctx": args.long_tokens + 512} if args.backend == "llamacpp" else {}
    lm = vecgen.load(args.model, backend=args.backend, **extra)
    words = lm.encode(" ".join(["The quick brown fox jumps over the lazy dog."] * (args.long_tokens // 8 + 8)))
    long_ids = [int(t) for t in words[: args.long_tokens]]
    out: dict = {"device": f"{os.cpu_count()} CPU cores", "model": lm.name, "backend": lm.backend.name,
                 "long_tokens": len(long_ids), "chunk": args.chunk, "short_requests": args.short}
    for name, chunk in (("whole", None), ("chunked", args.chunk)):
        server, thread, url = start_server(lm, max_batch=4, max_tokens=64, prefill_chunk=chunk)
        out[name] = asyncio.run(load_test(url, long_ids, args.short))
        server.should_exit = True
        thread.join(120)
        print(name, json.dumps(out[name]), flush=True)
    out["p95_ratio_whole_over_chunked"] = out["whole"]["short_ttft_p95"] / out["chunked"]["short_ttft_p95"]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
