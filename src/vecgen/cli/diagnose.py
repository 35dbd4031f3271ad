"""``vecgen diagnose``: diagnostic tables (``vecgen diagnose embeds``: token ids vs their embeddings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from .common import (
    ModelOptions,
    PlacementOptions,
    RunOptions,
    check_load,
    load,
    with_options,
)

diagnose_app = typer.Typer(help="Diagnostics of how models treat their inputs.", no_args_is_help=True)


@dataclass
class EmbedsOptions(ModelOptions, RunOptions, PlacementOptions):
    """The flags of ``vecgen diagnose embeds``."""

    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Plain prompt.")] = "The capital of France is"
    chat_prompt: Annotated[str, typer.Option("--chat-prompt", help="User message of the chat-template rows.")] = (
        "What is the capital of France?")
    n_vectors: Annotated[int, typer.Option("--n-vectors", help="Noise vectors and concept tokens per row (>= 1).")] = 4
    mix_noise: Annotated[float, typer.Option("--mix-noise", help="real + noise: noise norm relative to the mean "
                                              "token-embedding norm (>= 0).")] = 0.5
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", help="Greedy tokens per row (>= 1).")] = 16
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise and the concept tokens.")] = 0


@with_options(EmbedsOptions)
def embeds(ctx: typer.Context, o: EmbedsOptions) -> None:
    """Token ids vs their embeddings: max |logit difference|, raw generated ids and text, per input kind.

    Rows: ids, their embeddings, noise vectors, concept vectors and real+noise, each as a plain prompt and inside the chat template's user turn. Exit status 1 if logits from ids and from their embeddings differ. Writes runs/<name>/results.json, records.jsonl and report.md.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..diagnose import check_settings, diagnose_embeds, diagnose_report, to_records
    from ..reports import RunWriter

    settings: dict[str, Any] = dict(prompt=o.prompt, chat_prompt=o.chat_prompt, n_vectors=o.n_vectors,
                                    mix_noise=o.mix_noise, max_new_tokens=o.max_new_tokens, seed=o.seed)
    check_settings(**settings)  # before loading weights or making the run folder
    check_load(o)
    writer = ctx.with_resource(RunWriter("diagnose-embeds", name=o.run_name, root=o.out_dir, resumable=False,
                                         config={**settings, "model": o.model, "device": o.device, "dtype": o.dtype}))
    console = Console()
    lm = load(o, backend="transformers")
    with console.status("feeding ids, embeddings, noise and concept vectors"):
        result = diagnose_embeds(lm, **settings)
    for rec in to_records(result):
        writer.append_record(rec)
    desc = lm.describe()
    writer.write_results({"rows": to_records(result), "generate_check": result.generate_check,
                          "ids_equal_embeddings": result.ids_equal_embeddings, "verdict": result.verdict},
                         model=desc, settings=result.settings)
    writer.write_report(diagnose_report(result, desc))

    table = Table(title=f"token ids vs embeddings — {escape(lm.name)}")
    for col in ("template", "inputs", "n", "max |Δlogit| vs id path", "stopped", "raw ids", "text (special tokens kept)"):
        table.add_column(col)
    for r in result.rows:
        diff = "reference" if r.max_logit_diff is None else f"{r.max_logit_diff:.4g}"
        ids = " ".join(map(str, r.token_ids[:6])) + (" …" if len(r.token_ids) > 6 else "")
        table.add_row(r.template, r.inputs, str(r.n_vectors), diff, "yes" if r.stopped else "no", ids,
                      escape(repr(r.raw_text)[:60]))
    console.print(table)
    for line in result.verdict:
        console.print(f"• {escape(line)}", highlight=False)
    console.print(f"wrote {escape(str(writer.dir))}/ (results.json, records.jsonl, report.md)", highlight=False)
    if not result.ids_equal_embeddings:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    diagnose_app.command("embeds")(embeds)
    app.add_typer(diagnose_app, name="diagnose")
