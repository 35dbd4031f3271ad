"""Does compiling one decode step pay on this machine? gpt-fast's recipe on the default model.

Usage::

    python benchmarks/bench_compile.py [--model default] [--steps 32] [--rounds 3] [--threads N] [--json out.json]

Batch 1, greedy, in one process on the same weights:

* ``eager``: transformers' ``generate`` (``DynamicCache``) — the baseline of ``bench_concept.py``;
* ``static``: the same decode step written gpt-fast style — transformers' ``StaticCache`` (preallocated,
  fixed shapes), ``inputs_embeds`` of the previous token, explicit ``cache_position`` — run eagerly;
* ``compiled``: that step under ``torch.compile`` (inductor, ``fullgraph=True``, fixed shapes), after a
  warm-up that pays the compilation (its time is printed separately).

Every decode step is timed (``torch.cuda.synchronize`` on CUDA), steps/s = 1 / median step time over all
rounds, prefill excluded. The three produce the same tokens (checked). The ratio ``compiled / eager`` is
what a ``--compile`` option could give (issue 11 target: >= 1.2x at batch 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import StaticCache

    from vecgen.models import load_model

    lm = load_model(args.model, device=args.device, dtype=args.dtype, show_progress=False)
    model, dev = lm.model, lm.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    ids = torch.tensor([lm.encode("The capital of France is")], device=dev)
    T, n = ids.shape[1], args.steps
    embed = model.get_input_embeddings()

    @torch.inference_mode()
    def eager(stamps):
        class Stamp:
            def __call__(self, input_ids, scores):
                sync()
                stamps.append(time.perf_counter())
                return scores

        from transformers import LogitsProcessorList

        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                             min_new_tokens=n, pad_token_id=lm.tokenizer.pad_token_id,
                             logits_processor=LogitsProcessorList([Stamp()]))
        return out[0, T:].tolist()

    cache = StaticCache(config=model.config, max_cache_len=T + n + 1)

    def one_step(x, cache_position):  # (1, 1, d), (1,) -> (1, V)
        out = model(inputs_embeds=x, cache_position=cache_position, position_ids=cache_position[None],
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    compiled_step = torch.compile(one_step, fullgraph=True, dynamic=False)

    def static(step_fn):
        @torch.inference_mode()
        def run(stamps):
            cache.reset()
            logits = model(ids, cache_position=torch.arange(T, device=dev), past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1]
            tokens = []
            for k in range(n):
                tok = logits.argmax(-1)  # (1,)
                tokens.append(int(tok))
                sync()
                stamps.append(time.perf_counter())
                if k == n - 1:
                    break
                logits = step_fn(embed(tok)[:, None], torch.tensor([T + k], device=dev))
            return tokens

        return run

    runners = {"eager": eager, "static": static(one_step), "compiled": static(compiled_step)}
    t0 = time.perf_counter()
    ref = eager([])
    same = {name: fn([]) == ref for name, fn in runners.items()}  # also the compiled warm-up
    compile_s = time.perf_counter() - t0
    steps: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, fn in runners.items():
            stamps: list[float] = []
            fn(stamps)
            steps[name] += [b - a for a, b in zip(stamps, stamps[1:])]
    sps = {k: 1.0 / statistics.median(v) for k, v in steps.items()}
    print(f"model {lm.name} ({lm.dtype}, {lm.device}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch 1, {n} steps, {args.rounds} rounds; first calls incl. compilation {compile_s:.0f} s")
    for k in runners:
        print(f"  {k:<9} {1000 / sps[k]:7.1f} ms/step  {sps[k]:6.2f} steps/s  {sps[k] / sps['eager']:6.3f}× eager  "
              f"same tokens as eager: {same[k]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"steps_per_s": sps, "same_tokens": same, "first_calls_s": compile_s, "device": str(lm.device),
                       "dtype": str(lm.dtype)}, fh, indent=2)


if __name__ == "__main__":
    main()
