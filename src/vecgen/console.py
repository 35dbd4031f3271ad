"""The terminal: where command-line entry points (``vecgen``, ``vecgen-lm-eval``) print errors and notes (stderr,
through rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def stderr_console() -> Console:
    """A rich console on stderr."""
    return Console(stderr=True)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, in one line (markup in the message is shown as text)."""
    stderr_console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


__all__ = ["escape", "print_error", "stderr_console"]
