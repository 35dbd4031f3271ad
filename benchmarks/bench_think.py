"""Soft thinking vs discrete CoT throughput on the default model: items/s at batch 1 and batch B,
and the cost of one decode step, all measured in one run.

Usage::

    python benchmarks/bench_think.py [--model default] [--items 8] [--batch-size 8]
                                     [--max-think-tokens 160] [--steps 48] [--rounds 3] [--json out.json]

Part 1, items/s: the first ``--items`` GSM8K test problems through ``vecgen.thinking.run_thinking``
with the ``vecgen think`` defaults (cot: greedy; soft: Soft Thinking's concept tokens, rule ``soft``,
max_topk 10, T 0.6 / top_p 0.95 / top_k 30 / min_p 0.001; Cold Stop τ 0.01, L 48; greedy answers),
once one item at a time and once ``--batch-size`` items at a time. The thinking budget is lowered to
``--max-think-tokens`` to keep the run short. Target (issue 7): batching gives >= 3x items/s.

Part 2, cost per generated token: both methods run exactly ``--steps`` thinking steps (a marker that
never appears, Cold Stop off, one answer token), and once with one thinking step; the difference
divided by ``steps - 1`` is the cost of one thinking step, prefill excluded. Each round runs all four
(batch 1 / batch B) × (cot / soft) pairs, so load changes on a shared machine hit all alike; medians
over rounds are reported. Target (issue 11): soft <= 1.05x cot per thinking step. It also gives the batching gain for
fixed-length work (decode tokens/s at batch B over batch 1), free of the load drift that a
sequential part 1 suffers.

Items/s of part 1 also differ between methods because soft and cot generate different numbers of
tokens (soft is sampled); part 2 is the like-for-like per-token comparison.

``--batching`` (continuous vs static batching; issue 28)::

    python benchmarks/bench_think.py --batching [--backend transformers|llamacpp] [--items 32] [--batch-size 8]
                                     [--max-think-tokens 320] [--rounds 1]

runs cot and soft (the ``vecgen think`` settings) on the first ``--items`` GSM8K items with ``--batch-size``
rows, once in static batches (each runs until its longest row ends) and once continuously batched
(``run_thinking(..., max_batch=B)``: a finished row's place goes to the next item at once), in alternating
order per round. It prints items/min of both and their ratio (target >= 1.15x), the occupancy of each
(busy row-steps / (decode steps x B), from the engine's ``on_step`` hook; target >= 0.95 continuous), the occupancy
until the batch first runs short (while items wait, continuous batching keeps every row busy) and the drain steps
after it, and how many items got the same answer both ways (greedy cot: all, up to float rounding). Untimed
warm-up runs (each method, both schedulings, 2 batches of items, 16 thinking tokens) come first: without them the
process's first timed run paid one-off costs (measured: 0.52 s per decode step against 0.35-0.44 s). A finite queue
bounds the whole run's occupancy: once no item waits, rows idle as the last items finish, about half an item's
length each, so occupancy is at most about 1 - B / (2 N) for N items of similar length (0.875 at N = 32, B = 8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch


#: Thinking budget of the untimed warm-up runs of ``--batching`` (both schedulings, each method, 2 batches of items).
WARMUP_THINK_TOKENS = 16


def configs(max_think: int):
    from vecgen.config import SamplingConfig
    from vecgen.decoding import MixingConfig
    from vecgen.thinking.runner import SOFT_THINKING_SAMPLING, ThinkConfig

    return {
        "cot": ThinkConfig.create(method="cot", max_think_tokens=max_think),
        "soft": ThinkConfig.create(method="soft", think_sampling=SamplingConfig(**SOFT_THINKING_SAMPLING),
                                   mixing=MixingConfig(rule="soft", max_topk=10), max_think_tokens=max_think),
    }


def items_per_second(lm, prompts, cfg, marker, batch_size):
    """(seconds, generated tokens) for all prompts, ``batch_size`` at a time."""
    from vecgen.thinking.runner import run_thinking

    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(prompts), batch_size):
        outs = run_thinking(lm, prompts[i : i + batch_size], cfg, marker)
        tokens += sum(o.generated_tokens for o in outs)
    return time.perf_counter() - t0, tokens


def fixed_steps(lm, prompts, cfg, steps):
    """Seconds for exactly ``steps`` thinking steps (+ forced marker + 1 answer token) per prompt."""
    from vecgen.thinking.markers import EndMarker
    from vecgen.thinking.runner import run_thinking

    cfg = cfg.model_copy(update={"max_think_tokens": steps, "max_answer_tokens": 1, "cold_stop_tau": 0.0})
    never = EndMarker(lm.tokenizer, "§§never§§")
    t0 = time.perf_counter()
    outs = run_thinking(lm, prompts, cfg, never)
    dt = time.perf_counter() - t0
    short = [o.think_tokens for o in outs if o.think_tokens != steps]
    return dt, short


def batching_run(lm, prompts, cfg, marker, batch_size, continuous):
    """(seconds, outputs, busy row-steps, decode steps) for all prompts, static or continuous."""
    from vecgen.thinking.runner import run_thinking

    live: list[int] = []
    t0 = time.perf_counter()
    if continuous:
        outs = run_thinking(lm, prompts, cfg, marker, max_batch=batch_size, on_step=lambda s, n: live.append(n))
    else:
        outs = []
        for i in range(0, len(prompts), batch_size):
            outs += run_thinking(lm, prompts[i : i + batch_size], cfg, marker, on_step=lambda s, n: live.append(n))
    return time.perf_counter() - t0, outs, live


def queue_occupancy(live: list[int], batch_size: int) -> tuple[float, int]:
    """Occupancy over the steps before the batch first ran below ``batch_size`` rows (while items still waited, for
    continuous batching), and the number of steps after that (the drain: no item left to admit)."""
    first = next((i for i, n in enumerate(live) if n < batch_size), len(live))
    head = live[:first]
    return (sum(head) / (len(head) * batch_size) if head else float("nan")), len(live) - first


def batching(lm, prompts, marker, args) -> dict:
    """Part 3: continuous vs static batching, items/min and occupancy (see the module docstring)."""
    cfgs = configs(args.max_think_tokens)
    res: dict = {}
    timing: dict = {(n, c): [] for n in cfgs for c in (False, True)}
    answers: dict = {}
    occupancy: dict = {}
    warm = configs(WARMUP_THINK_TOKENS)  # untimed: the process's first runs pay one-off costs (kernel selection, allocator)
    for name in cfgs:
        for continuous in (False, True):
            batching_run(lm, prompts[: 2 * args.batch_size], warm[name], marker, args.batch_size, continuous)
    for r in range(args.rounds):
        for name, cfg in cfgs.items():
            for continuous in ((False, True) if r % 2 == 0 else (True, False)):
                secs, outs, live = batching_run(lm, prompts, cfg, marker, args.batch_size, continuous)
                busy, steps = sum(live), len(live)
                timing[(name, continuous)].append(secs)
                answers[(name, continuous)] = [o.answer for o in outs]
                occupancy[(name, continuous)] = busy / (steps * args.batch_size)
                head, drain = queue_occupancy(live, args.batch_size)
                kind = "continuous" if continuous else "static"
                print(f"round {r + 1} {name:>4} {kind:>10}: {len(prompts) / secs * 60:.2f} items/min, occupancy "
                      f"{occupancy[(name, continuous)]:.3f} ({busy} busy row-steps / {steps} steps x {args.batch_size}; "
                      f"{head:.3f} until the batch first ran short, then {drain} drain steps; "
                      f"{secs:.1f} s, load average {os.getloadavg()[0]:.1f})", flush=True)
    for name in cfgs:
        static, cont = statistics.median(timing[(name, False)]), statistics.median(timing[(name, True)])
        same = sum(a == b for a, b in zip(answers[(name, False)], answers[(name, True)]))
        res[name] = {"items_per_min": {"static": len(prompts) / static * 60, "continuous": len(prompts) / cont * 60},
                     "speedup": static / cont,
                     "occupancy": {"static": occupancy[(name, False)], "continuous": occupancy[(name, True)]},
                     "same_answers": same, "items": len(prompts)}
        print(f"{name}: continuous / static items/min = {static / cont:.2f}x (target >= 1.15x); occupancy static "
              f"{occupancy[(name, False)]:.3f}, continuous {occupancy[(name, True)]:.3f} (target >= 0.95); "
              f"same answer on {same}/{len(prompts)} items", flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-think-tokens", type=int, default=160)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-items", action="store_true", help="only part 2 (cost per token)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--batching", action="store_true", help="only part 3: continuous vs static batching")
    ap.add_argument("--backend", default="transformers", help="transformers or llamacpp (--batching)")
    args = ap.parse_args(argv)

    from vecgen.benchmarks_data import load_benchmark
    from vecgen.models import load_model
    from vecgen.thinking.prompts import build_prompt, prompt_style

    lm = load_model(args.model, device="cpu", dtype="float32", show_progress=False, backend=args.backend)
    style = prompt_style(lm)
    marker = style.end_marker(lm.tokenizer)
    tasks = load_benchmark("gsm8k", limit=max(args.items, args.batch_size))
    prompts = [lm.encode(build_prompt(lm, t.question, style, direct=False)) for t in tasks]
    cfgs = configs(args.max_think_tokens)
    print(f"model {args.model}, torch threads {torch.get_num_threads()}, prompts {len(prompts)} "
          f"(mean {statistics.mean(map(len, prompts)):.0f} tokens)", flush=True)
    out: dict = {"args": vars(args), "threads": torch.get_num_threads(), "backend": lm.backend.name}
    if args.batching:
        out["batching"] = batching(lm, prompts[: args.items], marker, args)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=2)
        return 0

    if not args.skip_items:
        part1 = {}
        for name, cfg in cfgs.items():
            for bs in (1, args.batch_size):
                secs, toks = items_per_second(lm, prompts[: args.items], cfg, marker, bs)
                load = os.getloadavg()[0]
                part1[f"{name}@{bs}"] = {"seconds": secs, "tokens": toks, "items_per_s": args.items / secs,
                                         "tokens_per_s": toks / secs, "load_average_after": load}
                print(f"{name:>4} batch {bs}: {args.items / secs:.4f} items/s, {toks / secs:.2f} generated tokens/s "
                      f"({toks} tokens, {secs:.1f} s; load average {load:.1f})", flush=True)
        for name in cfgs:
            r = part1[f"{name}@{args.batch_size}"]["items_per_s"] / part1[f"{name}@1"]["items_per_s"]
            part1[f"{name}_batch_speedup"] = r
            print(f"{name}: batch {args.batch_size} / batch 1 items/s = {r:.2f}x (target >= 3x)", flush=True)
        out["items"] = part1

    # Rounds interleave every (batch size, method) pair so load changes hit all four alike.
    sizes = (1, args.batch_size)
    times = {(bs, n): [] for bs in sizes for n in cfgs}
    bases = {(bs, n): [] for bs in sizes for n in cfgs}
    for r in range(args.rounds):
        for bs in sizes:
            for name, cfg in cfgs.items():
                dt, short = fixed_steps(lm, prompts[:bs], cfg, args.steps)
                base, _ = fixed_steps(lm, prompts[:bs], cfg, 1)
                if short:
                    print(f"warning: {name} rows stopped early at {short} steps (eos); per-step cost is approximate")
                times[(bs, name)].append(dt)
                bases[(bs, name)].append(base)
        print(f"round {r + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    per_step = {k: (statistics.median(times[k]) - statistics.median(bases[k])) / (args.steps - 1) for k in times}
    part2 = {}
    for bs in sizes:
        ratio = per_step[(bs, "soft")] / per_step[(bs, "cot")]
        part2[f"batch{bs}"] = {"seconds_per_step": {n: per_step[(bs, n)] for n in cfgs}, "soft_over_cot": ratio,
                               "tokens_per_s": {n: bs / per_step[(bs, n)] for n in cfgs}}
        print(f"batch {bs}: s/step cot {per_step[(bs, 'cot')]:.4f}, soft {per_step[(bs, 'soft')]:.4f}; "
              f"soft/cot per token = {ratio:.3f}x (target <= 1.05x)", flush=True)
    for name in cfgs:
        speedup = args.batch_size * per_step[(1, name)] / per_step[(args.batch_size, name)]
        part2[f"{name}_batch_token_throughput"] = speedup
        print(f"{name}: decode tokens/s at batch {args.batch_size} / batch 1 = {speedup:.2f}x "
              "(fixed-length steps, prefill excluded)", flush=True)
    out["per_token"] = part2
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
