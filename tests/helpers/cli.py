"""Drive vecgen's command line in the test's own process, and the checks every bad-input test makes."""

from __future__ import annotations

import pytest


def cli(args, capsys):
    """Run ``vecgen ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    from vecgen.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_line_error(code, err, *fragments):
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
