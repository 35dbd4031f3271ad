"""Load on ``vecgen serve`` (localhost only, bounded): throughput and latency at concurrency 1, 4 and 8, and served soft
thinking against offline ``vecgen think`` in the same run.

Usage::

    python benchmarks/bench_serve.py [--model default] [--backend transformers|llamacpp] [--max-batch 8]
                                     [--requests 8] [--chat-tokens 64] [--max-think-tokens 160] [--json out.json]

The model is loaded once; the server (the same app ``vecgen serve`` runs, uvicorn on a free 127.0.0.1 port) runs in
this process's thread, and clients are ``httpx`` streaming requests from an asyncio loop, at most ``c`` in flight
(a semaphore). Two workloads on the first ``--requests`` GSM8K test questions:

* ``chat``: a plain chat completion, greedy, ``--chat-tokens`` tokens at most;
* ``soft``: soft thinking (``"thinking": {"method": "soft", "max_think_tokens": --max-think-tokens}``, ``vecgen think``'s
  other defaults, greedy answer of 24 tokens at most).

For each workload and each concurrency ``c`` in 1, 4, 8 it prints requests/s, time to first token (the first
``content`` or ``reasoning_content`` delta) and end-to-end latency, p50 and p95, and the failed requests (target: 0).
Then the offline baseline: the same soft-thinking questions through :func:`vecgen.thinking.think.think` with
``batch_size=8`` (the library call ``vecgen think`` makes), items/min, against the served soft workload at
concurrency 8 (target >= 0.9x). Both run the same prompts and settings; the answers that agree are counted, but soft
thinking samples its concept tokens, and offline rows share one random stream per batch whereas each served request
has its own, so sampled answers may differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def start_server(lm, max_batch: int, max_tokens: int, **settings):
    """The app ``vecgen serve`` runs, on a free 127.0.0.1 port in a thread: ``(server, thread, url)``; ``settings``
    are further :class:`~vecgen.serve.ServeSettings` fields (``prefill_chunk``, ...)."""
    import uvicorn

    from vecgen.serve import ServeSettings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(lm, ServeSettings(model_id="bench", max_batch=max_batch, max_tokens=max_tokens, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


async def one_request(client, url: str, body: dict) -> dict:
    """Stream one chat completion: ``{"ttft", "e2e", "ok", "content", "reasoning"}`` (seconds)."""
    t0 = time.perf_counter()
    ttft = None
    content, reasoning, ok = "", "", False
    async with client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as r:
        if r.status_code != 200:
            await r.aread()
            return {"ttft": None, "e2e": time.perf_counter() - t0, "ok": False, "error": r.text[:200]}
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                ok = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                return {"ttft": ttft, "e2e": time.perf_counter() - t0, "ok": False, "error": chunk["error"]["message"]}
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                text = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                if text and ttft is None:
                    ttft = time.perf_counter() - t0
                content += delta.get("content") or ""
                reasoning += delta.get("reasoning_content") or ""
    return {"ttft": ttft, "e2e": time.perf_counter() - t0, "ok": ok, "content": content, "reasoning": reasoning}


async def load_level(url: str, bodies: list[dict], concurrency: int) -> dict:
    import httpx

    sem = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(timeout=3600) as client:
        async def limited(body):
            async with sem:
                return await one_request(client, url, body)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(limited(b) for b in bodies))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    e2e = [r["e2e"] for r in ok]
    return {"concurrency": concurrency, "requests": len(bodies), "failed": len(bodies) - len(ok), "wall_s": wall,
            "requests_per_s": len(ok) / wall, "items_per_min": 60 * len(ok) / wall,
            "ttft_p50_s": percentile(ttft, 0.5), "ttft_p95_s": percentile(ttft, 0.95),
            "e2e_p50_s": percentile(e2e, 0.5), "e2e_p95_s": percentile(e2e, 0.95),
            "answers": [r.get("content") for r in results], "errors": [r.get("error") for r in results if not r["ok"]]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--backend", default="transformers", choices=["transformers", "llamacpp"])
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--requests", type=int, default=8, help="requests per (workload, concurrency) level")
    p.add_argument("--chat-tokens", type=int, default=64)
    p.add_argument("--max-think-tokens", type=int, default=160)
    p.add_argument("--concurrency", default="1,4,8")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    import vecgen
    from vecgen.benchmarks_data import load_benchmark
    from vecgen.thinking.think import think

    torch.manual_seed(0)
    lm = vecgen.load(args.model, backend=args.backend, device="cpu", dtype="float32", show_progress=False) \
        if args.backend == "transformers" else vecgen.load(args.model, backend="llamacpp", show_progress=False)
    levels = [int(c) for c in args.concurrency.split(",")]
    offline_items = max(args.requests, 16)
    tasks = load_benchmark("gsm8k", limit=offline_items)
    questions = [t.question for t in tasks]
    print(f"# vecgen serve load: {args.model} on {lm.backend.name}, max batch {args.max_batch}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
    server, thread, url = start_server(lm, args.max_batch, max(1024, args.max_think_tokens))
    chat = [{"messages": [{"role": "user", "content": q}], "max_tokens": args.chat_tokens, "temperature": 0}
            for q in questions[: args.requests]]
    soft = [{"messages": [{"role": "user", "content": q}], "temperature": 0, "seed": 0,
             "thinking": {"method": "soft", "max_think_tokens": args.max_think_tokens}} for q in questions]
    out: dict = {"model": args.model, "backend": lm.backend.name, "max_batch": args.max_batch, "levels": []}
    asyncio.run(load_level(url, chat[:1], 1))  # warm-up
    print("workload | concurrency | requests | failed | requests/s | TTFT p50 / p95 (s) | end-to-end p50 / p95 (s)")
    for name, bodies in (("chat", chat), ("soft", soft[: args.requests])):
        for c in levels:
            r = load_level_sync(url, bodies, c)
            r["workload"] = name
            out["levels"].append(r)
            print(f"{name} | {c} | {r['requests']} | {r['failed']} | {r['requests_per_s']:.3f} | "
                  f"{r['ttft_p50_s']:.2f} / {r['ttft_p95_s']:.2f} | {r['e2e_p50_s']:.1f} / {r['e2e_p95_s']:.1f}",
                  flush=True)
    # Served soft thinking at concurrency 8 vs offline think(batch_size=8), same questions, alternating order.
    served = load_level_sync(url, soft, 8)
    t0 = time.perf_counter()
    offline = think(lm, questions, method="soft", batch_size=8, max_think_tokens=args.max_think_tokens)
    offline_s = time.perf_counter() - t0
    server.should_exit = True
    thread.join(60)
    offline_rate = 60 * len(questions) / offline_s
    same = sum(a == o.answer for a, o in zip(served["answers"], offline))
    ratio = served["items_per_min"] / offline_rate
    out["served_vs_offline"] = {"items": len(questions), "served_items_per_min": served["items_per_min"],
                                "offline_items_per_min": offline_rate, "ratio": ratio, "served_failed": served["failed"],
                                "same_answers": same}
    failed = sum(r["failed"] for r in out["levels"]) + served["failed"]
    print(f"soft thinking, {len(questions)} items: served at concurrency 8 {served['items_per_min']:.2f} items/min, "
          f"offline think batch 8 {offline_rate:.2f} items/min: ratio {ratio:.2f}x (target >= 0.9x); same answers "
          f"{same}/{len(questions)}; failed requests {failed} (target 0)")
    if args.json:
        for r in out["levels"]:
            r.pop("answers", None)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if failed == 0 else 1


def load_level_sync(url: str, bodies: list[dict], concurrency: int) -> dict:
    return asyncio.run(load_level(url, bodies, concurrency))


if __name__ == "__main__":
    sys.exit(main())

