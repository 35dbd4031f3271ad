"""The ``vecgen`` command line. Thin: parse options, call the library, print.

Each command group lives in its own module with a ``register(app)`` function listed in
:data:`COMMAND_MODULES`. Errors a user can cause (:class:`~vecgen.errors.VecgenError`) are printed as
one line on stderr with exit status 2, never as a traceback. Bugs are not user errors: a broken backend
or policy contract (:class:`~vecgen.backends.contract.ContractError`) prints one line saying so, any other
unexpected exception its traceback followed by that line; both exit with status 1.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from ..errors import VecgenError

app = typer.Typer(
    name="vecgen",
    help="Vector-space generation: run language models at the level of their embedding space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Modules under ``vecgen.cli`` that add commands; each defines ``register(app: typer.Typer)``.
COMMAND_MODULES = ["generate", "models", "concept", "diagnose", "softprompt", "vocab", "verify", "think"]


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging (library and transformers)."),
) -> None:
    """vecgen: concept tokens, soft thinking, soft prompts and vocabulary analysis for causal LMs."""
    setup_logging(verbose)


def setup_logging(verbose: bool = False) -> None:
    """Route ``vecgen`` logs to stderr through rich; quiet transformers unless verbose."""
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("vecgen")
    root.handlers[:] = [RichHandler(show_path=verbose, show_time=False, rich_tracebacks=verbose,
                                    console=_stderr_console())]
    root.setLevel(level)
    root.propagate = False
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()  # cache loads take seconds; no bars
        except ImportError:  # pragma: no cover
            pass


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except VecgenError as exc:
        _stderr_console().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _stderr_console().print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: say so, exit 1
        from ..backends.contract import ContractError

        if not isinstance(exc, ContractError):
            import traceback

            traceback.print_exc()
        _stderr_console().print(f"[bold red]internal error (a bug in vecgen, not in your input; please report it):[/] "
                                f"{escape(f'{type(exc).__name__}: {exc}')}", highlight=False, soft_wrap=True)
        sys.exit(1)
