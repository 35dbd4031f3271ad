"""Do a seeded request's samples depend on its neighbours in the batch? (``vecgen serve``, localhost only, bounded.)

Usage::

    python benchmarks/bench_serve_seeds.py [--model default] [--backend llamacpp] [--requests 24] [--max-batch 8]
                                           [--max-tokens 32] [--json out.json]

Each of ``--requests`` chat completions (sampled: temperature 0.7, top_p 0.95, its own ``seed``) is sent twice to the
same in-process server: once alone (one request at a time: a batch of one row), once with all the others at once
(continuous batching: up to ``--max-batch`` rows). vecgen samples every row from its own generator seeded by the
request, so any difference comes from the logits: a backend whose kernels round differently for another batch shape
changes a sampled token, and the texts part from there. It prints how many requests gave a different text, and for
those the first differing character. Target on transformers: 0 (its float32 CPU kernels are batch-invariant for these
shapes in the tests); on llama.cpp the rate is measured, not promised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_server  # noqa: E402

QUESTIONS = ("Tell me a short story about a cat.", "Describe the sea.", "What do you like about mornings?",
             "Write a sentence about mountains.", "Invent a name for a robot and explain it.", "Describe a city.")


async def send(url: str, bodies: list[dict], at_once: bool) -> list[str]:
    import httpx

    async with httpx.AsyncClient(timeout=600) as client:
        async def one(body: dict) -> str:
            r = await client.post(url + "/v1/chat/completions", json=body)
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

        if at_once:
            return list(await asyncio.gather(*(one(b) for b in bodies)))
        return [await one(b) for b in bodies]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import os

    import vecgen

    lm = vecgen.load(args.model, backend=args.backend)
    server, thread, url = start_server(lm, max_batch=args.max_batch, max_tokens=max(64, args.max_tokens))
    bodies = [{"messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], "max_tokens": args.max_tokens,
               "temperature": 0.7, "top_p": 0.95, "seed": 1000 + i} for i in range(args.requests)]
    alone = asyncio.run(send(url, bodies, at_once=False))
    batched = asyncio.run(send(url, bodies, at_once=True))
    server.should_exit = True
    thread.join(60)
    differ = [i for i, (a, b) in enumerate(zip(alone, batched)) if a != b]
    first = {i: next((k for k, (x, y) in enumerate(zip(alone[i], batched[i])) if x != y),
                     min(len(alone[i]), len(batched[i]))) for i in differ}
    out = {"device": f"{os.cpu_count()} CPU cores", "model": lm.name, "backend": lm.backend.name,
           "requests": len(bodies), "max_batch": args.max_batch, "max_tokens": args.max_tokens,
           "differ": len(differ), "rate": len(differ) / len(bodies), "first_differing_char": first}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
