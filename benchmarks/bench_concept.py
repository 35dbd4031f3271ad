"""Concept-token decoding speed vs discrete greedy decoding with transformers' ``generate``.

Usage::

    python benchmarks/bench_concept.py [--model default] [--steps 32] [--rounds 5] [--batches 1,8]
                                        [--threads N] [--json out.json]

Measured in one process on the same weights, for batch 1 and batch 8 (prompts of different lengths,
left-padded), each run generating exactly ``--steps`` tokens/vectors per row after a short prompt:

* ``hf``: ``model.generate(do_sample=False, min_new_tokens=max_new_tokens=steps)`` — the baseline;
* ``onehot``: vecgen's decode engine (``generate``) with greedy sampling (ordinary decoding, same tokens as ``hf``);
* ``soft``: concept tokens, Soft Thinking rule, ``max_topk`` 10, temperature 1;
* ``full``: concept tokens, full-vocabulary softmax mixture (CoT2), temperature 1 — a dense
  ``(B, V) @ (V, d)`` product over the whole embedding matrix each step.

Every decode step is timestamped (transformers: a pass-through ``LogitsProcessor``, which leaves the
tokens unchanged; vecgen: the engine's ``on_step`` before each step), so ``steps/s`` is ``1 / median step time`` over all decode steps
of all rounds (the prefill excluded): on a shared machine a spike then moves one step, not a whole run.
Rounds alternate the four configurations so machine noise hits them alike; the ratio of median whole-run
times (prefill included) is printed beside it. Multiply ``steps/s`` by the batch for tokens/s.

Peak RSS: the process's high-water mark (``ru_maxrss``, loading included) and, per configuration, the
largest growth over the RSS after loading and a warm-up, sampled every 2 ms.

Targets (issue 11): ``onehot`` and ``soft`` ≥ 1.0× the ``hf`` steps/s at batch 1 and at batch 8, ``full`` ≥ 0.9×.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time

import torch

PROMPTS = [
    "The capital of France is",
    "2 plus 2 equals",
    "Once upon a time",
    "def fibonacci(n):",
    "The three primary colours are",
    "In 1969, the first person to walk on the Moon was",
    "Water boils at",
    "A haiku about autumn:",
]


class RssSampler:
    """Largest RSS (bytes) seen while active, sampled every 2 ms in a background thread."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_runners(lm, batch: int, steps: int):
    from vecgen.config import SamplingConfig
    from vecgen.decoding import MixingConfig, generate

    prompts = [lm.encode(p) for p in PROMPTS[:batch]]
    tok = lm.tokenizer
    tok.padding_side = "left"
    enc = tok([PROMPTS[i] for i in range(batch)], return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(lm.device) for k, v in enc.items()}
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=steps)
    concept = SamplingConfig(temperature=1.0, max_new_tokens=steps)

    from transformers import LogitsProcessor, LogitsProcessorList

    class Stamp(LogitsProcessor):
        """Pass-through processor: records when each step's logits are ready (tokens unchanged)."""

        def __init__(self, stamps):
            self.stamps = stamps

        def __call__(self, input_ids, scores):
            self.stamps.append(time.perf_counter())
            return scores

    @torch.inference_mode()
    def hf(stamps):
        out = lm.model.generate(**enc, do_sample=False, max_new_tokens=steps, min_new_tokens=steps,
                                pad_token_id=tok.pad_token_id, logits_processor=LogitsProcessorList([Stamp(stamps)]))
        return out[:, enc["input_ids"].shape[1]:]

    def ours(rule, sampling):
        def run(stamps):
            return generate(lm, prompts, sampling=sampling, mixing=MixingConfig(rule=rule, max_topk=10), stop_ids=[],
                            on_step=lambda step, rows: stamps.append(time.perf_counter()))

        return run

    return {"hf": hf, "onehot": ours("onehot", greedy), "soft": ours("soft", concept), "full": ours("full", concept)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vecgen.models import load_model

    lm = load_model(args.model, device=args.device, dtype=args.dtype, show_progress=False)
    import psutil

    from vecgen.decoding import generate

    generate(lm, [lm.encode("Hello")], max_new_tokens=2, stop_ids=[], mixing="full")  # page in the mmapped weights
    base_rss = psutil.Process().memory_info().rss
    print(f"model {lm.name} ({lm.adapter.family}, {lm.dtype}, {lm.device}), torch threads {torch.get_num_threads()}, "
          f"{args.steps} steps per run, {args.rounds} rounds; RSS after load + warm-up {base_rss / 2**30:.2f} GiB")
    results = {"model": lm.describe(), "steps": args.steps, "rounds": args.rounds, "batches": {}}
    for batch in [int(b) for b in args.batches.split(",")]:
        runners = make_runners(lm, batch, args.steps)
        # Same tokens: vecgen's onehot loop reproduces transformers' greedy generate.
        ref = runners["hf"]([])
        ours = runners["onehot"]([]).tokens
        same = [ours[i].tolist() == ref[i].tolist() for i in range(batch)]
        for fn in runners.values():  # warm-up
            fn([])
        times: dict[str, list[float]] = {k: [] for k in runners}
        step_times: dict[str, list[float]] = {k: [] for k in runners}
        peaks: dict[str, int] = {k: 0 for k in runners}
        for _ in range(args.rounds):
            for name, fn in runners.items():
                stamps: list[float] = []
                with RssSampler() as rss:
                    t0 = time.perf_counter()
                    fn(stamps)
                    times[name].append(time.perf_counter() - t0)
                peaks[name] = max(peaks[name], rss.peak - base_rss)
                step_times[name] += [b - a for a, b in zip(stamps, stamps[1:])]  # decode steps (prefill excluded)
        med = {k: statistics.median(v) for k, v in times.items()}
        step_med = {k: statistics.median(v) for k, v in step_times.items()}
        sps = {k: 1.0 / v for k, v in step_med.items()}
        ratio = {k: sps[k] / sps["hf"] for k in sps}
        run_ratio = {k: med["hf"] / med[k] for k in med}
        results["batches"][batch] = {"step_seconds_median": step_med, "steps_per_s": sps, "ratio_vs_hf": ratio,
                                     "run_seconds_median": med, "run_seconds_all": times, "run_ratio_vs_hf": run_ratio,
                                     "rss_growth_bytes": peaks, "onehot_equals_hf": same}
        print(f"\nbatch {batch}: onehot tokens == hf generate tokens for {sum(same)}/{batch} rows")
        print(f"  {'config':<8} {'ms/step':>8} {'steps/s':>8} {'tokens/s':>9} {'× hf':>6} {'whole runs × hf':>16} "
              f"{'RSS growth':>11}")
        for k in runners:
            print(f"  {k:<8} {step_med[k] * 1000:8.1f} {sps[k]:8.2f} {sps[k] * batch:9.2f} {ratio[k]:6.3f} "
                  f"{run_ratio[k]:16.3f} {peaks[k] / 2**20:7.0f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results["peak_rss_bytes"] = peak
    print(f"\npeak RSS of the process (loading included): {peak / 2**30:.2f} GiB")
    for batch, res in results["batches"].items():
        r = res["ratio_vs_hf"]
        verdict = [f"{k} {r[k]:.3f}× (≥ {t}: {'met' if r[k] >= t else 'NOT met'})"
                   for k, t in (("onehot", 1.0), ("soft", 1.0), ("full", 0.9))]
        print(f"targets at batch {batch}: " + ", ".join(verdict))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
