"""Soft thinking on vLLM against stock vLLM token decoding and vecgen's transformers backend (issue 37).

Usage (in vLLM's environment, ``bash scripts/vllm-env.sh``; run it alone, nothing else on the CPU)::

    .venv-vllm/bin/python benchmarks/bench_vllm.py [--model default] [--items 32] [--batch-size 8]
        [--max-think-tokens 128] [--dtype float32] [--device cpu] [--kv-cache-gib 2] [--skip-transformers]
        [--json out.json]

On a GPU machine: ``benchmarks/device_vllm.sh`` (a 7B model, bfloat16, with GPU memory).

One run, in this order:

1. ``--backend vllm``: the first ``--items`` GSM8K test problems through ``run_thinking`` with the ``vecgen think``
   settings of ``cot`` (greedy) and ``soft`` (Soft Thinking's concept tokens: rule ``soft``, max_topk 10,
   T 0.6 / top_p 0.95 / top_k 30 / min_p 0.001; Cold Stop τ 0.01, L 48), continuously batched at ``--batch-size``
   rows (``max_batch``). An untimed warm-up of both methods (8 thinking tokens) comes first.
2. **Stock vLLM** (a ``vllm.LLM`` with the same engine settings: float32,
   ``enforce_eager``, prefix caching off, ``max_num_seqs = --batch-size``; no vecgen hook): the same prompts as
   token ids, each generating exactly as many tokens as the soft run's row generated (``min_tokens = max_tokens``,
   ``ignore_eos``), greedy. Warmed up the same way.
3. ``--backend transformers`` (unless ``--skip-transformers``): the same two runs as 1.

Each of the three runs in a process of its own, one after the other, so that each has the device (and its memory)
to itself; on a GPU each reports the peak memory torch reserved.

Row-steps are the generated positions of all rows (thinking steps, the marker, the answer tokens); row-steps/s
divides them by the run's wall time, prefill included on every side. Target: soft thinking on vLLM reaches
>= 0.8x stock vLLM's row-steps/s at the same batch. The report prints each run's seconds, row-steps/s, the ratios and
the load average after each run (a busy machine shows there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

WARMUP_THINK_TOKENS = 8

from bench_think import configs  # noqa: E402  the vecgen think settings of cot and soft (this folder)


def vecgen_runs(backend: str, args, prompts_text) -> tuple[dict, list[list[int]], dict[str, list[int]], str]:
    """Time cot and soft on one backend; returns (results, prompt ids, generated tokens per row per method, the
    folder vLLM loaded or "")."""
    import vecgen
    from vecgen.thinking.prompts import build_prompt, prompt_style
    from vecgen.thinking.runner import run_thinking

    t0 = time.perf_counter()
    extra = {"n_ctx": 2048} if backend == "vllm" else {}
    lm = vecgen.load(args.model, device=args.device, dtype=args.dtype, show_progress=False, backend=backend, **extra)
    load_s = time.perf_counter() - t0
    style = prompt_style(lm)
    marker = style.end_marker(lm.tokenizer)
    prompts = [lm.encode(build_prompt(lm, q, style, direct=False)) for q in prompts_text]
    cfgs = configs(args.max_think_tokens)
    for cfg in configs(WARMUP_THINK_TOKENS).values():
        run_thinking(lm, prompts[: args.batch_size], cfg, marker, max_batch=args.batch_size)
    out: dict = {"load_s": load_s}
    lengths: dict[str, list[int]] = {}
    for name, cfg in cfgs.items():
        t0 = time.perf_counter()
        outs = run_thinking(lm, prompts, cfg, marker, max_batch=args.batch_size)
        secs = time.perf_counter() - t0
        lengths[name] = [o.generated_tokens for o in outs]
        steps = sum(lengths[name])
        out[name] = {"seconds": secs, "row_steps": steps, "row_steps_per_s": steps / secs,
                     "load_average_after": os.getloadavg()[0]}
        print(f"{backend:>12} {name:>4}: {steps} row-steps in {secs:.1f} s = {steps / secs:.1f} row-steps/s "
              f"(load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    folder = str(lm.backend.llm.llm_engine.model_config.model) if backend == "vllm" else ""
    return out, prompts, lengths, folder


def stock(spec: dict) -> dict:
    """The stock vLLM run: ``spec`` {folder, prompts, lengths, batch_size, dtype}."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the same in-process engine core as vecgen's backend
    from vllm import LLM, SamplingParams

    llm = LLM(model=spec["folder"], tokenizer=spec["folder"], dtype=spec["dtype"], enable_prefix_caching=False,
              async_scheduling=False, enforce_eager=True, max_num_seqs=spec["batch_size"], max_model_len=2048, seed=0)

    def run(prompts, lengths):
        params = [SamplingParams(max_tokens=n, min_tokens=n, ignore_eos=True, temperature=0.0, detokenize=False)
                  for n in lengths]
        t0 = time.perf_counter()
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return time.perf_counter() - t0, sum(len(o.outputs[0].token_ids) for o in outs)

    run(spec["prompts"][: spec["batch_size"]], [WARMUP_THINK_TOKENS] * spec["batch_size"])
    secs, steps = run(spec["prompts"], spec["lengths"])
    return {"seconds": secs, "row_steps": steps, "row_steps_per_s": steps / secs,
            "load_average_after": os.getloadavg()[0], **gpu_memory()}


def gpu_memory() -> dict:
    """The peak GPU memory torch reserved in this process (GiB), where there is a GPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"gpu_memory_peak_gib": torch.cuda.max_memory_reserved() / 2**30}


def part(spec: dict) -> dict:
    """Run one part in a process of its own (each side alone on the device, its memory freed when it exits)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    proc = subprocess.run([sys.executable, __file__, "--part", fh.name], stdout=subprocess.PIPE, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the {spec['part']} run failed (its messages above)")
    return json.loads(line[len("RESULT "):])


def run_part(spec: dict) -> dict:
    if spec["part"] == "stock":
        return stock(spec)
    args = argparse.Namespace(**spec["args"])
    out, prompts, lengths, folder = vecgen_runs(spec["backend"], args, spec["questions"])
    return {"results": dict(out, **gpu_memory()), "prompts": prompts, "lengths": lengths, "folder": folder}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="a model vecgen loads on vLLM (default: the default model)")
    ap.add_argument("--items", type=int, default=32, help="GSM8K test items (the first N)")
    ap.add_argument("--batch-size", type=int, default=8, help="rows decoded at once, on every side")
    ap.add_argument("--max-think-tokens", type=int, default=128, help="the thinking budget of cot and soft")
    ap.add_argument("--dtype", default="float32", help="float32 (CPU) or bfloat16 (GPU)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (the transformers backend's device)")
    ap.add_argument("--kv-cache-gib", type=int, default=2, help="KV cache per vLLM instance on a CPU (GiB)")
    ap.add_argument("--skip-transformers", action="store_true", help="leave out the transformers backend's runs")
    ap.add_argument("--json", default=None, help="write the results and settings here")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: one side, in its own process
    args = ap.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_cache_gib))
    if args.part:
        print("RESULT " + json.dumps(run_part(json.load(open(args.part)))), flush=True)
        return 0

    import torch
    import vllm

    from vecgen.benchmarks_data import load_benchmark

    tasks = load_benchmark("gsm8k", limit=args.items)
    questions = [t.question for t in tasks]
    settings = {k: v for k, v in vars(args).items() if k != "part"}
    report: dict = {"args": settings, "machine": f"{platform.processor() or platform.machine()}, "
                    f"{os.cpu_count()} CPUs", "torch": torch.__version__, "vllm": vllm.__version__}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    got = part({"part": "vecgen", "backend": "vllm", "args": settings, "questions": questions})
    report["vllm_backend"] = got["results"]
    report["stock_vllm"] = part({"part": "stock", "folder": got["folder"], "prompts": got["prompts"],
                                 "lengths": got["lengths"]["soft"], "batch_size": args.batch_size,
                                 "dtype": args.dtype})
    s = report["stock_vllm"]
    print(f"{'stock vLLM':>12} tok : {s['row_steps']} row-steps in {s['seconds']:.1f} s = "
          f"{s['row_steps_per_s']:.1f} row-steps/s (the soft run's lengths)", flush=True)
    if not args.skip_transformers:
        report["transformers_backend"] = part({"part": "vecgen", "backend": "transformers", "args": settings,
                                               "questions": questions})["results"]
    v = report["vllm_backend"]
    ratios = {"soft_vllm_over_stock": v["soft"]["row_steps_per_s"] / s["row_steps_per_s"],
              "cot_vllm_over_stock": v["cot"]["row_steps_per_s"] / s["row_steps_per_s"]}
    if "transformers_backend" in report:
        t = report["transformers_backend"]
        ratios["soft_vllm_over_transformers"] = v["soft"]["row_steps_per_s"] / t["soft"]["row_steps_per_s"]
        ratios["cot_vllm_over_transformers"] = v["cot"]["row_steps_per_s"] / t["cot"]["row_steps_per_s"]
    report["ratios"] = ratios
    print(f"soft thinking on vLLM / stock vLLM row-steps/s = {ratios['soft_vllm_over_stock']:.2f}x (target >= 0.8x); "
          + ", ".join(f"{k} {x:.2f}x" for k, x in ratios.items() if k != "soft_vllm_over_stock"), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
