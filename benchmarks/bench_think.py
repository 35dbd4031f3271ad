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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch


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
    args = ap.parse_args(argv)

    from vecgen.benchmarks_data import load_benchmark
    from vecgen.models import load_model
    from vecgen.thinking.prompts import build_prompt, prompt_style

    lm = load_model(args.model, device="cpu", dtype="float32", show_progress=False)
    style = prompt_style(lm)
    marker = style.end_marker(lm.tokenizer)
    tasks = load_benchmark("gsm8k", limit=max(args.items, args.batch_size))
    prompts = [lm.encode(build_prompt(lm, t.question, style, direct=False)) for t in tasks]
    cfgs = configs(args.max_think_tokens)
    print(f"model {args.model}, torch threads {torch.get_num_threads()}, prompts {len(prompts)} "
          f"(mean {statistics.mean(map(len, prompts)):.0f} tokens)", flush=True)
    out: dict = {"args": vars(args), "threads": torch.get_num_threads()}

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
