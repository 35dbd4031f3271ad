"""``vecgen verify``: the reference forward pass against transformers, layer by layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .common import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    OutDirOpt,
    RunNameOpt,
    check_load,
    load,
    with_options,
)


@dataclass
class VerifyOptions:
    """The flags of ``vecgen verify``."""

    model: ModelOpt = "default"
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Text fed to both paths (plain, no chat template unless --chat).")] = "Hello"
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template (one user turn).")] = False
    dtype: DtypeOpt = "float32"
    device: DeviceOpt = "auto"
    show: Annotated[str, typer.Option("--show", help="Table rows: all (every layer and component), layers (worst component per layer), failures.")] = "all"
    run_name: RunNameOpt = None
    out_dir: OutDirOpt = Path("runs")


@with_options(VerifyOptions)
def verify(ctx: typer.Context, o: VerifyOptions) -> None:
    """Run the prompt through transformers and vecgen's from-scratch reference model; print max |Δ| and RMSE per layer and component, the tolerance for the dtype, and the top-5 next tokens of both.

    Exit status 0 when every component is within the tolerance and both pick the same next token, 1 when not, 2 on bad input (e.g. an architecture other than qwen2/qwen3). Writes runs/<name>/results.json and report.md.
    """  # noqa: E501
    from rich.console import Console

    from ..errors import ConfigError
    from ..models import format_prompt
    from ..reference import from_transformers
    from ..reference.compare import compare, comparison_report, format_float
    from ..reports import RunWriter

    if o.show not in ("all", "layers", "failures"):
        raise ConfigError(f"--show {o.show!r}: choose all, layers or failures")
    if not o.prompt.strip():
        raise ConfigError('empty prompt: give some text, e.g. --prompt "Hello"')
    check_load(o)
    config = {"model": o.model, "prompt": o.prompt, "chat": o.chat, "dtype": o.dtype, "device": o.device}
    writer = ctx.with_resource(RunWriter("verify", name=o.run_name, root=o.out_dir, config=config, resumable=False))
    lm = load(o, backend="transformers")
    ref = from_transformers(lm)  # raises UnsupportedModelError before any work for other families
    ids = lm.encode(format_prompt(lm.tokenizer, o.prompt, chat=o.chat))
    result = compare(lm, ids, reference=ref)
    console = Console(highlight=False)
    _print_tables(console, result, lm, ids, o)
    writer.write_report(comparison_report(result, lm.name, o.prompt, ids, o.dtype))
    writer.write_results(result.to_dict(), model=lm.describe())
    if result.passed:
        console.print(f"[bold green]PASS[/]: every component within tolerance, same next token. ({writer.dir})")
        return
    first = result.first_failure
    why = (f"first component outside tolerance: {first.name} (max |Δ| {format_float(first.max_abs)})" if first
           else "next tokens differ")
    console.print(f"[bold red]FAIL[/]: {why}. ({writer.dir})")
    raise typer.Exit(1)


def _print_tables(console: Any, result: Any, lm: Any, ids: list[int], o: VerifyOptions) -> None:
    from rich.table import Table

    from ..reference.compare import format_float

    rows = result.rows
    if o.show == "layers":
        worst: dict[object, Any] = {}
        for r in rows:
            key = r.layer if r.layer is not None else r.name
            if key not in worst or r.worst > worst[key].worst:
                worst[key] = r
        rows = list(worst.values())
    elif o.show == "failures":
        rows = [r for r in rows if not r.ok]
    table = Table(title=f"reference vs transformers — {lm.name} ({lm.adapter.family}), {len(ids)} tokens, {o.dtype}")
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("layer", "right"), ("component", "left"), ("shape", "left"), ("max |Δ|", "right"), ("RMSE", "right"),
        ("max |x|", "right"), ("|Δ|/bound", "right"), ("", "left"))
    for col, just in columns:
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row("" if r.layer is None else str(r.layer), r.component, "×".join(map(str, r.shape)),
                      format_float(r.max_abs), format_float(r.rmse), f"{r.scale:.3g}", f"{r.worst:.3f}",
                      "[green]ok[/]" if r.ok else "[bold red]FAIL[/]")
    console.print(table)
    console.print(f"tolerance {result.tolerance.describe()}")
    top = Table(title="top-5 next tokens")
    for col in ("#", "HF id", "HF token", "p", "ref id", "ref token", "p"):
        top.add_column(col)
    for k, (a, b) in enumerate(zip(result.top_transformers, result.top_reference), 1):
        top.add_row(str(k), str(a.id), repr(a.text), f"{a.prob:.4f}", str(b.id), repr(b.text), f"{b.prob:.4f}")
    console.print(top)
    shown = o.prompt if len(o.prompt) <= 40 else o.prompt[:37] + "..."
    console.print(f"next token after {shown!r} (ids {ids[:8]}{' …' if len(ids) > 8 else ''}): transformers "
                  f"{result.next_token_transformers}, reference {result.next_token_reference}")
    worst_row = result.worst
    if worst_row.max_abs == 0:
        console.print(f"all {len(result.rows)} compared tensors are bit-identical (max |Δ| = 0)")
    else:
        console.print(f"largest difference relative to its bound: {worst_row.name} max |Δ| "
                      f"{format_float(worst_row.max_abs)} ({worst_row.worst:.3f} of the bound)")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
