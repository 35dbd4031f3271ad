"""``vecgen probe``: what a model does with vectors it is fed (superposition sweep, logit lens, vector arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import (
    BackendOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    NCtxOpt,
    OutDirOpt,
    RunNameOpt,
    ThreadsOpt,
    backend_options,
)

probe_app = typer.Typer(help="Probes of what a model does with vectors it is fed (issue 17: can it read a "
                        "superposition?).", no_args_is_help=True)

BatchOpt = Annotated[int, typer.Option("--batch-size", help="Sequences per forward pass (>= 1).")]
PromptsFileOpt = Annotated[
    Optional[Path],
    typer.Option("--prompts", help="Text file of prompts, one per line ('#' comments). Default: the 102 shipped "
                 "sentence beginnings (vecgen/data/probes/prompts.txt)."),
]


def _check_positive(value: int, name: str, minimum: int = 1) -> None:
    from ..errors import ConfigError

    if value < minimum:
        raise ConfigError(f"{name}={value}: must be >= {minimum}")


def parse_pair(text: str) -> tuple[str, str, str]:
    """``--pair`` value: a JSON list ``["prompt", "token a", "token b"]``.

    Raises:
        ConfigError: not JSON, not three strings, or an empty prompt.
    """
    from ..errors import ConfigError

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"--pair {text!r}: expected a JSON list of three strings, e.g. "
                          "'[\"Once upon a time\", \",\", \" there\"]' (prompt, token a, token b)")
    if not value[0].strip():
        raise ConfigError(f"--pair {text!r}: empty prompt")
    return value[0], value[1], value[2]


def _load(model: str, device: str, dtype: str, backend: str, threads: Optional[int], n_ctx: Optional[int]) -> Any:
    from ..models import load_model

    return load_model(model, device=device, dtype=dtype, backend=backend,
                      llamacpp=backend_options(backend, threads, n_ctx))


def _progress(label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)


@probe_app.command("superposition")
def superposition(
    ctx: typer.Context,
    prompts_file: PromptsFileOpt = None,
    pair: Annotated[
        Optional[list[str]],
        typer.Option("--pair", help="An extra pair as a JSON list [prompt, token a, token b] (repeat for several); "
                     "each token must be exactly one token of the model, a leading space included, e.g. "
                     "'[\"Once upon a time\", \",\", \" there\"]'."),
    ] = None,
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated α values in [0, 1], including 0 and 1; α "
                                        "weights token a.")] = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
    min_divergence: Annotated[float, typer.Option("--min-divergence", help="Pairs whose continuations after a and "
                                                  "after b differ by less than this Jensen-Shannon divergence (nats, "
                                                  "0 to ln 2) are reported but left out of the summary.")] = 0.1,
    mixture_top_k: Annotated[int, typer.Option("--mixture-top-k", help="Size of the model's own soft mixtures fed "
                                               "back (top-k weights at temperature 1; 0 = skip that part).")] = 10,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write one figure per informative or user pair "
                                        "under plots/.")] = True,
    batch_size: BatchOpt = 32,
    model: ModelOpt = "default",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    n_ctx: NCtxOpt = None,
) -> None:
    """Feed α·e(a) + (1−α)·e(b) after a prompt and compare the next-token distribution with the ones after a and b.

    Pairs: the model's own top-2 next tokens at each prompt, plus --pair. Per pair: KL to the α-interpolation of the two continuations (a linear reading) and to the nearer endpoint (following one component), the α where the continuation switches and how sharp the switch is; the model's own concept tokens are fed back and compared the same way. Deterministic. Writes runs/<name>/results.json, records.jsonl, report.md, superposition.png and plots/pair-*.png.
    """
    from rich.console import Console

    from ..errors import ConfigError
    from ..models import check_model_specs
    from ..models.loader import load_tokenizer
    from ..probes.common import load_prompts, single_token
    from ..probes.report import pair_figure, superposition_figure, superposition_report
    from ..probes.superposition import check_alphas, run_superposition
    from ..reports import RunWriter

    try:
        values = [float(a) for a in alphas.split(",") if a.strip()]
    except ValueError:
        raise ConfigError(f"--alphas {alphas!r}: expected comma-separated numbers, e.g. 0,0.5,1") from None
    alpha_list = check_alphas(values)
    if not (0.0 <= min_divergence <= 0.7):
        raise ConfigError(f"--min-divergence={min_divergence}: a Jensen-Shannon divergence in nats is in [0, ln 2 ≈ 0.693]")
    _check_positive(mixture_top_k, "--mixture-top-k", 0)
    _check_positive(batch_size, "--batch-size")
    raw_pairs = [parse_pair(p) for p in pair or []]
    prompts = load_prompts(prompts_file)
    check_model_specs([model], device=device, dtype=dtype)
    backend_options(backend, threads, n_ctx)
    tok = load_tokenizer(model)
    user_pairs = [(p, single_token(tok, a, f"--pair {p!r}, token a"), single_token(tok, b, f"--pair {p!r}, token b"))
                  for p, a, b in raw_pairs]
    if any(a == b for _, a, b in user_pairs):
        raise ConfigError("--pair: tokens a and b are the same token; give two different tokens")
    settings = {"prompts": str(prompts_file) if prompts_file else "shipped", "pairs": raw_pairs, "alphas": alpha_list,
                "min_divergence": min_divergence, "mixture_top_k": mixture_top_k, "batch_size": batch_size}
    writer = ctx.with_resource(RunWriter("probe-superposition", name=run_name, root=out_dir, resumable=False,
                                         config={**settings, "model": model, "device": device, "dtype": dtype,
                                                 "backend": backend}))
    lm = _load(model, device, dtype, backend, threads, n_ctx)
    with _progress("superposition") as bar:
        task = bar.add_task("feeding", total=None)
        res = run_superposition(lm, prompts, user_pairs=user_pairs, alphas=alpha_list, min_divergence=min_divergence,
                                mixture_top_k=mixture_top_k, batch_size=batch_size,
                                on_progress=lambda n, t: bar.update(task, completed=n, total=t))
    for rec in res.pairs + res.mixtures:
        writer.append_record(rec)
    desc = lm.describe()
    writer.write_results({"summary": res.summary, "pairs": res.pairs, "mixtures": res.mixtures}, model=desc,
                         settings=res.settings)
    writer.save_figure(superposition_figure(res), "superposition.png")
    if plots:
        for i, p in enumerate(res.pairs):
            if p.informative or p.source == "user":
                writer.path("plots").mkdir(exist_ok=True)
                writer.save_figure(pair_figure(p), f"plots/pair-{i:03d}.png")
    writer.write_report(superposition_report(res, desc))
    s = res.summary
    out = Console()
    out.print(f"{s['pairs']} pairs, {s['informative_pairs']} informative: switch α {s['switch_alpha']['mean']:.2f} "
              f"[{s['switch_alpha']['low']:.2f}, {s['switch_alpha']['high']:.2f}], sharpness "
              f"{s['sharpness']['mean']:.1f} (linear reading: 0.5 and 1); "
              f"{s['follows_one_component']['k']}/{s['follows_one_component']['n']} follow one component",
              highlight=False)
    if res.mixtures:
        m = s["mixture_follows_top1"]
        out.print(f"own concept tokens: {m['k']}/{m['n']} continue closer to their top-1 token than to the mixture of "
                  "continuations", highlight=False)
    out.print(f"wrote {writer.dir}/ (results.json, records.jsonl, report.md, superposition.png, plots/)",
              highlight=False)


@probe_app.command("lens")
def lens(
    ctx: typer.Context,
    prompt: Annotated[
        Optional[list[str]],
        typer.Option("--prompt", "-p", help="Prompt of a heat map (repeat for several). Default: the seeds' three "
                     "prompts."),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-N", help="Concept tokens after each --prompt (>= 1).")] = 3,
    after: Annotated[int, typer.Option("--after", help="Greedy tokens decoded after the concept tokens, also shown "
                                       "(>= 0).")] = 3,
    mixture_top_k: Annotated[int, typer.Option("--mixture-top-k", help="Concept-token mixture size (top-k weights, "
                                               "temperature 1, >= 2).")] = 10,
    prompts_file: PromptsFileOpt = None,
    summary_prompts: Annotated[int, typer.Option("--summary-prompts", help="How many prompts of --prompts the "
                                                 "per-layer summary of the first concept token covers (0 = none).")
                               ] = 102,
    batch_size: BatchOpt = 8,
    model: ModelOpt = "default",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    backend: Annotated[str, typer.Option("--backend", help="transformers or reference (llama.cpp returns no "
                                         "per-layer hidden states); auto = transformers.")] = "auto",
) -> None:
    """Logit lens at concept-token positions: decode every layer's residual stream through the final norm and LM head.

    For each --prompt: N concept tokens (soft rule, temperature 1, top-k) and the next greedy tokens, decoded at every layer × position (top tokens, entropy), beside the discrete run that feeds each concept token's top-1 token; a heat map per prompt. Over --summary-prompts prompts: per layer, KL from the first concept token's lens to its top-1 token's lens and to the mixture of its components' lenses. Deterministic. Writes runs/<name>/results.json, records.jsonl, report.md, lens-first-token.png and lens-<i>.png.
    """
    from rich.console import Console

    from ..concept.run import DEFAULT_PROMPTS
    from ..errors import ConfigError
    from ..models import check_model_specs
    from ..probes.common import load_prompts
    from ..probes.lens import first_token_lens, lens_trace
    from ..probes.report import first_token_figure, lens_figure, lens_report
    from ..reports import RunWriter

    if backend not in ("auto", "transformers", "reference"):
        raise ConfigError(f"--backend {backend!r}: the logit lens needs every layer's hidden states; choose "
                          "transformers or reference")
    prompts = list(prompt) if prompt else list(DEFAULT_PROMPTS)
    for p in prompts:
        if not p.strip():
            raise ConfigError("--prompt: empty prompt; give some text to continue")
    _check_positive(n, "--n")
    _check_positive(after, "--after", 0)
    _check_positive(mixture_top_k, "--mixture-top-k", 2)
    _check_positive(summary_prompts, "--summary-prompts", 0)
    _check_positive(batch_size, "--batch-size")
    summary = load_prompts(prompts_file)[:summary_prompts] if summary_prompts else []
    check_model_specs([model], device=device, dtype=dtype)
    settings = {"prompts": prompts, "n": n, "after": after, "mixture_top_k": mixture_top_k,
                "summary_prompts": len(summary), "prompts_file": str(prompts_file) if prompts_file else "shipped"}
    writer = ctx.with_resource(RunWriter("probe-lens", name=run_name, root=out_dir, resumable=False,
                                         config={**settings, "model": model, "device": device, "dtype": dtype,
                                                 "backend": backend}))
    lm = _load(model, device, dtype, backend, None, None)
    records = []
    for i, p in enumerate(prompts):
        rec = lens_trace(lm, p, n=n, after=after, mixture_top_k=mixture_top_k)
        records.append(rec)
        writer.append_record(rec)
        writer.save_figure(lens_figure(rec), f"lens-{i + 1}.png")
    ft = None
    if summary:
        with _progress("first-token lens") as bar:
            task = bar.add_task("prompts", total=len(summary))
            ft = first_token_lens(lm, summary, mixture_top_k=mixture_top_k, batch_size=batch_size,
                                  on_progress=lambda d, t: bar.update(task, completed=d))
        writer.save_figure(first_token_figure(ft), "lens-first-token.png")
    desc = lm.describe()
    writer.write_results({"first_token": ft, "prompts": [
        {"prompt": r.prompt, "mixtures": r.mixtures, "concept_inputs": r.concept.inputs,
         "discrete_inputs": r.discrete.inputs} for r in records]}, model=desc, settings=settings)
    writer.write_report(lens_report(records, ft, desc))
    out = Console()
    for r in records:
        last = len(r.concept.entropy) - 1
        out.print(f"{r.prompt!r}: concept tokens {[m['texts'][0] for m in r.mixtures]}, last-layer top "
                  f"{[c[0] for c in r.concept.top_texts[last]]} vs discrete {[c[0] for c in r.discrete.top_texts[last]]}",
                  highlight=False)
    if ft is not None:
        best = min(range(ft.layers), key=lambda l: ft.kl_top1[l]["mean"])
        out.print(f"first concept token over {ft.prompts} prompts: KL to its top-1 token's lens is smallest at layer "
                  f"{best} ({ft.kl_top1[best]['mean']:.3f} nats); last layer: {ft.kl_top1[-1]['mean']:.3f} vs "
                  f"{ft.kl_linear[-1]['mean']:.3f} to the mixture of its components", highlight=False)
    out.print(f"wrote {writer.dir}/ (results.json, records.jsonl, report.md, lens-*.png)", highlight=False)


@probe_app.command("analogy")
def analogy(
    ctx: typer.Context,
    pairs_file: Annotated[
        Optional[Path],
        typer.Option("--pairs", help="TSV of word pairs, relation<TAB>x<TAB>y per line ('#' comments); quadruples "
                     "are consecutive pairs of a relation. Default: the 126 shipped pairs (capital, gender, plural, "
                     "tense, comparative)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Answers kept per quadruple (top-k accuracy, >= 1).")] = 5,
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Also feed e(b) − e(a) + e(c) as a concept "
                                         "token in its relation's frame (shipped relations only).")] = True,
    batch_size: BatchOpt = 32,
    model: ModelOpt = "default",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    n_ctx: NCtxOpt = None,
) -> None:
    """Vector arithmetic: the nearest tokens of e(b) − e(a) + e(c) (a : b :: c : d), and the vector fed as a concept token.

    Spaces: the input embedding and the LM head's unembedding (not on llama.cpp). Top-1 / top-k accuracy per relation. Writes runs/<name>/results.json, records.jsonl, report.md and analogy.png.
    """
    from rich.console import Console

    from ..models import check_model_specs
    from ..probes.analogy import (
        accuracy_by_relation,
        frame_accuracy,
        frame_test,
        load_pairs,
        make_quadruples,
        output_space,
        solve_analogies,
    )
    from ..probes.report import analogy_figure, analogy_report
    from ..reports import RunWriter

    _check_positive(k, "--k")
    _check_positive(batch_size, "--batch-size")
    quads = make_quadruples(load_pairs(pairs_file))
    if not quads:
        from ..errors import ConfigError

        raise ConfigError(f"{pairs_file}: no relation has two pairs, so no quadruple can be formed")
    check_model_specs([model], device=device, dtype=dtype)
    backend_options(backend, threads, n_ctx)
    settings = {"pairs": str(pairs_file) if pairs_file else "shipped", "k": k, "frames": frames,
                "quadruples": len(quads)}
    writer = ctx.with_resource(RunWriter("probe-analogy", name=run_name, root=out_dir, resumable=False,
                                         config={**settings, "model": model, "device": device, "dtype": dtype,
                                                 "backend": backend}))
    lm = _load(model, device, dtype, backend, threads, n_ctx)
    spaces = {"input": lm.embedding}
    head = output_space(lm)
    if head is not None:
        spaces["output"] = head
    acc, all_hits, skipped = {}, {}, []
    for name, space in spaces.items():
        hits, skipped = solve_analogies(space, lm.n_real_vocab, lm.tokenizer, quads, k=k)
        acc[name], all_hits[name] = accuracy_by_relation(hits, k), hits
    fhits, no_frame = frame_test(lm, all_hits["input"], k=5, batch_size=batch_size) if frames else ([], [])
    facc = frame_accuracy(fhits) if fhits else {}
    for name, hits in all_hits.items():
        for h in hits:
            writer.append_record({"kind": "nearest", "space": name, **_hit(h, lm)})
    for fh in fhits:
        writer.append_record({"kind": "frame", **vars(fh)})
    desc = lm.describe()
    writer.write_results({"accuracy": acc, "frame_accuracy": facc, "skipped": [vars(q) for q in skipped],
                          "relations_without_frame": no_frame, "tied_embeddings": head is not None and bool(
                              head.data_ptr() == lm.embedding.data_ptr())}, model=desc, settings=settings)
    writer.save_figure(analogy_figure(acc, facc, k), "analogy.png")
    writer.write_report(analogy_report(acc, facc, len(skipped), desc, k, no_frame))
    out = Console()
    for name in acc:
        a = acc[name]["all"]
        out.print(f"{name} space: top-1 {100 * a['top1']:.0f}%, top-{k} {100 * a[f'top{k}']:.0f}% of {a['n']} "
                  "quadruples", highlight=False)
    if facc:
        f = facc["all"]
        out.print(f"fed as a concept token in a frame: top-1 {100 * f['top1']:.0f}%, top-5 {100 * f['top5']:.0f}%, "
                  f"closer to d than to c {100 * f['closer_to_d']:.0f}%", highlight=False)
    out.print(f"wrote {writer.dir}/ (results.json, records.jsonl, report.md, analogy.png)", highlight=False)


def _hit(h: Any, lm: Any) -> dict[str, Any]:
    from ..decoding.metrics import token_text

    return {"quadruple": vars(h.quadruple), "ids": list(h.ids), "top_ids": h.top_ids,
            "top_texts": [token_text(lm.tokenizer, t) for t in h.top_ids], "top_scores": h.top_scores, "rank": h.rank}


def register(app: typer.Typer) -> None:
    app.add_typer(probe_app, name="probe")
