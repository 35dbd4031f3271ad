"""``vecgen think --budgets``: every method at each thinking budget, the marker forced at the budget, the
accuracy-per-token table and plot, and paired tests between the methods at each budget."""

from __future__ import annotations

import json

import pytest

from vecgen.errors import ConfigError
from vecgen.thinking.settings import EvaluationSettings


def test_budgets_make_one_run_per_method_and_budget_and_pair_methods_per_budget():
    s = EvaluationSettings.create(methods="cot,soft", budgets=[4, 8])
    assert list(s.method_configs()) == ["cot[max_think_tokens=4]", "cot[max_think_tokens=8]",
                                        "soft[max_think_tokens=4]", "soft[max_think_tokens=8]"]
    assert {c.max_think_tokens for c in s.method_configs().values()} == {4, 8}
    assert s.budget_pairs() == [("cot[max_think_tokens=4]", "soft[max_think_tokens=4]"),
                                ("cot[max_think_tokens=8]", "soft[max_think_tokens=8]")]


@pytest.mark.parametrize("values,fragment", [
    (dict(budgets=[0, 8]), "integer >= 1"),
    (dict(budgets=[8, 8]), "listed twice"),
    (dict(budgets=[8], max_think_tokens=16), "leave max_think_tokens out"),
    (dict(budgets=[8], grid=["max_think_tokens=4,8"]), "say the same thing"),
])
def test_bad_budgets_are_refused(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        EvaluationSettings.create(methods="cot", **values)


def test_think_budgets_force_the_end_and_report_accuracy_per_token(tiny_model_dir, tmp_path, capsys):
    from vecgen.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["think", "-m", str(tiny_model_dir("qwen2")), "--methods", "cot,switch", "--budgets", "2,5", "--limit", "3",
              "--max-answer-tokens", "2", "--cold-stop-tau", "0", "--out-dir", str(tmp_path), "--run-name", "b"])
    assert exc.value.code == 0, capsys.readouterr().err
    run = tmp_path / "b"
    recs = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for r in recs:
        budget = int(r["method"].split("=")[1].rstrip("]"))
        assert r["think_tokens"] <= budget
        if r["stop_reason"] == "max_tokens":
            assert r["think_tokens"] == budget
    res = json.loads((run / "results.json").read_text())
    rows = res["budgets"]
    assert [(r["method"], r["budget"]) for r in rows] == [("cot", 2), ("cot", 5), ("switch", 2), ("switch", 5)]
    assert {(p["a"], p["b"]) for p in res["paired"]} == {("cot[max_think_tokens=2]", "switch[max_think_tokens=2]"),
                                                         ("cot[max_think_tokens=5]", "switch[max_think_tokens=5]")}
    assert (run / "budgets.png").stat().st_size > 0
    assert "points per 100 thinking tokens" in (run / "report.md").read_text()
