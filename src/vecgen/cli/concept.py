"""``vecgen concept``: generate N concept tokens per prompt, describe them and translate them back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    BackendOpt,
    NCtxOpt,
    ThreadsOpt,
    backend_options,
    DeviceMapOpt,
    MaxMemoryOpt,
    BetaOpt,
    ConfigOpt,
    DeviceOpt,
    DirichletAlphaOpt,
    HiddenScaleOpt,
    DtypeOpt,
    EnglishOnlyOpt,
    GumbelTauOpt,
    MaxTopkOpt,
    MinPOpt,
    MixingRuleOpt,
    ModelOpt,
    NoiseOpt,
    OutDirOpt,
    PresetOpt,
    RunNameOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    build_sampling,
    enter_run,
)



def split_list(value: Optional[str], what: str) -> Optional[list[str]]:
    """``"a,b"`` → ``["a", "b"]`` (None stays None).

    Raises:
        ConfigError: the list is given but empty.
    """
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        from ..errors import ConfigError

        raise ConfigError(f"{what}: empty list")
    return items


def parse_ints(value: Optional[str], what: str) -> Optional[list[int]]:
    """``"2,3,4"`` → ``[2, 3, 4]``.

    Raises:
        ConfigError: an item is not an integer.
    """
    items = split_list(value, what)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(f"{what}={value!r}: expected comma-separated integers, e.g. 2,3,4") from None


def concept(
    ctx: typer.Context,
    prompt: Annotated[
        Optional[list[str]],
        typer.Option("--prompt", "-p", help="Prompt to continue (repeat for several). Default: the seeds' three prompts "
                     "'The capital of France is', '2 plus 2 equals', 'Once upon a time'."),
    ] = None,
    n: Annotated[Optional[str], typer.Option("--n", "-N", help="Numbers of concept tokens, comma-separated (each >= 1). "
                                              "Default 2,3,4.")] = None,
    methods: Annotated[
        Optional[str],
        typer.Option("--methods", help="Translation methods, comma-separated: nearest, direct, completion, fewshot, "
                     "instruction. Default: all (instruction is skipped for models without a chat template)."),
    ] = None,
    model: ModelOpt = "default",
    models: Annotated[
        Optional[str],
        typer.Option("--models", help="Several models, comma-separated, run one after another and compared side by "
                     "side (overrides --model)."),
    ] = None,
    rule: MixingRuleOpt = "soft",
    max_topk: MaxTopkOpt = None,
    beta: BetaOpt = None,
    noise: NoiseOpt = None,
    gumbel_tau: GumbelTauOpt = None,
    dirichlet_alpha: DirichletAlphaOpt = None,
    hidden_scale: HiddenScaleOpt = None,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    min_p: MinPOpt = None,
    seed: SeedOpt = None,
    translation_tokens: Annotated[Optional[int], typer.Option("--translation-tokens", help="Tokens generated per "
                                                               "translation (greedy), >= 1. Default 16.")] = None,
    english_only: EnglishOnlyOpt = False,
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    n_ctx: NCtxOpt = None,
) -> None:
    """Generate N concept tokens per prompt, show their top weights and translate them back into text.

    A concept token is the probability-weighted mixture of token embeddings fed back instead of a sampled token. Defaults: the seeds' three prompts, N = 2, 3, 4, the soft rule with max_topk 10 at temperature 1.0 and no other truncation, greedy 16-token translations with every method. Writes runs/<name>/results.json, records.jsonl, report.md, concept_weights.png and vectors.pt.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..concept import (
        CONCEPT_SAMPLING_DEFAULTS,
        ConceptConfig,
        ConceptRun,
        format_prompt_records,
        run_concept,
        total_steps,
        write_outputs,
    )
    from ..decoding.mixing import MixingConfig
    from ..errors import NonFiniteError
    from ..models import check_model_specs, load_model
    from ..parallel import processes
    from ..reports import RunWriter

    sampling = build_sampling(preset, config, defaults=CONCEPT_SAMPLING_DEFAULTS, temperature=temperature,
                              top_p=top_p, top_k=top_k, min_p=min_p, seed=seed)
    mixing = MixingConfig.create(rule=rule, max_topk=max_topk, beta=beta, noise=noise, gumbel_tau=gumbel_tau,
                                 dirichlet_alpha=dirichlet_alpha, hidden_scale=hidden_scale)
    cfg = ConceptConfig.create(prompts=prompt, n_values=parse_ints(n, "--n"), methods=split_list(methods, "--methods"),
                               sampling=sampling, mixing=mixing, translation_tokens=translation_tokens,
                               english_only=english_only)
    specs = split_list(models, "--models") or [model]
    if cfg.methods and "instruction" in cfg.methods:  # fail before loading weights or creating the run folder
        from ..decoding.translate import check_methods
        from ..models import load_tokenizer

        for spec in specs:
            check_methods(_TokenizerOnly(spec, load_tokenizer(spec)), ["instruction"])
    llamacpp = backend_options(backend, threads, n_ctx)
    check_model_specs(specs, device=device, dtype=dtype, device_map=device_map, max_memory=max_memory, backend=backend)
    group = processes(device)  # data-parallel share under torchrun / accelerate launch; else the whole run
    writer = enter_run(ctx, RunWriter("concept", name=run_name, root=out_dir, resumable=False,
                                      config={"concept": cfg, "models": specs, "device": device, "dtype": dtype,
                                              "backend": backend}),
                       group, run_name)
    console = Console(quiet=not group.is_main)
    console.print(f"vecgen concept → {escape(str(writer.dir))}", highlight=False)
    run = ConceptRun([], [], [], {}, {})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not group.is_main) as bar:
        task = bar.add_task("loading", total=total_steps(cfg, len(specs)))

        def load(spec: str):
            bar.update(task, description=f"loading {spec}")
            return load_model(spec, device=group.device(device), dtype=dtype, device_map=device_map,
                              max_memory=max_memory, backend=backend, llamacpp=llamacpp)

        def on_prompt(records):
            bar.console.print(escape(format_prompt_records(records)), highlight=False, soft_wrap=True)

        try:
            run_concept(specs, cfg, load=load, writer=writer, into=run, on_prompt=on_prompt,
                        progress=lambda k, what: bar.update(task, advance=k, description=what), processes=group)
        except NonFiniteError as exc:
            write_outputs(run, cfg, writer, status="failed", error=str(exc))
            raise
    if not group.is_main:
        return
    write_outputs(run, cfg, writer)
    for note in run.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    if len(run.models) > 1:
        _print_side_by_side(console, run)
    console.print(f"wrote {escape(str(writer.dir))}/ (results.json, records.jsonl, report.md, concept_weights.png, "
                  "vectors.pt)", highlight=False)


class _TokenizerOnly:
    """Enough of a LoadedModel for :func:`~vecgen.decoding.translate.check_methods`."""

    def __init__(self, name, tokenizer):
        self.name, self.tokenizer = name, tokenizer


def _print_side_by_side(console, run) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..concept.report import side_by_side, translation_display

    names, rows = side_by_side(run)
    table = Table(title="side by side", show_lines=False)
    for col in ("prompt", "N", "method", *names):
        table.add_column(escape(col))
    for p, n, meth, cells in rows:
        if meth != "vector 1 top":
            table.add_row(escape(p), str(n), meth, *[escape(translation_display(t, 40)) if t else "—" for t in cells])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("concept")(concept)
