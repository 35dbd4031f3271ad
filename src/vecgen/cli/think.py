"""``vecgen think``: soft thinking vs discrete chain-of-thought vs direct answers on a benchmark."""

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
    DirichletAlphaOpt,
    HiddenScaleOpt,
    GumbelTauOpt,
    MaxTopkOpt,
    MixingRuleOpt,
    NoiseOpt,
    OutDirOpt,
    DeviceOpt,
    DtypeOpt,
    MinPOpt,
    ModelOpt,
    PresetOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    build_sampling,
    enter_run,
)

_METHODS = ("direct", "cot", "soft", "hidden")


def parse_methods(text: str) -> list[str]:
    """``"direct,cot,soft"`` → ``["direct", "cot", "soft"]`` (order kept, duplicates dropped).

    Raises:
        ConfigError: an empty list or an unknown method.
    """
    from ..errors import ConfigError

    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"--methods is empty; choose from: {', '.join(_METHODS)}")
    bad = [m for m in names if m not in _METHODS]
    if bad:
        raise ConfigError(f"unknown method {bad[0]!r} in --methods; choose from: {', '.join(_METHODS)}")
    return list(dict.fromkeys(names))


def think(
    ctx: typer.Context,
    benchmark: Annotated[
        str, typer.Option("--benchmark", "-b", help="A named benchmark: gsm8k (GSM8K test split) or arena (the soft-prompt arena's families: numeric, yes/no and multiple-choice); or a task file: .jsonl (question/answer per line, optional answer_type numeric|choice|yesno|exact, choices, aliases) or a BIG-bench task .json (examples with input and target or target_scores).")
    ] = "gsm8k",
    data_source: Annotated[
        Optional[str],
        typer.Option("--data-source", help="gsm8k: shipped (the packaged test split, offline; default), hub (needs `datasets` and network), or a JSONL path. arena: comma-separated families, optionally @DIFFICULTY 1-3 (e.g. causal@2 or arithmetic,math_word@2; default every family @1)."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use the first N items (>= 1); default: all.")] = None,
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: direct, cot, soft (concept tokens with --rule), hidden (feed back the last hidden state, COCONUT-style; --hidden-scale).")] = "direct,cot,soft",
    model: ModelOpt = "default",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts decoded together (>= 1).")] = 8,
    rule: MixingRuleOpt = "soft",
    max_topk: MaxTopkOpt = None,
    noise: NoiseOpt = None,
    gumbel_tau: GumbelTauOpt = None,
    dirichlet_alpha: DirichletAlphaOpt = None,
    hidden_scale: HiddenScaleOpt = None,
    beta: BetaOpt = None,
    concept_temperature: Annotated[
        Optional[float], typer.Option("--concept-temperature", help="Temperature of the concept-token distribution (soft; default 0.6).")
    ] = None,
    concept_top_p: Annotated[Optional[float], typer.Option("--concept-top-p", help="top_p of concept tokens (default 0.95).")] = None,
    concept_top_k: Annotated[Optional[int], typer.Option("--concept-top-k", help="top_k of concept tokens (default 30).")] = None,
    concept_min_p: Annotated[Optional[float], typer.Option("--concept-min-p", help="min_p of concept tokens (default 0.001).")] = None,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    min_p: MinPOpt = None,
    seed: SeedOpt = None,
    max_think_tokens: Annotated[Optional[int], typer.Option("--max-think-tokens", help="Thinking budget in (concept) tokens (default 320).")] = None,
    max_answer_tokens: Annotated[Optional[int], typer.Option("--max-answer-tokens", help="Answer budget after the marker (default 24).")] = None,
    cold_stop_tau: Annotated[
        Optional[float], typer.Option("--cold-stop-tau", help="Cold Stop entropy threshold in nats (default 0.01; 0 = off).")
    ] = None,
    cold_stop_steps: Annotated[
        Optional[int], typer.Option("--cold-stop-steps", help="Cold Stop: consecutive steps below tau that end thinking (default 48).")
    ] = None,
    marker: Annotated[
        Optional[str],
        typer.Option("--marker", help="End-of-thinking text marker the prompt asks for (default: </think> for thinking models, else \"Answer:\")."),
    ] = None,
    grid: Annotated[
        Optional[list[str]],
        typer.Option("--grid", help="Ablation grid axis FIELD=V1,V2,... (repeatable): every combination of every method runs on the same items, named METHOD[field=value,...]. FIELD: a ThinkConfig field (max_think_tokens, cold_stop_steps (0 = off), cold_stop_tau, ...), a mixing field (noise, rule, max_topk, gumbel_tau, ...) or think_sampling.FIELD / answer_sampling.FIELD."),
    ] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option("--baseline", help="The grid combination every other one is compared with (paired exact test), as FIELD=VALUE,...; default: every axis's first value."),
    ] = None,
    samples: Annotated[
        Optional[int],
        typer.Option("--samples", help="Answer every item K times per method (K >= 1), each sample seeded from --seed, the item id and the sample index (independent of the batch), and report pass@1 and pass@K (Chen et al. 2021 unbiased estimator) with bootstrap intervals. Methods must sample: give --temperature for cot/direct answers."),
    ] = None,
    run_name: Annotated[Optional[str], typer.Option("--run-name", help="Run folder name; rerun with the same name to resume.")] = None,
    out_dir: OutDirOpt = Path("runs"),
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    backend: BackendOpt = "auto",
    threads: ThreadsOpt = None,
    n_ctx: NCtxOpt = None,
) -> None:
    """Compare answering directly, discrete chain-of-thought, soft thinking (concept tokens) and, on request,
    hidden-state thinking on the same benchmark items. Writes runs/<name>/records.jsonl (one line per item and method, as it goes;
    rerunning with the same --run-name resumes), results.json, report.md and think.png.

    Sampling flags (--preset, --temperature, ...) set the discrete sampler of cot thinking and of
    every answer (default greedy); --concept-* set soft thinking's concept-token distribution."""
    import shlex
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..benchmarks_data import load_benchmark
    from ..decoding.mixing import MixingConfig
    from ..errors import ConfigError
    from ..models import check_model_specs, load_model
    from ..parallel import processes
    from ..reports import RunWriter
    from ..thinking import runner as R
    from ..thinking.evaluate import (
        check_settings,
        compare_methods,
        compare_to_baselines,
        comparison_table,
        deterministic,
        pass_at_k_summary,
        pass_at_k_table,
        record_key,
        evaluate,
        plot_summary,
        read_all_records,
        render_report,
        summarize,
        summary_table,
    )
    from ..thinking.grid import baseline_names, expand_grid, parse_grid
    from ..thinking.prompts import prompt_style

    names = parse_methods(methods)
    if marker is not None and not marker.strip():
        raise ConfigError('--marker is empty: give the text the prompt asks the model to write before its answer, '
                          'e.g. --marker "Answer:"')
    if batch_size < 1:
        raise ConfigError(f"--batch-size={batch_size}: allowed range is >= 1")
    tasks = load_benchmark(benchmark, limit=limit, source=data_source)
    discrete = build_sampling(preset, config, defaults={"max_new_tokens": 1}, temperature=temperature, top_p=top_p,
                              top_k=top_k, min_p=min_p, seed=seed)
    mixing = MixingConfig.create(rule=rule, max_topk=max_topk, noise=noise, gumbel_tau=gumbel_tau,
                                 dirichlet_alpha=dirichlet_alpha, hidden_scale=hidden_scale, beta=beta)
    configs = R.method_configs(
        names, discrete=discrete, mixing=mixing,
        concept=dict(temperature=concept_temperature, top_p=concept_top_p, top_k=concept_top_k, min_p=concept_min_p),
        max_think_tokens=max_think_tokens, max_answer_tokens=max_answer_tokens, cold_stop_tau=cold_stop_tau,
        cold_stop_steps=cold_stop_steps,
    )
    axes = parse_grid(grid or [])
    baselines = baseline_names(names, axes, baseline)
    configs = expand_grid(configs, axes)
    if samples is not None:
        if samples < 1:
            raise ConfigError(f"--samples={samples}: allowed range is >= 1")
        fixed = [n for n, c in configs.items() if samples > 1 and deterministic(c)]
        if fixed:
            raise ConfigError(f"--samples {samples}: {fixed[0]} draws nothing (greedy, or concept tokens without "
                              "noise, and a greedy answer), so every sample would be the same; give --temperature "
                              "(e.g. 0.7; it also samples the answers of soft), --noise gumbel for soft, or leave the "
                              "method out")
    llamacpp = backend_options(backend, threads, n_ctx)
    check_model_specs([model], device=device, dtype=dtype, device_map=device_map, max_memory=max_memory,
                      backend=backend)
    group = processes(device)  # data-parallel share under torchrun / accelerate launch; else the whole run
    writer = enter_run(ctx, RunWriter("think", name=run_name, root=out_dir, resumable=True,
                                      resume_hint="rerun the same command with --run-name {name} to resume"),
                       group, run_name)
    lm = load_model(model, device=group.device(device), dtype=dtype, device_map=device_map, max_memory=max_memory,
                    backend=backend, llamacpp=llamacpp)
    style = prompt_style(lm, marker)
    settings = {
        "benchmark": benchmark,
        "data_source": data_source or ("shipped" if benchmark == "gsm8k" else None),
        "model": model,
        "dtype": str(lm.dtype).replace("torch.", ""),
        "marker": style.marker,
        # stop_sequences (lm-eval's) is never set here: left out so runs of older versions stay resumable
        "methods": {m: c.model_dump(mode="json", exclude={"stop_sequences"}) for m, c in configs.items()},
    }
    if samples is not None:  # runs without samples keep the settings of older versions
        settings.update(samples=samples, sample_seed=discrete.seed)
    if lm.backend.name != "transformers":  # runs of older versions (transformers only) stay resumable
        settings["backend"] = lm.backend.name
    if group.is_main:
        check_settings(writer, settings)
    group.wait()
    if not group.is_main:
        check_settings(writer, settings)  # the main process saved them; a mismatch here is a bug
    writer.config = {**settings, "limit": limit, "batch_size": batch_size, "run_dir": str(writer.dir)}
    names = list(configs)

    done_before = {record_key(r) for r in read_all_records(writer)}
    draws = [None] if samples is None else list(range(samples))
    with Progress(TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[at]}"),
                  TimeElapsedColumn(), transient=False, disable=not group.is_main) as progress:
        bars = {m: progress.add_task(m, total=len(tasks) * len(draws),
                                     completed=sum((m, t.id, s) in done_before for t in tasks for s in draws), at="")
                for m in names}

        def on_step(m: str, step: int, rows: int) -> None:
            if step % 8 == 0:
                progress.update(bars[m], at=f"step {step}, {rows} rows")

        def on_batch(m: str, n: int) -> None:
            progress.update(bars[m], advance=n, at="")

        records = evaluate(lm, tasks, configs, writer, style, batch_size=batch_size, on_batch=on_batch,
                           on_step=on_step, processes=group, samples=samples, seed=discrete.seed)
    if not group.is_main:
        return
    summary = summarize(records, names)
    command = "vecgen " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    writer.save_figure(plot_summary(summary), "think.png")
    paired = [] if axes else compare_methods(records, names)
    grid_pairs = compare_to_baselines(records, names, baselines) if axes else []
    pass_at = pass_at_k_summary(records, names, samples) if samples is not None else None
    extra: dict = {"paired": paired}
    if axes:
        extra.update(grid={a.field: list(a.values) for a in axes}, baselines=baselines, grid_paired=grid_pairs)
    if pass_at is not None:
        extra["pass_at_k"] = pass_at
    writer.write_results(summary, model=lm.describe(), n_items=len(tasks), command_line=command, **extra)
    writer.write_report(render_report(summary, records, title=f"vecgen think: {benchmark}, {len(tasks)} items, {model}",
                                      settings=writer.config, command=command, paired=paired,
                                      baseline_pairs=grid_pairs, pass_at=pass_at))
    typer.echo(summary_table(summary))
    if grid_pairs:
        typer.echo(comparison_table(grid_pairs))
    if pass_at is not None:
        typer.echo(pass_at_k_table(pass_at))
    typer.echo(f"wrote {writer.dir}/records.jsonl, results.json, report.md, think.png")


def register(app: typer.Typer) -> None:
    app.command("think")(think)
