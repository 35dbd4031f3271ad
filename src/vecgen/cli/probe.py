"""``vecgen probe``: what a model does with vectors it is fed (superposition sweep, logit lens, vector arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import (
    BackendOptions,
    ModelOptions,
    RunOptions,
    check_load,
    load,
    print_summary,
    with_options,
)

probe_app = typer.Typer(help="Probes of what a model does with vectors it is fed (issue 17: can it read a "
                        "superposition?).", no_args_is_help=True)

BatchOpt = Annotated[int, typer.Option("--batch-size", help="Sequences per forward pass (>= 1).")]
PromptsFileOpt = Annotated[
    Optional[Path],
    typer.Option("--prompts", help="Text file of prompts, one per line ('#' comments). Default: the 102 shipped "
                 "sentence beginnings (vecgen/data/probes/prompts.txt)."),
]


@dataclass
class SuperpositionOptions(ModelOptions, RunOptions, BackendOptions):
    prompts_file: PromptsFileOpt = None
    pair: Annotated[Optional[list[str]], typer.Option("--pair", help="An extra pair as a JSON list [prompt, token a, token b] (repeat for several); each token must be exactly one token of the model, a leading space included, e.g. '[\"Once upon a time\", \",\", \" there\"]'.")] = None  # noqa: E501
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated α values in [0, 1], including 0 and 1; α weights token a.")] = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"  # noqa: E501
    min_divergence: Annotated[float, typer.Option("--min-divergence", help="Pairs whose continuations after a and after b differ by less than this Jensen-Shannon divergence (nats, 0 to ln 2) are reported but left out of the summary.")] = 0.1  # noqa: E501
    mixture_top_k: Annotated[int, typer.Option("--mixture-top-k", help="Size of the model's own soft mixtures fed back (top-k weights at temperature 1; 0 = skip that part).")] = 10  # noqa: E501
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write one figure per informative or user pair under plots/.")] = True  # noqa: E501
    batch_size: BatchOpt = 32


@dataclass
class LensOptions(ModelOptions, RunOptions):
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", "-p", help="Prompt of a heat map (repeat for several). Default: the seeds' three prompts.")] = None  # noqa: E501
    n: Annotated[int, typer.Option("--n", "-N", help="Concept tokens after each --prompt (>= 1).")] = 3
    after: Annotated[int, typer.Option("--after", help="Greedy tokens decoded after the concept tokens, also shown (>= 0).")] = 3  # noqa: E501
    mixture_top_k: Annotated[int, typer.Option("--mixture-top-k", help="Concept-token mixture size (top-k weights, temperature 1, >= 2).")] = 10  # noqa: E501
    prompts_file: PromptsFileOpt = None
    summary_prompts: Annotated[int, typer.Option("--summary-prompts", help="How many prompts of --prompts the per-layer summary of the first concept token covers (0 = none).")] = 102  # noqa: E501
    batch_size: BatchOpt = 8
    backend: Annotated[str, typer.Option("--backend", help="transformers or reference (llama.cpp returns no per-layer hidden states); auto = transformers.")] = "auto"  # noqa: E501


@dataclass
class AnalogyOptions(ModelOptions, RunOptions, BackendOptions):
    pairs_file: Annotated[Optional[Path], typer.Option("--pairs", help="TSV of word pairs, relation<TAB>x<TAB>y per line ('#' comments); quadruples are consecutive pairs of a relation. Default: the 126 shipped pairs (capital, gender, plural, tense, comparative).")] = None  # noqa: E501
    k: Annotated[int, typer.Option("--k", help="Answers kept per quadruple (top-k accuracy, >= 1).")] = 5
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Also feed e(b) − e(a) + e(c) as a concept token in its relation's frame (shipped relations only).")] = True  # noqa: E501
    batch_size: BatchOpt = 32


def _progress(label: str) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)


@with_options(SuperpositionOptions)
def superposition(ctx: typer.Context, o: SuperpositionOptions) -> None:
    """Feed α·e(a) + (1−α)·e(b) after a prompt and compare the next-token distribution with the ones after a and b.

    Pairs: the model's own top-2 next tokens at each prompt, plus --pair. Per pair: KL to the α-interpolation of the two continuations (a linear reading) and to the nearer endpoint (following one component), the α where the continuation switches and how sharp the switch is; the model's own concept tokens are fed back and compared the same way. Deterministic. Writes runs/<name>/results.json, records.jsonl, report.md, superposition.png and plots/pair-*.png.
    """  # noqa: E501
    from ..models import load_tokenizer
    from ..probes.runs import superposition as run
    from ..probes.runs import (
        superposition_lines,
        superposition_pair_ids,
        superposition_settings,
        write_superposition,
    )
    from ..reports import RunWriter

    s = superposition_settings(prompts=o.prompts_file, pairs=o.pair or [], alphas=o.alphas,
                               min_divergence=o.min_divergence, mixture_top_k=o.mixture_top_k, batch_size=o.batch_size)
    check_load(o)
    superposition_pair_ids(load_tokenizer(o.model), s["pairs"])  # every pair token checked before the model loads
    settings = {k: v for k, v in s.items() if k != "prompt_texts"}
    writer = ctx.with_resource(RunWriter("probe-superposition", name=o.run_name, root=o.out_dir, resumable=False,
                                         config={**settings, "model": o.model, "device": o.device, "dtype": o.dtype,
                                                 "backend": o.backend}))
    lm = load(o)
    with _progress("superposition") as bar:
        task = bar.add_task("feeding", total=None)
        res = run(lm, s["prompt_texts"], pairs=s["pairs"], alphas=s["alphas"], min_divergence=o.min_divergence,
                  mixture_top_k=o.mixture_top_k, batch_size=o.batch_size,
                  on_progress=lambda n, t: bar.update(task, completed=n, total=t))
    write_superposition(writer, res, lm, plots=o.plots)
    print_summary(superposition_lines(res), writer.dir, "results.json, records.jsonl, report.md, superposition.png, plots/")


@with_options(LensOptions)
def lens(ctx: typer.Context, o: LensOptions) -> None:
    """Logit lens at concept-token positions: decode every layer's residual stream through the final norm and LM head.

    For each --prompt: N concept tokens (soft rule, temperature 1, top-k) and the next greedy tokens, decoded at every layer × position (top tokens, entropy), beside the discrete run that feeds each concept token's top-1 token; a heat map per prompt. Over --summary-prompts prompts: per layer, KL from the first concept token's lens to its top-1 token's lens and to the mixture of its components' lenses. Deterministic. Writes runs/<name>/results.json, records.jsonl, report.md, lens-first-token.png and lens-<i>.png.
    """  # noqa: E501
    from ..errors import ConfigError
    from ..probes.runs import lens as run
    from ..probes.runs import lens_lines, lens_settings, write_lens
    from ..reports import RunWriter

    if o.backend not in ("auto", "transformers", "reference"):
        raise ConfigError(f"--backend {o.backend!r}: the logit lens needs every layer's hidden states; choose "
                          "transformers or reference")
    s = lens_settings(prompts=o.prompt, n=o.n, after=o.after, mixture_top_k=o.mixture_top_k,
                      summary_prompts=o.summary_prompts, prompts_file=o.prompts_file, batch_size=o.batch_size)
    check_load(o)
    settings = {k: v for k, v in s.items() if k not in ("summary_texts", "batch_size")}
    writer = ctx.with_resource(RunWriter("probe-lens", name=o.run_name, root=o.out_dir, resumable=False,
                                         config={**settings, "model": o.model, "device": o.device, "dtype": o.dtype,
                                                 "backend": o.backend}))
    lm = load(o)
    with _progress("first-token lens") as bar:
        task = bar.add_task("prompts", total=s["summary_prompts"])
        res = run(lm, s["prompts"], n=o.n, after=o.after, mixture_top_k=o.mixture_top_k,
                  summary_prompts=o.summary_prompts, prompts_file=o.prompts_file, batch_size=o.batch_size,
                  on_progress=lambda d, t: bar.update(task, completed=d))
    write_lens(writer, res, lm)
    print_summary(lens_lines(res), writer.dir, "results.json, records.jsonl, report.md, lens-*.png")


@with_options(AnalogyOptions)
def analogy(ctx: typer.Context, o: AnalogyOptions) -> None:
    """Vector arithmetic: the nearest tokens of e(b) − e(a) + e(c) (a : b :: c : d), and the vector fed as a concept token.

    Spaces: the input embedding and the LM head's unembedding (not on llama.cpp). Top-1 / top-k accuracy per relation. Writes runs/<name>/results.json, records.jsonl, report.md and analogy.png.
    """  # noqa: E501
    from ..errors import ConfigError
    from ..probes.runs import analogy as run
    from ..probes.runs import analogy_lines, analogy_quadruples, write_analogy
    from ..reports import RunWriter

    for value, name in ((o.k, "--k"), (o.batch_size, "--batch-size")):
        if value < 1:
            raise ConfigError(f"{name}={value}: must be >= 1")
    quads = analogy_quadruples(o.pairs_file)
    check_load(o)
    settings = {"pairs": str(o.pairs_file) if o.pairs_file else "shipped", "k": o.k, "frames": o.frames,
                "quadruples": len(quads)}
    writer = ctx.with_resource(RunWriter("probe-analogy", name=o.run_name, root=o.out_dir, resumable=False,
                                         config={**settings, "model": o.model, "device": o.device, "dtype": o.dtype,
                                                 "backend": o.backend}))
    lm = load(o)
    res = run(lm, o.pairs_file, k=o.k, frames=o.frames, batch_size=o.batch_size)
    write_analogy(writer, res, lm)
    print_summary(analogy_lines(res), writer.dir, "results.json, records.jsonl, report.md, analogy.png")


def register(app: typer.Typer) -> None:
    probe_app.command("superposition")(superposition)
    probe_app.command("lens")(lens)
    probe_app.command("analogy")(analogy)
    app.add_typer(probe_app, name="probe")
