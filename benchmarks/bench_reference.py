"""Reference model vs transformers: prefill of 128 tokens and 32 decode steps on the default model.

Usage::

    python benchmarks/bench_reference.py [--model default] [--prompt-tokens 128] [--decode-steps 32]
                                          [--rounds 5] [--json out.json]

Time: both paths run in one process, on the same weights (the reference model shares the transformers
model's tensors), through the same code (the backend's ``prefill`` / ``extend``; each decode
step feeds the embedding of the greedy token). Rounds alternate transformers / reference so machine
noise hits both alike; the ratio is of medians.

Peak RSS: each path also runs once in its own fresh subprocess (load, then prefill + decode), so one
path's allocations cannot hide in the other's high-water mark. Reported: the process's peak RSS
(``resource.getrusage`` ``ru_maxrss``, loading included) and the peak growth during prefill + decode
over the RSS after loading and a short warm-up (which pages in the memory-mapped weights), sampled
every 2 ms with psutil in a background thread.

Target (issue 4): reference time within 1.5× of transformers on CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch

TEXT = (
    "The reference model is a from-scratch decoder for the Qwen2 and Qwen3 families. It reads the same "
    "weights as transformers, runs the same input, and records every component of every layer so a "
    "researcher can compare them, read them, or replace them while decoding in vector space. "
)


def prompt_ids(lm, n: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < n:
        ids += lm.encode(TEXT)
    return ids[:n]


@torch.inference_mode()
def run_once(lm, model, ids: list[int], steps: int) -> tuple[float, float]:
    """Seconds for the prefill of ``ids`` and for ``steps`` greedy decode steps (fed as embeddings),
    through the backend contract (``prefill`` / ``extend`` of the model's backend)."""
    from vecgen.backends import build_batch

    backend = lm.with_model(model).backend
    batch = build_batch(backend, [ids])
    t0 = time.perf_counter()
    state = backend.prefill(batch)
    t1 = time.perf_counter()
    for _ in range(steps):
        token = state.logits.argmax(-1)  # (1,)
        state = backend.extend(state, backend.input_rows(token))  # (1, d)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def load(model_spec: str, path: str):
    from vecgen.models import load_model
    from vecgen.reference import from_transformers

    lm = load_model(model_spec, device="cpu", dtype="float32", show_progress=False)
    if path == "reference":
        lm = lm.with_model(from_transformers(lm))  # the transformers module is dropped; weights stay shared
    return lm


def child(args) -> None:
    """One path in a fresh process: peak RSS."""
    import psutil

    proc = psutil.Process()
    lm = load(args.model, args.child)
    ids = prompt_ids(lm, args.prompt_tokens)
    run_once(lm, lm.model, ids[:16], 2)  # touch every weight page (safetensors are memory-mapped) first
    rss_loaded = proc.memory_info().rss
    peak = rss_loaded
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    prefill_s, decode_s = run_once(lm, lm.model, ids, args.decode_steps)
    done.set()
    thread.join()
    peak = max(peak, proc.memory_info().rss)
    print(json.dumps({
        "path": args.child,
        "rss_after_load_mb": rss_loaded / 2**20,
        "peak_growth_mb": (peak - rss_loaded) / 2**20,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "prefill_s": prefill_s,
        "decode_s": decode_s,
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per path (median reported)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's default, the core count)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--child", choices=["transformers", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return

    from vecgen.reference import from_transformers

    lm = load(args.model, "transformers")
    models = {"transformers": lm.model, "reference": from_transformers(lm)}
    ids = prompt_ids(lm, args.prompt_tokens)
    for model in models.values():  # warm-up (allocator, kernels)
        run_once(lm, model, ids[:16], 2)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
    order = list(models)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            times[name].append(run_once(lm, models[name], ids, args.decode_steps))
    del models, lm

    memory = {}
    for name in ("transformers", "reference"):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--model", args.model,
                              "--prompt-tokens", str(args.prompt_tokens), "--decode-steps", str(args.decode_steps),
                              "--threads", str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True)
        memory[name] = json.loads(out.stdout.strip().splitlines()[-1])

    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    figures = {"model": args.model, "prompt_tokens": args.prompt_tokens, "decode_steps": args.decode_steps,
               "rounds": args.rounds, "torch_threads": torch.get_num_threads(), "paths": {}}
    print(f"{args.model}: prefill {args.prompt_tokens} tokens + {args.decode_steps} decode steps, float32 CPU, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} alternating rounds")
    print(f"{'path':<13} {'prefill s':>10} {'decode s':>10} {'decode tok/s':>13} {'peak RSS MB':>12} "
          f"{'growth MB':>10}")
    for name in ("transformers", "reference"):
        p, d = med(name, 0), med(name, 1)
        m = memory[name]
        figures["paths"][name] = {"prefill_s": p, "decode_s": d, "decode_tokens_per_s": args.decode_steps / d,
                                  "peak_rss_mb": m["ru_maxrss_mb"], "peak_growth_mb": m["peak_growth_mb"],
                                  "rss_after_load_mb": m["rss_after_load_mb"]}
        print(f"{name:<13} {p:>10.3f} {d:>10.3f} {args.decode_steps / d:>13.2f} {m['ru_maxrss_mb']:>12.0f} "
              f"{m['peak_growth_mb']:>10.1f}")
    t, r = figures["paths"]["transformers"], figures["paths"]["reference"]
    ratios = {
        "prefill": r["prefill_s"] / t["prefill_s"],
        "decode": r["decode_s"] / t["decode_s"],
        "total": (r["prefill_s"] + r["decode_s"]) / (t["prefill_s"] + t["decode_s"]),
        "peak_rss": r["peak_rss_mb"] / t["peak_rss_mb"],
    }
    figures["ratios"] = ratios
    print("ratio reference / transformers: " + ", ".join(f"{k} {v:.2f}×" for k, v in ratios.items()))
    print(f"target total ≤ 1.5×: {'met' if ratios['total'] <= 1.5 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
