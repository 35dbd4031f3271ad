"""``vecgen view``: the run viewer (one self-contained HTML page per run folder)."""

from __future__ import annotations

from pathlib import Path

import typer


def view(
    run_dir: Path = typer.Argument(..., help="A run folder written by a vecgen command (runs/<name>), finished or "
                                             "still running (the page shows what is written so far).",
                                   show_default=False),
    out: Path = typer.Option(None, "--out", help="Where to write the page (default RUN_DIR/view.html).",
                             show_default=False),
    open_: bool = typer.Option(False, "--open", help="Open the page in the default web browser after writing it."),
) -> None:
    """Write RUN_DIR/view.html: an interactive page of the run (no network needed; open it in any browser).

    think runs: the item table, filterable by each method's outcome and stop reason, and each item's traces
    as token chips coloured by entropy with the top weights on hover. concept runs: the concept tokens as
    chips with their top-10 weights, nearest tokens and off-manifold distance, beside their translations.
    softprompt runs: learning curves and the nearest tokens of each learned vector. Other runs: results,
    figures and report. Every run command writes this page when it finishes; this command rebuilds it.
    """
    from .. import concept, softprompt, thinking  # noqa: F401  (each registers the page data of its runs)
    from ..reports.view import write_view

    path = write_view(run_dir, out)
    typer.echo(str(path))
    if open_:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            typer.echo("no web browser found here; open the file above in one", err=True)


def register(app: typer.Typer) -> None:
    app.command("view")(view)
