"""``vecgen think``: soft thinking vs discrete chain-of-thought vs direct answers on a benchmark."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import (
    BackendOptions,
    MixingOptions,
    ModelOptions,
    PlacementOptions,
    RunOptions,
    SamplingOptions,
    check_load,
    enter_run,
    load,
    parse_ints,
    with_options,
)

GRID_HELP = ("Ablation grid axis FIELD=V1,V2,... (repeatable): every combination of every method runs on the same "
             "items, named METHOD[field=value,...]. FIELD: a ThinkConfig field (max_think_tokens, cold_stop_steps (0 = "
             "off), cold_stop_tau, ...), a mixing field (noise, rule, max_topk, gumbel_tau, ...) or think_sampling.FIELD "
             "/ answer_sampling.FIELD.")
SAMPLES_HELP = ("Answer every item K times per method (K >= 1), each sample seeded from --seed, the item id and the "
                "sample index (independent of the batch), and report pass@1 and pass@K (Chen et al. 2021 unbiased "
                "estimator) with bootstrap intervals. Methods must sample: give --temperature for cot/direct answers.")


@dataclass
class ThinkOptions(ModelOptions, MixingOptions, SamplingOptions, RunOptions, PlacementOptions, BackendOptions):
    """The flags of ``vecgen think``."""

    benchmark: Annotated[str, typer.Option("--benchmark", "-b", help="A named benchmark: gsm8k (GSM8K test split) or arena (the soft-prompt arena's families: numeric, yes/no and multiple-choice); a reasoning-gym generator rg:NAME[:key=value,...,seed=N] (scored by its own verifier, partial credit as mean score; --list-benchmarks lists them); or a task file: .jsonl (question/answer per line, optional answer_type numeric|choice|yesno|exact, choices, aliases) or a BIG-bench task .json (examples with input and target or target_scores).")] = "gsm8k"  # noqa: E501
    data_source: Annotated[Optional[str], typer.Option("--data-source", help="gsm8k: shipped (the packaged test split, offline; default), hub (needs `datasets` and network), or a JSONL path. arena: comma-separated families, optionally @DIFFICULTY 1-3 (e.g. causal@2 or arithmetic,math_word@2; default every family @1).")] = None  # noqa: E501
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use the first N items (>= 1); default: all.")] = None
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated thinking methods (method_flags: the registered ones).")] = "direct,cot,soft"  # noqa: E501
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows decoded together (>= 1). Batching is continuous: when a row ends, the next item takes its place at once (4 batches of items per chunk; records are written per chunk).")] = 8  # noqa: E501
    static_batching: Annotated[bool, typer.Option("--static-batching", help="Decode fixed batches of --batch-size items, each until its longest row ends (the older scheduling, for comparisons; results agree with continuous batching up to float rounding).")] = False  # noqa: E501
    concept_temperature: Annotated[Optional[float], typer.Option("--concept-temperature", help="Temperature of the concept-token distribution (soft; default 0.6).")] = None  # noqa: E501
    concept_top_p: Annotated[Optional[float], typer.Option("--concept-top-p", help="top_p of concept tokens (default 0.95).")] = None  # noqa: E501
    concept_top_k: Annotated[Optional[int], typer.Option("--concept-top-k", help="top_k of concept tokens (default 30).")] = None  # noqa: E501
    concept_min_p: Annotated[Optional[float], typer.Option("--concept-min-p", help="min_p of concept tokens (default 0.001).")] = None  # noqa: E501
    max_think_tokens: Annotated[Optional[int], typer.Option("--max-think-tokens", help="Thinking budget in (concept) tokens (default 320).")] = None  # noqa: E501
    max_answer_tokens: Annotated[Optional[int], typer.Option("--max-answer-tokens", help="Answer budget after the marker (default 24).")] = None  # noqa: E501
    cold_stop_tau: Annotated[Optional[float], typer.Option("--cold-stop-tau", help="Cold Stop entropy threshold in nats (default 0.01; 0 = off).")] = None  # noqa: E501
    cold_stop_steps: Annotated[Optional[int], typer.Option("--cold-stop-steps", help="Cold Stop: consecutive steps below tau that end thinking (default 48).")] = None  # noqa: E501
    marker: Annotated[Optional[str], typer.Option("--marker", help="End-of-thinking text marker the prompt asks for (default: </think> for thinking models, else \"Answer:\").")] = None  # noqa: E501
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help=GRID_HELP)] = None
    budgets: Annotated[Optional[str], typer.Option("--budgets", help="Thinking budgets, comma-separated (e.g. 64,128,256): every method runs with each (the marker forced at the budget); the report adds accuracy against thinking tokens per method (table, budgets.png, points per 100 thinking tokens) and paired tests between the methods at each budget. Not with --max-think-tokens.")] = None  # noqa: E501
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="The grid combination every other one is compared with (paired exact test), as FIELD=VALUE,...; default: every axis's first value.")] = None  # noqa: E501
    samples: Annotated[Optional[int], typer.Option("--samples", help=SAMPLES_HELP)] = None
    run_name: Annotated[Optional[str], typer.Option("--run-name", help="Run folder name; rerun with the same name to resume.")] = None  # noqa: E501
    list_benchmarks: Annotated[bool, typer.Option("--list-benchmarks", help="List the named benchmarks and every reasoning-gym generator (rg:NAME) with its settings, and exit.")] = False  # noqa: E501
    extra: dict[str, Any] = field(default_factory=dict, init=False)  # the methods' own settings (method_flags)
    allow_large: Annotated[bool, typer.Option("--allow-large", help="Go ahead with a run of more than 64 configurations (methods × grid combinations) or 20,000 generations (items × configurations × samples: about a day on a 2-core CPU); without it such a run is refused before anything loads, with its count.")] = False  # noqa: E501


def methods_help() -> str:
    """``--methods``' help: every registered method with its summary."""
    from ..thinking.methods import get_method, method_names

    return "Comma-separated: " + ", ".join(f"{m} ({get_method(m).summary})" for m in method_names()) + "."


def method_flags() -> tuple[str, list[inspect.Parameter]]:
    """``--methods`` (its help lists the registered methods) and the flags of the registered methods' own settings
    (one per setting name, its help prefixed by the methods that have it), placed after ``--cold-stop-steps``."""
    from ..thinking.methods import setting_fields

    params = []
    for name, (info, owners) in setting_fields().items():
        flag = "--" + name.replace("_", "-")
        given = [a for a in typing.get_args(info.annotation) if a is not type(None)] or [info.annotation]
        kind = given[0] if len(given) == 1 and given[0] in (int, float, bool, str) else str  # `int | None` -> int
        if kind is bool:
            flag = f"{flag}/--no-{name.replace('_', '-')}"
        help_text = f"{', '.join(owners)}: {info.description or name}"
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[kind], typer.Option(flag, help=help_text)]))
    methods = inspect.Parameter("methods", inspect.Parameter.KEYWORD_ONLY, default="direct,cot,soft",
                                annotation=Annotated[str, typer.Option("--methods", help=methods_help())])
    return "cold_stop_steps", [methods, *params]


@with_options(ThinkOptions, extra=method_flags)
def think(ctx: typer.Context, o: ThinkOptions) -> None:
    """Compare answering directly, discrete chain-of-thought, soft thinking (concept tokens) and, on request,
    hidden-state thinking on the same benchmark items. Writes runs/<name>/records.jsonl (one line per item and method, as it goes;
    rerunning with the same --run-name resumes), results.json, report.md and think.png.

    Sampling flags (--preset, --temperature, ...) set the discrete sampler of cot thinking and of
    every answer (default greedy); --concept-* set soft thinking's concept-token distribution."""
    import shlex
    import sys

    from ..parallel import processes
    from ..reports import RunWriter
    from ..thinking.evaluate import RESUME_HINT, check_resume_before_load, load_tasks, run_evaluation
    from ..thinking.report import budget_table, comparison_table, pass_at_k_table, summary_table
    from ..thinking.settings import settings_from_options

    if o.list_benchmarks:
        typer.echo("\n".join(benchmark_lines()))
        return
    settings = settings_from_options(
        benchmark=o.benchmark, data_source=o.data_source, limit=o.limit, methods=o.methods,
        batch_size=o.batch_size, sampling=o.sampling({"max_new_tokens": 1}), mixing=o.mixing(),
        concept=dict(temperature=o.concept_temperature, top_p=o.concept_top_p, top_k=o.concept_top_k,
                     min_p=o.concept_min_p),
        max_think_tokens=o.max_think_tokens, max_answer_tokens=o.max_answer_tokens, cold_stop_tau=o.cold_stop_tau,
        cold_stop_steps=o.cold_stop_steps, **o.extra, marker=o.marker, grid=o.grid,
        budgets=parse_ints(o.budgets, "--budgets"), baseline=o.baseline, samples=o.samples,
        allow_large=o.allow_large, static_batching=o.static_batching)
    tasks = load_tasks(settings)
    settings.check_size(len(tasks))
    check_load(o)
    group = processes(o.device)  # data-parallel share under torchrun / accelerate launch; else the whole run
    writer = enter_run(ctx, RunWriter("think", name=o.run_name, root=o.out_dir, resumable=True,
                                      resume_hint=RESUME_HINT), group, o.run_name)
    check_resume_before_load(writer.dir, settings)
    lm = load(o, device=group.device(o.device))
    command = "vecgen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = run_evaluation(lm, settings, tasks, writer=writer, processes=group, command_line=command)
    if not group.is_main:
        return
    typer.echo(summary_table(result.summary))
    if settings.budgets:
        typer.echo(budget_table(result.budget_rows(settings)))
        typer.echo(comparison_table(result.paired))
    if result.grid_paired:
        typer.echo(comparison_table(result.grid_paired))
    if result.pass_at_k is not None:
        typer.echo(pass_at_k_table(result.pass_at_k))
    typer.echo(f"wrote {writer.dir}/records.jsonl, results.json, report.md, think.png")


def benchmark_lines() -> list[str]:
    """The lines of ``vecgen think --list-benchmarks``: named benchmarks, task files, then every rg: generator."""
    from ..benchmarks_data import BENCHMARKS
    from ..benchmarks_data.rgym import DEFAULT_RG_ITEMS, rg_names, rg_settings

    lines = ["named: " + ", ".join(sorted(BENCHMARKS)) + "; or a task file (.jsonl, BIG-bench .json)",
             f"reasoning-gym (--benchmark rg:NAME[:key=value,...,seed=N]; --limit items, default {DEFAULT_RG_ITEMS:,}):"]
    for name in rg_names():
        keys = ", ".join(sorted(rg_settings(name)))
        lines.append(f"  rg:{name}" + (f"  settings: {keys}" if keys else ""))
    return lines




def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A finished `vecgen think` run folder (runs/<name>).",
                                            show_default=False)],
) -> None:
    """Re-check a finished think run's answers with today's answer checkers, without running the model.

    Reloads the run's items (its benchmark and limit), checks every record's answer again, and rewrites
    records.jsonl (pred, correct, score, reference), results.json (summaries, paired tests, pass@k, budgets),
    report.md, think.png and the viewer; rescore.json lists every verdict that changed, old and new. Use it when a
    checker was fixed after the run (runs outlive checker fixes). A second rescore changes nothing."""
    from ..thinking.rescore import rescore as rescore_run

    result = rescore_run(run_dir)
    typer.echo(result.table())
    typer.echo(f"{len(result.changes)} of {result.n_records} verdicts changed; wrote {run_dir}/rescore.json, "
               "records.jsonl, results.json, report.md, think.png")


def register(app: typer.Typer) -> None:
    app.command("think")(think)
    app.command("rescore")(rescore)
