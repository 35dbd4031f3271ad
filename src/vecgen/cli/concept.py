"""``vecgen concept``: generate N concept tokens per prompt, describe them and translate them back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from .common import (
    BackendOptions,
    EnglishOnlyOpt,
    MixingOptions,
    ModelOptions,
    PlacementOptions,
    RunOptions,
    SamplingOptions,
    check_load,
    enter_run,
    load,
    parse_ints,
    split_list,
    with_options,
)


@dataclass
class ConceptOptions(ModelOptions, MixingOptions, SamplingOptions, RunOptions, PlacementOptions, BackendOptions):
    """The flags of ``vecgen concept``."""

    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", "-p", help="Prompt to continue (repeat for several). Default: the seeds' three prompts 'The capital of France is', '2 plus 2 equals', 'Once upon a time'.")] = None  # noqa: E501
    n: Annotated[Optional[str], typer.Option("--n", "-N", help="Numbers of concept tokens, comma-separated (each >= 1). Default 2,3,4.")] = None  # noqa: E501
    methods: Annotated[Optional[str], typer.Option("--methods", help="Translation methods, comma-separated: nearest, direct, completion, fewshot, instruction. Default: all (instruction is skipped for models without a chat template).")] = None  # noqa: E501
    models: Annotated[Optional[str], typer.Option("--models", help="Several models, comma-separated, run one after another and compared side by side (overrides --model).")] = None  # noqa: E501
    translation_tokens: Annotated[Optional[int], typer.Option("--translation-tokens", help="Tokens generated per translation (greedy), >= 1. Default 16.")] = None  # noqa: E501
    english_only: EnglishOnlyOpt = False


@with_options(ConceptOptions)
def concept(ctx: typer.Context, o: ConceptOptions) -> None:
    """Generate N concept tokens per prompt, show their top weights and translate them back into text.

    A concept token is the probability-weighted mixture of token embeddings fed back instead of a sampled token. Defaults: the seeds' three prompts, N = 2, 3, 4, the soft rule with max_topk 10 at temperature 1.0 and no other truncation, greedy 16-token translations with every method. Writes runs/<name>/results.json, records.jsonl, report.md, concept_weights.png and vectors.pt.
    """  # noqa: E501
    from rich.console import Console
    from rich.markup import escape

    from ..concept import CONCEPT_SAMPLING_DEFAULTS, ConceptConfig, write_outputs
    from ..parallel import processes
    from ..reports import RunWriter

    cfg = ConceptConfig.create(prompts=o.prompt, n_values=parse_ints(o.n, "--n"),
                               methods=split_list(o.methods, "--methods"),
                               sampling=o.sampling(CONCEPT_SAMPLING_DEFAULTS), mixing=o.mixing(),
                               translation_tokens=o.translation_tokens, english_only=o.english_only)
    specs = split_list(o.models, "--models") or [o.model]
    _check_instruction(cfg, specs)  # fails before loading weights or creating the run folder
    check_load(o, specs)
    group = processes(o.device)  # data-parallel share under torchrun / accelerate launch; else the whole run
    writer = enter_run(ctx, RunWriter("concept", name=o.run_name, root=o.out_dir, resumable=False,
                                      config={"concept": cfg, "models": specs, "device": o.device, "dtype": o.dtype,
                                              "backend": o.backend}), group, o.run_name)
    console = Console(quiet=not group.is_main)
    console.print(f"vecgen concept → {escape(str(writer.dir))}", highlight=False)
    run = _run(o, cfg, specs, writer, group, console)
    if not group.is_main:
        return
    write_outputs(run, cfg, writer)
    for note in run.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    if len(run.models) > 1:
        _print_side_by_side(console, run)
    console.print(f"wrote {escape(str(writer.dir))}/ (results.json, records.jsonl, report.md, concept_weights.png, "
                  "vectors.pt)", highlight=False)


def _run(o: ConceptOptions, cfg: Any, specs: list[str], writer: Any, group: Any, console: Any) -> Any:
    """The concept-token protocol on every model, with a progress bar and each prompt's lines as it finishes; on
    NaN/inf the finished part is written (status failed) before the error goes on."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..concept import (
        ConceptRun,
        format_prompt_records,
        run_concept,
        total_steps,
        write_outputs,
    )
    from ..errors import NonFiniteError

    run = ConceptRun([], [], [], {}, {})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not group.is_main) as bar:
        task = bar.add_task("loading", total=total_steps(cfg, len(specs)))

        def load_one(spec: str) -> Any:
            bar.update(task, description=f"loading {spec}")
            return load(o, spec, device=group.device(o.device))

        try:
            run_concept(specs, cfg, load=load_one, writer=writer, into=run, processes=group,
                        on_prompt=lambda recs: bar.console.print(escape(format_prompt_records(recs)), highlight=False,
                                                                 soft_wrap=True),
                        progress=lambda k, what: bar.update(task, advance=k, description=what))
        except NonFiniteError as exc:
            write_outputs(run, cfg, writer, status="failed", error=str(exc))
            raise
    return run


def _check_instruction(cfg: Any, specs: list[str]) -> None:
    """A chat-template method (``instruction``, ``selfie``) named for a model without a chat template: refused from
    its tokenizer alone."""
    from ..decoding.translate import CHAT_METHODS, check_methods

    named = [m for m in cfg.methods or () if m in CHAT_METHODS]
    if not named:
        return
    from ..models import load_tokenizer

    for spec in specs:
        check_methods(None, named, tokenizer=load_tokenizer(spec), name=spec)


def _print_side_by_side(console: Any, run: Any) -> None:
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
