"""The batched per-row sampler against one pass per random stream, in one run (issue 35, item 3).

Usage::

    python benchmarks/bench_sampler.py [--model default] [--backend transformers] [--items 16] [--samples 8] [--methods cot]
                                       [--batch-size 8] [--max-think-tokens 48] [--requests 8] [--rounds 1]
                                       [--workloads pass@k,served] [--json out.json]

Two workloads whose rows all draw from their own random streams, each run twice on the same loaded model, first
with one sampler pass per stream (``vecgen.decoding.step.BATCH_STREAMS = False``: the sampler before per-row
generators), then with one pass for all the rows (``True``, the default):

1. **pass@k**: ``vecgen.evaluate`` on the first ``--items`` GSM8K items with ``--methods`` (default ``cot``,
   sampled at temperature 0.7), ``--samples`` samples per item (each seeded from the item and the sample index), batch
   ``--batch-size``: items per minute, and whether every record (trace, answer, verdict) is the same;
2. **seeded served requests**: ``--requests`` concurrent chat completions with their own ``seed`` (soft thinking,
   temperature 0.7) on ``vecgen serve`` (in process, ``--max-batch`` = requests): requests per minute, and whether
   every reasoning and answer text is the same.

Prints the ratio (batched / per-stream) of each, the machine, and one JSON line (``--json`` also writes it).
Run it alone: torch's 2 threads slow several-fold beside another job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_server  # noqa: E402


def pass_at_k(lm, args) -> tuple[float, list]:
    import vecgen
    from vecgen.config import SamplingConfig

    t0 = time.perf_counter()
    ev = vecgen.evaluate(lm, "gsm8k", limit=args.items, methods=args.methods.split(","), samples=args.samples,
                         batch_size=args.batch_size, sampling=SamplingConfig(temperature=0.7, max_new_tokens=1),
                         max_think_tokens=args.max_think_tokens, max_answer_tokens=16, progress=False)
    seconds = time.perf_counter() - t0
    records = [(r.method, r.id, r.sample, r.trace, r.answer, r.correct) for r in ev.records]
    return seconds, records


async def _requests(url: str, n: int, max_tokens: int, think: int) -> list[tuple[str, str]]:
    import httpx

    questions = ["What is 17 + 25?", "A train has 3 cars with 12 seats each. How many seats?", "What is 9 * 7?",
                 "Tom has 5 apples and eats 2. How many are left?"]
    async with httpx.AsyncClient(timeout=1800) as client:
        async def one(i: int) -> tuple[str, str]:
            body = {"messages": [{"role": "user", "content": questions[i % len(questions)]}], "max_tokens": max_tokens,
                    "temperature": 0.7, "seed": 1000 + i,
                    "thinking": {"method": "soft", "max_think_tokens": think}}
            r = await client.post(url + "/v1/chat/completions", json=body)
            r.raise_for_status()
            msg = r.json()["choices"][0]["message"]
            return msg.get("reasoning_content") or "", msg["content"]

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def served(lm, args) -> tuple[float, list]:
    server, thread, url = start_server(lm, max_batch=args.requests, max_tokens=max(64, args.max_think_tokens))
    try:
        t0 = time.perf_counter()
        texts = asyncio.run(_requests(url, args.requests, 16, args.max_think_tokens))
        return time.perf_counter() - t0, texts
    finally:
        server.should_exit = True
        thread.join(60)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--methods", default="cot")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-think-tokens", type=int, default=48)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--workloads", default="pass@k,served", help="comma-separated: pass@k, served")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per workload; the order of the two modes alternates")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    import vecgen
    import vecgen.decoding.step as step

    lm = vecgen.load(args.model, backend=args.backend, show_progress=False)
    out: dict = {"machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
                 "model": args.model, "backend": args.backend, "args": vars(args)}
    for name, fn, unit in (("pass@k", pass_at_k, args.items), ("served", served, args.requests)):
        if name not in args.workloads.split(","):
            continue
        times: dict[bool, float] = {False: 0.0, True: 0.0}
        outputs: dict[bool, list] = {}
        for r in range(args.rounds):  # ABBA: the order alternates, so a warm-up or drift favours neither
            for batched in ((False, True) if r % 2 == 0 else (True, False)):
                step.BATCH_STREAMS = batched
                seconds, result = fn(lm, args)
                times[batched] += seconds
                assert outputs.setdefault(batched, result) == result, "a mode's outputs changed between rounds"
                print(f"{name} round {r + 1} {'batched' if batched else 'per-stream'}: {seconds:.1f} s", flush=True)
        (t_old, a), (t_new, b) = (times[False], outputs[False]), (times[True], outputs[True])
        unit *= args.rounds
        out[name] = {"per_stream_s": round(t_old, 2), "batched_s": round(t_new, 2),
                     "per_stream_per_min": round(60 * unit / t_old, 2), "batched_per_min": round(60 * unit / t_new, 2),
                     "ratio": round(t_old / t_new, 3), "identical": a == b,
                     "differing": sum(x != y for x, y in zip(a, b)), "n": len(a)}
        r = out[name]
        print(f"{name}: per-stream {r['per_stream_per_min']}/min, batched {r['batched_per_min']}/min, "
              f"ratio {r['ratio']}x; outputs identical: {r['identical']} ({r['differing']} of {r['n']} differ)",
              flush=True)
    step.BATCH_STREAMS = True
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
