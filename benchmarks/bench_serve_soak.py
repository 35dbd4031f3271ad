"""A bounded soak of ``vecgen serve`` (localhost only; it stops by itself): many mixed requests at a fixed concurrency,
then the failures and the server's resident memory.

Usage::

    python benchmarks/bench_serve_soak.py [--model default] [--backend llamacpp] [--requests 400] [--concurrency 8]
                                          [--seed 0] [--json out.json]

The model is loaded once; the server (the app ``vecgen serve`` runs, uvicorn on a free 127.0.0.1 port) runs in this
process's thread. ``--requests`` requests go out at most ``--concurrency`` at a time, each drawn (seeded) from:

* 40% ``chat``: a chat completion, 16 tokens at most, sampled (seeded);
* 20% ``soft``: soft thinking (``"thinking": {"method": "soft", "max_think_tokens": 32}``), 8 answer tokens;
* 15% ``concept``: concept tokens (``"concept_tokens": {"n": 3}``) after a chat prompt;
* 15% ``stream_disconnect``: a streamed chat completion the client leaves after its first event;
* 10% ``timeout``: a non-streamed soft-thinking request whose client gives up after 0.3 s.

It prints, per kind, the requests, the completed ones (HTTP 200 read to the end) and the responses >= 500 (target 0:
every request that is not abandoned completes), the rows still busy at the end (target 0), and the resident memory
of the process after the first 50 requests and at the end (psutil; the model's weights included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_server  # noqa: E402  (the same in-process server)

KINDS = (("chat", 0.40), ("soft", 0.20), ("concept", 0.15), ("stream_disconnect", 0.15), ("timeout", 0.10))
QUESTIONS = ("What is 12 + 30?", "Name a colour.", "Tom has 3 apples and buys 4 more. How many apples?",
             "Say hello.", "What is the capital of France?", "Count to five.", "What is 7 times 8?")


def body_of(kind: str, question: str, seed: int) -> dict:
    messages = [{"role": "user", "content": question}]
    if kind in ("chat", "stream_disconnect"):
        return {"messages": messages, "max_tokens": 16, "temperature": 0.7, "seed": seed}
    if kind in ("soft", "timeout"):
        return {"messages": messages, "max_tokens": 8, "thinking": {"method": "soft", "max_think_tokens": 32}}
    return {"messages": messages, "concept_tokens": {"n": 3, "seed": seed}}


async def one(client, url: str, kind: str, body: dict) -> dict:
    import httpx

    try:
        if kind == "stream_disconnect":
            async with client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as r:
                if r.status_code != 200:
                    await r.aread()
                    return {"kind": kind, "status": r.status_code, "done": False}
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        break  # the client leaves after its first event
            return {"kind": kind, "status": 200, "done": False, "abandoned": True}
        timeout = 0.3 if kind == "timeout" else 600
        r = await client.post(url + "/v1/chat/completions", json=body, timeout=timeout)
        return {"kind": kind, "status": r.status_code, "done": r.status_code == 200 and bool(r.json().get("choices"))}
    except httpx.TimeoutException:
        return {"kind": kind, "status": None, "done": False, "abandoned": True}


async def soak(url: str, n: int, concurrency: int, seed: int, on_done) -> list[dict]:
    import httpx

    rng = random.Random(seed)
    names, weights = zip(*KINDS)
    plan = [(rng.choices(names, weights)[0], rng.choice(QUESTIONS), rng.randrange(2**31)) for _ in range(n)]
    gate = asyncio.Semaphore(concurrency)
    results: list[dict] = []

    async with httpx.AsyncClient(timeout=600) as client:
        async def run(kind: str, question: str, s: int) -> None:
            async with gate:
                results.append(await one(client, url, kind, body_of(kind, question, s)))
                on_done(len(results))

        await asyncio.gather(*(run(*p) for p in plan))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import time

    import psutil

    import vecgen

    lm = vecgen.load(args.model, backend=args.backend)
    server, thread, url = start_server(lm, max_batch=args.concurrency, max_tokens=64)
    proc = psutil.Process()
    memory: dict[str, float] = {}

    def on_done(k: int) -> None:
        if k == 50:
            memory["after_50_mib"] = proc.memory_info().rss / 2**20
        if k % 50 == 0:
            print(f"{k} requests done", flush=True)

    t0 = time.perf_counter()
    results = asyncio.run(soak(url, args.requests, args.concurrency, args.seed, on_done))
    wall = time.perf_counter() - t0
    deadline = time.time() + 60
    while app_busy(server) and time.time() < deadline:
        time.sleep(0.1)
    busy = app_busy(server)
    memory["end_mib"] = proc.memory_info().rss / 2**20
    server.should_exit = True
    thread.join(60)

    by = Counter(r["kind"] for r in results)
    summary = {
        "device": f"{psutil.cpu_count()} CPU cores", "model": lm.name, "backend": lm.backend.name,
        "requests": len(results), "concurrency": args.concurrency, "wall_seconds": round(wall, 1),
        "server_errors": sum(1 for r in results if (r["status"] or 0) >= 500),
        "not_completed": sum(1 for r in results if not r.get("abandoned") and not r["done"]),
        "abandoned": sum(1 for r in results if r.get("abandoned")),
        "busy_rows_at_end": busy, **{k: round(v, 1) for k, v in memory.items()},
        "per_kind": {k: {"requests": by[k], "completed": sum(r["done"] for r in results if r["kind"] == k),
                         ">=500": sum(1 for r in results if r["kind"] == k and (r["status"] or 0) >= 500)}
                     for k, _ in KINDS},
        "statuses": dict(Counter(str(r["status"]) for r in results)),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def app_busy(server) -> int:
    return server.config.app.state.server.worker.busy


if __name__ == "__main__":
    main()
