"""``vecgen verify``: the reference forward pass against transformers, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    OutDirOpt,
    RunNameOpt,
)


def verify(
    ctx: typer.Context,
    model: ModelOpt = "default",
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Text fed to both paths (plain, no chat template unless --chat).")] = "Hello",
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat template (one user turn).")] = False,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "auto",
    show: Annotated[str, typer.Option("--show", help="Table rows: all (every layer and component), layers (worst component per layer), failures.")] = "all",
    run_name: RunNameOpt = None,
    out_dir: OutDirOpt = Path("runs"),
) -> None:
    """Run the prompt through transformers and vecgen's from-scratch reference model; print max |Δ| and RMSE per layer and component, the tolerance for the dtype, and the top-5 next tokens of both.

    Exit status 0 when every component is within the tolerance and both pick the same next token, 1 when not, 2 on bad input (e.g. an architecture other than qwen2/qwen3). Writes runs/<name>/results.json and report.md.
    """  # noqa: E501
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..models import check_model_specs, format_prompt, load_model
    from ..reference import from_transformers
    from ..reference.compare import compare, format_float
    from ..reports import RunWriter

    if show not in ("all", "layers", "failures"):
        raise ConfigError(f"--show {show!r}: choose all, layers or failures")
    if not prompt.strip():
        raise ConfigError('empty prompt: give some text, e.g. --prompt "Hello"')
    check_model_specs([model], device=device, dtype=dtype)
    config = {"model": model, "prompt": prompt, "chat": chat, "dtype": dtype, "device": device}
    writer = ctx.with_resource(RunWriter("verify", name=run_name, root=out_dir, config=config, resumable=False))
    lm = load_model(model, device=device, dtype=dtype)
    ref = from_transformers(lm)  # raises UnsupportedModelError before any work for other families
    ids = lm.encode(format_prompt(lm.tokenizer, prompt, chat=chat))
    result = compare(lm, ids, reference=ref)

    console = Console(highlight=False)
    tol = result.tolerance
    rows = result.rows
    if show == "layers":
        worst: dict[object, object] = {}
        for r in rows:
            key = r.layer if r.layer is not None else r.name
            if key not in worst or r.worst > worst[key].worst:  # type: ignore[attr-defined]
                worst[key] = r
        rows = list(worst.values())  # type: ignore[assignment]
    elif show == "failures":
        rows = [r for r in rows if not r.ok]
    table = Table(title=f"reference vs transformers — {lm.name} ({lm.adapter.family}), {len(ids)} tokens, {dtype}")
    for col, just in (("layer", "right"), ("component", "left"), ("shape", "left"), ("max |Δ|", "right"),
                      ("RMSE", "right"), ("max |x|", "right"), ("|Δ|/bound", "right"), ("", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        table.add_row("" if r.layer is None else str(r.layer), r.component, "×".join(map(str, r.shape)),
                      format_float(r.max_abs), format_float(r.rmse), f"{r.scale:.3g}", f"{r.worst:.3f}",
                      "[green]ok[/]" if r.ok else "[bold red]FAIL[/]")
    console.print(table)
    console.print(f"tolerance {tol.describe()}")

    top = Table(title="top-5 next tokens")
    for col in ("#", "HF id", "HF token", "p", "ref id", "ref token", "p"):
        top.add_column(col)
    for k, (a, b) in enumerate(zip(result.top_transformers, result.top_reference), 1):
        top.add_row(str(k), str(a.id), repr(a.text), f"{a.prob:.4f}", str(b.id), repr(b.text), f"{b.prob:.4f}")
    console.print(top)
    shown = prompt if len(prompt) <= 40 else prompt[:37] + "..."
    console.print(f"next token after {shown!r} (ids {ids[:8]}{' …' if len(ids) > 8 else ''}): transformers "
                  f"{result.next_token_transformers}, reference {result.next_token_reference}")
    worst_row = result.worst
    if worst_row.max_abs == 0:
        console.print(f"all {len(result.rows)} compared tensors are bit-identical (max |Δ| = 0)")
    else:
        console.print(f"largest difference relative to its bound: {worst_row.name} max |Δ| "
                      f"{format_float(worst_row.max_abs)} ({worst_row.worst:.3f} of the bound)")

    report = [f"# vecgen verify: {lm.name}", "", f"Prompt {prompt!r}, ids {ids}, dtype {dtype}.", "",
              f"Tolerance: {tol.describe()}", "", "| layer | component | max abs diff | RMSE | max abs value | ok |",
              "| --- | --- | --- | --- | --- | --- |"]
    report += [f"| {'' if r.layer is None else r.layer} | {r.component} | {format_float(r.max_abs)} | "
               f"{format_float(r.rmse)} | {r.scale:.3g} | {'yes' if r.ok else 'NO'} |" for r in result.rows]
    report += ["", f"Next token: transformers {result.next_token_transformers}, reference {result.next_token_reference}.",
               "", f"Result: {'PASS' if result.passed else 'FAIL'}"]
    writer.write_report("\n".join(report) + "\n")
    writer.write_results(result.to_dict(), model=lm.describe())
    if result.passed:
        console.print(f"[bold green]PASS[/]: every component within tolerance, same next token. ({writer.dir})")
        return
    first = result.first_failure
    why = (f"first component outside tolerance: {first.name} (max |Δ| {format_float(first.max_abs)})" if first
           else "next tokens differ")
    console.print(f"[bold red]FAIL[/]: {why}. ({writer.dir})")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
