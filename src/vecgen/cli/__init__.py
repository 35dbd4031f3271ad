"""The ``vecgen`` command line. Thin: parse options, call the library, print.

Each command group lives in its own module with a ``register(app)`` function listed in
:data:`COMMAND_MODULES`. Errors a user can cause (:class:`~vecgen.errors.VecgenError`) are printed as
one line on stderr with exit status 2, never as a traceback. Bugs are not user errors: a broken backend
or policy contract (:class:`~vecgen.backends.contract.ContractError`) prints one line saying so, any other
unexpected exception its traceback followed by that line; both exit with status 1.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import sys
from typing import Any

import typer

from ..console import escape, print_error, stderr_console
from ..errors import ContractError, VecgenError

app = typer.Typer(
    name="vecgen",
    help="Vector-space generation: run language models at the level of their embedding space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Modules under ``vecgen.cli`` that add commands; each defines ``register(app: typer.Typer)``.
COMMAND_MODULES = ["generate", "models", "concept", "diagnose", "softprompt", "vocab", "verify", "think", "view", "probe", "reader", "serve", "train"]


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
                                    console=stderr_console())]
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


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _finite(previous):
    """A parameter callback refusing NaN and ±inf (then running the option's own callback, if any)."""

    def check(ctx, param, value):
        import math

        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise typer.BadParameter(f"{v} is not a finite number; give a finite value", ctx=ctx, param=param)
        return previous(ctx, param, value) if previous is not None else value

    return check


def _takes_float(annotation) -> bool:
    import typing

    return annotation is float or any(_takes_float(a) for a in typing.get_args(annotation))


def command():
    """The click command tree of :data:`app`, with every float option and argument checked for finiteness
    (NaN and ±inf are refused while parsing, naming the option, before anything is loaded)."""
    from .common import refresh_commands

    refresh_commands(app)
    root = typer.main.get_command(app)
    helps = backend_option_help()
    stack = [root]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            if param.name in helps and isinstance(getattr(param, "help", None), str):
                param.help = helps[param.name]  # type: ignore[attr-defined]  # an Option (it has help)
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is not None and _takes_float(descriptor.annotation):
                param.callback = _finite(param.callback)
    return root


def backend_option_help() -> dict[str, str]:
    """The help of ``--backend`` (every registered backend) and of ``--n-ctx`` (prefixed by the backends that take
    it), from the backend registry (:mod:`vecgen.models.backends`)."""
    from rich.markup import escape

    from ..models.backends import backend_help, backends_taking

    n_ctx = ("KV-cache positions shared by every row at once (prompts + generated tokens of a batch). Default: the "
             "model's context length, at most 16384.")
    return {"backend": escape(backend_help()), "n_ctx": f"{', '.join(backends_taking('n_ctx'))}: {n_ctx}"}


def _leaf_command(root: Any, argv: list[str]) -> Any:
    """The command ``argv`` names (descending through groups), or ``root``."""
    cmd = root
    for arg in argv:
        sub = getattr(cmd, "commands", {}).get(arg)
        if sub is None:
            if not arg.startswith("-") and getattr(cmd, "commands", None):
                break
            continue
        cmd = sub
    return cmd


def flag_message(exc: VecgenError, argv: list[str]) -> str:
    """``exc``'s message with the library parameters it names (:attr:`~vecgen.errors.VecgenError.params`) written as
    the flags of the command in ``argv`` (``batch_size=0: ...`` → ``--batch-size=0: ...``)."""
    message = str(exc)
    if not exc.params:
        return message
    cmd = _leaf_command(command(), argv)
    flags = {p.name: p.opts[0] for p in getattr(cmd, "params", []) if getattr(p, "opts", None)
             and p.opts[0].startswith("--")}
    for name in exc.params:
        flag = flags.get(name)
        if flag is not None:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?!\w)", flag, message, count=1)
    return message


def _interrupted() -> None:
    from ..reports import interrupted_runs

    runs = interrupted_runs()
    if not runs:
        stderr_console().print("[yellow]interrupted[/]: nothing was being written; nothing to resume",
                                highlight=False, soft_wrap=True)
        return
    for run in runs:
        if not run.dir.is_dir():
            kept = f"interrupted before anything was written (no run folder kept for {run.name})"
        else:
            kept = f"kept {run.dir} ({run.records_summary()})"
            kept += f"; {run.resume_hint}" if run.resume_hint else "; this command does not resume"
        stderr_console().print(f"[yellow]interrupted[/]: {escape(kept)}", highlight=False, soft_wrap=True)


#: OS errors that are the machine's state, not a bug: no space, quota, read-only, permission.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def check_argv_text(args: list[str]) -> None:
    """Refuse a command-line argument that is not valid Unicode text before anything is parsed or loaded.

    Python turns bytes of an argument that are not UTF-8 into lone surrogates (PEP 383), which no tokenizer
    accepts; the one check here covers every text option and argument of every command, present and future.

    Raises:
        ConfigError: naming the option (``--system``, or the argument's position) and the character.
    """
    from ..io import check_text, invalid_unicode_at

    for i, arg in enumerate(args):
        if invalid_unicode_at(arg) is None:
            continue
        if arg.startswith("--") and "=" in arg:
            what = f"the value of {arg.split('=', 1)[0]}"
        elif i > 0 and args[i - 1].startswith("-") and not args[i - 1].lstrip("-").replace(".", "").isdigit():
            what = f"the value of {args[i - 1]}"
        else:
            what = f"command-line argument {i + 1}"
        check_text(arg, what)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the command line ``argv`` (default ``sys.argv[1:]``) and exit.

    Exit status: 0 success; 2 bad input (:class:`~vecgen.errors.VecgenError` or a usage error: one line on
    stderr, no traceback); 1 a bug (one line, with a traceback unless it is a broken contract) or a
    command's own failure verdict (``verify``, ``diagnose embeds``); 130 Ctrl-C (one line saying what was
    kept and how to resume)."""
    from typer._click import (
        exceptions as click_exc,  # typer vendors click; its usage errors live here
    )

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv_text(args)
        result = command().main(args=args, prog_name="vecgen", standalone_mode=False)
        code = result if isinstance(result, int) else 0  # typer turns Ctrl-C inside a command into 130
    except click_exc.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        code = 2
    except click_exc.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "vecgen"
        print_error(f"{' '.join(exc.format_message().split())} (see `{where} --help`)")
        code = 2
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except VecgenError as exc:
        print_error(flag_message(exc, args))
        code = 2
    except Exception as exc:  # noqa: BLE001 - a bug: say so, exit 1 (unless the machine's state is the cause)
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            # a full disk, a quota, a read-only or forbidden path: the machine's state, not vecgen's bug
            where = f" ({exc.filename})" if exc.filename else ""
            print_error(f"{exc.strerror}{where}; free some space or choose another --out-dir or path")
            code = 2
        else:
            if not isinstance(exc, ContractError):
                import traceback

                traceback.print_exc()
            stderr_console().print(f"[bold red]internal error (a bug in vecgen, not in your input; please report "
                                    f"it):[/] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False,
                                    soft_wrap=True)
            code = 1
    if code == 130:
        _interrupted()
    sys.exit(code)
