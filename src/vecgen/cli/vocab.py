"""``vecgen vocab english``: the English tokens of a tokenizer, documented and validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import OutDirOpt, RunNameOpt, with_options

vocab_app = typer.Typer(
    name="vocab",
    help="Vocabulary analysis: token classes and English-only token sets (tokenizer only, no model weights).",
    no_args_is_help=True,
)


@dataclass
class EnglishOptions:
    """The flags of ``vecgen vocab english``."""

    tokenizer: Annotated[str, typer.Option(
        "--tokenizer", "-t", help="qwen3 (official Qwen3 tokenizer, offline), default (the default model's, "
        "Qwen2.5, with its padding rows), gpt2, a registry model name, a folder with tokenizer files, a "
        "tokenizer.json, or a hub id.")] = "qwen3"
    policy: Annotated[str, typer.Option(
        "--policy", "-p", help="Set written to tokens.tsv/json: strict (ASCII letters, optional leading space) or "
        "text (ASCII letters, digits, punctuation and white space). Both are validated and reported.")] = "text"
    texts: Annotated[Optional[Path], typer.Option(
        "--texts", help="Extra English texts for the round-trip check: .jsonl (field text, question or prompt) or "
        "plain text, one per line (e.g. ../shared/data/gsm8k/test.jsonl).")] = None
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="Read at most this many --texts.")] = 2000
    common_words: Annotated[int, typer.Option(
        "--common-words", min=0, help="How many of wordfreq's most common English words to encode (0 = skip).")] = 5000
    run_name: RunNameOpt = None
    out_dir: OutDirOpt = Path("runs")


@with_options(EnglishOptions)
def english(ctx: typer.Context, o: EnglishOptions) -> None:
    """Classify every token of the --tokenizer, write its English set (TSV + JSON), statistics and report.md."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..models import load_tokenizer
    from ..reports import RunWriter
    from ..vocab import parse_policy
    from ..vocab.report import analyze, class_figure, render_report, write_token_files
    from ..vocab.validate import read_texts

    tokenizer, texts = o.tokenizer, o.texts
    chosen = parse_policy(o.policy)
    extra = read_texts(texts, limit=o.max_texts) if texts is not None else None
    config = {"tokenizer": tokenizer, "policy": chosen.value, "texts": str(texts) if texts else None,
              "max_texts": o.max_texts, "common_words": o.common_words}
    writer = ctx.with_resource(RunWriter("vocab", name=o.run_name, root=o.out_dir, config=config, resumable=False))
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"loading tokenizer {tokenizer}", total=None)
        tok = load_tokenizer(tokenizer)
        cls, results = analyze(tok, texts=extra, texts_source=str(texts) if texts else None, n_common=o.common_words,
                               progress=lambda msg: progress.update(task, description=msg))
        results["tokenizer_spec"] = tokenizer
        progress.update(task, description="writing files")
        results["files"] = write_token_files(writer, tok, cls, chosen)
        writer.save_figure(class_figure(results), "classes.png")
        results["files"]["figure"] = "classes.png"
        writer.write_results(results, tokenizer=tokenizer, policy=chosen.value)
        writer.write_report(render_report(results, chosen))

    table = Table(title=f"token classes of {tokenizer} ({cls.n_rows:,} rows)")
    for col in ("class", "tokens", "%"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in results["classes"]:
        table.add_row(row["class"], f"{row['count']:,}", f"{row['percent']:.2f}")
    out = Console()
    out.print(table)
    pol = results["policies"]
    out.print(f"strict set: {pol['strict']['size']:,} tokens; text set: {pol['text']['size']:,} tokens; "
              f"written: {chosen.value}")
    out.print(f"run folder: {writer.dir}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    vocab_app.command("english")(english)
    app.add_typer(vocab_app, name="vocab")
