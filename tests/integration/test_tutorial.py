"""docs/tutorial.ipynb runs in a real Jupyter kernel (nbclient + ipykernel) on the default model, and shows the values
the Python API page (docs/python.md) quotes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
            parts.append(out["data"].get("text/html", ""))
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    for package in ("nbclient", "nbformat", "ipykernel"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e '.[test]')")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path_factory.mktemp("tutorial")
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    return nb, work


def test_the_tutorial_runs_and_shows_the_readmes_values(executed):
    nb, work = executed
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [_text(c) for c in code]
    for c in code:
        assert not [o for o in c.get("outputs", []) if o.get("output_type") == "error"], c.source
    # every value docs/python.md shows
    assert "default qwen2 transformers 896" in outputs[0]
    assert "TokenWeight(token=' Paris', weight=0.96" in outputs[1]  # c.top[0][0]
    assert 'class="chip"' in outputs[1]  # the concept tokens shown as the viewer's chips
    assert "[0.25, 1.24]" in outputs[2] and "torch.Size([2, 896])" in outputs[2] and " Paris 1.0" in outputs[2]
    for line in ("nearest     'Paris.'", "completion  'Paris is a city in France.'", "fewshot     'Paris.'"):
        assert line in outputs[3]
    answers = [line.split("'")[1] for line in outputs[4].splitlines() if line.startswith("cot ")]
    assert answers == ["7", "60", "63"] and "(112 concept tokens, stop eos)" in outputs[4]
    assert "92 tokens" in outputs[4] and "139 tokens" in outputs[4] and "83 tokens" in outputs[4]
    assert 'class="chip"' in outputs[5]
    assert "<table>" in outputs[6] and "cot 4/10, soft 3/10" in outputs[6]
    assert "only cot right 1, only soft right 0, exact McNemar p = 1" in outputs[7]
    assert "input space: top-1 36%, top-5 69% of 119" in outputs[8]
    assert "output space: top-1 35%" in outputs[8]
    assert list(work.iterdir()) == []  # nothing written: the evaluation ran in memory
