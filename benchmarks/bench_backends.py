"""llama.cpp vs transformers float32 on the same GGUF model: concept tokens and soft thinking.

Usage::

    python benchmarks/bench_backends.py [--model default] [--threads 2] [--batch-sizes 1,8] [--steps 32]
                                        [--rounds 3] [--think-items 16] [--json out.json]

Workloads, both through vecgen's one decode engine (:func:`vecgen.decoding.generate` /
:func:`vecgen.thinking.runner.run_thinking`), alternating transformers / llama.cpp round by round so machine
noise hits both alike (the ratio is of medians):

* ``soft`` decode: ``B`` prompts, ``--steps`` concept tokens each (the soft rule, top-10 mixture at the soft-thinking
  sampling of :data:`vecgen.thinking.runner.SOFT_THINKING_SAMPLING`), no stop token. Reported: prefill seconds, decode
  tokens/s with the prefill excluded (``B · steps / (total − prefill)``) and included.
* ``think``: ``--think-items`` GSM8K questions through the ``soft`` thinking method (prompt, concept tokens until the
  marker, Cold Stop or the budget, forced marker, answer) in batches of 8; end to end (prefill included) in items/min;
  once per backend (first round), as it takes minutes.
* the command ``vecgen think --methods soft --limit N`` once per backend in a subprocess (model loading included).

Both backends run with the same explicit thread count (``torch.set_num_threads`` and llama.cpp's ``n_threads``):
on a busy 2-core machine OpenMP oversubscription otherwise slows transformers many-fold.

Memory: each backend loads and runs the ``soft`` workload once in a fresh subprocess; its peak RSS
(``VmHWM``, loading included) is reported.

Bandwidth bound: at batch 1 a decode step reads every weight once (the input embedding excepted: a few rows). The
bound is ``bandwidth / bytes per token``, with the bandwidth measured here by copying a 512 MiB array (read + write).

Targets (issue 16): llama.cpp ``soft`` ≥ 2.5× transformers float32 at batch 1 and 8 in tokens/s; the soft-thinking
command ≥ 2.5× faster end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The three primary colors are",
           "In 1969, the first person to walk on the moon was", "My favourite food is", "import numpy as np\n",
           "The best way to learn a language is"]


def load(backend: str, model: str, threads: int):
    from vecgen.backends.llamacpp import LlamaCppOptions
    from vecgen.models import load_model

    torch.set_num_threads(threads)
    if backend == "llamacpp":
        return load_model(model, backend="llamacpp", show_progress=False,
                          options=LlamaCppOptions(n_threads=threads, n_ctx=8192))
    return load_model(model, device="cpu", dtype="float32", show_progress=False)


@torch.inference_mode()
def soft_decode(lm, batch: int, steps: int) -> dict:
    from vecgen.backends import build_batch
    from vecgen.config import SamplingConfig
    from vecgen.decoding import generate
    from vecgen.thinking.runner import SOFT_THINKING_SAMPLING

    sampling = SamplingConfig(**SOFT_THINKING_SAMPLING, seed=0)
    prompts = [lm.encode(PROMPTS[i % len(PROMPTS)]) for i in range(batch)]
    t0 = time.perf_counter()
    lm.backend.prefill(build_batch(lm, prompts))
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    generate(lm, prompts, sampling=sampling, mixing="soft", max_new_tokens=steps, stop_ids=[],
             record_top_k=0)
    total = time.perf_counter() - t0
    return {"prefill_s": prefill, "total_s": total, "tokens_per_s": batch * steps / max(total - prefill, 1e-9),
            "tokens_per_s_with_prefill": batch * steps / total}


@torch.inference_mode()
def think(lm, items: int) -> dict:
    from vecgen.benchmarks_data import load_benchmark
    from vecgen.thinking import runner as R
    from vecgen.thinking.prompts import build_prompt, prompt_style

    tasks = load_benchmark("gsm8k", limit=items)
    style = prompt_style(lm, None)
    from vecgen.config import SamplingConfig

    cfg = R.ThinkConfig.create(method="soft", think_sampling=SamplingConfig(**R.SOFT_THINKING_SAMPLING, seed=0),
                               answer_sampling=SamplingConfig())
    marker = style.end_marker(lm.tokenizer)
    t0 = time.perf_counter()
    tokens = 0
    for start in range(0, len(tasks), 8):
        prompts = [lm.encode(build_prompt(lm, t.question, style, direct=False)) for t in tasks[start:start + 8]]
        tokens += sum(o.think_tokens + o.answer_tokens for o in R.run_thinking(lm, prompts, cfg, marker))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "items_per_min": 60 * len(tasks) / seconds, "tokens": tokens}


def bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(64 << 20, dtype=np.float64)  # 512 MiB
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9  # read + write


def bytes_per_token(lm) -> int:
    """Weight bytes one decode step reads: every tensor but the input embedding (a few rows of it are read)."""
    if lm.backend.name == "llamacpp":
        from gguf import GGUFReader

        reader = GGUFReader(lm.path)
        return int(sum(t.n_bytes for t in reader.tensors if t.name != "token_embd.weight"))
    emb = lm.model.get_input_embeddings().weight
    return int(sum(p.numel() * p.element_size() for p in lm.model.parameters() if p is not emb))


def child(args) -> None:
    lm = load(args.child, args.model, args.threads)
    soft_decode(lm, 8, args.steps)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` would carry the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def command_seconds(backend: str, args) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "vecgen", "think", "--benchmark", "gsm8k", "--limit", str(args.think_items),
               "--methods", "soft", "--backend", backend, "--threads", str(args.threads), "--out-dir", out,
               "--run-name", "bench", "--model", args.model]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--think-items", type=int, default=16)
    ap.add_argument("--no-command", action="store_true", help="skip the end-to-end vecgen think commands")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    import logging

    logging.disable(logging.INFO)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    lms = {b: load(b, args.model, args.threads) for b in ("transformers", "llamacpp")}
    for lm in lms.values():  # warm-up: page in the weights, build graphs
        soft_decode(lm, 1, 4)
    runs: dict = {b: {f"soft_b{n}": [] for n in batches} | {"think": []} for b in lms}
    for r in range(args.rounds):
        for name, lm in lms.items():
            for n in batches:
                runs[name][f"soft_b{n}"].append(soft_decode(lm, n, args.steps))
            if r == 0:  # minutes per backend: once, in the alternating order
                runs[name]["think"].append(think(lm, args.think_items))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(name, key, field):
        return statistics.median(x[field] for x in runs[name][key])

    result: dict = {"model": args.model, "threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                    "device": "cpu", "cpu_count": os.cpu_count(), "torch": torch.__version__, "rows": []}
    for n in batches:
        key = f"soft_b{n}"
        t, c = med("transformers", key, "tokens_per_s"), med("llamacpp", key, "tokens_per_s")
        ti, ci = med("transformers", key, "tokens_per_s_with_prefill"), med("llamacpp", key, "tokens_per_s_with_prefill")
        result["rows"].append({"workload": f"soft concept tokens, batch {n}", "transformers": t, "llamacpp": c,
                               "ratio": c / t, "unit": "tokens/s (prefill excluded)"})
        result["rows"].append({"workload": f"soft concept tokens, batch {n}, prefill included", "transformers": ti,
                               "llamacpp": ci, "ratio": ci / ti, "unit": "tokens/s"})
    t, c = med("transformers", "think", "items_per_min"), med("llamacpp", "think", "items_per_min")
    result["rows"].append({"workload": f"soft thinking, {args.think_items} GSM8K items, batch 8", "transformers": t,
                           "llamacpp": c, "ratio": c / t, "unit": "items/min"})
    if not args.no_command:
        secs = {b: command_seconds(b, args) for b in ("transformers", "llamacpp")}
        result["rows"].append({"workload": f"vecgen think --methods soft --limit {args.think_items} (load included)",
                               "transformers": secs["transformers"], "llamacpp": secs["llamacpp"],
                               "ratio": secs["transformers"] / secs["llamacpp"], "unit": "seconds (ratio: speed-up)"})
    bw = bandwidth_gbs()
    result["bandwidth_gb_s"] = bw
    for name, lm in lms.items():
        per_token = bytes_per_token(lm)
        bound = bw * 1e9 / per_token
        result[f"{name}_bytes_per_token"] = per_token
        result[f"{name}_bound_tokens_per_s"] = bound
        result[f"{name}_batch1_of_bound"] = med(name, f"soft_b{batches[0]}", "tokens_per_s") / bound
    del lms
    for name in ("transformers", "llamacpp"):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--model", args.model, "--threads",
                              str(args.threads), "--steps", str(args.steps)], capture_output=True, text=True, check=True)
        result[f"{name}_peak_rss_mb"] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]

    print(f"model {args.model}, CPU, {args.threads} threads, medians of {args.rounds} alternating rounds")
    print(f"{'workload':<58} {'transformers':>13} {'llama.cpp':>10} {'ratio':>6}  unit")
    for row in result["rows"]:
        print(f"{row['workload']:<58} {row['transformers']:>13.2f} {row['llamacpp']:>10.2f} {row['ratio']:>5.2f}×  "
              f"{row['unit']}")
    print(f"memory bandwidth (copy) {bw:.1f} GB/s; weight bytes per token: transformers "
          f"{result['transformers_bytes_per_token'] / 1e6:.0f} MB, llama.cpp {result['llamacpp_bytes_per_token'] / 1e6:.0f} MB")
    print(f"batch-1 tokens/s as a share of the bandwidth bound: transformers {result['transformers_batch1_of_bound']:.0%} "
          f"(bound {result['transformers_bound_tokens_per_s']:.0f}), llama.cpp {result['llamacpp_batch1_of_bound']:.0%} "
          f"(bound {result['llamacpp_bound_tokens_per_s']:.0f})")
    print(f"peak RSS: transformers {result['transformers_peak_rss_mb']:.0f} MB, llama.cpp "
          f"{result['llamacpp_peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
