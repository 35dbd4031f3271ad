"""The superposition sweep's shared prefixes: each prompt prefilled once and forked per α, against one full prompt
per α.

Usage::

    python benchmarks/bench_probes.py [--prompts 20] [--alphas 11] [--rounds 3] [--model default]

Workload: the first ``--prompts`` shipped probe prompts, each followed by ``--alphas`` vectors
``α·e(a) + (1−α)·e(b)`` (the model's top-2 tokens), 32 sequences per forward pass. Measured in the same run:

* baseline — ``next_logprobs`` over ``[prompt ids, vector]`` sequences (every α re-runs the whole prompt);
* vecgen — ``continuation_logprobs`` (prefill each prompt once, ``Backend.fork`` it per α, ``Backend.extend`` by
  one vector), what ``vecgen probe superposition`` uses.

Prints the median seconds of ``--rounds`` and the speed-up, and checks that both give the same log-probabilities
(max |Δ|; float32 rounding only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--alphas", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from vecgen.models import load_model
    from vecgen.probes.common import continuation_logprobs, load_prompts, next_logprobs
    from vecgen.probes.sweep import _interp_vectors, model_pairs

    torch.set_grad_enabled(False)
    lm = load_model(args.model, show_progress=False)
    prompts = load_prompts()[: args.prompts]
    alphas = [i / (args.alphas - 1) for i in range(args.alphas)]
    pairs = model_pairs(lm, prompts)
    prefixes = [lm.encode(p) for p, *_ in pairs]
    vectors = [_interp_vectors(lm, a, b, alphas) for _, a, b, _, _ in pairs]
    seqs = [[ids, v[None]] for ids, vs in zip(prefixes, vectors) for v in vs]

    def base():
        return next_logprobs(lm, seqs, batch_size=32)

    def ours():
        return torch.cat(continuation_logprobs(lm, prefixes, vectors, batch_size=32))

    times = {"baseline (full prompt per α)": [], "vecgen (prefix forked per α)": []}
    for _ in range(args.rounds):
        for name, fn in zip(times, (base, ours)):
            t = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t)
            if name.startswith("baseline"):
                ref = out
            else:
                diff = float((out - ref).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(seqs)
    print(f"model {lm.name} ({lm.backend.name}, {lm.dtype}); {len(prompts)} prompts × {len(alphas)} α = {n} sequences; "
          f"torch threads {torch.get_num_threads()}")
    for k, v in med.items():
        print(f"{k:32s} {v:7.2f} s  ({n / v:6.1f} sequences/s)")
    b, o = med["baseline (full prompt per α)"], med["vecgen (prefix forked per α)"]
    print(f"speed-up {b / o:.2f}×; max |Δ log p| {diff:.2e}")


if __name__ == "__main__":
    main()
