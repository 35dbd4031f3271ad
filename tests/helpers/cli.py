"""The one way tests run vecgen's command line, and the checks every bad-input test makes.

:func:`cli` runs ``vecgen ARGS`` through :func:`vecgen.cli.main` in the test's own process (the real entry point's
error handling: one-line errors, exit 2, Ctrl-C's 130), capturing what it prints; :func:`cli_subprocess` runs it as a
new process (``python -m vecgen``) where a real interpreter start matters."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    """What a command did: its exit status and what it printed on stdout and stderr.

    Unpacks as ``code, out, err``; ``exit_code`` and ``output`` (stdout then stderr) read as typer's ``CliRunner``
    results do."""

    code: int
    out: str
    err: str

    def __iter__(self):
        return iter((self.code, self.out, self.err))

    @property
    def exit_code(self) -> int:
        return self.code

    @property
    def output(self) -> str:
        return self.out + self.err

    @property
    def stdout(self) -> str:
        return self.out

    @property
    def stderr(self) -> str:
        return self.err


def cli(args, capsys=None) -> Result:
    """Run ``vecgen ARGS`` in this process: :class:`Result` ``(exit code, stdout, stderr)``. ``capsys`` is accepted for
    the tests that pass it and not needed: the output is captured here."""
    from vecgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if capsys is not None:
        capsys.readouterr()  # anything printed around the call (logging handlers bound earlier) is dropped
    return Result(code, out.getvalue(), err.getvalue())


def cli_subprocess(*args, timeout: float = 300, env=None) -> subprocess.CompletedProcess:
    """``python -m vecgen ARGS`` as a new process (text output captured; ``env`` replaces the environment)."""
    return subprocess.run([sys.executable, "-m", "vecgen", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(code, err, *fragments):
    """The command failed as bad input does: exit 2, no traceback, exactly one ``error:`` line, holding each of
    ``fragments`` (whitespace-normalised)."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in " ".join(err.split()), (f, err)


def never_load(monkeypatch):
    """Make any model load fail the test: validation must happen before loading."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded before every input was validated")

    # vecgen.api first: importing it under the other patches would bind the stub as its own load_model for good
    for target in ("vecgen.api.load_model", "vecgen.models.load_model", "vecgen.models.loader.load_model"):
        monkeypatch.setattr(target, boom)
